//! RequestAuthentication: which JSON Web Tokens a workload accepts, where it
//! finds them and how it checks them.
//!
//! A request with an invalid token is rejected; a request with no token is
//! let through unauthenticated (an AuthorizationPolicy decides what it may do).
//!
//! # Validation rules
//!
//! - At most one of `selector`, `targetRef` and `targetRefs` is set.
//! - `selector.matchLabels`: valid Kubernetes labels, with no wildcards.
//! - `targetRef`/`targetRefs`: kind and name are set, namespace is empty, and the target is a
//!   `Gateway` or `GatewayClass` (gateway.networking.k8s.io), a `Service` (core) or a
//!   `ServiceEntry` (networking.istio.io); at most 16 `targetRefs`.
//! - At most 4096 `jwtRules`.
//! - `issuer` is set and not empty.
//! - `audiences` holds no empty value.
//! - At most one of `jwksUri` and `jwks` is set.
//! - `jwksUri` is an `http://` or `https://` URL with a host (and a port 1-65535 if given),
//!   at most 2048 characters.
//! - `jwks` is a JSON Web Key Set (`{"keys": [...]}`, each key with a known `kty`) or one key.
//! - `fromHeaders[].name` is a valid HTTP header name.
//! - `fromParams` holds no empty value; `fromCookies` holds valid cookie names.
//! - `outputPayloadToHeader`, when set, is a valid HTTP header name.
//! - `outputClaimToHeaders`: `header` uses only letters, digits, `-` and `_`, and is unique
//!   in the list; `claim` is not empty.
//! - `timeout` is at least 1ms, with millisecond precision.
//! - `spaceDelimitedClaims` holds no empty value; at most 64 of them.

use std::collections::BTreeSet;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::authorization_policy::validate_policy_scope;
use crate::selector::{PolicyTargetReference, WorkloadSelector};
use crate::validate::{self, Check, Errors, Path, Validate};
use crate::{Duration, IstioStatus};

const MAX_JWT_RULES: usize = 4096;
const MAX_JWKS_URI_LEN: usize = 2048;
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;

/// JWT validation for the workloads a policy selects.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "RequestAuthentication",
    plural = "requestauthentications",
    shortname = "ra",
    category = "istio-io",
    category = "security-istio-io",
    namespaced,
    status = "IstioStatus"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestAuthenticationSpec {
    /// Workloads the policy applies to; without it (and without targetRefs), the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single resource the policy attaches to (older form of targetRefs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, GatewayClasses, Services or ServiceEntries the policy attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The tokens accepted; each applies when a token is found where it looks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to find and verify tokens from one issuer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// The token's `iss` claim must equal this.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// The token's `aud` must contain one of these; when empty, the service name is accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// URL of the issuer's public key set; discovered through OpenID Connect when unset.
    #[serde(default, skip_serializing_if = "String::is_empty", alias = "jwks_uri")]
    pub jwks_uri: String,
    /// The public key set itself, as a JSON document (instead of jwksUri).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jwks: String,
    /// Headers to read the token from; by default `Authorization: Bearer`, then `access_token`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters to read the token from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Header that receives the verified payload, base64-encoded JSON.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output_payload_to_header: String,
    /// Cookies to read the token from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Keep the token on the request sent to the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    /// Claims copied into request headers once the token is verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long to wait for the key set to be fetched (5s by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Claims, besides `scope` and `permission`, whose value is split on spaces for matching.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
}

/// A header to read a token from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// The header name.
    pub name: String,
    /// Text before the token, stripped (e.g. `"Bearer "`); a header without it is invalid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

/// Copies one claim of a verified token into a request header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The header to set (replaced if present).
    pub header: String,
    /// The claim to copy (string, number or boolean; `a.b` for nested claims).
    pub claim: String,
}

impl Validate for RequestAuthenticationSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        validate_policy_scope(
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
            at,
            errs,
        );
        let rules = at.field("jwtRules");
        if self.jwt_rules.len() > MAX_JWT_RULES {
            errs.add(
                &rules,
                format!(
                    "at most {MAX_JWT_RULES} jwtRules are allowed, found {}",
                    self.jwt_rules.len()
                ),
            );
        }
        validate::each(&self.jwt_rules, &rules, errs);
    }
}

