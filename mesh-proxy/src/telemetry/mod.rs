//! Istio's telemetry: peer metadata exchanged in headers, and the standard
//! metrics labelled with both peers, as the `istio.metadata_exchange` and
//! `istio.stats` filters produce them; trace spans exported over OTLP
//! ([`spans`], [`propagation`], [`export`]).
//!
//! Peers are known for HTTP through the headers; the caller's principal
//! (`source_principal`) from its mTLS certificate. The principals of the
//! proxy's own side and of the upstream are not reported yet (`unknown`). TCP connections are labelled
//! with the local side and the destination service only: Istio's TCP
//! exchange runs over mTLS with ALPN `istio-peer-exchange`, which this proxy
//! does not speak.

pub mod export;
pub mod metrics;
pub mod peer;
pub mod propagation;
pub mod spans;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use http::request::Parts;
use http::{HeaderMap, Response};

use crate::config::{
    HttpManager, NodeInfo, PeerExchange, ServiceRef, StatsConfig, TrafficDirection,
};
use crate::http::Body;
use crate::http::info::ResponseInfo;
use crate::http::observe;
use crate::http::proxy::{request_authority, strip_port};
use crate::tls::DownstreamTls;
use export::SpanQueue;
use metrics::{
    ById, Metrics, Overrides, Peers, Protocol, Reporter, RequestLabels, RequestSample, Security,
};
use peer::{LocalPeer, PeerCache, Workload};
use spans::Tracer;

/// Host names (as services) and principals remembered; beyond this the
/// caches start over.
const HOST_CACHE_SIZE: usize = 1024;

/// The proxy's telemetry state, shared by every listener and kept across
/// config changes.
#[derive(Debug)]
pub struct Telemetry {
    pub metrics: Metrics,
    pub local: LocalPeer,
    pub tracer: Tracer,
    peers: PeerCache,
    unknown: Arc<Workload>,
    unknown_service: Arc<ServiceRef>,
    hosts: Mutex<HashMap<String, Arc<ServiceRef>>>,
    principals: Mutex<HashSet<Arc<str>>>,
}

impl Telemetry {
    pub fn new(node: &NodeInfo, spans: SpanQueue) -> Telemetry {
        Telemetry {
            metrics: Metrics::default(),
            local: LocalPeer::new(node),
            tracer: Tracer::new(node, spans),
            peers: PeerCache::default(),
            unknown: Arc::default(),
            unknown_service: Arc::default(),
            hosts: Mutex::default(),
            principals: Mutex::default(),
        }
    }

    /// A peer's SPIFFE id, the same `Arc` for the same id.
    fn principal(&self, id: &Arc<str>) -> Arc<str> {
        let mut principals = self
            .principals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = principals.get(id) {
            return Arc::clone(known);
        }
        if principals.len() >= HOST_CACHE_SIZE {
            principals.clear();
        }
        principals.insert(Arc::clone(id));
        Arc::clone(id)
    }

    /// A service named by a Host header, the same `Arc` for the same host.
    fn host_service(&self, host: &str) -> Arc<ServiceRef> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(service) = hosts.get(host) {
            return Arc::clone(service);
        }
        if hosts.len() >= HOST_CACHE_SIZE {
            hosts.clear();
        }
        let service = Arc::new(ServiceRef {
            host: host.to_owned(),
            name: host.to_owned(),
            namespace: String::new(),
        });
        hosts.insert(host.to_owned(), Arc::clone(&service));
        service
    }
}

/// What one listener does: its exchange settings and, with `istio.stats`,
/// how it reports.
#[derive(Debug)]
pub struct HttpTelemetry {
    shared: Arc<Telemetry>,
    exchange: PeerExchange,
    stats: Option<Reporting>,
}

/// A listener's `istio.stats`, resolved.
#[derive(Debug)]
struct Reporting {
    reporter: Reporter,
    host_fallback: bool,
    overrides: Arc<Overrides>,
}

impl Reporting {
    fn new(config: &StatsConfig, direction: TrafficDirection) -> Reporting {
        Reporting {
            reporter: reporter(config, direction),
            host_fallback: !config.disable_host_header_fallback,
            overrides: Arc::new(Overrides::new(&config.overrides)),
        }
    }
}

fn reporter(config: &StatsConfig, direction: TrafficDirection) -> Reporter {
    match (config.server_gateway, direction) {
        (true, _) => Reporter::Waypoint,
        (false, TrafficDirection::Inbound) => Reporter::Destination,
        (false, _) => Reporter::Source,
    }
}

/// What is known of a request when it arrives, for its metrics.
#[derive(Debug)]
pub struct RequestStart {
    started: Instant,
    downstream_peer: Option<Arc<Workload>>,
    /// The caller's SPIFFE id, when it came over mTLS.
    downstream_principal: Option<Arc<str>>,
    /// The service the authority names, when it may stand in for the
    /// cluster's.
    host: Option<Arc<ServiceRef>>,
    grpc: bool,
    request_bytes: u64,
}

impl HttpTelemetry {
    /// `None` when the listener neither exchanges metadata nor reports.
    pub fn new(
        shared: &Arc<Telemetry>,
        manager: &HttpManager,
        direction: TrafficDirection,
    ) -> Option<HttpTelemetry> {
        let stats = manager
            .stats
            .as_ref()
            .map(|config| Reporting::new(config, direction))
            .filter(|r| r.overrides.reports_requests());
        if stats.is_none() && manager.peer_exchange == PeerExchange::default() {
            return None;
        }
        Some(HttpTelemetry {
            shared: Arc::clone(shared),
            exchange: manager.peer_exchange,
            stats,
        })
    }

