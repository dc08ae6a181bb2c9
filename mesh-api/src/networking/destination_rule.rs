//! DestinationRule: what happens to traffic for a service after routing —
//! load balancing, connection pools, outlier detection, TLS origination and
//! named subsets of its endpoints.
//!
//! The traffic-policy pieces ([`ConnectionPoolSettings`] in particular) are
//! shared with [`Sidecar`](super::sidecar), whose inbound connection pools use
//! the same type and rules.
//!
//! # Validation rules
//!
//! - `host` is required and is a valid host name; a wildcard may only lead it (`*.example.com`).
//! - Each subset has a `name`, which is a lower-case DNS label, unique within the rule.
//! - Subset `labels` are valid Kubernetes label keys and values, without wildcards.
//! - A `trafficPolicy` (top level or in a subset) sets at least one field.
//! - `tunnel` and `proxyProtocol` are not set together.
//! - Every `portLevelSettings` entry has a valid `port`, sets at least one policy, and no port appears twice.
//! - `loadBalancer` sets at most one of `simple` and `consistentHash`.
//! - `consistentHash` sets exactly one hash key: `httpHeaderName`, `httpCookie`, `useSourceIp` or `httpQueryParameterName`.
//! - `httpHeaderName` is a valid header name; `httpQueryParameterName` is not empty.
//! - `httpCookie.name` is not empty; cookie attribute names are not empty and unique.
//! - `consistentHash` sets at most one of `ringHash` and `maglev`, and the deprecated `minimumRingSize` not with either.
//! - A ring size (`ringHash.minimumRingSize` or the deprecated `minimumRingSize`) is at most 8388608.
//! - `maglev.tableSize` is set, prime and less than 5000011.
//! - `loadBalancer` sets at most one of `localityLbSetting` and `zoneAwareLbSetting`, and at most one of `warmupDurationSecs` and `warmup`.
//! - `warmupDurationSecs` and `warmup.duration` are durations of at least 1ms; `warmup.minimumPercent` is 0-100; `warmup.aggression` is above 0.
//! - `localityLbSetting` does not set both `distribute` and `failover`.
//! - Each `distribute` entry's weights are 1-100 and sum to 100; its `from` and `to` localities are
//!   `region[/zone[/subzone]]` with no empty part, a wildcard only as the final character, and no overlap.
//! - A `failover` entry names two different regions, without `/` or `*`.
//! - With `failover`, `failoverPriority` does not use the region, zone or subzone topology labels.
//! - `zoneAwareLbSetting.failoverPriority` never uses the region, zone or subzone topology labels;
//!   its `failover` entries follow the same rules as locality failover; `minClusterSize` is at least 1.
//! - `connectionPool` sets `tcp` or `http`; every limit (`maxConnections`, `http1MaxPendingRequests`,
//!   `http2MaxRequests`, `maxRequestsPerConnection`, `maxRetries`, `maxConcurrentStreams`) is 0 or more.
//! - `connectTimeout`, `maxConnectionDuration`, `http.idleTimeout`, `tcpKeepalive.time` and `tcpKeepalive.interval`
//!   are at least 1ms with millisecond precision; `tcp.idleTimeout` too unless it is 0 (disabled).
//! - `http2KeepAlive` sets both `interval` and `timeout`, each at least 1ms.
//! - `useClientProtocol` is not true when `h2UpgradePolicy` is `UPGRADE`.
//! - `outlierDetection.consecutiveErrors` is 0 or more; `consecutiveLocalOriginFailures` needs `splitExternalLocalOriginErrors`.
//! - `outlierDetection.interval` and `baseEjectionTime` are at least 1ms; `maxEjectionPercent` and `minHealthPercent` are 0-100.
//! - `outlierDetectionHttpErrorCodes` are HTTP status codes, 100-599.
//! - `tls` in `MUTUAL` mode sets `clientCertificate` and `privateKey` unless `credentialName` is set.
//! - `tls` in `SIMPLE` or `MUTUAL` mode with `credentialName` sets none of `clientCertificate`, `privateKey`,
//!   `caCertificates` or `caCrl`.
//! - `tls` in `ISTIO_MUTUAL` mode sets none of `clientCertificate`, `privateKey`, `caCertificates` or `caCrl`.
//! - `tls.insecureSkipVerify: true` in `SIMPLE` mode excludes `caCertificates`, `credentialName` and `subjectAltNames`;
//!   in `MUTUAL` mode it excludes `caCertificates` and `subjectAltNames`.
//! - `tunnel.protocol` is empty, `CONNECT` or `POST`; `tunnel.targetHost` is a host name or IP; `tunnel.targetPort` is 1-65535.
//! - `retryBudget.percent` is 0-100.
//! - `exportTo` entries are `.`, `*` or a namespace name (Istio refuses `~` outside ServiceEntry), without
//!   duplicates; `*` stands alone; with a `workloadSelector` there is at most one entry and it is not `*`.
//! - `workloadSelector.matchLabels` are valid labels without wildcards.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::{PortSelector, WorkloadSelector, validate_labels};
use crate::validate::{self, Errors, Path, Validate};
use crate::{Duration, IstioStatus};

