//! Endpoint health from the load assignment (`health_status`, `locality`,
//! `health_check_config`), a cluster's active `health_checks`, and
//! `common_lb_config.healthy_panic_threshold`.
//!
//! Supported in a health check: `http_health_check` (`path`, `host`,
//! `method`, `expected_statuses`, `retriable_statuses`, `codec_client_type`
//! HTTP1 or HTTP2, `request_headers_to_add`, `request_headers_to_remove`) and
//! a connect-only `tcp_health_check`; `timeout`, `interval`,
//! `initial_jitter`, `interval_jitter`, `interval_jitter_percent`,
//! `unhealthy_threshold`, `healthy_threshold`, `unhealthy_interval`,
//! `unhealthy_edge_interval`, `healthy_edge_interval`, `reuse_connection`.
//! `no_traffic_interval` and `no_traffic_healthy_interval` are accepted and
//! not used: checks always run every `interval` (Envoy checks clusters that
//! never had traffic every 60 s by default). The event log fields are
//! accepted and unused. As in Envoy, at most one health check per cluster,
//! and `timeout`, `interval` and both thresholds are required.

use std::ops::Range;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::core::v3::{
    HealthCheck as EnvoyHealthCheck, HealthStatus as EnvoyHealthStatus, Locality as EnvoyLocality,
    RequestMethod, health_check,
};
use envoy_types::pb::envoy::config::endpoint::v3::endpoint::HealthCheckConfig;
use envoy_types::pb::envoy::r#type::v3::{CodecClientType, Int64Range};
use http::Method;
use http::uri::PathAndQuery;

use super::headers::{self, HeaderMutations, Lists};
use super::{At, ConfigError, duration};

/// An endpoint's health as the control plane reports it (`health_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HealthStatus {
    /// Unset; Envoy treats it as healthy.
    #[default]
    Unknown,
    Healthy,
    Unhealthy,
    Draining,
    Timeout,
    /// Usable, but only when no healthy endpoint is left.
    Degraded,
}

impl HealthStatus {
    /// Whether Envoy treats the endpoint as failed (`/failed_eds_health`).
    pub fn is_failed(self) -> bool {
        matches!(
            self,
            HealthStatus::Unhealthy | HealthStatus::Draining | HealthStatus::Timeout
        )
    }

    /// The proto enum value, for the admin pages.
    pub fn to_proto(self) -> EnvoyHealthStatus {
        match self {
            HealthStatus::Unknown => EnvoyHealthStatus::Unknown,
            HealthStatus::Healthy => EnvoyHealthStatus::Healthy,
            HealthStatus::Unhealthy => EnvoyHealthStatus::Unhealthy,
            HealthStatus::Draining => EnvoyHealthStatus::Draining,
            HealthStatus::Timeout => EnvoyHealthStatus::Timeout,
            HealthStatus::Degraded => EnvoyHealthStatus::Degraded,
        }
    }
}

/// Where an endpoint runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
    pub sub_zone: String,
}

impl std::fmt::Display for Locality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.sub_zone)
    }
}

/// How active health checks reach one endpoint (`health_check_config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointHealthCheck {
    /// Check this port instead of the endpoint's.
    pub port: Option<u16>,
    /// The host header for its checks; empty for the health check's own.
    pub hostname: String,
    /// Never check it: it counts as passing.
    pub disabled: bool,
}

/// A cluster's active health check.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// How long one check may take, connecting included.
    pub timeout: Duration,
    pub interval: Duration,
    /// The first check waits up to this long, at random.
    pub initial_jitter: Duration,
    /// Each wait is longer by up to this much, at random ...
    pub interval_jitter: Duration,
    /// ... and by up to this percentage of the wait.
    pub interval_jitter_percent: u32,
    /// Failed checks in a row that make a healthy endpoint unhealthy (at least 1).
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that make an unhealthy endpoint healthy (at least 1).
    pub healthy_threshold: u32,
    /// The wait while an endpoint is unhealthy.
    pub unhealthy_interval: Duration,
    /// The wait after a failure while a healthy endpoint is not yet unhealthy.
    pub unhealthy_edge_interval: Duration,
    /// The wait after a success while an unhealthy endpoint is not yet healthy.
    pub healthy_edge_interval: Duration,
    /// Keep the connection between checks.
    pub reuse_connection: bool,
    pub kind: HealthCheckKind,
}

#[derive(Debug, Clone)]
pub enum HealthCheckKind {
    Http(Box<HttpHealthCheck>),
    /// Connect-only.
    Tcp,
}

