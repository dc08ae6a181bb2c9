//! A request put to a gRPC authorizer: `CheckRequest` with the
//! connection's peers and the request (id, method, path, host, scheme,
//! protocol, size, the headers `allowed_headers` lets through, with
//! pseudo-headers, and the body when it is sent), and the verdict of its
//! `CheckResponse`. An OK status allows, with `ok_response`'s
//! `headers` (replacing the request's, or appended to them when
//! `append` is true), `headers_to_remove` and `response_headers_to_add`;
//! any other denies, with `denied_response`'s status (403 when unset),
//! headers and body; `error_response` is an error. Query parameter
//! changes and dynamic metadata in the answer are not applied.

use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    attribute_context, check_response,
};
use envoy_types::pb::google::protobuf::Timestamp;
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};

use super::body::Sent;
use super::{Allowance, AskError, Verdict, peer};
use crate::config::{ExtAuthz, any_matches};
use crate::lb::Downstream;
use crate::tls::DownstreamTls;
use crate::upstream::Upstream;

/// Asks the authorizer at `cluster` about the request.
pub async fn ask(
    filter: &ExtAuthz,
    upstream: Option<&Upstream>,
    cluster: &str,
    parts: &Parts,
    sent: Option<&Sent>,
) -> Result<Verdict, AskError> {
    let request = check_request(filter, parts, sent);
    let answer = super::check(upstream, cluster, &request, filter.timeout).await?;
    verdict(answer)
}

/// The `CheckRequest` for a request.
pub fn check_request(filter: &ExtAuthz, parts: &Parts, sent: Option<&Sent>) -> CheckRequest {
    let downstream = parts
        .extensions
        .get::<Downstream>()
        .copied()
        .unwrap_or(Downstream::UNKNOWN);
    let tls = parts.extensions.get::<DownstreamTls>();
    let text = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut http = attribute_context::HttpRequest {
        id: text("x-request-id"),
        method: parts.method.to_string(),
        headers: headers(filter, parts, sent),
        path: path(parts),
        host: crate::http::proxy::request_authority(parts)
            .unwrap_or_default()
            .to_owned(),
        scheme: scheme(parts).into(),
        size: text("content-length").parse().unwrap_or(-1),
        protocol: protocol(parts.version).into(),
        ..attribute_context::HttpRequest::default()
    };
    if let (Some(sent), Some(buffer)) = (sent, filter.with_request_body) {
        if buffer.pack_as_bytes {
            http.raw_body = sent.bytes.to_vec();
        } else {
            http.body = String::from_utf8_lossy(&sent.bytes).into_owned();
        }
    }
    let principal = tls.and_then(|t| t.peer_uri_san.as_deref());
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(downstream.remote, principal)),
            destination: Some(peer(downstream.local, None)),
            request: Some(attribute_context::Request {
                time: Some(now()),
                http: Some(http),
            }),
            ..AttributeContext::default()
        }),
    }
}

/// The request's headers the authorizer may see, repeated ones joined
/// with commas, with the pseudo-headers Envoy shows it.
fn headers(
    filter: &ExtAuthz,
    parts: &Parts,
    sent: Option<&Sent>,
) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if !filter.allowed_headers.is_empty() && !any_matches(&filter.allowed_headers, name) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        map.entry(name.to_owned())
            .and_modify(|joined: &mut String| {
                joined.push(',');
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let authority = crate::http::proxy::request_authority(parts).unwrap_or_default();
    map.insert(":authority".into(), authority.to_owned());
    map.insert(":method".into(), parts.method.to_string());
    map.insert(":path".into(), path(parts));
    map.insert(":scheme".into(), scheme(parts).into());
    if let Some(sent) = sent {
        map.insert(PARTIAL_BODY.into(), sent.partial.to_string());
    }
    map
}

/// Tells the authorizer whether it got the whole body.
pub(super) const PARTIAL_BODY: &str = "x-envoy-auth-partial-body";

pub(super) fn path(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".into(), |p| p.as_str().to_owned())
}

fn scheme(parts: &Parts) -> &'static str {
    if parts.extensions.get::<DownstreamTls>().is_some() {
        "https"
    } else {
        "http"
    }
}

fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

fn now() -> Timestamp {
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}

/// What a `CheckResponse` decides.
pub fn verdict(answer: CheckResponse) -> Result<Verdict, AskError> {
    use check_response::HttpResponse as R;
    let ok = answer.status.as_ref().is_none_or(|s| s.code == 0);
    match (ok, answer.http_response) {
        (_, Some(R::ErrorResponse(error))) => Err(AskError::Failed(status_or_403(&error))),
        (true, Some(R::OkResponse(ok))) => Ok(Verdict::Allow(allowance(ok))),
        (true, _) => Ok(Verdict::Allow(Allowance::default())),
        (false, Some(R::DeniedResponse(denied))) => Ok(Verdict::Deny {
            status: status_or_403(&denied),
            headers: header_map(&denied.headers),
            body: denied.body.into(),
        }),
        (false, _) => Ok(Verdict::Deny {
            status: StatusCode::FORBIDDEN,
            headers: HeaderMap::new(),
            body: bytes::Bytes::new(),
        }),
    }
}

fn allowance(ok: OkHttpResponse) -> Allowance {
    Allowance {
        upstream: ok.headers.iter().filter_map(option).collect(),
        remove: ok
            .headers_to_remove
            .iter()
            .filter_map(|name| HeaderName::try_from(name.as_str()).ok())
            .collect(),
        response: header_map(&ok.response_headers_to_add),
    }
}

fn status_or_403(response: &DeniedHttpResponse) -> StatusCode {
    response
        .status
        .as_ref()
        .and_then(|s| u16::try_from(s.code).ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .filter(|code| code.as_u16() >= 200)
        .unwrap_or(StatusCode::FORBIDDEN)
}

/// A header and whether to append it rather than replace: in this
/// message `append` is false unless set, as Envoy documents it (the
/// deprecated field is the one authorizers set here).
#[allow(deprecated)]
fn option(option: &HeaderValueOption) -> Option<(HeaderName, HeaderValue, bool)> {
    let header = option.header.as_ref()?;
    let name = HeaderName::try_from(header.key.as_str()).ok()?;
    let bytes = if header.raw_value.is_empty() {
        header.value.as_bytes()
    } else {
        &header.raw_value
    };
    let value = HeaderValue::from_bytes(bytes).ok()?;
    let append = option.append.as_ref().is_some_and(|a| a.value);
    Some((name, value, append))
}

fn header_map(options: &[HeaderValueOption]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value, append) in options.iter().filter_map(option) {
        if append {
            map.append(name, value);
        } else {
            map.insert(name, value);
        }
    }
    map
}
