//! Listeners and their network filters.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{Address, address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener as EnvoyListener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy as EnvoyTcpProxy, tcp_proxy,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use super::{
    Action, At, Cluster, ConfigError, HttpManager, Listener, ListenerKind, TcpProxy, fault, route,
};

const HCM: &str =
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
const TCP_PROXY: &str = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy";
/// Envoy waits forever by default; a bound protects against clients that
/// never finish their headers.
const DEFAULT_REQUEST_HEADERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";

pub(super) fn compile(listener: &EnvoyListener) -> Result<Listener, ConfigError> {
    let at = At::resource("listener", &listener.name);
    let address = listener
        .address
        .as_ref()
        .ok_or_else(|| at.field("address").error("an address is required"))?;
    let address = socket_address(address, &at.field("address"))?;
    let [chain] = listener.filter_chains.as_slice() else {
        return Err(at.field("filter_chains").unsupported(format_args!(
            "{} filter chains (exactly one)",
            listener.filter_chains.len()
        )));
    };
    let chain_at = at.field("filter_chains").index(0);
    if chain.filter_chain_match.is_some() {
        return Err(chain_at
            .field("filter_chain_match")
            .unsupported("filter_chain_match"));
    }
    if chain.transport_socket.is_some() {
        return Err(chain_at
            .field("transport_socket")
            .unsupported("TLS on listeners"));
    }
    let [filter] = chain.filters.as_slice() else {
        return Err(chain_at
            .field("filters")
            .unsupported("anything but one http_connection_manager or tcp_proxy filter"));
    };
    let kind = network_filter(filter, &chain_at.field("filters").index(0))?;
    Ok(Listener {
        name: listener.name.clone(),
        address,
        kind,
    })
}

fn network_filter(filter: &Filter, at: &At) -> Result<ListenerKind, ConfigError> {
    let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
        return Err(at.field("typed_config").error("typed_config is required"));
    };
    let at = at.field("typed_config");
    match type_name(any) {
        HCM => http_manager(&decode::<HttpConnectionManager>(any, &at)?, &at)
            .map(|m| ListenerKind::Http(Arc::new(m))),
        TCP_PROXY => tcp_proxy(&decode::<EnvoyTcpProxy>(any, &at)?, &at).map(ListenerKind::Tcp),
        other => Err(at
            .field("@type")
            .unsupported(format_args!("network filter {other}"))),
    }
}

fn http_manager(hcm: &HttpConnectionManager, at: &At) -> Result<HttpManager, ConfigError> {
    let (mut fault, mut routed) = (None, false);
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
            _ => return Err(here.unsupported(format_args!("HTTP filter {:?}", http_filter.name))),
        }
    }
    let routes = match &hcm.route_specifier {
        Some(http_connection_manager::RouteSpecifier::RouteConfig(config)) => {
            route::compile(config, &at.field("route_config"))?
        }
        Some(http_connection_manager::RouteSpecifier::Rds(_)) => {
            return Err(at
                .field("rds")
                .unsupported("RDS (until the xDS client exists)"));
        }
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
    let request_headers_timeout = match &hcm.request_headers_timeout {
        Some(d) => {
            Some(super::duration(d, &at.field("request_headers_timeout"))?).filter(|d| !d.is_zero())
        }
        None => None,
    };
    Ok(HttpManager {
        stat_prefix: hcm.stat_prefix.clone(),
        routes,
        fault,
        websocket,
        access_logs: hcm
            .access_log
            .iter()
            .enumerate()
            .map(|(i, log)| super::access_log::compile(log, &at.field("access_log").index(i)))
            .collect::<Result<_, _>>()?,
        request_headers_timeout: request_headers_timeout.unwrap_or(DEFAULT_REQUEST_HEADERS_TIMEOUT),
        max_request_headers: hcm
            .max_request_headers_kb
            .as_ref()
            .map_or(60, |kb| kb.value as usize)
            * 1024,
    })
}

fn tcp_proxy(proxy: &EnvoyTcpProxy, at: &At) -> Result<TcpProxy, ConfigError> {
    match &proxy.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(cluster)) if !cluster.is_empty() => {
            Ok(TcpProxy {
                stat_prefix: proxy.stat_prefix.clone(),
                cluster: cluster.clone(),
            })
        }
        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(_)) => Err(at
            .field("weighted_clusters")
            .unsupported("weighted_clusters in tcp_proxy")),
        _ => Err(at.field("cluster").error("a cluster is required")),
    }
}

/// Every cluster a listener names must exist.
pub(super) fn check_clusters(
    listener: &Listener,
    clusters: &BTreeMap<String, Arc<Cluster>>,
) -> Result<(), ConfigError> {
    let at = At::resource("listener", &listener.name);
    let missing = |name: &str| at.error(format_args!("cluster {name:?} is not defined"));
    match &listener.kind {
        ListenerKind::Tcp(tcp) if !clusters.contains_key(&tcp.cluster) => {
            Err(missing(&tcp.cluster))
        }
        ListenerKind::Tcp(_) => Ok(()),
        ListenerKind::Http(manager) => {
            let mirrors = manager
                .routes
                .virtual_hosts
                .iter()
                .flat_map(|vh| &vh.routes)
                .filter_map(|r| match &r.action {
                    Action::Forward(forward) => Some(forward.mirrors.iter().map(|m| &m.cluster)),
                    _ => None,
                });
            if let Some(name) = mirrors.flatten().find(|name| !clusters.contains_key(*name)) {
                return Err(missing(name));
            }
            let forwards = manager
                .routes
                .virtual_hosts
                .iter()
                .flat_map(|vh| &vh.routes)
                .filter_map(|r| match &r.action {
                    Action::Forward(forward) => Some(forward),
                    _ => None,
                });
            for forward in forwards {
                if let Some((name, _)) = forward
                    .clusters
                    .iter()
                    .find(|(name, _)| !clusters.contains_key(name))
                {
                    return Err(missing(name));
                }
            }
            Ok(())
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
