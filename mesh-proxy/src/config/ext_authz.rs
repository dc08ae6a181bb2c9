//! External authorization: `envoy.filters.http.ext_authz` and
//! `envoy.filters.network.ext_authz` ask an authorizer (a cluster) whether
//! a request or a connection may go on. The request-time side is
//! [`crate::ext_authz`].
//!
//! HTTP filter: `grpc_service` (`envoy.service.auth.v3.Authorization/Check`,
//! see [`super::grpc_service`]; `timeout` defaults to 200 ms as in Envoy)
//! or `http_service` (`server_uri.cluster` and `server_uri.timeout`,
//! `path_prefix`, `authorization_request.headers_to_add` (literal values),
//! `authorization_response.allowed_upstream_headers`,
//! `allowed_upstream_headers_to_append`, `allowed_client_headers`,
//! `allowed_client_headers_on_success`); `allowed_headers` (or the
//! deprecated `authorization_request.allowed_headers`), `failure_mode_allow`,
//! `failure_mode_allow_header_add`, `status_on_error` (403 by default),
//! `with_request_body` (`max_request_bytes`, `allow_partial_message`,
//! `pack_as_bytes`), `filter_enabled_metadata`, `clear_route_cache`
//! (always in effect: routes are chosen after the filter), `stat_prefix`
//! (counters are the connection manager's). Header name patterns may
//! ignore case. Everything else is refused by field, as is per-route
//! `ExtAuthzPerRoute`.
//!
//! Network filter: `grpc_service`, `failure_mode_allow`,
//! `filter_enabled_metadata` (read from the connection's metadata, which
//! the network RBAC filters before it write), `stat_prefix`.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{ApiVersion, HttpUri, http_uri};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    BufferSettings, ExtAuthz as EnvoyExtAuthz, HttpService as EnvoyHttpService, ext_authz::Services,
};
use envoy_types::pb::envoy::extensions::filters::network::ext_authz::v3::ExtAuthz as EnvoyNetworkExtAuthz;
use envoy_types::pb::envoy::r#type::matcher::v3::{ListStringMatcher, StringMatcher};
use envoy_types::pb::google::protobuf::Any;
use http::{HeaderName, HeaderValue, StatusCode};

use super::listener::decode;
use super::metadata::{self, MetadataMatch};
use super::{At, ConfigError, ValueMatch};

pub(super) const HTTP_FILTER_TYPE: &str = "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
pub(super) const NETWORK_FILTER_TYPE: &str =
    "envoy.extensions.filters.network.ext_authz.v3.ExtAuthz";

/// Envoy's timeout for a gRPC authorizer that does not set one.
const DEFAULT_GRPC_TIMEOUT: Duration = Duration::from_millis(200);

/// One HTTP `ext_authz` filter.
#[derive(Debug)]
pub struct ExtAuthz {
    pub service: AuthzService,
    pub timeout: Duration,
    /// The request headers the authorizer is sent; empty: every header to
    /// a gRPC authorizer, only the defaults to an HTTP one.
    pub allowed_headers: Vec<NameMatch>,
    /// Let requests through when the authorizer cannot be asked.
    pub failure_mode_allow: bool,
    /// Mark such requests with `x-envoy-auth-failure-mode-allowed: true`.
    pub failure_mode_allow_header_add: bool,
    /// The answer when the authorizer cannot be asked (and failing closed).
    pub status_on_error: StatusCode,
    pub with_request_body: Option<BodyBuffer>,
    /// The filter runs only for requests whose metadata matches.
    pub enabled_when: Option<MetadataMatch>,
}

/// Where the questions go.
#[derive(Debug)]
pub enum AuthzService {
    /// `Authorization/Check` on the cluster.
    Grpc {
        cluster: String,
    },
    Http(HttpService),
}

impl AuthzService {
    pub fn cluster(&self) -> &str {
        match self {
            AuthzService::Grpc { cluster } => cluster,
            AuthzService::Http(http) => &http.cluster,
        }
    }
}

