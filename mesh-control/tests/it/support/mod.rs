//! A control plane on ephemeral loopback ports fed by a fake generator, an
//! ADS client speaking as a proxy, and a small HTTP GET.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LocalityLbEndpoints};
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc;
use http_body_util::{BodyExt, Empty};
use mesh_api::networking::service_entry::{Location, Resolution};
use mesh_control::app::{self, Options, Running};
use mesh_control::model::{Endpoint, MeshSnapshot, Proxy, Service, ServicePort};
use mesh_control::translate::Resources;
use mesh_control::xds::XdsType;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

/// How long anything that should happen may take.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long to watch for something that should not happen: well past the
/// debounce's quiet period (100 ms).
pub const QUIET: Duration = Duration::from_millis(500);

pub fn node_id(pod: &str) -> String {
    format!("sidecar~10.0.0.1~{pod}.default~default.svc.cluster.local")
}

/// Clusters and endpoints per service; one listener; one route config `80`
/// with a virtual host per service plus one named after the proxy's pod, so
/// that two proxies get different routes; one secret.
pub fn fake_generator(proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
    let cluster_name = |host: &str| format!("outbound|80||{host}");
    let clusters = snapshot
        .services
        .iter()
        .map(|s| Cluster {
            name: cluster_name(&s.hostname),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            ..Cluster::default()
        })
        .collect();
    let endpoints = snapshot
        .services
        .iter()
        .map(|s| ClusterLoadAssignment {
            cluster_name: cluster_name(&s.hostname),
            endpoints: snapshot
                .endpoints
                .iter()
                .filter(|e| e.service == s.hostname)
                .map(|e| LocalityLbEndpoints {
                    locality: None,
                    load_balancing_weight: Some(envoy_types::pb::google::protobuf::UInt32Value {
                        value: e.weight,
                    }),
                    ..LocalityLbEndpoints::default()
                })
                .collect(),
            ..ClusterLoadAssignment::default()
        })
        .collect();
    let mut virtual_hosts: Vec<VirtualHost> = snapshot
        .services
        .iter()
        .map(|s| VirtualHost {
            name: format!("{}:80", s.hostname),
            domains: vec![s.hostname.clone()],
            ..VirtualHost::default()
        })
        .collect();
    virtual_hosts.push(VirtualHost {
        name: proxy.id.pod.clone(),
        domains: vec![proxy.id.pod.clone()],
        ..VirtualHost::default()
    });
    Resources {
        listeners: vec![Listener {
            name: "virtualOutbound".into(),
            ..Listener::default()
        }],
        routes: vec![RouteConfiguration {
            name: "80".into(),
            virtual_hosts,
            ..RouteConfiguration::default()
        }],
        clusters,
        endpoints,
        secrets: vec![Secret {
            name: "ROOTCA".into(),
            ..Secret::default()
        }],
    }
}

/// A snapshot with these services, and per endpoint (service, weight).
pub fn snapshot(version: u64, services: &[&str], endpoints: &[(&str, u32)]) -> Arc<MeshSnapshot> {
    Arc::new(MeshSnapshot {
        version,
        services: services
            .iter()
            .map(|host| {
                Arc::new(Service {
                    hostname: (*host).into(),
                    namespace: "default".into(),
                    addresses: vec![],
                    ports: vec![ServicePort {
                        name: "http".into(),
                        number: 80,
                        protocol: None,
                        target_port: None,
                    }],
                    resolution: Resolution::Static,
                    location: Location::MeshInternal,
                    export_to: vec![],
                    subject_alt_names: vec![],
                    named_endpoints: Vec::new(),
                })
            })
            .collect(),
        endpoints: endpoints
            .iter()
            .map(|(service, weight)| {
                Arc::new(Endpoint {
                    service: (*service).into(),
                    service_namespace: "default".into(),
                    address: "10.1.0.1".parse().unwrap(),
                    ports: Default::default(),
                    labels: Default::default(),
                    namespace: "default".into(),
                    service_account: "default".into(),
                    locality: String::new(),
                    network: String::new(),
                    weight: *weight,
                    mesh_tls: true,
                })
            })
            .collect(),
        ..MeshSnapshot::default()
    })
}

/// The control plane under test, with the sender of its snapshots.
pub struct ControlPlane {
    pub running: Running,
    pub store: watch::Sender<Arc<MeshSnapshot>>,
}

impl ControlPlane {
    pub async fn start(first: Arc<MeshSnapshot>) -> ControlPlane {
        Self::start_with(first, Options::default()).await
    }

    pub async fn start_with(first: Arc<MeshSnapshot>, options: Options) -> ControlPlane {
        let (store, snapshots) = watch::channel(first);
        let options = Options {
            address: "127.0.0.1".parse().unwrap(),
            xds_port: 0,
            monitoring_port: 0,
            ..options
        };
        let running = app::start(options, snapshots, Arc::new(fake_generator))
            .await
            .expect("the control plane starts");
        ControlPlane { running, store }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        get(self.running.monitoring, path).await
    }

