//! Listeners and their network filters.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier as Specifier;
use envoy_types::pb::envoy::config::core::v3::{Address, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain as EnvoyFilterChain, FilterChainMatch, Listener as EnvoyListener, filter,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy as EnvoyTcpProxy, tcp_proxy,
};
use envoy_types::pb::google::protobuf::{Any, Duration as ProtoDuration};
use prost::Message;

use super::resources::Sources;
use super::{
    Action, At, ChainMatch, CidrRange, ClientCertDetails, ClientCertHeader, ClientConnections,
    Cluster, ConfigError, ConnectionAccess, FilterChain, ForwardClientCert, HttpAccess,
    HttpManager, Listener, ListenerKind, RouteTable, TcpProxy, TrafficDirection, Transport, cors,
    ext_authz, fault, istio, jwt, rbac, route, tls,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";

const ORIGINAL_DST_FILTER: &str = "envoy.filters.listener.original_dst";

/// Listener filters that need no config here: `original_dst` restores the
/// original destination (as `use_original_dst` does too), and the transport
/// is sniffed whenever a chain matches on it.
const LISTENER_FILTERS: &[&str] = &[
    ORIGINAL_DST_FILTER,
    "envoy.filters.listener.tls_inspector",
    "envoy.filters.listener.http_inspector",
];

pub(super) fn compile(
    listener: &EnvoyListener,
    sources: &Sources<'_>,
) -> Result<Listener, ConfigError> {
    let at = At::resource("listener", &listener.name);
    let address = listener
        .address
        .as_ref()
        .ok_or_else(|| at.field("address").error("an address is required"))?;
    let address = socket_address(address, &at.field("address"))?;
    for (i, filter) in listener.listener_filters.iter().enumerate() {
        if !LISTENER_FILTERS.contains(&filter.name.as_str()) {
            return Err(at
                .field("listener_filters")
                .index(i)
                .unsupported(format_args!("listener filter {:?}", filter.name)));
        }
    }
    let chains = listener
        .filter_chains
        .iter()
        .enumerate()
        .map(|(i, chain)| filter_chain(chain, sources, &at.field("filter_chains").index(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let default_chain = match &listener.default_filter_chain {
        Some(chain) => Some(filter_chain(
            chain,
            sources,
            &at.field("default_filter_chain"),
        )?),
        None => None,
    };
    if chains.is_empty() && default_chain.is_none() {
        return Err(at
            .field("filter_chains")
            .error("at least one filter chain is required"));
    }
    let use_original_dst = listener.use_original_dst.as_ref().is_some_and(|b| b.value);
    Ok(Listener {
        name: listener.name.clone(),
        address,
        bind_to_port: listener.bind_to_port.as_ref().is_none_or(|b| b.value),
        use_original_dst,
        restores_original_dst: use_original_dst
            || listener
                .listener_filters
                .iter()
                .any(|f| f.name == ORIGINAL_DST_FILTER),
        direction: match listener.traffic_direction {
            1 => TrafficDirection::Inbound,
            2 => TrafficDirection::Outbound,
            _ => TrafficDirection::Unspecified,
        },
        chains,
        default_chain,
    })
}

fn filter_chain(
    chain: &EnvoyFilterChain,
    sources: &Sources<'_>,
    at: &At,
) -> Result<FilterChain, ConfigError> {
    let tls = match &chain.transport_socket {
        Some(socket) => tls::downstream(socket, &sources.secrets, &at.field("transport_socket"))?,
        None => None,
    };
    // Network RBAC and ext_authz filters come first, as Istio writes them.
    let mut access = Vec::new();
    let mut first = 0;
    while let Some(any) = chain.filters.get(first).and_then(network_access) {
        let at = at.field("filters").index(first).field("typed_config");
        if type_name(any) == rbac::NETWORK_FILTER_TYPE {
            let config = decode::<NetworkRbac>(any, &at)?;
            access.extend(rbac::network_filter(&config, &at)?.map(ConnectionAccess::Rbac));
        } else {
            access.push(ConnectionAccess::ExtAuthz(ext_authz::network_filter(
                any, &at,
            )?));
        }
        first += 1;
    }
    // Istio puts its stats filter in front of tcp_proxy.
    let (stats, terminal) = match &chain.filters[first..] {
        [filter] => (None, filter),
        [stats, filter] if network_stats(stats).is_some() => {
            let any = network_stats(stats).expect("checked");
            let at = at.field("filters").index(0).field("typed_config");
            (Some(istio::stats(any, &at)?), filter)
        }
        _ => {
            return Err(at.field("filters").unsupported(
                "anything but one http_connection_manager or tcp_proxy filter, \
                 optionally after RBAC and ext_authz filters and istio.stats",
            ));
        }
    };
    let at_terminal = at.field("filters").index(chain.filters.len() - 1);
    let mut kind = network_filter(terminal, sources, &at_terminal)?;
    match (&mut kind, stats) {
        (ListenerKind::Tcp(tcp), stats) => tcp.stats = stats,
        (ListenerKind::Http(_), Some(_)) => {
            return Err(at
                .field("filters")
                .index(0)
                .error("istio.stats goes among the HTTP filters of an http_connection_manager"));
        }
        (ListenerKind::Http(_), None) => {}
    }
    let matcher = match &chain.filter_chain_match {
        Some(m) => chain_match(m, &at.field("filter_chain_match"))?,
        None => ChainMatch::default(),
    };
    Ok(FilterChain {
        name: chain.name.clone(),
        matcher,
        kind,
        tls,
        access: access.into(),
    })
}

fn chain_match(m: &FilterChainMatch, at: &At) -> Result<ChainMatch, ConfigError> {
    let refused = [
        ("source_prefix_ranges", !m.source_prefix_ranges.is_empty()),
        (
            "direct_source_prefix_ranges",
            !m.direct_source_prefix_ranges.is_empty(),
        ),
        ("source_ports", !m.source_ports.is_empty()),
        ("source_type", m.source_type != 0),
        ("address_suffix", !m.address_suffix.is_empty()),
    ];
    if let Some((field, _)) = refused.iter().find(|(_, set)| *set) {
        return Err(at
            .field(field)
            .unsupported(format_args!("matching on {field} (yet)")));
    }
    let destination_port = match &m.destination_port {
        Some(port) => Some(
            u16::try_from(port.value)
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| {
                    at.field("destination_port")
                        .error(format_args!("{} is not a port", port.value))
                })?,
        ),
        None => None,
    };
    let prefix_ranges = m
        .prefix_ranges
        .iter()
        .enumerate()
        .map(|(i, range)| cidr(range, &at.field("prefix_ranges").index(i)))
        .collect::<Result<_, _>>()?;
    let transport = match m.transport_protocol.as_str() {
        "" => None,
        "raw_buffer" => Some(Transport::Raw),
        "tls" => Some(Transport::Tls),
        other => {
            return Err(at
                .field("transport_protocol")
                .error(format_args!("unknown transport {other:?}")));
        }
    };
    let server_names = m
        .server_names
        .iter()
        .enumerate()
        .map(|(i, name)| server_name(name, &at.field("server_names").index(i)))
        .collect::<Result<_, _>>()?;
    Ok(ChainMatch {
        destination_port,
        prefix_ranges,
        server_names,
        transport,
        application_protocols: m.application_protocols.clone(),
    })
}

/// An address range as Envoy writes it.
pub(super) fn cidr(
    range: &envoy_types::pb::envoy::config::core::v3::CidrRange,
    at: &At,
) -> Result<CidrRange, ConfigError> {
    let ip: IpAddr = range.address_prefix.parse().map_err(|_| {
        at.field("address_prefix").error(format_args!(
            "{:?} is not an IP address",
            range.address_prefix
        ))
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = range.prefix_len.as_ref().map_or(max, |l| l.value);
    if len > max {
        return Err(at
            .field("prefix_len")
            .error(format_args!("{len} is longer than {max} bits")));
    }
    Ok(CidrRange { ip, len: len as u8 })
}

/// The config of a network filter that is RBAC or ext_authz.
fn network_access(filter: &Filter) -> Option<&Any> {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any))
            if [rbac::NETWORK_FILTER_TYPE, ext_authz::NETWORK_FILTER_TYPE]
                .contains(&type_name(any)) =>
        {
            Some(any)
        }
        _ => None,
    }
}

/// The config of a network filter that is `istio.stats`.
fn network_stats(filter: &Filter) -> Option<&Any> {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) if type_name(any) == istio::STATS_CONFIG => {
            Some(any)
        }
        _ => None,
    }
}

