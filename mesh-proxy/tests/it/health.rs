//! Active health checks, endpoint health status, `/clusters` and `/logging`,
//! end to end.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, flagged, get, http_listener, post, server_of};

/// How long a condition may take to come true before a test fails.
const DEADLINE: Duration = Duration::from_secs(20);

fn vhosts(cluster: &str) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
    ]}])
}

/// The `health_flags` line of one endpoint in `/clusters`.
async fn health_flags(proxy: &Proxy, cluster: &str, endpoint: SocketAddr) -> String {
    let (status, text) = get(proxy.admin, "/clusters", &[]).await;
    assert_eq!(status, 200);
    let prefix = format!("{cluster}::{endpoint}::health_flags::");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .to_owned()
}

/// Polls until `health_flags` of `endpoint` is `wanted`.
async fn wait_for_flags(proxy: &Proxy, endpoint: SocketAddr, wanted: &str) {
    let started = Instant::now();
    loop {
        let flags = health_flags(proxy, "pool", endpoint).await;
        if flags == wanted {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{endpoint} stayed {flags}, never {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_its_health_checks_gets_no_traffic_until_it_passes() {
    let good = Echo::start("good").await;
    let (sick, failing) = flagged("sick", |path| {
        (path == "/healthz").then_some(StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    let mut pool = cluster("pool", &[good.address, sick]);
    pool["health_checks"] = json!([{
        "timeout": "1s", "interval": "0.05s",
        "unhealthy_threshold": 2, "healthy_threshold": 2,
        "http_health_check": {"path": "/healthz"}
    }]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts("pool"))]),
        json!([pool]),
    ))
    .await;
    let front = proxy.listener("http");

    // The first 503 marks it unhealthy at once.
    wait_for_flags(&proxy, sick, "/failed_active_hc").await;
    wait_for_flags(&proxy, good.address, "healthy").await;
    for _ in 0..20 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!((status.as_u16(), server_of(&body).as_str()), (200, "good"));
    }
    let stat = |name: &str| format!("envoy_cluster_{name}{{envoy_cluster_name=\"pool\"}}");
    assert!(proxy.stat(&stat("health_check_attempt")).await >= 2);
    assert!(proxy.stat(&stat("health_check_success")).await >= 1);
    assert!(proxy.stat(&stat("health_check_failure")).await >= 1);
    assert_eq!(proxy.stat(&stat("health_check_network_failure")).await, 0);
    assert_eq!(proxy.stat(&stat("membership_healthy")).await, 1);
    assert_eq!(proxy.stat(&stat("membership_total")).await, 2);

    // The per-endpoint counters saw the traffic.
    let (_, text) = get(proxy.admin, "/clusters", &[]).await;
    let good_total = format!("pool::{}::rq_total::", good.address);
    let total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&good_total)?.parse().ok())
        .unwrap_or_else(|| panic!("no {good_total} in\n{text}"));
    assert!(total >= 20, "{text}");
    assert!(
        text.contains(&format!("pool::{sick}::rq_total::0\n")),
        "{text}"
    );
    assert!(text.contains("pool::default_priority::max_connections::1024\n"));
    assert!(text.contains(&format!("pool::{sick}::weight::1\n")));

    // Healthy again: two passes in a row bring it back.
    failing.store(false, Ordering::SeqCst);
    wait_for_flags(&proxy, sick, "healthy").await;
    let started = Instant::now();
    loop {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!(status, 200);
        if server_of(&body) == "sick" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "it never got traffic again");
    }
    assert_eq!(proxy.stat(&stat("membership_healthy")).await, 2);
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_reported_unhealthy_get_no_traffic() {
    let (one, two, bad) = (
        Echo::start("one").await,
        Echo::start("two").await,
        Echo::start("bad").await,
    );
    let mut pool = cluster("pool", &[one.address, two.address, bad.address]);
    let endpoints = &mut pool["load_assignment"]["endpoints"][0];
    endpoints["locality"] = json!({"region": "eu-west", "zone": "eu-west-1a", "sub_zone": "r7"});
    endpoints["lb_endpoints"][0]["health_status"] = json!("HEALTHY");
    endpoints["lb_endpoints"][2]["health_status"] = json!("UNHEALTHY");
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts("pool"))]),
        json!([pool]),
    ))
    .await;
    let front = proxy.listener("http");
    for _ in 0..30 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!(status, 200);
        assert_ne!(server_of(&body), "bad");
    }
    assert_eq!(
        health_flags(&proxy, "pool", bad.address).await,
        "/failed_eds_health"
    );
    assert_eq!(health_flags(&proxy, "pool", one.address).await, "healthy");
    let (_, text) = get(proxy.admin, "/clusters", &[]).await;
    for line in ["region::eu-west", "zone::eu-west-1a", "sub_zone::r7"] {
        assert!(
            text.contains(&format!("pool::{}::{line}\n", bad.address)),
            "{line} in\n{text}"
        );
    }

    // The same as Envoy's `envoy.admin.v3.Clusters` JSON.
    let (status, body) = get(proxy.admin, "/clusters?format=json", &[]).await;
    assert_eq!(status, 200);
    let json: Value = serde_json::from_str(&body).unwrap();
    let pool = &json["cluster_statuses"][0];
    assert_eq!(pool["name"], "pool");
    let hosts = pool["host_statuses"].as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    let bad_host = hosts
        .iter()
        .find(|h| h["address"]["socket_address"]["port_value"] == bad.address.port())
        .unwrap();
    assert_eq!(
        bad_host["health_status"]["eds_health_status"], "UNHEALTHY",
        "{body}"
    );
    assert_eq!(bad_host["locality"]["zone"], "eu-west-1a");
    assert_eq!(bad_host["weight"], 1);
    assert!(
        bad_host["stats"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "rq_active" && s["type"] == "GAUGE"),
        "{body}"
    );
    assert_eq!(hosts[0]["health_status"]["eds_health_status"], "HEALTHY");
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_level_changes_at_run_time() {
    let echo = Echo::start("echo").await;
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts("pool"))]),
        json!([cluster("pool", &[echo.address])]),
    ))
    .await;
    let admin = proxy.admin;
    let (status, initial) = get(admin, "/logging", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(initial.starts_with("active filter: "), "{initial}");
    assert_eq!(
        post(admin, "/logging?level=debug").await,
        (StatusCode::OK, "active filter: debug\n".to_owned())
    );
    assert_eq!(
        post(admin, "/logging?mesh_proxy::http=trace&hc=warning").await,
        (
            StatusCode::OK,
            "active filter: debug,mesh_proxy::http=trace,mesh_proxy::health=warn\n".to_owned()
        )
    );
    assert_eq!(
        get(admin, "/logging", &[]).await.1,
        "active filter: debug,mesh_proxy::http=trace,mesh_proxy::health=warn\n"
    );
    // The proxy keeps serving at the new level.
    let (status, body) = get(proxy.listener("http"), "/", &[]).await;
    assert_eq!((status.as_u16(), server_of(&body).as_str()), (200, "echo"));

    assert_eq!(
        post(admin, "/logging?level=loud").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(admin, "/logging?level=info", &[]).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        post(admin, "/logging?level=info").await.1,
        "active filter: info\n"
    );
    assert!(proxy.quit().await.success());
}
