use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use serde_json::{Value, json};

use super::{Kind, Outcome, Protocol};
use crate::testing::{assignment, eds_cluster, proto, rds_listener, route_config};

fn protocol() -> Protocol {
    let node = Node {
        id: "sidecar~10.0.0.1~app.default~default.svc.cluster.local".into(),
        ..Node::default()
    };
    Protocol::new(Bootstrap::default(), node)
}

fn response<M: Message + Default + Name>(
    kind: Kind,
    version: &str,
    nonce: &str,
    resources: &[Value],
) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: version.into(),
        nonce: nonce.into(),
        type_url: kind.type_url().into(),
        resources: resources
            .iter()
            .map(|value| Any {
                type_url: M::type_url(),
                value: proto::<M>(value).encode_to_vec(),
            })
            .collect(),
        ..DiscoveryResponse::default()
    }
}

fn clusters(version: &str, nonce: &str, resources: &[Value]) -> DiscoveryResponse {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    response::<Cluster>(Kind::Cluster, version, nonce, resources)
}

fn endpoints(version: &str, nonce: &str, resources: &[Value]) -> DiscoveryResponse {
    use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    response::<ClusterLoadAssignment>(Kind::Endpoint, version, nonce, resources)
}

fn listeners(version: &str, nonce: &str, resources: &[Value]) -> DiscoveryResponse {
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    response::<Listener>(Kind::Listener, version, nonce, resources)
}

fn routes(version: &str, nonce: &str, resources: &[Value]) -> DiscoveryResponse {
    use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
    response::<RouteConfiguration>(Kind::Route, version, nonce, resources)
}

type Summary<'a> = (Kind, &'a str, &'a str, Vec<&'a str>, Option<&'a str>);

/// (type, version, nonce, names, error) of a request.
fn summary(request: &DiscoveryRequest) -> Summary<'_> {
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.type_url() == request.type_url)
        .unwrap();
    (
        kind,
        request.version_info.as_str(),
        request.response_nonce.as_str(),
        request.resource_names.iter().map(String::as_str).collect(),
        request.error_detail.as_ref().map(|s| s.message.as_str()),
    )
}

#[test]
fn subscribes_to_clusters_and_listeners_with_the_node_first() {
    let requests = protocol().initial_requests();
    let kinds: Vec<_> = requests.iter().map(|r| summary(r).0).collect();
    assert_eq!(kinds, [Kind::Cluster, Kind::Listener]);
    assert!(
        requests[0]
            .node
            .as_ref()
            .unwrap()
            .id
            .starts_with("sidecar~")
    );
    assert!(requests[1].node.is_none());
    assert!(requests.iter().all(|r| r.resource_names.is_empty()));
}

#[test]
fn acks_subscribes_by_name_and_serves_once_complete() {
    let mut protocol = protocol();
    let outcome = protocol.handle(clusters("c1", "n1", &[eds_cluster("reviews", "svc")]));
    assert!(outcome.config.is_none());
    let requests: Vec<_> = outcome.requests.iter().map(summary).collect();
    assert_eq!(
        requests,
        [
            (Kind::Cluster, "c1", "n1", vec![], None),
            (Kind::Endpoint, "", "", vec!["svc"], None),
        ]
    );
    let outcome = protocol.handle(listeners("l1", "n2", &[rds_listener("http", "80")]));
    assert!(outcome.config.is_none());
    assert_eq!(
        summary(&outcome.requests[1]),
        (Kind::Route, "", "", vec!["80"], None)
    );
    let outcome = protocol.handle(endpoints("e1", "n3", &[assignment("svc", &[9001])]));
    assert!(outcome.config.is_none());
    let outcome = protocol.handle(routes("r1", "n4", &[route_config("80", "reviews")]));
    let config = outcome.config.expect("complete");
    assert_eq!(config.clusters["reviews"].endpoints.len(), 1);
    assert_eq!(
        outcome.requests.iter().map(summary).collect::<Vec<_>>(),
        [(Kind::Route, "r1", "n4", vec!["80"], None)]
    );

    // A new stream asks again for everything, with the versions it has.
    let again = protocol.initial_requests();
    assert_eq!(
        again.iter().map(summary).collect::<Vec<_>>(),
        [
            (Kind::Cluster, "c1", "", vec![], None),
            (Kind::Endpoint, "e1", "", vec!["svc"], None),
            (Kind::Listener, "l1", "", vec![], None),
            (Kind::Route, "r1", "", vec!["80"], None),
        ]
    );
}

