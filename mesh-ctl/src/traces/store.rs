//! The most recent traces, grouped by trace id, in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde::{Deserialize, Serialize};

/// Traces by id, the least recently changed dropped first beyond the
/// capacity. Cheap to clone: clones share the traces.
#[derive(Debug, Clone)]
pub struct TraceStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    /// Bumped on every change, to order traces by their last change.
    clock: u64,
    traces: HashMap<String, (u64, Trace)>,
}

/// One trace: its spans in the order they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    pub trace_id: String,
    pub spans: Vec<SpanRecord>,
}

/// A span as the dashboard and `meshctl traces` show it. Ids are lower-case
/// hex; times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// The `service.name` of the span's resource.
    pub service: String,
    /// `server`, `client`, `internal`, `producer`, `consumer` or `unspecified`.
    pub kind: String,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// `ok`, `error` or `unset`.
    pub status: String,
    /// String forms of the span's attributes.
    pub attributes: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

/// The most spans one trace keeps.
pub const MAX_SPANS_PER_TRACE: usize = 1000;

impl TraceStore {
    /// Keeps at most `capacity` traces (at least one).
    pub fn new(capacity: usize) -> TraceStore {
        TraceStore {
            inner: Arc::new(Mutex::new(Inner {
                capacity: capacity.max(1),
                clock: 0,
                traces: HashMap::new(),
            })),
        }
    }

    /// Adds the spans of one OTLP export.
    pub fn add(&self, request: ExportTraceServiceRequest) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(kv.value.as_ref()))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let trace_id = hex(&span.trace_id);
                inner.clock += 1;
                let now = inner.clock;
                let entry = inner.traces.entry(trace_id.clone()).or_insert_with(|| {
                    let trace = Trace {
                        trace_id,
                        spans: Vec::new(),
                    };
                    (now, trace)
                });
                entry.0 = now;
                // A client that sends the same trace context with every
                // request grows one trace forever: keep its latest spans.
                if entry.1.spans.len() >= MAX_SPANS_PER_TRACE {
                    entry.1.spans.remove(0);
                }
                entry.1.spans.push(record(span, &service));
            }
        }
        inner.evict();
    }

    /// Up to `limit` traces, the most recently changed first.
    pub fn recent(&self, limit: usize) -> Vec<Trace> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut traces: Vec<&(u64, Trace)> = inner.traces.values().collect();
        traces.sort_by_key(|t| std::cmp::Reverse(t.0));
        traces
            .into_iter()
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect()
    }

    pub fn get(&self, trace_id: &str) -> Option<Trace> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.traces.get(trace_id).map(|(_, t)| t.clone())
    }
}

impl Inner {
    fn evict(&mut self) {
        while self.traces.len() > self.capacity {
            let oldest = self
                .traces
                .iter()
                .min_by_key(|(_, (changed, _))| *changed)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.traces.remove(&id),
                None => return,
            };
        }
    }
}

fn record(span: Span, service: &str) -> SpanRecord {
    let kind = match SpanKind::try_from(span.kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    };
    let status = match span.status.as_ref().map(|s| StatusCode::try_from(s.code)) {
        Some(Ok(StatusCode::Ok)) => "ok",
        Some(Ok(StatusCode::Error)) => "error",
        _ => "unset",
    };
    SpanRecord {
        span_id: hex(&span.span_id),
        parent_span_id: hex(&span.parent_span_id),
        name: span.name,
        service: service.to_owned(),
        kind: kind.into(),
        start_unix_nanos: span.start_time_unix_nano,
        end_unix_nanos: span.end_time_unix_nano,
        status: status.into(),
        attributes: span.attributes.iter().map(attribute).collect(),
    }
}

fn attribute(kv: &KeyValue) -> (String, String) {
    (kv.key.clone(), text(kv.value.as_ref()))
}

/// An attribute value as text; arrays and maps in their debug form.
fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    use super::*;

    fn export(trace: u8, span: u8) -> ExportTraceServiceRequest {
        let span = Span {
            trace_id: vec![trace; 16],
            span_id: vec![span; 8],
            ..Span::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    #[test]
    fn the_least_recently_changed_trace_goes_first() {
        let store = TraceStore::new(2);
        store.add(export(1, 1));
        store.add(export(2, 1));
        store.add(export(1, 2));
        store.add(export(3, 1));
        let ids: Vec<String> = store.recent(5).into_iter().map(|t| t.trace_id).collect();
        assert_eq!(ids, ["03".repeat(16), "01".repeat(16)]);
        assert_eq!(store.get(&"01".repeat(16)).unwrap().spans.len(), 2);
        assert_eq!(store.get(&"02".repeat(16)), None);
    }

    #[test]
    fn one_trace_keeps_a_bounded_number_of_spans() {
        let store = TraceStore::new(1);
        for span in 0..(MAX_SPANS_PER_TRACE + 10) {
            store.add(export(1, (span % 250) as u8));
        }
        let trace = store.get(&"01".repeat(16)).unwrap();
        assert_eq!(trace.spans.len(), MAX_SPANS_PER_TRACE);
    }
}
