//! Fault injection end to end: a real mesh-proxy process with
//! `envoy.filters.http.fault` in front of an echo server.

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, http_listener, server_of};

const HTTP_FAULT: &str = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault";

/// An `HTTPFault` as a typed config.
fn typed(fault: Value) -> Value {
    let mut typed = json!({"@type": HTTP_FAULT});
    typed
        .as_object_mut()
        .unwrap()
        .extend(fault.as_object().unwrap().clone());
    typed
}

/// A route for `prefix` to the "echo" cluster, with `fault` (if not null) as
/// its override, written as Istio writes it.
fn route(prefix: &str, fault: Value) -> Value {
    let mut route = json!({"match": {"prefix": prefix}, "route": {"cluster": "echo"}});
    if !fault.is_null() {
        route["typed_per_filter_config"] = json!({"envoy.filters.http.fault": typed(fault)});
    }
    route
}

fn percent(numerator: u32) -> Value {
    json!({"numerator": numerator, "denominator": "HUNDRED"})
}

/// A proxy whose listener "http" has the fault filter (with `filter` as its
/// config) before the router, serving `routes`.
async fn start(filter: Value, routes: Value) -> (Proxy, Echo) {
    let echo = Echo::start("echo").await;
    let mut listener = http_listener(
        "http",
        json!([{"name": "all", "domains": ["*"], "routes": routes}]),
    );
    support::before_router(
        &mut listener,
        json!([{"name": "envoy.filters.http.fault", "typed_config": typed(filter)}]),
    );
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("echo", &[echo.address])]),
    ))
    .await;
    (proxy, echo)
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path`: the status, headers and body text.
async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    address: SocketAddr,
    path: &str,
) -> (StatusCode, HeaderMap, String) {
    let request = Request::get(format!("http://{address}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("the request finished in time")
        .expect("the request was answered");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn fault_stats(proxy: &Proxy) -> (u64, u64) {
    let label = "{envoy_http_conn_manager_prefix=\"http\"}";
    (
        proxy
            .stat(&format!("envoy_http_fault_delays_injected{label}"))
            .await,
        proxy
            .stat(&format!("envoy_http_fault_aborts_injected{label}"))
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delays_hold_requests_back_then_forward_them() {
    let delay = Duration::from_millis(300);
    let (proxy, _echo) = start(
        json!({"delay": {"fixed_delay": "0.3s", "percentage": percent(100)}}),
        json!([route("/", Value::Null)]),
    )
    .await;
    let (front, client) = (proxy.listener("http"), client());
    for _ in 0..3 {
        let started = Instant::now();
        let (status, _, body) = fetch(&client, front, "/delayed").await;
        let elapsed = started.elapsed();
        assert_eq!(status, 200);
        assert_eq!(server_of(&body), "echo");
        assert!(
            elapsed >= delay,
            "the request took {elapsed:?}, less than the {delay:?} delay"
        );
    }
    assert_eq!(fault_stats(&proxy).await, (3, 0));
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_answer_with_the_status_and_body() {
    let (proxy, _echo) = start(
        json!({}),
        json!([
            route(
                "/abort",
                json!({"abort": {"http_status": 503, "percentage": percent(100)}})
            ),
            route(
                "/both",
                json!({
                    "delay": {"fixed_delay": "0.2s", "percentage": percent(100)},
                    "abort": {"http_status": 429, "percentage": percent(100)}
                })
            ),
            route("/", Value::Null)
        ]),
    )
    .await;
    let (front, client) = (proxy.listener("http"), client());

    let (status, headers, body) = fetch(&client, front, "/abort").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (503, "fault filter abort")
    );
    assert_eq!(headers["content-type"], "text/plain");

    let started = Instant::now();
    let (status, _, body) = fetch(&client, front, "/both").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (429, "fault filter abort")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the delay comes before the abort"
    );

    let (status, _, body) = fetch(&client, front, "/other").await;
    assert_eq!(status, 200, "an empty filter config injects nothing");
    assert_eq!(server_of(&body), "echo");

    assert_eq!(fault_stats(&proxy).await, (1, 2));
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"echo\"}")
            .await,
        1,
        "aborted requests never reach the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_hit_their_share_of_requests() {
    let (proxy, _echo) = start(
        json!({"abort": {"http_status": 503, "percentage": {"numerator": 5000, "denominator": "TEN_THOUSAND"}}}),
        json!([route("/", Value::Null)]),
    )
    .await;
    let (front, client) = (proxy.listener("http"), client());
    let total: u32 = 1000;
    let mut aborted: u32 = 0;
    for _ in 0..total {
        let (status, _, body) = fetch(&client, front, "/").await;
        match status.as_u16() {
            503 => {
                assert_eq!(body, "fault filter abort");
                aborted += 1;
            }
            200 => assert_eq!(server_of(&body), "echo"),
            other => panic!("unexpected status {other}"),
        }
    }
    let share = f64::from(aborted) / f64::from(total);
    assert!(
        (share - 0.50).abs() <= 0.05,
        "{share:.3} of the requests were aborted, expected 0.50 ± 0.05"
    );
    assert_eq!(fault_stats(&proxy).await, (0, u64::from(aborted)));
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"echo\"}")
            .await,
        u64::from(total - aborted)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_aborts_are_trailers_only_grpc_responses() {
    let (proxy, _echo) = start(
        json!({}),
        json!([route(
            "/",
            json!({"abort": {"grpc_status": 14, "percentage": percent(100)}})
        )]),
    )
    .await;
    let front = proxy.listener("http");
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for client in [client(), h2] {
        let (status, headers, body) = fetch(&client, front, "/reviews.Reviews/Get").await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/grpc");
        assert_eq!(headers["grpc-status"], "14");
        assert_eq!(headers["grpc-message"], "fault filter abort");
        assert_eq!(body, "");
    }
    assert_eq!(fault_stats(&proxy).await, (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_config_overrides_the_filter_config() {
    let (proxy, _echo) = start(
        json!({"abort": {"http_status": 503, "percentage": percent(100)}}),
        json!([
            route(
                "/override",
                json!({"abort": {"http_status": 418, "percentage": percent(100)}})
            ),
            route("/off", json!({})),
            route("/", Value::Null)
        ]),
    )
    .await;
    let (front, client) = (proxy.listener("http"), client());

    let (status, _, body) = fetch(&client, front, "/override").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (418, "fault filter abort")
    );
    let (status, _, body) = fetch(&client, front, "/off").await;
    assert_eq!(status, 200, "an empty override turns faults off");
    assert_eq!(server_of(&body), "echo");
    let (status, _, body) = fetch(&client, front, "/default").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (503, "fault filter abort")
    );

    assert_eq!(fault_stats(&proxy).await, (0, 2));
}
