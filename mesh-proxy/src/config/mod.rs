//! The proxy's runtime tables, compiled from Envoy xDS resources.
//!
//! Config arrives as Envoy v3 resources: a bootstrap file, and over ADS
//! (see [`crate::xds`]) what the control plane sends, compiled as a whole
//! with the bootstrap's static resources by [`Config::from_resources`].
//! It is checked and turned into these plain types once, off the data path;
//! anything outside the supported subset is refused with an error that names
//! the resource and the field, which is what an xDS NACK carries.
//!
//! # Supported subset
//! - Bootstrap: `static_resources.listeners`, `static_resources.clusters`,
//!   `static_resources.secrets` (`tls_certificate` or `validation_context`),
//!   `admin.address`, `node`; `dynamic_resources` with `ads_config`
//!   (`api_type: GRPC`, one `envoy_grpc` service naming a static cluster,
//!   reached in plain text at its first endpoint) and `cds_config` /
//!   `lds_config` set to `ads`.
//! - xDS: Listener, RouteConfiguration, Cluster, ClusterLoadAssignment and
//!   Secret over ADS, state of the world. A dynamic resource may not reuse a
//!   static one's name. Routes and `tcp_proxy` may name clusters that do not
//!   exist (yet): such requests get a 503 and such connections are closed,
//!   as in Envoy; a static bootstrap refuses them.
//! - Listener: a socket address, `bind_to_port`, `use_original_dst` (the
//!   connection goes to the listener bound to its original destination, by
//!   address then by port, as Istio's `virtualOutbound` needs); filter chains
//!   chosen by `destination_port`, `prefix_ranges`, `server_names` (exact or
//!   `*.suffix`), `transport_protocol` and `application_protocols`, ranked
//!   in that order as Envoy ranks them, plus `default_filter_chain`; the SNI
//!   and ALPN come from the ClientHello, peeked (not read) whenever a chain
//!   matches on them, and a ClientHello over 16 KiB or slower than 5 s
//!   closes the connection; a plaintext connection offers `http/1.1` or
//!   `h2c` when it starts with an HTTP/1 request line or the HTTP/2 preface
//!   (Envoy's HTTP inspector). Listener filters
//!   `original_dst`, `tls_inspector`, `http_inspector`. Each chain holds one
//!   `envoy.filters.network.http_connection_manager` (inline `route_config`,
//!   `upgrade_configs` for WebSocket, `request_headers_timeout`,
//!   `common_http_protocol_options` `idle_timeout` (1 h by default) and
//!   `max_connection_duration` for client connections, which then drain,
//!   `max_request_headers_kb`, `access_log` to a file, stdout or stderr in
//!   Envoy's text or JSON formats (`%DYNAMIC_METADATA(ns:key)%` included);
//!   routes inline in `route_config`, or over
//!   xDS by `rds.route_config_name` with `config_source: ads`; a config is
//!   not served until every route configuration it names has arrived) or
//!   `envoy.filters.network.tcp_proxy` (a `cluster`, or `weighted_clusters`
//!   chosen per connection), after any network RBAC and `ext_authz`
//!   filters.
//! - Routes: virtual hosts by domain (exact, `*.suffix`, `prefix*`, `*`);
//!   matches on path prefix, exact path and safe regex, headers (exact,
//!   prefix, suffix, contains, regex, present, with `invert_match`);
//!   query parameters, pseudo-headers (`:method`, `:path`, `:authority`);
//!   actions: `cluster`, `weighted_clusters`, `direct_response`, `redirect`;
//!   `timeout`, `prefix_rewrite`, `regex_rewrite`, `host_rewrite_literal`, `retry_policy`
//!   (see [`RetryPolicy`]), `request_mirror_policies`; request and response
//!   header additions and removals at route, virtual host and route
//!   configuration level (literal values only).
//! - CORS: `envoy.filters.http.cors` before the router, with each route's
//!   `CorsPolicy` in `typed_per_filter_config` (origins by string match,
//!   methods, headers, exposed headers, max age, credentials,
//!   `forward_not_matching_preflights`).
//! - RBAC: `envoy.filters.http.rbac` among the HTTP filters (a refused
//!   request gets 403 `RBAC: access denied`, flag `RBAC`,
//!   `envoy_http_rbac_denied`) and `envoy.filters.network.rbac` ahead of a
//!   chain's terminal filter (a refused connection is closed); ALLOW, DENY
//!   and LOG rules (LOG sets `envoy.common` `access_log_hint`) on methods,
//!   paths, headers, ports, SNI, the client certificate's URI SAN,
//!   addresses and dynamic metadata; `shadow_rules`, evaluated into the
//!   dynamic metadata with `shadow_rules_stat_prefix`; see
//!   [`rbac`](self::rbac) for the subset.
//! - External authorization: `envoy.filters.http.ext_authz` (gRPC
//!   `Authorization/Check` or a plain HTTP authorizer, `filter_enabled_metadata`,
//!   `failure_mode_allow`, `status_on_error`, `with_request_body`; a denied
//!   request gets the authorizer's answer, flag `UAEX`,
//!   `envoy_http_ext_authz_*` counters) and `envoy.filters.network.ext_authz`
//!   (gRPC; a denied connection is closed) among the RBAC filters; see
//!   [`ext_authz`](self::ext_authz) for the subset. The HTTP filters before
//!   the router that decide access (`jwt_authn`, RBAC, `ext_authz`) run in
//!   their order, each seeing the metadata the earlier ones left, as in
//!   Envoy.
//! - JWT: `envoy.filters.http.jwt_authn` (see [`jwt`]): providers with `issuer`, `audiences`, `local_jwks`
//!   (`inline_string`, `inline_bytes`, `filename`), `from_headers`,
//!   `from_params`, `from_cookies`, `forward`, `forward_payload_header`,
//!   `pad_forward_payload_header`, `payload_in_metadata` with
//!   `normalize_payload_in_metadata`, `claim_to_headers` (`claim_name`),
//!   `clock_skew_seconds` (default 60), `require_expiration`;
//!   `rules` by route match with `requires` or `requirement_name`
//!   (`requirement_map`): `provider_name`, `provider_and_audiences`,
//!   `requires_any`, `requires_all`, `allow_missing`,
//!   `allow_missing_or_failed`; `bypass_cors_preflight`,
//!   `strip_failure_response`. A refused request gets 401 with Envoy's
//!   reason (`Jwt is expired`, `Jwt verification fails`, ...) and a
//!   `www-authenticate` challenge. Refused: `remote_jwks`, `subjects`,
//!   `max_lifetime`, `header_in_metadata`, `failed_status_in_metadata`,
//!   `claim_path`, `extract_only_without_validation`,
//!   `filter_state_rules`; per-route `PerRouteConfig` is not read.
//! - `forward_client_cert_details` (all modes) with
//!   `set_current_client_cert_details` (`subject`, `cert`, `chain`, `dns`,
//!   `uri`), as Envoy writes `x-forwarded-client-cert`: `SANITIZE` removes
//!   the header; `FORWARD_ONLY` keeps it on mTLS connections;
//!   `APPEND_FORWARD` and `SANITIZE_SET` append or set, on mTLS
//!   connections, the element
//!   `By=<own URI SAN>;Hash=<hex SHA-256 of the client's certificate>;
//!   Cert="...";Chain="...";Subject="...";URI=...;DNS=...` (`By` once per
//!   URI SAN of the certificate this chain presents; the details asked for,
//!   in that order; `Cert` and `Chain` URL-encoded PEM; `Subject` in RFC
//!   2253 form as OpenSSL prints it, always quoted; other values quoted
//!   only when they hold `,`, `;`, `=` or `"`); all but
//!   `ALWAYS_FORWARD_ONLY` remove the header on connections without a
//!   client certificate. The element is made once per connection.
//! - Faults: `envoy.filters.http.fault` before the router, overridden per route
//!   in `typed_per_filter_config`: `delay.fixed_delay`, `abort.http_status`,
//!   `abort.grpc_status`, each with `percentage` (unset is 0%, as in Envoy).
//! - TLS (`envoy.transport_sockets.tls`, rustls with the ring provider): a
//!   cluster's `transport_socket` (`UpstreamTlsContext`: `sni`, and the
//!   common context below) or, per endpoint, the first of its
//!   `transport_socket_matches` whose `match` equals the endpoint's
//!   `envoy.transport_socket_match` metadata (Istio's `tlsMode`), with
//!   `envoy.transport_sockets.raw_buffer` for plain TCP. A failed handshake
//!   is a connect failure (`UF`, `retry_on: connect-failure`,
//!   `upstream_cx_connect_fail`, `ssl.*` cluster stats), within
//!   `connect_timeout`. A filter chain's `transport_socket`
//!   (`DownstreamTlsContext`: a server certificate, `require_client_certificate`)
//!   terminates TLS; when ALPN picks `h2` the connection speaks HTTP/2, and
//!   the client certificate's URI SAN is known to access logs
//!   (`%DOWNSTREAM_PEER_URI_SAN%`). Common context: one certificate in
//!   `tls_certificates` or `tls_certificate_sds_secret_configs`;
//!   `alpn_protocols`; `validation_context`,
//!   `validation_context_sds_secret_config` or `combined_validation_context`
//!   (the secret merged into the default, as Envoy merges them) with
//!   `trusted_ca` and `match_typed_subject_alt_names` (`DNS` and `URI`;
//!   exact, prefix, suffix, contains, regex) or the deprecated
//!   `match_subject_alt_names` (DNS and URI names); `tls_params` versions
//!   (1.2 and 1.3 only; both allowed by default on either side) and TLS 1.2
//!   `cipher_suites` by OpenSSL name. Certificates and keys come from
//!   `filename`, `inline_string`, `inline_bytes` or `environment_variable`.
//!   SDS references are resolved by name against the static secrets and,
//!   with xDS, the secrets received over ADS (whatever the `sds_config`
//!   says); a TLS context waits for a secret not received yet. With
//!   `--ca-address`, `default` and `ROOTCA` not defined by either come from
//!   the workload certificate the proxy gets from the mesh's CA, and config
//!   naming them waits for the first certificate (see [`crate::identity`]).
//!   As in Envoy, the peer chain is
//!   checked against `trusted_ca`, the SAN matchers replace any hostname
//!   check, and without a validation context the peer certificate is not
//!   checked at all: such upstream TLS encrypts but does not authenticate.
//!   Active health checks still connect in plain text.
//! - Clusters: STATIC endpoints from `load_assignment`, or (over xDS) EDS
//!   with `eds_cluster_config` (`eds_config: ads`; endpoints published
//!   under `service_name`, else the cluster's name), or STRICT_DNS and
//!   LOGICAL_DNS (host names looked up, see [`crate::dns`]), with weights;
//!   or ORIGINAL_DST with CLUSTER_PROVIDED (each request to its restored
//!   original destination; `original_dst_lb_config.use_http_header`,
//!   `http_header_name`, `upstream_port_override`);
//!   `upstream_bind_config.source_address`;
//!   `ROUND_ROBIN`, `LEAST_REQUEST`, `RANDOM`, `RING_HASH`
//!   (`ring_hash_lb_config` sizes; `XX_HASH` only) and `MAGLEV`
//!   (`maglev_lb_config.table_size`, a prime); `connect_timeout`.
//! - Upstream HTTP connections: HTTP/1.1, or HTTP/2 by
//!   `typed_extension_protocol_options` (`HttpProtocolOptions` with
//!   `explicit_http_config`) or the deprecated `http2_protocol_options`.
//!   `common_http_protocol_options`: `idle_timeout` (default 1 h, 0 turns
//!   it off), `max_requests_per_connection` (also the deprecated cluster
//!   field) and `max_connection_duration`; the others are refused. See
//!   `crate::upstream::Pool`.
//! - Priorities and localities: each locality's `priority`, with Envoy's
//!   priority load, spill-over and panic across levels, scaled by
//!   `load_assignment.policy.overprovisioning_factor` (default 140);
//!   `common_lb_config.locality_weighted_lb_config` picks a locality of the
//!   level by its `load_balancing_weight` times its availability first
//!   (not for `RING_HASH` and `MAGLEV`, which hash over the whole level). A
//!   locality appears once per priority. Refused:
//!   `common_lb_config.zone_aware_lb_config`, `policy.drop_overloads`,
//!   `policy.weighted_priority_health`, endpoints outside `lb_endpoints`
//!   (LEDS); `policy.endpoint_stale_after` is ignored. See
//!   [`crate::lb`].
//! - Consistent hashing: a route's `hash_policy` (`header`, `cookie` with
//!   `ttl`, `path` and `attributes`, `connection_properties.source_ip`,
//!   `query_parameter`; `terminal`), used by `RING_HASH` and `MAGLEV`
//!   clusters; see [`HashPolicy`].
//! - Outlier detection: a cluster's `outlier_detection` by consecutive 5xx
//!   and gateway failures; see [`OutlierDetection`] for the fields.
//! - Endpoint health: `health_status` (`UNHEALTHY`, `DRAINING` and `TIMEOUT`
//!   are not used, `DEGRADED` ones take the load that healthy ones cannot),
//!   `locality`, `health_check_config` (`port_value`,
//!   `hostname`, `disable_active_health_check`);
//!   `common_lb_config.healthy_panic_threshold` (default 50%).
//! - Istio telemetry (see [`crate::telemetry`]): the bootstrap `node` (id and
//!   Istio's metadata: `NAME`, `NAMESPACE`, `WORKLOAD_NAME`, `CLUSTER_ID`,
//!   `SERVICE_ACCOUNT`, `LABELS`); a listener's `traffic_direction`; a
//!   cluster's `metadata.filter_metadata.istio.services`; the HTTP filters
//!   `istio.metadata_exchange` (a `TypedStruct` of
//!   `io.istio.http.peer_metadata.Config`: `istio_headers` discovery and
//!   propagation, downstream and upstream; `workload_discovery` finds
//!   nothing, as outside ambient mode) and `istio.stats`
//!   (`stats.PluginConfig`: `reporter`, `disable_host_header_fallback`,
//!   `metrics` overrides that drop metrics or remove labels; CEL
//!   `dimensions` and custom `definitions` are refused), also as a network
//!   filter in front of `tcp_proxy`.
//! - Tracing: a connection manager's `tracing` with the
//!   `envoy.tracers.opentelemetry` provider (`OpenTelemetryConfig`:
//!   `service_name`, `grpc_service.envoy_grpc.cluster_name`, a cluster the
//!   spans are exported to over OTLP/gRPC), `random_sampling`,
//!   `client_sampling`, `overall_sampling`, `max_path_tag_length`,
//!   `spawn_upstream_span`, `custom_tags` (literal, environment, request
//!   header; metadata tags only ever write their default: tags do not
//!   read the dynamic metadata); a route's `decorator.operation` names
//!   the span. Other tracers, OTLP over HTTP, `google_grpc`, samplers,
//!   resource detectors, formatted tags and `operation` formats are
//!   refused; without a provider there are no spans. Context is read from
//!   W3C `traceparent` or B3 and written in both; see
//!   [`crate::telemetry::spans`].
//! - Active health checking: one of a cluster's `health_checks`, HTTP or
//!   connect-only TCP; see [`HealthCheck`]. Unlike Envoy, start-up does not
//!   wait for the first round of checks: endpoints count as healthy until
//!   their first check says otherwise.