/// An authorizer asked in plain HTTP: 200 allows, 5xx is an error, any
/// other status denies and is what the client gets.
#[derive(Debug)]
pub struct HttpService {
    pub cluster: String,
    /// Put in front of the request's path.
    pub path_prefix: String,
    pub headers_to_add: Vec<(HeaderName, HeaderValue)>,
    /// Headers of an allowing answer that replace the request's.
    pub upstream_headers: Vec<NameMatch>,
    /// Headers of an allowing answer appended to the request's.
    pub upstream_headers_to_append: Vec<NameMatch>,
    /// Headers of a denying answer passed to the client; empty: all but
    /// `host`.
    pub client_headers: Vec<NameMatch>,
    /// Headers of an allowing answer added to the client's response.
    pub client_headers_on_success: Vec<NameMatch>,
}

/// `with_request_body`: the authorizer is sent the body too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyBuffer {
    pub max_bytes: usize,
    /// Send the first `max_bytes` of a longer body (else answer 413).
    pub allow_partial: bool,
    /// gRPC: the body as `raw_body` bytes rather than a `body` string.
    pub pack_as_bytes: bool,
}

/// One network `ext_authz` filter.
#[derive(Debug)]
pub struct NetworkExtAuthz {
    pub cluster: String,
    pub timeout: Duration,
    pub failure_mode_allow: bool,
    /// The filter runs only for connections whose metadata matches.
    pub enabled_when: Option<MetadataMatch>,
}

/// A header name pattern. Names are lower case here, so a pattern that
/// ignores case is lowered once.
#[derive(Debug)]
pub struct NameMatch(ValueMatch);

impl NameMatch {
    pub fn matches(&self, name: &str) -> bool {
        crate::http::route::value_matches(&self.0, name)
    }
}

