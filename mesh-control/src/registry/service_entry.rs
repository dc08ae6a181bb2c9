//! Services from ServiceEntries, endpoints from their inline `endpoints` and
//! from the WorkloadEntries their `workloadSelector` picks, as istiod's
//! ServiceEntry controller builds them:
//!
//! - One service per host. Hosts are used as written: Istio does not expand
//!   a ServiceEntry's short host names.
//! - Ports keep their name, number, protocol (unset: detected) and target port.
//! - A `workloadSelector` picks WorkloadEntries of the ServiceEntry's own
//!   namespace whose `spec.labels` carry all the selector's labels.
//! - An endpoint's port for each service port is the one the workload names
//!   (`ports: {http: 8080}`), else the service port's `targetPort`, else its
//!   number; every service port is filled in.
//! - Endpoint weight defaults to 1; `mesh_tls` is set for workloads labelled
//!   `security.istio.io/tlsMode: istio`.
//! - Subject alt names: the ServiceEntry's `subjectAltNames`, then the SPIFFE
//!   ids of its endpoints' service accounts (trust domain from MeshConfig).
//! - An empty `exportTo` becomes `*` (Istio's default `defaultServiceExportTo`).
//!
//! - Endpoints of a DNS ServiceEntry (inline or selected WorkloadEntries)
//!   that name a host go with the service (`named_endpoints`): the proxy
//!   looks them up.
//!
//! Left out: endpoints whose address is a host name in other ServiceEntries
//! or a `unix://` socket, WorkloadEntries with no address (reached through a
//! network gateway), and service `addresses` that are CIDR blocks wider than
//! one address.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use mesh_api::load::Resource;
use mesh_api::names::SpiffeId;
use mesh_api::networking::service_entry::Resolution;
use mesh_api::networking::{ServiceEntry, WorkloadEntrySpec};
use tokio::sync::watch;

use super::{ServiceRegistry, ServiceSet};
use crate::model::{Endpoint, MeshConfig, NamedEndpoint, Service, ServicePort};

/// The label that says a workload runs a sidecar speaking mesh mTLS.
const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Services declared with ServiceEntry and WorkloadEntry.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServiceEntryRegistry;

impl ServiceRegistry for ServiceEntryRegistry {
    fn name(&self) -> String {
        "serviceentry".into()
    }

    fn services(&self, config: &[Arc<Resource>], mesh: &MeshConfig) -> ServiceSet {
        let workloads: Vec<Workload<'_>> = config
            .iter()
            .filter_map(|r| match r.as_ref() {
                Resource::WorkloadEntry(entry) => Some(Workload {
                    spec: &entry.spec,
                    namespace: r.namespace(),
                }),
                _ => None,
            })
            .collect();
        let mut set = ServiceSet::default();
        for resource in config {
            if let Resource::ServiceEntry(entry) = resource.as_ref() {
                add_entry(entry, resource.namespace(), &workloads, mesh, &mut set);
            }
        }
        set.sort();
        set
    }

    fn subscribe(&self) -> Option<watch::Receiver<()>> {
        None
    }
}

/// A workload as written: a WorkloadEntry's spec or an inline endpoint.
#[derive(Clone, Copy, Debug)]
struct Workload<'a> {
    spec: &'a WorkloadEntrySpec,
    namespace: &'a str,
}

