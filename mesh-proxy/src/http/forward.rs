//! Forwarding a request to a cluster: circuit breakers, endpoint choice,
//! timeouts and retries. A request body is replayed on retry only when it
//! was small enough to buffer; a streamed body is never sent twice.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;

use super::info::{ResponseFlags, ResponseInfo};
use super::proxy::{HttpState, local_reply};
use super::{Body, mirror, upgrade};
use crate::config::{Forward, PathMatch, RegexRewrite, RetryPolicy};
use crate::lb::{Pick, RequestHash};
use crate::telemetry::HttpTelemetry;
use crate::tls::ConnectError;
use crate::upstream::{ConnectFailure, PooledBody, SendError, Upstream};

/// Bodies up to this size are buffered so that a retry can send them again.
const MAX_BUFFERED_BODY: u64 = 64 * 1024;

/// Headers that belong to one hop and are not forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

pub async fn forward(
    state: &HttpState,
    matched: &PathMatch,
    to: &Forward,
    parts: Parts,
    body: Body,
) -> Response<Body> {
    let cluster = crate::lb::by_weight(&to.clusters);
    let Some(upstream) = state.upstreams.get(cluster) else {
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "no cluster",
            ResponseFlags::NC,
        );
    };
    let mut response = forward_to(state, upstream, matched, to, parts, body).await;
    let info = response
        .extensions_mut()
        .get_or_insert_default::<ResponseInfo>();
    info.cluster = Some(Arc::clone(&upstream.name));
    info.service.clone_from(&upstream.service);
    response
}

async fn forward_to(
    state: &HttpState,
    upstream: &Upstream,
    matched: &PathMatch,
    to: &Forward,
    mut parts: Parts,
    body: Body,
) -> Response<Body> {
    let Some(_admitted) = upstream.admit() else {
        upstream.stats.response(503);
        return local_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream overflow",
            ResponseFlags::UO,
        );
    };
    let host = upstream_host(to, &parts);
    let hash = RequestHash::new(&to.hash_policy, &parts);
    let path_and_query = match &to.regex_rewrite {
        Some(rewrite) => regex_rewrite_path(&parts.uri, rewrite),
        None => rewrite_path(&parts.uri, matched, to.prefix_rewrite.as_deref()),
    };
    let upgrade_to = upgrade_protocol(state, &parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    if let Some(value) = host {
        parts.headers.insert(header::HOST, value);
    }
    if let Some(telemetry) = &state.telemetry {
        telemetry.upstream_request(&mut parts.headers);
    }
    parts.version = if upstream.cluster.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    if let Some(protocol) = upgrade_to {
        // Boxed: rare, and large enough to weigh on every request's future.
        let upgraded = upgrade::forward(upstream, parts, protocol, path_and_query.as_str(), body);
        return Box::pin(upgraded).await;
    }
    let retry = to.retry.as_ref().filter(|r| r.num_retries > 0);
    let body = if retry.is_some() || !to.mirrors.is_empty() {
        RequestBody::buffer(body).await
    } else {
        RequestBody::Streamed(Some(body))
    };
    if let RequestBody::Buffered(bytes) = &body {
        mirror::send_copies(
            &state.upstreams,
            &to.mirrors,
            &parts,
            path_and_query.as_str(),
            bytes,
        );
    }
    let attempts = Attempts {
        upstream,
        parts,
        path_and_query,
        body,
        retry,
        hash,
        telemetry: state.telemetry.as_ref(),
    };
    let (limit, stream) = to.timeout.for_request(&attempts.parts.headers);
    match limit {
        Some(limit) => match tokio::time::timeout(limit, attempts.run()).await {
            Ok(response) => response,
            Err(_) if stream => stream_timed_out(state),
            Err(_) => timed_out(upstream),
        },
        None => attempts.run().await,
    }
}

enum RequestBody {
    Buffered(Bytes),
    /// Taken by the first attempt.
    Streamed(Option<Body>),
}