/// An exact name, or `*.` followed by a suffix, as Envoy accepts them.
fn server_name(name: &str, at: &At) -> Result<String, ConfigError> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rest.is_empty() || rest.contains('*') {
        return Err(at.error(format_args!(
            "{name:?} is neither a name nor a *.suffix wildcard"
        )));
    }
    Ok(name.to_ascii_lowercase())
}

fn network_filter(
    filter: &Filter,
    sources: &Sources<'_>,
    at: &At,
) -> Result<ListenerKind, ConfigError> {
    let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        return Err(at.field("typed_config").error("typed_config is required"));
    };
    let at = at.field("typed_config");
    match type_name(any) {
        HCM => http_manager(&decode::<HttpConnectionManager>(any, &at)?, sources, &at)
            .map(|m| ListenerKind::Http(Arc::new(m))),
        TCP_PROXY => tcp_proxy(&decode::<EnvoyTcpProxy>(any, &at)?, &at).map(ListenerKind::Tcp),
        other => Err(at
            .field("@type")
            .unsupported(format_args!("network filter {other}"))),
    }
}

fn http_manager(
    hcm: &HttpConnectionManager,
    sources: &Sources<'_>,
    at: &At,
) -> Result<HttpManager, ConfigError> {
    let (mut fault, mut routed, mut cors_filter) = (None, false, false);
    let (mut stats, mut peer_exchange) = (None, istio::PeerExchange::default());
    let mut access = Vec::new();
    for (i, http_filter) in hcm.http_filters.iter().enumerate() {
        let here = at.field("http_filters").index(i);
        if let Some(config) = fault::http_filter(http_filter, &here)? {
            if routed {
                return Err(here.error("the fault filter must come before the router"));
            }
            if fault.is_some() {
                return Err(here.unsupported("more than one fault filter"));
            }
            fault = Some(config);
            continue;
        }
        match &http_filter.config_type {
            Some(http_filter::ConfigType::TypedConfig(any)) if type_name(any) == ROUTER => {
                routed = true;
            }
            None if http_filter.name == "envoy.filters.http.router" => routed = true,
            Some(http_filter::ConfigType::TypedConfig(any))
                if type_name(any) == cors::FILTER_TYPE && !routed =>
            {
                cors_filter = true;
            }
            None if http_filter.name == cors::FILTER_NAME && !routed => cors_filter = true,
            Some(http_filter::ConfigType::TypedConfig(any))
                if type_name(any) == rbac::HTTP_FILTER_TYPE && !routed =>
            {
                let at = here.field("typed_config");
                let config = decode::<HttpRbac>(any, &at)?;
                access.extend(rbac::http_filter(&config, &at)?.map(HttpAccess::Rbac));
            }
            Some(http_filter::ConfigType::TypedConfig(any))
                if type_name(any) == jwt::FILTER_TYPE && !routed =>
            {
                let jwt = jwt::compile(any, &here.field("typed_config"))?;
                access.push(HttpAccess::Jwt(jwt));
            }
            Some(http_filter::ConfigType::TypedConfig(any))
                if type_name(any) == ext_authz::HTTP_FILTER_TYPE && !routed =>
            {
                let authz = ext_authz::http_filter(any, &here.field("typed_config"))?;
                access.push(HttpAccess::ExtAuthz(authz));
            }
            Some(http_filter::ConfigType::TypedConfig(any))
                if type_name(any) == istio::STATS_CONFIG && !routed =>
            {
                stats = Some(istio::stats(any, &here.field("typed_config"))?);
            }
            Some(http_filter::ConfigType::TypedConfig(any))
                if istio::is_peer_exchange(any) && !routed =>
            {
                peer_exchange = istio::peer_exchange(any, &here.field("typed_config"))?;
            }
            _ => return Err(here.unsupported(format_args!("HTTP filter {:?}", http_filter.name))),
        }
    }
    let routes = match &hcm.route_specifier {
        Some(http_connection_manager::RouteSpecifier::RouteConfig(config)) => {
            route::compile(config, &at.field("route_config"))?
        }
        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => rds_routes(rds, sources, at)?,
        _ => return Err(at.field("route_config").error("route_config is required")),
    };
    let mut websocket = false;
    for (i, upgrade) in hcm.upgrade_configs.iter().enumerate() {
        let here = at.field("upgrade_configs").index(i);
        if !upgrade.upgrade_type.eq_ignore_ascii_case("websocket") || !upgrade.filters.is_empty() {
            return Err(here.unsupported(format_args!(
                "upgrade {:?} with filters",
                upgrade.upgrade_type
            )));
        }
        websocket = upgrade.enabled.as_ref().is_none_or(|e| e.value);
    }
    let client_cert = client_cert_header(hcm, at)?;
    let request_headers_timeout = super::timeout(
        hcm.request_headers_timeout.as_ref(),
        None,
        &at.field("request_headers_timeout"),
    )?;
    let common = hcm.common_http_protocol_options.as_ref();
    let at_common = at.field("common_http_protocol_options");
    let connections = client_connections(
        (
            common.and_then(|c| c.idle_timeout.as_ref()),
            &at_common.field("idle_timeout"),
        ),
        (
            common.and_then(|c| c.max_connection_duration.as_ref()),
            &at_common.field("max_connection_duration"),
        ),
    )?;
    let tracing = match &hcm.tracing {
        Some(tracing) => super::tracing::compile(
            tracing,
            &|name| std::env::var(name).ok(),
            &at.field("tracing"),
        )?,
        None => None,
    };
    Ok(HttpManager {
        stat_prefix: hcm.stat_prefix.clone(),
        tracing: tracing.map(Arc::new),
        routes,
        fault,
        websocket,
        cors: cors_filter,
        stats,
        peer_exchange,
        access_logs: hcm
            .access_log
            .iter()
            .enumerate()
            .map(|(i, log)| super::access_log::compile(log, &at.field("access_log").index(i)))
            .collect::<Result<_, _>>()?,
        request_headers_timeout,
        connections,
        max_request_headers: hcm
            .max_request_headers_kb
            .as_ref()
            .map_or(60, |kb| kb.value as usize)
            * 1024,
        access,
        client_cert,
    })
}

