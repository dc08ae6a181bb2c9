//! A span for each sampled request, as Envoy's OpenTelemetry tracer makes
//! them for a connection manager with `tracing`.
//!
//! - Sampling: a parent's decision (W3C flag, B3 sampled or debug) is
//!   kept. Without one, a request is sampled by `random_sampling` (or, when
//!   it has `x-client-trace-id`, by `client_sampling`), then by
//!   `overall_sampling`. The draw is a hash of `x-request-id`, so every
//!   proxy a request passes makes the same decision.
//! - Kind and name: a client span on outbound listeners, a server span
//!   elsewhere (Envoy's egress and ingress); named by the route's
//!   `decorator.operation`, else `ingress` or `egress <host>`. With
//!   `spawn_upstream_span`, a client child span `router <cluster> egress`
//!   covers the upstream request (timed from the request's start: the
//!   proxy does not time the upstream call apart).
//! - The context of the span the upstream continues is written in both
//!   W3C and B3 headers, sampled or not, so the decision travels too.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use http::{HeaderMap, HeaderName, Response};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use super::Telemetry;
use super::export::{Finished, SpanQueue, string_attribute};
use super::propagation::{self, Incoming, Outgoing};
use crate::config::{NodeInfo, TagValue, Tracing, TrafficDirection};
use crate::http::Body;
use crate::http::info::ResponseInfo;
use crate::http::observe::{self, grpc_status};
use crate::http::proxy::request_authority;
use crate::lb::Downstream;
use crate::tls::DownstreamTls;
use crate::upstream::{Upstream, Upstreams};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static CLIENT_TRACE_ID: HeaderName = HeaderName::from_static("x-client-trace-id");
static DOWNSTREAM_CLUSTER: HeaderName =
    HeaderName::from_static("x-envoy-downstream-service-cluster");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The proxy's side of tracing: where finished spans go, and what every
/// span says of the proxy.
#[derive(Debug)]
pub struct Tracer {
    pub queue: SpanQueue,
    node_id: String,
    zone: String,
}

impl Tracer {
    pub fn new(node: &NodeInfo, queue: SpanQueue) -> Tracer {
        Tracer {
            queue,
            node_id: node.id.clone(),
            zone: node.zone.clone(),
        }
    }
}

/// One listener's tracing.
#[derive(Debug)]
pub struct HttpTracing {
    shared: Arc<Telemetry>,
    config: Arc<Tracing>,
    kind: SpanKind,
    service: Arc<str>,
    /// `None` while the cluster is not defined: spans are counted as dropped.
    collector: Option<Arc<Upstream>>,
}

/// A request's span while the request is under way.
#[derive(Debug)]
pub struct ActiveSpan {
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    /// The child span for the upstream request, with `spawn_upstream_span`.
    upstream_span_id: Option<u64>,
    /// Only for sampled requests.
    request: Option<RequestFacts>,
}

/// What the span records of the request as it came.
#[derive(Debug)]
struct RequestFacts {
    started: SystemTime,
    clock: Instant,
    trace_state: String,
    host: String,
    tags: Vec<KeyValue>,
    grpc: bool,
}

impl HttpTracing {
    pub fn new(
        shared: &Arc<Telemetry>,
        config: &Arc<Tracing>,
        direction: TrafficDirection,
        upstreams: &Upstreams,
    ) -> HttpTracing {
        HttpTracing {
            shared: Arc::clone(shared),
            config: Arc::clone(config),
            kind: match direction {
                TrafficDirection::Outbound => SpanKind::Client,
                _ => SpanKind::Server,
            },
            service: Arc::from(config.service_name.as_str()),
            collector: upstreams.get(&config.collector_cluster).cloned(),
        }
    }