mod access_log;
mod bootstrap;
mod cluster;
mod cors;
mod dns;
mod ext_authz;
mod fault;
mod grpc_service;
mod hash_policy;
mod headers;
mod health;
mod istio;
pub mod jwt;
mod lb_policy;
mod listener;
mod load_assignment;
mod metadata;
mod outlier;
mod rbac;
mod resources;
mod retry;
mod route;
mod tls;
mod tracing;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, StatusCode};
use regex::Regex;

pub use access_log::{AccessLogConfig, LogFormat, LogSink, Operator, Token};
pub use bootstrap::read_bootstrap;
pub use cors::CorsPolicy;
pub use ext_authz::{
    AuthzService, BodyBuffer, ExtAuthz, HttpService, NameMatch, NetworkExtAuthz, any_matches,
};
pub use fault::{AbortStatus, Fault, FaultAbort, FaultDelay};
pub use hash_policy::{CookieKey, HashKey, HashPolicy, HeaderSource};
pub use headers::{AppendAction, HeaderAdd, HeaderMutations};
pub use health::{
    DEFAULT_PANIC_THRESHOLD, EndpointHealthCheck, HealthCheck, HealthCheckKind, HealthStatus,
    HttpHealthCheck, Locality,
};
pub use istio::{MetricOverride, NodeInfo, PeerExchange, ServiceRef, StatsConfig};
pub use jwt::JwtAuthn;
pub use lb_policy::{Maglev, RingHash};
pub use load_assignment::DEFAULT_OVERPROVISIONING_FACTOR;
pub use metadata::DynamicMetadata;
pub use outlier::OutlierDetection;
pub use rbac::{
    ACCESS_LOG_HINT, COMMON_METADATA, Decision, Facts, HTTP_METADATA, NETWORK_METADATA, Rbac,
};
pub use resources::{
    Compiled, Fingerprint, Fingerprints, References, Resources, admin_address, node_info,
};
pub use retry::{GRPC_RETRY_STATUSES, RetryOn, RetryPolicy};
pub use tls::TransportSocketMatch;
pub use tracing::{CustomTag, TagValue, Tracing};

