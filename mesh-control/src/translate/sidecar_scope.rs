//! The `Sidecar` resource that applies to a proxy, and what it changes:
//! which services the proxy imports (`egress[].hosts`), how unknown
//! outbound traffic is treated (`outboundTrafficPolicy`), the inbound ports
//! (`ingress[]`), and which listeners bind for real instead of relying on
//! iptables capture (`captureMode: NONE`, or the proxy's
//! `INTERCEPTION_MODE: NONE`).
//!
//! Selection, as istiod does it: a Sidecar in the proxy's namespace whose
//! `workloadSelector` matches the proxy's labels, else the one in that
//! namespace without a selector, else the one without a selector in the
//! root namespace. When several tie, the first in config order (namespace,
//! then name) wins; istiod takes the oldest.
//!
//! Egress hosts are `namespace/dnsName`: the namespace is `*` (any), `.`
//! (the proxy's, also for a Sidecar in the root namespace), `~` (none), a
//! name, or `~name` (any but that one); the dnsName is `*`, `*.suffix` or a
//! host. A service is imported when a host of any egress listener covers
//! it, or when it is a destination of a VirtualService whose hosts are
//! imported, as istiod adds those dependencies. A Sidecar without egress
//! imports everything.

use std::net::IpAddr;

use envoy_types::pb::envoy::config::core::v3::{Address, Pipe, address};
use mesh_api::load::Resource;
use mesh_api::names::fqdn;
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::sidecar::{
    CaptureMode, IstioEgressListener, IstioIngressListener, OutboundTrafficPolicyMode, SidecarSpec,
};
use mesh_api::networking::virtual_service::VirtualServiceSpec;

use super::context::{Config, Context, InboundPort, host_matches, port_kind, protocol};
use super::proto::socket;
use crate::model::{MeshSnapshot, OutboundTrafficPolicy, Proxy, Service, ServicePort};

/// The node metadata key that says how traffic reaches the proxy.
const INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";
/// Where bound egress listeners listen when the Sidecar names no address.
const DEFAULT_EGRESS_BIND: &str = "127.0.0.1";
const UNIX_PREFIX: &str = "unix://";

/// The Sidecar of one proxy, if any, with how the proxy is reached.
#[derive(Debug, Clone, Copy)]
pub struct SidecarScope<'a> {
    sidecar: Option<Config<'a, SidecarSpec>>,
    /// What `.` in an egress host means: the proxy's namespace.
    namespace: &'a str,
    /// `INTERCEPTION_MODE: NONE`: nothing is captured, every listener binds.
    interception_none: bool,
}

/// Whether the proxy says nothing is captured for it.
pub fn interception_none(proxy: &Proxy) -> bool {
    proxy
        .metadata
        .get(INTERCEPTION_MODE)
        .and_then(serde_json::Value::as_str)
        == Some("NONE")
}

