//! What one proxy sees of the snapshot: the services exported to its
//! namespace, the DestinationRule and VirtualService that apply to each host,
//! the endpoints of each service, and the proxy's own inbound ports.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};

use mesh_api::load::Resource;
use mesh_api::names::fqdn;
use mesh_api::networking::destination_rule::DestinationRuleSpec;
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::virtual_service::VirtualServiceSpec;

use super::peer_authentication::PeerAuthentications;
use super::sidecar_scope::{self, SidecarScope};
use super::tcp_route::TcpLimits;
use crate::model::{Endpoint, MeshSnapshot, OutboundTrafficPolicy, Proxy, Service, ServicePort};

/// A piece of Istio config with the namespace and name it came from.
#[derive(Debug)]
pub struct Config<'a, T> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub spec: &'a T,
}

impl<T> Clone for Config<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Config<'_, T> {}

/// The snapshot as seen from one proxy.
#[derive(Debug)]
pub struct Context<'a> {
    pub proxy: &'a Proxy,
    pub snapshot: &'a MeshSnapshot,
    /// The Sidecar resource that applies to the proxy.
    pub sidecar: SidecarScope<'a>,
    /// Services visible to the proxy's namespace and imported by its
    /// Sidecar, by hostname.
    pub services: Vec<&'a Service>,
    /// By service hostname, then service namespace.
    endpoints: OnceCell<EndpointIndex>,
    destination_rules: Vec<Config<'a, DestinationRuleSpec>>,
    virtual_services: Vec<Config<'a, VirtualServiceSpec>>,
    /// Every PeerAuthentication, wherever it is: they apply by the
    /// workload's namespace, not the proxy's.
    pub peer_authentications: PeerAuthentications<'a>,
    /// `destination_rules` and `virtual_services` by the hosts they name.
    /// These indexes, and `endpoints`, are built on first use: a sidecar's
    /// own (inbound) resources need none of them, and are built once per
    /// proxy where the rest is built once per scope.
    destination_rule_hosts: OnceCell<HostIndex>,
    virtual_service_hosts: OnceCell<HostIndex>,
}

/// Positions in the snapshot's endpoints, by service hostname and namespace.
type EndpointIndex = HashMap<(String, String), Vec<usize>>;

/// Rules (by their index in a list) by the fully qualified hosts they name.
/// A lookup per service is then a map access plus a pass over the wildcard
/// hosts, where scanning every rule and qualifying its hosts each time made
/// translate quadratic: a thousand services with a rule each took a
/// million host comparisons and allocations per proxy.
#[derive(Debug, Default)]
struct HostIndex {
    exact: HashMap<String, Vec<usize>>,
    /// Hosts starting with `*`.
    wildcard: Vec<(usize, String)>,
}

impl HostIndex {
    fn insert(&mut self, rule: usize, host: String) {
        if host.starts_with('*') {
            self.wildcard.push((rule, host));
        } else {
            self.exact.entry(host).or_default().push(rule);
        }
    }

    /// The rules with a host covering `hostname`, in list order, each with
    /// whether one of its hosts names `hostname` exactly.
    fn covering(&self, hostname: &str) -> BTreeMap<usize, bool> {
        let mut rules: BTreeMap<usize, bool> = self
            .exact
            .get(hostname)
            .into_iter()
            .flatten()
            .map(|rule| (*rule, true))
            .collect();
        for (rule, pattern) in &self.wildcard {
            if host_matches(pattern, hostname) {
                rules.entry(*rule).or_insert(false);
            }
        }
        rules
    }
}

/// How a service port is proxied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// HTTP/1.1 (or HTTP/2 when `http2`): routed by an HTTP connection manager.
    Http { http2: bool },
    /// Opaque TCP, TLS, and ports whose protocol is unknown.
    Tcp,
}

/// One port the proxy's workload serves, with the services that reach it.
#[derive(Debug, Clone)]
pub struct InboundPort<'a> {
    /// The port the application listens on (the endpoint's port).
    pub port: u16,
    pub kind: PortKind,
    /// gRPC, which istiod does not retry inbound.
    pub grpc: bool,
    /// The service port that leads here (of the first service).
    pub service_port: u16,
    pub services: Vec<&'a Service>,
    /// A Sidecar ingress port's `defaultEndpoint`; empty for the
    /// application beside the proxy on the same port.
    pub default_endpoint: &'a str,
    /// The address a listener of its own binds (Sidecar ingress with
    /// capture mode NONE); `None` when `virtualInbound` serves the port.
    pub bind: Option<String>,
}

