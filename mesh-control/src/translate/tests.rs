//! The mappings that are easy to get wrong: retry defaults, weights,
//! subsets and their policies, fault percentages, header matches, exportTo,
//! source filtering and REGISTRY_ONLY.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, filter};
use envoy_types::pb::envoy::config::route::v3::{Route, route, route_action};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use mesh_api::load::{Resource, load_str};
use mesh_api::networking::gateway::Protocol;
use mesh_api::networking::service_entry::{Location, Resolution};
use prost::Message;
use serde_json::{Value, json};

use super::{Resources, translate};
use crate::model::{Endpoint, MeshSnapshot, OutboundTrafficPolicy, Proxy, Service, ServicePort};

pub(super) fn service(name: &str, namespace: &str, export_to: &[&str]) -> Arc<Service> {
    Arc::new(Service {
        hostname: format!("{name}.{namespace}.svc.cluster.local"),
        namespace: namespace.into(),
        addresses: Vec::new(),
        ports: vec![ServicePort {
            name: "http".into(),
            number: 9080,
            protocol: Some(Protocol::Http),
            target_port: None,
        }],
        resolution: Resolution::Static,
        location: Location::MeshInternal,
        export_to: export_to.iter().map(|s| (*s).to_owned()).collect(),
        subject_alt_names: Vec::new(),
        named_endpoints: Vec::new(),
    })
}

pub(super) fn endpoint(name: &str, version: &str, ip: &str) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        service: format!("{name}.default.svc.cluster.local"),
        service_namespace: "default".into(),
        address: ip.parse().unwrap(),
        ports: BTreeMap::new(),
        labels: [("app", name), ("version", version)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        namespace: "default".into(),
        service_account: format!("sa-{name}"),
        locality: "region/zone/sub".into(),
        network: String::new(),
        weight: 1,
        mesh_tls: true,
    })
}

pub(super) fn proxy(namespace: &str, labels: &[(&str, &str)]) -> Proxy {
    Proxy {
        id: format!("sidecar~10.9.9.9~client.{namespace}~{namespace}.svc.cluster.local")
            .parse()
            .unwrap(),
        kind: mesh_api::names::ProxyKind::Sidecar,
        namespace: namespace.into(),
        ip: "10.9.9.9".parse().unwrap(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        service_account: "client".into(),
        workload_name: "client".into(),
        grpc_generator: false,
        locality: String::new(),
        metadata: BTreeMap::new(),
    }
}

/// The resources of `yaml`, which must load without a problem.
pub(crate) fn config(yaml: &str) -> Vec<Arc<Resource>> {
    let report = load_str("test.yaml", yaml);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report
        .resources
        .into_iter()
        .map(|l| Arc::new(l.resource))
        .collect()
}

fn reviews_snapshot(yaml: &str) -> MeshSnapshot {
    MeshSnapshot {
        config: config(yaml),
        services: vec![service("reviews", "default", &[])],
        endpoints: vec![
            endpoint("reviews", "v1", "10.0.0.1"),
            endpoint("reviews", "v2", "10.0.0.2"),
        ],
        ..MeshSnapshot::default()
    }
}

fn reviews_routes(resources: &Resources) -> Vec<Route> {
    let config = resources.routes.iter().find(|r| r.name == "9080").unwrap();
    config
        .virtual_hosts
        .iter()
        .find(|v| v.name == "reviews.default.svc.cluster.local:9080")
        .unwrap()
        .routes
        .clone()
}

fn action(route: &Route) -> &envoy_types::pb::envoy::config::route::v3::RouteAction {
    match &route.action {
        Some(route::Action::Route(action)) => action,
        other => panic!("not a forward: {other:?}"),
    }
}

fn cluster<'a>(resources: &'a Resources, name: &str) -> &'a Cluster {
    resources
        .clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

fn json_of<M: prost::Message + prost::Name>(m: &M) -> Value {
    mesh_api::envoy::to_json(m).unwrap()
}