/// Largest ring Envoy's ring-hash load balancer accepts.
const MAX_RING_SIZE: u64 = 8_388_608;
/// Maglev table sizes must be below this prime.
const MAGLEV_TABLE_LIMIT: u64 = 5_000_011;
/// Topology labels that locality failover already orders by.
const TOPOLOGY_LABELS: [&str; 3] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
];

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    plural = "destinationrules",
    shortname = "dr",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Host","type":"string","jsonPath":".spec.host","description":"The name of a service from the service registry"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRuleSpec {
    /// The service the rule applies to; short names resolve in the rule's namespace.
    pub host: String,
    /// Policies for all traffic to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// Named groups of endpoints (usually versions) that routes can target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces that see this rule: `.` (own), `*` (all) or names; all when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Applies the rule only to the selected workloads of the rule's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

impl DestinationRuleSpec {
    /// The subset called `name`, if the rule defines it.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|subset| subset.name == name)
    }
}

/// Load balancing, connection pool, outlier detection and TLS for a destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    /// How requests are spread over endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Limits on connections and requests to each endpoint (circuit breaking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints from the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS the client side originates to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Per-port policies; they replace (not merge with) the policy above for their port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnels TCP/TLS traffic to the host through an HTTP CONNECT or POST proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// Sends a PROXY protocol header on upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Caps concurrent retries relative to active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// A traffic policy for one port of the destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// The destination port this policy is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// How requests to this port are spread over endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Connection and request limits for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Ejection of failing endpoints for this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS originated to this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Tunnelling of the downstream connection through a proxy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// `CONNECT` (the default) or `POST`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Host name or IP the connection is tunnelled to.
    pub target_host: String,
    /// Port the connection is tunnelled to.
    pub target_port: u32,
}

/// PROXY protocol header settings for upstream connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// Header format; `V1` (text) by default.
    #[serde(default, skip_serializing_if = "is_default")]
    pub version: ProxyProtocolVersion,
}

/// Version of the PROXY protocol header.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ProxyProtocolVersion {
    /// Human-readable text header.
    #[default]
    V1,
    /// Binary header.
    V2,
}

/// Limit on concurrent retries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries allowed as a percentage of active plus pending requests (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<f64>,
    /// Retries always allowed regardless of the percentage (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
    /// Window over which new requests count towards the budget (0: only active ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_interval: Option<Duration>,
}

/// A named group of the service's endpoints, picked by label.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    /// Name routes use to target the subset.
    pub name: String,
    /// Endpoint labels that select the subset's members.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Policy for this subset; its fields override the rule's top-level ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Load-balancing algorithm and locality behaviour.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSettings {
    /// A standard algorithm that needs no tuning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simple: Option<SimpleLb>,
    /// Hash-based affinity on a header, cookie, source IP or query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHashLb>,
    /// Locality weights and failover; replaces the mesh-wide setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLoadBalancerSetting>,
    /// Automatic same-zone preference; replaces the mesh-wide setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_aware_lb_setting: Option<ZoneAwareLoadBalancerSetting>,
    /// Deprecated: use `warmup`. How long new endpoints ramp up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_duration_secs: Option<Duration>,
    /// Slow start: new endpoints receive gradually more traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupConfiguration>,
}

/// Standard load-balancing algorithms.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SimpleLb {
    /// Let the mesh choose.
    #[default]
    Unspecified,
    /// Deprecated alias of `LEAST_REQUEST`.
    LeastConn,
    /// A random healthy endpoint.
    Random,
    /// Forward to the address the caller asked for, without balancing.
    Passthrough,
    /// Endpoints in turn.
    RoundRobin,
    /// Prefer endpoints with fewer outstanding requests.
    LeastRequest,
}

