//! Listeners of a sidecar: `virtualOutbound` (15001) hands captured
//! connections to the per-port outbound listeners by original destination
//! — `0.0.0.0_<port>` for HTTP ports (routes over RDS, named by port) and
//! `<VIP>_<port>` for TCP ports — and `virtualInbound` (15006) serves the
//! workload's own ports, mTLS or plain text, to its `inbound|<port>||`
//! clusters.
//!
//! Differences from istiod: a port whose protocol is neither declared nor
//! given by its name is proxied as TCP (istiod sniffs it); a TCP service
//! without a VIP gets `0.0.0.0_<port>` only when no HTTP port has that
//! number; there is no HTTP inbound catch-all chain.

use envoy_types::pb::envoy::config::core::v3::{HttpProtocolOptions, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, Rds, http_connection_manager,
};
use mesh_api::names::{ClusterName, fqdn};
use mesh_api::networking::virtual_service::VirtualServiceSpec;
use mesh_api::security::peer_authentication::MtlsMode;

use super::authorization::{self, Authorization};
use super::cluster::{BLACKHOLE, INBOUND_PASSTHROUGH, PASSTHROUGH};
use super::context::{Config, Context, InboundPort, PortKind, port_kind};
use super::filters::{self, Direction};
use super::proto::{ads, any, boolv, duration, seconds, socket, u32v};
use super::tcp_route::{TcpLimits, TcpTarget};
use super::{route as routes, tls};
use crate::model::{OutboundTrafficPolicy, Service, ServicePort};

const OUTBOUND_PORT: u16 = 15001;
const INBOUND_PORT: u16 = 15006;
/// Inbound retries (non-gRPC ports): a request that never reached the
/// application is tried again.
const INBOUND_RETRY_ON: &str = "reset-before-request";
const INBOUND_RETRIES: u32 = 2;

/// What every sidecar of one scope gets alike: `virtualOutbound` and the
/// per-port outbound listeners, or the bound egress listeners.
pub fn outbound(ctx: &Context) -> Vec<Listener> {
    let mut listeners = super::sidecar_listener::egress(ctx);
    if ctx.sidecar.captures_outbound() {
        listeners.extend(captured_outbound(ctx));
    }
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    listeners
}

/// The proxy's own listeners: `virtualInbound`, or the bound ingress listeners.
pub fn inbound(ctx: &Context) -> Vec<Listener> {
    let mut listeners = super::sidecar_listener::ingress(ctx);
    if ctx.sidecar.captures_inbound() {
        listeners.push(virtual_inbound(ctx));
    }
    listeners.sort_by(|a, b| a.name.cmp(&b.name));
    listeners
}

/// `virtualOutbound` and the listeners it hands connections to.
fn captured_outbound(ctx: &Context) -> Vec<Listener> {
    let mut listeners = vec![virtual_outbound(ctx)];
    let http_ports = routes::http_ports(ctx);
    for port in http_ports.keys() {
        listeners.push(http_outbound(
            ctx,
            format!("0.0.0.0_{port}"),
            "0.0.0.0",
            *port,
            false,
        ));
    }
    for service in &ctx.services {
        for port in &service.ports {
            if port_kind(port) != Some(PortKind::Tcp) {
                continue;
            }
            let addresses: Vec<String> = if service.addresses.is_empty() {
                if http_ports.contains_key(&port.number) {
                    continue;
                }
                vec!["0.0.0.0".into()]
            } else {
                service.addresses.iter().map(ToString::to_string).collect()
            };
            for address in addresses {
                let name = format!("{address}_{}", port.number);
                if listeners.iter().any(|l| l.name == name) {
                    continue;
                }
                listeners.push(tcp_outbound(ctx, service, port, name, &address, false));
            }
        }
    }
    listeners
}

/// `istio.stats` then `tcp_proxy` to `cluster`, idle for as long as the
/// proxy's `IDLE_TIMEOUT` says.
fn tcp_chain(
    ctx: &Context,
    name: &str,
    matcher: Option<FilterChainMatch>,
    cluster: &str,
    direction: Direction,
) -> FilterChain {
    let limits = TcpLimits {
        idle_timeout: ctx.proxy.idle_timeout(),
        max_duration: None,
    };
    let target = TcpTarget::cluster(cluster).limited_by(limits);
    tcp_chain_to(name, matcher, &target, direction)
}