/// Whether config exported to `export_to` from `owner` is visible in `namespace`.
/// An empty list is Istio's default, exported everywhere.
pub fn exported(export_to: &[String], owner: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|to| match to.as_str() {
            "*" => true,
            "." => owner == namespace,
            "~" => false,
            name => name == namespace,
        })
}

/// Whether a (possibly wildcard) host written in config covers `hostname`.
pub fn host_matches(pattern: &str, hostname: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => hostname.ends_with(suffix),
        None => pattern == hostname,
    }
}

/// The protocol of a port: as declared, else from its name's prefix
/// (`http-web`, `grpc`), as Istio reads port names.
pub fn protocol(port: &ServicePort) -> Option<Protocol> {
    port.protocol.or_else(|| {
        let prefix = port.name.split('-').next().unwrap_or_default();
        Protocol::parse(prefix)
    })
}

pub fn port_kind(port: &ServicePort) -> Option<PortKind> {
    match protocol(port) {
        Some(Protocol::Udp) => None,
        Some(p) if p.is_http() => Some(PortKind::Http {
            http2: p.is_http2(),
        }),
        _ => Some(PortKind::Tcp),
    }
}

/// The port an endpoint receives a service port's traffic on.
pub fn endpoint_port(endpoint: &Endpoint, port: &ServicePort) -> u16 {
    endpoint
        .ports
        .get(&port.name)
        .copied()
        .or(port.target_port)
        .unwrap_or(port.number)
}

