//! What a proxyless gRPC client gets: listeners under the names it dials,
//! one route configuration per service port with only what gRPC acts on,
//! ROUND_ROBIN EDS clusters per subset and subset-filtered endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{route, route_action};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};
use prost::Message;

use crate::model::{Endpoint, MeshSnapshot, Proxy, Service, ServicePort};
use crate::translate::{Resources, translate};

const HOST: &str = "reviews.default.svc.cluster.local";

fn snapshot(yaml: &str) -> MeshSnapshot {
    let endpoint = |version: &str, ip: &str| {
        Arc::new(Endpoint {
            service: HOST.into(),
            service_namespace: "default".into(),
            address: ip.parse().unwrap(),
            ports: BTreeMap::new(),
            labels: [("app", "reviews"), ("version", version)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            namespace: "default".into(),
            service_account: "reviews".into(),
            locality: String::new(),
            network: String::new(),
            weight: 1,
            mesh_tls: false,
        })
    };
    MeshSnapshot {
        config: crate::translate::tests::config(yaml),
        services: vec![Arc::new(Service {
            hostname: HOST.into(),
            namespace: "default".into(),
            addresses: Vec::new(),
            ports: vec![ServicePort {
                name: "grpc".into(),
                number: 9080,
                protocol: Some(Protocol::Grpc),
                target_port: None,
            }],
            resolution: Resolution::Static,
            location: Location::MeshInternal,
            export_to: Vec::new(),
            subject_alt_names: Vec::new(),
            named_endpoints: Vec::new(),
        })],
        endpoints: vec![endpoint("v1", "10.0.0.1"), endpoint("v2", "10.0.0.2")],
        ..MeshSnapshot::default()
    }
}

fn grpc_client(namespace: &str) -> Proxy {
    Proxy {
        id: format!("sidecar~10.9.9.9~client.{namespace}~{namespace}.svc.cluster.local")
            .parse()
            .unwrap(),
        kind: mesh_api::names::ProxyKind::Sidecar,
        namespace: namespace.into(),
        ip: "10.9.9.9".parse().unwrap(),
        labels: BTreeMap::new(),
        service_account: "client".into(),
        workload_name: "client".into(),
        grpc_generator: true,
        locality: String::new(),
        metadata: BTreeMap::new(),
    }
}

fn listener_names(resources: &Resources) -> Vec<&str> {
    resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect()
}

#[test]
fn listeners_are_api_listeners_under_every_name_a_client_dials() {
    let resources = translate(&grpc_client("default"), &snapshot(""));
    assert_eq!(
        listener_names(&resources),
        [
            "reviews.default.svc.cluster.local:9080",
            "reviews.default.svc:9080",
            "reviews.default:9080",
            "reviews:9080",
        ]
    );
    for listener in &resources.listeners {
        assert!(listener.address.is_none() && listener.filter_chains.is_empty());
        let any = listener
            .api_listener
            .as_ref()
            .unwrap()
            .api_listener
            .as_ref();
        let hcm = HttpConnectionManager::decode(any.unwrap().value.as_slice()).unwrap();
        let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = &hcm.route_specifier else {
            panic!("routes come over RDS");
        };
        assert_eq!(rds.route_config_name, format!("outbound|9080||{HOST}"));
        let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            filters,
            ["envoy.filters.http.fault", "envoy.filters.http.router"]
        );
    }
    let elsewhere = translate(&grpc_client("other"), &snapshot(""));
    assert!(
        !listener_names(&elsewhere).contains(&"reviews:9080"),
        "the bare name is only for the same namespace"
    );
    let sidecar = Proxy {
        grpc_generator: false,
        locality: String::new(),
        ..grpc_client("default")
    };
    assert!(
        translate(&sidecar, &snapshot(""))
            .listeners
            .iter()
            .all(|l| l.api_listener.is_none()),
        "sidecars keep their own listeners"
    );
}

const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool: {http: {http2MaxRequests: 7}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-version: {exact: v2}}, uri: {prefix: /test.Echo/}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
    timeout: 3s
    retries: {attempts: 4, retryOn: "unavailable,cancelled"}
    mirror: {host: reviews, subset: v1}
    corsPolicy: {allowOrigins: [{exact: "https://example.com"}]}
"#;