/// The chain `name` of the `virtualInbound` listener.
fn inbound_chain(resources: &Resources, name: &str) -> FilterChain {
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .unwrap();
    listener
        .filter_chains
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no chain {name}"))
        .clone()
}

/// The HTTP filters of a chain's connection manager, as JSON.
fn http_filters_of(chain: &FilterChain) -> Vec<Value> {
    let Some(filter::ConfigType::TypedConfig(any)) = &chain.filters.last().unwrap().config_type
    else {
        panic!("a typed HCM");
    };
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    hcm.http_filters.iter().map(json_of).collect()
}

const DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 5, http2MaxRequests: 7, maxRetries: 3, maxRequestsPerConnection: 1, idleTimeout: 30s}
    outlierDetection: {consecutive5xxErrors: 4, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50, minHealthPercent: 20}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 64}}
      tls: {mode: ISTIO_MUTUAL}
"#;

#[test]
fn default_routes_retry_as_istio_does_and_never_time_out() {
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(""));
    let routes = reviews_routes(&resources);
    assert_eq!(routes.len(), 1);
    assert_eq!(routes[0].name, "default");
    let action = action(&routes[0]);
    let retry = action.retry_policy.as_ref().unwrap();
    assert_eq!(
        retry.retry_on,
        "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    );
    assert_eq!(retry.num_retries.unwrap().value, 2);
    assert_eq!(retry.retry_host_predicate.len(), 1);
    assert_eq!(retry.host_selection_retry_max_attempts, 5);
    assert_eq!(action.timeout.unwrap().seconds, 0);
}

#[test]
fn retries_set_by_the_virtual_service() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /none}}]
    retries: {attempts: 0}
    route: [{destination: {host: reviews}}]
  - timeout: 3s
    retries: {attempts: 4, perTryTimeout: 1s, retryOn: "5xx,503,gateway-error,409"}
    route: [{destination: {host: reviews}}]
"#;
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(vs));
    let routes = reviews_routes(&resources);
    assert!(
        action(&routes[0]).retry_policy.is_none(),
        "attempts 0 disables"
    );
    let action = action(&routes[1]);
    let retry = action.retry_policy.as_ref().unwrap();
    assert_eq!(retry.num_retries.unwrap().value, 4);
    assert_eq!(retry.retry_on, "5xx,gateway-error,retriable-status-codes");
    assert_eq!(retry.retriable_status_codes, [503, 409]);
    assert_eq!(retry.per_try_timeout.unwrap().seconds, 1);
    assert_eq!(action.timeout.unwrap().seconds, 3);
}

#[test]
fn weights_drop_zero_and_a_lone_destination_is_a_cluster() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {exact: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v2}, weight: 25}
    - {destination: {host: reviews, subset: v3}, weight: 0}
  - route: [{destination: {host: reviews, subset: v2}}]
"#;
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(vs));
    let routes = reviews_routes(&resources);
    let Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) =
        &action(&routes[0]).cluster_specifier
    else {
        panic!("weighted clusters expected");
    };
    let weights: Vec<(&str, u32)> = weighted
        .clusters
        .iter()
        .map(|c| (c.name.as_str(), c.weight.unwrap().value))
        .collect();
    assert_eq!(
        weights,
        [
            ("outbound|9080|v1|reviews.default.svc.cluster.local", 75),
            ("outbound|9080|v2|reviews.default.svc.cluster.local", 25)
        ]
    );
    assert_eq!(
        action(&routes[1]).cluster_specifier,
        Some(route_action::ClusterSpecifier::Cluster(
            "outbound|9080|v2|reviews.default.svc.cluster.local".into()
        ))
    );
}

