//! Sidecar selection, egress host filtering, and the bound listeners of
//! capture mode NONE.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::address;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};
use prost::Message;

use crate::model::{Endpoint, MeshSnapshot, Proxy, Service, ServicePort};
use crate::translate::{Resources, translate};

fn service(name: &str, namespace: &str, ports: &[(u16, Protocol)]) -> Arc<Service> {
    Arc::new(Service {
        hostname: format!("{name}.{namespace}.svc.cluster.local"),
        namespace: namespace.into(),
        addresses: Vec::new(),
        ports: ports
            .iter()
            .map(|(number, protocol)| ServicePort {
                name: format!("{}-{number}", protocol.to_string().to_lowercase()),
                number: *number,
                protocol: Some(*protocol),
                target_port: None,
            })
            .collect(),
        resolution: Resolution::Static,
        location: Location::MeshInternal,
        export_to: Vec::new(),
        subject_alt_names: Vec::new(),
        named_endpoints: Vec::new(),
    })
}

fn endpoint(name: &str, ip: &str) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        service: format!("{name}.default.svc.cluster.local"),
        service_namespace: "default".into(),
        address: ip.parse().unwrap(),
        ports: BTreeMap::new(),
        labels: [("app".to_owned(), name.to_owned())].into(),
        namespace: "default".into(),
        service_account: name.into(),
        locality: String::new(),
        network: String::new(),
        weight: 1,
        mesh_tls: false,
    })
}

fn proxy(app: &str, ip: &str, interception_none: bool) -> Proxy {
    let mut metadata = BTreeMap::new();
    if interception_none {
        metadata.insert("INTERCEPTION_MODE".to_owned(), "NONE".into());
    }
    Proxy {
        id: format!("sidecar~{ip}~{app}.default~default.svc.cluster.local")
            .parse()
            .unwrap(),
        kind: mesh_api::names::ProxyKind::Sidecar,
        namespace: "default".into(),
        ip: ip.parse().unwrap(),
        labels: [("app".to_owned(), app.to_owned())].into(),
        service_account: app.into(),
        workload_name: app.into(),
        grpc_generator: false,
        locality: String::new(),
        metadata,
    }
}

/// reviews (9080 HTTP), ratings (9080 HTTP), a database (3306 TCP) in
/// `default`, and `other` (8080 HTTP) in namespace `other`.
fn snapshot(yaml: &str) -> MeshSnapshot {
    MeshSnapshot {
        config: crate::translate::tests::config(yaml),
        services: vec![
            service("reviews", "default", &[(9080, Protocol::Http)]),
            service("ratings", "default", &[(9080, Protocol::Http)]),
            service("db", "default", &[(3306, Protocol::Tcp)]),
            service("other", "other", &[(8080, Protocol::Http)]),
        ],
        endpoints: vec![
            endpoint("reviews", "127.0.0.2"),
            endpoint("db", "127.0.0.3"),
        ],
        ..MeshSnapshot::default()
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<&str> {
    items.iter().map(name).collect()
}

fn listener_names(resources: &Resources) -> Vec<&str> {
    names(&resources.listeners, |l| &l.name)
}

fn cluster_names(resources: &Resources) -> Vec<&str> {
    names(&resources.clusters, |c| &c.name)
}

fn listener<'a>(resources: &'a Resources, name: &str) -> &'a Listener {
    resources
        .listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no listener {name} in {:?}", listener_names(resources)))
}

fn manager(listener: &Listener) -> HttpConnectionManager {
    let filter = &listener.filter_chains[0].filters[0];
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => {
            HttpConnectionManager::decode(any.value.as_slice()).unwrap()
        }
        other => panic!("no typed config: {other:?}"),
    }
}

fn socket_of(address: &envoy_types::pb::envoy::config::core::v3::Address) -> String {
    match &address.address {
        Some(address::Address::SocketAddress(s)) => {
            let port = match s.port_specifier {
                Some(
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(
                        p,
                    ),
                ) => p,
                _ => 0,
            };
            format!("{}:{port}", s.address)
        }
        Some(address::Address::Pipe(p)) => format!("unix://{}", p.path),
        other => panic!("unexpected address {other:?}"),
    }
}

const CLIENT_NONE: &str = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: default}
spec:
  workloadSelector: {labels: {app: client}}
  egress:
  - port: {number: 9080, protocol: HTTP, name: http}
    bind: 127.1.2.3
    hosts: [./reviews.default.svc.cluster.local]
";