#[test]
fn routes_follow_the_virtual_service_with_what_grpc_reads() {
    let resources = translate(&grpc_client("default"), &snapshot(CONFIG));
    let [config] = resources.routes.as_slice() else {
        panic!("one route configuration per service port");
    };
    assert_eq!(config.name, format!("outbound|9080||{HOST}"));
    let [host] = config.virtual_hosts.as_slice() else {
        panic!("one virtual host, the service's");
    };
    assert!(host.domains.contains(&format!("{HOST}:9080")));
    assert!(host.domains.contains(&"reviews:9080".to_owned()));
    let [by_header, split] = host.routes.as_slice() else {
        panic!("a route per rule: {:?}", host.routes);
    };

    let matched = by_header.r#match.as_ref().unwrap();
    assert_eq!(matched.headers[0].name, "x-version");
    let Some(route::Action::Route(action)) = &by_header.action else {
        panic!("a forward");
    };
    assert_eq!(
        action.cluster_specifier,
        Some(route_action::ClusterSpecifier::Cluster(format!(
            "outbound|9080|v2|{HOST}"
        )))
    );

    let Some(route::Action::Route(action)) = &split.action else {
        panic!("a forward");
    };
    let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) =
        &action.cluster_specifier
    else {
        panic!("weighted clusters");
    };
    let weights: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    let (v1, v2) = (
        format!("outbound|9080|v1|{HOST}"),
        format!("outbound|9080|v2|{HOST}"),
    );
    assert_eq!(weights, [(v1.as_str(), 80), (v2.as_str(), 20)]);
    // gRPC reads its deadline from max_stream_duration.
    let max = action.max_stream_duration.as_ref().unwrap();
    assert_eq!(max.grpc_timeout_header_max.unwrap().seconds, 3);
    assert_eq!(max.max_stream_duration.unwrap().seconds, 3);
    let retry = action.retry_policy.as_ref().unwrap();
    assert_eq!(retry.retry_on, "unavailable,cancelled");
    assert_eq!(retry.num_retries.unwrap().value, 4);
    assert!(retry.retry_host_predicate.is_empty());
    assert!(action.request_mirror_policies.is_empty() && action.hash_policy.is_empty());
    assert!(
        split.typed_per_filter_config.is_empty(),
        "no CORS config, which gRPC would refuse"
    );
}

#[test]
fn clusters_are_round_robin_eds_per_subset_with_their_endpoints() {
    let resources = translate(&grpc_client("default"), &snapshot(CONFIG));
    let names: Vec<&str> = resources.clusters.iter().map(|c| c.name.as_str()).collect();
    let expected = [
        format!("outbound|9080|v1|{HOST}"),
        format!("outbound|9080|v2|{HOST}"),
        format!("outbound|9080||{HOST}"),
    ];
    assert_eq!(names, expected);
    for cluster in &resources.clusters {
        let json = mesh_api::envoy::to_json(cluster).unwrap();
        assert_eq!(json["type"], "EDS", "{json}");
        assert_eq!(
            json["eds_cluster_config"]["service_name"],
            cluster.name.as_str()
        );
        assert!(json["eds_cluster_config"]["eds_config"]["ads"].is_object());
        assert_eq!(
            json.get("lb_policy"),
            None,
            "ROUND_ROBIN (the default), not the rule's LEAST_REQUEST"
        );
        assert_eq!(json["circuit_breakers"]["thresholds"][0]["max_requests"], 7);
        assert!(cluster.transport_socket.is_none());
    }
    let addresses = |name: &str| -> Vec<String> {
        let assignment = resources
            .endpoints
            .iter()
            .find(|e| e.cluster_name == name)
            .unwrap();
        let json = mesh_api::envoy::to_json(assignment).unwrap();
        json["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|group| {
                assert!(group["load_balancing_weight"].as_u64() > Some(0));
                group["lb_endpoints"].as_array().unwrap().clone()
            })
            .map(|e| e["endpoint"]["address"]["socket_address"]["address"].to_string())
            .collect()
    };
    assert_eq!(addresses(&expected[0]), ["\"10.0.0.1\""]);
    assert_eq!(addresses(&expected[1]), ["\"10.0.0.2\""]);
    assert_eq!(addresses(&expected[2]).len(), 2);
}