#[test]
fn subsets_get_clusters_endpoints_and_merged_policies() {
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(DR));
    let whole = cluster(
        &resources,
        "outbound|9080||reviews.default.svc.cluster.local",
    );
    // Port-level settings replace the whole policy for their port.
    assert_eq!(whole.lb_policy, cluster::LbPolicy::Random as i32);
    assert!(whole.outlier_detection.is_none());
    assert_eq!(whole.connect_timeout.unwrap().seconds, 10);

    let v2 = cluster(
        &resources,
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    );
    assert_eq!(v2.lb_policy, cluster::LbPolicy::RingHash as i32);
    let v2_json = json_of(v2);
    assert_eq!(v2_json["ring_hash_lb_config"]["minimum_ring_size"], "64");
    assert_eq!(
        v2_json["transport_socket"]["typed_config"]["sni"],
        "outbound_.9080_.v2_.reviews.default.svc.cluster.local"
    );
    assert_eq!(
        v2_json["transport_socket"]["typed_config"]["common_tls_context"]["combined_validation_context"]
            ["default_validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"],
        "spiffe://cluster.local/ns/default/sa/sa-reviews"
    );
    assert!(
        v2.transport_socket_matches.is_empty(),
        "TLS set: no auto mTLS"
    );

    let v1 = cluster(
        &resources,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    );
    assert_eq!(v1.transport_socket_matches.len(), 2, "auto mTLS");

    let v1_endpoints = resources
        .endpoints
        .iter()
        .find(|e| e.cluster_name == v1.name)
        .unwrap();
    let v1_json = json_of(v1_endpoints);
    let group = &v1_json["endpoints"][0];
    assert_eq!(
        group["locality"],
        json!({"region": "region", "zone": "zone", "sub_zone": "sub"})
    );
    assert_eq!(group["lb_endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(
        group["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["address"],
        "10.0.0.1"
    );
    assert_eq!(
        group["lb_endpoints"][0]["metadata"]["filter_metadata"]["envoy.transport_socket_match"],
        json!({"tlsMode": "istio"})
    );

    // The route to v2 hashes on its header, and does not avoid previous hosts.
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v2}}]}]
"#;
    let resources = translate(
        &proxy("default", &[]),
        &reviews_snapshot(&format!("{DR}---{vs}")),
    );
    let route = json_of(&reviews_routes(&resources)[0]);
    assert_eq!(
        route["route"]["hash_policy"],
        json!([{"header": {"header_name": "x-user"}}])
    );
    assert!(
        route["route"]["retry_policy"]
            .get("retry_host_predicate")
            .is_none()
    );
}

/// The reviews v1 cluster for [`DR`] without its port-level settings,
/// changed by `edit`.
fn reviews_v1_without_port_settings(edit: impl Fn(String) -> String) -> serde_json::Value {
    let dr = DR.replace(
        "    portLevelSettings:\n    - port: {number: 9080}\n      loadBalancer: {simple: RANDOM}\n",
        "",
    );
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(&edit(dr)));
    json_of(cluster(
        &resources,
        "outbound|9080|v1|reviews.default.svc.cluster.local",
    ))
}

#[test]
fn connection_pool_and_outlier_detection_without_port_settings() {
    let c = reviews_v1_without_port_settings(|dr| dr);
    assert!(c.get("lb_policy").is_none(), "ROUND_ROBIN, the enum's zero");
    assert_eq!(c["connect_timeout"], "2s");
    assert_eq!(
        c["circuit_breakers"]["thresholds"][0],
        json!({"max_connections": 10, "max_pending_requests": 5, "max_requests": 7,
               "max_retries": 3, "track_remaining": true})
    );
    let options = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["common_http_protocol_options"],
        json!({"idle_timeout": "30s", "max_requests_per_connection": 1})
    );
    assert_eq!(
        c["outlier_detection"],
        json!({"consecutive_5xx": 4, "enforcing_consecutive_5xx": 100,
               "enforcing_success_rate": 0, "interval": "5s",
               "base_ejection_time": "60s", "max_ejection_percent": 50})
    );
    assert_eq!(
        c["common_lb_config"]["healthy_panic_threshold"]["value"],
        20.0
    );
}

#[test]
fn the_tcp_idle_timeout_stands_in_for_an_unset_http_one() {
    let c = reviews_v1_without_port_settings(|dr| {
        dr.replace(
            "tcp: {maxConnections: 10, connectTimeout: 2s}",
            "tcp: {maxConnections: 10, connectTimeout: 2s, idleTimeout: 45s}",
        )
        .replace(", idleTimeout: 30s}", "}")
    });
    let options = &c["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["common_http_protocol_options"]["idle_timeout"],
        "45s"
    );
}