    /// Decides whether the request is sampled, and writes the trace context
    /// the upstream continues into its headers.
    pub fn start(&self, parts: &mut Parts) -> ActiveSpan {
        let incoming = propagation::extract(&parts.headers);
        let sampled = self.sampled(&incoming, &parts.headers);
        let trace_id = incoming
            .parent
            .map_or_else(|| fastrand::u128(1..), |p| p.trace_id);
        let span = ActiveSpan {
            trace_id,
            span_id: fastrand::u64(1..),
            parent_span_id: incoming.parent.map(|p| p.span_id),
            upstream_span_id: self.config.spawn_upstream_span.then(|| fastrand::u64(1..)),
            request: sampled.then(|| self.facts(parts)),
        };
        let outgoing = match span.upstream_span_id {
            Some(id) => Outgoing {
                trace_id,
                span_id: id,
                parent_span_id: Some(span.span_id),
                sampled,
            },
            None => Outgoing {
                trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
                sampled,
            },
        };
        propagation::inject(&mut parts.headers, &outgoing);
        span
    }

    /// Returns the response with a body that ends the span when done.
    pub fn finish(self: &Arc<Self>, span: ActiveSpan, response: Response<Body>) -> Response<Body> {
        if span.request.is_none() {
            return response;
        }
        let info = response
            .extensions()
            .get::<ResponseInfo>()
            .cloned()
            .unwrap_or_default();
        let status = response.status().as_u16();
        let header_grpc_status = grpc_status(response.headers());
        let tracing = Arc::clone(self);
        observe::when_done(response, move |done| {
            let answer = Answer {
                info,
                status,
                grpc_status: done.grpc_status.or(header_grpc_status),
                body_bytes: done.body_bytes,
            };
            tracing.record(span, &answer);
        })
    }

    fn sampled(&self, incoming: &Incoming, headers: &HeaderMap) -> bool {
        if let Some(decided) = incoming.sampled {
            return decided;
        }
        let ticket = ticket(headers.get(&REQUEST_ID).map_or(&[][..], |v| v.as_bytes()));
        let client =
            headers.contains_key(&CLIENT_TRACE_ID) && below(self.config.client_sampling, ticket);
        (client || below(self.config.random_sampling, ticket))
            && below(self.config.overall_sampling, ticket)
    }

