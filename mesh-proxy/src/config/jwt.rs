//! `envoy.filters.http.jwt_authn`: which JSON Web Tokens a connection
//! manager checks, where it finds them and what it does with their claims.
//!
//! Providers say how to check a token (issuer, audiences, keys), where to
//! find it (`from_headers`, `from_params`, `from_cookies`, by default
//! `Authorization: Bearer` and `access_token`) and what to do with a valid
//! one (`forward`, `forward_payload_header`, `payload_in_metadata`,
//! `claim_to_headers`). Rules pick the requirement of a request by route
//! match: a provider, `requires_any`, `requires_all`, `allow_missing`,
//! `allow_missing_or_failed`. Keys come inline (`local_jwks`); fetching
//! them (`remote_jwks`) is refused, since the control plane inlines them.
//! The request-time side is [`crate::http::jwt`].

pub mod jwks;

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider, JwtRequirement, RequirementRule, jwt_provider, jwt_requirement,
    requirement_rule,
};
use envoy_types::pb::google::protobuf::Any;
use http::HeaderName;

use jwks::Jwk;

use super::{At, ConfigError, RouteMatch};

pub(super) const FILTER_TYPE: &str = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

/// Envoy's default tolerance for `exp` and `nbf`.
const DEFAULT_CLOCK_SKEW_SECONDS: u64 = 60;

/// One `jwt_authn` filter.
#[derive(Debug)]
pub struct JwtAuthn {
    pub providers: Vec<Arc<Provider>>,
    /// The first rule whose match fits a request gives its requirement;
    /// a request no rule matches is not checked.
    pub rules: Vec<(RouteMatch, Requirement)>,
    /// CORS preflight requests pass unchecked.
    pub bypass_cors_preflight: bool,
    /// A refused request gets an empty body instead of the reason.
    pub strip_failure_response: bool,
}

/// How to find and check the tokens of one issuer.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    /// Empty: any issuer.
    pub issuer: String,
    /// Empty: any audience.
    pub audiences: Vec<String>,
    pub keys: Vec<Jwk>,
    pub locations: Vec<Location>,
    /// Keep the token on the request (else its header is removed).
    pub forward: bool,
    pub forward_payload_header: Option<HeaderName>,
    pub pad_forward_payload_header: bool,
    /// The key of the payload in the filter's dynamic metadata.
    pub payload_in_metadata: Option<String>,
    /// Claims whose string value becomes a list of its space-separated words
    /// in the metadata (Istio: `scope`, `permission`).
    pub space_delimited_claims: Vec<String>,
    pub claim_to_headers: Vec<(HeaderName, String)>,
    pub clock_skew_seconds: u64,
    pub require_expiration: bool,
}

/// Where a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A header, with the text before the token (`Bearer `).
    Header {
        name: HeaderName,
        prefix: String,
    },
    Param(String),
    Cookie(String),
}

/// What a request must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A valid token of this provider (an index into `providers`), with
    /// audiences replacing the provider's when given.
    Provider {
        provider: usize,
        audiences: Option<Vec<String>>,
    },
    Any(Vec<Requirement>),
    All(Vec<Requirement>),
    /// No token at all, or only valid ones.
    AllowMissing,
    /// Anything; valid tokens still have their effects.
    AllowMissingOrFailed,
}