/// `istio.stats` then `tcp_proxy` to `target`.
fn tcp_chain_to(
    name: &str,
    matcher: Option<FilterChainMatch>,
    target: &TcpTarget,
    direction: Direction,
) -> FilterChain {
    FilterChain {
        name: name.to_owned(),
        filter_chain_match: matcher,
        filters: vec![filters::tcp_stats(direction), target.filter()],
        ..FilterChain::default()
    }
}

/// Connections addressed to the capture port itself go nowhere.
fn blackhole_chain(name: &str, port: u16) -> FilterChain {
    FilterChain {
        name: name.to_owned(),
        filter_chain_match: Some(FilterChainMatch {
            destination_port: u32v(u32::from(port)),
            ..FilterChainMatch::default()
        }),
        filters: vec![TcpTarget::cluster(BLACKHOLE).filter()],
        ..FilterChain::default()
    }
}

fn virtual_outbound(ctx: &Context) -> Listener {
    let catch_all = match ctx.outbound_traffic_policy() {
        OutboundTrafficPolicy::AllowAny => PASSTHROUGH,
        OutboundTrafficPolicy::RegistryOnly => BLACKHOLE,
    };
    Listener {
        name: "virtualOutbound".into(),
        address: Some(socket("0.0.0.0", OUTBOUND_PORT)),
        use_original_dst: boolv(true),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![
            blackhole_chain("virtualOutbound-blackhole", OUTBOUND_PORT),
            tcp_chain(
                ctx,
                "virtualOutbound-catchall-tcp",
                None,
                catch_all,
                Direction::Outbound,
            ),
        ],
        ..Listener::default()
    }
}

fn network_filter(name: &str, hcm: &HttpConnectionManager) -> Filter {
    Filter {
        name: name.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(any(hcm))),
    }
}

/// What istiod sets on every sidecar connection manager.
fn connection_manager(
    ctx: &Context,
    stat_prefix: String,
    direction: Direction,
) -> HttpConnectionManager {
    use http_connection_manager::UpgradeConfig;
    HttpConnectionManager {
        stat_prefix,
        common_http_protocol_options: idle_options(ctx),
        http_filters: filters::http_filters(direction),
        use_remote_address: boolv(false),
        normalize_path: boolv(true),
        stream_idle_timeout: Some(seconds(0)),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..UpgradeConfig::default()
        }],
        ..HttpConnectionManager::default()
    }
}

/// The proxy's `IDLE_TIMEOUT` as its connection managers' idle timeout,
/// as istiod sets it on every one.
pub(super) fn idle_options(ctx: &Context) -> Option<HttpProtocolOptions> {
    let idle = ctx.proxy.idle_timeout()?;
    Some(HttpProtocolOptions {
        idle_timeout: Some(duration(idle)),
        ..HttpProtocolOptions::default()
    })
}

