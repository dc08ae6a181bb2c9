//! The headers a Bookinfo service copies from the request it serves onto the
//! calls it makes.
//!
//! Sidecars can only join the spans of one request into a trace, and match
//! routes on the caller's identity, if the app carries these headers across;
//! the list is the one the upstream services keep in sync with each other.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers forwarded by name.
const FORWARDED: &[&str] = &[
    "x-request-id",
    "b3",
    "traceparent",
    "tracestate",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
    "cookie",
    "authorization",
    "jwt",
];

/// Header families forwarded by prefix: B3's `x-b3-traceid`, `x-b3-spanid`,
/// `x-b3-parentspanid`, `x-b3-sampled`, `x-b3-flags` and Datadog's
/// `x-datadog-trace-id`, `x-datadog-parent-id`, `x-datadog-sampling-priority`.
const FORWARDED_PREFIXES: &[&str] = &["x-b3-", "x-datadog-"];

/// The header that carries the signed-in user, on which routes match.
pub const END_USER: HeaderName = HeaderName::from_static("end-user");

/// The subset of `incoming` that is forwarded downstream.
pub fn forwarded(incoming: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in incoming {
        if is_forwarded(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// Adds `end-user: <user>`, unless the name cannot be a header value.
pub fn set_end_user(headers: &mut HeaderMap, user: &str) {
    if let Ok(value) = HeaderValue::from_str(user) {
        headers.insert(END_USER, value);
    }
}

fn is_forwarded(name: &HeaderName) -> bool {
    let name = name.as_str();
    FORWARDED.contains(&name) || FORWARDED_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_tracing_and_identity_headers_only() {
        let mut incoming = HeaderMap::new();
        for name in [
            "x-request-id",
            "x-b3-traceid",
            "x-b3-sampled",
            "x-datadog-trace-id",
            "traceparent",
            "cookie",
            "authorization",
            "host",
            "content-length",
            "accept",
        ] {
            incoming.insert(HeaderName::from_static(name), HeaderValue::from_static("v"));
        }
        let out = forwarded(&incoming);
        let mut names: Vec<_> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "authorization",
                "cookie",
                "traceparent",
                "x-b3-sampled",
                "x-b3-traceid",
                "x-datadog-trace-id",
                "x-request-id"
            ]
        );
    }

    #[test]
    fn end_user_is_skipped_when_it_cannot_be_a_header() {
        let mut headers = HeaderMap::new();
        set_end_user(&mut headers, "bad\nname");
        assert!(headers.is_empty());
        set_end_user(&mut headers, "jason");
        assert_eq!(headers[END_USER], "jason");
    }
}