/// Whether one of `patterns` matches `name`.
pub fn any_matches(patterns: &[NameMatch], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

pub(super) fn http_filter(any: &Any, at: &At) -> Result<ExtAuthz, ConfigError> {
    let config = decode::<EnvoyExtAuthz>(any, at)?;
    refuse_unsupported(&config, at)?;
    api_version(config.transport_api_version, at)?;
    let (service, timeout, legacy_allowed) = match &config.services {
        Some(Services::GrpcService(grpc)) => {
            let target = super::grpc_service::compile(grpc, &at.field("grpc_service"))?;
            let timeout = target.timeout.unwrap_or(DEFAULT_GRPC_TIMEOUT);
            (
                AuthzService::Grpc {
                    cluster: target.cluster,
                },
                timeout,
                None,
            )
        }
        Some(Services::HttpService(http)) => {
            let at = at.field("http_service");
            let (service, timeout) = http_service(http, &at)?;
            let legacy = http
                .authorization_request
                .as_ref()
                .and_then(|request| {
                    #[allow(deprecated)]
                    request.allowed_headers.as_ref()
                })
                .map(|list| {
                    names(
                        Some(list),
                        &at.field("authorization_request").field("allowed_headers"),
                    )
                })
                .transpose()?;
            (AuthzService::Http(service), timeout, legacy)
        }
        None => return Err(at.error("grpc_service or http_service is required")),
    };
    let allowed_headers = match &config.allowed_headers {
        Some(list) => names(Some(list), &at.field("allowed_headers"))?,
        None => legacy_allowed.unwrap_or_default(),
    };
    let status_on_error = match &config.status_on_error {
        Some(status) => http_status(status.code, &at.field("status_on_error").field("code"))?,
        None => StatusCode::FORBIDDEN,
    };
    Ok(ExtAuthz {
        service,
        timeout,
        allowed_headers,
        failure_mode_allow: config.failure_mode_allow,
        failure_mode_allow_header_add: config.failure_mode_allow_header_add,
        status_on_error,
        with_request_body: config
            .with_request_body
            .as_ref()
            .map(|b| body_buffer(b, &at.field("with_request_body")))
            .transpose()?,
        enabled_when: config
            .filter_enabled_metadata
            .as_ref()
            .map(|m| metadata::compile(m, &at.field("filter_enabled_metadata")))
            .transpose()?,
    })
}

pub(super) fn network_filter(any: &Any, at: &At) -> Result<NetworkExtAuthz, ConfigError> {
    let config = decode::<EnvoyNetworkExtAuthz>(any, at)?;
    let refused = [
        ("include_peer_certificate", config.include_peer_certificate),
        ("include_tls_session", config.include_tls_session),
        ("send_tls_alert_on_denial", config.send_tls_alert_on_denial),
        (
            "bootstrap_metadata_labels_key",
            !config.bootstrap_metadata_labels_key.is_empty(),
        ),
        (
            "metadata_context_namespaces",
            !config.metadata_context_namespaces.is_empty(),
        ),
        (
            "typed_metadata_context_namespaces",
            !config.typed_metadata_context_namespaces.is_empty(),
        ),
    ];
    at.refuse(&refused)?;
    api_version(config.transport_api_version, at)?;
    let grpc = config
        .grpc_service
        .as_ref()
        .ok_or_else(|| at.field("grpc_service").error("a grpc_service is required"))?;
    let target = super::grpc_service::compile(grpc, &at.field("grpc_service"))?;
    Ok(NetworkExtAuthz {
        cluster: target.cluster,
        timeout: target.timeout.unwrap_or(DEFAULT_GRPC_TIMEOUT),
        failure_mode_allow: config.failure_mode_allow,
        enabled_when: config
            .filter_enabled_metadata
            .as_ref()
            .map(|m| metadata::compile(m, &at.field("filter_enabled_metadata")))
            .transpose()?,
    })
}

fn refuse_unsupported(config: &EnvoyExtAuthz, at: &At) -> Result<(), ConfigError> {
    let refused = [
        ("filter_enabled", config.filter_enabled.is_some()),
        ("deny_at_disable", config.deny_at_disable.is_some()),
        ("include_peer_certificate", config.include_peer_certificate),
        ("include_tls_session", config.include_tls_session),
        ("validate_mutations", config.validate_mutations),
        ("encode_raw_headers", config.encode_raw_headers),
        ("disallowed_headers", config.disallowed_headers.is_some()),
        (
            "metadata_context_namespaces",
            !config.metadata_context_namespaces.is_empty(),
        ),
        (
            "typed_metadata_context_namespaces",
            !config.typed_metadata_context_namespaces.is_empty(),
        ),
        (
            "route_metadata_context_namespaces",
            !config.route_metadata_context_namespaces.is_empty(),
        ),
        (
            "route_typed_metadata_context_namespaces",
            !config.route_typed_metadata_context_namespaces.is_empty(),
        ),
        (
            "bootstrap_metadata_labels_key",
            !config.bootstrap_metadata_labels_key.is_empty(),
        ),
        (
            "charge_cluster_response_stats",
            config.charge_cluster_response_stats.is_some(),
        ),
        (
            "decoder_header_mutation_rules",
            config.decoder_header_mutation_rules.is_some(),
        ),
        (
            "enable_dynamic_metadata_ingestion",
            config.enable_dynamic_metadata_ingestion.is_some(),
        ),
        ("filter_metadata", config.filter_metadata.is_some()),
        ("emit_filter_state_stats", config.emit_filter_state_stats),
        (
            "max_denied_response_body_bytes",
            config.max_denied_response_body_bytes != 0,
        ),
        (
            "enforce_response_header_limits",
            config.enforce_response_header_limits,
        ),
        ("shadow_mode", config.shadow_mode),
        ("emit_client_span", config.emit_client_span.is_some()),
    ];
    at.refuse(&refused)
}

/// Only the v3 API (or unset, which means v3) is spoken.
fn api_version(version: i32, at: &At) -> Result<(), ConfigError> {
    match ApiVersion::try_from(version) {
        Ok(ApiVersion::Auto | ApiVersion::V3) => Ok(()),
        _ => Err(at
            .field("transport_api_version")
            .unsupported("API versions other than V3")),
    }
}

fn http_service(http: &EnvoyHttpService, at: &At) -> Result<(HttpService, Duration), ConfigError> {
    let refused = [
        ("path_override", !http.path_override.is_empty()),
        ("retry_policy", http.retry_policy.is_some()),
    ];
    at.refuse(&refused)?;
    let (cluster, timeout) = server_uri(http.server_uri.as_ref(), &at.field("server_uri"))?;
    let headers_to_add = match &http.authorization_request {
        Some(request) => request
            .headers_to_add
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let at = at
                    .field("authorization_request")
                    .field("headers_to_add")
                    .index(i);
                let name = HeaderName::from_bytes(h.key.as_bytes()).map_err(|_| {
                    at.field("key")
                        .error(format_args!("{:?} is not a header name", h.key))
                })?;
                let bytes = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                let value = HeaderValue::from_bytes(bytes)
                    .map_err(|_| at.field("value").error("not a header value"))?;
                Ok((name, value))
            })
            .collect::<Result<_, ConfigError>>()?,
        None => Vec::new(),
    };
    let response = http.authorization_response.clone().unwrap_or_default();
    let at_response = at.field("authorization_response");
    if response.dynamic_metadata_from_headers.is_some() {
        return Err(at_response
            .field("dynamic_metadata_from_headers")
            .unsupported("dynamic_metadata_from_headers"));
    }
    let list = |list: &Option<ListStringMatcher>, field: &str| {
        names(list.as_ref(), &at_response.field(field))
    };
    Ok((
        HttpService {
            cluster,
            path_prefix: http.path_prefix.clone(),
            headers_to_add,
            upstream_headers: list(
                &response.allowed_upstream_headers,
                "allowed_upstream_headers",
            )?,
            upstream_headers_to_append: list(
                &response.allowed_upstream_headers_to_append,
                "allowed_upstream_headers_to_append",
            )?,
            client_headers: list(&response.allowed_client_headers, "allowed_client_headers")?,
            client_headers_on_success: list(
                &response.allowed_client_headers_on_success,
                "allowed_client_headers_on_success",
            )?,
        },
        timeout,
    ))
}

