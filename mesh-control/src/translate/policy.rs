//! DestinationRule traffic policies: which one applies to a cluster, and
//! what it sets on the cluster (load balancing, connection pool limits,
//! outlier detection). TLS is in [`super::tls`]; consistent-hash keys go on
//! routes ([`hash_policy`]).

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlier, UpstreamConnectionOptions,
    circuit_breakers::Thresholds, cluster,
};
use envoy_types::pb::envoy::config::core::v3::{
    Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions, TcpKeepalive,
};
use envoy_types::pb::envoy::config::route::v3::route_action::{
    HashPolicy, hash_policy as envoy_hash,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use mesh_api::networking::destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, H2UpgradePolicy,
    LoadBalancerSettings, OutlierDetection, SimpleLb, TrafficPolicy,
};

use super::proto::{UNLIMITED, any, duration, seconds, u32v};

/// Istio's default connect timeout (meshConfig `connectTimeout`).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// Envoy's default ring size, which istiod writes out.
const DEFAULT_RING_SIZE: u64 = 1024;
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// The policy fields that apply to one cluster, after port-level and
/// subset settings have been merged in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

impl Policy {
    /// istiod's `MergeTrafficPolicy`: `specific` (a subset's policy, or the
    /// rule's top-level one) replaces each field of `base` it sets; then a
    /// port-level entry of `specific` for `port` replaces all four fields,
    /// unset ones included (port-level policies do not inherit).
    pub fn merge(base: &Policy, specific: Option<&TrafficPolicy>, port: u16) -> Policy {
        let Some(specific) = specific else {
            return base.clone();
        };
        let mut merged = base.clone();
        if specific.load_balancer.is_some() {
            merged.load_balancer = specific.load_balancer.clone();
        }
        if specific.connection_pool.is_some() {
            merged.connection_pool = specific.connection_pool.clone();
        }
        if specific.outlier_detection.is_some() {
            merged.outlier_detection = specific.outlier_detection.clone();
        }
        if specific.tls.is_some() {
            merged.tls = specific.tls.clone();
        }
        let port_level = specific
            .port_level_settings
            .iter()
            .find(|p| p.port.as_ref().is_some_and(|p| p.number == u32::from(port)));
        if let Some(p) = port_level {
            merged = Policy {
                load_balancer: p.load_balancer.clone(),
                connection_pool: p.connection_pool.clone(),
                outlier_detection: p.outlier_detection.clone(),
                tls: p.tls.clone(),
            };
        }
        merged
    }

    pub fn consistent_hash(&self) -> Option<&ConsistentHashLb> {
        self.load_balancer.as_ref()?.consistent_hash.as_ref()
    }

    /// `simple: PASSTHROUGH`: no balancing, the original destination.
    pub fn passthrough(&self) -> bool {
        self.load_balancer
            .as_ref()
            .is_some_and(|lb| lb.simple == Some(SimpleLb::Passthrough))
    }
}

/// Sets the load-balancing algorithm: LEAST_REQUEST unless the policy says
/// otherwise, RING_HASH or MAGLEV for consistent hashing.
pub fn apply_load_balancer(c: &mut Cluster, policy: &Policy) {
    use cluster::LbPolicy;
    let lb = policy.load_balancer.as_ref();
    if let Some(hash) = lb.and_then(|lb| lb.consistent_hash.as_ref()) {
        if let Some(maglev) = &hash.maglev {
            c.lb_policy = LbPolicy::Maglev as i32;
            c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                table_size: maglev
                    .table_size
                    .map(|value| envoy_types::pb::google::protobuf::UInt64Value { value }),
            }));
        } else {
            c.lb_policy = LbPolicy::RingHash as i32;
            let size = hash
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(hash.minimum_ring_size)
                .unwrap_or(DEFAULT_RING_SIZE);
            c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                cluster::RingHashLbConfig {
                    minimum_ring_size: Some(envoy_types::pb::google::protobuf::UInt64Value {
                        value: size,
                    }),
                    ..Default::default()
                },
            ));
        }
        return;
    }
    c.lb_policy = match lb.and_then(|lb| lb.simple) {
        Some(SimpleLb::RoundRobin) => LbPolicy::RoundRobin,
        Some(SimpleLb::Random) => LbPolicy::Random,
        Some(SimpleLb::Passthrough) => LbPolicy::ClusterProvided,
        _ => LbPolicy::LeastRequest,
    } as i32;
}