/// Everything the proxy runs, compiled and checked.
#[derive(Debug)]
pub struct Config {
    pub listeners: Vec<Listener>,
    pub clusters: BTreeMap<String, Arc<Cluster>>,
    pub admin: Option<SocketAddr>,
    /// The local workload, as Istio's node metadata describes it.
    pub node: Arc<NodeInfo>,
    /// What each listener and cluster was compiled from, in short.
    pub fingerprints: Fingerprints,
}

#[derive(Debug)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// False for listeners that only receive connections handed over by a
    /// `use_original_dst` listener (Istio's per-port outbound listeners).
    pub bind_to_port: bool,
    /// Hand each connection to the listener of its original destination
    /// (before an iptables redirect), if there is one.
    pub use_original_dst: bool,
    /// Restore each connection's original destination as its local
    /// address: `use_original_dst`, or the `original_dst` listener filter
    /// (Istio's `virtualInbound`).
    pub restores_original_dst: bool,
    /// Istio marks sidecar listeners inbound or outbound; metrics follow it.
    pub direction: TrafficDirection,
    pub chains: Vec<FilterChain>,
    pub default_chain: Option<FilterChain>,
}

/// A listener's `traffic_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrafficDirection {
    Unspecified,
    Inbound,
    Outbound,
}

/// What a listener does with the connections its match selects.
#[derive(Debug)]
pub struct FilterChain {
    pub name: String,
    pub matcher: ChainMatch,
    pub kind: ListenerKind,
    /// The chain terminates TLS (`transport_socket`).
    pub tls: Option<crate::tls::ServerTls>,
    /// Network RBAC and `ext_authz` filters ahead of the terminal filter.
    pub access: Arc<[ConnectionAccess]>,
}

