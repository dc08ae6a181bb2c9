//! The ADS server against a real gRPC client on loopback.

use crate::support;

use std::time::Duration;

use mesh_control::xds::XdsType;
use support::{ControlPlane, XdsClient, names, node_id, snapshot};

const REVIEWS: &str = "outbound|80||reviews.default.svc.cluster.local";
const RATINGS: &str = "outbound|80||ratings.default.svc.cluster.local";

fn bookinfo(
    version: u64,
    reviews_weight: u32,
) -> std::sync::Arc<mesh_control::model::MeshSnapshot> {
    snapshot(
        version,
        &[
            "reviews.default.svc.cluster.local",
            "ratings.default.svc.cluster.local",
        ],
        &[
            ("reviews.default.svc.cluster.local", reviews_weight),
            ("ratings.default.svc.cluster.local", 1),
        ],
    )
}

/// Connects a proxy and takes it through a full first sync, every response
/// ACKed: CDS, LDS (wildcard), then EDS for both clusters, RDS `80`, SDS `ROOTCA`.
async fn synced(cp: &ControlPlane, pod: &str) -> XdsClient {
    let mut proxy = XdsClient::connect(cp.running.xds, &node_id(pod)).await;
    proxy.request(XdsType::Cluster, &[], None).await;
    let cds = proxy.recv_type(XdsType::Cluster).await;
    proxy.ack(&cds, &[]).await;
    proxy
        .request(XdsType::Endpoint, &[REVIEWS, RATINGS], None)
        .await;
    let eds = proxy.recv_type(XdsType::Endpoint).await;
    proxy.ack(&eds, &[REVIEWS, RATINGS]).await;
    proxy.request(XdsType::Listener, &[], None).await;
    let lds = proxy.recv_type(XdsType::Listener).await;
    proxy.ack(&lds, &[]).await;
    proxy.request(XdsType::Route, &["80"], None).await;
    let rds = proxy.recv_type(XdsType::Route).await;
    proxy.ack(&rds, &["80"]).await;
    proxy.request(XdsType::Secret, &["ROOTCA"], None).await;
    let sds = proxy.recv_type(XdsType::Secret).await;
    proxy.ack(&sds, &["ROOTCA"]).await;
    proxy
}

#[tokio::test]
async fn first_cds_and_lds_then_named_eds_and_rds() {
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut proxy = XdsClient::connect(cp.running.xds, &node_id("productpage-v1")).await;

    proxy.request(XdsType::Cluster, &[], None).await;
    let cds = proxy.recv_type(XdsType::Cluster).await;
    assert_eq!(names(&cds), vec![RATINGS, REVIEWS]);
    assert!(!cds.version_info.is_empty() && !cds.nonce.is_empty());
    proxy.ack(&cds, &[]).await;

    proxy.request(XdsType::Listener, &[], None).await;
    let lds = proxy.recv_type(XdsType::Listener).await;
    assert_eq!(names(&lds), vec!["virtualOutbound"]);
    assert_ne!(lds.nonce, cds.nonce);
    proxy.ack(&lds, &[]).await;

    // Named types carry only what was asked for, and what exists.
    proxy
        .request(XdsType::Endpoint, &[REVIEWS, "outbound|80||nowhere"], None)
        .await;
    let eds = proxy.recv_type(XdsType::Endpoint).await;
    assert_eq!(names(&eds), vec![REVIEWS]);
    // A new name is answered at once, with the ACK of the last response.
    proxy.ack(&eds, &[REVIEWS, RATINGS]).await;
    let eds = proxy.recv_type(XdsType::Endpoint).await;
    assert_eq!(names(&eds), vec![RATINGS, REVIEWS]);
    proxy.ack(&eds, &[REVIEWS, RATINGS]).await;

    proxy.request(XdsType::Route, &["80"], None).await;
    let rds = proxy.recv_type(XdsType::Route).await;
    assert_eq!(names(&rds), vec!["80"]);
    proxy.ack(&rds, &["80"]).await;
    proxy.expect_silence().await;
}

