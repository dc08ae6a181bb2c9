//! The config API over a real HTTP server on loopback: apply, get, delete,
//! and invalid input refused with `meshctl validate`'s messages.

use std::fs;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use mesh_control::store::{ConfigSource, MemoryStore};
use serde_json::Value;

use crate::support;

use support::config::ApiServer;

async fn apply_file(server: &ApiServer, name: &str) -> (StatusCode, String) {
    let text = fs::read_to_string(support::config::testdata().join(name)).unwrap();
    let path = format!("/api/v1/config?source={name}");
    server.send(Method::POST, &path, &text).await
}

#[tokio::test]
async fn bookinfo_applies_lists_and_deletes() {
    let server = ApiServer::start(Arc::new(MemoryStore::new())).await;
    let changes = server.store.subscribe();

    let (status, body) = apply_file(&server, "destination-rule-all.yaml").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body.lines().collect::<Vec<_>>(),
        [
            "destinationrule.networking.istio.io/productpage created",
            "destinationrule.networking.istio.io/reviews created",
            "destinationrule.networking.istio.io/ratings created",
            "destinationrule.networking.istio.io/details created",
        ]
    );
    assert!(changes.has_changed().unwrap());
    let (status, body) = apply_file(&server, "destination-rule-all.yaml").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.lines().all(|l| l.ends_with(" unchanged")), "{body}");
    for name in [
        "bookinfo-gateway.yaml",
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-test-v2.yaml",
    ] {
        let (status, body) = apply_file(&server, name).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    let (status, body) = apply_file(&server, "platform-kube-bookinfo.yaml").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("platform-kube-bookinfo.yaml:"), "{body}");
    assert!(body.contains(" v1 Service passed over"), "{body}");

    // Lists, by any of the kind's names, as JSON or YAML.
    let (status, body) = server
        .send(Method::GET, "/api/v1/config/vs?namespace=default", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(list["kind"], "List");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["bookinfo", "details", "productpage", "ratings", "reviews"]
    );
    assert_eq!(
        list["items"][4]["spec"]["http"][0]["match"][0]["headers"]["end-user"]["exact"],
        "jason"
    );
    let (_, other) = server
        .send(
            Method::GET,
            "/api/v1/config/virtualservices?namespace=other",
            "",
        )
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&other).unwrap()["items"],
        Value::Array(vec![])
    );
    let (status, yaml) = server
        .send(
            Method::GET,
            "/api/v1/config/DestinationRule?output=yaml",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(yaml.starts_with("apiVersion: v1\nitems:\n"), "{yaml}");
    let (status, one) = server
        .send(
            Method::GET,
            "/api/v1/config/gw/default/bookinfo-gateway?output=yaml",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = mesh_api::load::load_str("gw.yaml", &one);
    assert!(again.problems.is_empty(), "{one}");
    assert_eq!(again.resources[0].resource.name(), "bookinfo-gateway");

    // Deletes, by document or by path.
    let text = fs::read_to_string(
        support::config::testdata().join("virtual-service-reviews-test-v2.yaml"),
    )
    .unwrap();
    let (status, body) = server.send(Method::DELETE, "/api/v1/config", &text).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "virtualservice.networking.istio.io/reviews deleted\n");
    let (status, body) = server.send(Method::DELETE, "/api/v1/config", &text).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        "virtualservice.networking.istio.io/reviews not found\n"
    );
    let (status, _) = server
        .send(
            Method::DELETE,
            "/api/v1/config/gateways.networking.istio.io/default/bookinfo-gateway",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .send(
            Method::GET,
            "/api/v1/config/gw/default/bookinfo-gateway",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("not found"), "{body}");
    assert_eq!(server.store.current().entries.len(), 8);
}

#[tokio::test]
async fn invalid_input_is_refused_whole_with_the_validate_messages() {
    let server = ApiServer::start(Arc::new(MemoryStore::new())).await;
    apply_file(&server, "virtual-service-all-v1.yaml").await;
    let before = server.store.current();
    let changes = server.store.subscribe();

    let good =
        fs::read_to_string(support::config::testdata().join("destination-rule-all.yaml")).unwrap();
    let bad =
        fs::read_to_string(support::config::testdata().join("virtual-service-reviews-50-v3.yaml"))
            .unwrap()
            .replacen("weight: 50", "weight: 40", 1);
    let text = format!("{good}---\n{bad}");
    let (status, body) = server
        .send(Method::POST, "/api/v1/config?source=mixed.yaml", &text)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut report = mesh_api::load::load_str("mixed.yaml", &text);
    report.validate();
    let expected: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(body.lines().collect::<Vec<_>>(), expected);
    assert!(body.starts_with("mixed.yaml:"), "{body}");
    assert!(
        body.contains("VirtualService default/reviews: spec.http[0].route: "),
        "{body}"
    );

    assert!(
        !changes.has_changed().unwrap(),
        "the running config is unchanged"
    );
    assert_eq!(server.store.current().entries.len(), before.entries.len());

    let (status, body) = server.send(Method::GET, "/api/v1/config/pods", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, "the server doesn't have a resource type \"pods\"\n");
    let (status, _) = server.send(Method::PUT, "/api/v1/config", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = server.send(Method::GET, "/api/v1/other", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server.send(Method::POST, "/api/v1/config", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