/// A network filter that decides whether a connection goes on; each in
/// its order must let it through.
#[derive(Debug)]
pub enum ConnectionAccess {
    Rbac(Rbac),
    ExtAuthz(NetworkExtAuthz),
}

/// An HTTP filter before the router that decides whether a request goes
/// on; each in its order must let it through.
#[derive(Debug)]
pub enum HttpAccess {
    Jwt(JwtAuthn),
    Rbac(Rbac),
    ExtAuthz(ExtAuthz),
}

/// Which connections a filter chain takes; unset fields match anything.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChainMatch {
    pub destination_port: Option<u16>,
    pub prefix_ranges: Vec<CidrRange>,
    /// SNI names, lowercased: exact, or `*.suffix` for any subdomain.
    pub server_names: Vec<String>,
    pub transport: Option<Transport>,
    /// Any of the client's ALPN protocols must be one of these.
    pub application_protocols: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidrRange {
    pub ip: std::net::IpAddr,
    pub len: u8,
}

impl CidrRange {
    /// Whether `ip` is in the range; an address of the other family never is.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        match (self.ip, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What the first bytes of a connection look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Raw,
    Tls,
}

#[derive(Debug)]
pub enum ListenerKind {
    Http(Arc<HttpManager>),
    Tcp(TcpProxy),
}