#[tokio::test]
async fn acks_keep_versions_and_nacks_are_shown() {
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut proxy = XdsClient::connect(cp.running.xds, &node_id("productpage-v1")).await;
    proxy.request(XdsType::Cluster, &[], None).await;
    let cds = proxy.recv_type(XdsType::Cluster).await;
    proxy.ack(&cds, &[]).await;
    proxy.request(XdsType::Listener, &[], None).await;
    let lds = proxy.recv_type(XdsType::Listener).await;
    proxy
        .nack(
            &lds,
            None,
            &[],
            "listener virtualOutbound: unsupported filter",
        )
        .await;
    // The NACK gets no new response: the content did not change.
    proxy.expect_silence().await;

    let syncz = cp.syncz().await;
    assert_eq!(syncz.len(), 1);
    let status = &syncz[0];
    assert_eq!(status["proxy"], node_id("productpage-v1"));
    assert_eq!(status["namespace"], "default");
    assert_eq!(status["cluster_sent"], cds.nonce.as_str());
    assert_eq!(status["cluster_acked"], cds.nonce.as_str());
    let clusters = &status["resources"][XdsType::Cluster.type_url()];
    assert_eq!(clusters["version_sent"], cds.version_info.as_str());
    assert_eq!(clusters["version_acked"], cds.version_info.as_str());
    let listeners = &status["resources"][XdsType::Listener.type_url()];
    assert_eq!(
        listeners["lastError"],
        "listener virtualOutbound: unsupported filter"
    );
    assert_eq!(listeners["sent"], lds.nonce.as_str());
    assert!(listeners.get("acked").is_none());
    let (_, metrics) = cp.get("/metrics").await;
    assert!(
        metrics.contains("pilot_total_xds_rejects{type=\"lds\"} 1\n"),
        "{metrics}"
    );

    // A snapshot that changes nothing for this proxy keeps every version.
    cp.store.send(bookinfo(2, 1)).unwrap();
    proxy.expect_silence().await;
    let status = &cp.syncz().await[0];
    assert_eq!(
        status["resources"][XdsType::Cluster.type_url()]["version_sent"],
        cds.version_info.as_str()
    );
}

#[tokio::test]
async fn a_burst_of_changes_is_one_push_of_the_changed_types_in_order() {
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut proxy = synced(&cp, "productpage-v1").await;

    // Endpoint weights change three times within the quiet period: one EDS
    // push with the last weights, nothing else.
    for (version, weight) in [(2, 2), (3, 3), (4, 4)] {
        cp.store.send(bookinfo(version, weight)).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let eds = proxy.recv_type(XdsType::Endpoint).await;
    assert_eq!(names(&eds), vec![RATINGS, REVIEWS]);
    let cla = <envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment as prost::Message>::decode(
        eds.resources[1].value.as_slice(),
    )
    .unwrap();
    assert_eq!(cla.endpoints[0].load_balancing_weight.unwrap().value, 4);
    proxy.ack(&eds, &[REVIEWS, RATINGS]).await;
    proxy.expect_silence().await;

    // A new service changes clusters and routes (not the subscribed
    // endpoints): CDS first, then RDS.
    cp.store
        .send(snapshot(
            5,
            &[
                "reviews.default.svc.cluster.local",
                "ratings.default.svc.cluster.local",
                "details.default.svc.cluster.local",
            ],
            &[
                ("reviews.default.svc.cluster.local", 4),
                ("ratings.default.svc.cluster.local", 1),
            ],
        ))
        .unwrap();
    let cds = proxy.recv_type(XdsType::Cluster).await;
    assert_eq!(names(&cds).len(), 3);
    let rds = proxy.recv_type(XdsType::Route).await;
    assert_eq!(names(&rds), vec!["80"]);
    proxy.expect_silence().await;

    let (_, metrics) = cp.get("/metrics").await;
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"eds\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"cds\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_xds_pushes{type=\"lds\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_proxy_convergence_time_count 2\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_id_that_does_not_read_is_refused() {
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut proxy = XdsClient::connect(cp.running.xds, "not-a-node-id").await;
    proxy.request(XdsType::Cluster, &[], None).await;
    let status = proxy.recv_error().await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("not-a-node-id"),
        "{}",
        status.message()
    );
    assert!(cp.syncz().await.is_empty());
}

#[tokio::test]
async fn each_proxy_gets_its_own_resources() {
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut first = XdsClient::connect(cp.running.xds, &node_id("productpage-v1")).await;
    let mut second = XdsClient::connect(cp.running.xds, &node_id("reviews-v2")).await;
    first.request(XdsType::Route, &["80"], None).await;
    second.request(XdsType::Route, &["80"], None).await;
    let first_routes = first.recv_type(XdsType::Route).await;
    let second_routes = second.recv_type(XdsType::Route).await;
    let vhosts = |response: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse| {
        let config = <envoy_types::pb::envoy::config::route::v3::RouteConfiguration as prost::Message>::decode(
            response.resources[0].value.as_slice(),
        )
        .unwrap();
        config
            .virtual_hosts
            .into_iter()
            .map(|v| v.name)
            .collect::<Vec<_>>()
    };
    assert!(vhosts(&first_routes).contains(&"productpage-v1".to_owned()));
    assert!(vhosts(&second_routes).contains(&"reviews-v2".to_owned()));
    assert_ne!(first_routes.version_info, second_routes.version_info);
    assert_eq!(cp.syncz().await.len(), 2);
    let (_, metrics) = cp.get("/metrics").await;
    assert!(metrics.contains("\npilot_xds 2\n"), "{metrics}");

    drop(second);
    // The server notices the closed stream.
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while cp.syncz().await.len() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the proxy stays listed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn delta_xds_is_refused_plainly() {
    use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
    let cp = ControlPlane::start(bookinfo(1, 1)).await;
    let mut client =
        AggregatedDiscoveryServiceClient::connect(format!("http://{}", cp.running.xds))
            .await
            .unwrap();
    let status = client
        .delta_aggregated_resources(tokio_stream::empty())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}
