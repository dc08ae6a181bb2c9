//! `extensionProviders[].envoyExtAuthzHttp` and `envoyExtAuthzGrpc`: the
//! external authorizers AuthorizationPolicy's CUSTOM action names. Values
//! istiod would refuse when it builds the filter (a port out of range, an
//! unknown `statusOnError`, a `pathPrefix` without its `/`, a lone `*`
//! among header names) are refused here, naming the provider and field.

use std::collections::BTreeMap;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::FieldError;
use crate::model::{ExtAuthzKind, ExtAuthzProvider, HttpAuthorizer, RequestBodyInCheck};

/// Provider names go into RBAC policy names and metadata keys: istiod
/// wants them DNS labels.
const MAX_NAME_LEN: usize = 63;

/// `envoyExtAuthzHttp` or `envoyExtAuthzGrpc`: the gRPC one has no
/// field of its own, and none of the HTTP one's second half.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RawExtAuthz {
    service: String,
    port: u32,
    timeout: Option<mesh_api::Duration>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    status_on_error: String,
    include_request_body_in_check: Option<RawRequestBody>,
    #[serde(default)]
    path_prefix: String,
    #[serde(default)]
    include_request_headers_in_check: Vec<String>,
    /// Deprecated for `includeRequestHeadersInCheck`, used when it is not.
    #[serde(default)]
    include_headers_in_check: Vec<String>,
    #[serde(default)]
    include_additional_headers_in_check: BTreeMap<String, String>,
    #[serde(default)]
    headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    headers_to_downstream_on_deny: Vec<String>,
    #[serde(default)]
    headers_to_downstream_on_allow: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawRequestBody {
    #[serde(default)]
    max_request_bytes: u32,
    #[serde(default)]
    allow_partial_message: bool,
    #[serde(default)]
    pack_as_bytes: bool,
}

/// Where a provider's fields are, for errors: the path and the name.
pub(super) struct At<'a> {
    pub path: String,
    pub name: &'a str,
}

impl At<'_> {
    fn error(&self, field: &str, reason: impl std::fmt::Display) -> FieldError {
        (
            format!("{}.{field}", self.path),
            format!("provider {:?}: {reason}", self.name),
        )
    }
}

pub(super) fn http(raw: &RawExtAuthz, at: &At) -> Result<ExtAuthzProvider, FieldError> {
    let at = At {
        path: format!("{}.envoyExtAuthzHttp", at.path),
        name: at.name,
    };
    if !raw.path_prefix.is_empty() && !raw.path_prefix.starts_with('/') {
        return Err(at.error(
            "pathPrefix",
            format_args!("{:?} does not begin with /", raw.path_prefix),
        ));
    }
    if raw.path_prefix.contains(['?', '#', ' ']) {
        return Err(at.error(
            "pathPrefix",
            format_args!("{:?} is not a URL path", raw.path_prefix),
        ));
    }
    let request_headers = if raw.include_request_headers_in_check.is_empty() {
        headers(&raw.include_headers_in_check, "includeHeadersInCheck", &at)?
    } else {
        headers(
            &raw.include_request_headers_in_check,
            "includeRequestHeadersInCheck",
            &at,
        )?
    };
    for (name, value) in &raw.include_additional_headers_in_check {
        let field = format!("includeAdditionalHeadersInCheck.{name}");
        if HeaderName::try_from(name.as_str()).is_err() {
            return Err(at.error(&field, format_args!("{name:?} is not a header name")));
        }
        if HeaderValue::try_from(value.as_str()).is_err() {
            return Err(at.error(&field, format_args!("{value:?} is not a header value")));
        }
    }
    let http = HttpAuthorizer {
        path_prefix: raw.path_prefix.clone(),
        include_request_headers: request_headers,
        include_additional_headers: raw.include_additional_headers_in_check.clone(),
        headers_to_upstream_on_allow: headers(
            &raw.headers_to_upstream_on_allow,
            "headersToUpstreamOnAllow",
            &at,
        )?,
        headers_to_downstream_on_deny: headers(
            &raw.headers_to_downstream_on_deny,
            "headersToDownstreamOnDeny",
            &at,
        )?,
        headers_to_downstream_on_allow: headers(
            &raw.headers_to_downstream_on_allow,
            "headersToDownstreamOnAllow",
            &at,
        )?,
    };
    provider(raw, ExtAuthzKind::Http(http), &at)
}