/// What `envoy.filters.network.tcp_proxy` does: copy bytes to a cluster.
#[derive(Debug)]
pub struct TcpProxy {
    pub stat_prefix: String,
    /// Clusters with their weights; one connection goes to one of them.
    pub clusters: Vec<(String, u32)>,
    /// Istio's standard TCP metrics (`istio.stats` before `tcp_proxy`).
    pub stats: Option<StatsConfig>,
    /// Closed after `idle_timeout` (1 h by default, as in Envoy) with no
    /// bytes either way, and `max_downstream_connection_duration` after it
    /// was accepted, whatever it is doing.
    pub connections: ClientConnections,
}

/// What `envoy.filters.network.http_connection_manager` does.
#[derive(Debug)]
pub struct HttpManager {
    pub stat_prefix: String,
    pub routes: RouteTable,
    /// The fault filter's own config; `None` without the filter.
    pub fault: Option<Fault>,
    /// `upgrade_configs` allows `websocket`.
    pub websocket: bool,
    /// The CORS filter is in the filter list, so routes' CORS policies apply.
    pub cors: bool,
    /// Istio's standard metrics (`istio.stats`).
    pub stats: Option<StatsConfig>,
    /// Peer metadata headers (`istio.metadata_exchange`).
    pub peer_exchange: PeerExchange,
    pub access_logs: Vec<AccessLogConfig>,
    /// How long a client may take to send its request headers; none by
    /// default, as in Envoy. hyper also counts a kept-alive connection's
    /// wait for its next request, so a default bound would close idle
    /// connections that Envoy keeps, and costs a timer per request.
    pub request_headers_timeout: Option<Duration>,
    /// The most request header bytes accepted (`max_request_headers_kb`).
    pub max_request_headers: usize,
    /// Drained after `common_http_protocol_options.idle_timeout` (1 h by
    /// default, as in Envoy) without a request, and after its
    /// `max_connection_duration`.
    pub connections: ClientConnections,
    /// `jwt_authn`, RBAC and `ext_authz` filters, in their order.
    pub access: Vec<HttpAccess>,
    /// What happens to `x-forwarded-client-cert`.
    pub client_cert: ClientCertHeader,
    /// Spans for sampled requests, when a tracer is configured.
    pub tracing: Option<Arc<Tracing>>,
}

/// `forward_client_cert_details` and `set_current_client_cert_details`:
/// what a request's `x-forwarded-client-cert` header becomes on its way to
/// the upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCertHeader {
    pub mode: ForwardClientCert,
    pub details: ClientCertDetails,
}

impl ClientCertHeader {
    /// Whether this proxy writes an element of its own (on mTLS connections).
    pub fn writes_element(&self) -> bool {
        matches!(
            self.mode,
            ForwardClientCert::AppendForward | ForwardClientCert::SanitizeSet
        )
    }
}

/// `forward_client_cert_details`: what happens to the header a client sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardClientCert {
    /// Removed (Envoy's default).
    #[default]
    Sanitize,
    /// Kept on mTLS connections, removed on others.
    ForwardOnly,
    /// On mTLS connections, this proxy's element appended; removed on others.
    AppendForward,
    /// On mTLS connections, replaced by this proxy's element; removed on others.
    SanitizeSet,
    /// Kept, whatever the connection.
    AlwaysForwardOnly,
}

/// `set_current_client_cert_details`: what this proxy's element tells of
/// the client's certificate besides its hash (`Hash`) and this proxy's own
/// URI SAN (`By`), which are always written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCertDetails {
    /// `Subject="..."`, RFC 2253.
    pub subject: bool,
    /// `Cert="..."`, the leaf as URL-encoded PEM.
    pub cert: bool,
    /// `Chain="..."`, every certificate the client sent as URL-encoded PEM.
    pub chain: bool,
    /// `DNS=...`, one per DNS SAN.
    pub dns: bool,
    /// `URI=...`, one per URI SAN (an empty `URI=` without one).
    pub uri: bool,
}

#[derive(Debug, Default)]
pub struct RouteTable {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    pub headers: HeaderMutations,
    /// The virtual hosts by domain, for lookups that do not scan them all.
    pub domains: DomainIndex,
}

