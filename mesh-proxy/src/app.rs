//! Starting the proxy from its config, and stopping it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::{Config, ListenerKind};
use crate::drain::{self, Drain, Trigger};
use crate::http::access_log::AccessLogger;
use crate::http::proxy::HttpState;
use crate::stats::ListenerStats;
use crate::{tcp, upstream};

/// A running proxy: the addresses it bound, and the means to stop it.
#[derive(Debug)]
pub struct Running {
    /// Listener names and the addresses actually bound (port 0 resolved).
    pub listeners: Vec<(String, SocketAddr)>,
    pub admin: Option<SocketAddr>,
    trigger: Trigger,
    drain: Drain,
    /// One clone per open connection; the count tells when draining is done.
    connections: Arc<()>,
}

/// Binds every listener and the admin server, and starts serving.
pub async fn start(bootstrap: Bootstrap) -> anyhow::Result<Running> {
    let config = Config::from_bootstrap(&bootstrap)?;
    let upstreams = Arc::new(upstream::build(&config));
    let (trigger, drain) = drain::channel();
    let connections = Arc::new(());
    let mut bound = Vec::new();
    let mut http_states = Vec::new();
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.address).await.map_err(|err| {
            anyhow::anyhow!(
                "listener {:?}: cannot bind {}: {err}",
                listener.name,
                listener.address
            )
        })?;
        bound.push((listener.name.clone(), socket.local_addr()?));
        let handler = match &listener.kind {
            ListenerKind::Http(manager) => {
                let access_logs = manager
                    .access_logs
                    .iter()
                    .map(AccessLogger::open)
                    .collect::<Result<Arc<[_]>, _>>()
                    .map_err(|err| {
                        anyhow::anyhow!(
                            "listener {:?}: cannot open an access log: {err}",
                            listener.name
                        )
                    })?;
                let state = Arc::new(HttpState {
                    manager: Arc::clone(manager),
                    upstreams: Arc::clone(&upstreams),
                    stats: ListenerStats::default(),
                    access_logs,
                });
                http_states.push(Arc::clone(&state));
                Handler::Http(state)
            }
            ListenerKind::Tcp(tcp) => Handler::Tcp(Arc::clone(&upstreams[&tcp.cluster])),
        };
        tokio::spawn(accept_loop(
            socket,
            handler,
            drain.clone(),
            Arc::clone(&connections),
        ));
    }
    let admin = match config.admin {
        Some(address) => {
            let socket = TcpListener::bind(address)
                .await
                .map_err(|err| anyhow::anyhow!("admin: cannot bind {address}: {err}"))?;
            let local = socket.local_addr()?;
            let state = Arc::new(AdminState {
                bootstrap,
                listeners: bound.clone(),
                http: http_states,
                upstreams,
                trigger: trigger.clone(),
            });
            tokio::spawn(admin::serve(socket, state, drain.clone()));
            Some(local)
        }
        None => None,
    };
    Ok(Running {
        listeners: bound,
        admin,
        trigger,
        drain,
        connections,
    })
}

enum Handler {
    Http(Arc<HttpState>),
    Tcp(Arc<upstream::Upstream>),
}

async fn accept_loop(socket: TcpListener, handler: Handler, drain: Drain, connections: Arc<()>) {
    let mut drained = std::pin::pin!(drain.clone().started());
    loop {
        let stream = tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = drained.as_mut() => return,
        };
        let open = Arc::clone(&connections);
        match &handler {
            Handler::Http(state) => {
                let (state, drain) = (Arc::clone(state), drain.clone());
                tokio::spawn(async move {
                    crate::http::server::serve_connection(state, stream, drain).await;
                    drop(open);
                });
            }
            Handler::Tcp(upstream) => {
                let upstream = Arc::clone(upstream);
                tokio::spawn(async move {
                    tcp::proxy_connection(upstream, stream).await;
                    drop(open);
                });
            }
        }
    }
}

impl Running {
    /// Resolves when a drain was asked for (by `/quitquitquit` or [`Running::trigger`]).
    pub async fn drain_requested(&self) {
        self.drain.clone().started().await;
    }

    /// Starts draining: listeners stop accepting, connections finish their requests.
    pub fn trigger(&self) {
        self.trigger.start();
    }

    /// Drains, then waits until every connection has closed or `limit` passes.
    /// Returns the number of connections still open.
    pub async fn shutdown(self, limit: Duration) -> usize {
        self.trigger.start();
        let deadline = tokio::time::Instant::now() + limit;
        // Each connection task holds a clone; ours is the one left when all are done.
        while Arc::strong_count(&self.connections) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Arc::strong_count(&self.connections) - 1
    }
}
