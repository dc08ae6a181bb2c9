//! One request: route it, then forward it to a cluster or answer locally.
//! Every failure answers the client with a status and a short body (for a
//! gRPC client, a gRPC status: see [`super::grpc`]), and is counted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use super::info::{ResponseFlags, ResponseInfo};
use super::{Body, access, access_log, cors, fault, forward, grpc, route};
use crate::config::{Action, DynamicMetadata, HttpManager, Redirect, Route, VirtualHost};
use crate::stats::ListenerStats;
use crate::telemetry::HttpTelemetry;
use crate::telemetry::spans::HttpTracing;
use crate::upstream::Upstreams;

/// What a listener's HTTP requests need.
#[derive(Debug)]
pub struct HttpState {
    pub manager: Arc<HttpManager>,
    pub upstreams: Arc<Upstreams>,
    /// Shared with the states that replace this one, so that counts go on.
    pub stats: Arc<ListenerStats>,
    /// Where finished requests are logged; usually none.
    pub access_logs: Arc<[access_log::AccessLogger]>,
    /// Istio's peer metadata exchange and standard metrics, when configured.
    pub telemetry: Option<HttpTelemetry>,
    /// Trace spans, when the connection manager has `tracing`.
    pub tracing: Option<Arc<HttpTracing>>,
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn handle(state: Arc<HttpState>, request: Request<Incoming>) -> Response<Body> {
    state.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(&REQUEST_ID) {
        parts.headers.insert(REQUEST_ID.clone(), new_request_id());
    }
    super::client_cert::forward(state.manager.client_cert.mode, &mut parts);
    let span = state
        .tracing
        .as_ref()
        .map(|tracing| tracing.start(&mut parts));
    let telemetry = state
        .telemetry
        .as_ref()
        .map(|telemetry| (telemetry, telemetry.request(&mut parts)));
    let record = (!state.access_logs.is_empty()).then(|| access_log::Record::start(&parts));
    let grpc = grpc::is_request(&parts.headers);
    let mut response = respond(&state, parts, body).await;
    if grpc {
        response = grpc::local_reply(response);
    }
    if let Some((telemetry, start)) = telemetry {
        response = telemetry.response(start, response);
    }
    if let (Some(tracing), Some(span)) = (&state.tracing, span) {
        response = tracing.finish(span, response);
    }
    match record {
        Some(record) => access_log::log_when_done(record, response, Arc::clone(&state.access_logs)),
        None => response,
    }
}

async fn respond(state: &HttpState, mut parts: Parts, body: Incoming) -> Response<Body> {
    let verdict = access::check(state, &mut parts, body.boxed()).await;
    // Only access logs read the metadata once the filters are done.
    let metadata = (!state.access_logs.is_empty())
        .then(|| parts.extensions.get::<DynamicMetadata>().cloned())
        .flatten()
        .map(Arc::new);
    let mut response = match verdict {
        access::Verdict::Refused(refusal) => refusal,
        access::Verdict::Pass { body, response } => {
            let mut answer = faulted_or_routed(state, parts, body).await;
            answer.headers_mut().extend(response);
            answer
        }
    };
    if metadata.is_some() {
        response
            .extensions_mut()
            .get_or_insert_default::<ResponseInfo>()
            .metadata = metadata;
    }
    response
}

async fn faulted_or_routed(state: &HttpState, parts: Parts, body: Body) -> Response<Body> {
    let selected = route::select(&state.manager.routes, &parts);
    let fault = fault::for_request(&state.manager, selected.map(|(_, route)| route));
    let injected = fault::inject(fault, &state.stats).await;
    let mut response = match injected.abort {
        Some(aborted) => aborted,
        None => routed(state, selected, parts, body).await,
    };
    if injected.flags != ResponseFlags::NONE {
        let info = response
            .extensions_mut()
            .get_or_insert_default::<ResponseInfo>();
        info.flags = info.flags.with(injected.flags);
    }
    response
}

async fn routed(
    state: &HttpState,
    selected: Option<(&VirtualHost, &Route)>,
    mut parts: Parts,
    body: Body,
) -> Response<Body> {
    let Some((vhost, route)) = selected else {
        state.stats.rq_no_route.fetch_add(1, Ordering::Relaxed);
        return local_reply(StatusCode::NOT_FOUND, "route not found", ResponseFlags::NR);
    };
    // The most specific level first, as Envoy applies them by default.
    let levels = [
        &route.headers,
        &vhost.headers,
        &state.manager.routes.headers,
    ];
    for level in levels {
        level.apply_request(&mut parts.headers);
    }
    let cors = route.cors.as_ref().filter(|_| state.manager.cors);
    let origin = cors.and_then(|policy| cors::allowed_origin(policy, &parts));
    if let (Some(policy), Some(origin)) = (cors, &origin)
        && cors::is_preflight(&parts)
    {
        return cors::preflight_reply(policy, origin.clone(), reply(StatusCode::OK, Bytes::new()));
    }
    if let Some(policy) = cors
        && origin.is_none()
        && !policy.forward_not_matching_preflights
        && cors::is_preflight(&parts)
    {
        // Answered here, without CORS headers: the browser refuses the call.
        return reply(StatusCode::OK, Bytes::new());
    }
    let mut response = match &route.action {
        Action::DirectResponse { status, body } => made_here(*status, body.clone()),
        Action::Redirect(redirect) => redirect_reply(redirect, &parts),
        Action::Forward(forward_to) => {
            forward::forward(state, &route.matcher.path, forward_to, parts, body).await
        }
    };
    for level in levels {
        level.apply_response(response.headers_mut());
    }
    if let (Some(policy), Some(origin)) = (cors, origin) {
        cors::decorate(policy, origin, response.headers_mut());
    }
    if let Some(operation) = route.operation.as_ref().filter(|_| state.tracing.is_some()) {
        response
            .extensions_mut()
            .get_or_insert_default::<ResponseInfo>()
            .operation = Some(Arc::clone(operation));
    }
    response
}

/// The authority the client asked for (HTTP/2 `:authority` or the Host header).
pub(crate) fn request_authority(parts: &http::request::Parts) -> Option<&str> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
}