impl RequestBody {
    /// Buffers bodies known to be small; larger or unknown ones stay streamed.
    async fn buffer(body: Body) -> RequestBody {
        if body.is_end_stream() {
            return RequestBody::Buffered(Bytes::new());
        }
        match body.size_hint().exact() {
            Some(len) if len <= MAX_BUFFERED_BODY => match body.collect().await {
                Ok(collected) => RequestBody::Buffered(collected.to_bytes()),
                // The client went away mid-body; the attempt will fail on an empty stream.
                Err(_) => RequestBody::Streamed(None),
            },
            _ => RequestBody::Streamed(Some(body)),
        }
    }

    fn next(&mut self) -> Option<Body> {
        match self {
            RequestBody::Buffered(bytes) => Some(
                Full::new(bytes.clone())
                    .map_err(|never| match never {})
                    .boxed(),
            ),
            RequestBody::Streamed(body) => body.take(),
        }
    }
}

struct Attempts<'a> {
    upstream: &'a Upstream,
    parts: Parts,
    path_and_query: PathAndQuery,
    body: RequestBody,
    retry: Option<&'a RetryPolicy>,
    hash: RequestHash,
    telemetry: Option<&'a HttpTelemetry>,
}

/// How one attempt ended.
enum Outcome {
    Answered(Response<PooledBody>, Pick),
    /// With the TLS handshake's failure, when that was the cause.
    ConnectFailed(Option<Arc<str>>),
    Reset,
    TimedOut,
}

impl Attempts<'_> {
    async fn run(mut self) -> Response<Body> {
        let retries = self.retry.map_or(0, |r| r.num_retries);
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut attempt = 0;
        loop {
            let outcome = self.attempt(&tried).await;
            let Some((outcome, endpoint)) = outcome else {
                self.upstream.stats.response(503);
                return local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no healthy upstream",
                    ResponseFlags::UH,
                );
            };
            let retry_wanted = attempt < retries
                && self
                    .retry
                    .is_some_and(|policy| wants_retry(policy, &outcome));
            let replayable = matches!(self.body, RequestBody::Buffered(_));
            if !(retry_wanted && replayable) {
                return self.finish(outcome);
            }
            let Some(_retrying) = self.upstream.admit_retry() else {
                return self.finish(outcome);
            };
            // Kept only for retries, so that a request without one allocates nothing.
            tried.push(endpoint);
            attempt += 1;
            self.upstream.stats.rq_retry.fetch_add(1, Ordering::Relaxed);
            if let Outcome::Answered(response, _) = &outcome {
                self.upstream.stats.response(response.status().as_u16());
            }
            drop(outcome);
            let policy = self.retry.expect("a retry was wanted");
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
    }

    /// One try at one endpoint; `None` when the cluster has no endpoint.
    async fn attempt(&mut self, tried: &[SocketAddr]) -> Option<(Outcome, SocketAddr)> {
        let pick = self.pick(tried)?;
        let endpoint = pick.endpoint().address;
        // Without retries there is one attempt, which may have the request's
        // head instead of a copy.
        let mut parts = match self.retry {
            Some(_) => self.parts.clone(),
            None => std::mem::replace(&mut self.parts, Request::new(()).into_parts().0),
        };
        parts.uri = Uri::from(self.path_and_query.clone());
        let Some(body) = self.body.next() else {
            return Some((Outcome::Reset, endpoint));
        };
        let sent = self
            .upstream
            .pool
            .send(&pick, Request::from_parts(parts, body));
        let per_try = self.retry.and_then(|r| r.per_try_timeout);
        let result = match per_try {
            Some(limit) => tokio::time::timeout(limit, sent).await.ok(),
            None => Some(sent.await),
        };
        // For outlier detection, as Envoy maps them: a failure to connect or
        // a reset is a 503, a per-try timeout a 504.
        pick.report(match &result {
            None => 504,
            Some(Ok(response)) => response.status().as_u16(),
            Some(Err(_)) => 503,
        });
        let outcome = match result {
            None => Outcome::TimedOut,
            Some(Ok(response)) => Outcome::Answered(response, pick),
            Some(Err(err)) if err.is_connect() => {
                tracing::debug!(cluster = %self.upstream.cluster.name, error = %err, "upstream connect failed");
                Outcome::ConnectFailed(transport_failure(&err))
            }
            Some(Err(err)) => {
                tracing::debug!(cluster = %self.upstream.cluster.name, error = %err, "upstream reset");
                Outcome::Reset
            }
        };
        Some((outcome, endpoint))
    }

    /// An endpoint, avoiding those already tried when the policy says so.
    fn pick(&self, tried: &[SocketAddr]) -> Option<Pick> {
        let pick = |attempt| {
            self.upstream
                .pick_hashed(&self.parts, self.hash.key, attempt)
        };
        let mut picked = pick(0)?;
        if let Some(policy) = self.retry.filter(|r| r.other_hosts) {
            for attempt in 1..policy.host_selection_attempts {
                if !tried.contains(&picked.endpoint().address) {
                    break;
                }
                picked = pick(attempt)?;
            }
        }
        Some(picked)
    }

    fn finish(self, outcome: Outcome) -> Response<Body> {
        let stats = &self.upstream.stats;
        match outcome {
            Outcome::Answered(response, pick) => {
                stats.response(response.status().as_u16());
                let (mut parts, body) = response.into_parts();
                let upstream_peer = self
                    .telemetry
                    .and_then(|t| t.upstream_response(&mut parts.headers));
                parts.extensions.insert(ResponseInfo {
                    upstream_host: Some(pick.endpoint().address),
                    upstream_peer,
                    ..ResponseInfo::default()
                });
                strip_hop_by_hop(&mut parts.headers);
                for cookie in &self.hash.set_cookies {
                    parts.headers.append(header::SET_COOKIE, cookie.clone());
                }
                // The pick lives until the body is done, so least-request sees it.
                let body = body.map_frame(move |frame| {
                    let _in_flight = &pick;
                    frame
                });
                Response::from_parts(parts, body.boxed())
            }
            Outcome::TimedOut => timed_out(self.upstream),
            Outcome::ConnectFailed(_) | Outcome::Reset => {
                stats.response(503);
                let (flag, reason) = match outcome {
                    Outcome::ConnectFailed(reason) => (ResponseFlags::UF, reason),
                    _ => (ResponseFlags::UC, None),
                };
                let mut reply = local_reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream connect error or disconnect/reset before headers",
                    flag,
                );
                if let Some(info) = reply.extensions_mut().get_mut::<ResponseInfo>() {
                    info.transport_failure = reason;
                }
                reply
            }
        }
    }
}