    pub async fn syncz(&self) -> Vec<serde_json::Value> {
        let (status, body) = self.get("/debug/syncz").await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("syncz is JSON")
    }
}

/// An ADS stream, as a proxy would hold it.
pub struct XdsClient {
    pub node_id: String,
    requests: mpsc::Sender<DiscoveryRequest>,
    responses: Streaming<DiscoveryResponse>,
    first: bool,
}

impl XdsClient {
    pub async fn connect(address: SocketAddr, node_id: &str) -> XdsClient {
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{address}"))
            .await
            .expect("the xDS server accepts connections");
        let (requests, rx) = mpsc::channel(16);
        let responses = client
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .expect("the stream opens")
            .into_inner();
        XdsClient {
            node_id: node_id.into(),
            requests,
            responses,
            first: true,
        }
    }

    /// Sends a request; the first one carries the node.
    pub async fn send(&mut self, mut request: DiscoveryRequest) {
        if std::mem::take(&mut self.first) {
            request.node = Some(Node {
                id: self.node_id.clone(),
                ..Node::default()
            });
        }
        self.requests
            .send(request)
            .await
            .expect("the stream is open");
    }

    /// Subscribes to `names` of `xds_type` (none: wildcard), acknowledging
    /// `last` if given.
    pub async fn request(
        &mut self,
        xds_type: XdsType,
        names: &[&str],
        last: Option<&DiscoveryResponse>,
    ) {
        self.send(DiscoveryRequest {
            type_url: xds_type.type_url().into(),
            resource_names: names.iter().map(|n| (*n).into()).collect(),
            version_info: last.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: last.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    /// ACKs a response, keeping the names it asked for.
    pub async fn ack(&mut self, response: &DiscoveryResponse, names: &[&str]) {
        let xds_type = XdsType::from_type_url(&response.type_url).unwrap();
        self.request(xds_type, names, Some(response)).await;
    }

    /// NACKs a response; `kept` is the response whose version the proxy keeps.
    pub async fn nack(
        &mut self,
        response: &DiscoveryResponse,
        kept: Option<&DiscoveryResponse>,
        names: &[&str],
        reason: &str,
    ) {
        self.send(DiscoveryRequest {
            type_url: response.type_url.clone(),
            resource_names: names.iter().map(|n| (*n).into()).collect(),
            version_info: kept.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: response.nonce.clone(),
            error_detail: Some(rpc::Status {
                code: 3,
                message: reason.into(),
                ..rpc::Status::default()
            }),
            ..DiscoveryRequest::default()
        })
        .await;
    }

    /// The next response; panics if none comes in time.
    pub async fn recv(&mut self) -> DiscoveryResponse {
        tokio::time::timeout(PATIENCE, self.responses.message())
            .await
            .expect("a response in time")
            .expect("the stream is healthy")
            .expect("the stream is open")
    }

    /// The next response, which must be of `xds_type`.
    pub async fn recv_type(&mut self, xds_type: XdsType) -> DiscoveryResponse {
        let response = self.recv().await;
        assert_eq!(response.type_url, xds_type.type_url());
        response
    }

    /// The error the stream ends with.
    pub async fn recv_error(&mut self) -> tonic::Status {
        tokio::time::timeout(PATIENCE, self.responses.message())
            .await
            .expect("an answer in time")
            .expect_err("the stream fails")
    }

    /// Asserts that nothing arrives for a while.
    pub async fn expect_silence(&mut self) {
        if let Ok(message) = tokio::time::timeout(QUIET, self.responses.message()).await {
            panic!("expected no response, got {message:?}");
        }
    }
}

/// Names of the resources in a response (clusters, listeners, routes,
/// secrets by `name`; endpoints by `cluster_name`).
pub fn names(response: &DiscoveryResponse) -> Vec<String> {
    use prost::Message;
    let xds_type = XdsType::from_type_url(&response.type_url).unwrap();
    response
        .resources
        .iter()
        .map(|any| {
            let bytes = any.value.as_slice();
            match xds_type {
                XdsType::Cluster => Cluster::decode(bytes).unwrap().name,
                XdsType::Endpoint => ClusterLoadAssignment::decode(bytes).unwrap().cluster_name,
                XdsType::Listener => Listener::decode(bytes).unwrap().name,
                XdsType::Route => RouteConfiguration::decode(bytes).unwrap().name,
                XdsType::Secret => Secret::decode(bytes).unwrap().name,
            }
        })
        .collect()
}

/// GET over HTTP/1.1: status and body.
pub async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, address.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .expect("a response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
