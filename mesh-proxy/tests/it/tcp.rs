//! The TCP proxy end to end, including half-close.

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Proxy, bootstrap, cluster, tcp_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A server that reads until the client half-closes, then answers with the byte count.
async fn counting_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut received = Vec::new();
                stream.read_to_end(&mut received).await.unwrap();
                let reply = format!("got {} bytes", received.len());
                stream.write_all(reply.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_reaches_the_server_and_the_reply_comes_back() {
    let server = counting_server().await;
    let proxy = Proxy::start(&bootstrap(
        json!([tcp_listener("tcp", "counter")]),
        json!([cluster("counter", &[server])]),
    ))
    .await;
    let mut client = TcpStream::connect(proxy.listener("tcp")).await.unwrap();
    let payload = vec![7u8; 100_000];
    client.write_all(&payload).await.unwrap();
    client.shutdown().await.unwrap();
    let mut reply = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        client.read_to_string(&mut reply),
    )
    .await
    .expect("the reply came in time")
    .unwrap();
    assert_eq!(reply, "got 100000 bytes");
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_cx_total{envoy_cluster_name=\"counter\"}")
            .await,
        1
    );
}

#[test]
fn a_malformed_bootstrap_names_the_field_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "static_resources:\n  clusters:\n  - name: a\n    conect_timeout: 1s\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
        .arg("--bootstrap")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("conect_timeout"), "{stderr}");
}

/// A server that echoes what it reads until the client closes.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

/// A tcp_proxy listener in front of an echo server, with these fields
/// added to its filter.
async fn echo_proxy(limits: Value) -> Proxy {
    let server = echo_server().await;
    let mut listener = tcp_listener("tcp", "echo");
    let filter = &mut listener["filter_chains"][0]["filters"][0]["typed_config"];
    for (key, value) in limits.as_object().unwrap() {
        filter[key] = value.clone();
    }
    Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("echo", &[server])]),
    ))
    .await
}

async fn echoed(client: &mut TcpStream, bytes: &[u8]) {
    client.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(back, bytes);
}

/// Waits for the proxy to close the connection: end of stream, or a reset.
async fn closed_by_the_proxy(client: &mut TcpStream) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), client.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the proxy closed the connection in time");
    assert!(rest.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tcp_connection_is_closed_after_the_idle_timeout() {
    let proxy = echo_proxy(json!({"idle_timeout": "0.6s"})).await;
    let mut client = TcpStream::connect(proxy.listener("tcp")).await.unwrap();
    echoed(&mut client, b"hello").await;
    let last_byte = Instant::now();
    closed_by_the_proxy(&mut client).await;
    assert!(last_byte.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_with_traffic_outlives_the_idle_timeout() {
    let proxy = echo_proxy(json!({"idle_timeout": "1s"})).await;
    let mut client = TcpStream::connect(proxy.listener("tcp")).await.unwrap();
    // A byte every 100 ms for three idle timeouts.
    for _ in 0..30 {
        echoed(&mut client, b"x").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    echoed(&mut client, b"still open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_is_closed_at_its_max_duration() {
    let proxy = echo_proxy(json!({"max_downstream_connection_duration": "0.6s"})).await;
    let mut client = TcpStream::connect(proxy.listener("tcp")).await.unwrap();
    let connected = Instant::now();
    echoed(&mut client, b"hello").await;
    closed_by_the_proxy(&mut client).await;
    // The proxy counts from its accept, a little after the connect returned.
    assert!(connected.elapsed() >= Duration::from_millis(500));
}