#[test]
fn fault_percentages_and_header_matches() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/r/[0-9]+"}
      ignoreUriCase: true
      method: {exact: GET}
      headers:
        x-a: {prefix: foo}
        x-b: {}
      withoutHeaders:
        x-c: {exact: no}
      queryParams:
        q: {regex: "a.*"}
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 0.5}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 10}}
    route: [{destination: {host: reviews}}]
  - fault:
      delay: {fixedDelay: 1s, percent: 30}
    route: [{destination: {host: reviews}}]
"#;
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(vs));
    let routes: Vec<Value> = reviews_routes(&resources).iter().map(json_of).collect();
    assert_eq!(
        routes[0]["match"],
        json!({
            "safe_regex": {"regex": "/r/[0-9]+"},
            "case_sensitive": false,
            "headers": [
                {"name": ":method", "string_match": {"exact": "GET"}},
                {"name": "x-a", "string_match": {"prefix": "foo"}},
                {"name": "x-b", "present_match": true},
                {"name": "x-c", "string_match": {"exact": "no"}, "invert_match": true}
            ],
            "query_parameters": [{"name": "q", "string_match": {"safe_regex": {"regex": "a.*"}}}]
        })
    );
    let fault = &routes[0]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(
        fault["delay"],
        json!({"fixed_delay": "2s", "percentage": {"numerator": 5000, "denominator": "MILLION"}})
    );
    assert_eq!(fault["abort"]["grpc_status"], 14);
    assert_eq!(
        fault["abort"]["percentage"],
        json!({"numerator": 100000, "denominator": "MILLION"})
    );
    let fault = &routes[1]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(fault["delay"]["percentage"], json!({"numerator": 30}));
}

#[test]
fn source_labels_and_namespaces_pick_the_rules_a_proxy_gets() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{sourceNamespace: other}]
    route: [{destination: {host: reviews, subset: v3}}]
  - match: [{port: 9999}]
    route: [{destination: {host: reviews, subset: v3}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;
    let snapshot = reviews_snapshot(vs);
    let clusters = |p: &Proxy| -> Vec<String> {
        reviews_routes(&translate(p, &snapshot))
            .iter()
            .map(|r| match &action(r).cluster_specifier {
                Some(route_action::ClusterSpecifier::Cluster(c)) => c.clone(),
                _ => String::new(),
            })
            .collect()
    };
    let v = |subset: &str| format!("outbound|9080|{subset}|reviews.default.svc.cluster.local");
    assert_eq!(
        clusters(&proxy("default", &[("app", "productpage")])),
        [v("v2"), v("v1")]
    );
    assert_eq!(clusters(&proxy("other", &[])), [v("v3"), v("v1")]);
    assert_eq!(clusters(&proxy("default", &[])), [v("v1")]);
}

#[test]
fn export_to_limits_what_a_namespace_sees() {
    let snapshot = MeshSnapshot {
        services: vec![
            service("public", "default", &[]),
            service("private", "default", &["."]),
            service("hidden", "default", &["~"]),
            service("shared", "default", &["team"]),
        ],
        ..MeshSnapshot::default()
    };
    let names = |namespace: &str| -> Vec<String> {
        translate(&proxy(namespace, &[]), &snapshot)
            .clusters
            .iter()
            .filter(|c| c.name.starts_with("outbound"))
            .map(|c| {
                c.name
                    .split('|')
                    .nth(3)
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(names("default"), ["private", "public"]);
    assert_eq!(names("team"), ["public", "shared"]);
    assert_eq!(names("elsewhere"), ["public"]);

    let domains = translate(&proxy("team", &[]), &snapshot).routes[0].virtual_hosts[0]
        .domains
        .clone();
    assert_eq!(
        domains,
        [
            "public.default.svc.cluster.local",
            "public.default.svc.cluster.local:9080",
            "public.default",
            "public.default:9080",
            "public.default.svc",
            "public.default.svc:9080"
        ]
    );
}

#[test]
fn registry_only_blackholes_unknown_hosts() {
    let mut snapshot = reviews_snapshot("");
    let allow = translate(&proxy("default", &[]), &snapshot);
    let catch_all = allow.routes[0].virtual_hosts.last().unwrap();
    assert_eq!(catch_all.name, "allow_any");
    assert_eq!(
        json_of(&catch_all.routes[0])["route"]["cluster"],
        "PassthroughCluster"
    );

    snapshot.mesh.outbound_traffic_policy = OutboundTrafficPolicy::RegistryOnly;
    let block = translate(&proxy("default", &[]), &snapshot);
    let catch_all = block.routes[0].virtual_hosts.last().unwrap();
    assert_eq!(catch_all.name, "block_all");
    assert_eq!(
        json_of(&catch_all.routes[0])["direct_response"]["status"],
        502
    );
    let outbound = block
        .listeners
        .iter()
        .find(|l| l.name == "virtualOutbound")
        .unwrap();
    let chain = json_of(outbound);
    assert_eq!(
        chain["filter_chains"][1]["filters"][1]["typed_config"]["cluster"],
        "BlackHoleCluster"
    );
}

#[test]
fn redirect_rewrite_mirror_headers_and_cors() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 308, scheme: https}
  - match: [{uri: {prefix: /v1}}]
    rewrite: {uri: /, authority: reviews.internal}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 12.5}
    headers:
      request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
      response: {remove: [server]}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}]
      allowMethods: [GET, POST]
      maxAge: 1h
      allowCredentials: true
    route: [{destination: {host: reviews}}]
  - directResponse: {status: 418, body: {string: teapot}}