impl<'a> SidecarScope<'a> {
    pub fn new(proxy: &'a Proxy, snapshot: &'a MeshSnapshot) -> SidecarScope<'a> {
        SidecarScope {
            sidecar: select(proxy, snapshot),
            namespace: &proxy.namespace,
            interception_none: interception_none(proxy),
        }
    }

    /// The namespace and name of the Sidecar that applies, if any.
    pub fn name(&self) -> Option<(&'a str, &'a str)> {
        self.sidecar.map(|s| (s.namespace, s.name))
    }

    fn spec(&self) -> Option<&'a SidecarSpec> {
        self.sidecar.map(|s| s.spec)
    }

    fn egress(&self) -> &'a [IstioEgressListener] {
        self.spec().map_or(&[], |s| &s.egress)
    }

    pub fn ingress(&self) -> &'a [IstioIngressListener] {
        self.spec().map_or(&[], |s| &s.ingress)
    }

    /// `virtualOutbound` and the capture-mode outbound listeners are built.
    pub fn captures_outbound(&self) -> bool {
        !self.interception_none
    }

    /// `virtualInbound` is built.
    pub fn captures_inbound(&self) -> bool {
        !self.interception_none
    }

    /// Whether a listener with `mode` binds its address itself.
    fn binds(&self, mode: CaptureMode) -> bool {
        match mode {
            CaptureMode::None => true,
            CaptureMode::Iptables => false,
            CaptureMode::Default => self.interception_none,
        }
    }

    /// The egress listeners that bind for real, with their address.
    pub fn bound_egress(&self) -> impl Iterator<Item = (&'a IstioEgressListener, &'a str)> + '_ {
        self.egress()
            .iter()
            .filter(|l| self.binds(l.capture_mode))
            .map(|l| {
                let bind = if l.bind.is_empty() {
                    DEFAULT_EGRESS_BIND
                } else {
                    l.bind.as_str()
                };
                (l, bind)
            })
    }

    /// The Sidecar's policy for unknown destinations, else the mesh's. A
    /// proxy that captures nothing has no original destination to pass
    /// unknown traffic to (it would be the proxy's own listener), so it
    /// refuses it whatever the policy says.
    pub fn outbound_traffic_policy(&self, mesh: OutboundTrafficPolicy) -> OutboundTrafficPolicy {
        if self.interception_none {
            return OutboundTrafficPolicy::RegistryOnly;
        }
        match self.spec().and_then(|s| s.outbound_traffic_policy.as_ref()) {
            Some(policy) => match policy.mode {
                OutboundTrafficPolicyMode::AllowAny => OutboundTrafficPolicy::AllowAny,
                OutboundTrafficPolicyMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
            },
            None => mesh,
        }
    }

    /// Whether a host of the given egress listener covers `hostname`
    /// declared in `namespace`.
    pub fn listener_imports(
        &self,
        listener: &IstioEgressListener,
        namespace: &str,
        hostname: &str,
    ) -> bool {
        listener
            .hosts
            .iter()
            .any(|host| self.host_imports(host, namespace, hostname))
    }

    /// Whether any egress listener imports `hostname` from `namespace`;
    /// everything is imported without egress listeners.
    pub fn imports(&self, namespace: &str, hostname: &str) -> bool {
        let egress = self.egress();
        egress.is_empty()
            || egress
                .iter()
                .any(|l| self.listener_imports(l, namespace, hostname))
    }

    fn host_imports(&self, host: &str, namespace: &str, hostname: &str) -> bool {
        let Some((ns, dns)) = host.split_once('/') else {
            return false;
        };
        let namespace_ok = match ns {
            "*" => true,
            "." => namespace == self.namespace,
            "~" => false,
            other => match other.strip_prefix('~') {
                Some(excluded) => namespace != excluded,
                None => namespace == other,
            },
        };
        namespace_ok && (dns == "*" || host_matches(dns, hostname))
    }

    /// Hosts of the services that imported VirtualServices route to.
    pub fn virtual_service_destinations(
        &self,
        virtual_services: &[Config<'a, VirtualServiceSpec>],
        domain: &str,
    ) -> Vec<String> {
        if self.egress().is_empty() {
            return Vec::new();
        }
        virtual_services
            .iter()
            .filter(|vs| {
                vs.spec
                    .hosts
                    .iter()
                    .any(|h| self.imports(vs.namespace, &fqdn(h, vs.namespace, domain)))
            })
            .flat_map(|vs| destinations(vs, domain))
            .collect()
    }
}

/// Every destination and mirror host of a VirtualService's rules.
fn destinations(vs: &Config<VirtualServiceSpec>, domain: &str) -> Vec<String> {
    let spec = vs.spec;
    let http = spec.http.iter().flat_map(|r| {
        r.route
            .iter()
            .map(|d| &d.destination.host)
            .chain(r.mirror.iter().map(|m| &m.host))
            .chain(r.mirrors.iter().map(|m| &m.destination.host))
    });
    let tcp = spec
        .tcp
        .iter()
        .flat_map(|r| r.route.iter().map(|d| &d.destination.host));
    let tls = spec
        .tls
        .iter()
        .flat_map(|r| r.route.iter().map(|d| &d.destination.host));
    http.chain(tcp)
        .chain(tls)
        .map(|host| fqdn(host, vs.namespace, domain))
        .collect()
}