    /// Takes the caller's metadata out of the request, and notes what the
    /// metrics need.
    pub fn request(&self, parts: &mut Parts) -> RequestStart {
        let downstream_peer = if self.exchange.downstream_discovery {
            self.shared.peers.discover(&mut parts.headers)
        } else {
            None
        };
        let start = RequestStart {
            started: Instant::now(),
            downstream_peer,
            downstream_principal: None,
            host: None,
            grpc: false,
            request_bytes: 0,
        };
        // The rest only serves the metrics.
        let Some(stats) = &self.stats else {
            return start;
        };
        let content_length = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let tls = parts.extensions.get::<DownstreamTls>();
        RequestStart {
            downstream_principal: tls
                .and_then(|tls| tls.peer_uri_san.as_ref())
                .map(|id| self.shared.principal(id)),
            host: request_authority(parts)
                .filter(|_| stats.host_fallback)
                .map(|authority| self.shared.host_service(strip_port(authority))),
            grpc: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")),
            request_bytes: header_bytes(&parts.headers) + content_length,
            ..start
        }
    }

    /// Adds our metadata to a request going upstream.
    pub fn upstream_request(&self, headers: &mut HeaderMap) {
        if self.exchange.upstream_propagation {
            self.shared.local.propagate(headers);
        }
    }

    /// Takes the upstream's metadata out of its response.
    pub fn upstream_response(&self, headers: &mut HeaderMap) -> Option<Arc<Workload>> {
        self.exchange
            .upstream_discovery
            .then(|| self.shared.peers.discover(headers))
            .flatten()
    }

    /// Adds our metadata to the response and records the request's metrics
    /// once the response body is done.
    pub fn response(&self, start: RequestStart, mut response: Response<Body>) -> Response<Body> {
        if self.exchange.downstream_propagation {
            self.shared.local.propagate(response.headers_mut());
        }
        let Some(stats) = &self.stats else {
            return response;
        };
        let info = response
            .extensions()
            .get::<ResponseInfo>()
            .cloned()
            .unwrap_or_default();
        let peers = self.peers(stats, &start, &info);
        let response_code = response.status().as_u16();
        let header_grpc_status = observe::grpc_status(response.headers());
        let response_header_bytes = header_bytes(response.headers());
        let shared = Arc::clone(&self.shared);
        let hook = move |done: observe::Done| {
            let labels = RequestLabels {
                peers,
                protocol: if start.grpc {
                    Protocol::Grpc
                } else {
                    Protocol::Http
                },
                response_code,
                grpc_status: done
                    .grpc_status
                    .or(header_grpc_status)
                    .filter(|_| start.grpc),
                flags: info.flags,
            };
            let sample = RequestSample {
                duration_ms: start.started.elapsed().as_secs_f64() * 1000.0,
                request_bytes: start.request_bytes,
                response_bytes: response_header_bytes + done.body_bytes,
            };
            shared.metrics.record_request(labels, sample);
        };
        observe::when_done(response, hook)
    }

    fn peers(&self, stats: &Reporting, start: &RequestStart, info: &ResponseInfo) -> Peers {
        let shared = &self.shared;
        let local = || ById(Arc::clone(&shared.local.workload));
        let known = |peer: &Option<Arc<Workload>>| {
            ById(peer.clone().unwrap_or_else(|| Arc::clone(&shared.unknown)))
        };
        let (source, destination, security) = match stats.reporter {
            Reporter::Source => (local(), known(&info.upstream_peer), Security::Unknown),
            Reporter::Destination | Reporter::Waypoint => {
                let security = match start.downstream_principal {
                    Some(_) => Security::MutualTls,
                    None => Security::None,
                };
                (known(&start.downstream_peer), local(), security)
            }
        };
        let source_principal = match stats.reporter {
            Reporter::Source => None,
            _ => start.downstream_principal.clone().map(ById),
        };
        let service = match (&info.service, &start.host) {
            (Some(service), _) => Arc::clone(service),
            (None, Some(host)) => Arc::clone(host),
            (None, None) => Arc::clone(&shared.unknown_service),
        };
        Peers {
            reporter: stats.reporter,
            source,
            destination,
            source_principal,
            destination_principal: None,
            service: ById(service),
            security,
            overrides: ById(Arc::clone(&stats.overrides)),
        }
    }
}

/// The TCP metrics of one `tcp_proxy` chain.
#[derive(Debug)]
pub struct TcpTelemetry {
    shared: Arc<Telemetry>,
    reporting: Reporting,
}

impl TcpTelemetry {
    pub fn new(
        shared: &Arc<Telemetry>,
        config: &StatsConfig,
        direction: TrafficDirection,
    ) -> TcpTelemetry {
        TcpTelemetry {
            shared: Arc::clone(shared),
            reporting: Reporting::new(config, direction),
        }
    }

    /// Counts a connection to `service` opened, and returns its counters.
    pub fn open(&self, service: Option<&Arc<ServiceRef>>) -> Arc<metrics::TcpSeries> {
        let shared = &self.shared;
        let local = ById(Arc::clone(&shared.local.workload));
        let unknown = ById(Arc::clone(&shared.unknown));
        let (source, destination, security) = match self.reporting.reporter {
            Reporter::Source => (local, unknown, Security::Unknown),
            Reporter::Destination | Reporter::Waypoint => (unknown, local, Security::None),
        };
        let service = service.map_or_else(|| Arc::clone(&shared.unknown_service), Arc::clone);
        shared.metrics.open_connection(Peers {
            reporter: self.reporting.reporter,
            source,
            destination,
            source_principal: None,
            destination_principal: None,
            service: ById(service),
            security,
            overrides: ById(Arc::clone(&self.reporting.overrides)),
        })
    }
}

/// What headers weigh on the wire, roughly as Envoy counts them.
fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum()
}
