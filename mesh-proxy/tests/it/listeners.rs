//! Filter chains chosen by what the client sends first: TLS goes to a TCP
//! proxy, plain HTTP to the HTTP connection manager, on one port.

use crate::support;

use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener, server_of};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP server that answers every connection with a fixed line.
async fn banner_server(banner: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                let _ = stream.read(&mut first).await;
                let _ = stream.write_all(banner.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    address
}

/// A listener of `chains` (the first an HTTP chain to cluster `web` matched
/// by `http_match`, then `others`) behind `listener_filters`.
fn listener(name: &str, http_match: Value, others: Vec<Value>, listener_filters: Value) -> Value {
    let http = http_listener(
        name,
        json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]),
    );
    let mut listener = http.clone();
    let mut http_chain = http["filter_chains"][0].clone();
    http_chain["filter_chain_match"] = http_match;
    let mut chains = vec![http_chain];
    chains.extend(others);
    listener["filter_chains"] = Value::Array(chains);
    listener["listener_filters"] = listener_filters;
    listener
}

/// A chain matched by `matcher` that proxies TCP to `cluster`.
fn tcp_chain(matcher: Value, cluster: &str) -> Value {
    json!({"filter_chain_match": matcher, "filters": [{"name": "envoy.filters.network.tcp_proxy",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": cluster, "cluster": cluster}}]})
}

/// Starts a proxy with `listener`, checks that HTTP reaches the echo server,
/// then sends `first_bytes` on a new connection and returns what came back.
async fn http_then_bytes(
    listener: Value,
    tcp_cluster: &str,
    tcp_backend: std::net::SocketAddr,
    first_bytes: &[u8],
) -> String {
    let echo = Echo::start("http").await;
    let name = listener["name"].as_str().unwrap().to_owned();
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([
            cluster("web", &[echo.address]),
            cluster(tcp_cluster, &[tcp_backend])
        ]),
    ))
    .await;
    let front = proxy.listener(&name);
    let (status, body) = get(front, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(server_of(&body), "http");

    reply_to(front, first_bytes).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_picks_the_chain() {
    let tls_backend = banner_server("tls backend").await;
    let mixed = listener(
        "mixed",
        json!({"transport_protocol": "raw_buffer"}),
        vec![tcp_chain(json!({"transport_protocol": "tls"}), "tls")],
        json!([{"name": "envoy.filters.listener.tls_inspector"}]),
    );
    // A minimal ClientHello (no extensions): the inspector waits for a
    // whole one, as Envoy's does, before choosing the chain.
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 45, 0x01, 0x00, 0x00, 41, 0x03, 0x03];
    hello.extend_from_slice(&[0; 32]); // random
    hello.extend_from_slice(&[0, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    let reply = http_then_bytes(mixed, "tls", tls_backend, &hello).await;
    assert_eq!(reply, "tls backend");
}

/// Istio's inbound shape: plaintext HTTP (HTTP/1.1 or the h2c preface) goes
/// to the connection manager, other plaintext bytes to a TCP proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_inspector_tells_http_from_tcp() {
    let tcp_backend = banner_server("tcp backend").await;
    let inbound = listener(
        "inbound",
        json!({"transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]}),
        vec![tcp_chain(
            json!({"transport_protocol": "raw_buffer"}),
            "tcp",
        )],
        json!([
            {"name": "envoy.filters.listener.tls_inspector"},
            {"name": "envoy.filters.listener.http_inspector"}
        ]),
    );
    let reply = http_then_bytes(
        inbound,
        "tcp",
        tcp_backend,
        b"\x00\x01 some binary protocol",
    )
    .await;
    assert_eq!(reply, "tcp backend");
}

/// Sends `bytes` on a new connection to `front` and reads the whole reply.
async fn reply_to(front: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_string(&mut reply),
    )
    .await
    .expect("the backend answered in time")
    .unwrap();
    reply
}

/// Istio's TCP traffic shifting: each connection goes to one of the
/// weighted clusters, as often as its weight says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_split_by_weight() {
    let v1 = banner_server("v1").await;
    let v2 = banner_server("v2").await;
    let listener = json!({
        "name": "split",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "split",
                "weighted_clusters": {"clusters": [{"name": "v1", "weight": 80}, {"name": "v2", "weight": 20}]}}}]}],
    });
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("v1", &[v1]), cluster("v2", &[v2])]),
    ))
    .await;
    let front = proxy.listener("split");
    let mut v2_count = 0;
    for _ in 0..200 {
        match reply_to(front, b"?").await.as_str() {
            "v2" => v2_count += 1,
            "v1" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // 20 % of 200 is 40; the bounds are over five standard deviations wide.
    assert!(
        (12..=68).contains(&v2_count),
        "{v2_count} of 200 went to v2"
    );
}