/// Circuit breakers (Istio lifts Envoy's defaults to "unlimited"), the
/// connect timeout, upstream HTTP protocol options and TCP keepalive.
pub fn apply_connection_pool(c: &mut Cluster, policy: &Policy, http2: bool) {
    let pool = policy.connection_pool.as_ref();
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let limit = |v: Option<i32>| u32v(v.filter(|v| *v > 0).map_or(UNLIMITED, |v| v as u32));
    c.connect_timeout = Some(
        tcp.and_then(|t| t.connect_timeout)
            .map(|d| duration(d.as_std()))
            .unwrap_or_else(|| seconds(DEFAULT_CONNECT_TIMEOUT_SECS)),
    );
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: limit(tcp.and_then(|t| t.max_connections)),
            max_pending_requests: limit(http.and_then(|h| h.http1_max_pending_requests)),
            max_requests: limit(http.and_then(|h| h.http2_max_requests)),
            max_retries: limit(http.and_then(|h| h.max_retries)),
            track_remaining: true,
            ..Thresholds::default()
        }],
        ..CircuitBreakers::default()
    });
    if let Some(keepalive) = tcp.and_then(|t| t.tcp_keepalive.as_ref()) {
        c.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                keepalive_probes: keepalive.probes.and_then(u32v),
                keepalive_time: keepalive
                    .time
                    .and_then(|d| u32v(d.as_std().as_secs() as u32)),
                keepalive_interval: keepalive
                    .interval
                    .and_then(|d| u32v(d.as_std().as_secs() as u32)),
            }),
            ..UpstreamConnectionOptions::default()
        });
    }
    let common = CommonHttpOptions {
        // The TCP idle timeout stands in for an unset HTTP one, as istiod has it.
        idle_timeout: http
            .and_then(|h| h.idle_timeout)
            .or_else(|| tcp.and_then(|t| t.idle_timeout))
            .map(|d| duration(d.as_std())),
        max_connection_duration: tcp
            .and_then(|t| t.max_connection_duration)
            .map(|d| duration(d.as_std())),
        max_requests_per_connection: http
            .and_then(|h| h.max_requests_per_connection)
            .filter(|n| *n > 0)
            .and_then(|n| u32v(n as u32)),
        ..CommonHttpOptions::default()
    };
    let upgrade = http.is_some_and(|h| h.h2_upgrade_policy == H2UpgradePolicy::Upgrade);
    let explicit = (http2 || upgrade).then(|| {
        use http_protocol_options::explicit_http_config::ProtocolConfig;
        http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions {
                    max_concurrent_streams: http
                        .and_then(|h| h.max_concurrent_streams)
                        .filter(|n| *n > 0)
                        .and_then(|n| u32v(n as u32)),
                    ..Http2ProtocolOptions::default()
                })),
            },
        )
    });
    if explicit.is_some() || common != CommonHttpOptions::default() {
        let options = HttpProtocolOptions {
            common_http_protocol_options: Some(common).filter(|c| *c != Default::default()),
            upstream_protocol_options: explicit,
            ..HttpProtocolOptions::default()
        };
        c.typed_extension_protocol_options
            .insert(HTTP_PROTOCOL_OPTIONS.to_owned(), any(&options));
    }
}

/// Outlier detection as istiod writes it: success-rate ejection off,
/// consecutive 5xx and gateway errors enforced at 100% when set, and
/// `minHealthPercent` as the panic threshold.
pub fn apply_outlier_detection(c: &mut Cluster, policy: &Policy) {
    let Some(outlier) = &policy.outlier_detection else {
        return;
    };
    let mut out = EnvoyOutlier {
        enforcing_success_rate: u32v(0),
        ..EnvoyOutlier::default()
    };
    if let Some(errors) = outlier.consecutive_errors.filter(|e| *e > 0) {
        // The deprecated field counts gateway errors only.
        out.consecutive_gateway_failure = u32v(errors as u32);
        out.enforcing_consecutive_gateway_failure = u32v(100);
        out.enforcing_consecutive_5xx = u32v(0);
    }
    if let Some(errors) = outlier.consecutive_5xx_errors {
        out.consecutive_5xx = u32v(errors);
        out.enforcing_consecutive_5xx = u32v(if errors > 0 { 100 } else { 0 });
    }
    if let Some(errors) = outlier.consecutive_gateway_errors {
        out.consecutive_gateway_failure = u32v(errors);
        out.enforcing_consecutive_gateway_failure = u32v(if errors > 0 { 100 } else { 0 });
    }
    out.interval = outlier.interval.map(|d| duration(d.as_std()));
    out.base_ejection_time = outlier.base_ejection_time.map(|d| duration(d.as_std()));
    if let Some(max) = outlier.max_ejection_percent.filter(|m| *m > 0) {
        out.max_ejection_percent = u32v(max as u32);
    }
    c.outlier_detection = Some(out);
    let min_health = outlier.min_health_percent.unwrap_or(0).max(0);
    c.common_lb_config
        .get_or_insert_with(Default::default)
        .healthy_panic_threshold = Some(Percent {
        value: f64::from(min_health),
    });
}

/// The route `hash_policy` a consistent-hash load balancer needs.
pub fn hash_policy(hash: &ConsistentHashLb) -> Option<HashPolicy> {
    use envoy_hash::PolicySpecifier;
    let specifier = if let Some(header) = &hash.http_header_name {
        PolicySpecifier::Header(envoy_hash::Header {
            header_name: header.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &hash.http_cookie {
        PolicySpecifier::Cookie(envoy_hash::Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl.map(|d| duration(d.as_std())),
            attributes: cookie
                .attributes
                .iter()
                .map(|a| envoy_hash::CookieAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })
                .collect(),
        })
    } else if hash.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(envoy_hash::ConnectionProperties { source_ip: true })
    } else if let Some(name) = &hash.http_query_parameter_name {
        PolicySpecifier::QueryParameter(envoy_hash::QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    })
}

/// Whether retries should avoid hosts already tried: not under
/// consistent hashing, where the hash picks the host.
pub fn retry_other_hosts(policy: &Policy) -> bool {
    policy.consistent_hash().is_none()
}