"#;
    let resources = translate(&proxy("default", &[]), &reviews_snapshot(vs));
    let routes: Vec<Value> = reviews_routes(&resources).iter().map(json_of).collect();
    assert_eq!(
        routes[0]["redirect"],
        json!({"path_redirect": "/new", "host_redirect": "example.com",
               "response_code": "PERMANENT_REDIRECT", "scheme_redirect": "https"})
    );
    let forward = &routes[1]["route"];
    assert_eq!(forward["prefix_rewrite"], "/");
    assert_eq!(forward["host_rewrite_literal"], "reviews.internal");
    assert_eq!(
        forward["request_mirror_policies"][0]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        forward["request_mirror_policies"][0]["runtime_fraction"]["default_value"],
        json!({"numerator": 125000, "denominator": "MILLION"})
    );
    assert_eq!(
        routes[1]["request_headers_to_add"],
        json!([
            {"header": {"key": "x-a", "value": "1"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"},
            {"header": {"key": "x-b", "value": "2"}}
        ])
    );
    assert_eq!(routes[1]["request_headers_to_remove"], json!(["x-c"]));
    assert_eq!(routes[1]["response_headers_to_remove"], json!(["server"]));
    let cors = &routes[1]["typed_per_filter_config"]["envoy.filters.http.cors"];
    assert_eq!(
        cors["allow_origin_string_match"],
        json!([{"exact": "https://a.example"}])
    );
    assert_eq!(cors["allow_methods"], "GET,POST");
    assert_eq!(cors["max_age"], "3600");
    assert_eq!(cors["allow_credentials"], true);
    assert_eq!(
        routes[2]["direct_response"],
        json!({"status": 418, "body": {"inline_string": "teapot"}})
    );
}

#[test]
fn inbound_clusters_and_chains_serve_the_proxys_own_services() {
    let mut snapshot = reviews_snapshot("");
    let mut own = (*endpoint("reviews", "v1", "10.9.9.9")).clone();
    own.ports.insert("http".into(), 8080);
    snapshot.endpoints.push(Arc::new(own));
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    let resources = translate(&me, &snapshot);
    let inbound = json_of(cluster(&resources, "inbound|8080||"));
    assert_eq!(inbound["type"], "STATIC");
    assert_eq!(
        inbound["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"],
        json!({"address": "127.0.0.1", "port_value": 8080})
    );
    let listener = resources
        .listeners
        .iter()
        .find(|l| l.name == "virtualInbound")
        .unwrap();
    let names: Vec<&str> = listener
        .filter_chains
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "virtualInbound-blackhole",
            "0.0.0.0_8080",
            "0.0.0.0_8080",
            "virtualInbound"
        ]
    );
    // As istiod: the application learns who called, after what earlier
    // hops said.
    for chain in json_of(listener)["filter_chains"].as_array().unwrap() {
        if chain["name"] != "0.0.0.0_8080" {
            continue;
        }
        let hcm = &chain["filters"][0]["typed_config"];
        assert_eq!(hcm["forward_client_cert_details"], "APPEND_FORWARD");
        assert_eq!(
            hcm["set_current_client_cert_details"],
            json!({"subject": true, "dns": true, "uri": true})
        );
    }
    // Another workload on the same address is not this proxy's.
    let other = proxy("default", &[("app", "ratings")]);
    assert!(
        !translate(&other, &snapshot)
            .clusters
            .iter()
            .any(|c| c.name.starts_with("inbound|"))
    );
}