impl Validate for JwtRule {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.issuer.is_empty() {
            errs.add(
                &at.field("issuer"),
                "issuer is required: the token's expected iss claim",
            );
        }
        not_empty_each(&self.audiences, "audience", &at.field("audiences"), errs);
        let has_uri = !self.jwks_uri.is_empty();
        let has_jwks = !self.jwks.is_empty();
        if let Err(reason) = validate::one_of(&[("jwksUri", has_uri), ("jwks", has_jwks)]) {
            errs.add(&at.field("jwks"), reason);
        }
        if has_uri {
            errs.check(&at.field("jwksUri"), jwks_uri(&self.jwks_uri));
        }
        if has_jwks {
            errs.check(&at.field("jwks"), jwks(&self.jwks));
        }
        for (i, header) in self.from_headers.iter().enumerate() {
            let here = at.field("fromHeaders").index(i).field("name");
            errs.check(&here, validate::header_name(&header.name));
        }
        not_empty_each(
            &self.from_params,
            "query parameter name",
            &at.field("fromParams"),
            errs,
        );
        for (i, cookie) in self.from_cookies.iter().enumerate() {
            errs.check(&at.field("fromCookies").index(i), cookie_name(cookie));
        }
        if !self.output_payload_to_header.is_empty() {
            errs.check(
                &at.field("outputPayloadToHeader"),
                validate::header_name(&self.output_payload_to_header),
            );
        }
        let mut headers = BTreeSet::new();
        for (i, output) in self.output_claim_to_headers.iter().enumerate() {
            let here = at.field("outputClaimToHeaders").index(i);
            match claim_header(&output.header) {
                Err(reason) => errs.add(&here.field("header"), reason),
                Ok(()) if !headers.insert(output.header.to_ascii_lowercase()) => errs.add(
                    &here.field("header"),
                    format!(
                        "header {:?} is already set by an earlier entry",
                        output.header
                    ),
                ),
                Ok(()) => {}
            }
            if output.claim.is_empty() {
                errs.add(&here.field("claim"), "claim must name the claim to copy");
            }
        }
        if let Some(timeout) = self.timeout {
            errs.check(&at.field("timeout"), validate::duration_ms(timeout));
        }
        let claims = at.field("spaceDelimitedClaims");
        if self.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
            errs.add(
                &claims,
                format!(
                    "at most {MAX_SPACE_DELIMITED_CLAIMS} spaceDelimitedClaims are allowed, found {}",
                    self.space_delimited_claims.len()
                ),
            );
        }
        not_empty_each(&self.space_delimited_claims, "claim name", &claims, errs);
    }
}

fn not_empty_each(values: &[String], what: &str, at: &Path, errs: &mut Errors) {
    for (i, value) in values.iter().enumerate() {
        if value.is_empty() {
            errs.add(&at.index(i), format!("{what} must not be empty"));
        }
    }
}

/// An `http://` or `https://` URL with a host and an optional valid port.
fn jwks_uri(uri: &str) -> Check {
    let bad = |why: &str| Err(format!("jwksUri {uri:?} is not a valid http(s) URL: {why}"));
    if uri.len() > MAX_JWKS_URI_LEN {
        return Err(format!(
            "jwksUri is longer than {MAX_JWKS_URI_LEN} characters"
        ));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains whitespace");
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return bad("the scheme must be http:// or https://");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return bad("the scheme must be http:// or https://");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let Some((address, tail)) = v6.split_once(']') else {
            return bad("unclosed [ in the host");
        };
        if address.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("the bracketed host is not an IPv6 address");
        }
        match tail {
            "" => (address, None),
            _ => match tail.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => return bad("unexpected text after the IPv6 host"),
            },
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return bad("the host is missing");
    }
    if !host_port.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err() {
        validate::exact_host(host).or_else(|reason| bad(&reason))?;
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(number) if port.bytes().all(|b| b.is_ascii_digit()) => {
                validate::port(number).or_else(|reason| bad(&reason))?;
            }
            _ => return bad("the port is not a number"),
        }
    }
    Ok(())
}

/// A JSON Web Key Set, or a single JSON Web Key, with a known key type.
fn jwks(text: &str) -> Check {
    const KEY_TYPES: &[&str] = &["RSA", "EC", "oct", "OKP"];
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|err| format!("jwks is not valid JSON: {err}"))?;
    let check_key = |key: &serde_json::Value, which: &str| -> Check {
        match key.get("kty").and_then(serde_json::Value::as_str) {
            Some(kty) if KEY_TYPES.contains(&kty) => Ok(()),
            Some(kty) => Err(format!(
                "jwks {which} has unknown kty {kty:?} (use RSA, EC, oct or OKP)"
            )),
            None => Err(format!("jwks {which} has no kty")),
        }
    };
    let Some(object) = value.as_object() else {
        return Err("jwks must be a JSON object: {\"keys\": [...]} or a single key".into());
    };
    match object.get("keys") {
        None => check_key(&value, "key"),
        Some(serde_json::Value::Array(keys)) => keys
            .iter()
            .enumerate()
            .try_for_each(|(i, key)| check_key(key, &format!("keys[{i}]"))),
        Some(_) => Err("jwks \"keys\" must be a list of keys".into()),
    }
}

/// A cookie name is an RFC 6265 token, the same characters as a header name.
fn cookie_name(name: &str) -> Check {
    if name.is_empty() {
        return Err("cookie name must not be empty".into());
    }
    validate::header_name(name).map_err(|_| format!("{name:?} is not a valid cookie name"))
}

fn claim_header(header: &str) -> Check {
    if !header.is_empty()
        && header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "header {header:?} must be a non-empty header name of letters, digits, '-' and '_'"
        ))
    }
}

#[cfg(test)]
mod tests;
