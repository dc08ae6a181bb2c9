//! Retries, timeouts and circuit breakers, end to end.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener};
use tokio::net::TcpListener;

/// A server that answers 503 to every other request, starting with the first.
async fn flaky() -> (std::net::SocketAddr, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let status = if n.is_multiple_of(2) {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let mut response = Response::new(Full::new(Bytes::from(format!("answer {n}"))));
                    *response.status_mut() = status;
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, seen)
}

fn vhosts(routes: Value) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": routes}])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_a_flaky_upstream() {
    let (address, seen) = flaky().await;
    let routes = json!([
        {"match": {"prefix": "/retried"}, "route": {"cluster": "flaky", "retry_policy": {
            "retry_on": "5xx", "num_retries": 2, "retry_back_off": {"base_interval": "0.001s"}}}},
        {"match": {"prefix": "/"}, "route": {"cluster": "flaky"}}
    ]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts(routes))]),
        json!([cluster("flaky", &[address])]),
    ))
    .await;
    let front = proxy.listener("http");
    for _ in 0..20 {
        let (status, _) = get(front, "/retried", &[]).await;
        assert_eq!(status, 200, "every request recovers with a retry");
    }
    assert_eq!(
        seen.load(Ordering::SeqCst),
        40,
        "each request took two attempts"
    );
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_rq_retry{envoy_cluster_name=\"flaky\"}")
            .await,
        20
    );

    let statuses: Vec<u16> = futures_statuses(front, "/plain", 4).await;
    assert!(
        statuses.contains(&503),
        "without a retry policy the 503s reach the client: {statuses:?}"
    );
}

async fn futures_statuses(front: std::net::SocketAddr, path: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(get(front, path, &[]).await.0.as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_and_overall_timeouts_fire() {
    let echo = Echo::start("slow").await;
    let routes = json!([
        {"match": {"prefix": "/per-try"}, "route": {"cluster": "slow", "prefix_rewrite": "/delay/2000", "timeout": "10s",
            "retry_policy": {"retry_on": "5xx", "num_retries": 2, "per_try_timeout": "0.1s",
                "retry_back_off": {"base_interval": "0.001s"}}}},
        {"match": {"prefix": "/overall"}, "route": {"cluster": "slow", "prefix_rewrite": "/delay/2000", "timeout": "0.3s",
            "retry_policy": {"retry_on": "5xx", "num_retries": 5, "per_try_timeout": "0.1s",
                "retry_back_off": {"base_interval": "0.001s"}}}}
    ]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts(routes))]),
        json!([cluster("slow", &[echo.address])]),
    ))
    .await;
    let front = proxy.listener("http");

    let started = std::time::Instant::now();
    let (status, body) = get(front, "/per-try", &[]).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (504, "upstream request timeout")
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "three tries of 100 ms each"
    );
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_rq_retry{envoy_cluster_name=\"slow\"}")
            .await,
        2
    );

    let started = std::time::Instant::now();
    let (status, _) = get(front, "/overall", &[]).await;
    assert_eq!(status, 504);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "the route timeout bounds all the tries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_overflow_answers_503_and_is_counted() {
    let echo = Echo::start("guarded").await;
    let mut guarded = cluster("guarded", &[echo.address]);
    guarded["circuit_breakers"] = json!({"thresholds": [{"max_connections": 1, "max_pending_requests": 0, "max_requests": 1}]});
    let routes = json!([{"match": {"prefix": "/"}, "route": {"cluster": "guarded"}}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts(routes))]),
        json!([guarded]),
    ))
    .await;
    let front = proxy.listener("http");

    let requests: Vec<_> = (0..10)
        .map(|_| tokio::spawn(async move { get(front, "/delay/500", &[]).await }))
        .collect();
    let mut overflowed = 0;
    let mut served = 0;
    for request in requests {
        let (status, body) = request.await.unwrap();
        match status.as_u16() {
            200 => served += 1,
            503 => {
                assert_eq!(body, "upstream overflow");
                overflowed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        served >= 1 && overflowed >= 1,
        "served {served}, overflowed {overflowed}"
    );
    let counted = proxy
        .stat("envoy_cluster_upstream_rq_pending_overflow{envoy_cluster_name=\"guarded\"}")
        .await;
    assert_eq!(counted, overflowed);
}
