//! RequestAuthentication, translated as istiod does into one
//! `envoy.filters.http.jwt_authn` filter on a workload's inbound HTTP
//! connection managers (and a gateway's), ahead of the RBAC filters.
//!
//! - Which policies apply: those of the root namespace and of the
//!   workload's namespace without a selector, and those whose selector
//!   matches its labels (in the root namespace too). Their rules are all
//!   combined, sorted by issuer, as istiod combines them.
//! - Each rule is a provider `origins-<i>`: issuer, audiences, token
//!   locations, `forwardOriginalToken`, `outputPayloadToHeader`,
//!   `outputClaimToHeaders`, the payload in metadata under `payload` with
//!   `scope`, `permission` and `spaceDelimitedClaims` split into lists.
//! - A request with an invalid token is refused (401); one without a token
//!   passes, and AuthorizationPolicy decides (`requestPrincipals`): one
//!   rule requires `{provider or allow_missing}`; several require any
//!   provider, or for each provider `{provider or allow_missing}`.
//! - Keys: inline `jwks` as they are; for `jwksUri` (or, without either,
//!   the issuer's OpenID discovery) the set fetched into the snapshot, or
//!   when there is none a key set nobody can sign for, so that every token
//!   fails, as istiod does when a fetch fails.
//!
//! Left out: policies with `targetRef(s)`. A rule's `timeout` bounds the
//! control plane's fetch (see [`crate::jwks`]).

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtClaimToHeader, JwtHeader, JwtProvider, JwtRequirement,
    JwtRequirementAndList, JwtRequirementOrList, RequirementRule, jwt_provider, jwt_requirement,
    requirement_rule,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use mesh_api::load::Resource;
use mesh_api::security::request_authentication::JwtRule;

use super::context::Context;
use super::proto::any;
use crate::model::jwks_url;

pub const FILTER_NAME: &str = "envoy.filters.http.jwt_authn";
/// Where the verified payload goes in the filter's metadata; RBAC reads it.
pub const PAYLOAD_KEY: &str = "payload";

/// An RSA public key whose private half was never kept: no token verifies
/// against it. The same key istiod serves when a key set cannot be fetched.
const NOBODY_SIGNS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"0xObjM0UvS_oaazjpEYlAbwctEJ4L8pH3OuTb7qth7gUwqet-EzQB4dgFdvSdMgrLnSncQGRjpEYz3F3viIbH-3EN3TxSlPNviHxeOdyiBVfumN8dMxbLvVJUpfNOnvmMxJcl-8NNjAwcOjk4otSALaYgYYyOPyvKtgVdrQr-FoubWX4yrjxW-MJ2-7OBeepUUNOsVwGV23YX03sVkkyvY3otRflkBcY3_HKpBxJl9wk2GyOShN4_PNUF9-vwfnvOXMbCDX-w4PTef4geeb_GiT40YCKHTKMSPVanGRn5GExIWmki-mmqh94-mPTJyBR74ShspL3BxPZitDL574T1w"}]}"#;

/// The `jwt_authn` filter for the proxy's workload, when some
/// RequestAuthentication applies to it. Gateways recompute routes after it
/// (`clear_route_cache`), since claims may be matched in routes.
pub fn filter(ctx: &Context) -> Option<HttpFilter> {
    let mut rules = applying(ctx);
    if rules.is_empty() {
        return None;
    }
    rules.sort_by(|a, b| a.issuer.cmp(&b.issuer));
    let gateway = ctx.proxy.kind == mesh_api::names::ProxyKind::Router;
    let config = authentication(ctx, &rules, gateway);
    Some(HttpFilter {
        name: FILTER_NAME.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&config))),
        ..HttpFilter::default()
    })
}

/// The JWT rules of every policy that applies, in config order.
fn applying<'a>(ctx: &Context<'a>) -> Vec<&'a JwtRule> {
    let proxy = ctx.proxy;
    let root = ctx.snapshot.mesh.root_namespace.as_str();
    ctx.snapshot
        .config
        .iter()
        .filter_map(|resource| match resource.as_ref() {
            Resource::RequestAuthentication(policy) => Some((resource.namespace(), &policy.spec)),
            _ => None,
        })
        .filter(|(namespace, spec)| {
            (*namespace == root || *namespace == proxy.namespace)
                && spec.target_ref.is_none()
                && spec.target_refs.is_empty()
                && spec
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&proxy.labels))
        })
        .flat_map(|(_, spec)| &spec.jwt_rules)
        .collect()
}