/// Consistent hashing for soft session affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsistentHashLb {
    /// Hash on this request header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_header_name: Option<String>,
    /// Hash on this cookie, generating it when absent and a TTL is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_cookie: Option<HttpCookie>,
    /// Hash on the client's IP address (TCP and HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_source_ip: Option<bool>,
    /// Hash on this query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_query_parameter_name: Option<String>,
    /// Use a hash ring (the default algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_hash: Option<RingHash>,
    /// Use Maglev hashing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev: Option<MagLev>,
    /// Deprecated: use `ringHash.minimumRingSize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Ring-hash tuning.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingHash {
    /// Minimum number of virtual nodes on the ring (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_ring_size: Option<u64>,
}

/// Maglev tuning.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MagLev {
    /// Lookup table size, a prime below 5000011 (default 65537).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_size: Option<u64>,
}

/// The cookie a consistent hash uses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookie {
    /// Cookie name.
    pub name: String,
    /// Path set on a generated cookie.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Lifetime of a generated cookie; 0 makes a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Extra attributes set on a generated cookie.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<HttpCookieAttribute>,
}

/// One attribute of a generated cookie, such as `SameSite=Strict`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpCookieAttribute {
    /// Attribute name.
    pub name: String,
    /// Attribute value, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
}

/// Slow start for new endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmupConfiguration {
    /// How long a new endpoint stays in warmup.
    pub duration: Duration,
    /// Starting share of the endpoint's weight, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub minimum_percent: Option<f64>,
    /// How fast traffic ramps up; 1.0 (the default) is linear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggression: Option<f64>,
}

/// Per-endpoint connection and request limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    /// Limits for all connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// Limits for HTTP/1.1, HTTP/2 and gRPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// Connection limits common to TCP and HTTP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    /// Maximum connections to one endpoint (default 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// Connect timeout, at least 1ms (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Turns on TCP keepalive with these settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Close connections this long after they were opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// Close connections idle this long (default 1h; 0 disables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive probing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped (OS default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before the first probe (OS default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// Time between probes (OS default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// Request limits for HTTP connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Requests queued while waiting for a connection (default 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Active requests to one endpoint (default 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Requests per connection; 0 is unlimited and 1 turns off keep-alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Outstanding retries across the cluster (default 2^32-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// Close connections with no active request for this long (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Whether HTTP/1.1 connections are upgraded to HTTP/2.
    #[serde(default, skip_serializing_if = "is_default")]
    pub h2_upgrade_policy: H2UpgradePolicy,
    /// Keep the client's HTTP version upstream (turns off h2 upgrade).
    #[serde(default, skip_serializing_if = "is_default")]
    pub use_client_protocol: bool,
    /// Concurrent streams on one HTTP/2 connection (default 2^31-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
    /// HTTP/2 PING keepalive on upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_keep_alive: Option<ConnectionKeepalive>,
}

/// Whether HTTP/1.1 upstream connections become HTTP/2.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Follow the mesh-wide default.
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Always upgrade.
    Upgrade,
}

/// HTTP/2 PING settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionKeepalive {
    /// Time between PINGs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// How long to wait for a PING reply before closing the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Ejection of endpoints that keep failing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Deprecated: use `consecutive5xxErrors` or `consecutiveGatewayErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Count local failures (connect errors, timeouts) apart from upstream responses.
    #[serde(default, skip_serializing_if = "is_default")]
    pub split_external_local_origin_errors: bool,
    /// Local failures in a row before ejection (default 5); needs `splitExternalLocalOriginErrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// 502/503/504 responses in a row before ejection (0 or unset: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// 5xx responses in a row before ejection (default 5; 0 turns it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweeps (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Minimum ejection time, multiplied by the number of ejections (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Most endpoints that may be ejected, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Stop ejecting below this share of healthy endpoints, in percent (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
    /// Status codes that count as errors instead of all 5xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outlier_detection_http_error_codes: Vec<u32>,
}

/// TLS the client originates towards the destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// Whether and how TLS is used.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: TlsMode,
    /// Client certificate file, required for `MUTUAL` without `credentialName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    /// Client private key file, required for `MUTUAL` without `credentialName`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// CA bundle file to verify the server with (system roots when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Secret holding the client certificate, key and CA, instead of files.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Names accepted in the server certificate's subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI sent in the handshake (default: from the request's host).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    /// Skip verifying the server certificate's signature and SAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Certificate revocation list file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