#[derive(Debug, Clone)]
pub struct HttpHealthCheck {
    pub path: PathAndQuery,
    /// The host header; the cluster's name unless set.
    pub host: String,
    pub method: Method,
    /// Statuses that pass the check (Envoy's default: only 200).
    pub expected_statuses: Vec<Range<u16>>,
    /// Statuses that fail the check but count towards `unhealthy_threshold`;
    /// any other status makes the endpoint unhealthy at once.
    pub retriable_statuses: Vec<Range<u16>>,
    pub http2: bool,
    /// Request header changes.
    pub headers: HeaderMutations,
}

/// Envoy's default `healthy_panic_threshold`, in percent.
pub const DEFAULT_PANIC_THRESHOLD: f64 = 50.0;

/// `common_lb_config.healthy_panic_threshold`, in percent; 0 turns panic mode off.
pub(super) fn panic_threshold(c: &EnvoyCluster, at: &At) -> Result<f64, ConfigError> {
    let Some(percent) = c
        .common_lb_config
        .as_ref()
        .and_then(|common| common.healthy_panic_threshold.as_ref())
    else {
        return Ok(DEFAULT_PANIC_THRESHOLD);
    };
    if !(0.0..=100.0).contains(&percent.value) {
        return Err(at
            .field("common_lb_config")
            .field("healthy_panic_threshold")
            .field("value")
            .error(format_args!("{} is not a percentage", percent.value)));
    }
    Ok(percent.value)
}

pub(super) fn status(value: i32, at: &At) -> Result<HealthStatus, ConfigError> {
    Ok(match EnvoyHealthStatus::try_from(value) {
        Ok(EnvoyHealthStatus::Unknown) => HealthStatus::Unknown,
        Ok(EnvoyHealthStatus::Healthy) => HealthStatus::Healthy,
        Ok(EnvoyHealthStatus::Unhealthy) => HealthStatus::Unhealthy,
        Ok(EnvoyHealthStatus::Draining) => HealthStatus::Draining,
        Ok(EnvoyHealthStatus::Timeout) => HealthStatus::Timeout,
        Ok(EnvoyHealthStatus::Degraded) => HealthStatus::Degraded,
        Err(_) => return Err(at.error(format_args!("unknown health status {value}"))),
    })
}

pub(super) fn locality(l: Option<&EnvoyLocality>) -> Locality {
    l.map(|l| Locality {
        region: l.region.clone(),
        zone: l.zone.clone(),
        sub_zone: l.sub_zone.clone(),
    })
    .unwrap_or_default()
}

pub(super) fn endpoint_check(
    config: Option<&HealthCheckConfig>,
    at: &At,
) -> Result<EndpointHealthCheck, ConfigError> {
    let Some(config) = config else {
        return Ok(EndpointHealthCheck::default());
    };
    if config.address.is_some() {
        return Err(at
            .field("address")
            .unsupported("health checking another address"));
    }
    let port = match config.port_value {
        0 => None,
        port => Some(u16::try_from(port).map_err(|_| {
            at.field("port_value")
                .error(format_args!("{port} is not a port"))
        })?),
    };
    host_header(&config.hostname, &at.field("hostname"))?;
    Ok(EndpointHealthCheck {
        port,
        hostname: config.hostname.clone(),
        disabled: config.disable_active_health_check,
    })
}

/// The cluster's `health_checks`: none, or one.
pub(super) fn compile(c: &EnvoyCluster, at: &At) -> Result<Option<HealthCheck>, ConfigError> {
    let at = at.field("health_checks");
    match c.health_checks.as_slice() {
        [] => Ok(None),
        [check] => Ok(Some(compile_one(check, &c.name, &at.index(0))?)),
        _ => Err(at.unsupported("more than one health check per cluster")),
    }
}