/// `0.0.0.0_<port>` (or `<bind>_<port>`): every HTTP service on the
/// port, routed by the route configuration named after the port.
pub(super) fn http_outbound(
    ctx: &Context,
    name: String,
    address: &str,
    port: u16,
    bind_to_port: bool,
) -> Listener {
    let mut hcm = connection_manager(ctx, format!("outbound_{name}"), Direction::Outbound);
    hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::Rds(Rds {
        config_source: Some(ads()),
        route_config_name: port.to_string(),
    }));
    Listener {
        name,
        address: Some(socket(address, port)),
        bind_to_port: boolv(bind_to_port),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![FilterChain {
            filters: vec![network_filter(
                "envoy.filters.network.http_connection_manager",
                &hcm,
            )],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// `<VIP>_<port>`: a TCP service, to the cluster its VirtualService's
/// first applicable `tcp` rule names, else to the service's cluster.
pub(super) fn tcp_outbound(
    ctx: &Context,
    service: &Service,
    port: &ServicePort,
    name: String,
    address: &str,
    bind_to_port: bool,
) -> Listener {
    let target = ctx
        .virtual_service(service)
        .and_then(|vs| tcp_destination(ctx, vs, port.number))
        .unwrap_or_else(|| {
            TcpTarget::cluster(
                &ClusterName::outbound(port.number, "", &service.hostname).to_string(),
            )
            .limited_by(ctx.tcp_limits(&service.hostname))
        });
    Listener {
        name,
        address: Some(socket(address, port.number)),
        bind_to_port: boolv(bind_to_port),
        traffic_direction: TrafficDirection::Outbound as i32,
        filter_chains: vec![tcp_chain_to("", None, &target, Direction::Outbound)],
        ..Listener::default()
    }
}

/// The destinations of the first `tcp` rule that applies to `port` and to
/// this proxy.
fn tcp_destination(ctx: &Context, vs: Config<VirtualServiceSpec>, port: u16) -> Option<TcpTarget> {
    let proxy = ctx.proxy;
    let rule = vs.spec.tcp.iter().find(|rule| {
        rule.r#match.is_empty()
            || rule.r#match.iter().any(|m| {
                m.port.is_none_or(|p| p == u32::from(port))
                    && super::context::selects(&m.source_labels, &proxy.labels)
                    && (m.source_namespace.is_empty() || m.source_namespace == proxy.namespace)
                    && (m.gateways.is_empty() || m.gateways.iter().any(|g| g == "mesh"))
            })
    })?;
    let target = TcpTarget::of_route(&rule.route, |destination| {
        let host = fqdn(&destination.host, vs.namespace, ctx.domain());
        let port = destination
            .port
            .as_ref()
            .and_then(|p| u16::try_from(p.number).ok())
            .unwrap_or(port);
        ClusterName::outbound(port, &destination.subset, &host).to_string()
    })?;
    Some(target.limited_by(ctx.route_tcp_limits(vs, &rule.route)))
}

fn listener_filter<M: prost::Message + prost::Name>(name: &str, config: &M) -> ListenerFilter {
    ListenerFilter {
        name: name.to_owned(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(config))),
        ..ListenerFilter::default()
    }
}

fn virtual_inbound(ctx: &Context) -> Listener {
    let authz = authorization::inbound(ctx);
    let mut chains = vec![blackhole_chain("virtualInbound-blackhole", INBOUND_PORT)];
    for inbound in ctx.inbound_ports() {
        if inbound.bind.is_none() {
            chains.extend(inbound_chains(ctx, &inbound, &authz));
        }
    }
    chains.push(tcp_chain(
        ctx,
        "virtualInbound",
        None,
        INBOUND_PASSTHROUGH,
        Direction::Inbound,
    ));
    Listener {
        name: "virtualInbound".into(),
        address: Some(socket("0.0.0.0", INBOUND_PORT)),
        traffic_direction: TrafficDirection::Inbound as i32,
        listener_filters: [
            vec![listener_filter(
                "envoy.filters.listener.original_dst",
                &OriginalDst::default(),
            )],
            inspectors(),
        ]
        .concat(),
        filter_chains: chains,
        ..Listener::default()
    }
}

/// TLS and HTTP inspection, for chains matched by transport and ALPN.
pub(super) fn inspectors() -> Vec<ListenerFilter> {
    vec![
        listener_filter(
            "envoy.filters.listener.tls_inspector",
            &TlsInspector::default(),
        ),
        listener_filter(
            "envoy.filters.listener.http_inspector",
            &HttpInspector::default(),
        ),
    ]
}

