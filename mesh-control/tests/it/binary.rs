//! The mesh-control binary: ephemeral ports, the address file, readiness.

use crate::support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The address file's JSON, once mesh-control wrote it.
async fn addresses(process: &mut Running, file: &std::path::Path) -> serde_json::Value {
    let deadline = Instant::now() + support::PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            return serde_json::from_str(&text).expect("the address file is JSON");
        }
        assert!(Instant::now() < deadline, "no address file");
        assert!(
            process.0.try_wait().unwrap().is_none(),
            "mesh-control exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_writes_its_addresses_and_turns_ready() {
    let dir = tempfile::tempdir().unwrap();
    let address_file = dir.path().join("addresses.json");
    let mut process = Running(
        Command::new(env!("CARGO_BIN_EXE_mesh-control"))
            .args([
                "--xds-port",
                "0",
                "--monitoring-port",
                "0",
                "--address-file",
            ])
            .arg(&address_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addresses = addresses(&mut process, &address_file).await;
    let monitoring: SocketAddr = addresses["monitoring"].as_str().unwrap().parse().unwrap();
    let xds: SocketAddr = addresses["xds"].as_str().unwrap().parse().unwrap();
    assert!(monitoring.ip().is_loopback() && xds.ip().is_loopback());
    assert_ne!(monitoring.port(), 0);
    assert_eq!(support::get(monitoring, "/ready").await.0, 200);

    // A proxy connects and is answered.
    let mut proxy = support::XdsClient::connect(xds, &support::node_id("app")).await;
    proxy
        .request(mesh_control::xds::XdsType::Cluster, &[], None)
        .await;
    proxy.recv_type(mesh_control::xds::XdsType::Cluster).await;
}

#[tokio::test]
async fn with_a_ca_directory_the_binary_serves_the_secure_port_and_prints_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    let token = Command::new(env!("CARGO_BIN_EXE_mesh-control"))
        .args([
            "token",
            "--namespace",
            "default",
            "--service-account",
            "reviews",
            "--ca-dir",
        ])
        .arg(&ca_dir)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).unwrap();
    let key = mesh_control::ca::token::TokenKey::load_or_create(&ca_dir).unwrap();
    assert_eq!(
        key.verify(token.trim()).unwrap().to_string(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );

    let address_file = dir.path().join("addresses.json");
    let mut process = Running(
        Command::new(env!("CARGO_BIN_EXE_mesh-control"))
            .args([
                "--xds-port",
                "0",
                "--monitoring-port",
                "0",
                "--secure-port",
                "0",
                "--ca-dir",
            ])
            .arg(&ca_dir)
            .arg("--address-file")
            .arg(&address_file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let addresses = addresses(&mut process, &address_file).await;
    let secure: SocketAddr = addresses["secure"].as_str().unwrap().parse().unwrap();
    assert!(secure.ip().is_loopback());
    assert!(ca_dir.join("root-cert.pem").exists(), "a root was made");
    tokio::net::TcpStream::connect(secure)
        .await
        .expect("the secure port listens");
}