#[test]
fn peer_authentication_shapes_inbound_chains_and_auto_mtls() {
    let policies = "\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: mesh-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews-v2, namespace: default}
spec:
  selector: {matchLabels: {version: v2}}
  mtls: {mode: UNSET}
  portLevelMtls: {8080: {mode: DISABLE}}
";
    let mut snapshot = reviews_snapshot(policies);
    for (version, ip) in [("v1", "10.9.9.9"), ("v2", "10.9.9.8")] {
        let mut own = (*endpoint("reviews", version, ip)).clone();
        own.ports.insert("http".into(), 8080);
        snapshot.endpoints.push(Arc::new(own));
    }
    let transports = |resources: &Resources| -> Vec<String> {
        resources
            .listeners
            .iter()
            .find(|l| l.name == "virtualInbound")
            .unwrap()
            .filter_chains
            .iter()
            .filter(|c| c.name == "0.0.0.0_8080")
            .map(|c| {
                c.filter_chain_match
                    .as_ref()
                    .map_or(String::new(), |m| m.transport_protocol.clone())
            })
            .collect()
    };
    // Mesh-wide STRICT: mTLS only.
    let v1 = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    assert_eq!(transports(&translate(&v1, &snapshot)), ["tls"]);
    // The v2 workload's port-level DISABLE: one chain taking anything.
    let mut v2 = proxy("default", &[("app", "reviews"), ("version", "v2")]);
    v2.ip = "10.9.9.8".parse().unwrap();
    assert_eq!(transports(&translate(&v2, &snapshot)), [""]);
    // Without policies, PERMISSIVE: both.
    let mut plain = reviews_snapshot("");
    plain.endpoints = snapshot.endpoints.clone();
    assert_eq!(transports(&translate(&v1, &plain)), ["tls", "raw_buffer"]);

    // Clients offer mTLS to the port that takes it, not to the disabled one.
    let client = translate(&proxy("default", &[("app", "productpage")]), &snapshot);
    let assignment = client
        .endpoints
        .iter()
        .find(|e| e.cluster_name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    let modes: BTreeMap<String, Value> = json_of(assignment)["endpoints"][0]["lb_endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["endpoint"]["address"]["socket_address"]["address"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                e["metadata"]["filter_metadata"]["envoy.transport_socket_match"]["tlsMode"].clone(),
            )
        })
        .collect();
    assert_eq!(modes["10.9.9.9"], json!("istio"));
    assert_eq!(modes["10.9.9.8"], Value::Null, "DISABLE gets plain text");
}

const TRACING_MESH: &str = r#"
defaultConfig:
  tracing:
    sampling: 50
extensionProviders:
- name: otel
  opentelemetry: {service: observability/otel-collector.observability.svc.cluster.local, port: 4317}
defaultProviders:
  tracing: [otel]
"#;

