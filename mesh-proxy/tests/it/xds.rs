//! The proxy configured over ADS by a small control plane written here:
//! the first config, live route and endpoint changes, NACKs, and the control
//! plane going away and coming back.

use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use prost::{Message, Name};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use support::{Echo, Proxy, eventually, get, server_of};

/// Resources by type URL: a version and the resources with their names.
type Store = BTreeMap<String, (String, Vec<(String, Any)>)>;

/// A state-of-the-world ADS server whose resources the test sets; it
/// records every request.
#[derive(Clone, Default)]
struct Plane {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    store: Mutex<Store>,
    /// Bumped when the store changes; every stream sends what is new.
    changed: watch::Sender<u64>,
    /// Bumped to end every stream.
    hang_up: watch::Sender<u64>,
    requests: Mutex<Vec<DiscoveryRequest>>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;
type DeltaResponses = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Plane {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Responses>, Status> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(Arc::clone(&self.shared).stream(request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<DeltaResponses>, Status> {
        Err(Status::unimplemented("state of the world only"))
    }
}

impl Shared {
    /// Answers each subscription with the current version, once per version
    /// and again when the names change or a new stream asks.
    async fn stream(
        self: Arc<Self>,
        mut incoming: Streaming<DiscoveryRequest>,
        tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
    ) {
        let (mut changed, mut hang_up) = (self.changed.subscribe(), self.hang_up.subscribe());
        hang_up.borrow_and_update();
        let mut subscribed: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut sent: BTreeMap<String, String> = BTreeMap::new();
        let mut nonce = 0;
        loop {
            tokio::select! {
                request = incoming.message() => {
                    let Ok(Some(request)) = request else { return };
                    let names = request.resource_names.clone();
                    let type_url = request.type_url.clone();
                    if subscribed.insert(type_url.clone(), names.clone()).as_ref() != Some(&names)
                        || request.response_nonce.is_empty()
                    {
                        sent.remove(&type_url);
                    }
                    self.requests.lock().unwrap().push(request);
                }
                _ = changed.changed() => {}
                _ = hang_up.changed() => return,
            }
            let store = self.store.lock().unwrap().clone();
            for (type_url, names) in &subscribed {
                let Some((version, resources)) = store.get(type_url) else {
                    continue;
                };
                if sent.get(type_url) == Some(version) {
                    continue;
                }
                nonce += 1;
                let response = DiscoveryResponse {
                    version_info: version.clone(),
                    type_url: type_url.clone(),
                    nonce: nonce.to_string(),
                    resources: resources
                        .iter()
                        .filter(|(name, _)| names.is_empty() || names.contains(name))
                        .map(|(_, any)| any.clone())
                        .collect(),
                    ..DiscoveryResponse::default()
                };
                sent.insert(type_url.clone(), version.clone());
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        }
    }
}

impl Plane {
    /// Sets the resources of one type, as Envoy JSON, at a new version.
    fn set<M: Message + Default + Name>(&self, version: &str, resources: &[Value]) {
        let resources = resources
            .iter()
            .map(|value| {
                let message: M = mesh_api::envoy::from_json(value).unwrap();
                let name = value
                    .get("name")
                    .or_else(|| value.get("cluster_name"))
                    .and_then(Value::as_str)
                    .unwrap()
                    .to_owned();
                let any = Any {
                    type_url: M::type_url(),
                    value: message.encode_to_vec(),
                };
                (name, any)
            })
            .collect();
        self.shared
            .store
            .lock()
            .unwrap()
            .insert(M::type_url(), (version.to_owned(), resources));
        self.shared.changed.send_modify(|n| *n += 1);
    }

    fn requests(&self) -> Vec<DiscoveryRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits for a request, from the `from`th on, that `matches`.
    async fn wait_request(
        &self,
        from: usize,
        matches: impl Fn(&DiscoveryRequest) -> bool,
    ) -> DiscoveryRequest {
        poll("an xDS request", || {
            self.requests().into_iter().skip(from).find(&matches)
        })
        .await
    }

    /// Serves on `address` (port 0 for any) until the task is aborted.
    async fn serve(&self, address: SocketAddr) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind(address).await.unwrap();
        let local = listener.local_addr().unwrap();
        let service = AggregatedDiscoveryServiceServer::new(self.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (local, task)
    }

    /// Stops listening and ends every stream.
    fn go_away(&self, server: tokio::task::JoinHandle<()>) {
        server.abort();
        self.shared.hang_up.send_modify(|n| *n += 1);
    }
}

async fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    eventually(async || check().ok_or_else(|| format!("no {what}"))).await
}

/// Waits until `check` holds.
async fn until<F: Future<Output = bool>>(check: impl Fn() -> F) {
    eventually(async || match check().await {
        true => Ok(()),
        false => Err("the condition does not hold".to_owned()),
    })
    .await
}

/// Sends requests until one is answered by `server`.
async fn until_served_by(address: SocketAddr, server: &str) {
    eventually(async || {
        let (status, body) = get(address, "/", &[]).await;
        match status == StatusCode::OK && server_of(&body) == server {
            true => Ok(()),
            false => Err(format!("not served by {server}: {status} {body}")),
        }
    })
    .await
}

fn is_type<M: Name>(request: &DiscoveryRequest) -> bool {
    request.type_url == M::type_url()
}

fn eds_cluster(name: &str) -> Value {
    json!({"name": name, "type": "EDS", "connect_timeout": "1s", "eds_cluster_config": {
        "service_name": format!("{name}.svc"), "eds_config": {"ads": {}, "resource_api_version": "V3"}}})
}

fn assignment(name: &str, address: SocketAddr) -> Value {
    json!({"cluster_name": format!("{name}.svc"), "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
        {"socket_address": {"address": address.ip().to_string(), "port_value": address.port()}}}}]}]})
}

