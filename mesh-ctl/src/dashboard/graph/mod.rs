//! The service graph: workloads as nodes, calls between them as edges with
//! request rate, error rate, p99 latency and whether they use mTLS.
//!
//! Rates come from the difference between two scrapes of the same proxy,
//! never from lifetime totals, so the graph shows what happens now. A
//! counter that went down (the proxy restarted) counts from zero again, as
//! Prometheus' `rate()` does; a series that appeared between the scrapes
//! counts whole.
//!
//! Both ends of a call may count it: the caller's proxy (`reporter="source"`)
//! and the callee's (`reporter="destination"`). Traffic from a workload
//! whose proxy reports as source is taken from those series alone; traffic
//! from anything else (an ingress without metrics, a caller without a
//! sidecar, an unknown peer) from the callee's. So each call counts once,
//! and edges into the mesh still show. mTLS is read from every series of
//! an edge, since only the callee's side can tell.

mod latency;
mod series;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use self::latency::Buckets;
use self::series::{Flow, Measure, Peer, Reporter, Security, workload_id};
use super::prometheus::Sample;
use super::targets::{ProxyKind, Target};

/// The latency quantile the edges show.
const QUANTILE: f64 = 0.99;

/// What the page draws.
#[derive(Debug, Default, Serialize)]
pub struct Graph {
    /// Sorted by id.
    pub nodes: Vec<Node>,
    /// Sorted by source, destination and protocol.
    pub edges: Vec<Edge>,
    /// The longest time between the two scrapes rates were computed from;
    /// `None` until a proxy was scraped twice.
    pub window_seconds: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub namespace: String,
    pub app: String,
    pub version: String,
    /// Whether the node is one of the proxies scraped.
    pub proxy: bool,
    /// Why its proxy could not be scraped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Workload,
    Gateway,
    /// A destination service no proxy answered for.
    Service,
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct Edge {
    pub source: String,
    pub destination: String,
    /// `http`, `grpc` or `tcp`.
    pub protocol: String,
    /// Requests per second; for TCP, connections opened per second.
    pub rate: f64,
    /// The share of requests answered 5xx (of connections that failed, for
    /// TCP), 0 to 1.
    pub error_rate: f64,
    /// The 99th percentile of request duration; HTTP and gRPC only.
    pub p99_ms: Option<f64>,
    /// TCP only.
    pub bytes_per_second: Option<f64>,
    /// All the traffic whose security is known went over mTLS.
    pub mtls: bool,
    /// Whose series the numbers come from.
    pub reporter: &'static str,
}

/// One proxy as the last scrapes found it.
#[derive(Debug)]
pub struct Proxy<'a> {
    pub target: &'a Target,
    pub state: ProxyState<'a>,
}

#[derive(Debug)]
pub enum ProxyState<'a> {
    /// Two scrapes `seconds` apart.
    Measured {
        seconds: f64,
        before: &'a [Sample],
        now: &'a [Sample],
    },
    /// Scraped once: rates need another scrape.
    Waiting,
    Failed(&'a str),
}

/// What one reporter counted on an edge, per second.
#[derive(Debug, Default)]
struct Traffic {
    requests: f64,
    errors: f64,
    durations: Buckets,
    connections: f64,
    failed: f64,
    bytes: f64,
}

impl Traffic {
    fn add(&mut self, measure: Measure, per_second: f64, delta: f64) {
        match measure {
            Measure::Requests { error } => {
                self.requests += per_second;
                if error {
                    self.errors += per_second;
                }
            }
            // Quantiles only need proportions: counts do.
            Measure::DurationBucket { le } => self.durations.add(le, delta),
            Measure::Connections { failed } => {
                self.connections += per_second;
                if failed {
                    self.failed += per_second;
                }
            }
            Measure::Bytes => self.bytes += per_second,
        }
    }

    fn is_idle(&self) -> bool {
        self.requests == 0.0 && self.connections == 0.0 && self.bytes == 0.0
    }
}

/// Everything counted on one edge.
#[derive(Debug, Default)]
struct EdgeTraffic {
    by_source: Traffic,
    by_destination: Traffic,
    /// Requests and connections per second, by what their security was.
    mutual_tls: f64,
    plaintext: f64,
}

/// source id, destination id, protocol.
type EdgeKey = (String, String, String);

/// The graph of what the proxies counted between their last two scrapes.
pub fn build(proxies: &[Proxy]) -> Graph {
    let mut tally = Tally {
        nodes: proxies
            .iter()
            .map(|proxy| {
                let node = proxy_node(proxy);
                (node.id.clone(), node)
            })
            .collect(),
        ..Tally::default()
    };
    for proxy in proxies {
        if let ProxyState::Measured {
            seconds,
            before,
            now,
        } = proxy.state
        {
            tally.count(seconds, before, now);
        }
    }
    tally.into_graph()
}

/// A series: its name and labels.
type SeriesKey<'a> = (&'a str, &'a [(String, String)]);

/// What every proxy counted, before choosing reporters.
#[derive(Debug, Default)]
struct Tally {
    nodes: BTreeMap<String, Node>,
    edges: BTreeMap<EdgeKey, EdgeTraffic>,
    /// The peers whose own proxy reports their calls.
    reporting_sources: HashSet<String>,
    window_seconds: Option<f64>,
}

