//! CORS, as Envoy's filter does it: preflights from allowed origins are
//! answered here; other responses to allowed origins get the CORS headers.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};

use super::Body;
use super::route::value_matches;
use crate::config::CorsPolicy;

/// The request's origin, when the policy allows it.
pub fn allowed_origin(policy: &CorsPolicy, request: &Parts) -> Option<HeaderValue> {
    let origin = request.headers.get(header::ORIGIN)?;
    let text = origin.to_str().ok()?;
    policy
        .allow_origins
        .iter()
        .any(|m| value_matches(m, text))
        .then(|| origin.clone())
}

/// Whether the request is a CORS preflight.
pub fn is_preflight(request: &Parts) -> bool {
    request.method == Method::OPTIONS
        && request.headers.contains_key(header::ORIGIN)
        && request
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight from an allowed origin.
pub fn preflight_reply(
    policy: &CorsPolicy,
    origin: HeaderValue,
    reply: Response<Body>,
) -> Response<Body> {
    let mut response = reply;
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_METHODS, &policy.allow_methods),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, &policy.allow_headers),
        (header::ACCESS_CONTROL_MAX_AGE, &policy.max_age),
    ] {
        set(headers, name, value);
    }
    if policy.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Adds the CORS headers to a response for an allowed origin.
pub fn decorate(policy: &CorsPolicy, origin: HeaderValue, headers: &mut HeaderMap) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    set(
        headers,
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        &policy.expose_headers,
    );
    if policy.allow_credentials {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value)
        && !value.is_empty()
    {
        headers.insert(name, value);
    }
}