const INGRESS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: ["*"]
  gateways: [ingress]
  http:
  - route:
    - destination: {host: reviews}
"#;

/// The `tracing` of every HTTP connection manager, by listener name.
fn tracing_by_listener(resources: &Resources) -> Vec<(String, Option<Value>)> {
    let mut found = Vec::new();
    for listener in &resources.listeners {
        let chains = listener
            .filter_chains
            .iter()
            .chain(&listener.default_filter_chain);
        for filter in chains.flat_map(|c| &c.filters) {
            if let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type
                && any.type_url.ends_with("HttpConnectionManager")
            {
                let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
                found.push((listener.name.clone(), hcm.tracing.as_ref().map(json_of)));
            }
        }
    }
    found
}

fn traced_snapshot(yaml: &str) -> MeshSnapshot {
    let mut snapshot = reviews_snapshot(yaml);
    let mut own = (*endpoint("reviews", "v1", "10.9.9.9")).clone();
    own.ports.insert("http".into(), 8080);
    snapshot.endpoints.push(Arc::new(own));
    let mut collector = (*service("otel-collector", "observability", &[])).clone();
    collector.ports[0].number = 4317;
    snapshot.services.push(Arc::new(collector));
    snapshot.mesh = crate::mesh_config::parse("mesh.yaml", TRACING_MESH).unwrap();
    snapshot
}

#[test]
fn every_connection_manager_traces_to_the_mesh_provider() {
    let snapshot = traced_snapshot("");
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    let managers = tracing_by_listener(&translate(&me, &snapshot));
    let listeners: Vec<&str> = managers.iter().map(|(name, _)| name.as_str()).collect();
    assert!(listeners.contains(&"0.0.0.0_9080"), "{listeners:?}");
    assert!(listeners.contains(&"virtualInbound"), "{listeners:?}");
    let tag = |tag: &str, value: &str| json!({"tag": tag, "literal": {"value": value}});
    let expected = json!({
        "client_sampling": {"value": 100.0},
        "random_sampling": {"value": 50.0},
        "overall_sampling": {"value": 100.0},
        "custom_tags": [
            tag("istio.canonical_revision", "v1"),
            tag("istio.canonical_service", "reviews"),
            tag("istio.cluster_id", "unknown"),
            tag("istio.mesh_id", "unknown"),
            tag("istio.namespace", "default"),
        ],
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {"envoy_grpc": {
                    "cluster_name": "outbound|4317||otel-collector.observability.svc.cluster.local",
                    "authority": "otel-collector.observability.svc.cluster.local"
                }},
                "service_name": "reviews.default"
            }
        }
    });
    for (listener, tracing) in &managers {
        assert_eq!(tracing.as_ref(), Some(&expected), "{listener}");
    }
}

#[test]
fn gateways_spawn_upstream_spans() {
    let snapshot = traced_snapshot(INGRESS);
    let mut gateway = proxy("default", &[("istio", "ingressgateway")]);
    gateway.kind = mesh_api::names::ProxyKind::Router;
    let managers = tracing_by_listener(&translate(&gateway, &snapshot));
    assert!(!managers.is_empty());
    for (listener, tracing) in managers {
        let tracing = tracing.unwrap_or_else(|| panic!("{listener} is not traced"));
        assert_eq!(tracing["spawn_upstream_span"], true, "{listener}");
        assert_eq!(
            tracing["provider"]["typed_config"]["service_name"],
            "client.default"
        );
    }
}

#[test]
fn no_tracing_without_a_provider_or_its_service() {
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    let mut snapshot = traced_snapshot("");
    snapshot.services.retain(|s| s.namespace != "observability");
    let managers = tracing_by_listener(&translate(&me, &snapshot));
    assert!(!managers.is_empty());
    assert!(managers.iter().all(|(_, tracing)| tracing.is_none()));
    snapshot = traced_snapshot("");
    snapshot.mesh.tracing = None;
    let managers = tracing_by_listener(&translate(&me, &snapshot));
    assert!(managers.iter().all(|(_, tracing)| tracing.is_none()));
}
mod authorization;
mod jwt;