fn compile_one(h: &EnvoyHealthCheck, cluster: &str, at: &At) -> Result<HealthCheck, ConfigError> {
    let required = |d: &Option<envoy_types::pb::google::protobuf::Duration>, field: &str| {
        let at = at.field(field);
        let d = d
            .as_ref()
            .ok_or_else(|| at.error(format_args!("{field} is required")))?;
        let d = duration(d, &at)?;
        if d.is_zero() {
            return Err(at.error("must be greater than zero"));
        }
        Ok(d)
    };
    let optional = |d: &Option<envoy_types::pb::google::protobuf::Duration>,
                    field: &str,
                    default: Duration| {
        match d {
            Some(d) => {
                let at = at.field(field);
                let d = duration(d, &at)?;
                if d.is_zero() {
                    return Err(at.error("must be greater than zero"));
                }
                Ok(d)
            }
            None => Ok(default),
        }
    };
    let threshold = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, field: &str| {
        v.as_ref()
            .map(|v| v.value.max(1))
            .ok_or_else(|| at.field(field).error(format_args!("{field} is required")))
    };
    if h.alt_port.is_some() {
        return Err(at.field("alt_port").unsupported("alt_port"));
    }
    if h.tls_options.is_some() {
        return Err(at.field("tls_options").unsupported("health check TLS"));
    }
    if h.transport_socket_match_criteria.is_some() {
        return Err(at
            .field("transport_socket_match_criteria")
            .unsupported("transport_socket_match_criteria"));
    }
    if h.event_service.is_some() {
        return Err(at.field("event_service").unsupported("event_service"));
    }
    let timeout = required(&h.timeout, "timeout")?;
    let interval = required(&h.interval, "interval")?;
    let unhealthy_interval = optional(&h.unhealthy_interval, "unhealthy_interval", interval)?;
    let kind = match &h.health_checker {
        Some(health_check::HealthChecker::HttpHealthCheck(http)) => HealthCheckKind::Http(
            Box::new(http_check(http, cluster, &at.field("http_health_check"))?),
        ),
        Some(health_check::HealthChecker::TcpHealthCheck(tcp)) => {
            let at = at.field("tcp_health_check");
            if tcp.send.is_some() || !tcp.receive.is_empty() {
                return Err(at
                    .field("send")
                    .unsupported("TCP health check payloads (only connect-only checks are)"));
            }
            if tcp.proxy_protocol_config.is_some() {
                return Err(at
                    .field("proxy_protocol_config")
                    .unsupported("proxy_protocol_config"));
            }
            HealthCheckKind::Tcp
        }
        Some(health_check::HealthChecker::GrpcHealthCheck(_)) => {
            return Err(at
                .field("grpc_health_check")
                .unsupported("gRPC health checks"));
        }
        Some(health_check::HealthChecker::CustomHealthCheck(_)) => {
            return Err(at
                .field("custom_health_check")
                .unsupported("custom health checks"));
        }
        None => {
            return Err(
                at.error("a health checker (http_health_check, tcp_health_check) is required")
            );
        }
    };
    Ok(HealthCheck {
        timeout,
        interval,
        initial_jitter: match &h.initial_jitter {
            Some(d) => duration(d, &at.field("initial_jitter"))?,
            None => Duration::ZERO,
        },
        interval_jitter: match &h.interval_jitter {
            Some(d) => duration(d, &at.field("interval_jitter"))?,
            None => Duration::ZERO,
        },
        interval_jitter_percent: h.interval_jitter_percent,
        unhealthy_threshold: threshold(&h.unhealthy_threshold, "unhealthy_threshold")?,
        healthy_threshold: threshold(&h.healthy_threshold, "healthy_threshold")?,
        unhealthy_interval,
        unhealthy_edge_interval: optional(
            &h.unhealthy_edge_interval,
            "unhealthy_edge_interval",
            unhealthy_interval,
        )?,
        healthy_edge_interval: optional(
            &h.healthy_edge_interval,
            "healthy_edge_interval",
            interval,
        )?,
        reuse_connection: h.reuse_connection.is_none_or(|v| v.value),
        kind,
    })
}