/// `forward_client_cert_details` and `set_current_client_cert_details`.
/// As in Envoy, the details matter only to the modes that write an element.
fn client_cert_header(
    hcm: &HttpConnectionManager,
    at: &At,
) -> Result<ClientCertHeader, ConfigError> {
    use http_connection_manager::ForwardClientCertDetails as F;
    let mode = match F::try_from(hcm.forward_client_cert_details) {
        Ok(F::Sanitize) => ForwardClientCert::Sanitize,
        Ok(F::ForwardOnly) => ForwardClientCert::ForwardOnly,
        Ok(F::AppendForward) => ForwardClientCert::AppendForward,
        Ok(F::SanitizeSet) => ForwardClientCert::SanitizeSet,
        Ok(F::AlwaysForwardOnly) => ForwardClientCert::AlwaysForwardOnly,
        Err(_) => {
            return Err(at
                .field("forward_client_cert_details")
                .error("an unknown mode"));
        }
    };
    let details = hcm.set_current_client_cert_details.as_ref().map_or_else(
        ClientCertDetails::default,
        |set| ClientCertDetails {
            subject: set.subject.as_ref().is_some_and(|s| s.value),
            cert: set.cert,
            chain: set.chain,
            dns: set.dns,
            uri: set.uri,
        },
    );
    Ok(ClientCertHeader { mode, details })
}

