//! `jwt_authn` at request time: find the tokens the matching rule's
//! requirement asks for, check them, and either refuse the request with 401
//! and Envoy's reason, or pass it on with what the valid tokens give:
//! the payload in dynamic metadata (for RBAC), payload and claim headers,
//! and the token removed unless `forward` says otherwise.
//!
//! `allow_missing` accepts a request without any token at the locations
//! of the filter's providers, and otherwise wants each token found valid
//! for a provider of its issuer that reads that location; when
//! `requires_any` fails, the reason given is the first that is not a
//! missing token or an unknown issuer, if there is one.

mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use serde_json::Value;

pub use verify::{Failure, Verified};

use super::Body;
use super::info::ResponseFlags;
use crate::config::DynamicMetadata;
use crate::config::jwt::{JwtAuthn, Location, Provider, Requirement};

/// The metadata namespace verified payloads go to.
pub const METADATA_FILTER: &str = "envoy.filters.http.jwt_authn";

/// Checks the request: the answer to send when it is refused; else the
/// request carries what its valid tokens give.
pub fn check(filter: &JwtAuthn, parts: &mut Parts) -> Option<Response<Body>> {
    let failure = check_at(filter, parts, now()).err()?;
    Some(refusal(filter, failure, parts))
}

/// [`check`] at a given time, in seconds since the epoch.
pub fn check_at(filter: &JwtAuthn, parts: &mut Parts, now: u64) -> Result<(), Failure> {
    if filter.bypass_cors_preflight && is_preflight(parts) {
        return Ok(());
    }
    sanitize(filter, parts);
    let Some((_, requirement)) = filter
        .rules
        .iter()
        .find(|(m, _)| super::route::matches(m, parts))
    else {
        return Ok(());
    };
    let mut run = Run {
        filter,
        parts,
        now,
        checked: Vec::new(),
    };
    run.require(requirement)?;
    let valid: Vec<_> = run
        .checked
        .into_iter()
        .filter_map(|c| Some((c.provider, c.location, c.outcome.ok()?)))
        .collect();
    for (provider, location, verified) in valid {
        apply(&filter.providers[provider], &location, &verified, parts);
    }
    Ok(())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One requirement check over one request, remembering each token checked
/// so that no token is checked twice for the same provider.
struct Run<'a> {
    filter: &'a JwtAuthn,
    parts: &'a Parts,
    now: u64,
    checked: Vec<Checked>,
}

struct Checked {
    provider: usize,
    audiences: Option<Vec<String>>,
    location: Location,
    token: String,
    outcome: Result<Verified, Failure>,
}

impl Run<'_> {
    fn require(&mut self, requirement: &Requirement) -> Result<(), Failure> {
        match requirement {
            Requirement::Provider {
                provider,
                audiences,
            } => self.provider(*provider, audiences.as_deref()),
            Requirement::Any(options) => {
                let mut failures = Vec::new();
                for option in options {
                    match self.require(option) {
                        Ok(()) => return Ok(()),
                        Err(failure) => failures.push(failure),
                    }
                }
                Err(most_telling(&failures))
            }
            Requirement::All(all) => all.iter().try_for_each(|r| self.require(r)),
            Requirement::AllowMissing => self.every_token(),
            Requirement::AllowMissingOrFailed => {
                // Valid tokens still count; invalid ones do not refuse.
                let _ = self.every_token();
                Ok(())
            }
        }
    }

    /// Every token at the provider's locations, valid for it; at least one.
    fn provider(&mut self, index: usize, audiences: Option<&[String]>) -> Result<(), Failure> {
        let provider = &self.filter.providers[index];
        let mut found = false;
        for location in &provider.locations {
            if let Some(token) = extract(location, self.parts) {
                found = true;
                self.verify(index, audiences, location, token)?;
            }
        }
        if found { Ok(()) } else { Err(Failure::Missing) }
    }

    /// Every token at any provider's locations, each valid for a provider
    /// of its issuer that reads there; no token at all is fine.
    fn every_token(&mut self) -> Result<(), Failure> {
        let mut seen: Vec<&Location> = Vec::new();
        let providers = &self.filter.providers;
        for location in providers.iter().flat_map(|p| &p.locations) {
            if seen.contains(&location) {
                continue;
            }
            seen.push(location);
            let Some(token) = extract(location, self.parts) else {
                continue;
            };
            let issuer = verify::parse(&token)?.issuer().map(str::to_owned);
            let reader = providers.iter().position(|p| {
                p.locations.contains(location)
                    && (p.issuer.is_empty() || Some(&p.issuer) == issuer.as_ref())
            });
            let index = reader.ok_or(Failure::UnknownIssuer)?;
            self.verify(index, None, location, token)?;
        }
        Ok(())
    }

    fn verify(
        &mut self,
        provider: usize,
        audiences: Option<&[String]>,
        location: &Location,
        token: String,
    ) -> Result<(), Failure> {
        let earlier = self.checked.iter().find(|c| {
            c.provider == provider && c.token == token && c.audiences.as_deref() == audiences
        });
        if let Some(earlier) = earlier {
            return earlier.outcome.as_ref().map(|_| ()).map_err(|f| *f);
        }
        let outcome = verify::parse(&token).and_then(|parsed| {
            verify::verify(
                &parsed,
                &self.filter.providers[provider],
                audiences,
                self.now,
            )
        });
        let result = outcome.as_ref().map(|_| ()).map_err(|f| *f);
        self.checked.push(Checked {
            provider,
            audiences: audiences.map(<[String]>::to_vec),
            location: location.clone(),
            token,
            outcome,
        });
        result
    }
}

