//! Filter chains chosen by what the client sends first: TLS goes to a TCP
//! proxy, plain HTTP to the HTTP connection manager, on one port.

mod support;

use serde_json::json;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_picks_the_chain() {
    let (echo, tls_backend) = (
        Echo::start("http").await,
        banner_server("tls backend").await,
    );
    let http = http_listener(
        "mixed",
        json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]),
    );
    let mut listener = http.clone();
    let http_chain = http["filter_chains"][0].clone();
    let mut raw_chain = http_chain.clone();
    raw_chain["filter_chain_match"] = json!({"transport_protocol": "raw_buffer"});
    listener["listener_filters"] = json!([{"name": "envoy.filters.listener.tls_inspector"}]);
    listener["filter_chains"] = json!([
        raw_chain,
        {"filter_chain_match": {"transport_protocol": "tls"}, "filters": [{"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tls", "cluster": "tls"}}]}
    ]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([
            cluster("web", &[echo.address]),
            cluster("tls", &[tls_backend])
        ]),
    ))
    .await;
    let front = proxy.listener("mixed");

    let (status, body) = get(front, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(server_of(&body), "http");

    let mut stream = TcpStream::connect(front).await.unwrap();
    // A minimal ClientHello (no extensions): the inspector waits for a
    // whole one, as Envoy's does, before choosing the chain.
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 45, 0x01, 0x00, 0x00, 41, 0x03, 0x03];
    hello.extend_from_slice(&[0; 32]); // random
    hello.extend_from_slice(&[0, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    stream.write_all(&hello).await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_string(&mut reply),
    )
    .await
    .expect("the backend answered in time")
    .unwrap();
    assert_eq!(reply, "tls backend");
}

/// Istio's inbound shape: plaintext HTTP (HTTP/1.1 or the h2c preface) goes
/// to the connection manager, other plaintext bytes to a TCP proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_inspector_tells_http_from_tcp() {
    let (echo, tcp_backend) = (
        Echo::start("http").await,
        banner_server("tcp backend").await,
    );
    let http = http_listener(
        "inbound",
        json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": "web"}}]}]),
    );
    let mut listener = http.clone();
    let mut http_chain = http["filter_chains"][0].clone();
    http_chain["filter_chain_match"] = json!({
        "transport_protocol": "raw_buffer", "application_protocols": ["http/1.1", "h2c"]});
    listener["listener_filters"] = json!([
        {"name": "envoy.filters.listener.tls_inspector"},
        {"name": "envoy.filters.listener.http_inspector"}
    ]);
    listener["filter_chains"] = json!([
        http_chain,
        {"filter_chain_match": {"transport_protocol": "raw_buffer"}, "filters": [{"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tcp", "cluster": "tcp"}}]}
    ]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([
            cluster("web", &[echo.address]),
            cluster("tcp", &[tcp_backend])
        ]),
    ))
    .await;
    let front = proxy.listener("inbound");

    let (status, body) = get(front, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(server_of(&body), "http");

    let mut stream = TcpStream::connect(front).await.unwrap();
    stream
        .write_all(b"\x00\x01 some binary protocol")
        .await
        .unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_string(&mut reply),
    )
    .await
    .expect("the backend answered in time")
    .unwrap();
    assert_eq!(reply, "tcp backend");
}