/// The authorizer's cluster and how long an answer may take.
fn server_uri(uri: Option<&HttpUri>, at: &At) -> Result<(String, Duration), ConfigError> {
    let uri = uri.ok_or_else(|| at.error("server_uri is required"))?;
    let cluster = match &uri.http_upstream_type {
        Some(http_uri::HttpUpstreamType::Cluster(cluster)) if !cluster.is_empty() => {
            cluster.clone()
        }
        _ => return Err(at.field("cluster").error("a cluster is required")),
    };
    let timeout = uri
        .timeout
        .as_ref()
        .ok_or_else(|| at.field("timeout").error("a timeout is required"))?;
    Ok((cluster, super::duration(timeout, &at.field("timeout"))?))
}

fn body_buffer(settings: &BufferSettings, at: &At) -> Result<BodyBuffer, ConfigError> {
    if settings.max_request_bytes == 0 {
        return Err(at
            .field("max_request_bytes")
            .error("max_request_bytes must be above 0"));
    }
    Ok(BodyBuffer {
        max_bytes: settings.max_request_bytes as usize,
        allow_partial: settings.allow_partial_message,
        pack_as_bytes: settings.pack_as_bytes,
    })
}

fn http_status(code: i32, at: &At) -> Result<StatusCode, ConfigError> {
    u16::try_from(code)
        .ok()
        .filter(|c| *c >= 200)
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| at.error(format_args!("{code} is not an HTTP status to answer with")))
}

fn names(list: Option<&ListStringMatcher>, at: &At) -> Result<Vec<NameMatch>, ConfigError> {
    let Some(list) = list else {
        return Ok(Vec::new());
    };
    list.patterns
        .iter()
        .enumerate()
        .map(|(i, m)| name_match(m, &at.field("patterns").index(i)))
        .collect()
}

fn name_match(m: &StringMatcher, at: &At) -> Result<NameMatch, ConfigError> {
    super::route::folding_string_matcher(m, at).map(NameMatch)
}

#[cfg(test)]
mod tests;
