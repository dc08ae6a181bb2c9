//! `meshctl proxy-status` and `proxy-config` against a running control plane
//! with a proxy connected over ADS.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc;
use mesh_control::app::{self, Options};
use mesh_control::model::{MeshSnapshot, Proxy};
use mesh_control::translate::Resources;
use mesh_control::xds::XdsType;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::common;

const NODE: &str = "sidecar~10.0.0.7~productpage-v1-abc.default~default.svc.cluster.local";

fn generator(_: &Proxy, _: &MeshSnapshot) -> Resources {
    Resources {
        clusters: vec![Cluster {
            name: "outbound|9080||reviews.default.svc.cluster.local".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            ..Cluster::default()
        }],
        listeners: vec![Listener {
            name: "virtualOutbound".into(),
            ..Listener::default()
        }],
        ..Resources::default()
    }
}

fn request(xds_type: XdsType, last: Option<&DiscoveryResponse>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: xds_type.type_url().into(),
        version_info: last.map(|r| r.version_info.clone()).unwrap_or_default(),
        response_nonce: last.map(|r| r.nonce.clone()).unwrap_or_default(),
        ..DiscoveryRequest::default()
    }
}

async fn meshctl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = common::meshctl().args(&args).output().unwrap();
        (
            output.status.code().unwrap(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_status_and_config_of_a_connected_proxy() {
    let (_store, snapshots) = watch::channel(Arc::new(MeshSnapshot::default()));
    let options = Options {
        xds_port: 0,
        monitoring_port: 0,
        ..Options::default()
    };
    let running = app::start(options, snapshots, Arc::new(generator))
        .await
        .unwrap();

    // The proxy ACKs CDS, rejects LDS, and never asks for the rest.
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", running.xds))
        .await
        .unwrap();
    let (requests, rx) = mpsc::channel(8);
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut first = request(XdsType::Cluster, None);
    first.node = Some(Node {
        id: NODE.into(),
        ..Node::default()
    });
    requests.send(first).await.unwrap();
    let cds = responses.message().await.unwrap().unwrap();
    requests
        .send(request(XdsType::Cluster, Some(&cds)))
        .await
        .unwrap();
    requests
        .send(request(XdsType::Listener, None))
        .await
        .unwrap();
    let lds = responses.message().await.unwrap().unwrap();
    let mut nack = request(XdsType::Listener, Some(&lds));
    nack.version_info.clear();
    nack.error_detail = Some(rpc::Status {
        message: "no filter chains".into(),
        ..rpc::Status::default()
    });
    requests.send(nack).await.unwrap();

    let control_plane = format!("http://{}", running.monitoring);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let table = loop {
        let (code, stdout, stderr) = meshctl(vec![
            "proxy-status".into(),
            "--control-plane".into(),
            control_plane.clone(),
        ])
        .await;
        assert_eq!(code, 0, "{stderr}");
        // The NACK is read by the server after the request was sent: wait for it.
        if stdout.contains("NACK") || tokio::time::Instant::now() > deadline {
            break stdout;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("     ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        vec!["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "SDS"],
        "{table}"
    );
    assert_eq!(
        lines[1],
        vec![
            "productpage-v1-abc.default",
            "Kubernetes",
            "SYNCED",
            "NACK",
            "NOT SENT",
            "NOT SENT",
            "NOT SENT"
        ],
        "{table}"
    );

    let (code, json, stderr) = meshctl(vec![
        "ps".into(),
        "-o".into(),
        "json".into(),
        "--control-plane".into(),
        control_plane.clone(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["proxy"], NODE);
    assert_eq!(
        json[0]["resources"][XdsType::Listener.type_url()]["lastError"],
        "no filter chains"
    );

    let (code, clusters, stderr) = meshctl(vec![
        "proxy-config".into(),
        "cluster".into(),
        "productpage-v1-abc".into(),
        "--control-plane".into(),
        control_plane.clone(),
    ])
    .await;
    assert_eq!(code, 0, "{stderr}");
    let rows: Vec<&str> = clusters.lines().collect();
    assert!(rows[0].starts_with("SERVICE FQDN"), "{clusters}");
    let row: Vec<&str> = rows[1].split_whitespace().collect();
    assert_eq!(
        row,
        vec![
            "reviews.default.svc.cluster.local",
            "9080",
            "-",
            "outbound",
            "EDS",
            "-"
        ]
    );

    let (code, _, stderr) = meshctl(vec![
        "pc".into(),
        "listener".into(),
        "nobody.default".into(),
        "--control-plane".into(),
        control_plane,
    ])
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("nobody.default"), "{stderr}");
    drop(requests);
}
