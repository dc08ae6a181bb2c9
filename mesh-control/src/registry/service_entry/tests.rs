use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};

use super::*;

const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details-vm, namespace: bookinfo}
spec:
  hosts: [details.bookinfo.svc.cluster.local, details]
  addresses: [240.0.0.10, 10.1.0.0/24, 10.2.0.1/32]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9443, name: grpc, protocol: GRPC}
  subjectAltNames: ["spiffe://cluster.local/ns/bookinfo/sa/details-legacy"]
  workloadSelector:
    labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v1, namespace: bookinfo}
spec:
  address: 10.0.0.7
  ports: {http: 9081}
  labels: {app: details, version: v1, security.istio.io/tlsMode: istio}
  serviceAccount: bookinfo-details
  locality: us-east1/b
  network: vm-net
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v2, namespace: bookinfo}
spec:
  address: 10.0.0.8
  labels: {app: details, version: v2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-elsewhere, namespace: default}
spec:
  address: 10.0.0.9
  labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-by-name, namespace: bookinfo}
spec:
  address: details.vm.example.com
  labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api, namespace: default}
spec:
  hosts: [api]
  resolution: STATIC
  exportTo: ["."]
  ports:
  - {number: 443, name: https, protocol: TLS}
  - {number: 8000, name: plain}
  endpoints:
  - {address: 1.2.3.4}
  - {address: 1.2.3.5, ports: {https: 8443}, weight: 2, serviceAccount: api}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: regional-api, namespace: default}
spec:
  hosts: [api.example.com]
  resolution: DNS
  ports:
  - {number: 443, name: https, protocol: TLS}
  endpoints:
  - {address: us.api.example.com, locality: us-east1, weight: 3}
  - {address: eu.api.example.com, ports: {https: 8443}, locality: europe-west1}
  - {address: 10.9.9.9}
"#;

fn build() -> ServiceSet {
    let mut report = mesh_api::load::load_str("registry.yaml", CONFIG);
    report.validate();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let mut config: Vec<Arc<Resource>> = report
        .resources
        .into_iter()
        .map(|l| Arc::new(l.resource))
        .collect();
    config.sort_by_key(|r| crate::store::Key::of(r));
    ServiceEntryRegistry.services(&config, &MeshConfig::default())
}

#[test]
fn one_service_per_host_with_its_ports_and_names_as_written() {
    let set = build();
    let names: Vec<(&str, &str)> = set
        .services
        .iter()
        .map(|s| (s.hostname.as_str(), s.namespace.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("api", "default"),
            ("api.example.com", "default"),
            ("details", "bookinfo"),
            ("details.bookinfo.svc.cluster.local", "bookinfo")
        ]
    );
    let details = &set.services[2];
    assert_eq!(
        details.addresses,
        [
            "240.0.0.10".parse::<IpAddr>().unwrap(),
            "10.2.0.1".parse().unwrap()
        ]
    );
    assert_eq!(
        details.ports[0],
        ServicePort {
            name: "http".into(),
            number: 9080,
            protocol: Some(Protocol::Http),
            target_port: Some(8080)
        }
    );
    assert_eq!(details.ports[1].protocol, Some(Protocol::Grpc));
    assert_eq!(details.resolution, Resolution::Static);
    assert_eq!(details.location, Location::MeshInternal);
    assert_eq!(details.export_to, ["*"]);
    assert_eq!(
        details.subject_alt_names,
        [
            "spiffe://cluster.local/ns/bookinfo/sa/details-legacy",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-details"
        ]
    );
    let api = &set.services[0];
    assert_eq!(api.export_to, ["."]);
    assert_eq!(api.location, Location::MeshExternal);
    assert_eq!(api.ports[1].protocol, None);
    assert_eq!(
        api.subject_alt_names,
        ["spiffe://cluster.local/ns/default/sa/api"]
    );
}

#[test]
fn selected_workload_entries_become_endpoints_of_every_host() {
    let set = build();
    let of = |host: &str| -> Vec<&Endpoint> {
        set.endpoints
            .iter()
            .filter(|e| e.service == host)
            .map(AsRef::as_ref)
            .collect()
    };
    // Same namespace only, and only IP addresses.
    let details = of("details");
    assert_eq!(details.len(), 2);
    assert_eq!(of("details.bookinfo.svc.cluster.local").len(), 2);
    let v1 = details[0];
    assert_eq!(v1.address.to_string(), "10.0.0.7");
    assert_eq!(v1.service_namespace, "bookinfo");
    assert_eq!(v1.namespace, "bookinfo");
    // Named port, else the target port, else the port number.
    assert_eq!(
        v1.ports,
        BTreeMap::from([("grpc".into(), 9443), ("http".into(), 9081)])
    );
    assert_eq!(v1.labels["version"], "v1");
    assert_eq!(v1.service_account, "bookinfo-details");
    assert_eq!(v1.locality, "us-east1/b");
    assert_eq!(v1.network, "vm-net");
    assert_eq!(v1.weight, 3);
    assert!(v1.mesh_tls);
    let v2 = details[1];
    assert_eq!(v2.ports["http"], 8080);
    assert_eq!(v2.weight, 1);
    assert!(!v2.mesh_tls);
    assert_eq!(v2.service_account, "");
}

#[test]
fn inline_endpoints_belong_to_the_service_entry() {
    let set = build();
    let api: Vec<&Arc<Endpoint>> = set
        .endpoints
        .iter()
        .filter(|e| e.service == "api")
        .collect();
    assert_eq!(api.len(), 2);
    assert_eq!(api[0].namespace, "default");
    assert_eq!(
        api[0].ports,
        BTreeMap::from([("https".into(), 443), ("plain".into(), 8000)])
    );
    assert_eq!(api[1].ports["https"], 8443);
    assert_eq!(api[1].weight, 2);
    assert!(ServiceEntryRegistry.subscribe().is_none());
}

#[test]
fn a_dns_entrys_named_endpoints_go_with_its_service() {
    let set = build();
    let service = set
        .services
        .iter()
        .find(|s| s.hostname == "api.example.com")
        .unwrap();
    let hosts: Vec<(&str, u16, &str, u32)> = service
        .named_endpoints
        .iter()
        .map(|e| {
            (
                e.host.as_str(),
                e.ports["https"],
                e.locality.as_str(),
                e.weight,
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("us.api.example.com", 443, "us-east1", 3),
            ("eu.api.example.com", 8443, "europe-west1", 1)
        ]
    );
    // An address stays a registry endpoint; a named one in a STATIC entry
    // is left out (the WorkloadEntry `details-by-name` above).
    let ips: Vec<_> = set
        .endpoints
        .iter()
        .filter(|e| e.service == "api.example.com")
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(ips, ["10.9.9.9"]);
    let details = set
        .services
        .iter()
        .find(|s| s.hostname == "details")
        .unwrap();
    assert!(details.named_endpoints.is_empty());
}
