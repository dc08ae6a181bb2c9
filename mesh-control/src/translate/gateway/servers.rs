//! The Gateway servers a router proxy runs, grouped by the address and
//! port they listen on, and the VirtualServices bound to each gateway.

use std::collections::BTreeMap;

use mesh_api::load::Resource;
use mesh_api::networking::gateway::{GatewaySpec, Protocol, Server, TlsMode};
use mesh_api::networking::virtual_service::VirtualServiceSpec;

use crate::model::Proxy;

use super::super::context::{Config, Context, endpoint_port, exported, selects};
use super::super::http_route::Bound;
use super::super::sidecar_scope::interception_none;
use super::hosts;

/// How a server handles its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Plain-text HTTP (HTTP, HTTP2, gRPC): routed by the port's `http.<port>`.
    Http,
    /// HTTPS terminated here, routed by its own `https.<port>.<name>.<gw>.<ns>`.
    Https,
    /// TLS terminated here, then the `tcp` rules of bound VirtualServices.
    TerminatedTls,
    /// TLS forwarded untouched, by SNI, per the `tls` rules.
    Passthrough,
    /// Opaque TCP (TCP, MONGO, MYSQL, REDIS), per the `tcp` rules.
    Tcp,
}

impl Kind {
    /// Servers of one family can share a port: HTTP ones merge into one
    /// route table, TLS ones are told apart by SNI. TCP ones cannot.
    fn family(self) -> u8 {
        match self {
            Kind::Http => 0,
            Kind::Https | Kind::TerminatedTls | Kind::Passthrough => 1,
            Kind::Tcp => 2,
        }
    }
}

/// One server of a Gateway that selects the proxy.
#[derive(Debug, Clone)]
pub struct GatewayServer<'a> {
    pub gateway: Config<'a, GatewaySpec>,
    /// `<namespace>/<name>`, as VirtualServices name gateways.
    pub gateway_name: String,
    pub server: &'a Server,
    pub kind: Kind,
    /// The server's hosts as `namespace/dnsName`.
    pub hosts: Vec<String>,
    /// The port the listener binds: the server's, or the target port of
    /// the gateway's own service port that the server names.
    pub listen: u16,
}

impl GatewayServer<'_> {
    pub fn port(&self) -> u16 {
        u16::try_from(self.server.port.number).unwrap_or_default()
    }

    pub fn https_redirect(&self) -> bool {
        self.server.tls.as_ref().is_some_and(|t| t.https_redirect)
    }

    /// The SNI names the server answers to; empty when it takes any (`*`).
    pub fn sni_hosts(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .hosts
            .iter()
            .map(|h| hosts::name(h).to_owned())
            .collect();
        if names.iter().any(|n| n == "*") {
            return Vec::new();
        }
        names.sort();
        names.dedup();
        names
    }
}

/// What a server is, from its protocol and TLS mode; `None` for what a
/// gateway does not serve here (UDP, AUTO_PASSTHROUGH, TLS protocols
/// without `tls`, which validation refuses).
fn kind(server: &Server) -> Option<Kind> {
    let protocol = server.port.protocol()?;
    let mode = server.tls.as_ref().map(|t| t.mode);
    match protocol {
        Protocol::Udp => None,
        p if p.is_http() => Some(Kind::Http),
        Protocol::Https | Protocol::Tls => match mode? {
            TlsMode::AutoPassthrough => None,
            TlsMode::Passthrough => Some(Kind::Passthrough),
            _ if protocol == Protocol::Https => Some(Kind::Https),
            _ => Some(Kind::TerminatedTls),
        },
        _ => Some(Kind::Tcp),
    }
}

/// The servers of every Gateway whose selector the proxy's labels carry,
/// in any namespace (Istio's default), grouped by listener name
/// (`<bind or 0.0.0.0>_<port>`). On a shared port, a server whose kind
/// cannot share it with the first one is left out, as istiod does, and
/// only the first opaque TCP server is kept.
pub fn by_listener<'a>(ctx: &Context<'a>) -> BTreeMap<String, Vec<GatewayServer<'a>>> {
    let mut listeners: BTreeMap<String, Vec<GatewayServer<'a>>> = BTreeMap::new();
    let targets = target_ports(ctx);
    let wildcard = wildcard_address(ctx.proxy);
    for resource in &ctx.snapshot.config {
        let Resource::Gateway(gateway) = resource.as_ref() else {
            continue;
        };
        if !selects(&gateway.spec.selector, &ctx.proxy.labels) {
            continue;
        }
        let config = Config {
            namespace: resource.namespace(),
            name: resource.name(),
            spec: &gateway.spec,
        };
        for server in &gateway.spec.servers {
            let Some(kind) = kind(server) else {
                continue;
            };
            let address = if server.bind.is_empty() {
                wildcard.as_str()
            } else {
                server.bind.as_str()
            };
            let number = u16::try_from(server.port.number).unwrap_or_default();
            let listen = targets.get(&number).copied().unwrap_or(number);
            let entry = listeners.entry(format!("{address}_{listen}")).or_default();
            if let Some(first) = entry.first()
                && (first.kind.family() != kind.family() || kind == Kind::Tcp)
            {
                continue;
            }
            entry.push(GatewayServer {
                gateway: config,
                gateway_name: format!("{}/{}", config.namespace, config.name),
                server,
                kind,
                hosts: server
                    .hosts
                    .iter()
                    .map(|h| hosts::qualify(h, config.namespace))
                    .collect(),
                listen,
            });
        }
    }
    listeners
}

/// The target port of each port of the services the gateway backs, where
/// it differs: on Kubernetes the gateway's Service maps port 80 to 8080,
/// and istiod binds a Gateway server on port 80 to 8080 for it.
fn target_ports(ctx: &Context) -> BTreeMap<u16, u16> {
    let mut targets = BTreeMap::new();
    for (service, endpoint) in ctx.own_endpoints() {
        for port in &service.ports {
            let target = endpoint_port(endpoint, port);
            if target != port.number {
                targets.entry(port.number).or_insert(target);
            }
        }
    }
    targets
}

/// The address of servers without `bind`: every interface, or the proxy's
/// own address when it announces `INTERCEPTION_MODE: NONE`. Such a gateway
/// shares its host with other proxies (the local mesh), where binding
/// every interface would take the port from all of them and expose it
/// beyond the host.
fn wildcard_address(proxy: &Proxy) -> String {
    if interception_none(proxy) {
        proxy.ip.to_string()
    } else {
        "0.0.0.0".to_owned()
    }
}

/// The VirtualServices bound to the gateway `<ns>/<name>` and exported to
/// the proxy's namespace, in config order.
pub fn bound_virtual_services<'a>(
    ctx: &Context<'a>,
    gateway: &str,
) -> Vec<Config<'a, VirtualServiceSpec>> {
    ctx.snapshot
        .config
        .iter()
        .filter_map(|resource| match resource.as_ref() {
            Resource::VirtualService(vs) => Some(Config {
                namespace: resource.namespace(),
                name: resource.name(),
                spec: &vs.spec,
            }),
            _ => None,
        })
        .filter(|vs| {
            Bound::Gateway(gateway).named_in(&vs.spec.gateways, vs.namespace)
                && exported(&vs.spec.export_to, vs.namespace, &ctx.proxy.namespace)
        })
        .collect()
}
