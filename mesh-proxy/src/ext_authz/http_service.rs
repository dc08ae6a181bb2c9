//! A request put to a plain HTTP authorizer, as Envoy's `http_service`
//! does: the same method, `path_prefix` before the path, the request's
//! authority, and of its headers `authorization` and those
//! `allowed_headers` lets through, then `headers_to_add`; the body when
//! it is sent, else none. A 200 allows, with the headers
//! `allowed_upstream_headers` (replacing) and
//! `allowed_upstream_headers_to_append` pick for the upstream request and
//! those `allowed_client_headers_on_success` picks for the response; a
//! 5xx is an error; any other status denies, and the client gets that
//! status, the body, and the headers `allowed_client_headers` picks (all
//! but `host` when it picks none; `location`, `www-authenticate` and the
//! status otherwise too).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};

use super::body::Sent;
use super::grpc::{PARTIAL_BODY, path};
use super::{Allowance, AskError, Verdict};
use crate::config::{ExtAuthz, HttpService, NameMatch, any_matches};
use crate::upstream::Upstream;

/// Asks the authorizer at `service.cluster` about the request.
pub async fn ask(
    filter: &ExtAuthz,
    service: &HttpService,
    upstream: Option<&Upstream>,
    parts: &Parts,
    sent: Option<&Sent>,
) -> Result<Verdict, AskError> {
    let upstream = super::authorizer(upstream, &service.cluster)?;
    let call = call(filter, service, upstream, parts, sent);
    let (status, headers, body) = super::within(filter.timeout, call).await?;
    verdict(service, status, headers, body)
}

async fn call(
    filter: &ExtAuthz,
    service: &HttpService,
    upstream: &Upstream,
    parts: &Parts,
    sent: Option<&Sent>,
) -> Result<(StatusCode, HeaderMap, Bytes), AskError> {
    let pick = upstream
        .balancer
        .pick()
        .ok_or_else(|| AskError::NoEndpoint(service.cluster.clone()))?;
    let uri: Uri = format!("{}{}", service.path_prefix, path(parts))
        .parse()
        .map_err(http::Error::from)?;
    let body = sent.map_or_else(Bytes::new, |s| s.bytes.clone());
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(uri)
        .version(if upstream.cluster.http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        });
    let headers = request.headers_mut().expect("the builder has no error yet");
    *headers = request_headers(filter, service, parts, sent);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let request = request.body(Full::new(body).map_err(|never| match never {}).boxed())?;
    let response = upstream.pool.send(&pick, request).await;
    pick.report(response.as_ref().map_or(503, |r| r.status().as_u16()));
    let (answer, body) = response?.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok((answer.status, answer.headers, body))
}

/// The headers of the question: the request's authority, `authorization`
/// and the allowed headers, `headers_to_add`, and whether the body is cut.
fn request_headers(
    filter: &ExtAuthz,
    service: &HttpService,
    parts: &Parts,
    sent: Option<&Sent>,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let always = *name == header::AUTHORIZATION;
        if always || any_matches(&filter.allowed_headers, name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    // Hop-by-hop and length headers belong to the request as it was sent.
    for name in &FRAMING {
        headers.remove(name);
    }
    if let Some(authority) =
        crate::http::proxy::request_authority(parts).and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(header::HOST, authority);
    }
    for (name, value) in &service.headers_to_add {
        headers.insert(name.clone(), value.clone());
    }
    if let Some(sent) = sent {
        headers.insert(
            HeaderName::from_static(PARTIAL_BODY),
            HeaderValue::from_static(if sent.partial { "true" } else { "false" }),
        );
    }
    headers
}

/// What the authorizer's answer decides.
pub fn verdict(
    service: &HttpService,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Verdict, AskError> {
    if status.is_server_error() {
        return Err(AskError::Failed(status));
    }
    if status == StatusCode::OK {
        let pick = |patterns: &[NameMatch], append: bool| {
            picked(&headers, |name| any_matches(patterns, name))
                .map(|(name, value)| (name, value, append))
                .collect::<Vec<_>>()
        };
        let mut upstream = pick(&service.upstream_headers, false);
        upstream.extend(pick(&service.upstream_headers_to_append, true));
        let response = picked(&headers, |name| {
            any_matches(&service.client_headers_on_success, name)
        })
        .collect();
        return Ok(Verdict::Allow(Allowance {
            upstream,
            remove: Vec::new(),
            response,
        }));
    }
    let to_client = |name: &str| {
        if service.client_headers.is_empty() {
            return name != header::HOST.as_str();
        }
        [header::LOCATION, header::WWW_AUTHENTICATE]
            .iter()
            .any(|always| always.as_str() == name)
            || any_matches(&service.client_headers, name)
    };
    Ok(Verdict::Deny {
        status,
        headers: picked(&headers, to_client).collect(),
        body,
    })
}

/// Headers of one message's framing, never copied between the request, the
/// authorizer's exchange and the answer.
const FRAMING: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
];

/// The answer's headers `wanted` picks, but never those of its framing,
/// which the proxy's own answer sets.
fn picked<'a>(
    headers: &'a HeaderMap,
    wanted: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = (HeaderName, HeaderValue)> + 'a {
    headers
        .iter()
        .filter(move |(name, _)| !FRAMING.contains(name) && wanted(name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
}
