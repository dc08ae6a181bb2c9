//! One request: route it, then forward it to a cluster or answer locally.
//! Every failure answers the client with a status and a short body, and is
//! counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::{Body, route};
use crate::config::{Action, Forward, HttpManager, PathMatch, Redirect};
use crate::stats::ListenerStats;
use crate::upstream::Upstreams;

/// What a listener's HTTP requests need.
#[derive(Debug)]
pub struct HttpState {
    pub manager: Arc<HttpManager>,
    pub upstreams: Arc<Upstreams>,
    pub stats: ListenerStats,
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers that belong to one hop and are not forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub async fn handle(state: Arc<HttpState>, request: Request<Incoming>) -> Response<Body> {
    state.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(&REQUEST_ID) {
        parts.headers.insert(REQUEST_ID.clone(), new_request_id());
    }
    let Some(route) = route::select(&state.manager.routes, &parts) else {
        state.stats.rq_no_route.fetch_add(1, Ordering::Relaxed);
        return local_reply(StatusCode::NOT_FOUND, "route not found");
    };
    match &route.action {
        Action::DirectResponse { status, body } => reply(*status, body.clone()),
        Action::Redirect(redirect) => redirect_reply(redirect, &parts),
        Action::Forward(forward_to) => {
            forward(&state, &route.matcher.path, forward_to, parts, body).await
        }
    }
}

async fn forward(
    state: &HttpState,
    matched: &PathMatch,
    to: &Forward,
    mut parts: http::request::Parts,
    body: Incoming,
) -> Response<Body> {
    let cluster = pick_weighted(&to.clusters);
    let Some(upstream) = state.upstreams.get(cluster) else {
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no cluster");
    };
    let Some(pick) = upstream.balancer.pick() else {
        upstream.stats.response(503);
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream");
    };
    let authority = original_authority(&parts);
    let path = rewrite_path(&parts.uri, matched, to.prefix_rewrite.as_deref());
    let target = format!("http://{}{path}", pick.endpoint().address);
    parts.uri = match target.parse::<Uri>() {
        Ok(uri) => uri,
        Err(_) => return local_reply(StatusCode::BAD_REQUEST, "invalid path"),
    };
    strip_hop_by_hop(&mut parts.headers);
    let host = to.host_rewrite.as_deref().or(authority.as_deref());
    if let Some(value) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
        parts.headers.insert(header::HOST, value);
    }
    parts.version = Version::HTTP_11;
    let request = Request::from_parts(parts, body);

    let sent = upstream.client.request(request);
    let outcome = match to.timeout {
        Some(limit) => tokio::time::timeout(limit, sent).await.ok(),
        None => Some(sent.await),
    };
    let response = match outcome {
        None => {
            upstream.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
            upstream.stats.response(504);
            return local_reply(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout");
        }
        Some(Err(err)) => {
            if err.is_connect() {
                upstream
                    .stats
                    .cx_connect_fail
                    .fetch_add(1, Ordering::Relaxed);
            }
            upstream.stats.response(503);
            tracing::debug!(cluster, error = %err, "upstream request failed");
            return local_reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream connect error or disconnect/reset before headers",
            );
        }
        Some(Ok(response)) => response,
    };
    upstream.stats.response(response.status().as_u16());
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The pick lives until the response body is done, so least-request sees it.
    let body = body.map_frame(move |frame| {
        let _in_flight = &pick;
        frame
    });
    Response::from_parts(parts, body.boxed())
}

/// A cluster chosen by weight.
fn pick_weighted(clusters: &[(String, u32)]) -> &str {
    if let [(only, _)] = clusters {
        return only;
    }
    let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut ticket = fastrand::u64(..total.max(1));
    for (name, weight) in clusters {
        if ticket < u64::from(*weight) {
            return name;
        }
        ticket -= u64::from(*weight);
    }
    &clusters[clusters.len() - 1].0
}

/// The authority the client asked for (HTTP/2 `:authority` or the Host header).
fn original_authority(parts: &http::request::Parts) -> Option<String> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)?
                .to_str()
                .ok()
                .map(str::to_owned)
        })
}

/// The path and query to send upstream, with the matched prefix replaced.
fn rewrite_path(uri: &Uri, matched: &PathMatch, prefix_rewrite: Option<&str>) -> String {
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let matched_len = match matched {
        PathMatch::Prefix(prefix) => prefix.len(),
        PathMatch::Exact(exact) => exact.len(),
        // Envoy does not allow prefix_rewrite with a regex match.
        PathMatch::Regex(_) => return path_and_query.to_owned(),
    };
    match prefix_rewrite {
        Some(replacement) if path_and_query.len() >= matched_len => {
            format!("{replacement}{}", &path_and_query[matched_len..])
        }
        _ => path_and_query.to_owned(),
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn redirect_reply(redirect: &Redirect, parts: &http::request::Parts) -> Response<Body> {
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let authority = original_authority(parts).unwrap_or_default();
    let host = redirect
        .host
        .as_deref()
        .unwrap_or_else(|| authority.split(':').next().unwrap_or_default());
    let port = redirect.port.map(|p| format!(":{p}")).unwrap_or_default();
    let path = match (&redirect.path, &redirect.prefix_rewrite) {
        (Some(path), _) => path.clone(),
        (None, Some(prefix)) => format!("{prefix}{}", parts.uri.path().trim_start_matches('/')),
        (None, None) => parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.as_str().to_owned()),
    };
    let location = format!("{scheme}://{host}{port}{path}");
    let mut response = reply(redirect.status, Bytes::new());
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A response made by the proxy itself, with a short text body.
pub fn local_reply(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = reply(status, Bytes::from_static(text.as_bytes()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn reply(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    response
}

/// A random version-4 UUID, as Envoy generates for `x-request-id`.
fn new_request_id() -> HeaderValue {
    let bits = fastrand::u128(..) & !(0xf << 76) | (0x4 << 76);
    let bits = bits & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    HeaderValue::from_str(&id).expect("hex is a valid header value")
}
