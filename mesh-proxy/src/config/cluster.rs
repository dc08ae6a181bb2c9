//! Clusters and their endpoints.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as EnvoyCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions as CommonHttpProtocolOptions;
use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier as Specifier;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use prost::Message;

use super::dns::DnsCluster;
use super::load_assignment;
use super::resources::Sources;
use super::tls;
use super::{
    At, Cluster, ConfigError, HttpConnections, Limits, OriginalDst, duration, health, lb_policy,
    outlier,
};

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn compile(c: &EnvoyCluster, sources: &Sources<'_>) -> Result<Cluster, ConfigError> {
    let at = At::resource("cluster", &c.name);
    if c.name.is_empty() {
        return Err(at.field("name").error("a cluster needs a name"));
    }
    let discovery = discovery(c, &at)?;
    let original_dst = match discovery {
        Discovery::OriginalDst => Some(original_dst(c, &at)?),
        _ => None,
    };
    let assignment = match discovery {
        Discovery::Static => {
            load_assignment::compile(c.load_assignment.as_ref(), &at.field("load_assignment"))?
        }
        Discovery::Eds => {
            let name = eds_name(c).unwrap_or(&c.name);
            // Not received yet: no endpoints until it comes.
            let received = sources.assignment(name, &at.field("type"))?;
            load_assignment::compile(received, &At::resource("cluster_load_assignment", name))?
        }
        Discovery::Dns(dns) => {
            let resolved = dns.assignment(c, sources, &at)?;
            load_assignment::compile(Some(&resolved), &at.field("load_assignment"))?
        }
        Discovery::OriginalDst => load_assignment::compile(None, &at)?,
    };
    let cluster_provided = c.lb_policy == cluster::LbPolicy::ClusterProvided as i32;
    let lb = match (original_dst.is_some(), cluster_provided) {
        // Picked per request; the policy is not used.
        (true, true) => super::LbPolicy::RoundRobin,
        (true, false) => {
            return Err(at
                .field("lb_policy")
                .error("an ORIGINAL_DST cluster needs CLUSTER_PROVIDED"));
        }
        (false, true) => {
            return Err(at
                .field("lb_policy")
                .error("CLUSTER_PROVIDED is for ORIGINAL_DST clusters only"));
        }
        (false, false) => lb_policy::compile(c, &at)?,
    };
    let outlier = match &c.outlier_detection {
        Some(o) => Some(outlier::compile(o, &at.field("outlier_detection"))?),
        None => None,
    };
    let connect_timeout = match &c.connect_timeout {
        Some(d) => duration(d, &at.field("connect_timeout"))?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let secrets = &sources.secrets;
    let (http2, mut connections) = http_protocol(c, &at)?;
    #[allow(deprecated)]
    if let Some(max) = &c.max_requests_per_connection {
        connections.max_requests = connections
            .max_requests
            .or(std::num::NonZeroU32::new(max.value));
    }
    Ok(Cluster {
        name: c.name.clone(),
        connect_timeout,
        lb,
        endpoints: assignment.endpoints,
        overprovisioning_factor: assignment.overprovisioning_factor,
        locality_weighted: lb_policy::locality_weighted(c, &at)?,
        http2,
        connections,
        limits: limits(c, &at)?,
        outlier,
        health_check: health::compile(c, &at)?,
        healthy_panic_threshold: health::panic_threshold(c, &at)?,
        services: super::istio::services(c.metadata.as_ref()),
        tls: tls::cluster_transport(c, secrets, &at)?,
        transport_socket_matches: tls::socket_matches(c, secrets, &at)?,
        original_dst,
        bind: bind_address(c, &at)?,
    })
}

/// `original_dst_lb_config`: the header to read the destination from, and
/// a port to use instead of the destination's.
fn original_dst(c: &EnvoyCluster, at: &At) -> Result<OriginalDst, ConfigError> {
    let Some(cluster::LbConfig::OriginalDstLbConfig(config)) = &c.lb_config else {
        return Ok(OriginalDst::default());
    };
    let at = at.field("original_dst_lb_config");
    if config.metadata_key.is_some() {
        return Err(at.field("metadata_key").unsupported("metadata_key"));
    }
    let header = match (config.use_http_header, config.http_header_name.as_str()) {
        (false, _) => None,
        (true, "") => Some(http::HeaderName::from_static("x-envoy-original-dst-host")),
        (true, name) => Some(
            http::HeaderName::try_from(name)
                .map_err(|_| at.field("http_header_name").error("not a header name"))?,
        ),
    };
    let port = match config.upstream_port_override {
        None => None,
        Some(port) => Some(
            u16::try_from(port.value)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    at.field("upstream_port_override")
                        .error("not a port number")
                })?,
        ),
    };
    Ok(OriginalDst { header, port })
}

