//! DestinationRule: what happens to traffic for a service after routing —
//! load balancing, connection pools, outlier detection, TLS origination and
//! named subsets of its endpoints.
//!
//! The traffic-policy pieces ([`ConnectionPoolSettings`] in particular) are
//! shared with [`Sidecar`](super::sidecar), whose inbound connection pools use
//! the same type and rules.
//!
//! The checks live in the private `validation` module next to this file.
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

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::{PortSelector, WorkloadSelector};
use crate::{Duration, IstioStatus};

mod validation;

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

#[cfg(test)]
mod tests;
