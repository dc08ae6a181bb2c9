//! Trace context in headers: W3C Trace Context (`traceparent`,
//! `tracestate`) and Zipkin's B3, both the multi-header form (`x-b3-*`)
//! and the single `b3` header.
//!
//! The parent is read from `traceparent` first, then `x-b3-*`, then `b3`.
//! Both formats are written to the upstream, so that an application that
//! forwards either one keeps its calls in the same trace.

use std::fmt::Write;

use http::{HeaderMap, HeaderName, HeaderValue};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
static B3_SINGLE: HeaderName = HeaderName::from_static("b3");

/// A span in another process that a request continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: u128,
    pub span_id: u64,
}

/// What a request's headers say about its trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Incoming {
    pub parent: Option<Parent>,
    /// The caller's sampling decision, when it made one. B3 may carry a
    /// decision without a parent (`x-b3-sampled: 0` alone).
    pub sampled: Option<bool>,
}

/// The span whose context goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing {
    pub trace_id: u128,
    pub span_id: u64,
    pub parent_span_id: Option<u64>,
    pub sampled: bool,
}

/// Reads the trace context of a request.
pub fn extract(headers: &HeaderMap) -> Incoming {
    if let Some(incoming) = header(headers, &TRACEPARENT).and_then(traceparent) {
        return incoming;
    }
    let multi = b3_multi(headers);
    if multi.parent.is_some() || multi.sampled.is_some() {
        return multi;
    }
    header(headers, &B3_SINGLE)
        .and_then(b3_single)
        .unwrap_or_default()
}

/// Writes the context of `span` for the upstream in both formats,
/// replacing whatever context the request had. `tracestate` is passed on
/// as it came; `b3` is rewritten only when the request had it.
pub fn inject(headers: &mut HeaderMap, span: &Outgoing) {
    let trace = format!("{:032x}", span.trace_id);
    let id = format!("{:016x}", span.span_id);
    let flag = if span.sampled { "1" } else { "0" };
    let traceparent = format!("00-{trace}-{id}-0{flag}");
    let mut single = format!("{trace}-{id}-{flag}");
    headers.insert(TRACEPARENT.clone(), value(traceparent));
    headers.insert(B3_TRACE_ID.clone(), value(trace));
    headers.insert(B3_SPAN_ID.clone(), value(id));
    match span.parent_span_id {
        Some(parent) => {
            let parent = format!("{parent:016x}");
            let _ = write!(single, "-{parent}");
            headers.insert(B3_PARENT_SPAN_ID.clone(), value(parent));
        }
        None => {
            headers.remove(&B3_PARENT_SPAN_ID);
        }
    }
    headers.insert(B3_SAMPLED.clone(), HeaderValue::from_static(flag));
    if headers.contains_key(&B3_SINGLE) {
        headers.insert(B3_SINGLE.clone(), value(single));
    }
}

fn value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("hex digits and dashes are a valid header value")
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// `version-traceid-parentid-flags`. Version `ff` is invalid; later
/// versions may append fields, which are ignored.
fn traceparent(text: &str) -> Option<Incoming> {
    let mut fields = text.split('-');
    let version = fields.next()?;
    let (trace_id, span_id, flags) = (fields.next()?, fields.next()?, fields.next()?);
    lower_hex(version, 2).filter(|_| version != "ff")?;
    if version == "00" && fields.next().is_some() {
        return None;
    }
    let trace_id = lower_hex(trace_id, 32).filter(|id| *id != 0)?;
    let span_id = lower_hex(span_id, 16).filter(|id| *id != 0)?;
    let flags = lower_hex(flags, 2)?;
    Some(Incoming {
        parent: Some(Parent {
            trace_id,
            span_id: span_id as u64,
        }),
        sampled: Some(flags & 1 == 1),
    })
}

fn b3_multi(headers: &HeaderMap) -> Incoming {
    let debug = header(headers, &B3_FLAGS) == Some("1");
    let sampled = match header(headers, &B3_SAMPLED) {
        _ if debug => Some(true),
        Some("1" | "true") => Some(true),
        Some("0" | "false") => Some(false),
        _ => None,
    };
    let trace_id = header(headers, &B3_TRACE_ID).and_then(b3_trace_id);
    let span_id = header(headers, &B3_SPAN_ID).and_then(b3_span_id);
    let parent = match (trace_id, span_id) {
        (Some(trace_id), Some(span_id)) => Some(Parent { trace_id, span_id }),
        _ => None,
    };
    Incoming { parent, sampled }
}

/// `traceid-spanid[-sampling[-parentspanid]]`, or the sampling state alone.
fn b3_single(text: &str) -> Option<Incoming> {
    let state = |s: &str| match s {
        "1" | "d" => Some(true),
        "0" => Some(false),
        _ => None,
    };
    let fields: Vec<&str> = text.split('-').collect();
    match fields.as_slice() {
        [sampling] => Some(Incoming {
            parent: None,
            sampled: Some(state(sampling)?),
        }),
        [trace, span, rest @ ..] if rest.len() <= 2 => {
            let sampled = match rest.first() {
                Some(s) => Some(state(s)?),
                None => None,
            };
            Some(Incoming {
                parent: Some(Parent {
                    trace_id: b3_trace_id(trace)?,
                    span_id: b3_span_id(span)?,
                }),
                sampled,
            })
        }
        _ => None,
    }
}

/// 16 or 32 hex digits; a 64-bit id is the low half of a 128-bit one.
fn b3_trace_id(text: &str) -> Option<u128> {
    let len = text.len();
    (len == 16 || len == 32)
        .then(|| u128::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|id| *id != 0)
}

fn b3_span_id(text: &str) -> Option<u64> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
        .filter(|id| *id != 0)
}

/// Exactly `len` lower-case hex digits, as W3C requires.
fn lower_hex(text: &str, len: usize) -> Option<u128> {
    let valid = text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    valid.then(|| u128::from_str_radix(text, 16).ok()).flatten()
}

#[cfg(test)]
mod tests;
