//! Replies the proxy makes itself, as a gRPC client understands them.
//!
//! A gRPC client reads its outcome from `grpc-status`, not from the HTTP
//! status, and refuses a body that is not gRPC. So, as Envoy does, a reply
//! the proxy makes to a gRPC request (a refusal by RBAC or JWT, no route, no
//! healthy upstream, a timeout) becomes a trailers-only response: HTTP 200,
//! `content-type: application/grpc`, the status mapped from the HTTP one and
//! the text in `grpc-message`.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::Body;
use super::info::ResponseInfo;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// gRPC's status codes the proxy answers with.
pub mod code {
    pub const UNKNOWN: u32 = 2;
    pub const DEADLINE_EXCEEDED: u32 = 4;
    pub const PERMISSION_DENIED: u32 = 7;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
    pub const UNAVAILABLE: u32 = 14;
    pub const UNAUTHENTICATED: u32 = 16;
}

/// A gRPC request: `content-type` is `application/grpc`, alone or with a
/// `+format` or parameters (not gRPC-Web, whose clients read HTTP statuses).
pub fn is_request(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Some(rest) = value.as_bytes().strip_prefix(b"application/grpc") else {
        return false;
    };
    matches!(rest.first(), None | Some(b'+' | b';'))
}

/// The deadline a gRPC client sent in `grpc-timeout`: at most 8 digits
/// and a unit (`H`, `M`, `S`, `m`, `u`, `n`); `None` when absent or
/// malformed, as Envoy ignores a malformed one.
pub fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(&GRPC_TIMEOUT)?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The gRPC status for an HTTP status, as gRPC's HTTP mapping has it.
pub fn status_for(status: StatusCode) -> u32 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => code::UNAVAILABLE,
        _ => code::UNKNOWN,
    }
}

/// A reply the proxy made (marked by [`ResponseInfo::local_reply`]) turned
/// into a trailers-only gRPC response; any other response as it is. The
/// headers the proxy set on the reply (a `www-authenticate` challenge, say)
/// stay.
pub fn local_reply(response: Response<Body>) -> Response<Body> {
    let (text, status) = match response.extensions().get::<ResponseInfo>() {
        Some(ResponseInfo {
            local_reply: Some(text),
            local_grpc_status,
            ..
        }) => (text.clone(), *local_grpc_status),
        _ => return response,
    };
    let status = status.unwrap_or_else(|| status_for(response.status()));
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::OK;
    parts.headers.remove(header::CONTENT_LENGTH);
    trailers_only(&mut parts.headers, status, &text);
    Response::from_parts(parts, super::proxy::full_body(Bytes::new()))
}

/// Sets the headers of a trailers-only response with `status`, and
/// `message` when there is one.
pub fn trailers_only(headers: &mut HeaderMap, status: u32, message: &Bytes) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    // A status the reply already names (an authorizer's) stays, as in Envoy.
    if !headers.contains_key(&GRPC_STATUS) {
        headers.insert(GRPC_STATUS.clone(), HeaderValue::from(status));
    }
    if message.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert(GRPC_MESSAGE.clone(), value);
    }
}

/// `grpc-message` is percent-encoded: every byte outside printable ASCII,
/// and `%` itself.
fn percent_encode(text: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
