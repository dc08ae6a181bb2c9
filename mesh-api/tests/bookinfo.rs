//! Istio's own Bookinfo configuration files load, validate clean, and mean
//! what Istio means by them.

use std::path::PathBuf;
use std::time::Duration;

use mesh_api::Resource;
use mesh_api::load::{self, Report};
use mesh_api::networking::destination_rule::{SimpleLb, TlsMode};
use mesh_api::networking::virtual_service::{StringMatchKind, VirtualServiceSpec};

fn testdata() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/istio-bookinfo");
    assert!(dir.is_dir(), "test data not found at {}", dir.display());
    dir
}

fn load(file: &str) -> Report {
    let mut report = load::load_path(&testdata().join(file));
    report.validate();
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{file}: {problems:#?}");
    report
}

fn only_virtual_service(file: &str) -> VirtualServiceSpec {
    let report = load(file);
    assert_eq!(report.resources.len(), 1, "{file}");
    match &report.resources[0].resource {
        Resource::VirtualService(vs) => vs.spec.clone(),
        other => panic!("{file}: expected a VirtualService, got {}", other.kind()),
    }
}

#[test]
fn every_sample_file_loads_and_validates_clean() {
    let mut report = load::load_path(&testdata());
    report.validate();
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    let files: std::collections::BTreeSet<_> = report
        .resources
        .iter()
        .map(|r| r.source.file.clone())
        .collect();
    // Every file but the Kubernetes platform manifest holds Istio resources.
    let yaml_files = std::fs::read_dir(testdata()).unwrap().count();
    assert_eq!(files.len(), yaml_files - 1);
    assert!(
        report
            .skipped
            .iter()
            .all(|s| ["Service", "ServiceAccount", "Deployment"].contains(&s.kind.as_str()))
    );
    assert!(!report.skipped.is_empty());
}

#[test]
fn jason_is_routed_to_reviews_v2_by_his_end_user_header() {
    let vs = only_virtual_service("virtual-service-reviews-test-v2.yaml");
    assert_eq!(vs.hosts, ["reviews"]);
    let first = &vs.http[0];
    let header = &first.r#match[0].headers["end-user"];
    assert_eq!(header.kind(), Some(StringMatchKind::Exact("jason")));
    assert_eq!(first.route[0].destination.host, "reviews");
    assert_eq!(first.route[0].destination.subset, "v2");
    assert!(vs.http[1].r#match.is_empty());
    assert_eq!(vs.http[1].route[0].destination.subset, "v1");
}

#[test]
fn traffic_is_split_fifty_fifty() {
    for (file, subsets) in [
        ("virtual-service-reviews-50-v3.yaml", ["v1", "v3"]),
        ("virtual-service-reviews-v2-v3.yaml", ["v2", "v3"]),
    ] {
        let vs = only_virtual_service(file);
        let routes = &vs.http[0].route;
        let split: Vec<(&str, Option<i32>)> = routes
            .iter()
            .map(|r| (r.destination.subset.as_str(), r.weight))
            .collect();
        assert_eq!(
            split,
            [(subsets[0], Some(50)), (subsets[1], Some(50))],
            "{file}"
        );
    }
}

#[test]
fn ratings_are_delayed_seven_seconds_for_jason() {
    let vs = only_virtual_service("virtual-service-ratings-test-delay.yaml");
    let rule = &vs.http[0];
    assert_eq!(
        rule.r#match[0].headers["end-user"].kind(),
        Some(StringMatchKind::Exact("jason"))
    );
    let delay = rule.fault.as_ref().unwrap().delay.as_ref().unwrap();
    assert_eq!(delay.fixed_delay.unwrap().as_std(), Duration::from_secs(7));
    assert_eq!(delay.percentage.as_ref().unwrap().value, 100.0);
    assert!(vs.http[1].fault.is_none());
}

#[test]
fn ratings_abort_with_500_for_jason() {
    let vs = only_virtual_service("virtual-service-ratings-test-abort.yaml");
    let abort = vs.http[0].fault.as_ref().unwrap().abort.as_ref().unwrap();
    assert_eq!(abort.http_status, Some(500));
    assert_eq!(abort.percentage.as_ref().unwrap().value, 100.0);
    assert_eq!(vs.http[0].route[0].destination.subset, "v1");
}

#[test]
fn all_v1_and_all_v3() {
    let report = load("virtual-service-all-v1.yaml");
    assert_eq!(report.resources.len(), 4);
    for loaded in &report.resources {
        let Resource::VirtualService(vs) = &loaded.resource else {
            panic!("not a VirtualService")
        };
        assert_eq!(vs.spec.http[0].route[0].destination.subset, "v1");
    }
    let v3 = only_virtual_service("virtual-service-reviews-v3.yaml");
    assert_eq!(v3.http[0].route[0].destination.subset, "v3");
}

#[test]
fn destination_rules_define_subsets_and_policies() {
    let report = load("destination-rule-all-mtls.yaml");
    let reviews = report
        .resources
        .iter()
        .find_map(|l| match &l.resource {
            Resource::DestinationRule(dr) if dr.spec.host == "reviews" => Some(dr.spec.clone()),
            _ => None,
        })
        .unwrap();
    let subsets: Vec<&str> = reviews.subsets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(subsets, ["v1", "v2", "v3"]);
    assert_eq!(reviews.subset("v2").unwrap().labels["version"], "v2");
    let tls = reviews
        .traffic_policy
        .as_ref()
        .unwrap()
        .tls
        .as_ref()
        .unwrap();
    assert_eq!(tls.mode, TlsMode::IstioMutual);

    let report = load("destination-rule-reviews.yaml");
    let Resource::DestinationRule(dr) = &report.resources[0].resource else {
        panic!()
    };
    let lb = dr
        .spec
        .traffic_policy
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap();
    assert_eq!(lb.simple, Some(SimpleLb::Random));
}

#[test]
fn the_gateway_exposes_the_product_page() {
    let report = load("bookinfo-gateway.yaml");
    let (mut gateway, mut routes) = (None, None);
    for loaded in &report.resources {
        match &loaded.resource {
            Resource::Gateway(gw) => gateway = Some(gw.spec.clone()),
            Resource::VirtualService(vs) => routes = Some(vs.spec.clone()),
            other => panic!("unexpected {}", other.kind()),
        }
    }
    let gateway = gateway.unwrap();
    assert_eq!(gateway.selector["istio"], "ingressgateway");
    assert_eq!(gateway.servers[0].port.number, 8080);
    assert_eq!(gateway.servers[0].hosts, ["*"]);
    let routes = routes.unwrap();
    assert_eq!(routes.gateways, ["bookinfo-gateway"]);
    let uris: Vec<_> = routes.http[0]
        .r#match
        .iter()
        .filter_map(|m| m.uri.as_ref()?.kind())
        .collect();
    assert!(uris.contains(&StringMatchKind::Exact("/productpage")));
    assert!(uris.contains(&StringMatchKind::Prefix("/static")));
    assert_eq!(
        routes.http[0].route[0]
            .destination
            .port
            .as_ref()
            .unwrap()
            .number,
        9080
    );
}
