//! The monitoring server: readiness, metrics, sync status, config dumps and
//! the `/api/` hook.

use crate::support;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use mesh_control::app::Options;
use mesh_control::monitoring::ApiHandler;
use mesh_control::store::{ConfigSource, DirectorySource};
use mesh_control::xds::XdsType;
use support::{ControlPlane, XdsClient, node_id, snapshot};

fn one_service() -> Arc<mesh_control::model::MeshSnapshot> {
    snapshot(
        1,
        &["reviews.default.svc.cluster.local"],
        &[("reviews.default.svc.cluster.local", 1)],
    )
}

#[tokio::test]
async fn ready_and_metrics() {
    let cp = ControlPlane::start(one_service()).await;
    assert_eq!(cp.get("/ready").await, (200, "ready\n".into()));
    let (status, metrics) = cp.get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "pilot_xds 0",
        "pilot_services 1",
        "pilot_xds_pushes{type=\"cds\"} 0",
        "pilot_total_xds_rejects{type=\"rds\"} 0",
        "pilot_proxy_convergence_time_count 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from\n{metrics}"
        );
    }
    cp.running
        .metrics
        .record_rejected_config("VirtualService", "default/reviews");
    let (_, metrics) = cp.get("/metrics").await;
    assert!(
        metrics.contains(
            "pilot_total_rejected_configs{type=\"VirtualService\",name=\"default/reviews\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(cp.get("/nothing").await.0, 404);
}

#[tokio::test]
async fn config_dump_shows_what_was_sent() {
    let cp = ControlPlane::start(one_service()).await;
    let mut proxy = XdsClient::connect(cp.running.xds, &node_id("productpage-v1")).await;
    proxy.request(XdsType::Cluster, &[], None).await;
    let cds = proxy.recv_type(XdsType::Cluster).await;
    proxy.ack(&cds, &[]).await;
    proxy.request(XdsType::Secret, &["ROOTCA"], None).await;
    proxy.recv_type(XdsType::Secret).await;

    for id in [node_id("productpage-v1"), "productpage-v1.default".into()] {
        let (status, body) = cp.get(&format!("/debug/config_dump?proxyID={id}")).await;
        assert_eq!(status, 200, "{body}");
        let dump: serde_json::Value = serde_json::from_str(&body).unwrap();
        let configs = dump["configs"].as_array().unwrap();
        let clusters = configs
            .iter()
            .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.ClustersConfigDump")
            .unwrap();
        let cluster = &clusters["dynamic_active_clusters"][0];
        assert_eq!(cluster["version_info"], cds.version_info.as_str());
        assert_eq!(
            cluster["cluster"]["name"],
            "outbound|80||reviews.default.svc.cluster.local"
        );
        assert_eq!(cluster["cluster"]["type"], "EDS");
        let secrets = configs
            .iter()
            .find(|c| c["@type"] == "type.googleapis.com/envoy.admin.v3.SecretsConfigDump")
            .unwrap();
        assert_eq!(secrets["dynamic_active_secrets"][0]["name"], "ROOTCA");
    }
    let (status, body) = cp.get("/debug/config_dump?proxyID=nobody.default").await;
    assert_eq!(status, 404);
    assert!(body.contains("nobody.default"), "{body}");
    assert_eq!(cp.get("/debug/config_dump").await.0, 400);

    let (_, syncz) = cp.get("/debug/syncz?namespace=elsewhere").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&syncz).unwrap(),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn the_api_hook_serves_under_api() {
    let handler = |request: http::Request<hyper::body::Incoming>| async move {
        http::Response::new(Full::new(Bytes::from(format!(
            "{} {}",
            request.method(),
            request.uri().path()
        ))))
    };
    let api: Arc<dyn ApiHandler> = Arc::new(handler);
    let cp = ControlPlane::start_with(
        one_service(),
        Options {
            api: Some(api),
            ..Options::default()
        },
    )
    .await;
    assert_eq!(
        cp.get("/api/v1/config").await,
        (200, "GET /api/v1/config".into())
    );

    let without = ControlPlane::start(one_service()).await;
    assert_eq!(without.get("/api/v1/config").await.0, 404);
}

/// What `/debug/config_problems` lists (and its text) when `dir` is the
/// config source and its valid config is served.
async fn problems_listed(dir: &std::path::Path) -> (Vec<serde_json::Value>, String) {
    let source: Arc<dyn ConfigSource> = Arc::new(DirectorySource::start(dir).unwrap());
    let served = mesh_control::model::MeshSnapshot {
        config: source.current().resources(),
        ..(*one_service()).clone()
    };
    let cp = ControlPlane::start_with(
        Arc::new(served),
        Options {
            config_sources: vec![source],
            ..Options::default()
        },
    )
    .await;
    let (status, body) = cp.get("/debug/config_problems").await;
    assert_eq!(status, 200, "{body}");
    (serde_json::from_str(&body).unwrap(), body)
}

#[tokio::test]
async fn config_problems_list_what_the_sources_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = support::config::testdata().join("bookinfo-gateway.yaml");
    std::fs::copy(&gateway, dir.path().join("gateway.yaml")).unwrap();
    // Defined again in a second file: the first file in path order wins.
    std::fs::copy(&gateway, dir.path().join("gateway-again.yaml")).unwrap();
    let broken = dir.path().join("reviews.yaml");
    let routes = std::fs::read_to_string(
        support::config::testdata().join("virtual-service-reviews-v3.yaml"),
    )
    .unwrap();
    std::fs::write(
        &broken,
        routes.replace("subset: v3", "subset: v3\n      weight: -5"),
    )
    .unwrap();
    let (problems, body) = problems_listed(dir.path()).await;
    // The invalid route, and the gateway file's Gateway and VirtualService
    // defined twice.
    assert_eq!(problems.len(), 3, "{body}");
    let invalid = problems
        .iter()
        .find(|p| p["file"] == broken.display().to_string().as_str())
        .unwrap_or_else(|| panic!("the invalid file in {body}"));
    assert_eq!(invalid["subject"], "VirtualService default/reviews");
    assert_eq!(invalid["path"], "spec.http[0].route[0].weight");
    assert!(invalid["line"].as_u64().unwrap() > 0, "{invalid}");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .contains("VirtualService default/reviews: spec.http[0].route[0].weight"),
        "{invalid}"
    );
    let mut twice: Vec<&str> = problems
        .iter()
        .filter(|p| p["reason"].as_str().unwrap().contains("already defined at"))
        .map(|p| p["subject"].as_str().unwrap())
        .collect();
    twice.sort();
    assert_eq!(
        twice,
        [
            "Gateway default/bookinfo-gateway",
            "VirtualService default/bookinfo"
        ]
    );

    let without = ControlPlane::start(one_service()).await;
    assert_eq!(
        without.get("/debug/config_problems").await,
        (200, "[]\n".into())
    );
}

#[tokio::test]
async fn config_problems_list_custom_policies_that_cannot_reach_their_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("authz.yaml");
    std::fs::write(
        &policy,
        "apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: nowhere}
  rules:
  - to: [{operation: {paths: [/admin/*]}}]
",
    )
    .unwrap();
    let (problems, body) = problems_listed(dir.path()).await;
    assert_eq!(problems.len(), 1, "{body}");
    let problem = &problems[0];
    assert_eq!(problem["file"], policy.display().to_string().as_str());
    assert_eq!(problem["line"], 1);
    assert_eq!(problem["subject"], "AuthorizationPolicy default/ext");
    assert_eq!(problem["path"], "spec.provider.name");
    assert!(
        problem["reason"]
            .as_str()
            .unwrap()
            .contains("provider \"nowhere\""),
        "{problem}"
    );
}