/// The route configuration an HCM names; until it arrives the table is
/// empty, and the config is incomplete, so not served.
fn rds_routes(rds: &Rds, sources: &Sources<'_>, at: &At) -> Result<RouteTable, ConfigError> {
    let at = at.field("rds");
    if let Some(source) = &rds.config_source
        && !matches!(source.config_source_specifier, Some(Specifier::Ads(_)))
    {
        return Err(at
            .field("config_source")
            .unsupported("config sources other than ads"));
    }
    let name = &rds.route_config_name;
    if name.is_empty() {
        return Err(at
            .field("route_config_name")
            .error("a route configuration name is required"));
    }
    match sources.route_config(name, &at)? {
        Some(config) => route::compile(config, &At::resource("route_configuration", name)),
        None => Ok(RouteTable {
            name: name.clone(),
            ..RouteTable::default()
        }),
    }
}

fn tcp_proxy(proxy: &EnvoyTcpProxy, at: &At) -> Result<TcpProxy, ConfigError> {
    let clusters = match &proxy.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) if !cluster.is_empty() => {
            vec![(cluster.clone(), 1)]
        }
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(weighted)) => {
            let at = at.field("weighted_clusters").field("clusters");
            let clusters: Vec<(String, u32)> = weighted
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight))
                .collect();
            if let Some(i) = clusters.iter().position(|(name, _)| name.is_empty()) {
                return Err(at
                    .index(i)
                    .field("name")
                    .error("a cluster name is required"));
            }
            if clusters.iter().all(|(_, weight)| *weight == 0) {
                return Err(at.error("the weights must not all be zero"));
            }
            clusters
        }
        _ => return Err(at.field("cluster").error("a cluster is required")),
    };
    Ok(TcpProxy {
        stat_prefix: proxy.stat_prefix.clone(),
        clusters,
        stats: None,
        connections: client_connections(
            (proxy.idle_timeout.as_ref(), &at.field("idle_timeout")),
            (
                proxy.max_downstream_connection_duration.as_ref(),
                &at.field("max_downstream_connection_duration"),
            ),
        )?,
    })
}