fn listener() -> Value {
    json!({
        "name": "http",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "http",
                "rds": {"route_config_name": "80", "config_source": {"ads": {}, "resource_api_version": "V3"}},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

fn routes(cluster: &str) -> Value {
    json!({"name": "80", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "10s"}}]}]})
}

/// Istio's shape: the node, a static `xds-grpc` cluster, and ADS for the rest.
fn xds_bootstrap(plane: SocketAddr) -> Value {
    json!({
        "node": {
            "id": "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local",
            "cluster": "productpage.default",
            "metadata": {"NAMESPACE": "default", "WORKLOAD_NAME": "productpage-v1"}
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"}
        },
        "static_resources": {"clusters": [{
            "name": "xds-grpc",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
                {"socket_address": {"address": plane.ip().to_string(), "port_value": plane.port()}}}}]}]}
        }]}
    })
}

async fn listener_address(proxy: &Proxy) -> SocketAddr {
    let (_, listing) = get(proxy.admin, "/listeners", &[]).await;
    listing
        .lines()
        .find_map(|line| line.strip_prefix("http::"))
        .expect("the http listener")
        .parse()
        .unwrap()
}

async fn ready(proxy: &Proxy) -> StatusCode {
    get(proxy.admin, "/ready", &[]).await.0
}

