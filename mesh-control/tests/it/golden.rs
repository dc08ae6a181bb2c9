//! Golden tests: what a productpage sidecar gets for the Bookinfo registry
//! and each of the Bookinfo walkthrough configs, and what the ingress
//! gateway gets for the Bookinfo gateway, as Envoy JSON kept in
//! `tests/golden/`. Run with `UPDATE_GOLDEN=1` to rewrite the files, then
//! review the diff.

use crate::common;

use std::path::{Path, PathBuf};

use common::{Source, examples, ingress_gateway, productpage, read, snapshot, testdata};
use mesh_api::envoy::to_json;
use mesh_api::load::Resource;
use mesh_control::translate::{Resources, translate};
use serde_json::{Value, json};

/// Keeps Envoy's descriptors decoded while a test renders JSON.
fn descriptors() -> mesh_api::envoy::Descriptors {
    mesh_api::envoy::Descriptors::get()
}

fn render<M: prost::Message + prost::Name>(items: &[M]) -> Value {
    Value::Array(items.iter().map(|m| to_json(m).expect("renders")).collect())
}

/// The parts of the resources a config file changes.
#[derive(Clone, Copy)]
enum Parts {
    All,
    Clusters,
    Routes,
}

fn rendered(resources: &Resources, parts: Parts) -> Value {
    match parts {
        Parts::All => json!({
            "listeners": render(&resources.listeners),
            "routes": render(&resources.routes),
            "clusters": render(&resources.clusters),
            "endpoints": render(&resources.endpoints),
        }),
        Parts::Clusters => json!({
            "clusters": render(&resources.clusters),
            "endpoints": render(&resources.endpoints),
        }),
        Parts::Routes => json!({ "routes": render(&resources.routes) }),
    }
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares with the golden file, or rewrites it under `UPDATE_GOLDEN`.
fn check(name: &str, actual: &Value) {
    let path = golden_dir().join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err}; run with UPDATE_GOLDEN=1", path.display()));
    assert!(
        expected == text,
        "{} differs from what translate gives; run with UPDATE_GOLDEN=1 and review the diff",
        path.display()
    );
}

fn is_destination_rule_file(name: &str) -> bool {
    name.starts_with("destination-rule")
}

/// Translates with the walkthrough's order: a VirtualService file is
/// applied on top of `destination-rule-all.yaml`, whose subsets it names.
fn scenario(dir: &Path, file: &str) -> (Resources, Parts) {
    let mut config: Vec<Resource> = read(Source::File(&dir.join(file)));
    let parts = if is_destination_rule_file(file) {
        Parts::Clusters
    } else {
        config.extend(read(Source::File(&dir.join("destination-rule-all.yaml"))));
        Parts::Routes
    };
    (translate(&productpage(), &snapshot(config)), parts)
}

fn yaml_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && !n.starts_with("platform-"))
        .collect();
    names.sort();
    names
}

#[test]
fn productpage_sidecar_without_config() {
    let _descriptors = descriptors();
    let resources = translate(&productpage(), &snapshot(Vec::new()));
    check("productpage", &rendered(&resources, Parts::All));
}

#[test]
fn istio_samples() {
    let _descriptors = descriptors();
    let dir = testdata();
    for file in yaml_files(&dir) {
        let (resources, parts) = scenario(&dir, &file);
        check(
            &format!("istio-bookinfo/{}", file.trim_end_matches(".yaml")),
            &rendered(&resources, parts),
        );
    }
}

#[test]
fn walkthrough_examples() {
    let _descriptors = descriptors();
    let dir = examples();
    for file in yaml_files(&dir) {
        let (resources, parts) = scenario(&dir, &file);
        check(
            &format!("examples/{}", file.trim_end_matches(".yaml")),
            &rendered(&resources, parts),
        );
    }
}

/// The routes of the reviews or ratings virtual host on 9080, as JSON.
fn routes_of(resources: &Resources, host: &str) -> Vec<Value> {
    let config = resources.routes.iter().find(|r| r.name == "9080").unwrap();
    let vhost = config
        .virtual_hosts
        .iter()
        .find(|v| v.name == format!("{host}.default.svc.cluster.local:9080"))
        .unwrap();
    vhost.routes.iter().map(|r| to_json(r).unwrap()).collect()
}

