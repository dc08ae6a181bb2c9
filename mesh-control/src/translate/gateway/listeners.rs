//! One listener per gateway address and port, `0.0.0.0_<port>`, bound to
//! the port (istiod leaves `bind_to_port` unset, which means bound) and
//! marked OUTBOUND as istiod marks gateway listeners. Its filter chains:
//! - plain-text HTTP servers: one connection manager over RDS `http.<port>`;
//! - terminated HTTPS: a chain per server, matched by SNI (its hosts;
//!   none for `*`), with the server's TLS and RDS `https.<port>.<name>.<gw>.<ns>`;
//! - terminated TLS: the same, then `tcp_proxy` per the bound
//!   VirtualServices' `tcp` rules;
//! - PASSTHROUGH: a chain per applicable `tls` match of the bound
//!   VirtualServices, matched by its `sniHosts`, with `tcp_proxy`;
//! - opaque TCP: `tcp_proxy` per the first applicable `tcp` rule.
//!
//! A chain whose SNI names another chain of the listener already took is
//! left out (Envoy refuses two equal matches); so is a listener without
//! chains. Weighted TCP and TLS routes send everything to the first
//! destination, as for sidecars.

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use mesh_api::names::{ClusterName, fqdn};
use mesh_api::networking::virtual_service::{Destination, VirtualServiceSpec};

use super::super::context::{Config, Context, selects};
use super::super::filters::{self, Direction, PluginConfig};
use super::super::http_route::Bound;
use super::super::proto::{ads, any, boolv, seconds, socket};
use super::super::tcp_route::TcpTarget;
use super::servers::{GatewayServer, Kind, bound_virtual_services};
use super::{credentials, hosts, routes};

const HCM: &str = "envoy.filters.network.http_connection_manager";
const STATS: &str = "istio.stats";

/// A listener with the route configurations and secrets its chains name.
pub struct Built {
    pub listener: Listener,
    pub routes: Vec<RouteConfiguration>,
    pub secrets: Vec<Secret>,
}

/// The listener `name` (`<address>_<port>`) for `servers`, all on one
/// port; `None` when no chain came out of them.
pub fn build(ctx: &Context, name: &str, servers: &[GatewayServer]) -> Option<Built> {
    let first = servers.first()?;
    let port = first.port();
    let listen = first.listen;
    let address = name.rsplit_once('_').map_or("0.0.0.0", |(a, _)| a);
    let mut built = Chains {
        ctx,
        listener: name,
        port,
        chains: Vec::new(),
        routes: Vec::new(),
        secrets: Vec::new(),
        sni_taken: Vec::new(),
    };
    if first.kind == Kind::Http {
        let all: Vec<&GatewayServer> = servers.iter().collect();
        built.http(routes::http_name(listen), &all, None, Vec::new());
    } else {
        for server in servers {
            built.server(server);
        }
    }
    if built.chains.is_empty() {
        return None;
    }
    let inspects_tls = built.chains.iter().any(|c| {
        c.transport_socket.is_some()
            || c.filter_chain_match
                .as_ref()
                .is_some_and(|m| !m.server_names.is_empty())
    });
    let listener = Listener {
        name: name.to_owned(),
        address: Some(socket(address, listen)),
        traffic_direction: TrafficDirection::Outbound as i32,
        listener_filters: if inspects_tls {
            vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(any(
                    &TlsInspector::default(),
                ))),
                ..ListenerFilter::default()
            }]
        } else {
            Vec::new()
        },
        filter_chains: built.chains,
        ..Listener::default()
    };
    Some(Built {
        listener,
        routes: built.routes,
        secrets: built.secrets,
    })
}

struct Chains<'c, 'a> {
    ctx: &'c Context<'a>,
    listener: &'c str,
    port: u16,
    chains: Vec<FilterChain>,
    routes: Vec<RouteConfiguration>,
    secrets: Vec<Secret>,
    /// SNI names of the chains so far; empty for a chain taking any.
    sni_taken: Vec<Vec<String>>,
}

impl Chains<'_, '_> {
    /// Takes the SNI names for a new chain, unless a chain has any of them.
    fn take_sni(&mut self, names: &[String]) -> bool {
        let clash = self.sni_taken.iter().any(|taken| {
            (taken.is_empty() && names.is_empty()) || taken.iter().any(|t| names.contains(t))
        });
        if !clash {
            self.sni_taken.push(names.to_vec());
        }
        !clash
    }