fn wants_retry(policy: &RetryPolicy, outcome: &Outcome) -> bool {
    let on = &policy.on;
    match outcome {
        Outcome::Answered(response, _) => {
            let grpc = response
                .headers()
                .get(&GRPC_STATUS)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            policy.retries_status(response.status().as_u16(), grpc)
        }
        Outcome::ConnectFailed(_) => {
            on.connect_failure || on.reset || on.server_error || on.gateway_error
        }
        Outcome::Reset => on.reset || on.server_error || on.gateway_error,
        // Envoy treats a per-try timeout like a 504 from upstream.
        Outcome::TimedOut => on.server_error || on.gateway_error,
    }
}

/// The TLS handshake failure behind a connect error, if that was the cause.
fn transport_failure(err: &SendError) -> Option<Arc<str>> {
    match err {
        SendError::Connect(ConnectFailure::Connect(err)) => match &**err {
            ConnectError::Handshake(failure) => Some(Arc::from(failure.to_string())),
            _ => None,
        },
        _ => None,
    }
}

fn timed_out(upstream: &Upstream) -> Response<Body> {
    upstream.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
    upstream.stats.response(504);
    local_reply(
        StatusCode::GATEWAY_TIMEOUT,
        "upstream request timeout",
        ResponseFlags::UT,
    )
}