#[test]
fn walkthrough_facts() {
    let _descriptors = descriptors();
    let dir = testdata();
    let (jason_v2, _) = scenario(&dir, "virtual-service-reviews-test-v2.yaml");
    let routes = routes_of(&jason_v2, "reviews");
    assert_eq!(
        routes[0]["match"]["headers"][0],
        json!({"name": "end-user", "string_match": {"exact": "jason"}})
    );
    assert_eq!(
        routes[0]["route"]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        routes[1]["route"]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );

    let (split, _) = scenario(&dir, "virtual-service-reviews-50-v3.yaml");
    let weighted = &routes_of(&split, "reviews")[0]["route"]["weighted_clusters"]["clusters"];
    assert_eq!(
        weighted,
        &json!([
            {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 50},
            {"name": "outbound|9080|v3|reviews.default.svc.cluster.local", "weight": 50}
        ])
    );

    let (delay, _) = scenario(&dir, "virtual-service-ratings-test-delay.yaml");
    let fault =
        &routes_of(&delay, "ratings")[0]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(fault["delay"]["fixed_delay"], "7s");
    assert_eq!(
        fault["delay"]["percentage"],
        json!({"numerator": 1000000, "denominator": "MILLION"})
    );

    let (abort, _) = scenario(&dir, "virtual-service-ratings-test-abort.yaml");
    let routes = routes_of(&abort, "ratings");
    let fault = &routes[0]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(fault["abort"]["http_status"], 500);
    assert_eq!(
        routes[0]["match"]["headers"][0]["string_match"]["exact"],
        "jason"
    );
    assert!(
        routes[1].get("typed_per_filter_config").is_none(),
        "others are not aborted"
    );
}

#[test]
fn bookinfo_ingress_gateway() {
    let _descriptors = descriptors();
    let config = read(Source::File(&testdata().join("bookinfo-gateway.yaml")));
    let resources = translate(&ingress_gateway(), &snapshot(config));
    let mut all = rendered(&resources, Parts::All);
    all["secrets"] = render(&resources.secrets);
    check("ingressgateway-bookinfo", &all);

    let walkthrough = read(Source::File(&examples().join("bookinfo-gateway.yaml")));
    // Compared as JSON: `Struct`s inside `Any`s encode in no fixed order.
    let other = translate(&ingress_gateway(), &snapshot(walkthrough));
    let mut same = rendered(&other, Parts::All);
    same["secrets"] = render(&other.secrets);
    assert_eq!(
        same, all,
        "the walkthrough's gateway config is the sample's"
    );
}

#[test]
fn bookinfo_ingress_gateway_facts() {
    let _descriptors = descriptors();
    let config = read(Source::File(&testdata().join("bookinfo-gateway.yaml")));
    let resources = translate(&ingress_gateway(), &snapshot(config));

    let names: Vec<&str> = resources
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["0.0.0.0_8080"]);
    let listener = to_json(&resources.listeners[0]).unwrap();
    assert_eq!(listener["address"]["socket_address"]["port_value"], 8080);
    assert_eq!(listener["traffic_direction"], "OUTBOUND");
    assert!(
        listener.get("bind_to_port").is_none(),
        "bound, as by default"
    );
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["rds"]["route_config_name"], "http.8080");
    assert_eq!(hcm["use_remote_address"], true);
    let filters: Vec<&str> = hcm["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        filters,
        [
            "istio.metadata_exchange",
            "envoy.filters.http.cors",
            "envoy.filters.http.fault",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    let stats = &hcm["http_filters"][3]["typed_config"];
    assert_eq!(stats["disable_host_header_fallback"], true);
    let exchange = &hcm["http_filters"][0]["typed_config"]["value"];
    assert!(exchange.get("upstream_discovery").is_some(), "{exchange}");

    let names: Vec<&str> = resources.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["http.8080"]);
    let vhosts = &resources.routes[0].virtual_hosts;
    assert_eq!(vhosts.len(), 1);
    assert_eq!(vhosts[0].name, "*:8080");
    assert_eq!(vhosts[0].domains, ["*"]);
    let routes: Vec<Value> = vhosts[0]
        .routes
        .iter()
        .map(|r| to_json(r).unwrap())
        .collect();
    let matches: Vec<&Value> = routes.iter().map(|r| &r["match"]).collect();
    assert_eq!(
        matches,
        [
            &json!({"path": "/productpage"}),
            &json!({"prefix": "/static"}),
            &json!({"path": "/login"}),
            &json!({"path": "/logout"}),
            &json!({"prefix": "/api/v1/products"}),
        ]
    );
    for route in &routes {
        assert_eq!(
            route["route"]["cluster"],
            "outbound|9080||productpage.default.svc.cluster.local"
        );
    }

    let clusters: Vec<&str> = resources.clusters.iter().map(|c| c.name.as_str()).collect();
    assert!(clusters.contains(&"outbound|9080||productpage.default.svc.cluster.local"));
    assert!(clusters.contains(&"BlackHoleCluster"));
    assert!(!clusters.contains(&"PassthroughCluster"), "{clusters:?}");
    assert!(
        resources
            .endpoints
            .iter()
            .any(|e| e.cluster_name == "outbound|9080||productpage.default.svc.cluster.local")
    );
}