    fn server(&mut self, server: &GatewayServer) {
        match server.kind {
            Kind::Https => {
                let sni = server.sni_hosts();
                if !self.take_sni(&sni) {
                    return;
                }
                let tls = server.server.tls.as_ref().expect("HTTPS servers have tls");
                let terminated = credentials::terminate(tls);
                self.secrets.extend(terminated.secrets);
                self.http(
                    routes::https_name(server),
                    &[server],
                    Some(terminated.socket),
                    sni,
                );
            }
            Kind::TerminatedTls => {
                let sni = server.sni_hosts();
                let Some(target) = self.tcp_destination(server) else {
                    return;
                };
                if !self.take_sni(&sni) {
                    return;
                }
                let tls = server.server.tls.as_ref().expect("TLS servers have tls");
                let terminated = credentials::terminate(tls);
                self.secrets.extend(terminated.secrets);
                let mut chain = tcp_chain(&target, sni_match(sni));
                chain.transport_socket = Some(terminated.socket);
                self.chains.push(chain);
            }
            Kind::Passthrough => self.passthrough(server),
            Kind::Tcp => {
                if let Some(target) = self.tcp_destination(server) {
                    self.chains.push(tcp_chain(&target, None));
                }
            }
            Kind::Http => {}
        }
    }

    /// A chain with a connection manager over RDS `route_name`, and that
    /// route configuration for `servers`.
    fn http(
        &mut self,
        route_name: String,
        servers: &[&GatewayServer],
        tls: Option<envoy_types::pb::envoy::config::core::v3::TransportSocket>,
        sni: Vec<String>,
    ) {
        self.routes.push(routes::build(
            self.ctx,
            route_name.clone(),
            self.port,
            servers,
        ));
        let mut manager = connection_manager(format!("outbound_{}", self.listener), route_name);
        manager.common_http_protocol_options = super::super::listener::idle_options(self.ctx);
        // After the metadata exchange, as istiod puts authentication.
        let jwt = super::super::request_authentication::filter(self.ctx);
        manager.http_filters.splice(1..1, jwt);
        self.chains.push(FilterChain {
            filter_chain_match: sni_match(sni),
            filters: vec![Filter {
                name: HCM.into(),
                config_type: Some(filter::ConfigType::TypedConfig(any(&manager))),
            }],
            transport_socket: tls,
            ..FilterChain::default()
        });
    }

    /// A chain per `tls` match of the bound VirtualServices that share a
    /// host with the server and apply to it.
    fn passthrough(&mut self, server: &GatewayServer) {
        for vs in bound_virtual_services(self.ctx, &server.gateway_name) {
            if !shares_host(self.ctx, server, vs) {
                continue;
            }
            for rule in &vs.spec.tls {
                let Some(target) = TcpTarget::of_route(&rule.route, |d| self.cluster(vs, d)) else {
                    continue;
                };
                let target = target.limited_by(self.ctx.route_tcp_limits(vs, &rule.route));
                for m in &rule.r#match {
                    let applies = self.l4_applies(
                        server,
                        vs,
                        L4 {
                            port: m.port,
                            gateways: &m.gateways,
                            source_labels: &m.source_labels,
                            source_namespace: &m.source_namespace,
                        },
                    );
                    if !applies || !self.take_sni(&m.sni_hosts) {
                        continue;
                    }
                    self.chains
                        .push(tcp_chain(&target, sni_match(m.sni_hosts.clone())));
                }
            }
        }
    }

    /// The destinations of the first `tcp` rule of the first bound
    /// VirtualService that shares a host with the server and applies.
    fn tcp_destination(&self, server: &GatewayServer) -> Option<TcpTarget> {
        bound_virtual_services(self.ctx, &server.gateway_name)
            .into_iter()
            .filter(|vs| shares_host(self.ctx, server, *vs))
            .find_map(|vs| {
                let rule = vs.spec.tcp.iter().find(|rule| {
                    rule.r#match.is_empty()
                        || rule.r#match.iter().any(|m| {
                            self.l4_applies(
                                server,
                                vs,
                                L4 {
                                    port: m.port,
                                    gateways: &m.gateways,
                                    source_labels: &m.source_labels,
                                    source_namespace: &m.source_namespace,
                                },
                            )
                        })
                })?;
                let target = TcpTarget::of_route(&rule.route, |d| self.cluster(vs, d))?;
                Some(target.limited_by(self.ctx.route_tcp_limits(vs, &rule.route)))
            })
    }

    fn l4_applies(&self, server: &GatewayServer, vs: Config<VirtualServiceSpec>, m: L4) -> bool {
        let proxy = self.ctx.proxy;
        m.port.is_none_or(|p| p == u32::from(self.port))
            && (m.gateways.is_empty()
                || Bound::Gateway(&server.gateway_name).named_in(m.gateways, vs.namespace))
            && selects(m.source_labels, &proxy.labels)
            && (m.source_namespace.is_empty() || m.source_namespace == proxy.namespace)
    }

    /// A destination's cluster: its port, else the service's only port,
    /// else the server's.
    fn cluster(&self, vs: Config<VirtualServiceSpec>, destination: &Destination) -> String {
        let host = fqdn(&destination.host, vs.namespace, self.ctx.domain());
        let port = destination
            .port
            .as_ref()
            .and_then(|p| u16::try_from(p.number).ok())
            .or_else(|| match self.ctx.service(&host)?.ports.as_slice() {
                [only] => Some(only.number),
                _ => None,
            })
            .unwrap_or(self.port);
        ClusterName::outbound(port, &destination.subset, &host).to_string()
    }
}