/// The Sidecar that applies to `proxy` (see the module docs).
fn select<'a>(proxy: &Proxy, snapshot: &'a MeshSnapshot) -> Option<Config<'a, SidecarSpec>> {
    let sidecars: Vec<Config<'a, SidecarSpec>> = snapshot
        .config
        .iter()
        .filter_map(|resource| match resource.as_ref() {
            Resource::Sidecar(sidecar) => Some(Config {
                namespace: resource.namespace(),
                name: resource.name(),
                spec: &sidecar.spec,
            }),
            _ => None,
        })
        .collect();
    let selecting = sidecars.iter().find(|s| {
        s.namespace == proxy.namespace
            && s.spec
                .workload_selector
                .as_ref()
                .is_some_and(|w| w.matches(&proxy.labels))
    });
    let namespace_wide = |ns: &str| {
        sidecars
            .iter()
            .find(|s| s.namespace == ns && s.spec.workload_selector.is_none())
    };
    selecting
        .or_else(|| namespace_wide(&proxy.namespace))
        .or_else(|| namespace_wide(&snapshot.mesh.root_namespace))
        .copied()
}

/// The inbound ports a Sidecar's `ingress` declares: the port's protocol as
/// written, else as the proxy's own service on that port says, else TCP.
pub fn ingress_ports<'a>(ctx: &Context<'a>, own: &[InboundPort<'a>]) -> Vec<InboundPort<'a>> {
    let scope = ctx.sidecar;
    let mut ports: Vec<InboundPort<'a>> = scope
        .ingress()
        .iter()
        .filter_map(|listener| {
            let number = u16::try_from(listener.port.number).ok()?;
            let served = own.iter().find(|p| p.port == number);
            let declared = ServicePort {
                name: listener.port.name.clone(),
                number,
                protocol: Protocol::parse(&listener.port.protocol),
                target_port: None,
            };
            let kind = match (protocol(&declared), served) {
                (None, Some(served)) => served.kind,
                _ => port_kind(&declared)?,
            };
            let bind = scope.binds(listener.capture_mode).then(|| {
                if listener.bind.is_empty() {
                    ctx.proxy.ip.to_string()
                } else {
                    listener.bind.clone()
                }
            });
            Some(InboundPort {
                port: number,
                kind,
                grpc: protocol(&declared) == Some(Protocol::Grpc) || served.is_some_and(|s| s.grpc),
                service_port: served.map_or(number, |s| s.service_port),
                services: served.map(|s| s.services.clone()).unwrap_or_default(),
                default_endpoint: &listener.default_endpoint,
                bind,
            })
        })
        .collect();
    ports.sort_by_key(|p| p.port);
    ports
}

/// Where an inbound cluster sends its traffic: the port's
/// `defaultEndpoint` — `127.0.0.1:PORT` or `[::1]:PORT` as written,
/// `0.0.0.0:PORT`, `[::]:PORT` or `:PORT` to the proxy's instance IP, a
/// `unix://` socket as a pipe — else the application beside the proxy on
/// `127.0.0.1:<port>`.
pub fn inbound_address(ctx: &Context, inbound: &InboundPort) -> Address {
    let endpoint = inbound.default_endpoint;
    if let Some(path) = endpoint.strip_prefix(UNIX_PREFIX) {
        return Address {
            address: Some(address::Address::Pipe(Pipe {
                path: path.to_owned(),
                mode: 0,
            })),
        };
    }
    let parsed = endpoint.rsplit_once(':').and_then(|(host, port)| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host, port.parse::<u16>().ok()?))
    });
    match parsed {
        Some((host, port)) => {
            let unspecified = host.is_empty()
                || host
                    .parse::<IpAddr>()
                    .is_ok_and(|ip: IpAddr| ip.is_unspecified());
            if unspecified {
                socket(&ctx.proxy.ip.to_string(), port)
            } else {
                socket(host, port)
            }
        }
        None => socket("127.0.0.1", inbound.port),
    }
}

/// The ports of an egress listener: its own, or every port of the
/// services it imports.
pub fn egress_ports<'a>(
    ctx: &Context<'a>,
    listener: &IstioEgressListener,
) -> Vec<(u16, &'a Service, &'a ServicePort)> {
    let mut ports = Vec::new();
    for service in &ctx.services {
        if !ctx
            .sidecar
            .listener_imports(listener, &service.namespace, &service.hostname)
        {
            continue;
        }
        for port in &service.ports {
            let wanted = listener
                .port
                .as_ref()
                .is_none_or(|p| p.number == u32::from(port.number));
            if wanted && port_kind(port).is_some() {
                ports.push((port.number, *service, port));
            }
        }
    }
    ports
}

/// A bound egress listener names a unix socket, which is left out.
pub fn is_unix(bind: &str) -> bool {
    bind.starts_with(UNIX_PREFIX)
}

#[cfg(test)]
mod tests;
