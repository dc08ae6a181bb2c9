//! CORS (`envoy.filters.http.cors`): the filter in the HTTP filter list, and
//! each route's `CorsPolicy` in `typed_per_filter_config`, as Istio writes a
//! VirtualService `corsPolicy`.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCorsPolicy;
use envoy_types::pb::google::protobuf::Any;

use super::listener::{decode, type_name};
use super::{At, ConfigError, ValueMatch, route};

pub(super) const FILTER_NAME: &str = "envoy.filters.http.cors";
pub(super) const FILTER_TYPE: &str = "envoy.extensions.filters.http.cors.v3.Cors";
const POLICY_TYPE: &str = "envoy.extensions.filters.http.cors.v3.CorsPolicy";

/// Which origins may call a route, and what they may do.
#[derive(Debug)]
pub struct CorsPolicy {
    pub allow_origins: Vec<ValueMatch>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: bool,
    /// Preflights from origins that do not match go on to the upstream.
    pub forward_not_matching_preflights: bool,
}

/// A route's policy from its `typed_per_filter_config` entry.
pub(super) fn per_route(any: &Any, at: &At) -> Result<CorsPolicy, ConfigError> {
    if type_name(any) != POLICY_TYPE {
        return Err(at.field("@type").unsupported(format_args!(
            "{} for the CORS filter (only {POLICY_TYPE})",
            any.type_url
        )));
    }
    let policy: EnvoyCorsPolicy = decode(any, at)?;
    if policy.filter_enabled.is_some() || policy.shadow_enabled.is_some() {
        return Err(at.unsupported("filter_enabled and shadow_enabled"));
    }
    let allow_origins = policy
        .allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| route::string_matcher(m, &at.field("allow_origin_string_match").index(i)))
        .collect::<Result<_, _>>()?;
    Ok(CorsPolicy {
        allow_origins,
        allow_methods: policy.allow_methods.clone(),
        allow_headers: policy.allow_headers.clone(),
        expose_headers: policy.expose_headers.clone(),
        max_age: policy.max_age.clone(),
        allow_credentials: policy.allow_credentials.is_some_and(|b| b.value),
        forward_not_matching_preflights: policy
            .forward_not_matching_preflights
            .as_ref()
            .is_none_or(|b| b.value),
    })
}