/// The reason worth telling: a missing token or an unknown issuer only
/// when nothing more precise went wrong.
fn most_telling(failures: &[Failure]) -> Failure {
    let vague = [Failure::Missing, Failure::UnknownIssuer];
    failures
        .iter()
        .find(|f| !vague.contains(f))
        .or_else(|| failures.iter().find(|f| **f == Failure::UnknownIssuer))
        .copied()
        .unwrap_or(Failure::Missing)
}

/// The token at a location, if there is one.
fn extract(location: &Location, parts: &Parts) -> Option<String> {
    let text = match location {
        Location::Header { name, prefix } => {
            let value = parts.headers.get(name)?.to_str().ok()?;
            let head = value.get(..prefix.len())?;
            if !head.eq_ignore_ascii_case(prefix) {
                return None;
            }
            &value[prefix.len()..]
        }
        Location::Param(name) => parts.uri.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then_some(value)
        })?,
        Location::Cookie(name) => parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then_some(value)
            })?,
    };
    // A token is base64url segments and dots; anything after is not part of it.
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.=".contains(c)))
        .unwrap_or(text.len());
    Some(text[..end].to_owned()).filter(|t| !t.is_empty())
}

/// What a valid token gives the request.
/// Removes the headers that only verified tokens may set (payload and
/// claim headers), so that a client without a token cannot send them to
/// the application itself.
fn sanitize(filter: &JwtAuthn, parts: &mut Parts) {
    for provider in &filter.providers {
        if let Some(name) = &provider.forward_payload_header {
            parts.headers.remove(name);
        }
        for (name, _) in &provider.claim_to_headers {
            parts.headers.remove(name);
        }
    }
}

fn apply(provider: &Provider, location: &Location, verified: &Verified, parts: &mut Parts) {
    if let Some(key) = &provider.payload_in_metadata {
        let payload = normalized(&verified.payload, &provider.space_delimited_claims);
        parts
            .extensions
            .get_or_insert_default::<DynamicMetadata>()
            .set(METADATA_FILTER, key, payload);
    }
    if let Some(name) = &provider.forward_payload_header {
        let mut encoded = verified.payload_segment.clone();
        if provider.pad_forward_payload_header {
            while !encoded.len().is_multiple_of(4) {
                encoded.push('=');
            }
        }
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            parts.headers.insert(name.clone(), value);
        }
    }
    for (name, claim) in &provider.claim_to_headers {
        if let Some(value) = claim_text(&verified.payload, claim) {
            parts.headers.insert(name.clone(), value);
        }
    }
    if !provider.forward
        && let Location::Header { name, .. } = location
    {
        parts.headers.remove(name);
    }
}

/// The payload with each space-delimited claim split into its words.
fn normalized(payload: &serde_json::Map<String, Value>, split: &[String]) -> Value {
    let mut payload = payload.clone();
    for claim in split {
        if let Some(Value::String(words)) = payload.get(claim) {
            let list = words.split(' ').filter(|w| !w.is_empty());
            let list = list.map(|w| Value::String(w.to_owned())).collect();
            payload.insert(claim.clone(), Value::Array(list));
        }
    }
    Value::Object(payload)
}

/// A claim (`a.b` for nested ones) that is a string, number or boolean.
fn claim_text(payload: &serde_json::Map<String, Value>, claim: &str) -> Option<HeaderValue> {
    let mut path = claim.split('.');
    let mut value = payload.get(path.next()?)?;
    for key in path {
        value = value.as_object()?.get(key)?;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    HeaderValue::from_str(&text).ok()
}

fn is_preflight(parts: &Parts) -> bool {
    parts.method == Method::OPTIONS
        && parts.headers.contains_key(header::ORIGIN)
        && parts
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Envoy's answer to a refused request: 401 with the reason and a
/// `www-authenticate` challenge naming the URL.
fn refusal(filter: &JwtAuthn, failure: Failure, parts: &Parts) -> Response<Body> {
    let text = if filter.strip_failure_response {
        ""
    } else {
        failure.message()
    };
    let mut response =
        super::proxy::local_reply(StatusCode::UNAUTHORIZED, text, ResponseFlags::NONE);
    let host = super::proxy::request_authority(parts).unwrap_or_default();
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    let mut challenge = format!("Bearer realm=\"{scheme}://{host}{}\"", parts.uri.path());
    if failure != Failure::Missing {
        challenge.push_str(", error=\"invalid_token\"");
    }
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests;