/// `host:port` without the port; an IPv6 literal keeps its brackets, and a
/// bare IPv6 address stays whole.
pub(crate) fn strip_port(authority: &str) -> &str {
    if let Some(end) = authority.strip_prefix('[').and_then(|h| h.find(']')) {
        return &authority[..end + 2];
    }
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !host.contains(':') =>
        {
            host
        }
        _ => authority,
    }
}

fn redirect_reply(redirect: &Redirect, parts: &http::request::Parts) -> Response<Body> {
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let authority = request_authority(parts).unwrap_or_default();
    let host = redirect
        .host
        .as_deref()
        .unwrap_or_else(|| strip_port(authority));
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
    let mut response = made_here(redirect.status, Bytes::new());
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A response made by the proxy itself, with a short text body.
pub fn local_reply(status: StatusCode, text: &'static str, flags: ResponseFlags) -> Response<Body> {
    let mut response = made_here(status, Bytes::from_static(text.as_bytes()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Some(info) = response.extensions_mut().get_mut::<ResponseInfo>() {
        info.flags = flags;
    }
    response
}

/// A reply of the proxy's own (a local reply, a `direct_response`, a
/// redirect), marked so that a gRPC client gets it as a gRPC status.
fn made_here(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = reply(status, body.clone());
    response.extensions_mut().insert(ResponseInfo {
        local_reply: Some(body),
        ..ResponseInfo::default()
    });
    response
}

pub(crate) fn reply(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    response
}

/// A body of these bytes, all at once.
pub(crate) fn full_body(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A random version-4 UUID, as Envoy generates for `x-request-id`,
/// written straight into its 36 bytes.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..) & !(0xf << 76) | (0x4 << 76);
    let bits = bits & !(0x3 << 62) | (0x2 << 62);
    let mut id = [b'-'; 36];
    let (mut at, mut shift) = (0, 128);
    for len in [8, 4, 4, 4, 12] {
        for digit in &mut id[at..at + len] {
            shift -= 4;
            *digit = HEX[(bits >> shift & 0xf) as usize];
        }
        at += len + 1;
    }
    HeaderValue::from_bytes(&id).expect("hex is a valid header value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_come_off_authorities() {
        use super::strip_port;
        assert_eq!(strip_port("reviews:9080"), "reviews");
        assert_eq!(strip_port("reviews"), "reviews");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("host:"), "host:");
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        assert_ne!(a, b);
        let id = a.to_str().unwrap();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()));
        assert!(groups[2].starts_with('4'), "{id}");
        assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
    }
}