/// A request past the route's `max_stream_duration` (or its gRPC deadline
/// under it), answered as Envoy's connection manager answers it.
fn stream_timed_out(state: &HttpState) -> Response<Body> {
    state
        .stats
        .rq_max_duration_reached
        .fetch_add(1, Ordering::Relaxed);
    let mut reply = local_reply(
        StatusCode::GATEWAY_TIMEOUT,
        "downstream duration timeout",
        ResponseFlags::NONE,
    );
    if let Some(info) = reply.extensions_mut().get_mut::<ResponseInfo>() {
        info.local_grpc_status = Some(super::grpc::code::DEADLINE_EXCEEDED);
    }
    reply
}

/// The Host header to send upstream when it differs from the request's:
/// the route's rewrite, or the authority of an HTTP/2 or absolute-form
/// request. An HTTP/1.1 request's own Host header is kept as it is.
fn upstream_host(to: &Forward, parts: &Parts) -> Option<HeaderValue> {
    let host = match &to.host_rewrite {
        Some(rewrite) => rewrite.as_str(),
        None => parts.uri.authority()?.as_str(),
    };
    HeaderValue::from_str(host).ok()
}

/// The protocol a WebSocket-style upgrade asks for, when the listener allows it.
fn upgrade_protocol(state: &HttpState, headers: &HeaderMap) -> Option<HeaderValue> {
    if state.manager.websocket && upgrade::is_upgrade(headers) {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// The path and query to send upstream, with the matched prefix replaced.
/// Without a rewrite the request's own is shared, not copied.
fn rewrite_path(uri: &Uri, matched: &PathMatch, prefix_rewrite: Option<&str>) -> PathAndQuery {
    let original = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let matched_len = match matched {
        PathMatch::Prefix(prefix) => prefix.len(),
        PathMatch::Exact(exact) => exact.len(),
        // Envoy does not allow prefix_rewrite with a regex match.
        PathMatch::Regex(_) => return original,
    };
    match prefix_rewrite {
        Some(replacement) if original.as_str().len() >= matched_len => {
            let rewritten = format!("{replacement}{}", &original.as_str()[matched_len..]);
            rewritten.parse().unwrap_or(original)
        }
        _ => original,
    }
}

/// The path with every match of the rewrite's regex replaced; the query stays.
fn regex_rewrite_path(uri: &Uri, rewrite: &RegexRewrite) -> PathAndQuery {
    let path = rewrite
        .pattern
        .replace_all(uri.path(), rewrite.substitution.as_str());
    let rewritten = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    };
    rewritten
        .parse()
        .unwrap_or_else(|_| PathAndQuery::from_static("/"))
}

/// Removes hop-by-hop headers; `te: trailers` stays, as gRPC needs it.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none, and comparing a few names costs less than
    // hashing each of ours for a lookup.
    let hop = |name: &HeaderName| HOP_BY_HOP.contains(name) || name == header::TE;
    if !headers.keys().any(hop) {
        return;
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let keeps_trailers = headers
        .get(header::TE)
        .is_some_and(|te| te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !keeps_trailers {
        headers.remove(header::TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_rewrite_replaces_every_match_and_keeps_the_query() {
        let rewrite = RegexRewrite {
            pattern: regex::Regex::new("^/service/([^/]+)(/.*)$").unwrap(),
            substitution: "${2}/instance/${1}".into(),
        };
        let uri: Uri = "/service/foo/v1/api?x=1".parse().unwrap();
        assert_eq!(
            regex_rewrite_path(&uri, &rewrite),
            "/v1/api/instance/foo?x=1"
        );
    }

    #[test]
    fn prefix_rewrite_keeps_the_query() {
        let uri: Uri = "/api/v1/x?q=1".parse().unwrap();
        assert_eq!(
            rewrite_path(&uri, &PathMatch::Prefix("/api/".into()), Some("/")),
            "/v1/x?q=1"
        );
        assert_eq!(
            rewrite_path(&uri, &PathMatch::Prefix("/api/".into()), None),
            "/api/v1/x?q=1"
        );
    }

    #[test]
    fn te_trailers_survives_and_hop_headers_do_not() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        strip_hop_by_hop(&mut headers);
        assert!(headers.contains_key(header::TE) && !headers.contains_key(header::CONNECTION));
        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut headers);
        assert!(!headers.contains_key(header::TE));
    }
}
