//! Shared by the translation tests: a Bookinfo registry and config read
//! from Istio YAML, and a productpage sidecar.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesh_api::load::{Resource, load_path, load_str};
use mesh_api::networking::service_entry::ServiceEntrySpec;
use mesh_api::networking::workload_entry::WorkloadEntrySpec;
use mesh_control::model::{Endpoint, MeshSnapshot, Proxy, Service, ServicePort};

pub const REGISTRY: &str = include_str!("registry.yaml");

/// The Istio samples kept beside the repository.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/istio-bookinfo")
}

/// The walkthrough configs of this repository.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo/networking")
}

/// Reads Istio YAML; any problem fails the test.
pub fn read(text_or_file: Source) -> Vec<Resource> {
    let report = match text_or_file {
        Source::Text(text) => load_str("inline.yaml", text),
        Source::File(path) => load_path(path),
    };
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report.resources.into_iter().map(|l| l.resource).collect()
}

#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Text(&'a str),
    File(&'a Path),
}

/// Services and endpoints from ServiceEntries and the WorkloadEntries they
/// select (or their inline endpoints), as the registry builds them.
pub fn registry(resources: &[Resource]) -> (Vec<Arc<Service>>, Vec<Arc<Endpoint>>) {
    let workloads: Vec<(&str, &str, &WorkloadEntrySpec)> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::WorkloadEntry(we) => Some((r.namespace(), r.name(), &we.spec)),
            _ => None,
        })
        .collect();
    let mut services = Vec::new();
    let mut endpoints = Vec::new();
    for resource in resources {
        let Resource::ServiceEntry(se) = resource else {
            continue;
        };
        let namespace = resource.namespace();
        let spec: &ServiceEntrySpec = &se.spec;
        let selected: Vec<&WorkloadEntrySpec> = match &spec.workload_selector {
            Some(selector) => workloads
                .iter()
                .filter(|(ns, _, we)| *ns == namespace && selector.matches(&we.labels))
                .map(|(_, _, we)| *we)
                .collect(),
            None => spec.endpoints.iter().collect(),
        };
        for host in &spec.hosts {
            services.push(Arc::new(Service {
                hostname: host.clone(),
                namespace: namespace.into(),
                addresses: spec
                    .addresses
                    .iter()
                    .filter_map(|a| a.parse().ok())
                    .collect(),
                ports: spec
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        name: p.name.clone(),
                        number: p.number as u16,
                        protocol: p.protocol(),
                        target_port: p.target_port.map(|t| t as u16),
                    })
                    .collect(),
                resolution: spec.resolution,
                location: spec.location,
                export_to: spec.export_to.clone(),
                subject_alt_names: spec.subject_alt_names.clone(),
                named_endpoints: Vec::new(),
            }));
            for we in &selected {
                let Ok(address) = we.address.parse::<IpAddr>() else {
                    continue;
                };
                endpoints.push(Arc::new(Endpoint {
                    service: host.clone(),
                    service_namespace: namespace.into(),
                    address,
                    ports: we
                        .ports
                        .iter()
                        .map(|(k, v)| (k.clone(), *v as u16))
                        .collect(),
                    labels: we.labels.clone(),
                    namespace: namespace.into(),
                    service_account: we.service_account.clone(),
                    locality: we.locality.clone(),
                    network: we.network.clone(),
                    weight: we.weight.unwrap_or(1),
                    mesh_tls: we
                        .labels
                        .get("security.istio.io/tlsMode")
                        .map(String::as_str)
                        == Some("istio"),
                }));
            }
        }
    }
    (services, endpoints)
}

/// A snapshot of the Bookinfo registry with `config` applied.
pub fn snapshot(config: Vec<Resource>) -> MeshSnapshot {
    let (services, endpoints) = registry(&read(Source::Text(REGISTRY)));
    MeshSnapshot {
        version: 1,
        config: config
            .into_iter()
            .filter(|r| !matches!(r, Resource::ServiceEntry(_) | Resource::WorkloadEntry(_)))
            .map(Arc::new)
            .collect(),
        services,
        endpoints,
        ..MeshSnapshot::default()
    }
}

/// A sidecar of workload `name` (`<app>-<version>`) at `ip` in `default`.
pub fn sidecar(app: &str, version: &str, ip: &str) -> Proxy {
    let labels: BTreeMap<String, String> = [
        ("app", app),
        ("version", version),
        ("security.istio.io/tlsMode", "istio"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let workload = format!("{app}-{version}");
    Proxy {
        id: format!("sidecar~{ip}~{workload}-6b9f.default~default.svc.cluster.local")
            .parse()
            .expect("a valid node id"),
        kind: mesh_api::names::ProxyKind::Sidecar,
        namespace: "default".into(),
        ip: ip.parse().expect("an IP"),
        labels,
        service_account: format!("bookinfo-{app}"),
        workload_name: workload,
        grpc_generator: false,
        locality: String::new(),
        metadata: BTreeMap::new(),
    }
}

pub fn productpage() -> Proxy {
    sidecar("productpage", "v1", "127.0.0.10")
}

/// Istio's ingress gateway, `istio-ingressgateway` in `istio-system`.
pub fn ingress_gateway() -> Proxy {
    Proxy {
        id: "router~10.0.0.9~istio-ingressgateway-abc.istio-system~istio-system.svc.cluster.local"
            .parse()
            .expect("a valid node id"),
        kind: mesh_api::names::ProxyKind::Router,
        namespace: "istio-system".into(),
        ip: "10.0.0.9".parse().expect("an IP"),
        labels: [("istio".to_owned(), "ingressgateway".to_owned())].into(),
        service_account: "istio-ingressgateway-service-account".into(),
        workload_name: "istio-ingressgateway".into(),
        grpc_generator: false,
        locality: String::new(),
        metadata: BTreeMap::new(),
    }
}