/// Whether `labels` carry every one of `selector`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Whether outbound translation for a sidecar in `namespace` reads the
/// proxy's labels: a DestinationRule there with a `workloadSelector`, or a
/// VirtualService match on `sourceLabels`. Without either, sidecars that
/// differ only by labels get the same outbound resources.
pub fn outbound_reads_labels(namespace: &str, snapshot: &MeshSnapshot) -> bool {
    snapshot
        .config
        .iter()
        .any(|resource| match resource.as_ref() {
            Resource::DestinationRule(dr) => {
                dr.spec.workload_selector.is_some() && resource.namespace() == namespace
            }
            Resource::VirtualService(vs) => {
                let spec = &vs.spec;
                spec.http
                    .iter()
                    .flat_map(|r| &r.r#match)
                    .any(|m| !m.source_labels.is_empty())
                    || spec
                        .tcp
                        .iter()
                        .flat_map(|r| &r.r#match)
                        .any(|m| !m.source_labels.is_empty())
                    || spec
                        .tls
                        .iter()
                        .flat_map(|r| &r.r#match)
                        .any(|m| !m.source_labels.is_empty())
            }
            _ => false,
        })
}

impl<'a> Context<'a> {
    pub fn new(proxy: &'a Proxy, snapshot: &'a MeshSnapshot) -> Context<'a> {
        let namespace = proxy.namespace.as_str();
        let mut services: Vec<&Service> = snapshot
            .services
            .iter()
            .map(AsRef::as_ref)
            .filter(|s| exported(&s.export_to, &s.namespace, namespace))
            .collect();
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        // Two namespaces declaring one host: the proxy's own namespace wins, as in Istio.
        services.dedup_by(|later, first| {
            if later.hostname != first.hostname {
                return false;
            }
            if later.namespace == namespace {
                std::mem::swap(later, first);
            }
            true
        });
        let mut destination_rules = Vec::new();
        let mut virtual_services = Vec::new();
        let mut peer_authentications = PeerAuthentications::new(&snapshot.mesh.root_namespace);
        for resource in &snapshot.config {
            match resource.as_ref() {
                Resource::PeerAuthentication(pa) => peer_authentications.push(Config {
                    namespace: resource.namespace(),
                    name: resource.name(),
                    spec: &pa.spec,
                }),
                Resource::DestinationRule(dr) => {
                    let config = Config {
                        namespace: resource.namespace(),
                        name: resource.name(),
                        spec: &dr.spec,
                    };
                    if exported(&dr.spec.export_to, config.namespace, namespace) {
                        destination_rules.push(config);
                    }
                }
                Resource::VirtualService(vs) => {
                    let config = Config {
                        namespace: resource.namespace(),
                        name: resource.name(),
                        spec: &vs.spec,
                    };
                    let for_sidecars =
                        vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
                    if for_sidecars
                        && !vs.spec.hosts.is_empty()
                        && exported(&vs.spec.export_to, config.namespace, namespace)
                    {
                        virtual_services.push(config);
                    }
                }
                _ => {}
            }
        }
        let sidecar = SidecarScope::new(proxy, snapshot);
        let dependencies =
            sidecar.virtual_service_destinations(&virtual_services, &snapshot.mesh.domain);
        services.retain(|s| {
            sidecar.imports(&s.namespace, &s.hostname) || dependencies.contains(&s.hostname)
        });
        Context {
            proxy,
            snapshot,
            sidecar,
            services,
            endpoints: OnceCell::new(),
            destination_rules,
            virtual_services,
            peer_authentications,
            destination_rule_hosts: OnceCell::new(),
            virtual_service_hosts: OnceCell::new(),
        }
    }

    fn endpoint_index(&self) -> &EndpointIndex {
        self.endpoints.get_or_init(|| {
            let mut index = EndpointIndex::new();
            for (i, endpoint) in self.snapshot.endpoints.iter().enumerate() {
                let key = (endpoint.service.clone(), endpoint.service_namespace.clone());
                index.entry(key).or_default().push(i);
            }
            index
        })
    }

    fn destination_rule_hosts(&self) -> &HostIndex {
        self.destination_rule_hosts.get_or_init(|| {
            let mut index = HostIndex::default();
            for (i, dr) in self.destination_rules.iter().enumerate() {
                index.insert(i, fqdn(&dr.spec.host, dr.namespace, self.domain()));
            }
            index
        })
    }

    fn virtual_service_hosts(&self) -> &HostIndex {
        self.virtual_service_hosts.get_or_init(|| {
            let mut index = HostIndex::default();
            for (i, vs) in self.virtual_services.iter().enumerate() {
                for host in &vs.spec.hosts {
                    index.insert(i, fqdn(host, vs.namespace, self.domain()));
                }
            }
            index
        })
    }

    pub fn domain(&self) -> &str {
        &self.snapshot.mesh.domain
    }

    /// What happens to traffic for hosts the registry does not know.
    pub fn outbound_traffic_policy(&self) -> OutboundTrafficPolicy {
        self.sidecar
            .outbound_traffic_policy(self.snapshot.mesh.outbound_traffic_policy)
    }

    pub fn service(&self, hostname: &str) -> Option<&'a Service> {
        self.services
            .binary_search_by(|s| s.hostname.as_str().cmp(hostname))
            .ok()
            .map(|i| self.services[i])
    }

    /// When TCP connections to the service `hostname` names are closed, as
    /// istiod reads it: `connectionPool.tcp` of the top-level traffic
    /// policy of its DestinationRule, the idle timeout falling back to the
    /// proxy's own.
    pub fn tcp_limits(&self, hostname: &str) -> TcpLimits {
        let tcp = self
            .service(hostname)
            .and_then(|service| self.destination_rule(service))
            .and_then(|rule| {
                rule.spec
                    .traffic_policy
                    .as_ref()?
                    .connection_pool
                    .as_ref()?
                    .tcp
                    .as_ref()
            });
        TcpLimits {
            idle_timeout: tcp
                .and_then(|t| t.idle_timeout)
                .map(|d| d.as_std())
                .or_else(|| self.proxy.idle_timeout()),
            max_duration: tcp
                .and_then(|t| t.max_connection_duration)
                .map(|d| d.as_std()),
        }
    }

    /// [`Context::tcp_limits`] for a `tcp` or `tls` route of `vs`: those of
    /// its first destination's host.
    pub fn route_tcp_limits(
        &self,
        vs: Config<VirtualServiceSpec>,
        route: &[mesh_api::networking::virtual_service::RouteDestination],
    ) -> TcpLimits {
        match route.first() {
            Some(first) => {
                self.tcp_limits(&fqdn(&first.destination.host, vs.namespace, self.domain()))
            }
            None => TcpLimits::default(),
        }
    }

    /// The endpoints of `service`, in snapshot order.
    pub fn endpoints(&self, service: &Service) -> impl Iterator<Item = &'a Endpoint> + '_ {
        let snapshot = self.snapshot;
        self.endpoint_index()
            .get(&(service.hostname.clone(), service.namespace.clone()))
            .into_iter()
            .flatten()
            .map(move |i| snapshot.endpoints[*i].as_ref())
    }

    /// The DestinationRule for `service`, looked up as Istio does: in the
    /// proxy's namespace, then the service's, then the root namespace; an
    /// exact host before a wildcard, a rule selecting this workload before
    /// one for the whole namespace.
    pub fn destination_rule(&self, service: &Service) -> Option<Config<'a, DestinationRuleSpec>> {
        let root = self.snapshot.mesh.root_namespace.as_str();
        let mut namespaces = vec![self.proxy.namespace.as_str()];
        for ns in [service.namespace.as_str(), root] {
            if !namespaces.contains(&ns) {
                namespaces.push(ns);
            }
        }
        let covering = self.destination_rule_hosts().covering(&service.hostname);
        namespaces.into_iter().find_map(|ns| {
            covering
                .iter()
                .map(|(i, exact)| (self.destination_rules[*i], *exact))
                .filter(|(dr, _)| dr.namespace == ns)
                .filter_map(|(dr, exact)| {
                    let selected = match &dr.spec.workload_selector {
                        None => false,
                        Some(selector) if dr.namespace == self.proxy.namespace => {
                            if !selector.matches(&self.proxy.labels) {
                                return None;
                            }
                            true
                        }
                        Some(_) => return None,
                    };
                    // Lower ranks first: exact hosts, then selecting rules.
                    Some(((!exact, !selected), dr))
                })
                .min_by_key(|(rank, _)| *rank)
                .map(|(_, dr)| dr)
        })
    }

    /// The VirtualService whose hosts cover `service`: one in the proxy's
    /// namespace first, then the first in config order; an exact host
    /// before a wildcard.
    pub fn virtual_service(&self, service: &Service) -> Option<Config<'a, VirtualServiceSpec>> {
        self.virtual_service_hosts()
            .covering(&service.hostname)
            .into_iter()
            .map(|(i, exact)| {
                let vs = self.virtual_services[i];
                ((!exact, vs.namespace != self.proxy.namespace), vs)
            })
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, vs)| vs)
    }

    /// The endpoints that are the proxy's own workload: its IP, its
    /// namespace, and no label that contradicts the proxy's labels (so
    /// that workloads sharing a loopback address stay apart).
    fn is_own(&self, endpoint: &Endpoint) -> bool {
        let proxy = self.proxy;
        endpoint.address == proxy.ip
            && endpoint.namespace == proxy.namespace
            && endpoint
                .labels
                .iter()
                .all(|(k, v)| proxy.labels.get(k).is_none_or(|mine| mine == v))
    }

    /// The ports the proxy's workload serves: those its Sidecar's
    /// `ingress` declares, else those of the services it backs.
    pub fn inbound_ports(&self) -> Vec<InboundPort<'a>> {
        let own = self.service_ports();
        if self.sidecar.ingress().is_empty() {
            own
        } else {
            sidecar_scope::ingress_ports(self, &own)
        }
    }

    /// The proxy's endpoints with their services, in service order.
    pub fn own_endpoints(&self) -> Vec<(&'a Service, &'a Endpoint)> {
        let mut own: Vec<(&'a Service, &'a Endpoint)> = self
            .snapshot
            .endpoints
            .iter()
            .filter(|endpoint| self.is_own(endpoint))
            .filter_map(|endpoint| {
                let service = self
                    .service(&endpoint.service)
                    .filter(|s| s.namespace == endpoint.service_namespace)?;
                Some((service, endpoint.as_ref()))
            })
            .collect();
        own.sort_by(|a, b| a.0.hostname.cmp(&b.0.hostname));
        own
    }

    /// The ports the proxy's workload serves, by the services it backs.
    fn service_ports(&self) -> Vec<InboundPort<'a>> {
        let mut ports: BTreeMap<u16, InboundPort<'a>> = BTreeMap::new();
        for (service, endpoint) in self.own_endpoints() {
            for port in &service.ports {
                let Some(kind) = port_kind(port) else {
                    continue;
                };
                let number = endpoint_port(endpoint, port);
                let entry = ports.entry(number).or_insert_with(|| InboundPort {
                    port: number,
                    kind,
                    grpc: protocol(port) == Some(Protocol::Grpc),
                    service_port: port.number,
                    services: Vec::new(),
                    default_endpoint: "",
                    bind: None,
                });
                if !entry
                    .services
                    .iter()
                    .any(|s| s.hostname == service.hostname)
                {
                    entry.services.push(service);
                }
            }
        }
        ports.into_values().collect()
    }
}
