//! The TCP proxy end to end, including half-close.

use crate::support;

use serde_json::json;
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