/// TLS mode towards the destination.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plain text.
    #[default]
    Disable,
    /// TLS, verifying the server.
    Simple,
    /// TLS with a client certificate.
    Mutual,
    /// Mutual TLS with the mesh's own certificates.
    IstioMutual,
}

/// Locality-weighted load balancing and failover.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalityLoadBalancerSetting {
    /// Traffic weights from each client locality to destination localities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<Distribute>,
    /// The region to fail over to when a region's endpoints are unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<Failover>,
    /// Ordered labels (`key` or `key=value`) that rank endpoints for failover.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Turns locality load balancing on or off for this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// How traffic from one locality spreads over others.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Distribute {
    /// Client locality, `region/zone/subzone`, with an optional trailing `*`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Destination locality to weight; weights sum to 100.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub to: BTreeMap<String, u32>,
}

/// A region and the region it fails over to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failover {
    /// Region whose endpoints became unhealthy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Region that takes its traffic.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub to: String,
}

/// Zone-aware routing: prefer endpoints in the client's zone, in proportion to capacity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ZoneAwareLoadBalancerSetting {
    /// Turns zone-aware load balancing on or off for this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Ordering of other regions when the local region is unhealthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<Failover>,
    /// Ordered labels that rank endpoints, on top of regional partitioning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
    /// Endpoints needed in the local region before zone awareness applies (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_cluster_size: Option<u64>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Validate for DestinationRuleSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(&at.field("host"), validate::wildcard_host(&self.host));
        self.traffic_policy
            .validate(&at.field("trafficPolicy"), errs);
        let mut names = BTreeSet::new();
        for (i, subset) in self.subsets.iter().enumerate() {
            let here = at.field("subsets").index(i);
            if !subset.name.is_empty() && !names.insert(subset.name.as_str()) {
                errs.add(
                    &here.field("name"),
                    format!(
                        "subset name {:?} is used more than once; subset names must be unique",
                        subset.name
                    ),
                );
            }
            subset.validate(&here, errs);
        }
        validate_export_to(
            &self.export_to,
            self.workload_selector.is_some(),
            &at.field("exportTo"),
            errs,
        );
        self.workload_selector
            .validate(&at.field("workloadSelector"), errs);
    }
}

/// `exportTo` of a DestinationRule: `.`, `*` or namespace names.
fn validate_export_to(export_to: &[String], has_selector: bool, at: &Path, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, entry) in export_to.iter().enumerate() {
        let here = at.index(i);
        match entry.as_str() {
            "." | "*" => {}
            "~" => errs.add(&here, "exportTo \"~\" (visible to no one) is only allowed on ServiceEntry; use \".\", \"*\" or a namespace"),
            name => {
                if validate::dns_label(name).is_err() {
                    errs.add(&here, format!("exportTo entry {name:?} must be \".\", \"*\" or a namespace name"));
                }
            }
        }
        if !seen.insert(entry.as_str()) {
            errs.add(
                &here,
                format!("exportTo entry {entry:?} is listed more than once"),
            );
        }
    }
    if export_to.len() > 1 && seen.contains("*") {
        errs.add(
            at,
            "\"*\" already exports to every namespace; it cannot be combined with other entries",
        );
    }
    if has_selector && (export_to.len() > 1 || seen.contains("*")) {
        errs.add(
            at,
            "a DestinationRule with a workloadSelector can only be exported to its own namespace (\".\")",
        );
    }
}

impl Validate for Subset {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.name.is_empty() {
            errs.add(&at.field("name"), "subset name is required");
        } else {
            errs.check(
                &at.field("name"),
                validate::dns_label(&self.name).map_err(|e| format!("subset name {e}")),
            );
        }
        validate_labels(&self.labels, &at.field("labels"), errs);
        self.traffic_policy
            .validate(&at.field("trafficPolicy"), errs);
    }
}

