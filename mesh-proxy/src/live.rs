//! The running listeners and clusters, and how a new config replaces them.
//!
//! Every config is applied whole: all its listeners and clusters are built
//! first, and only if that works is anything swapped in. What did not change
//! is kept rather than rebuilt:
//! - A cluster whose definition (with its EDS endpoints and secrets) is the
//!   same keeps its upstream: connection pool, outlier detection and health
//!   check state. A changed one gets a fresh upstream; requests under way
//!   finish on the old one, which goes when they do.
//! - A listener keeps its socket while its address stays. When its
//!   definition is the same, its open HTTP connections take the new routes
//!   and clusters from their next request on. When it changed, new
//!   connections get the new filter chains and the old connections drain
//!   (HTTP/1.1 closes after the response under way, HTTP/2 says GOAWAY),
//!   as in Envoy. A removed listener stops accepting and its connections
//!   drain the same way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::config::{Config, Fingerprint};
use crate::drain::{Drain, Trigger};
use crate::http::proxy::HttpState;
use crate::listener::{self, BuildContext, Handoffs, Runtime};
use crate::telemetry::Telemetry;
use crate::upstream::{Upstream, Upstreams};

/// The proxy's current listeners and clusters.
#[derive(Debug)]
pub struct Live {
    /// The whole proxy's drain; every listener's and cluster's is a child.
    drain: Drain,
    telemetry: Arc<Telemetry>,
    /// One clone per open connection.
    connections: Arc<()>,
    handoffs: Arc<ArcSwap<Handoffs>>,
    state: tokio::sync::Mutex<State>,
    view: ArcSwap<View>,
    /// A whole config has been applied.
    ready: AtomicBool,
}

/// What the admin pages show of the current config.
#[derive(Debug, Default)]
pub struct View {
    /// Listener names and the addresses actually bound (port 0 resolved).
    pub listeners: Vec<(String, SocketAddr)>,
    pub http: Vec<Arc<HttpState>>,
    pub upstreams: Arc<Upstreams>,
}

#[derive(Debug, Default)]
struct State {
    clusters: BTreeMap<String, ClusterEntry>,
    listeners: BTreeMap<String, ListenerEntry>,
}

#[derive(Debug)]
struct ClusterEntry {
    upstream: Arc<Upstream>,
    fingerprint: Arc<Fingerprint>,
    /// Stops the cluster's health checker.
    stop: Trigger,
}

#[derive(Debug)]
struct ListenerEntry {
    runtime: Arc<Runtime>,
    fingerprint: Arc<Fingerprint>,
    /// Drains the connections accepted under this definition.
    generation: Trigger,
    bound: Option<Arc<Bound>>,
}

/// A listener's socket, which outlives changes to its definition.
#[derive(Debug)]
struct Bound {
    local: SocketAddr,
    current: Arc<ArcSwap<Runtime>>,
    /// Stops accepting, and drains every connection.
    stop: Trigger,
    stopped: Drain,
}

/// A cluster of the new config, and whether its upstream is new.
#[derive(Debug)]
struct PreparedCluster {
    upstream: Arc<Upstream>,
    fingerprint: Arc<Fingerprint>,
    fresh: bool,
}

/// A listener of the new config, built but not swapped in yet.
#[derive(Debug)]
struct Prepared {
    runtime: Arc<Runtime>,
    fingerprint: Arc<Fingerprint>,
    /// The definition is unchanged: connections and drain carry over.
    same: bool,
    generation: Trigger,
    socket: Socket,
}

#[derive(Debug)]
enum Socket {
    /// `bind_to_port: false`.
    None,
    Kept(Arc<Bound>),
    New {
        socket: TcpListener,
        stop: Trigger,
        stopped: Drain,
    },
}

impl Live {
    pub fn new(telemetry: Arc<Telemetry>, drain: Drain) -> Live {
        Live {
            drain,
            telemetry,
            connections: Arc::new(()),
            handoffs: Arc::default(),
            state: tokio::sync::Mutex::default(),
            view: ArcSwap::default(),
            ready: AtomicBool::new(false),
        }
    }

    /// Whether a whole config is being served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Says that the config applied is whole: the proxy is ready.
    pub fn mark_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// How many connections are open.
    pub fn open_connections(&self) -> usize {
        Arc::strong_count(&self.connections) - 1
    }

