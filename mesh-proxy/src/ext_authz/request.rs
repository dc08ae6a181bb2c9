//! The HTTP `ext_authz` filter on one request.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};

use super::body::{self, ReadError};
use super::{Allowance, AskError, Verdict, grpc, http_service};
use crate::config::{AuthzService, DynamicMetadata, ExtAuthz};
use crate::http::Body;
use crate::http::info::{ResponseFlags, ResponseInfo};
use crate::http::proxy::{HttpState, local_reply};

/// Marks a request let through because the authorizer could not be asked.
static FAILURE_MODE_ALLOWED: HeaderName =
    HeaderName::from_static("x-envoy-auth-failure-mode-allowed");

/// What the filter does with the request.
#[derive(Debug)]
pub enum Outcome {
    /// It goes on, with its body (whole, even when part of it was read),
    /// and these headers for the client's response.
    Allowed { body: Body, response: HeaderMap },
    /// The client gets this instead.
    Refused(Response<Body>),
}

/// Runs the filter: the request's headers change as the authorizer says.
pub async fn check(filter: &ExtAuthz, state: &HttpState, parts: &mut Parts, body: Body) -> Outcome {
    let stats = &state.stats.ext_authz;
    let metadata = parts.extensions.get::<DynamicMetadata>();
    if let Some(enabled) = &filter.enabled_when
        && !enabled.matches(metadata)
    {
        count(&stats.disabled);
        return Outcome::Allowed {
            body,
            response: HeaderMap::new(),
        };
    }
    let (sent, body) = match filter.with_request_body {
        Some(limit) => match body::read(body, limit).await {
            Ok((sent, body)) => (Some(sent), body),
            Err(ReadError::TooLarge) => {
                return Outcome::Refused(local_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Payload Too Large",
                    ResponseFlags::NONE,
                ));
            }
            Err(ReadError::Client(err)) => {
                tracing::debug!(error = %err, "the request body ended early");
                return Outcome::Refused(local_reply(
                    StatusCode::BAD_REQUEST,
                    "the request body ended early",
                    ResponseFlags::NONE,
                ));
            }
        },
        None => (None, body),
    };
    let cluster = filter.service.cluster();
    let upstream = state.upstreams.get(cluster).map(AsRef::as_ref);
    let asked = match &filter.service {
        AuthzService::Grpc { .. } => {
            grpc::ask(filter, upstream, cluster, parts, sent.as_ref()).await
        }
        AuthzService::Http(service) => {
            http_service::ask(filter, service, upstream, parts, sent.as_ref()).await
        }
    };
    match asked {
        Ok(Verdict::Allow(allowance)) => {
            count(&stats.ok);
            let response = apply(allowance, parts);
            Outcome::Allowed { body, response }
        }
        Ok(Verdict::Deny {
            status,
            headers,
            body,
        }) => {
            count(&stats.denied);
            Outcome::Refused(denial(status, headers, body))
        }
        Err(err) => failed(filter, state, parts, body, &err),
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The authorizer's changes to the request; the headers for the response.
fn apply(allowance: Allowance, parts: &mut Parts) -> HeaderMap {
    for (name, value, append) in allowance.upstream {
        if append {
            parts.headers.append(name, value);
        } else {
            parts.headers.insert(name, value);
        }
    }
    for name in allowance.remove {
        parts.headers.remove(name);
    }
    allowance.response
}

/// The authorizer's refusal, as the client gets it.
fn denial(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let mut response = crate::http::proxy::reply(status, body.clone());
    *response.headers_mut() = headers;
    response.extensions_mut().insert(ResponseInfo {
        flags: ResponseFlags::UAEX,
        local_reply: Some(body),
        ..ResponseInfo::default()
    });
    response
}

/// No answer: let the request through under `failure_mode_allow`, else
/// refuse it with `status_on_error`.
fn failed(
    filter: &ExtAuthz,
    state: &HttpState,
    parts: &mut Parts,
    body: Body,
    err: &AskError,
) -> Outcome {
    let stats = &state.stats.ext_authz;
    count(&stats.error);
    tracing::debug!(cluster = %filter.service.cluster(), error = %err, "external authorization failed");
    if !filter.failure_mode_allow {
        return Outcome::Refused(local_reply(filter.status_on_error, "", ResponseFlags::UAEX));
    }
    count(&stats.failure_mode_allowed);
    if filter.failure_mode_allow_header_add {
        parts.headers.insert(
            FAILURE_MODE_ALLOWED.clone(),
            HeaderValue::from_static("true"),
        );
    }
    Outcome::Allowed {
        body,
        response: HeaderMap::new(),
    }
}