/// A client connection's idle timeout (an hour when unset, as in Envoy)
/// and maximum duration, each with where it was read.
fn client_connections(
    idle: (Option<&ProtoDuration>, &At),
    max: (Option<&ProtoDuration>, &At),
) -> Result<ClientConnections, ConfigError> {
    Ok(ClientConnections {
        idle_timeout: super::timeout(idle.0, Some(std::time::Duration::from_secs(3600)), idle.1)?,
        max_duration: super::timeout(max.0, None, max.1)?,
    })
}

/// Every cluster a listener names must exist.
pub(super) fn check_clusters(
    listener: &Listener,
    clusters: &BTreeMap<String, Arc<Cluster>>,
) -> Result<(), ConfigError> {
    let at = At::resource("listener", &listener.name);
    let chains = listener.chains.iter().chain(&listener.default_chain);
    match chains
        .flat_map(referenced_clusters)
        .find(|name| !clusters.contains_key(*name))
    {
        Some(name) => Err(at.error(format_args!("cluster {name:?} is not defined"))),
        None => Ok(()),
    }
}

/// Every cluster a chain may send traffic to, mirrors and authorizers
/// included.
fn referenced_clusters(chain: &FilterChain) -> Vec<&str> {
    let authorizers = chain.access.iter().filter_map(|filter| match filter {
        ConnectionAccess::ExtAuthz(authz) => Some(authz.cluster.as_str()),
        ConnectionAccess::Rbac(_) => None,
    });
    match &chain.kind {
        ListenerKind::Tcp(tcp) => tcp
            .clusters
            .iter()
            .map(|(name, _)| name.as_str())
            .chain(authorizers)
            .collect(),
        ListenerKind::Http(manager) => {
            let forwards = manager
                .routes
                .virtual_hosts
                .iter()
                .flat_map(|vh| &vh.routes)
                .filter_map(|r| match &r.action {
                    Action::Forward(forward) => Some(forward),
                    _ => None,
                });
            let collector = manager
                .tracing
                .as_ref()
                .map(|t| t.collector_cluster.as_str());
            let http_authorizers = manager.access.iter().filter_map(|filter| match filter {
                HttpAccess::ExtAuthz(authz) => Some(authz.service.cluster()),
                _ => None,
            });
            forwards
                .flat_map(|f| {
                    f.clusters
                        .iter()
                        .map(|(name, _)| name.as_str())
                        .chain(f.mirrors.iter().map(|m| m.cluster.as_str()))
                })
                .chain(collector)
                .chain(http_authorizers)
                .chain(authorizers)
                .collect()
        }
    }
}

/// An `Address` that must be a socket address with an IP and a port.
pub(super) fn socket_address(address: &Address, at: &At) -> Result<SocketAddr, ConfigError> {
    let Some(address::Address::SocketAddress(socket)) = &address.address else {
        return Err(at.unsupported("anything but socket_address"));
    };
    let at = at.field("socket_address");
    let ip: IpAddr = socket.address.parse().map_err(|_| {
        at.field("address")
            .error(format_args!("{:?} is not an IP address", socket.address))
    })?;
    let port = match socket.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(port)) => {
            u16::try_from(port).map_err(|_| {
                at.field("port_value")
                    .error(format_args!("port {port} is above 65535"))
            })?
        }
        _ => return Err(at.field("port_value").error("port_value is required")),
    };
    Ok(SocketAddr::new(ip, port))
}

pub(super) fn type_name(any: &Any) -> &str {
    any.type_url.rsplit('/').next().unwrap_or_default()
}

pub(super) fn decode<M: Message + Default>(any: &Any, at: &At) -> Result<M, ConfigError> {
    M::decode(any.value.as_slice())
        .map_err(|err| at.error(format_args!("cannot decode {}: {err}", any.type_url)))
}