    /// Swaps `config` in. On an error (a listener that cannot bind or open
    /// its access log) nothing changes.
    pub async fn apply(&self, config: &Config) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        let clusters = self.prepare_clusters(&state, config);
        let upstreams: Arc<Upstreams> = Arc::new(
            clusters
                .iter()
                .map(|(name, c)| (name.clone(), Arc::clone(&c.upstream)))
                .collect(),
        );
        let mut http = Vec::new();
        let mut prepared = BTreeMap::new();
        for listener in &config.listeners {
            let fingerprint = Arc::clone(&config.fingerprints.listeners[&listener.name]);
            let entry = self
                .prepare_listener(&state, listener, fingerprint, &upstreams, &mut http)
                .await?;
            prepared.insert(listener.name.clone(), entry);
        }
        self.commit_clusters(&mut state, clusters);
        self.commit_listeners(&mut state, prepared);
        let runtimes: Vec<_> = state
            .listeners
            .values()
            .map(|e| Arc::clone(&e.runtime))
            .collect();
        self.handoffs.store(Arc::new(Handoffs::new(&runtimes)));
        let listeners = state
            .listeners
            .iter()
            .map(|(name, e)| {
                let address = e.bound.as_ref().map_or(e.runtime.address, |b| b.local);
                (name.clone(), address)
            })
            .collect();
        self.view.store(Arc::new(View {
            listeners,
            http,
            upstreams,
        }));
        Ok(())
    }

    /// The upstream of every cluster: the current one when unchanged (false),
    /// else a new one (true).
    fn prepare_clusters(
        &self,
        state: &State,
        config: &Config,
    ) -> BTreeMap<String, PreparedCluster> {
        config
            .clusters
            .iter()
            .map(|(name, cluster)| {
                let fingerprint = Arc::clone(&config.fingerprints.clusters[name]);
                let prepared = match state.clusters.get(name) {
                    Some(entry) if entry.fingerprint == fingerprint => PreparedCluster {
                        upstream: Arc::clone(&entry.upstream),
                        fingerprint,
                        fresh: false,
                    },
                    _ => PreparedCluster {
                        upstream: Arc::new(Upstream::new(Arc::clone(cluster))),
                        fingerprint,
                        fresh: true,
                    },
                };
                (name.clone(), prepared)
            })
            .collect()
    }

    async fn prepare_listener(
        &self,
        state: &State,
        listener: &crate::config::Listener,
        fingerprint: Arc<Fingerprint>,
        upstreams: &Arc<Upstreams>,
        http: &mut Vec<Arc<HttpState>>,
    ) -> anyhow::Result<Prepared> {
        let old = state.listeners.get(&listener.name);
        let kept = old
            .and_then(|e| {
                e.bound
                    .as_ref()
                    .filter(|_| e.runtime.address == listener.address)
            })
            .filter(|_| listener.bind_to_port);
        let same = old.is_some_and(|e| {
            e.fingerprint == fingerprint && (kept.is_some() || !listener.bind_to_port)
        });
        let socket = match (listener.bind_to_port, kept) {
            (false, _) => Socket::None,
            (true, Some(bound)) => Socket::Kept(Arc::clone(bound)),
            (true, None) => {
                let socket = TcpListener::bind(listener.address).await.map_err(|err| {
                    anyhow::anyhow!(
                        "listener {:?}: cannot bind {}: {err}",
                        listener.name,
                        listener.address
                    )
                })?;
                let (stop, stopped) = self.drain.child();
                Socket::New {
                    socket,
                    stop,
                    stopped,
                }
            }
        };
        let (generation, drain) = match (old, same) {
            (Some(old), true) => (old.generation.clone(), old.runtime.drain.clone()),
            _ => match &socket {
                Socket::None => self.drain.child(),
                Socket::Kept(bound) => bound.stopped.child(),
                Socket::New { stopped, .. } => stopped.child(),
            },
        };
        let context = BuildContext {
            upstreams,
            telemetry: &self.telemetry,
            drain,
            previous: old.map(|e| (&*e.runtime, same)),
        };
        let runtime = Arc::new(Runtime::build(listener, &context, http)?);
        Ok(Prepared {
            runtime,
            fingerprint,
            same,
            generation,
            socket,
        })
    }

    fn commit_clusters(&self, state: &mut State, clusters: BTreeMap<String, PreparedCluster>) {
        let mut old = std::mem::take(&mut state.clusters);
        for (name, new) in clusters {
            let entry = match old.remove(&name) {
                Some(entry) if !new.fresh => entry,
                replaced => {
                    if let Some(replaced) = replaced {
                        replaced.stop.start();
                    }
                    let (stop, drain) = self.drain.child();
                    crate::health::start_cluster(&new.upstream, &drain);
                    ClusterEntry {
                        upstream: new.upstream,
                        fingerprint: new.fingerprint,
                        stop,
                    }
                }
            };
            state.clusters.insert(name, entry);
        }
        for removed in old.into_values() {
            removed.stop.start();
        }
    }

    fn commit_listeners(&self, state: &mut State, prepared: BTreeMap<String, Prepared>) {
        let mut old = std::mem::take(&mut state.listeners);
        for (name, new) in prepared {
            let previous = old.remove(&name);
            let bound = match new.socket {
                Socket::None => None,
                Socket::Kept(bound) => {
                    bound.current.store(Arc::clone(&new.runtime));
                    Some(bound)
                }
                Socket::New {
                    socket,
                    stop,
                    stopped,
                } => {
                    let bound = Arc::new(Bound {
                        local: socket.local_addr().unwrap_or(new.runtime.address),
                        current: Arc::new(ArcSwap::new(Arc::clone(&new.runtime))),
                        stop,
                        stopped,
                    });
                    tokio::spawn(listener::accept_loop(
                        socket,
                        Arc::clone(&bound.current),
                        Arc::clone(&self.handoffs),
                        bound.stopped.clone(),
                        Arc::clone(&self.connections),
                    ));
                    Some(bound)
                }
            };
            if let Some(previous) = previous {
                retire(previous, bound.as_ref(), new.same);
            }
            let entry = ListenerEntry {
                runtime: new.runtime,
                fingerprint: new.fingerprint,
                generation: new.generation,
                bound,
            };
            state.listeners.insert(name, entry);
        }
        for removed in old.into_values() {
            retire(removed, None, false);
        }
    }
}

/// Drains what a listener's new definition does not keep: its connections
/// unless the definition is the same, and its socket unless still in use.
fn retire(old: ListenerEntry, kept: Option<&Arc<Bound>>, same: bool) {
    if !same {
        old.generation.start();
    }
    if let Some(bound) = old.bound
        && !kept.is_some_and(|kept| Arc::ptr_eq(kept, &bound))
    {
        bound.stop.start();
    }
}
