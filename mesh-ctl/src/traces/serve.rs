//! The collector's two servers: OTLP/gRPC for proxies to export to, and
//! HTTP with JSON for people and dashboards to read.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::{TcpListener, TcpStream};

use super::store::TraceStore;

/// Traces the JSON view lists when not told how many.
pub const DEFAULT_LIMIT: usize = 20;

/// Serves `TraceService/Export` on `listener` until `shutdown` resolves,
/// keeping what comes in `store`.
pub async fn serve_otlp(
    listener: TcpListener,
    store: TraceStore,
    shutdown: impl Future<Output = ()>,
) {
    let grpc = TraceServiceServer::new(Receiver(store));
    accept(listener, shutdown, move |stream| {
        let service = TowerToHyperService::new(grpc.clone());
        async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

/// Hands each connection of `listener` to `connection`, on a task of its
/// own, until `shutdown` resolves.
async fn accept<F: Future<Output = ()> + Send + 'static>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    connection: impl Fn(TcpStream) -> F,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        if let Ok((stream, _)) = accepted {
            tokio::spawn(connection(stream));
        }
    }
}

#[derive(Debug)]
struct Receiver(TraceStore);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves the JSON view on `listener` until `shutdown` resolves:
/// - `GET /api/traces?limit=N`: `{"traces": [Trace, ...]}`, the most
///   recently changed first (20 unless told);
/// - `GET /api/traces/<trace id>`: one `Trace`, or 404.
///
/// A `Trace` is `{"trace_id", "spans": [...]}`, each span as
/// [`SpanRecord`](super::store::SpanRecord) serializes.
pub async fn serve_http(
    listener: TcpListener,
    store: TraceStore,
    shutdown: impl Future<Output = ()>,
) {
    accept(listener, shutdown, move |stream| {
        let store = store.clone();
        let service = service_fn(move |request| {
            let response = answer(&store, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
}

fn answer(store: &TraceStore, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served\n");
    }
    let path = request.uri().path().trim_end_matches('/');
    if path == "/api/traces" {
        let limit = limit(request.uri().query()).unwrap_or(DEFAULT_LIMIT);
        return json(&serde_json::json!({ "traces": store.recent(limit) }));
    }
    match path.strip_prefix("/api/traces/").map(|id| store.get(id)) {
        Some(Some(trace)) => json(&trace),
        Some(None) => text(StatusCode::NOT_FOUND, "no such trace\n"),
        None => text(StatusCode::NOT_FOUND, "try /api/traces\n"),
    }
}

fn limit(query: Option<&str>) -> Option<usize> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))?
        .parse()
        .ok()
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}