impl Validate for TrafficPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if *self == TrafficPolicy::default() {
            errs.add(
                at,
                "a traffic policy must set at least one of loadBalancer, connectionPool, outlierDetection, tls, \
                 portLevelSettings, tunnel, proxyProtocol or retryBudget",
            );
            return;
        }
        errs.check(
            at,
            validate::one_of(&[
                ("tunnel", self.tunnel.is_some()),
                ("proxyProtocol", self.proxy_protocol.is_some()),
            ]),
        );
        self.load_balancer.validate(&at.field("loadBalancer"), errs);
        self.connection_pool
            .validate(&at.field("connectionPool"), errs);
        self.outlier_detection
            .validate(&at.field("outlierDetection"), errs);
        self.tls.validate(&at.field("tls"), errs);
        let mut ports = BTreeSet::new();
        for (i, policy) in self.port_level_settings.iter().enumerate() {
            let here = at.field("portLevelSettings").index(i);
            if let Some(port) = &policy.port
                && !ports.insert(port.number)
            {
                errs.add(
                    &here.field("port").field("number"),
                    format!(
                        "port {} already has a port-level policy; each port may appear once",
                        port.number
                    ),
                );
            }
            policy.validate(&here, errs);
        }
        self.tunnel.validate(&at.field("tunnel"), errs);
        self.retry_budget.validate(&at.field("retryBudget"), errs);
    }
}

impl Validate for PortTrafficPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        match &self.port {
            Some(port) => port.validate(&at.field("port"), errs),
            None => errs.add(
                &at.field("port"),
                "a port-level policy needs the port it applies to",
            ),
        }
        if self.load_balancer.is_none()
            && self.connection_pool.is_none()
            && self.outlier_detection.is_none()
            && self.tls.is_none()
        {
            errs.add(
                at,
                "a port-level policy must set at least one of loadBalancer, connectionPool, outlierDetection or tls",
            );
        }
        self.load_balancer.validate(&at.field("loadBalancer"), errs);
        self.connection_pool
            .validate(&at.field("connectionPool"), errs);
        self.outlier_detection
            .validate(&at.field("outlierDetection"), errs);
        self.tls.validate(&at.field("tls"), errs);
    }
}

impl Validate for TunnelSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !matches!(self.protocol.as_str(), "" | "CONNECT" | "POST") {
            errs.add(
                &at.field("protocol"),
                format!(
                    "tunnel protocol {:?} is not supported; use CONNECT or POST",
                    self.protocol
                ),
            );
        }
        if self.target_host.parse::<IpAddr>().is_err() {
            errs.check(
                &at.field("targetHost"),
                validate::exact_host(&self.target_host)
                    .map_err(|e| format!("tunnel target must be a host name or IP address: {e}")),
            );
        }
        errs.check(&at.field("targetPort"), validate::port(self.target_port));
    }
}

impl Validate for RetryBudget {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(percent) = self.percent {
            errs.check(&at.field("percent"), validate::percent(percent));
        }
    }
}

impl Validate for LoadBalancerSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(
            at,
            validate::one_of(&[
                ("simple", self.simple.is_some()),
                ("consistentHash", self.consistent_hash.is_some()),
            ]),
        );
        errs.check(
            at,
            validate::one_of(&[
                ("localityLbSetting", self.locality_lb_setting.is_some()),
                ("zoneAwareLbSetting", self.zone_aware_lb_setting.is_some()),
            ]),
        );
        errs.check(
            at,
            validate::one_of(&[
                ("warmupDurationSecs", self.warmup_duration_secs.is_some()),
                ("warmup", self.warmup.is_some()),
            ]),
        );
        self.consistent_hash
            .validate(&at.field("consistentHash"), errs);
        self.locality_lb_setting
            .validate(&at.field("localityLbSetting"), errs);
        self.zone_aware_lb_setting
            .validate(&at.field("zoneAwareLbSetting"), errs);
        if let Some(warmup) = self.warmup_duration_secs {
            errs.check(
                &at.field("warmupDurationSecs"),
                validate::duration_ms(warmup),
            );
        }
        self.warmup.validate(&at.field("warmup"), errs);
    }
}

impl Validate for ConsistentHashLb {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let keys = [
            ("httpHeaderName", self.http_header_name.is_some()),
            ("httpCookie", self.http_cookie.is_some()),
            ("useSourceIp", self.use_source_ip.is_some()),
            (
                "httpQueryParameterName",
                self.http_query_parameter_name.is_some(),
            ),
        ];
        if keys.iter().all(|(_, set)| !set) {
            errs.add(
                at,
                "consistentHash needs a hash key: set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName",
            );
        }
        errs.check(at, validate::one_of(&keys));
        if let Some(header) = &self.http_header_name {
            errs.check(&at.field("httpHeaderName"), validate::header_name(header));
        }
        if self.http_query_parameter_name.as_deref() == Some("") {
            errs.add(
                &at.field("httpQueryParameterName"),
                "query parameter name must not be empty",
            );
        }
        self.http_cookie.validate(&at.field("httpCookie"), errs);