/// Compiles a `jwt_authn` filter's typed config.
pub(super) fn compile(any: &Any, at: &At) -> Result<JwtAuthn, ConfigError> {
    let config = super::listener::decode::<JwtAuthentication>(any, at)?;
    if config.filter_state_rules.is_some() {
        return Err(at
            .field("filter_state_rules")
            .unsupported("filter_state_rules"));
    }
    // Sorted by name so that provider indexes do not depend on map order.
    let mut named: Vec<_> = config.providers.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let providers = named
        .iter()
        .map(|(name, p)| provider(name, p, &at.field(&format!("providers[{name:?}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = named.iter().map(|(name, _)| name.as_str()).collect();
    let rules = config
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            rule(
                r,
                &config.requirement_map,
                &names,
                &at.field("rules").index(i),
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(JwtAuthn {
        providers: providers.into_iter().map(Arc::new).collect(),
        rules,
        bypass_cors_preflight: config.bypass_cors_preflight,
        strip_failure_response: config.strip_failure_response,
    })
}

fn provider(name: &str, p: &JwtProvider, at: &At) -> Result<Provider, ConfigError> {
    let refused = [
        ("subjects", p.subjects.is_some()),
        ("max_lifetime", p.max_lifetime.is_some()),
        ("header_in_metadata", !p.header_in_metadata.is_empty()),
        (
            "failed_status_in_metadata",
            !p.failed_status_in_metadata.is_empty(),
        ),
    ];
    at.refuse(&refused)?;
    let keys = match &p.jwks_source_specifier {
        Some(jwt_provider::JwksSourceSpecifier::LocalJwks(source)) => {
            let at = at.field("local_jwks");
            let text = super::tls::data_source(source, &at)?;
            jwks::parse(&text).map_err(|reason| at.error(reason))?
        }
        Some(jwt_provider::JwksSourceSpecifier::RemoteJwks(_)) => {
            return Err(at.field("remote_jwks").unsupported(
                "fetching keys (remote_jwks; the control plane inlines them as local_jwks)",
            ));
        }
        None => return Err(at.error("local_jwks is required")),
    };
    Ok(Provider {
        name: name.to_owned(),
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone(),
        keys,
        locations: locations(p, at)?,
        forward: p.forward,
        forward_payload_header: optional_header(
            &p.forward_payload_header,
            &at.field("forward_payload_header"),
        )?,
        pad_forward_payload_header: p.pad_forward_payload_header,
        payload_in_metadata: Some(p.payload_in_metadata.clone()).filter(|k| !k.is_empty()),
        space_delimited_claims: p
            .normalize_payload_in_metadata
            .as_ref()
            .map(|n| n.space_delimited_claims.clone())
            .unwrap_or_default(),
        claim_to_headers: p
            .claim_to_headers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let at = at.field("claim_to_headers").index(i);
                if !c.claim_path.is_empty() {
                    return Err(at.field("claim_path").unsupported("claim_path"));
                }
                let header = header_name(&c.header_name, &at.field("header_name"))?;
                Ok((header, c.claim_name.clone()))
            })
            .collect::<Result<_, _>>()?,
        clock_skew_seconds: match p.clock_skew_seconds {
            0 => DEFAULT_CLOCK_SKEW_SECONDS,
            skew => u64::from(skew),
        },
        require_expiration: p.require_expiration,
    })
}

/// Where the provider looks; Envoy's defaults when nothing is said.
fn locations(p: &JwtProvider, at: &At) -> Result<Vec<Location>, ConfigError> {
    if p.from_headers.is_empty() && p.from_params.is_empty() && p.from_cookies.is_empty() {
        return Ok(vec![
            Location::Header {
                name: http::header::AUTHORIZATION,
                prefix: "Bearer ".into(),
            },
            Location::Param("access_token".into()),
        ]);
    }
    let headers = p.from_headers.iter().enumerate().map(|(i, h)| {
        Ok(Location::Header {
            name: header_name(&h.name, &at.field("from_headers").index(i).field("name"))?,
            prefix: h.value_prefix.clone(),
        })
    });
    let params = p.from_params.iter().map(|q| Ok(Location::Param(q.clone())));
    let cookies = p
        .from_cookies
        .iter()
        .map(|c| Ok(Location::Cookie(c.clone())));
    headers.chain(params).chain(cookies).collect()
}

fn header_name(name: &str, at: &At) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| at.error(format_args!("{name:?} is not a header name")))
}

fn optional_header(name: &str, at: &At) -> Result<Option<HeaderName>, ConfigError> {
    if name.is_empty() {
        return Ok(None);
    }
    header_name(name, at).map(Some)
}

fn rule(
    r: &RequirementRule,
    map: &HashMap<String, JwtRequirement>,
    providers: &[&str],
    at: &At,
) -> Result<(RouteMatch, Requirement), ConfigError> {
    let matcher = r
        .r#match
        .as_ref()
        .ok_or_else(|| at.field("match").error("match is required"))?;
    let matcher = super::route::route_matcher(matcher, &at.field("match"))?;
    let requirement = match &r.requirement_type {
        Some(requirement_rule::RequirementType::Requires(req)) => {
            requirement(req, providers, &at.field("requires"))?
        }
        Some(requirement_rule::RequirementType::RequirementName(name)) => {
            let at = at.field("requirement_name");
            let req = map
                .get(name)
                .ok_or_else(|| at.error(format_args!("no requirement_map entry {name:?}")))?;
            requirement(req, providers, &at)?
        }
        // Envoy: a rule without a requirement checks nothing.
        None => Requirement::All(Vec::new()),
    };
    Ok((matcher, requirement))
}

fn requirement(
    req: &JwtRequirement,
    providers: &[&str],
    at: &At,
) -> Result<Requirement, ConfigError> {
    use jwt_requirement::RequiresType as R;
    let provider = |name: &str, at: &At| {
        providers
            .iter()
            .position(|p| *p == name)
            .ok_or_else(|| at.error(format_args!("no provider {name:?}")))
    };
    let list = |reqs: &[JwtRequirement], field: &str| {
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                requirement(
                    r,
                    providers,
                    &at.field(field).field("requirements").index(i),
                )
            })
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match &req.requires_type {
        Some(R::ProviderName(name)) => Requirement::Provider {
            provider: provider(name, &at.field("provider_name"))?,
            audiences: None,
        },
        Some(R::ProviderAndAudiences(p)) => Requirement::Provider {
            provider: provider(&p.provider_name, &at.field("provider_and_audiences"))?,
            audiences: Some(p.audiences.clone()),
        },
        Some(R::RequiresAny(any)) => Requirement::Any(list(&any.requirements, "requires_any")?),
        Some(R::RequiresAll(all)) => Requirement::All(list(&all.requirements, "requires_all")?),
        Some(R::AllowMissing(_)) => Requirement::AllowMissing,
        Some(R::AllowMissingOrFailed(_)) => Requirement::AllowMissingOrFailed,
        Some(R::ExtractOnlyWithoutValidation(_)) => {
            return Err(at
                .field("extract_only_without_validation")
                .unsupported("extract_only_without_validation"));
        }
        // An empty requirement checks nothing, as in Envoy.
        None => Requirement::All(Vec::new()),
    })
}

#[cfg(test)]
mod tests;