fn http_check(
    h: &health_check::HttpHealthCheck,
    cluster: &str,
    at: &At,
) -> Result<HttpHealthCheck, ConfigError> {
    if h.path.is_empty() {
        return Err(at.field("path").error("path is required"));
    }
    let path: PathAndQuery = h
        .path
        .parse()
        .ok()
        .filter(|p: &PathAndQuery| p.as_str().starts_with('/'))
        .ok_or_else(|| {
            at.field("path")
                .error(format_args!("{:?} is not a path", h.path))
        })?;
    if h.send.is_some() || !h.receive.is_empty() {
        return Err(at.field("send").unsupported("HTTP health check payloads"));
    }
    if h.service_name_matcher.is_some() {
        return Err(at
            .field("service_name_matcher")
            .unsupported("service_name_matcher"));
    }
    let http2 = match CodecClientType::try_from(h.codec_client_type) {
        Ok(CodecClientType::Http1) => false,
        Ok(CodecClientType::Http2) => true,
        _ => {
            return Err(at
                .field("codec_client_type")
                .unsupported("this codec client type"));
        }
    };
    let method = match RequestMethod::try_from(h.method) {
        Ok(RequestMethod::MethodUnspecified | RequestMethod::Get) => Method::GET,
        Ok(RequestMethod::Head) => Method::HEAD,
        Ok(RequestMethod::Post) => Method::POST,
        Ok(RequestMethod::Put) => Method::PUT,
        Ok(RequestMethod::Delete) => Method::DELETE,
        Ok(RequestMethod::Options) => Method::OPTIONS,
        Ok(RequestMethod::Trace) => Method::TRACE,
        Ok(RequestMethod::Patch) => Method::PATCH,
        Ok(RequestMethod::Connect) | Err(_) => {
            return Err(at
                .field("method")
                .error("CONNECT and unknown methods cannot health check"));
        }
    };
    let mut expected_statuses = statuses(&h.expected_statuses, &at.field("expected_statuses"))?;
    if expected_statuses.is_empty() {
        expected_statuses.push(200..201);
    }
    let headers = headers::compile(
        Lists {
            request_add: &h.request_headers_to_add,
            request_remove: &h.request_headers_to_remove,
            response_add: &[],
            response_remove: &[],
        },
        at,
    )?;
    host_header(&h.host, &at.field("host"))?;
    Ok(HttpHealthCheck {
        path,
        host: if h.host.is_empty() {
            cluster.to_owned()
        } else {
            h.host.clone()
        },
        method,
        expected_statuses,
        retriable_statuses: statuses(&h.retriable_statuses, &at.field("retriable_statuses"))?,
        http2,
        headers,
    })
}

fn host_header(host: &str, at: &At) -> Result<(), ConfigError> {
    http::HeaderValue::from_str(host)
        .map(drop)
        .map_err(|_| at.error(format_args!("{host:?} is not a valid host header")))
}

