//! Finished spans go to their collector cluster over OTLP/gRPC
//! (`TraceService/Export`), in batches, from one task off the request path.
//!
//! Requests never wait for it: a span that finds the queue full is dropped
//! and counted, and so are the spans of an export call that fails. The
//! call goes through the cluster's endpoints and connection pool (TLS
//! included), over HTTP/2 whatever the cluster's own protocol.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::http::observe::grpc_status;
use crate::upstream::Upstream;

/// Spans waiting for export; beyond this they are dropped.
pub const QUEUE_CAPACITY: usize = 8192;
/// Spans sent in one call at most.
const MAX_BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A finished span and where it goes.
#[derive(Debug)]
pub struct Finished {
    pub span: Span,
    pub collector: Arc<Upstream>,
    /// The `service.name` of the span's resource.
    pub service: Arc<str>,
}

/// Counters of the exporter, with Envoy's names for the OpenTelemetry
/// tracer's where it has them.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub spans_sent: AtomicU64,
    /// Spans lost: the queue was full, the collector cluster was missing,
    /// or their export call failed.
    pub spans_dropped: AtomicU64,
    pub export_failures: AtomicU64,
}

impl ExportStats {
    pub fn render(&self, out: &mut String) {
        for (name, counter) in [
            ("spans_sent", &self.spans_sent),
            ("spans_dropped", &self.spans_dropped),
            ("export_failures", &self.export_failures),
        ] {
            let value = counter.load(Ordering::Relaxed);
            let _ = writeln!(out, "envoy_tracing_opentelemetry_{name} {value}");
        }
    }

    fn dropped(&self, spans: usize) {
        self.spans_dropped
            .fetch_add(spans as u64, Ordering::Relaxed);
    }
}

/// Where the data path leaves finished spans.
#[derive(Debug, Clone)]
pub struct SpanQueue {
    sender: mpsc::Sender<Finished>,
    pub stats: Arc<ExportStats>,
}

impl SpanQueue {
    /// Queues a span, or drops it when the queue is full.
    pub fn push(&self, span: Finished) {
        if self.sender.try_send(span).is_err() {
            self.stats.dropped(1);
        }
    }

    /// Counts a span that has nowhere to go.
    pub fn lost(&self) {
        self.stats.dropped(1);
    }
}

/// The receiving end of a [`SpanQueue`], until its task is started.
#[derive(Debug)]
pub struct Exporter {
    receiver: mpsc::Receiver<Finished>,
    stats: Arc<ExportStats>,
}

/// A queue of `capacity` spans, and what exports them once started.
pub fn channel(capacity: usize) -> (SpanQueue, Exporter) {
    let (sender, receiver) = mpsc::channel(capacity);
    let stats = Arc::new(ExportStats::default());
    let exporter = Exporter {
        receiver,
        stats: Arc::clone(&stats),
    };
    (SpanQueue { sender, stats }, exporter)
}

impl Exporter {
    pub fn start(self) -> ExportTask {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(self.receiver, stopped, self.stats));
        ExportTask { stop, task }
    }
}

/// The export task; [`ExportTask::flush`] sends what is queued and stops it.
#[derive(Debug)]
pub struct ExportTask {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl ExportTask {
    /// Sends the spans queued so far, waiting at most `limit`.
    pub async fn flush(self, limit: Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(limit, self.task).await.is_err() {
            tracing::warn!("spans still unsent when the proxy stopped");
        }
    }
}

async fn run(
    mut receiver: mpsc::Receiver<Finished>,
    mut stop: oneshot::Receiver<()>,
    stats: Arc<ExportStats>,
) {
    let mut batch = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = receiver.recv() => match received {
                Some(span) => {
                    batch.push(span);
                    if batch.len() >= MAX_BATCH {
                        send(std::mem::take(&mut batch), &stats).await;
                    }
                }
                None => break,
            },
            _ = tick.tick() => send(std::mem::take(&mut batch), &stats).await,
            _ = &mut stop => {
                while let Ok(span) = receiver.try_recv() {
                    batch.push(span);
                }
                break;
            }
        }
    }
    send(batch, &stats).await;
}

