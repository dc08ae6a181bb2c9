//! Locality load balancing through `translate`, for a client in
//! `us-east/a/1` and reviews endpoints spread over regions and zones.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::model::{MeshSnapshot, Proxy};
use crate::translate::{tests, translate};

const HOST: &str = "reviews.default.svc.cluster.local";

fn snapshot(policy: &str) -> MeshSnapshot {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {policy}
"
    );
    let endpoint = |ip: &str, locality: &str| {
        let mut endpoint = (*tests::endpoint("reviews", "v1", ip)).clone();
        endpoint.locality = locality.into();
        Arc::new(endpoint)
    };
    MeshSnapshot {
        config: tests::config(&yaml),
        services: vec![tests::service("reviews", "default", &[])],
        endpoints: vec![
            endpoint("10.0.0.1", "us-east/a/1"),
            endpoint("10.0.0.2", "us-east/a/2"),
            endpoint("10.0.0.3", "us-east/b/1"),
            endpoint("10.0.0.4", "us-west/a/1"),
            endpoint("10.0.0.5", "eu-west/a/1"),
        ],
        ..MeshSnapshot::default()
    }
}

fn client(locality: &str) -> Proxy {
    Proxy {
        locality: locality.into(),
        ..tests::proxy("default", &[])
    }
}

/// Each locality group of the reviews assignment: `(locality, priority,
/// weight, endpoint count)`.
fn groups(policy: &str, locality: &str) -> Vec<(String, u64, u64, usize)> {
    let resources = translate(&client(locality), &snapshot(policy));
    let assignment = resources
        .endpoints
        .iter()
        .find(|a| a.cluster_name == format!("outbound|9080||{HOST}"))
        .unwrap();
    let json = mesh_api::envoy::to_json(assignment).unwrap();
    json["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g: &Value| {
            let l = &g["locality"];
            (
                format!(
                    "{}/{}/{}",
                    l["region"].as_str().unwrap_or(""),
                    l["zone"].as_str().unwrap_or(""),
                    l["sub_zone"].as_str().unwrap_or("")
                ),
                g["priority"].as_u64().unwrap_or(0),
                g["load_balancing_weight"].as_u64().unwrap_or(0),
                g["lb_endpoints"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

fn priorities(policy: &str, locality: &str) -> Vec<(String, u64)> {
    groups(policy, locality)
        .into_iter()
        .map(|(l, p, _, _)| (l, p))
        .collect()
}

const OUTLIER: &str = "{outlierDetection: {consecutive5xxErrors: 1}}";

#[test]
fn outlier_detection_turns_on_failover_by_closeness() {
    assert_eq!(
        priorities(OUTLIER, "us-east/a/1"),
        [
            ("eu-west/a/1".to_owned(), 3),
            ("us-east/a/1".to_owned(), 0),
            ("us-east/a/2".to_owned(), 1),
            ("us-east/b/1".to_owned(), 2),
            ("us-west/a/1".to_owned(), 3),
        ]
    );
    // From us-west, us-east's three groups are equally far.
    assert_eq!(
        priorities(OUTLIER, "us-west/a/1")
            .into_iter()
            .map(|(_, p)| p)
            .collect::<Vec<_>>(),
        [1, 1, 1, 1, 0]
    );
}

#[test]
fn without_outlier_detection_or_when_disabled_nothing_is_ranked() {
    let flat = |policy: &str| {
        priorities(policy, "us-east/a/1")
            .iter()
            .all(|(_, p)| *p == 0)
    };
    assert!(flat("{}"));
    assert!(flat(
        "{outlierDetection: {consecutive5xxErrors: 1}, loadBalancer: {localityLbSetting: {enabled: false}}}"
    ));
}

#[test]
fn failover_rules_keep_their_region_next_and_push_others_back() {
    let policy = "{outlierDetection: {consecutive5xxErrors: 1},
    loadBalancer: {localityLbSetting: {failover: [{from: us-east, to: eu-west}]}}}";
    assert_eq!(
        priorities(policy, "us-east/a/1"),
        [
            ("eu-west/a/1".to_owned(), 3),
            ("us-east/a/1".to_owned(), 0),
            ("us-east/a/2".to_owned(), 1),
            ("us-east/b/1".to_owned(), 2),
            ("us-west/a/1".to_owned(), 4),
        ]
    );
    let resources = translate(&client("us-east/a/1"), &snapshot(policy));
    let cluster = resources
        .clusters
        .iter()
        .find(|c| c.name == format!("outbound|9080||{HOST}"))
        .unwrap();
    assert_eq!(
        mesh_api::envoy::to_json(cluster).unwrap()["common_lb_config"]["locality_weighted_lb_config"],
        json!({})
    );
}

#[test]
fn distribute_weighs_localities_and_empties_the_rest() {
    let policy = r#"{loadBalancer: {localityLbSetting: {distribute: [
        {from: "us-east/*", to: {"us-east/a/*": 80, "us-west/*": 20}}]}}}"#;
    assert_eq!(
        groups(policy, "us-east/a/1"),
        [
            ("eu-west/a/1".to_owned(), 0, 1, 0),
            ("us-east/a/1".to_owned(), 0, 40, 1),
            ("us-east/a/2".to_owned(), 0, 40, 1),
            ("us-east/b/1".to_owned(), 0, 1, 0),
            ("us-west/a/1".to_owned(), 0, 20, 1),
        ]
    );
    // A proxy no rule names keeps the plain groups.
    assert!(
        groups(policy, "eu-west/a/1")
            .iter()
            .all(|(_, _, weight, count)| *weight == 1 && *count == 1)
    );
}
