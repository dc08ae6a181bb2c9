//! A trace as an indented tree: each span under its parent, in start order.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use super::store::{SpanRecord, Trace};

/// One line per span: `service  name  duration  status`, children indented
/// under their parent. Spans whose parent is not in the trace are roots.
pub fn render(trace: &Trace) -> String {
    let ids: HashSet<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for span in &trace.spans {
        if ids.contains(span.parent_span_id.as_str()) {
            children
                .entry(span.parent_span_id.as_str())
                .or_default()
                .push(span);
        } else {
            roots.push(span);
        }
    }
    let mut out = format!("trace {}\n", trace.trace_id);
    roots.sort_by_key(|s| s.start_unix_nanos);
    for list in children.values_mut() {
        list.sort_by_key(|s| s.start_unix_nanos);
    }
    for root in roots {
        write_span(&mut out, root, &children, 1);
    }
    out
}

fn write_span(
    out: &mut String,
    span: &SpanRecord,
    children: &HashMap<&str, Vec<&SpanRecord>>,
    depth: usize,
) {
    let service = if span.service.is_empty() {
        "-"
    } else {
        &span.service
    };
    let _ = writeln!(
        out,
        "{}{service}  {}  {}  {}",
        "  ".repeat(depth),
        span.name,
        duration(span.duration_nanos()),
        status(span)
    );
    for child in children.get(span.span_id.as_str()).into_iter().flatten() {
        write_span(out, child, children, depth + 1);
    }
}

/// The span's status, with the HTTP status when it has one.
fn status(span: &SpanRecord) -> String {
    match span.attributes.get("http.status_code") {
        Some(code) => format!("{} {code}", span.status),
        None => span.status.clone(),
    }
}

fn duration(nanos: u64) -> String {
    let millis = nanos as f64 / 1_000_000.0;
    if millis >= 1000.0 {
        format!("{:.2}s", millis / 1000.0)
    } else {
        format!("{millis:.2}ms")
    }
}