/// The chains of one inbound port, named `0.0.0.0_<port>`, as its
/// PeerAuthentication `mode` says: mesh mTLS (told apart by TLS and Istio's
/// ALPN) and plain text for PERMISSIVE, mTLS alone for STRICT (plain text
/// finds no chain and is closed), and for DISABLE one chain taking
/// whatever comes, as it comes.
pub(super) fn inbound_chains(
    ctx: &Context,
    inbound: &InboundPort,
    authz: &Authorization,
) -> Vec<FilterChain> {
    let mode = inbound_mode(ctx, inbound);
    let name = format!("0.0.0.0_{}", inbound.port);
    let alpn: &[&str] = match inbound.kind {
        PortKind::Http { .. } => &["istio-http/1.0", "istio-http/1.1", "istio-h2"],
        PortKind::Tcp => &["istio-peer-exchange", "istio"],
    };
    let mtls_match = FilterChainMatch {
        destination_port: u32v(u32::from(inbound.port)),
        transport_protocol: "tls".into(),
        application_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
        ..FilterChainMatch::default()
    };
    let plain_match = FilterChainMatch {
        destination_port: u32v(u32::from(inbound.port)),
        transport_protocol: "raw_buffer".into(),
        ..FilterChainMatch::default()
    };
    let chain = |matcher: FilterChainMatch| {
        let cluster = ClusterName::inbound(inbound.port).to_string();
        match inbound.kind {
            PortKind::Http { .. } => FilterChain {
                name: name.clone(),
                filter_chain_match: Some(matcher),
                filters: vec![network_filter(
                    "envoy.filters.network.http_connection_manager",
                    &inbound_manager(ctx, inbound, &name, authz),
                )],
                ..FilterChain::default()
            },
            PortKind::Tcp => {
                let mut chain = tcp_chain(ctx, &name, Some(matcher), &cluster, Direction::Inbound);
                chain.filters.splice(0..0, authz.tcp.iter().cloned());
                chain
            }
        }
    };
    let mut mtls = chain(mtls_match);
    mtls.transport_socket = Some(tls::inbound(inbound.kind));
    match mode {
        MtlsMode::Strict => vec![mtls],
        MtlsMode::Disable => vec![chain(FilterChainMatch {
            destination_port: u32v(u32::from(inbound.port)),
            ..FilterChainMatch::default()
        })],
        MtlsMode::Permissive | MtlsMode::Unset => vec![mtls, chain(plain_match)],
    }
}

/// The PeerAuthentication mode of one of the proxy's own ports.
fn inbound_mode(ctx: &Context, inbound: &InboundPort) -> MtlsMode {
    let proxy = ctx.proxy;
    ctx.peer_authentications
        .mode(&proxy.namespace, &proxy.labels, inbound.port)
}

fn inbound_manager(
    ctx: &Context,
    inbound: &InboundPort,
    name: &str,
    authz: &Authorization,
) -> HttpConnectionManager {
    use http_connection_manager::{ForwardClientCertDetails, SetCurrentClientCertDetails};
    let mut hcm = connection_manager(ctx, format!("inbound_{name}"), Direction::Inbound);
    // After the peer metadata exchange, before everything else, as istiod.
    hcm.http_filters.splice(1..1, authz.http.iter().cloned());
    hcm.server_name = "istio-envoy".into();
    hcm.forward_client_cert_details = ForwardClientCertDetails::AppendForward as i32;
    hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
        subject: boolv(true),
        dns: true,
        uri: true,
        ..SetCurrentClientCertDetails::default()
    });
    hcm.route_specifier = Some(http_connection_manager::RouteSpecifier::RouteConfig(
        inbound_routes(inbound),
    ));
    hcm
}

/// `inbound|<port>||`: everything to the application, retried only when
/// the request never reached it.
fn inbound_routes(inbound: &InboundPort) -> RouteConfiguration {
    let cluster = ClusterName::inbound(inbound.port).to_string();
    let timeout = seconds(0);
    let retry_policy = (!inbound.grpc).then(|| RetryPolicy {
        retry_on: INBOUND_RETRY_ON.into(),
        num_retries: u32v(INBOUND_RETRIES),
        ..RetryPolicy::default()
    });
    let operation = inbound
        .services
        .first()
        .map(|s| format!("{}:{}/*", s.hostname, inbound.service_port))
        .unwrap_or_default();
    RouteConfiguration {
        name: cluster.clone(),
        validate_clusters: boolv(false),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{}", inbound.port),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "default".into(),
                r#match: Some(RouteMatch {
                    path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                    ..RouteMatch::default()
                }),
                decorator: Some(Decorator {
                    operation,
                    ..Decorator::default()
                }),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster)),
                    timeout: Some(timeout),
                    max_stream_duration: Some(route_action::MaxStreamDuration {
                        max_stream_duration: Some(timeout),
                        grpc_timeout_header_max: Some(timeout),
                        ..Default::default()
                    }),
                    retry_policy,
                    ..RouteAction::default()
                })),
                ..Route::default()
            }],
            ..VirtualHost::default()
        }],
        ..RouteConfiguration::default()
    }
}