fn authentication(ctx: &Context, rules: &[&JwtRule], clear_route_cache: bool) -> JwtAuthentication {
    let names: Vec<String> = (0..rules.len()).map(|i| format!("origins-{i}")).collect();
    let providers = rules
        .iter()
        .zip(&names)
        .map(|(rule, name)| (name.clone(), provider(ctx, rule, clear_route_cache)))
        .collect();
    let one_or_missing: Vec<JwtRequirement> = names
        .iter()
        .map(|name| any_of(vec![provider_name(name), allow_missing()]))
        .collect();
    let requires = match <[JwtRequirement; 1]>::try_from(one_or_missing) {
        Ok([only]) => only,
        // The outer "any provider" lets tokens of providers that share a
        // location through, which the inner "all" alone would refuse.
        Err(each) => {
            let mut options: Vec<_> = names.iter().map(|n| provider_name(n)).collect();
            options.push(JwtRequirement {
                requires_type: Some(jwt_requirement::RequiresType::RequiresAll(
                    JwtRequirementAndList { requirements: each },
                )),
            });
            any_of(options)
        }
    };
    JwtAuthentication {
        providers,
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
                ..RouteMatch::default()
            }),
            requirement_type: Some(requirement_rule::RequirementType::Requires(requires)),
        }],
        bypass_cors_preflight: true,
        ..JwtAuthentication::default()
    }
}

fn provider(ctx: &Context, rule: &JwtRule, clear_route_cache: bool) -> JwtProvider {
    let mut space_delimited = rule.space_delimited_claims.clone();
    space_delimited.extend(["permission".to_owned(), "scope".to_owned()]);
    space_delimited.sort();
    space_delimited.dedup();
    JwtProvider {
        issuer: rule.issuer.clone(),
        audiences: rule.audiences.clone(),
        forward: rule.forward_original_token.unwrap_or(false),
        forward_payload_header: rule.output_payload_to_header.clone(),
        payload_in_metadata: PAYLOAD_KEY.into(),
        normalize_payload_in_metadata: Some(jwt_provider::NormalizePayload {
            space_delimited_claims: space_delimited,
        }),
        clear_route_cache,
        claim_to_headers: rule
            .output_claim_to_headers
            .iter()
            .map(|c| JwtClaimToHeader {
                header_name: c.header.clone(),
                claim_name: c.claim.clone(),
                ..JwtClaimToHeader::default()
            })
            .collect(),
        from_headers: rule
            .from_headers
            .iter()
            .map(|h| JwtHeader {
                name: h.name.clone(),
                value_prefix: h.prefix.clone(),
            })
            .collect(),
        from_params: rule.from_params.clone(),
        from_cookies: rule.from_cookies.clone(),
        jwks_source_specifier: Some(jwt_provider::JwksSourceSpecifier::LocalJwks(DataSource {
            specifier: Some(data_source::Specifier::InlineString(keys(ctx, rule))),
            ..DataSource::default()
        })),
        ..JwtProvider::default()
    }
}

/// The rule's key set: inline, fetched, or one that no token matches.
fn keys(ctx: &Context, rule: &JwtRule) -> String {
    match jwks_url(rule) {
        None => rule.jwks.clone(),
        Some(url) => ctx
            .snapshot
            .jwks
            .0
            .get(&url)
            .map_or_else(|| NOBODY_SIGNS.to_owned(), |keys| keys.to_string()),
    }
}

fn provider_name(name: &str) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::ProviderName(name.into())),
    }
}

fn allow_missing() -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::AllowMissing(
            Default::default(),
        )),
    }
}

fn any_of(requirements: Vec<JwtRequirement>) -> JwtRequirement {
    JwtRequirement {
        requires_type: Some(jwt_requirement::RequiresType::RequiresAny(
            JwtRequirementOrList { requirements },
        )),
    }
}