        errs.check(
            at,
            validate::one_of(&[
                ("ringHash", self.ring_hash.is_some()),
                ("maglev", self.maglev.is_some()),
            ]),
        );
        if let Some(size) = self.minimum_ring_size {
            let here = at.field("minimumRingSize");
            if self.ring_hash.is_some() || self.maglev.is_some() {
                errs.add(&here, "the deprecated minimumRingSize cannot be combined with ringHash or maglev; use ringHash.minimumRingSize");
            }
            errs.check(&here, ring_size(size));
        }
        if let Some(size) = self
            .ring_hash
            .as_ref()
            .and_then(|ring| ring.minimum_ring_size)
        {
            errs.check(
                &at.field("ringHash").field("minimumRingSize"),
                ring_size(size),
            );
        }
        if let Some(maglev) = &self.maglev {
            let here = at.field("maglev").field("tableSize");
            match maglev.table_size.unwrap_or(0) {
                0 => errs.add(
                    &here,
                    "tableSize must be set for maglev (65537 is a common choice)",
                ),
                size if size >= MAGLEV_TABLE_LIMIT => errs.add(
                    &here,
                    format!("maglev tableSize {size} must be less than {MAGLEV_TABLE_LIMIT}"),
                ),
                size if !is_prime(size) => errs.add(
                    &here,
                    format!("maglev tableSize {size} must be a prime number"),
                ),
                _ => {}
            }
        }
    }
}

fn ring_size(size: u64) -> Result<(), String> {
    if size > MAX_RING_SIZE {
        Err(format!(
            "minimumRingSize {size} is larger than the maximum of {MAX_RING_SIZE}"
        ))
    } else {
        Ok(())
    }
}

/// Trial division, as Envoy checks Maglev table sizes.
fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n.is_multiple_of(2) {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= n {
        if n.is_multiple_of(factor) {
            return false;
        }
        factor += 2;
    }
    true
}

impl Validate for HttpCookie {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.name.is_empty() {
            errs.add(&at.field("name"), "the hash cookie needs a name");
        }
        let mut names = BTreeSet::new();
        for (i, attribute) in self.attributes.iter().enumerate() {
            let here = at.field("attributes").index(i).field("name");
            if attribute.name.is_empty() {
                errs.add(&here, "cookie attribute name must not be empty");
            } else if !names.insert(attribute.name.as_str()) {
                errs.add(
                    &here,
                    format!(
                        "cookie attribute {:?} is listed more than once",
                        attribute.name
                    ),
                );
            }
        }
    }
}

impl Validate for WarmupConfiguration {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(&at.field("duration"), validate::duration_ms(self.duration));
        if let Some(percent) = self.minimum_percent {
            errs.check(&at.field("minimumPercent"), validate::percent(percent));
        }
        if let Some(aggression) = self.aggression.filter(|a| a.is_nan() || *a <= 0.0) {
            errs.add(
                &at.field("aggression"),
                format!("aggression {aggression} must be greater than 0"),
            );
        }
    }
}

impl Validate for LocalityLoadBalancerSetting {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !self.distribute.is_empty() && !self.failover.is_empty() {
            errs.add(
                at,
                "distribute and failover cannot both be set; choose weights or failover",
            );
        }
        if !self.failover.is_empty() {
            for (i, label) in self.failover_priority.iter().enumerate() {
                if TOPOLOGY_LABELS.contains(&label.as_str()) {
                    errs.add(
                        &at.field("failoverPriority").index(i),
                        format!(
                            "{label:?} cannot be used in failoverPriority together with failover"
                        ),
                    );
                }
            }
        }
        let mut sources = Vec::new();
        for (i, distribute) in self.distribute.iter().enumerate() {
            let here = at.field("distribute").index(i);
            sources.push((here.field("from"), distribute.from.as_str()));
            let mut total: u64 = 0;
            let mut targets = Vec::new();
            for (locality, weight) in &distribute.to {
                let target = here.field("to").field(locality);
                if !(1..=100).contains(weight) {
                    errs.add(
                        &target,
                        format!("locality weight {weight} must be between 1 and 100"),
                    );
                }
                total += u64::from(*weight);
                targets.push((target, locality.as_str()));
            }
            if total != 100 {
                errs.add(
                    &here.field("to"),
                    format!(
                        "weights from {:?} sum to {total}; they must sum to 100",
                        distribute.from
                    ),
                );
            }
            check_localities(&targets, errs);
        }
        check_localities(&sources, errs);
        for (i, failover) in self.failover.iter().enumerate() {
            check_failover(failover, &at.field("failover").index(i), "locality", errs);
        }
    }
}