impl Tally {
    /// Adds what one proxy counted in `seconds`.
    fn count(&mut self, seconds: f64, before: &[Sample], now: &[Sample]) {
        self.window_seconds = Some(self.window_seconds.map_or(seconds, |w| w.max(seconds)));
        let before: HashMap<SeriesKey, f64> = before
            .iter()
            .map(|s| ((s.name.as_str(), s.labels.as_slice()), s.value))
            .collect();
        for sample in now {
            let Some(flow) = series::flow(sample) else {
                continue;
            };
            if flow.reporter == Reporter::Source {
                self.reporting_sources.insert(flow.source.id());
            }
            let previous = before.get(&(sample.name.as_str(), sample.labels.as_slice()));
            let delta = increase(previous.copied(), sample.value);
            if delta > 0.0 {
                self.add(&flow, delta, seconds);
            }
        }
    }

    fn add(&mut self, flow: &Flow, delta: f64, seconds: f64) {
        for peer in [&flow.source, &flow.destination] {
            self.nodes
                .entry(peer.id())
                .or_insert_with(|| peer_node(peer));
        }
        let key = (
            flow.source.id(),
            flow.destination.id(),
            flow.protocol.clone(),
        );
        let traffic = self.edges.entry(key).or_default();
        let per_second = delta / seconds;
        match flow.reporter {
            Reporter::Source => traffic.by_source.add(flow.measure, per_second, delta),
            Reporter::Destination => traffic.by_destination.add(flow.measure, per_second, delta),
        }
        if let Measure::Requests { .. } | Measure::Connections { .. } = flow.measure {
            match flow.security {
                Security::MutualTls => traffic.mutual_tls += per_second,
                Security::Plaintext => traffic.plaintext += per_second,
                Security::Unknown => {}
            }
        }
    }

    fn into_graph(self) -> Graph {
        let Tally {
            mut nodes,
            edges,
            reporting_sources,
            window_seconds,
        } = self;
        let edges = edges
            .into_iter()
            .filter_map(|(key, traffic)| edge(key, &traffic, &reporting_sources))
            .collect::<Vec<_>>();
        // Only peers that carried counted traffic, besides the proxies.
        let used: HashSet<&str> = edges
            .iter()
            .flat_map(|e| [e.source.as_str(), e.destination.as_str()])
            .collect();
        nodes.retain(|id, node| node.proxy || used.contains(id.as_str()));
        Graph {
            nodes: nodes.into_values().collect(),
            edges,
            window_seconds,
        }
    }
}

/// What a counter grew by; after a reset it counts from zero again.
fn increase(before: Option<f64>, now: f64) -> f64 {
    match before {
        Some(before) if now >= before => now - before,
        _ => now,
    }
}

/// The edge as the preferred reporter counted it; `None` when that
/// reporter saw nothing in the window.
fn edge(key: EdgeKey, traffic: &EdgeTraffic, reporting_sources: &HashSet<String>) -> Option<Edge> {
    let (source, destination, protocol) = key;
    let (counted, reporter) = if reporting_sources.contains(&source) {
        (&traffic.by_source, "source")
    } else {
        (&traffic.by_destination, "destination")
    };
    if counted.is_idle() {
        return None;
    }
    let tcp = protocol == "tcp";
    let (rate, errors) = if tcp {
        (counted.connections, counted.failed)
    } else {
        (counted.requests, counted.errors)
    };
    Some(Edge {
        source,
        destination,
        error_rate: if rate > 0.0 { errors / rate } else { 0.0 },
        rate,
        p99_ms: (!tcp)
            .then(|| counted.durations.quantile(QUANTILE))
            .flatten(),
        bytes_per_second: tcp.then_some(counted.bytes),
        mtls: traffic.mutual_tls > 0.0 && traffic.plaintext == 0.0,
        reporter,
        protocol,
    })
}

fn proxy_node(proxy: &Proxy) -> Node {
    let target = proxy.target;
    Node {
        id: workload_id(&target.namespace, &target.workload),
        kind: match target.kind {
            ProxyKind::Sidecar => NodeKind::Workload,
            ProxyKind::Gateway => NodeKind::Gateway,
        },
        name: target.workload.clone(),
        namespace: target.namespace.clone(),
        app: target.app.clone(),
        version: target.version.clone(),
        proxy: true,
        scrape_error: match proxy.state {
            ProxyState::Failed(error) => Some(error.to_owned()),
            _ => None,
        },
    }
}

fn peer_node(peer: &Peer) -> Node {
    let mut node = Node {
        id: peer.id(),
        kind: NodeKind::Unknown,
        name: "unknown".into(),
        namespace: String::new(),
        app: "unknown".into(),
        version: String::new(),
        proxy: false,
        scrape_error: None,
    };
    match peer {
        Peer::Workload {
            name,
            namespace,
            app,
            version,
        } => {
            node.kind = NodeKind::Workload;
            node.name.clone_from(name);
            node.namespace.clone_from(namespace);
            node.app.clone_from(app);
            node.version.clone_from(version);
        }
        Peer::Service { name, namespace } => {
            node.kind = NodeKind::Service;
            node.name.clone_from(name);
            node.namespace.clone_from(namespace);
            node.app.clone_from(name);
        }
        Peer::Unknown => {}
    }
    node
}