    fn facts(&self, parts: &Parts) -> RequestFacts {
        let headers = &parts.headers;
        let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
        let host = request_authority(parts).unwrap_or_default().to_owned();
        let scheme = match parts.extensions.get::<DownstreamTls>() {
            Some(_) => "https",
            None => "http",
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut url = format!("{scheme}://{host}{path}");
        truncate(&mut url, self.config.max_path_tag_length);
        let mut tags = vec![
            string_attribute("component", "proxy"),
            string_attribute("node_id", &self.shared.tracer.node_id),
            string_attribute("zone", &self.shared.tracer.zone),
            string_attribute("http.url", &url),
            string_attribute("http.method", parts.method.as_str()),
            string_attribute("http.protocol", &format!("{:?}", parts.version)),
            string_attribute(
                "downstream_cluster",
                text(&DOWNSTREAM_CLUSTER).unwrap_or("-"),
            ),
            string_attribute("user_agent", text(&http::header::USER_AGENT).unwrap_or("-")),
            string_attribute("guid:x-request-id", text(&REQUEST_ID).unwrap_or_default()),
            string_attribute("request_size", &content_length(headers).to_string()),
        ];
        if let Some(id) = text(&CLIENT_TRACE_ID) {
            tags.push(string_attribute("guid:x-client-trace-id", id));
        }
        if let Some(downstream) = parts.extensions.get::<Downstream>() {
            tags.push(string_attribute(
                "peer.address",
                &downstream.remote.ip().to_string(),
            ));
        }
        tags.extend(self.custom_tags(headers));
        RequestFacts {
            started: SystemTime::now(),
            clock: Instant::now(),
            trace_state: text(&TRACESTATE).unwrap_or_default().to_owned(),
            host,
            tags,
            grpc: headers
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")),
        }
    }

    /// The configured tags that have a value for this request.
    fn custom_tags<'a>(&'a self, headers: &'a HeaderMap) -> impl Iterator<Item = KeyValue> + 'a {
        self.config.custom_tags.iter().filter_map(move |tag| {
            let value = match &tag.value {
                TagValue::Literal(value) => value.as_str(),
                TagValue::RequestHeader { name, default } => headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(default),
                TagValue::Missing { default } => default,
            };
            (!value.is_empty()).then(|| string_attribute(&tag.tag, value))
        })
    }

    /// Builds the span (and its upstream child) and queues them for export.
    fn record(&self, span: ActiveSpan, answer: &Answer) {
        let Some(request) = span.request else {
            return;
        };
        let ended = request.started + request.clock.elapsed();
        let (start, end) = (unix_nanos(request.started), unix_nanos(ended));
        let info = &answer.info;
        let cluster = info.cluster.as_deref().unwrap_or("-");
        let mut upstream_tags = vec![
            string_attribute("upstream_cluster", cluster),
            string_attribute("upstream_cluster.name", cluster),
            string_attribute("http.status_code", &answer.status.to_string()),
        ];
        if let Some(address) = info.upstream_host {
            upstream_tags.push(string_attribute("upstream_address", &address.to_string()));
        }
        let failed = answer.status >= 500;
        if failed {
            upstream_tags.push(string_attribute("error", "true"));
        }
        let mut attributes = request.tags;
        attributes.extend(upstream_tags.iter().cloned());
        attributes.push(string_attribute("response_flags", &info.flags.to_string()));
        attributes.push(string_attribute(
            "response_size",
            &answer.body_bytes.to_string(),
        ));
        if let Some(code) = answer.grpc_status.filter(|_| request.grpc) {
            attributes.push(string_attribute("grpc.status_code", &code.to_string()));
        }
        let name = match (&info.operation, self.kind) {
            (Some(operation), _) => operation.to_string(),
            (None, SpanKind::Client) => format!("egress {}", request.host),
            (None, _) => "ingress".to_owned(),
        };
        let status = Some(Status {
            code: if failed {
                StatusCode::Error
            } else {
                StatusCode::Unset
            } as i32,
            ..Status::default()
        });
        let main = Span {
            trace_id: span.trace_id.to_be_bytes().to_vec(),
            span_id: span.span_id.to_be_bytes().to_vec(),
            parent_span_id: span
                .parent_span_id
                .map_or_else(Vec::new, |id| id.to_be_bytes().to_vec()),
            trace_state: request.trace_state.clone(),
            name,
            kind: self.kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            status: status.clone(),
            ..Span::default()
        };
        self.export(main);
        // The upstream span exists only when a request went upstream.
        if let (Some(id), Some(_)) = (span.upstream_span_id, &info.cluster) {
            upstream_tags.push(string_attribute("component", "proxy"));
            upstream_tags.push(string_attribute("node_id", &self.shared.tracer.node_id));
            let child = Span {
                trace_id: span.trace_id.to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: span.span_id.to_be_bytes().to_vec(),
                trace_state: request.trace_state,
                name: format!("router {cluster} egress"),
                kind: SpanKind::Client as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: upstream_tags,
                status,
                ..Span::default()
            };
            self.export(child);
        }
    }

    fn export(&self, span: Span) {
        let queue = &self.shared.tracer.queue;
        match &self.collector {
            Some(collector) => queue.push(Finished {
                span,
                collector: Arc::clone(collector),
                service: Arc::clone(&self.service),
            }),
            None => queue.lost(),
        }
    }
}

/// How the response ended.
#[derive(Debug)]
struct Answer {
    info: ResponseInfo,
    status: u16,
    grpc_status: Option<u32>,
    body_bytes: u64,
}

/// A draw in 0..10000 that depends on the request id only.
fn ticket(request_id: &[u8]) -> u64 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let hash = request_id
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        });
    hash % 10_000
}

/// Whether a draw falls within `percent`.
fn below(percent: f64, ticket: u64) -> bool {
    (ticket as f64) < percent * 100.0
}

fn content_length(headers: &HeaderMap) -> u64 {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let end = (0..=max)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        text.truncate(end);
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