impl RouteTable {
    pub fn new(name: String, virtual_hosts: Vec<VirtualHost>, headers: HeaderMutations) -> Self {
        RouteTable {
            domains: DomainIndex::new(&virtual_hosts),
            name,
            virtual_hosts,
            headers,
        }
    }
}

/// Indexes of virtual hosts in Envoy's order of preference: exact domains,
/// then the longest `*.suffix`, then the longest `prefix.*`, then `*`. For
/// equally good domains the first virtual host wins.
#[derive(Debug, Default)]
pub struct DomainIndex {
    pub exact: std::collections::HashMap<String, usize>,
    /// Longest first.
    pub suffixes: Vec<(String, usize)>,
    /// Longest first.
    pub prefixes: Vec<(String, usize)>,
    pub any: Option<usize>,
}

impl DomainIndex {
    fn new(virtual_hosts: &[VirtualHost]) -> DomainIndex {
        let mut index = DomainIndex::default();
        for (i, vhost) in virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                match domain {
                    Domain::Exact(d) => {
                        index.exact.entry(d.clone()).or_insert(i);
                    }
                    Domain::Suffix(s) => index.suffixes.push((s.clone(), i)),
                    Domain::Prefix(p) => index.prefixes.push((p.clone(), i)),
                    Domain::Any => {
                        index.any.get_or_insert(i);
                    }
                }
            }
        }
        // Stable: among equal lengths the earlier virtual host stays first.
        index
            .suffixes
            .sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        index
            .prefixes
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        index
    }

    /// The index of the best virtual host for a lower-case host without port.
    pub fn find(&self, host: &str) -> Option<usize> {
        if let Some(i) = self.exact.get(host) {
            return Some(*i);
        }
        let suffix = self
            .suffixes
            .iter()
            .find(|(s, _)| host.len() > s.len() && host.ends_with(s.as_str()));
        let prefix = || {
            self.prefixes
                .iter()
                .find(|(p, _)| host.len() > p.len() && host.starts_with(p.as_str()))
        };
        suffix.or_else(prefix).map(|(_, i)| *i).or(self.any)
    }
}

#[derive(Debug)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<Domain>,
    pub routes: Vec<Route>,
    pub headers: HeaderMutations,
}

/// A virtual host domain pattern, as Envoy ranks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    Exact(String),
    /// `*.example.com`: the stored suffix includes the dot.
    Suffix(String),
    /// `api.*`: the stored prefix includes the dot.
    Prefix(String),
    Any,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// `decorator.operation`: the name of the request's span.
    pub operation: Option<Arc<str>>,
    pub matcher: RouteMatch,
    pub action: Action,
    /// Overrides the fault filter's config for this route.
    pub fault: Option<Fault>,
    pub cors: Option<CorsPolicy>,
    pub headers: HeaderMutations,
}

#[derive(Debug)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatch>,
    pub query_parameters: Vec<QueryMatch>,
}

/// A query parameter that must be present, or match.
#[derive(Debug)]
pub struct QueryMatch {
    pub name: String,
    pub value: ValueMatch,
}

#[derive(Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    Regex(Regex),
}

#[derive(Debug)]
pub struct HeaderMatch {
    pub name: HeaderKey,
    pub value: ValueMatch,
    pub invert: bool,
}

/// A header, or one of HTTP/2's pseudo-headers, which Envoy matches like headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderKey {
    Method,
    Path,
    Authority,
    Scheme,
    Regular(HeaderName),
}

#[derive(Debug)]
pub enum ValueMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
    /// Present (true) or absent (false).
    Present(bool),
}

#[derive(Debug)]
pub enum Action {
    Forward(Box<Forward>),
    DirectResponse { status: StatusCode, body: Bytes },
    Redirect(Redirect),
}

/// Send the request to one of the clusters.
#[derive(Debug)]
pub struct Forward {
    /// Clusters with their weights; one entry for a plain `cluster`.
    pub clusters: Vec<(String, u32)>,
    /// How long a request may wait for its response.
    pub timeout: RequestTimeout,
    pub prefix_rewrite: Option<String>,
    /// `regex_rewrite`: the path's matches of the regex are replaced.
    pub regex_rewrite: Option<RegexRewrite>,
    pub host_rewrite: Option<String>,
    pub retry: Option<RetryPolicy>,
    pub mirrors: Vec<Mirror>,
    /// What to hash for `RING_HASH` and `MAGLEV` clusters.
    pub hash_policy: Vec<HashPolicy>,
}

/// How long a forwarded request may wait for its response headers, in
/// either of Envoy's two models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestTimeout {
    /// The router's `timeout` (15 s by default; `None`: no limit). With
    /// `max_grpc_timeout` (istiod's choice for sidecars), a gRPC request's
    /// `grpc-timeout` header sets it instead. Expiry is a 504 "upstream
    /// request timeout" (`UT`).
    Router {
        timeout: Option<Duration>,
        grpc: Option<GrpcTimeout>,
    },
    /// `max_stream_duration` on the route (Envoy's newer model, where the
    /// route's `timeout` is not used): its `max_stream_duration`, or with
    /// `grpc_timeout_header_max` a gRPC request's `grpc-timeout`. Expiry is
    /// a 504 "downstream duration timeout", DEADLINE_EXCEEDED for gRPC.
    Stream {
        max: Option<Duration>,
        grpc: Option<GrpcTimeout>,
    },
}