/// Half-open status ranges, each within [100, 600).
fn statuses(ranges: &[Int64Range], at: &At) -> Result<Vec<Range<u16>>, ConfigError> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if !(100..600).contains(&r.start) || !(101..=600).contains(&r.end) || r.start >= r.end {
                return Err(at.index(i).error(format_args!(
                    "[{}, {}) is not a range of statuses within [100, 600)",
                    r.start, r.end
                )));
            }
            Ok(r.start as u16..r.end as u16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::compile_with_cluster;

    fn pairs(ranges: &[Range<u16>]) -> Vec<(u16, u16)> {
        ranges.iter().map(|r| (r.start, r.end)).collect()
    }

    fn check(check: serde_json::Value) -> Result<Option<HealthCheck>, ConfigError> {
        Ok(
            compile_with_cluster(json!({"health_checks": [check]}))?.clusters["a"]
                .health_check
                .clone(),
        )
    }

    #[test]
    fn http_health_check_with_envoy_defaults() {
        let compiled = check(json!({
            "timeout": "1s", "interval": "5s", "unhealthy_threshold": 3, "healthy_threshold": 2,
            "http_health_check": {"path": "/healthz"}
        }))
        .unwrap()
        .unwrap();
        let HealthCheckKind::Http(http) = &compiled.kind else {
            panic!("{compiled:?}")
        };
        assert_eq!(http.path, "/healthz");
        assert_eq!(http.host, "a", "the cluster's name by default");
        assert_eq!(http.method, Method::GET);
        assert_eq!(
            pairs(&http.expected_statuses),
            [(200, 201)],
            "Envoy's default is 200 only"
        );
        assert!(http.retriable_statuses.is_empty() && !http.http2);
        assert_eq!(
            (compiled.timeout, compiled.interval),
            (Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(
            (compiled.unhealthy_threshold, compiled.healthy_threshold),
            (3, 2)
        );
        assert_eq!(compiled.unhealthy_interval, Duration::from_secs(5));
        assert_eq!(compiled.unhealthy_edge_interval, Duration::from_secs(5));
        assert_eq!(compiled.healthy_edge_interval, Duration::from_secs(5));
        assert!(compiled.reuse_connection);

        let compiled = check(json!({
            "timeout": "1s", "interval": "5s", "unhealthy_threshold": 1, "healthy_threshold": 1,
            "unhealthy_interval": "10s", "interval_jitter": "0.5s",
            "http_health_check": {"path": "/ready?full=1", "host": "svc.local", "method": "HEAD",
                "codec_client_type": "HTTP2",
                "expected_statuses": [{"start": 200, "end": 300}],
                "retriable_statuses": [{"start": 503, "end": 504}],
                "request_headers_to_add": [{"header": {"key": "x-probe", "value": "1"}}]}
        }))
        .unwrap()
        .unwrap();
        let HealthCheckKind::Http(http) = &compiled.kind else {
            panic!()
        };
        assert_eq!(
            (http.host.as_str(), http.method.as_str()),
            ("svc.local", "HEAD")
        );
        assert_eq!(pairs(&http.expected_statuses), [(200, 300)]);
        assert_eq!(pairs(&http.retriable_statuses), [(503, 504)]);
        assert!(http.http2);
        assert_eq!(http.headers.request_add.len(), 1);
        assert_eq!(compiled.unhealthy_edge_interval, Duration::from_secs(10));
        assert_eq!(compiled.interval_jitter, Duration::from_millis(500));
    }

    #[test]
    fn connect_only_tcp_checks() {
        let compiled = check(json!({
            "timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
            "tcp_health_check": {}
        }))
        .unwrap()
        .unwrap();
        assert!(
            matches!(compiled.kind, HealthCheckKind::Tcp),
            "{compiled:?}"
        );
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let error = |c| check(c).unwrap_err().to_string();
        let base = |extra: serde_json::Value| {
            let mut c = json!({"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1,
                "healthy_threshold": 1});
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            c
        };
        assert_eq!(
            error(base(json!({"grpc_health_check": {}}))),
            "cluster \"a\": health_checks[0].grpc_health_check: gRPC health checks is not supported by this proxy"
        );
        assert_eq!(
            error(base(json!({"tcp_health_check": {"send": {"text": "00"}}}))),
            "cluster \"a\": health_checks[0].tcp_health_check.send: TCP health check payloads (only connect-only checks are) is not supported by this proxy"
        );
        assert_eq!(
            error(
                json!({"interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1,
                "http_health_check": {"path": "/"}})
            ),
            "cluster \"a\": health_checks[0].timeout: timeout is required"
        );
        assert_eq!(
            error(base(json!({"http_health_check": {"path": ""}}))),
            "cluster \"a\": health_checks[0].http_health_check.path: path is required"
        );
        assert_eq!(
            error(base(json!({"http_health_check": {"path": "/",
                "expected_statuses": [{"start": 200, "end": 700}]}}))),
            "cluster \"a\": health_checks[0].http_health_check.expected_statuses[0]: [200, 700) is not a range of statuses within [100, 600)"
        );
        let two = json!({"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1,
            "healthy_threshold": 1, "tcp_health_check": {}});
        assert_eq!(
            compile_with_cluster(json!({"health_checks": [two.clone(), two]}))
                .unwrap_err()
                .to_string(),
            "cluster \"a\": health_checks: more than one health check per cluster is not supported by this proxy"
        );
    }

    #[test]
    fn endpoint_status_locality_and_panic_threshold() {
        let config = compile_with_cluster(json!({
            "common_lb_config": {"healthy_panic_threshold": {"value": 25.0}},
            "load_assignment": {"cluster_name": "a", "endpoints": [{
                "locality": {"region": "eu", "zone": "eu-1a", "sub_zone": "rack-7"},
                "lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}},
                        "health_check_config": {"port_value": 8081, "hostname": "one"}},
                     "health_status": "DRAINING"},
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 2}}}}
                ]}]}
        }))
        .unwrap();
        let cluster = &config.clusters["a"];
        assert_eq!(cluster.healthy_panic_threshold, 25.0);
        let [one, two] = cluster.endpoints.as_slice() else {
            panic!()
        };
        assert_eq!(one.health_status, HealthStatus::Draining);
        assert!(one.health_status.is_failed());
        assert_eq!(two.health_status, HealthStatus::Unknown);
        assert_eq!(
            (
                one.locality.region.as_str(),
                one.locality.zone.as_str(),
                one.locality.sub_zone.as_str()
            ),
            ("eu", "eu-1a", "rack-7")
        );
        assert_eq!(one.locality, two.locality);
        assert_eq!(one.health_check.port, Some(8081));
        assert_eq!(one.health_check.hostname, "one");

        let default = compile_with_cluster(json!({})).unwrap();
        assert_eq!(default.clusters["a"].healthy_panic_threshold, 50.0);
        assert_eq!(
            compile_with_cluster(
                json!({"common_lb_config": {"healthy_panic_threshold": {"value": 101.0}}})
            )
            .unwrap_err()
            .to_string(),
            "cluster \"a\": common_lb_config.healthy_panic_threshold.value: 101 is not a percentage"
        );
    }
}