impl Validate for ZoneAwareLoadBalancerSetting {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        for (i, label) in self.failover_priority.iter().enumerate() {
            if TOPOLOGY_LABELS.contains(&label.as_str()) {
                errs.add(
                    &at.field("failoverPriority").index(i),
                    format!("{label:?} is not allowed in zone-aware failoverPriority; region and zone routing are automatic"),
                );
            }
        }
        for (i, failover) in self.failover.iter().enumerate() {
            check_failover(failover, &at.field("failover").index(i), "zone-aware", errs);
        }
        if self.min_cluster_size == Some(0) {
            errs.add(
                &at.field("minClusterSize"),
                "minClusterSize must be at least 1",
            );
        }
    }
}

fn check_failover(failover: &Failover, at: &Path, kind: &str, errs: &mut Errors) {
    if failover.from == failover.to {
        errs.add(
            at,
            format!(
                "{kind} failover from {:?} to itself; from and to must be different regions",
                failover.from
            ),
        );
    }
    for (field, region) in [("from", &failover.from), ("to", &failover.to)] {
        if region.contains('/') {
            errs.add(
                &at.field(field),
                format!("{kind} failover takes a region only, not {region:?}"),
            );
        } else if region.contains('*') {
            errs.add(
                &at.field(field),
                format!("{kind} failover region {region:?} must not contain a wildcard"),
            );
        }
    }
}

/// Checks a list of localities for their form and for overlaps between them.
fn check_localities(localities: &[(Path, &str)], errs: &mut Errors) {
    let mut accepted: Vec<Vec<&str>> = Vec::new();
    for (path, locality) in localities {
        let stars = locality.matches('*').count();
        if stars > 1 || (stars == 1 && !locality.ends_with('*')) {
            errs.add(
                path,
                format!("locality {locality:?} may only have one '*', at the end"),
            );
            continue;
        }
        let parts: Vec<&str> = locality.splitn(3, '/').collect();
        if parts.iter().any(|part| part.is_empty()) {
            errs.add(
                path,
                format!("locality {locality:?} must be region[/zone[/subzone]] with no empty part"),
            );
            continue;
        }
        // `us-west/*` and `us-west` both cover everything in us-west.
        let mut scope = parts;
        if scope.last() == Some(&"*") {
            scope.pop();
        }
        let overlaps = accepted.iter().any(|other| {
            let n = other.len().min(scope.len());
            other[..n] == scope[..n]
        });
        if overlaps {
            errs.add(
                path,
                format!("locality {locality:?} overlaps a locality listed before it"),
            );
        } else {
            accepted.push(scope);
        }
    }
}

impl Validate for ConnectionPoolSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.tcp.is_none() && self.http.is_none() {
            errs.add(at, "a connection pool must set tcp or http");
        }
        self.tcp.validate(&at.field("tcp"), errs);
        self.http.validate(&at.field("http"), errs);
    }
}

impl Validate for TcpSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        non_negative(self.max_connections, &at.field("maxConnections"), errs);
        optional_duration(self.connect_timeout, &at.field("connectTimeout"), errs);
        optional_duration(
            self.max_connection_duration,
            &at.field("maxConnectionDuration"),
            errs,
        );
        // 0 turns the idle timeout off.
        optional_duration(
            self.idle_timeout.filter(|d| !d.is_zero()),
            &at.field("idleTimeout"),
            errs,
        );
        if let Some(keepalive) = &self.tcp_keepalive {
            let here = at.field("tcpKeepalive");
            optional_duration(keepalive.time, &here.field("time"), errs);
            optional_duration(keepalive.interval, &here.field("interval"), errs);
        }
    }
}