fn add_entry(
    entry: &ServiceEntry,
    namespace: &str,
    workloads: &[Workload<'_>],
    mesh: &MeshConfig,
    set: &mut ServiceSet,
) {
    let spec = &entry.spec;
    let selected: Vec<Workload<'_>> = match &spec.workload_selector {
        Some(selector) => workloads
            .iter()
            .filter(|w| w.namespace == namespace && selector.matches(&w.spec.labels))
            .copied()
            .collect(),
        None => spec
            .endpoints
            .iter()
            .map(|spec| Workload { spec, namespace })
            .collect(),
    };
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .map(|p| ServicePort {
            name: p.name.clone(),
            number: port_number(p.number),
            protocol: p.protocol(),
            target_port: p.target_port.map(port_number),
        })
        .collect();
    let mut subject_alt_names = spec.subject_alt_names.clone();
    for workload in &selected {
        let account = &workload.spec.service_account;
        if !account.is_empty() {
            let id = SpiffeId::new(&mesh.trust_domain, workload.namespace, account).to_string();
            if !subject_alt_names.contains(&id) {
                subject_alt_names.push(id);
            }
        }
    }
    let export_to = if spec.export_to.is_empty() {
        vec!["*".to_owned()]
    } else {
        spec.export_to.clone()
    };
    let by_name = matches!(spec.resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    for host in &spec.hosts {
        let mut service = Service {
            hostname: host.clone(),
            namespace: namespace.to_owned(),
            addresses: spec.addresses.iter().filter_map(|a| address(a)).collect(),
            ports: ports.clone(),
            resolution: spec.resolution,
            location: spec.location,
            export_to: export_to.clone(),
            subject_alt_names: subject_alt_names.clone(),
            named_endpoints: Vec::new(),
        };
        for workload in &selected {
            if by_name && is_host_name(&workload.spec.address) {
                let named = named_endpoint(&service, workload);
                service.named_endpoints.push(named);
            } else if let Some(endpoint) = endpoint(&service, workload) {
                set.endpoints.push(Arc::new(endpoint));
            }
        }
        set.services.push(Arc::new(service));
    }
}

/// An address that names a host: neither an IP nor a `unix://` socket.
fn is_host_name(address: &str) -> bool {
    !address.is_empty() && address.parse::<IpAddr>().is_err() && !address.starts_with("unix://")
}

/// Every service port's number at the workload: the one it names, else the
/// port's `targetPort`, else its number.
fn workload_ports(service: &Service, spec: &WorkloadEntrySpec) -> BTreeMap<String, u16> {
    service
        .ports
        .iter()
        .map(|port| {
            let number = spec
                .ports
                .get(&port.name)
                .map(|n| port_number(*n))
                .or(port.target_port)
                .unwrap_or(port.number);
            (port.name.clone(), number)
        })
        .collect()
}

fn named_endpoint(service: &Service, workload: &Workload<'_>) -> NamedEndpoint {
    let spec = workload.spec;
    NamedEndpoint {
        host: spec.address.clone(),
        ports: workload_ports(service, spec),
        labels: spec.labels.clone(),
        namespace: workload.namespace.to_owned(),
        locality: spec.locality.clone(),
        weight: spec.weight.unwrap_or(1).max(1),
        mesh_tls: mesh_tls(spec),
    }
}

/// The workload runs a sidecar speaking mesh mTLS (`tlsMode: istio`).
fn mesh_tls(spec: &WorkloadEntrySpec) -> bool {
    spec.labels
        .get(TLS_MODE_LABEL)
        .is_some_and(|m| m == "istio")
}

/// The endpoint of `workload` for `service`; `None` when its address is not an IP.
fn endpoint(service: &Service, workload: &Workload<'_>) -> Option<Endpoint> {
    let spec = workload.spec;
    let Ok(address) = spec.address.parse::<IpAddr>() else {
        tracing::debug!(
            service = %service.hostname,
            address = %spec.address,
            "endpoint left out of the registry: its address is not an IP address"
        );
        return None;
    };
    let ports = workload_ports(service, spec);
    Some(Endpoint {
        service: service.hostname.clone(),
        service_namespace: service.namespace.clone(),
        address,
        ports,
        labels: spec.labels.clone(),
        namespace: workload.namespace.to_owned(),
        service_account: spec.service_account.clone(),
        locality: spec.locality.clone(),
        network: spec.network.clone(),
        weight: spec.weight.unwrap_or(1).max(1),
        mesh_tls: mesh_tls(spec),
    })
}

/// A service address: an IP, or a CIDR block of exactly one address.
fn address(text: &str) -> Option<IpAddr> {
    match text.split_once('/') {
        None => text.parse().ok(),
        Some((ip, bits)) => {
            let ip: IpAddr = ip.parse().ok()?;
            let single = if ip.is_ipv4() { "32" } else { "128" };
            (bits == single).then_some(ip)
        }
    }
}

/// Port numbers were validated to 1..=65535 when the config was read.
fn port_number(number: u32) -> u16 {
    u16::try_from(number).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests;