/// `upstream_bind_config.source_address`, the only field of it supported.
fn bind_address(c: &EnvoyCluster, at: &At) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(bind) = &c.upstream_bind_config else {
        return Ok(None);
    };
    let at = at.field("upstream_bind_config");
    let rest = envoy_types::pb::envoy::config::core::v3::BindConfig {
        source_address: None,
        ..bind.clone()
    };
    if rest != Default::default() {
        return Err(at.unsupported("fields other than source_address"));
    }
    let Some(source) = &bind.source_address else {
        return Ok(None);
    };
    let address = envoy_types::pb::envoy::config::core::v3::Address {
        address: Some(
            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(
                source.clone(),
            ),
        ),
    };
    Ok(Some(super::listener::socket_address(
        &address,
        &at.field("source_address"),
    )?))
}

/// Where a cluster's endpoints come from.
enum Discovery {
    /// Its own `load_assignment`.
    Static,
    /// A `ClusterLoadAssignment` over ADS.
    Eds,
    /// Its `load_assignment`'s host names, looked up.
    Dns(DnsCluster),
    /// None: each request's own destination.
    OriginalDst,
}

fn discovery(c: &EnvoyCluster, at: &At) -> Result<Discovery, ConfigError> {
    use cluster::DiscoveryType;
    let kind = match &c.cluster_discovery_type {
        None => return Ok(Discovery::Static),
        Some(cluster::ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t).ok(),
        Some(cluster::ClusterDiscoveryType::ClusterType(_)) => None,
    };
    match kind {
        Some(DiscoveryType::Static) => Ok(Discovery::Static),
        Some(DiscoveryType::Eds) => {
            let source = c
                .eds_cluster_config
                .as_ref()
                .and_then(|eds| eds.eds_config.as_ref());
            if let Some(source) = source
                && !matches!(source.config_source_specifier, Some(Specifier::Ads(_)))
            {
                return Err(at
                    .field("eds_cluster_config")
                    .field("eds_config")
                    .unsupported("config sources other than ads"));
            }
            Ok(Discovery::Eds)
        }
        Some(DiscoveryType::StrictDns) => Ok(Discovery::Dns(DnsCluster::compile(c, false, at)?)),
        Some(DiscoveryType::LogicalDns) => Ok(Discovery::Dns(DnsCluster::compile(c, true, at)?)),
        Some(DiscoveryType::OriginalDst) => Ok(Discovery::OriginalDst),
        None if matches!(
            c.cluster_discovery_type,
            Some(cluster::ClusterDiscoveryType::ClusterType(_))
        ) =>
        {
            Err(at.field("cluster_type").unsupported("custom cluster types"))
        }
        None => Err(at.field("type").error("unknown discovery type")),
    }
}

/// The assignment a cluster's endpoints were compiled from when it is not
/// in its definition: the EDS resource, or the host names' addresses.
pub(super) fn received_assignment(
    c: &EnvoyCluster,
    sources: &Sources<'_>,
) -> Option<ClusterLoadAssignment> {
    let at = At::resource("cluster", &c.name);
    match discovery(c, &at).ok()? {
        Discovery::Static | Discovery::OriginalDst => None,
        Discovery::Eds => sources.received(eds_name(c).unwrap_or(&c.name)).cloned(),
        Discovery::Dns(dns) => dns.assignment(c, sources, &at).ok(),
    }
}

