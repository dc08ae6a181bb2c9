//! Upstream HTTP connections: kept between requests, retired after
//! `max_requests_per_connection` or `max_connection_duration`, closed after
//! `idle_timeout`, and never reused once the server has closed them.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use support::{Echo, Proxy, bootstrap, cluster, eventually, get, http_listener};

/// A proxy routing everything to one cluster of `upstream` over HTTP/1.1,
/// with these `common_http_protocol_options`.
async fn proxy_to(upstream: SocketAddr, common: Option<Value>) -> Proxy {
    proxy_speaking(None, upstream, common).await
}

/// The same, over the protocol `explicit_http_config` names, if any.
async fn proxy_speaking(
    protocol: Option<&str>,
    upstream: SocketAddr,
    common: Option<Value>,
) -> Proxy {
    let mut echo = cluster("echo", &[upstream]);
    if common.is_some() || protocol.is_some() {
        let key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
        let protocol = protocol.unwrap_or("http_protocol_options");
        echo["typed_extension_protocol_options"] = json!({key: {
            "@type": format!("type.googleapis.com/{key}"),
            "common_http_protocol_options": common.unwrap_or_else(|| json!({})),
            "explicit_http_config": {protocol: {}}
        }});
    }
    let routes = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "echo"}}
    ]}]);
    Proxy::start(&bootstrap(
        json!([http_listener("in", routes)]),
        json!([echo]),
    ))
    .await
}

const HTTP2: Option<&str> = Some("http2_protocol_options");

/// Sends `count` requests for `path` at once; all must succeed.
async fn at_once(front: SocketAddr, count: usize, path: &'static str) {
    let requests: Vec<_> = (0..count)
        .map(|_| tokio::spawn(get(front, path, &[])))
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().0, 200);
    }
}

async fn stat(proxy: &Proxy, name: &str) -> u64 {
    proxy
        .stat(&format!(
            "envoy_cluster_{name}{{envoy_cluster_name=\"echo\"}}"
        ))
        .await
}

/// Waits until the upstream has no open connection.
async fn all_closed(echo: &Echo, why: &str) {
    eventually(async || match echo.connections.open() {
        0 => Ok(()),
        open => Err(format!("{why}: {open} connections stayed open")),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_serves_requests_one_after_another() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(echo.address, None).await;
    let front = proxy.listener("in");
    for _ in 0..20 {
        assert_eq!(get(front, "/", &[]).await.0, 200);
    }
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(stat(&proxy, "upstream_cx_total").await, 1);
    assert_eq!(stat(&proxy, "upstream_cx_active").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_open_connections_that_are_kept() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(echo.address, None).await;
    let front = proxy.listener("in");
    for _ in 0..3 {
        at_once(front, 8, "/delay/50").await;
    }
    // At most one connection per request in flight, and every batch after
    // the first finds them idle.
    let opened = echo.connections.accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&opened),
        "{opened} connections for 8 at a time"
    );
    assert_eq!(stat(&proxy, "upstream_cx_total").await, u64::from(opened));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_requests_per_connection_retires_a_connection() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(
        echo.address,
        Some(json!({"max_requests_per_connection": 2})),
    )
    .await;
    let front = proxy.listener("in");
    for _ in 0..6 {
        assert_eq!(get(front, "/", &[]).await.0, 200);
    }
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 3);
    all_closed(&echo, "the retired connections closing").await;
    assert_eq!(stat(&proxy, "upstream_cx_active").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_http2_requests_waits_for_one_new_connection() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_speaking(HTTP2, echo.address, None).await;
    at_once(proxy.listener("in"), 16, "/delay/50").await;
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(stat(&proxy, "upstream_cx_total").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http2_requests_keep_to_max_requests_per_connection() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_speaking(
        HTTP2,
        echo.address,
        Some(json!({"max_requests_per_connection": 2})),
    )
    .await;
    // Eight at once: no connection carries more than two of them, and
    // none is opened while one still has room.
    at_once(proxy.listener("in"), 8, "/delay/200").await;
    assert_eq!(echo.connections.most_requests.load(Ordering::SeqCst), 2);
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 4);
    all_closed(&echo, "the retired connections closing").await;
}

/// Eight requests wait on connects that cannot finish (a TLS upstream that
/// never answers the handshake): with two requests per connection, four
/// connects run at once, as Envoy opens enough for what is pending, rather
/// than one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_http2_requests_start_enough_connections_at_once() {
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = mute.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = mute.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    let mut tls = cluster("echo", &[upstream]);
    tls["connect_timeout"] = json!("20s");
    let key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    tls["typed_extension_protocol_options"] = json!({key: {
        "@type": format!("type.googleapis.com/{key}"),
        "common_http_protocol_options": {"max_requests_per_connection": 2},
        "explicit_http_config": {"http2_protocol_options": {}}
    }});
    tls["transport_socket"] = json!({"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "sni": "mute.local"}});
    let routes = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "echo", "timeout": "30s"}}
    ]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("in", routes)]),
        json!([tls]),
    ))
    .await;
    let front = proxy.listener("in");
    let requests: Vec<_> = (0..8).map(|_| tokio::spawn(get(front, "/", &[]))).collect();
    eventually(async || match accepted.load(Ordering::SeqCst) {
        4 => Ok(()),
        n => Err(format!("{n} connects under way, 4 expected")),
    })
    .await;
    for request in requests {
        request.abort();
    }
    holder.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(echo.address, Some(json!({"idle_timeout": "0.2s"}))).await;
    let front = proxy.listener("in");
    assert_eq!(get(front, "/", &[]).await.0, 200);
    all_closed(&echo, "the idle connection closing").await;
    assert_eq!(stat(&proxy, "upstream_cx_active").await, 0);
    assert_eq!(get(front, "/", &[]).await.0, 200);
    assert_eq!(stat(&proxy, "upstream_cx_total").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_outlives_the_idle_timeout() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(echo.address, Some(json!({"idle_timeout": "0.5s"}))).await;
    let front = proxy.listener("in");
    // One request lasting three idle timeouts, then one at once on the same
    // connection: its idle time counts from the end of the first.
    assert_eq!(get(front, "/delay/1500", &[]).await.0, 200);
    assert_eq!(get(front, "/", &[]).await.0, 200);
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connection_duration_lets_the_last_request_finish() {
    let echo = Echo::start("echo").await;
    let proxy = proxy_to(
        echo.address,
        Some(json!({"max_connection_duration": "0.3s"})),
    )
    .await;
    let front = proxy.listener("in");
    // Still running when the connection reaches its age: it completes.
    assert_eq!(get(front, "/delay/700", &[]).await.0, 200);
    all_closed(&echo, "the aged connection closing").await;
    assert_eq!(get(front, "/", &[]).await.0, 200);
    assert_eq!(echo.connections.accepted.load(Ordering::SeqCst), 2);
}

/// An HTTP/1.1 server that closes each connection right after its first
/// response, without saying so: the next request on it finds it closed.
async fn one_response_per_connection() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_is_not_used_again() {
    let upstream = one_response_per_connection().await;
    let proxy = proxy_to(upstream, None).await;
    let front = proxy.listener("in");
    for i in 0..10 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "ok"), "request {i}");
    }
}