/// `rq_active` of the endpoints of a cluster, from `/clusters`.
async fn active_requests(proxy: &Proxy, cluster: &str) -> u64 {
    let (_, text) = get(proxy.admin, "/clusters", &[]).await;
    text.lines()
        .filter(|line| line.starts_with(&format!("{cluster}::")) && line.contains("::rq_active::"))
        .filter_map(|line| line.rsplit("::").next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn configured_over_ads_and_updated_live() {
    let (a, b, c) = (
        Echo::start("a").await,
        Echo::start("b").await,
        Echo::start("c").await,
    );
    let plane = Plane::default();
    plane.set::<Cluster>("1", &[eds_cluster("a"), eds_cluster("b")]);
    plane.set::<ClusterLoadAssignment>(
        "1",
        &[assignment("a", a.address), assignment("b", b.address)],
    );
    plane.set::<Listener>("1", &[listener()]);
    let (plane_address, server) = plane.serve("127.0.0.1:0".parse().unwrap()).await;
    let proxy = Proxy::start(&xds_bootstrap(plane_address)).await;

    // The first request carries the node; the rest follows by name.
    let first = plane.wait_request(0, |_| true).await;
    let node = first.node.expect("the node");
    assert_eq!(node.cluster, "productpage.default");
    assert!(node.id.starts_with("sidecar~127.0.0.1~productpage-v1"));
    let eds = plane
        .wait_request(0, is_type::<ClusterLoadAssignment>)
        .await;
    assert_eq!(eds.resource_names, ["a.svc", "b.svc"]);
    let rds = plane.wait_request(0, is_type::<RouteConfiguration>).await;
    assert_eq!(rds.resource_names, ["80"]);
    // The listener waits for its routes, and the proxy is not ready.
    assert_eq!(ready(&proxy).await, StatusCode::SERVICE_UNAVAILABLE);

    plane.set::<RouteConfiguration>("1", &[routes("a")]);
    until(|| async { ready(&proxy).await == StatusCode::OK }).await;
    let address = listener_address(&proxy).await;
    until_served_by(address, "a").await;

    // A slow request on the old routes finishes while the routes change.
    let slow = tokio::spawn(async move { get(address, "/delay/1500", &[]).await });
    until(|| async { active_requests(&proxy, "a").await > 0 }).await;
    plane.set::<RouteConfiguration>("2", &[routes("b")]);
    until_served_by(address, "b").await;
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server_of(&body), "a");

    // New endpoints move traffic.
    plane.set::<ClusterLoadAssignment>(
        "2",
        &[assignment("a", a.address), assignment("b", c.address)],
    );
    until_served_by(address, "c").await;

    // The config dump shows what came, in Envoy's shape.
    let (_, dump) = get(proxy.admin, "/config_dump", &[]).await;
    let dump: Value = serde_json::from_str(&dump).unwrap();
    let config = |suffix: &str| {
        dump["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["@type"].as_str().unwrap().ends_with(suffix))
            .cloned()
            .unwrap_or_else(|| panic!("no {suffix} in {dump}"))
    };
    let clusters = config("ClustersConfigDump");
    assert_eq!(clusters["version_info"], "1");
    assert_eq!(
        clusters["dynamic_active_clusters"][0]["cluster"]["name"],
        "a"
    );
    assert!(clusters["dynamic_active_clusters"][0]["last_updated"].is_string());
    let listeners = config("ListenersConfigDump");
    assert_eq!(listeners["dynamic_listeners"][0]["name"], "http");
    let routes_dump = config("RoutesConfigDump");
    assert_eq!(routes_dump["dynamic_route_configs"][0]["version_info"], "2");

    // A bad cluster is NACKed with the reason; the last good config serves.
    let from = plane.requests().len();
    plane.set::<Cluster>(
        "3",
        &[
            // Its EDS name is not subscribed yet: the error is still found.
            json!({"name": "a", "type": "EDS", "lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 4}}),
            eds_cluster("b"),
        ],
    );
    let nack = plane
        .wait_request(from, |r| is_type::<Cluster>(r) && r.error_detail.is_some())
        .await;
    assert_eq!(nack.version_info, "1");
    let reason = nack.error_detail.unwrap().message;
    assert!(
        reason.starts_with("cluster \"a\": maglev_lb_config.table_size: "),
        "{reason}"
    );
    until_served_by(address, "c").await;

    // Without the control plane the proxy keeps serving; when it comes back
    // the proxy subscribes again with the versions it has.
    plane.go_away(server);
    for _ in 0..5 {
        until_served_by(address, "c").await;
    }
    assert_eq!(ready(&proxy).await, StatusCode::OK);
    let from = plane.requests().len();
    let (_, server) = plane.serve(plane_address).await;
    let again = plane
        .wait_request(from, |r| {
            is_type::<Cluster>(r) && r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(again.version_info, "1");
    assert!(again.node.is_some());
    let again = plane
        .wait_request(from, |r| {
            is_type::<RouteConfiguration>(r) && r.response_nonce.is_empty()
        })
        .await;
    assert_eq!(again.version_info, "2");
    assert_eq!(again.resource_names, ["80"]);
    plane.set::<RouteConfiguration>("4", &[routes("a")]);
    until_served_by(address, "a").await;
    server.abort();
    proxy.quit().await;
}

/// A STRICT_DNS cluster naming `host` at `port`, looked up every second.
fn dns_cluster(name: &str, host: &str, port: u16) -> Value {
    json!({"name": name, "type": "STRICT_DNS", "connect_timeout": "1s",
        "dns_lookup_family": "V4_ONLY", "dns_refresh_rate": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
            {"socket_address": {"address": host, "port_value": port}}}}]}]}})
}

#[tokio::test]
async fn dns_clusters_over_ads_send_to_their_hosts_addresses() {
    let external = Echo::start("external").await;
    let plane = Plane::default();
    // As istiod writes a ServiceEntry with `resolution: DNS`.
    plane.set::<Cluster>(
        "1",
        &[dns_cluster(
            "outbound|80||external.example",
            "localhost",
            external.address.port(),
        )],
    );
    plane.set::<Listener>("1", &[listener()]);
    plane.set::<RouteConfiguration>("1", &[routes("outbound|80||external.example")]);
    let (plane_address, _server) = plane.serve("127.0.0.1:0".parse().unwrap()).await;
    let proxy = Proxy::start(&xds_bootstrap(plane_address)).await;

    until(|| async { ready(&proxy).await == StatusCode::OK }).await;
    let address = listener_address(&proxy).await;
    until_served_by(address, "external").await;
    let acks = plane.requests();
    assert!(
        acks.iter()
            .filter(|r| is_type::<Cluster>(r))
            .all(|r| r.error_detail.is_none()),
        "the DNS cluster is accepted"
    );
    let (_, clusters) = get(proxy.admin, "/clusters", &[]).await;
    let host = format!(
        "outbound|80||external.example::127.0.0.1:{}::",
        external.address.port()
    );
    assert!(clusters.contains(&host), "{clusters}");
}