/// The name an EDS cluster's endpoints are published under, when it is not
/// the cluster's own.
pub(super) fn eds_name(c: &EnvoyCluster) -> Option<&str> {
    c.eds_cluster_config
        .as_ref()
        .map(|eds| eds.service_name.as_str())
        .filter(|name| !name.is_empty())
}

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Whether the cluster asks for HTTP/2 (in the current or the deprecated
/// form), and how long its connections are kept.
fn http_protocol(c: &EnvoyCluster, at: &At) -> Result<(bool, HttpConnections), ConfigError> {
    #[allow(deprecated)]
    let mut http2 = c.http2_protocol_options.is_some();
    let mut connections = HttpConnections::default();
    for (key, any) in &c.typed_extension_protocol_options {
        let at = at.field("typed_extension_protocol_options").field(key);
        if key != HTTP_PROTOCOL_OPTIONS || !any.type_url.ends_with(HTTP_PROTOCOL_OPTIONS) {
            return Err(at.unsupported(format_args!("protocol options {key:?}")));
        }
        let options = HttpProtocolOptions::decode(any.value.as_slice())
            .map_err(|err| at.error(format_args!("cannot decode: {err}")))?;
        if let Some(common) = &options.common_http_protocol_options {
            connections = http_connections(common, &at.field("common_http_protocol_options"))?;
        }
        use http_protocol_options::UpstreamProtocolOptions;
        use http_protocol_options::explicit_http_config::ProtocolConfig;
        http2 = match options.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) => {
                match explicit.protocol_config {
                    Some(ProtocolConfig::Http2ProtocolOptions(_)) => true,
                    Some(ProtocolConfig::HttpProtocolOptions(_)) | None => false,
                    Some(ProtocolConfig::Http3ProtocolOptions(_)) => {
                        return Err(at.field("explicit_http_config").unsupported("HTTP/3"));
                    }
                }
            }
            Some(_) => return Err(at.unsupported("anything but explicit_http_config")),
            None => http2,
        };
    }
    Ok((http2, connections))
}

/// `idle_timeout` (0 turns it off), `max_requests_per_connection` and
/// `max_connection_duration`; the other common options are refused.
fn http_connections(
    common: &CommonHttpProtocolOptions,
    at: &At,
) -> Result<HttpConnections, ConfigError> {
    let unsupported = [
        ("max_headers_count", common.max_headers_count.is_some()),
        (
            "max_response_headers_kb",
            common.max_response_headers_kb.is_some(),
        ),
        ("max_stream_duration", common.max_stream_duration.is_some()),
        (
            "headers_with_underscores_action",
            common.headers_with_underscores_action != 0,
        ),
    ];
    at.refuse(&unsupported)?;
    let idle_timeout = super::timeout(
        common.idle_timeout.as_ref(),
        HttpConnections::default().idle_timeout,
        &at.field("idle_timeout"),
    )?;
    let max_duration = super::timeout(
        common.max_connection_duration.as_ref(),
        None,
        &at.field("max_connection_duration"),
    )?;
    Ok(HttpConnections {
        idle_timeout,
        max_requests: common
            .max_requests_per_connection
            .and_then(|n| std::num::NonZeroU32::new(n.value)),
        max_duration,
    })
}

/// The DEFAULT-priority circuit breaker thresholds.
fn limits(c: &EnvoyCluster, at: &At) -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    let Some(breakers) = &c.circuit_breakers else {
        return Ok(limits);
    };
    let at = at.field("circuit_breakers").field("thresholds");
    for (i, thresholds) in breakers.thresholds.iter().enumerate() {
        if thresholds.priority != 0 {
            // HIGH priority routes are not supported, so their limits never apply.
            continue;
        }
        if thresholds.retry_budget.is_some() {
            return Err(at
                .index(i)
                .field("retry_budget")
                .unsupported("retry_budget"));
        }
        let value = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, default: u32| {
            v.as_ref().map_or(default, |v| v.value)
        };
        limits = Limits {
            max_connections: value(&thresholds.max_connections, limits.max_connections),
            max_pending_requests: value(
                &thresholds.max_pending_requests,
                limits.max_pending_requests,
            ),
            max_requests: value(&thresholds.max_requests, limits.max_requests),
            max_retries: value(&thresholds.max_retries, limits.max_retries),
        };
    }
    Ok(limits)
}