/// How a gRPC request's `grpc-timeout` header becomes its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeout {
    /// The largest timeout the header may set; `None`: any.
    pub max: Option<Duration>,
    /// Taken off the header's value, to leave the proxy time to answer.
    pub offset: Duration,
}

impl RequestTimeout {
    /// The limit for a request with these headers, and whether it is a
    /// stream duration (else the router's timeout).
    pub fn for_request(&self, headers: &http::HeaderMap) -> (Option<Duration>, bool) {
        let (configured, grpc, stream) = match *self {
            RequestTimeout::Router { timeout, grpc } => (timeout, grpc, false),
            RequestTimeout::Stream { max, grpc } => (max, grpc, true),
        };
        let limit = match grpc.filter(|_| crate::http::grpc::is_request(headers)) {
            None => configured,
            Some(grpc) => {
                // A zero deadline means none, and the offset comes off only a
                // deadline longer than it, as in Envoy.
                let asked = crate::http::grpc::timeout(headers)
                    .filter(|t| !t.is_zero())
                    .map(|t| if t > grpc.offset { t - grpc.offset } else { t });
                match (asked, grpc.max) {
                    (Some(asked), Some(max)) => Some(asked.min(max)),
                    (Some(asked), None) => Some(asked),
                    // No deadline asked: the stream's own limit; the
                    // router caps "no limit" with the gRPC maximum.
                    (None, _) if stream => configured,
                    (None, max) => max,
                }
            }
        };
        (limit, stream)
    }
}

/// A path rewrite by regex; the substitution is in the `regex` crate's
/// syntax (`${1}`), translated from Envoy's (`\1`).
#[derive(Debug)]
pub struct RegexRewrite {
    pub pattern: Regex,
    pub substitution: String,
}

/// Send a copy of some requests to another cluster and ignore its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: String,
    /// Share of requests mirrored, in millionths.
    pub per_million: u32,
    /// Append `-shadow` to the host, as Envoy does unless told not to.
    pub shadow_suffix: bool,
}

#[derive(Debug)]
pub struct Redirect {
    pub status: StatusCode,
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
}

#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub connect_timeout: Duration,
    pub lb: LbPolicy,
    pub endpoints: Vec<Endpoint>,
    /// In percent: how much a priority level's or a locality's usable share
    /// is scaled up before it counts as fully available (Envoy's 140).
    pub overprovisioning_factor: u32,
    /// Pick a locality by its weight first (`locality_weighted_lb_config`).
    pub locality_weighted: bool,
    /// Speak HTTP/2 to the endpoints (gRPC needs it).
    pub http2: bool,
    /// How long HTTP connections to the endpoints are kept.
    pub connections: HttpConnections,
    pub limits: Limits,
    pub outlier: Option<OutlierDetection>,
    /// Active health checking (`health_checks`).
    pub health_check: Option<HealthCheck>,
    /// Below this percentage of usable endpoints, all are used (0: never).
    pub healthy_panic_threshold: f64,
    /// The services the cluster stands for (`metadata.filter_metadata.istio`).
    pub services: Vec<ServiceRef>,
    /// TLS to the endpoints (`transport_socket`), unless a match says otherwise.
    pub tls: Option<Arc<crate::tls::ClientTls>>,
    pub transport_socket_matches: Vec<TransportSocketMatch>,
    /// An ORIGINAL_DST cluster: no endpoints of its own.
    pub original_dst: Option<OriginalDst>,
    /// The local address connections to the endpoints come from
    /// (`upstream_bind_config.source_address`).
    pub bind: Option<SocketAddr>,
}

/// An ORIGINAL_DST cluster (Istio's `PassthroughCluster`): a request or
/// connection goes where its client meant to connect, the destination an
/// `use_original_dst` listener restored (`original_dst_lb_config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginalDst {
    /// `use_http_header`: the header that names the destination instead
    /// (`x-envoy-original-dst-host` unless `http_header_name` says).
    pub header: Option<http::HeaderName>,
    /// `upstream_port_override`: this port instead of the destination's.
    pub port: Option<u16>,
}

impl OriginalDst {
    /// Where a request or connection goes: the header's `ip:port` when it
    /// is there, else the original destination the listener restored.
    /// `None` (no host, as in Envoy) for a header that is not an address,
    /// or a connection that was not redirected: its local address is the
    /// proxy's own, and connecting there would loop.
    pub fn target(
        &self,
        downstream: Option<crate::lb::Downstream>,
        headers: Option<&http::HeaderMap>,
    ) -> Option<SocketAddr> {
        let named = self
            .header
            .as_ref()
            .zip(headers)
            .and_then(|(name, headers)| headers.get(name));
        let mut target: SocketAddr = match named {
            Some(value) => value.to_str().ok()?.parse().ok()?,
            None => downstream.filter(|d| d.restored)?.local,
        };
        if let Some(port) = self.port {
            target.set_port(port);
        }
        Some(target)
    }
}