impl Validate for HttpSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        non_negative(
            self.http1_max_pending_requests,
            &at.field("http1MaxPendingRequests"),
            errs,
        );
        non_negative(self.http2_max_requests, &at.field("http2MaxRequests"), errs);
        non_negative(
            self.max_requests_per_connection,
            &at.field("maxRequestsPerConnection"),
            errs,
        );
        non_negative(self.max_retries, &at.field("maxRetries"), errs);
        non_negative(
            self.max_concurrent_streams,
            &at.field("maxConcurrentStreams"),
            errs,
        );
        optional_duration(self.idle_timeout, &at.field("idleTimeout"), errs);
        if self.use_client_protocol && self.h2_upgrade_policy == H2UpgradePolicy::Upgrade {
            errs.add(
                &at.field("useClientProtocol"),
                "useClientProtocol cannot be true when h2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(keepalive) = &self.http2_keep_alive {
            let here = at.field("http2KeepAlive");
            for (field, value) in [
                ("interval", keepalive.interval),
                ("timeout", keepalive.timeout),
            ] {
                match value {
                    Some(duration) => {
                        errs.check(&here.field(field), validate::duration_ms(duration))
                    }
                    None => errs.add(&here.field(field), format!("http2KeepAlive needs {field}")),
                }
            }
        }
    }
}

fn non_negative(value: Option<i32>, at: &Path, errs: &mut Errors) {
    if let Some(value) = value.filter(|v| *v < 0) {
        errs.add(
            at,
            format!("{value} is negative; the limit must be 0 or more"),
        );
    }
}

fn optional_duration(value: Option<Duration>, at: &Path, errs: &mut Errors) {
    if let Some(value) = value {
        errs.check(at, validate::duration_ms(value));
    }
}

impl Validate for OutlierDetection {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(count) = self.consecutive_errors.filter(|c| *c < 0) {
            errs.add(
                &at.field("consecutiveErrors"),
                format!("consecutiveErrors {count} must be 0 or more"),
            );
        }
        if !self.split_external_local_origin_errors
            && self.consecutive_local_origin_failures.unwrap_or(0) > 0
        {
            errs.add(
                &at.field("consecutiveLocalOriginFailures"),
                "consecutiveLocalOriginFailures only applies when splitExternalLocalOriginErrors is true",
            );
        }
        optional_duration(self.interval, &at.field("interval"), errs);
        optional_duration(self.base_ejection_time, &at.field("baseEjectionTime"), errs);
        for (field, value) in [
            ("maxEjectionPercent", self.max_ejection_percent),
            ("minHealthPercent", self.min_health_percent),
        ] {
            if let Some(value) = value.filter(|v| !(0..=100).contains(v)) {
                errs.add(
                    &at.field(field),
                    format!("{field} {value} must be between 0 and 100"),
                );
            }
        }
        for (i, code) in self.outlier_detection_http_error_codes.iter().enumerate() {
            if !(100..=599).contains(code) {
                errs.add(
                    &at.field("outlierDetectionHttpErrorCodes").index(i),
                    format!("{code} is not an HTTP status code (100-599)"),
                );
            }
        }
    }
}

impl Validate for ClientTlsSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let files = [
            ("clientCertificate", &self.client_certificate),
            ("privateKey", &self.private_key),
            ("caCertificates", &self.ca_certificates),
            ("caCrl", &self.ca_crl),
        ];
        let set_files = || {
            files
                .iter()
                .filter(|(_, value)| !value.is_empty())
                .map(|(field, _)| *field)
        };
        match self.mode {
            TlsMode::Simple | TlsMode::Mutual if !self.credential_name.is_empty() => {
                for field in set_files() {
                    errs.add(
                        &at.field(field),
                        format!("{field} cannot be set together with credentialName; the secret provides it"),
                    );
                }
            }
            TlsMode::Mutual => {
                for field in ["clientCertificate", "privateKey"] {
                    if set_files().all(|set| set != field) {
                        errs.add(
                            &at.field(field),
                            format!("MUTUAL mode needs {field} (or credentialName)"),
                        );
                    }
                }
            }
            TlsMode::IstioMutual => {
                for field in set_files() {
                    errs.add(
                        &at.field(field),
                        format!("{field} must be empty in ISTIO_MUTUAL mode, which uses the mesh's certificates"),
                    );
                }
            }
            TlsMode::Simple | TlsMode::Disable => {}
        }
        if self.insecure_skip_verify == Some(true) {
            let mut conflicts = vec![("caCertificates", !self.ca_certificates.is_empty())];
            if self.mode == TlsMode::Simple {
                conflicts.push(("credentialName", !self.credential_name.is_empty()));
            }
            conflicts.push(("subjectAltNames", !self.subject_alt_names.is_empty()));
            if matches!(self.mode, TlsMode::Simple | TlsMode::Mutual) {
                for (field, _) in conflicts.into_iter().filter(|(_, set)| *set) {
                    errs.add(
                        &at.field(field),
                        format!("{field} has no effect when insecureSkipVerify is true; remove one of them"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