/// Exports a batch: one call per collector, its spans grouped by service.
async fn send(batch: Vec<Finished>, stats: &ExportStats) {
    // By the upstream's address: one cluster definition, one collector.
    let mut by_collector: BTreeMap<usize, (Arc<Upstream>, Vec<Finished>)> = BTreeMap::new();
    for finished in batch {
        by_collector
            .entry(Arc::as_ptr(&finished.collector) as usize)
            .or_insert_with(|| (Arc::clone(&finished.collector), Vec::new()))
            .1
            .push(finished);
    }
    for (collector, spans) in by_collector.into_values() {
        for chunk in spans.chunks(MAX_BATCH) {
            let count = chunk.len();
            let request = export_request(chunk);
            match tokio::time::timeout(EXPORT_TIMEOUT, export(&collector, request)).await {
                Ok(Ok(())) => {
                    stats.spans_sent.fetch_add(count as u64, Ordering::Relaxed);
                }
                failed => {
                    let error = match failed {
                        Ok(Err(err)) => err,
                        _ => ExportError::TimedOut,
                    };
                    tracing::debug!(cluster = %collector.name, %error, spans = count, "span export failed");
                    stats.export_failures.fetch_add(1, Ordering::Relaxed);
                    stats.dropped(count);
                }
            }
        }
    }
}

/// One resource per service name, each with the proxy's scope.
fn export_request(spans: &[Finished]) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for finished in spans {
        by_service
            .entry(&finished.service)
            .or_default()
            .push(finished.span.clone());
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attribute("service.name", service)],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "mesh-proxy".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..InstrumentationScope::default()
                }),
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

pub(crate) fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("the collector cluster has no endpoint")]
    NoEndpoint,
    #[error("{0}")]
    Request(#[from] crate::upstream::SendError),
    #[error("reading the answer: {0}")]
    Body(#[from] hyper::Error),
    #[error("the collector answered HTTP {0}")]
    Http(StatusCode),
    #[error("the collector answered grpc-status {0:?}")]
    Grpc(Option<u32>),
    #[error("no answer within {EXPORT_TIMEOUT:?}")]
    TimedOut,
}

/// One unary gRPC call: a length-prefixed message, and a status in the
/// headers or trailers.
async fn export(
    collector: &Upstream,
    request: ExportTraceServiceRequest,
) -> Result<(), ExportError> {
    let pick = collector
        .balancer
        .pick_hashed(None, 0)
        .ok_or(ExportError::NoEndpoint)?;
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(http::uri::Scheme::HTTP);
    uri.authority = Some(pick.authority());
    uri.path_and_query = Some(http::uri::PathAndQuery::from_static(EXPORT_PATH));
    let mut call = Request::new(
        Full::new(grpc_message(&request))
            .map_err(|never| match never {})
            .boxed(),
    );
    *call.method_mut() = http::Method::POST;
    *call.uri_mut() = Uri::from_parts(uri).expect("scheme, authority and path make a URI");
    *call.version_mut() = http::Version::HTTP_2;
    let headers = call.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    let endpoint = pick.endpoint().address;
    let response = collector.grpc_pool().send(endpoint, call).await;
    pick.report(response.as_ref().map_or(503, |r| r.status().as_u16()));
    let response = response?;
    if response.status() != StatusCode::OK {
        return Err(ExportError::Http(response.status()));
    }
    let in_headers = grpc_status(response.headers());
    let collected = response.into_body().collect().await?;
    let status = in_headers.or_else(|| collected.trailers().and_then(grpc_status));
    match status {
        Some(0) => Ok(()),
        other => Err(ExportError::Grpc(other)),
    }
}

/// gRPC's framing: no compression, the length, the message.
fn grpc_message(message: &impl Message) -> Bytes {
    let len = message.encoded_len();
    let mut buffer = BytesMut::with_capacity(5 + len);
    buffer.put_u8(0);
    buffer.put_u32(len as u32);
    message
        .encode(&mut buffer)
        .expect("the buffer has room for the message");
    buffer.freeze()
}