/// How long an HTTP connection to an endpoint is kept
/// (`common_http_protocol_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConnections {
    /// Closed after this long without a request; `None`: kept.
    pub idle_timeout: Option<Duration>,
    /// Retired after this many requests.
    pub max_requests: Option<std::num::NonZeroU32>,
    /// Retired this long after it was opened; it closes when its last
    /// request is done.
    pub max_duration: Option<Duration>,
}

impl Default for HttpConnections {
    /// Envoy's defaults: closed after an hour without requests, never retired.
    fn default() -> Self {
        HttpConnections {
            idle_timeout: Some(Duration::from_secs(3600)),
            max_requests: None,
            max_duration: None,
        }
    }
}

/// How long a client's connection to a listener may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConnections {
    /// Closed after this long with nothing in flight and nothing new.
    pub idle_timeout: Option<Duration>,
    /// Closed (HTTP: drained) this long after it was accepted.
    pub max_duration: Option<Duration>,
}

/// Circuit breakers: beyond these, requests are refused with 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for Limits {
    /// Envoy's defaults.
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash(RingHash),
    Maglev(Maglev),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    pub weight: u32,
    /// As the control plane reports it.
    pub health_status: HealthStatus,
    /// Shared by the endpoints of one locality.
    pub locality: Arc<Locality>,
    /// Its locality's priority level: 0 is tried first.
    pub priority: u32,
    /// Its locality's `load_balancing_weight`, used by locality weighted
    /// balancing (a locality without one takes no traffic then).
    pub locality_weight: Option<u32>,
    pub health_check: EndpointHealthCheck,
    /// The `envoy.transport_socket_match` metadata, for `transport_socket_matches`.
    pub transport_socket_match: BTreeMap<String, serde_json::Value>,
}

impl Endpoint {
    /// An endpoint the config does not list (an ORIGINAL_DST cluster's):
    /// weight 1, no locality, no metadata.
    pub fn at(address: SocketAddr) -> Endpoint {
        Endpoint {
            address,
            weight: 1,
            health_status: HealthStatus::Unknown,
            locality: Arc::default(),
            priority: 0,
            locality_weight: None,
            health_check: EndpointHealthCheck::default(),
            transport_socket_match: BTreeMap::new(),
        }
    }
}

/// Config the proxy refuses: which resource, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {field}: {reason}")]
pub struct ConfigError {
    /// For example `listener "ingress"` or `cluster "reviews"`.
    pub resource: String,
    /// The field path inside the resource, as Envoy's JSON names it.
    pub field: String,
    pub reason: String,
}

/// Builds [`ConfigError`]s for one resource while walking its fields.
#[derive(Debug, Clone)]
pub(crate) struct At {
    resource: Arc<str>,
    field: String,
}

impl At {
    pub(crate) fn resource(kind: &str, name: &str) -> At {
        At {
            resource: format!("{kind} {name:?}").into(),
            field: String::new(),
        }
    }

    pub(crate) fn field(&self, name: &str) -> At {
        let field = if self.field.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.field)
        };
        At {
            resource: Arc::clone(&self.resource),
            field,
        }
    }

    pub(crate) fn index(&self, index: usize) -> At {
        At {
            resource: Arc::clone(&self.resource),
            field: format!("{}[{index}]", self.field),
        }
    }

    pub(crate) fn error(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError {
            resource: self.resource.to_string(),
            field: if self.field.is_empty() {
                "-".into()
            } else {
                self.field.clone()
            },
            reason: reason.to_string(),
        }
    }

    /// The error for a field this proxy does not support.
    pub(crate) fn unsupported(&self, what: impl fmt::Display) -> ConfigError {
        self.error(format!("{what} is not supported by this proxy"))
    }

    /// Refuses the first of `fields` that is set (`(name, set)` pairs).
    pub(crate) fn refuse(&self, fields: &[(&str, bool)]) -> Result<(), ConfigError> {
        match fields.iter().find(|(_, set)| *set) {
            Some((field, _)) => Err(self.field(field).unsupported(field)),
            None => Ok(()),
        }
    }
}

/// A timeout field as Envoy reads it: `default` when unset, and zero
/// turns it off.
pub(crate) fn timeout(
    d: Option<&envoy_types::pb::google::protobuf::Duration>,
    default: Option<Duration>,
    at: &At,
) -> Result<Option<Duration>, ConfigError> {
    match d {
        Some(d) => Ok(Some(duration(d, at)?).filter(|d| !d.is_zero())),
        None => Ok(default),
    }
}

/// A protobuf duration as a std one.
pub(crate) fn duration(
    d: &envoy_types::pb::google::protobuf::Duration,
    at: &At,
) -> Result<Duration, ConfigError> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(at.error("durations must not be negative"));
    }
    Ok(Duration::new(d.seconds as u64, d.nanos as u32))
}

#[cfg(test)]
mod tests;