/// The match fields of `tcp` and `tls` rules that say where they apply.
struct L4<'m> {
    port: Option<u32>,
    gateways: &'m [String],
    source_labels: &'m std::collections::BTreeMap<String, String>,
    source_namespace: &'m str,
}

fn shares_host(ctx: &Context, server: &GatewayServer, vs: Config<VirtualServiceSpec>) -> bool {
    let server_hosts = hosts::for_namespace(&server.hosts, vs.namespace);
    !hosts::intersection(&server_hosts, &vs.spec.hosts, vs.namespace, ctx.domain()).is_empty()
}

fn sni_match(names: Vec<String>) -> Option<FilterChainMatch> {
    (!names.is_empty()).then(|| FilterChainMatch {
        server_names: names,
        ..FilterChainMatch::default()
    })
}

/// `istio.stats` then `tcp_proxy` to `target`.
fn tcp_chain(target: &TcpTarget, matcher: Option<FilterChainMatch>) -> FilterChain {
    FilterChain {
        filter_chain_match: matcher,
        filters: vec![
            Filter {
                name: STATS.into(),
                config_type: Some(filter::ConfigType::TypedConfig(gateway_stats())),
            },
            target.filter(),
        ],
        ..FilterChain::default()
    }
}

/// istiod's stats config for gateways: the Host header does not name the
/// destination service, so it is not used as a fallback.
fn gateway_stats() -> Any {
    any(&PluginConfig {
        disable_host_header_fallback: true,
    })
}

/// The sidecar outbound filters (metadata exchange towards upstreams,
/// CORS, fault, stats, router), with the gateway's stats config.
fn http_filters() -> Vec<HttpFilter> {
    let mut list = filters::http_filters(Direction::Outbound);
    for f in list.iter_mut().filter(|f| f.name == STATS) {
        f.config_type = Some(http_filter::ConfigType::TypedConfig(gateway_stats()));
    }
    list
}

/// What istiod sets on a gateway's connection manager: it is the edge, so
/// it trusts the peer address, names itself `istio-envoy`, and sanitizes
/// client certificate details before setting its own.
fn connection_manager(stat_prefix: String, route_name: String) -> HttpConnectionManager {
    use http_connection_manager::{
        ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails, UpgradeConfig,
    };
    HttpConnectionManager {
        stat_prefix,
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name,
        })),
        http_filters: http_filters(),
        use_remote_address: boolv(true),
        normalize_path: boolv(true),
        stream_idle_timeout: Some(seconds(0)),
        server_name: "istio-envoy".into(),
        forward_client_cert_details: ForwardClientCertDetails::SanitizeSet as i32,
        set_current_client_cert_details: Some(SetCurrentClientCertDetails {
            subject: boolv(true),
            cert: true,
            dns: true,
            uri: true,
            ..SetCurrentClientCertDetails::default()
        }),
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".into(),
            ..UpgradeConfig::default()
        }],
        ..HttpConnectionManager::default()
    }
}