#[test]
fn nacks_with_the_config_error_and_keeps_the_last_good_resources() {
    let mut protocol = protocol();
    protocol.handle(clusters("c1", "n1", &[json!({"name": "a"})]));
    let bad = json!({"name": "a", "lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 4}});
    let outcome = protocol.handle(clusters("c2", "n2", &[bad]));
    let reason = outcome.rejected.clone().expect("rejected");
    assert!(
        reason.starts_with("cluster \"a\": maglev_lb_config.table_size"),
        "{reason}"
    );
    assert_eq!(
        outcome.requests.iter().map(summary).collect::<Vec<_>>(),
        [(Kind::Cluster, "c1", "n2", vec![], Some(reason.as_str()))]
    );
    assert_eq!(protocol.type_state(Kind::Cluster).version, "c1");
    assert_eq!(protocol.accepted().clusters["a"].lb_policy, 0);
}

#[test]
fn endpoints_merge_by_name_and_go_when_no_longer_wanted() {
    let mut protocol = protocol();
    protocol.handle(listeners("l1", "n0", &[]));
    protocol.handle(clusters(
        "c1",
        "n1",
        &[eds_cluster("a", ""), eds_cluster("b", "")],
    ));
    protocol.handle(endpoints("e1", "n2", &[assignment("a", &[1])]));
    let outcome = protocol.handle(endpoints("e2", "n3", &[assignment("b", &[2])]));
    assert!(outcome.config.is_some(), "both assignments are kept");
    let outcome = protocol.handle(clusters("c2", "n4", &[eds_cluster("a", "")]));
    assert_eq!(
        summary(&outcome.requests[1]),
        (Kind::Endpoint, "e2", "n3", vec!["a"], None)
    );
    let names: Vec<_> = protocol.accepted().endpoints.keys().collect();
    assert_eq!(names, ["a"]);
}

/// A cluster whose upstream TLS names the workload certificate's secrets.
fn mesh_tls_cluster() -> Value {
    json!({
        "name": "mesh",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "mesh", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}
        ]}]},
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{"name": "default"}],
                "validation_context_sds_secret_config": {"name": "ROOTCA"}
            }
        }}
    })
}

#[test]
fn config_naming_the_workload_certificate_waits_for_it() {
    use crate::identity::Provided;
    let mut protocol = protocol().with_provided(Provided::Pending);
    protocol.handle(listeners("1", "n0", &[]));
    let outcome = protocol.handle(clusters("1", "n1", &[mesh_tls_cluster()]));
    assert!(outcome.rejected.is_none(), "{:?}", outcome.rejected);
    assert!(outcome.config.is_none());
    // The names are still subscribed to, as the compile meets them: a
    // control plane may define them.
    let secrets = |requests: &[DiscoveryRequest]| -> Vec<Vec<String>> {
        requests
            .iter()
            .map(summary)
            .filter(|s| s.0 == Kind::Secret)
            .map(|s| s.3.into_iter().map(str::to_owned).collect())
            .collect()
    };
    assert_eq!(secrets(&outcome.requests), vec![vec!["default"]]);

    let outcome = protocol.provide(crate::testing::provided_secrets());
    assert!(outcome.rejected.is_none(), "{:?}", outcome.rejected);
    assert_eq!(secrets(&outcome.requests), vec![vec!["ROOTCA", "default"]]);
    assert!(outcome.missing.is_empty(), "{:?}", outcome.missing);
    let config = outcome.config.expect("a whole config");
    assert!(config.clusters["mesh"].tls.is_some());
}

#[test]
fn nothing_is_served_before_clusters_and_listeners_have_both_come() {
    let mut protocol = protocol();
    let outcome = protocol.handle(clusters("c1", "n1", &[json!({"name": "a"})]));
    assert!(outcome.config.is_none(), "no listeners yet");
    let outcome = protocol.resolved();
    assert!(
        outcome.config.is_none(),
        "a recompile does not serve the static resources alone"
    );
    let outcome = protocol.handle(listeners("l1", "n2", &[]));
    assert!(outcome.config.is_some());
}

#[tokio::test]
async fn a_dns_cluster_waits_for_its_lookup_and_follows_new_answers() {
    let mut protocol = protocol();
    let host = "ext.invalid";
    protocol.handle(listeners("l1", "n1", &[]));
    let outcome = protocol.handle(clusters("c1", "n2", &[json!({"name": "ext", "type": "STRICT_DNS",
        "dns_lookup_family": "V4_ONLY",
        "load_assignment": {"cluster_name": "ext", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
            {"socket_address": {"address": host, "port_value": 443}}}}]}]}})]));
    assert!(outcome.config.is_none(), "the host is not looked up yet");
    assert!(
        outcome.missing.contains("dns name \"ext.invalid\""),
        "{:?}",
        outcome.missing
    );

    let endpoints = |outcome: Outcome| -> Vec<std::net::SocketAddr> {
        let config = outcome.config.expect("a whole config");
        config.clusters["ext"]
            .endpoints
            .iter()
            .map(|e| e.address)
            .collect()
    };
    protocol
        .resolver()
        .answer(host, vec!["192.0.2.1".parse().unwrap()]);
    let outcome = protocol.resolved();
    assert_eq!(endpoints(outcome), ["192.0.2.1:443".parse().unwrap()]);
    protocol.resolver().answer(
        host,
        vec!["192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap()],
    );
    let outcome = protocol.resolved();
    assert_eq!(
        endpoints(outcome),
        [
            "192.0.2.2:443".parse().unwrap(),
            "192.0.2.3:443".parse().unwrap()
        ]
    );
}