#[test]
fn egress_hosts_restrict_clusters_and_routes_in_capture_mode() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: [./reviews.default.svc.cluster.local, other/*]
";
    let resources = translate(&proxy("client", "10.0.0.9", false), &snapshot(yaml));
    assert_eq!(
        cluster_names(&resources),
        [
            "BlackHoleCluster",
            "InboundPassthroughCluster",
            "PassthroughCluster",
            "outbound|8080||other.other.svc.cluster.local",
            "outbound|9080||reviews.default.svc.cluster.local",
        ]
    );
    let route = resources.routes.iter().find(|r| r.name == "9080").unwrap();
    assert_eq!(
        names(&route.virtual_hosts, |v| &v.name),
        ["reviews.default.svc.cluster.local:9080", "allow_any"]
    );
    // The capture-mode shape stays.
    assert_eq!(
        listener_names(&resources),
        [
            "0.0.0.0_8080",
            "0.0.0.0_9080",
            "virtualInbound",
            "virtualOutbound"
        ]
    );
}

#[test]
fn a_virtual_service_brings_its_destinations_into_scope() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - hosts: [./reviews.default.svc.cluster.local]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: ratings}
";
    let resources = translate(&proxy("client", "10.0.0.9", false), &snapshot(yaml));
    let clusters = cluster_names(&resources);
    assert!(clusters.contains(&"outbound|9080||ratings.default.svc.cluster.local"));
    assert!(!clusters.contains(&"outbound|3306||db.default.svc.cluster.local"));
}

#[test]
fn capture_mode_none_binds_egress_listeners_and_drops_the_virtual_ones() {
    let resources = translate(&proxy("client", "127.1.2.3", true), &snapshot(CLIENT_NONE));
    assert_eq!(listener_names(&resources), ["127.1.2.3_9080"]);
    let egress = listener(&resources, "127.1.2.3_9080");
    assert_eq!(egress.bind_to_port, crate::translate::proto::boolv(true));
    assert_eq!(
        socket_of(egress.address.as_ref().unwrap()),
        "127.1.2.3:9080"
    );
    match manager(egress).route_specifier {
        Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
            assert_eq!(rds.route_config_name, "9080");
        }
        other => panic!("not RDS: {other:?}"),
    }
    // No original destination without capture: no passthrough, and
    // unknown hosts are refused.
    assert_eq!(
        cluster_names(&resources),
        [
            "BlackHoleCluster",
            "outbound|9080||reviews.default.svc.cluster.local"
        ]
    );
    let route = resources.routes.iter().find(|r| r.name == "9080").unwrap();
    assert_eq!(
        names(&route.virtual_hosts, |v| &v.name),
        ["reviews.default.svc.cluster.local:9080", "block_all"]
    );
}

#[test]
fn an_egress_listener_without_a_port_binds_every_imported_port_on_loopback() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress:
  - captureMode: NONE
    hosts: [./*]
";
    // A proxy with iptables capture: the NONE listener binds beside it.
    let resources = translate(&proxy("client", "10.0.0.9", false), &snapshot(yaml));
    let names = listener_names(&resources);
    for name in [
        "127.0.0.1_9080",
        "127.0.0.1_3306",
        "virtualOutbound",
        "0.0.0.0_9080",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let db = listener(&resources, "127.0.0.1_3306");
    assert_eq!(db.bind_to_port, crate::translate::proto::boolv(true));
    let text = format!("{:?}", db.filter_chains[0].filters);
    assert!(text.contains("tcp_proxy"), "{text}");
    assert!(!names.iter().any(|n| n.ends_with("_8080")), "{names:?}");
}

#[test]
fn ingress_binds_the_instance_ip_and_forwards_to_the_default_endpoint() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:7777
  - port: {number: 9090, protocol: TCP, name: tcp}
    bind: 127.0.0.9
    defaultEndpoint: unix:///run/app.sock
  egress:
  - hosts: [./ratings.default.svc.cluster.local]
";
    let resources = translate(&proxy("reviews", "127.0.0.2", true), &snapshot(yaml));
    assert_eq!(
        listener_names(&resources),
        ["127.0.0.1_9080", "127.0.0.2_9080", "127.0.0.9_9090"]
    );
    let inbound = listener(&resources, "127.0.0.2_9080");
    assert_eq!(
        socket_of(inbound.address.as_ref().unwrap()),
        "127.0.0.2:9080"
    );
    // PERMISSIVE: an mTLS chain and a plain text one.
    assert_eq!(inbound.filter_chains.len(), 2);
    let endpoint = |name: &str| {
        let cluster = resources.clusters.iter().find(|c| c.name == name).unwrap();
        let lb = &cluster.load_assignment.as_ref().unwrap().endpoints[0].lb_endpoints[0];
        match &lb.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(e)) => {
                socket_of(e.address.as_ref().unwrap())
            }
            other => panic!("no endpoint: {other:?}"),
        }
    };
    assert_eq!(endpoint("inbound|9080||"), "127.0.0.1:7777");
    assert_eq!(endpoint("inbound|9090||"), "unix:///run/app.sock");
}

#[test]
fn a_selecting_sidecar_wins_over_the_namespace_and_root_ones() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: mesh, namespace: mesh-system}
spec:
  egress:
  - hosts: [./db.default.svc.cluster.local]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: ratings-only, namespace: default}
spec:
  workloadSelector: {labels: {app: productpage}}
  egress:
  - hosts: [./ratings.default.svc.cluster.local]
";
    let imported = |app: &str, yaml: &str| {
        let resources = translate(&proxy(app, "10.0.0.9", false), &snapshot(yaml));
        cluster_names(&resources)
            .into_iter()
            .filter(|c| c.starts_with("outbound|"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        imported("productpage", yaml),
        ["outbound|9080||ratings.default.svc.cluster.local"]
    );
    // Not selected: the root namespace's default, `.` meaning the proxy's namespace.
    assert_eq!(
        imported("client", yaml),
        ["outbound|3306||db.default.svc.cluster.local"]
    );
    let namespace_wide = format!(
        "{yaml}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: default, namespace: default}}
spec:
  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}
"
    );
    let resources = translate(
        &proxy("client", "10.0.0.9", false),
        &snapshot(&namespace_wide),
    );
    assert_eq!(
        cluster_names(&resources).len(),
        3 + 4,
        "everything imported"
    );
    let route = resources.routes.iter().find(|r| r.name == "9080").unwrap();
    assert_eq!(route.virtual_hosts.last().unwrap().name, "block_all");
}

#[test]
fn a_sidecar_selecting_other_workloads_changes_nothing() {
    let plain = translate(&proxy("client", "10.0.0.9", false), &snapshot(""));
    let with_other = translate(
        &proxy("client", "10.0.0.9", false),
        &snapshot(CLIENT_NONE.replace("app: client", "app: nobody").as_str()),
    );
    // Compared by name: `Any` payloads holding protobuf maps are not
    // byte-for-byte stable.
    assert_eq!(listener_names(&plain), listener_names(&with_other));
    assert_eq!(cluster_names(&plain), cluster_names(&with_other));
    let routes = |r: &Resources| format!("{:?}", r.routes);
    assert_eq!(routes(&plain), routes(&with_other));
    assert!(listener_names(&plain).contains(&"virtualOutbound"));
}

#[test]
fn tcp_listeners_close_connections_as_the_destination_rule_says() {
    let yaml = "
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db, namespace: default}
spec:
  host: db
  trafficPolicy:
    connectionPool:
      tcp: {idleTimeout: 90s, maxConnectionDuration: 10m}
";
    let resources = translate(&proxy("client", "10.0.0.9", false), &snapshot(yaml));
    let db = resources
        .listeners
        .iter()
        .find(|l| l.name.ends_with("_3306"))
        .unwrap_or_else(|| panic!("no db listener in {:?}", listener_names(&resources)));
    let tcp_proxy = db.filter_chains[0]
        .filters
        .iter()
        .find(|f| f.name == "envoy.filters.network.tcp_proxy")
        .expect("a tcp_proxy filter");
    let json = mesh_api::envoy::to_json(tcp_proxy).unwrap();
    assert_eq!(json["typed_config"]["idle_timeout"], "90s");
    assert_eq!(
        json["typed_config"]["max_downstream_connection_duration"],
        "600s"
    );
}

#[test]
fn the_proxys_idle_timeout_reaches_its_connection_managers_and_tcp_proxies() {
    let mut client = proxy("client", "10.0.0.9", false);
    client
        .metadata
        .insert("IDLE_TIMEOUT".to_owned(), "1m30s".into());
    let resources = translate(&client, &snapshot(""));
    let filter_json = |listener: &Listener, name: &str| {
        let filter = listener
            .filter_chains
            .iter()
            .flat_map(|chain| &chain.filters)
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name} in {}", listener.name));
        mesh_api::envoy::to_json(filter).unwrap()["typed_config"].clone()
    };
    let http = filter_json(
        listener(&resources, "0.0.0.0_9080"),
        "envoy.filters.network.http_connection_manager",
    );
    assert_eq!(http["common_http_protocol_options"]["idle_timeout"], "90s");
    let db = resources
        .listeners
        .iter()
        .find(|l| l.name.ends_with("_3306"))
        .expect("a db listener");
    let tcp = filter_json(db, "envoy.filters.network.tcp_proxy");
    assert_eq!(tcp["idle_timeout"], "90s");
    let outbound = listener(&resources, "virtualOutbound");
    let catch_all = outbound
        .filter_chains
        .iter()
        .find(|chain| chain.name == "virtualOutbound-catchall-tcp")
        .expect("the catch-all chain");
    let tcp = mesh_api::envoy::to_json(&catch_all.filters[1]).unwrap();
    assert_eq!(tcp["typed_config"]["idle_timeout"], "90s");

    // A value that is not a duration is left out, as istiod does.
    client
        .metadata
        .insert("IDLE_TIMEOUT".to_owned(), "soon".into());
    let resources = translate(&client, &snapshot(""));
    let http = filter_json(
        listener(&resources, "0.0.0.0_9080"),
        "envoy.filters.network.http_connection_manager",
    );
    assert!(http.get("common_http_protocol_options").is_none(), "{http}");
}
