//! The gRPC service: one task per stream reads requests and pushes, and
//! writes responses into the stream.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::connection::{Connection, Connections, Nonces, lock};
use super::resources::{Encoded, Interner};
use super::{Generator, Push, XdsType, stopped};
use crate::metrics::Metrics;
use crate::model::Proxy;

/// Responses a stream may have queued before its task waits for the client.
const STREAM_BUFFER: usize = 16;

/// The ADS service, ready to be served by tonic.
pub type AdsServer = AggregatedDiscoveryServiceServer<Ads>;

/// The aggregated discovery service.
#[derive(Clone)]
pub struct Ads {
    shared: Arc<Shared>,
}

struct Shared {
    generator: Arc<dyn Generator>,
    pushes: watch::Receiver<Push>,
    connections: Arc<Connections>,
    metrics: Arc<Metrics>,
    nonces: Nonces,
    /// Shares equal resource sets between proxies.
    interner: Interner,
    /// Turns true when the server stops: streams end, so that connections can close.
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Ads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ads")
            .field("connections", &self.shared.connections.len())
            .finish_non_exhaustive()
    }
}

impl Ads {
    pub fn new(
        generator: Arc<dyn Generator>,
        pushes: watch::Receiver<Push>,
        connections: Arc<Connections>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Ads {
        Ads {
            shared: Arc::new(Shared {
                generator,
                pushes,
                connections,
                metrics,
                nonces: Nonces::default(),
                interner: Interner::default(),
                shutdown,
            }),
        }
    }

    pub fn into_server(self) -> AdsServer {
        AggregatedDiscoveryServiceServer::new(self)
    }

    /// Serves gRPC (HTTP/2) connections on `listener` until `shutdown` turns
    /// true. Connections are served by hyper directly: one service needs no
    /// router.
    pub async fn serve(self, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        let server = self.into_server();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        tracing::warn!(error = %err, "xDS accept failed");
                        continue;
                    }
                },
                () = stopped(&mut shutdown) => return,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(server.clone());
            let mut shutdown_signal = shutdown.clone();
            tokio::spawn(async move {
                let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service);
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    _ = connection.as_mut() => return,
                    () = stopped(&mut shutdown_signal) => {}
                }
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            });
        }
    }
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = ReceiverStream<Result<DiscoveryResponse, Status>>;
    type DeltaAggregatedResourcesStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let shared = Arc::clone(&self.shared);
        tokio::spawn(serve_stream(shared, request.into_inner(), tx));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        Err(Status::unimplemented(
            "incremental xDS is not served; use StreamAggregatedResources",
        ))
    }
}

type Responses = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// Removes a connection from the registry when its stream ends.
struct Registered<'a> {
    shared: &'a Shared,
    id: u64,
    node_id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.shared.connections.remove(self.id);
        self.shared
            .metrics
            .set_connected(self.shared.connections.len());
        tracing::info!(proxy = %self.node_id, "proxy disconnected");
    }
}

async fn serve_stream(
    shared: Arc<Shared>,
    mut requests: Streaming<DiscoveryRequest>,
    tx: Responses,
) {
    let first = match requests.message().await {
        Ok(Some(first)) => first,
        Ok(None) | Err(_) => return,
    };
    let node = first.node.clone().unwrap_or_default();
    let proxy = match Proxy::from_node(&node) {
        Ok(proxy) => proxy,
        Err(err) => {
            tracing::warn!(node = %node.id, error = %err, "refused a proxy");
            let status = Status::invalid_argument(format!("node id {:?} refused: {err}", node.id));
            let _ = tx.send(Err(status)).await;
            return;
        }
    };
    let mut pushes = shared.pushes.clone();
    let push = pushes.borrow_and_update().clone();
    let encoded = Arc::new(Encoded::new(
        &shared.generator.generate(&proxy, &push.snapshot),
        &shared.interner,
    ));
    let (id, connection) =
        shared
            .connections
            .insert(Connection::new(proxy.clone(), node.id.clone(), encoded));
    shared.metrics.set_connected(shared.connections.len());
    tracing::info!(proxy = %node.id, "proxy connected");
    let _registered = Registered {
        shared: &shared,
        id,
        node_id: node.id.clone(),
    };
    let mut shutdown = shared.shutdown.clone();
    let mut snapshots_open = true;
    let mut next = Some(first);
    loop {
        if let Some(request) = next.take() {
            if !answer(&shared, &connection, &node.id, &request, &tx).await {
                return;
            }
            continue;
        }
        tokio::select! {
            message = requests.message() => match message {
                Ok(Some(request)) => next = Some(request),
                Ok(None) => return,
                Err(status) => {
                    tracing::debug!(proxy = %node.id, %status, "stream ended");
                    return;
                }
            },
            changed = pushes.changed(), if snapshots_open => {
                if changed.is_err() {
                    snapshots_open = false;
                    continue;
                }
                let push = pushes.borrow_and_update().clone();
                if !push_snapshot(&shared, &connection, &proxy, &push, &tx).await {
                    return;
                }
            }
            () = stopped(&mut shutdown) => return,
        }
    }
}

/// Handles one request; false when the client is gone.
async fn answer(
    shared: &Shared,
    connection: &std::sync::Mutex<Connection>,
    node_id: &str,
    request: &DiscoveryRequest,
    tx: &Responses,
) -> bool {
    let Some(xds_type) = XdsType::from_type_url(&request.type_url) else {
        tracing::debug!(proxy = %node_id, type_url = %request.type_url, "ignored a request for a type not served");
        return true;
    };
    let handled = lock(connection).request(xds_type, request, &shared.nonces);
    if let Some(reason) = &handled.nack {
        shared.metrics.record_reject(xds_type);
        tracing::warn!(
            proxy = %node_id,
            r#type = %xds_type,
            version = %request.version_info,
            nonce = %request.response_nonce,
            reason = %reason,
            "proxy rejected config (NACK)"
        );
    }
    match handled.response {
        Some(response) => send(shared, xds_type, response, tx).await,
        None => true,
    }
}

/// Regenerates the proxy's resources and sends what changed; false when the
/// client is gone.
async fn push_snapshot(
    shared: &Shared,
    connection: &std::sync::Mutex<Connection>,
    proxy: &Proxy,
    push: &Push,
    tx: &Responses,
) -> bool {
    let encoded = Arc::new(Encoded::new(
        &shared.generator.generate(proxy, &push.snapshot),
        &shared.interner,
    ));
    let responses = lock(connection).update(encoded, &shared.nonces);
    let pushed = !responses.is_empty();
    for response in responses {
        let xds_type =
            XdsType::from_type_url(&response.type_url).expect("responses are of served types");
        if !send(shared, xds_type, response, tx).await {
            return false;
        }
    }
    if let (true, Some(changed_at)) = (pushed, push.changed_at) {
        shared.metrics.record_convergence(changed_at.elapsed());
    }
    true
}

async fn send(
    shared: &Shared,
    xds_type: XdsType,
    response: DiscoveryResponse,
    tx: &Responses,
) -> bool {
    shared.metrics.record_push(xds_type);
    tx.send(Ok(response)).await.is_ok()
}