pub(super) fn grpc(raw: &RawExtAuthz, at: &At) -> Result<ExtAuthzProvider, FieldError> {
    let at = At {
        path: format!("{}.envoyExtAuthzGrpc", at.path),
        name: at.name,
    };
    let http_only = [
        ("pathPrefix", !raw.path_prefix.is_empty()),
        (
            "includeRequestHeadersInCheck",
            !raw.include_request_headers_in_check.is_empty(),
        ),
        (
            "includeHeadersInCheck",
            !raw.include_headers_in_check.is_empty(),
        ),
        (
            "includeAdditionalHeadersInCheck",
            !raw.include_additional_headers_in_check.is_empty(),
        ),
        (
            "headersToUpstreamOnAllow",
            !raw.headers_to_upstream_on_allow.is_empty(),
        ),
        (
            "headersToDownstreamOnDeny",
            !raw.headers_to_downstream_on_deny.is_empty(),
        ),
        (
            "headersToDownstreamOnAllow",
            !raw.headers_to_downstream_on_allow.is_empty(),
        ),
    ];
    if let Some((field, _)) = http_only.iter().find(|(_, set)| *set) {
        return Err(at.error(field, "only envoyExtAuthzHttp has this field"));
    }
    provider(raw, ExtAuthzKind::Grpc, &at)
}

/// The fields both kinds of provider have, and `kind`.
fn provider(
    raw: &RawExtAuthz,
    kind: ExtAuthzKind,
    at: &At,
) -> Result<ExtAuthzProvider, FieldError> {
    Ok(ExtAuthzProvider {
        service: service(&raw.service, at)?,
        port: port(raw.port, at)?,
        timeout: timeout(raw.timeout, at)?,
        fail_open: raw.fail_open,
        status_on_error: status_on_error(&raw.status_on_error, at)?,
        include_request_body: request_body(raw.include_request_body_in_check.as_ref(), at)?,
        kind,
    })
}

/// A provider's name, as istiod accepts it: a DNS label.
pub(super) fn name(name: &str, at: &At) -> Result<(), FieldError> {
    let error = |reason: String| (format!("{}.name", at.path), reason);
    if name.is_empty() {
        return Err(error("a name is required".into()));
    }
    let label = name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !label {
        return Err(error(format!(
            "{name:?} is not a DNS label (lower-case letters, digits and -, at most {MAX_NAME_LEN})"
        )));
    }
    Ok(())
}

fn service(service: &str, at: &At) -> Result<String, FieldError> {
    let host = service.rsplit_once('/').map_or(service, |(_, host)| host);
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == ':') {
        return Err(at.error(
            "service",
            format_args!("{service:?} is not a host name or namespace/hostname"),
        ));
    }
    Ok(service.to_owned())
}

fn port(port: u32, at: &At) -> Result<u16, FieldError> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| at.error("port", format_args!("{port} is not between 1 and 65535")))
}

fn timeout(
    timeout: Option<mesh_api::Duration>,
    at: &At,
) -> Result<Option<std::time::Duration>, FieldError> {
    match timeout {
        Some(t) if t.is_zero() => Err(at.error("timeout", "must be above zero")),
        other => Ok(other.map(mesh_api::Duration::as_std)),
    }
}

/// An HTTP status to answer with, written as a number; empty is unset.
fn status_on_error(status: &str, at: &At) -> Result<Option<u16>, FieldError> {
    if status.is_empty() {
        return Ok(None);
    }
    let code = status
        .parse::<u16>()
        .ok()
        .and_then(|code| http::StatusCode::from_u16(code).ok())
        .filter(|code| code.as_u16() >= 200 && code.canonical_reason().is_some())
        .ok_or_else(|| {
            at.error(
                "statusOnError",
                format_args!("{status:?} is not an HTTP status to answer with"),
            )
        })?;
    Ok(Some(code.as_u16()))
}

fn request_body(
    raw: Option<&RawRequestBody>,
    at: &At,
) -> Result<Option<RequestBodyInCheck>, FieldError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if raw.max_request_bytes == 0 {
        return Err(at.error(
            "includeRequestBodyInCheck.maxRequestBytes",
            "must be above zero",
        ));
    }
    Ok(Some(RequestBodyInCheck {
        max_request_bytes: raw.max_request_bytes,
        allow_partial_message: raw.allow_partial_message,
        pack_as_bytes: raw.pack_as_bytes,
    }))
}

/// Header names, `prefix*` or `*suffix`; a lone `*` is refused, as
/// istiod refuses it.
fn headers(names: &[String], field: &str, at: &At) -> Result<Vec<String>, FieldError> {
    for (i, name) in names.iter().enumerate() {
        let bare = name
            .strip_prefix('*')
            .or_else(|| name.strip_suffix('*'))
            .unwrap_or(name);
        if name == "*" {
            return Err(at.error(
                &format!("{field}[{i}]"),
                "a lone \"*\" is not supported: use a prefix* or *suffix",
            ));
        }
        if HeaderName::try_from(bare).is_err() {
            return Err(at.error(
                &format!("{field}[{i}]"),
                format_args!("{name:?} is not a header name, prefix* or *suffix"),
            ));
        }
    }
    Ok(names.to_vec())
}
