//! Checking one token against one provider, in Envoy's order: the issuer,
//! then `exp`/`nbf` (with the provider's clock skew), then the audiences,
//! then the signature with the provider's keys. Failures carry Envoy's
//! messages, which are what a refused client reads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::config::jwt::{Provider, jwks};

/// Why a token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Missing,
    BadFormat,
    BadHeader,
    UnsupportedAlg,
    BadPayload,
    UnknownIssuer,
    Expired,
    NotYetValid,
    NoExpiration,
    AudienceNotAllowed,
    NoMatchingKey,
    VerificationFails,
}

impl Failure {
    /// Envoy's text for the failure.
    pub fn message(self) -> &'static str {
        match self {
            Failure::Missing => "Jwt is missing",
            Failure::BadFormat => {
                "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
            }
            Failure::BadHeader => "Jwt header is an invalid JSON",
            Failure::UnsupportedAlg => "Jwt header [alg] is not supported",
            Failure::BadPayload => "Jwt payload is an invalid JSON",
            Failure::UnknownIssuer => "Jwt issuer is not configured",
            Failure::Expired => "Jwt is expired",
            Failure::NotYetValid => "Jwt not yet valid",
            Failure::NoExpiration => "Jwt doesn't have expiration",
            Failure::AudienceNotAllowed => "Audiences in Jwt are not allowed",
            Failure::NoMatchingKey => "Jwks doesn't have key to match kid or alg from Jwt",
            Failure::VerificationFails => "Jwt verification fails",
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub payload: Map<String, Value>,
    /// The payload as the token carries it (base64url, unpadded).
    pub payload_segment: String,
}

/// A token split and decoded, not checked yet.
#[derive(Debug)]
pub struct Parsed<'a> {
    alg: String,
    kid: Option<String>,
    pub payload: Map<String, Value>,
    signing_input: &'a str,
    payload_segment: &'a str,
    signature: Vec<u8>,
}

impl Parsed<'_> {
    /// The `iss` claim, if it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.payload.get("iss").and_then(Value::as_str)
    }
}

/// Splits a compact JWS and decodes its header and payload.
pub fn parse(token: &str) -> Result<Parsed<'_>, Failure> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::BadFormat);
    };
    let header = json_object(header).ok_or(Failure::BadHeader)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(Failure::BadHeader)?;
    if !jwks::supported_alg(alg) {
        return Err(Failure::UnsupportedAlg);
    }
    Ok(Parsed {
        alg: alg.to_owned(),
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        payload: json_object(payload).ok_or(Failure::BadPayload)?,
        signing_input: &token[..token.len() - signature.len() - 1],
        payload_segment: payload,
        signature: URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Failure::BadFormat)?,
    })
}

fn json_object(segment: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Checks a token for `provider` at `now` (seconds since the epoch);
/// `audiences` replaces the provider's own when given.
pub fn verify(
    token: &Parsed<'_>,
    provider: &Provider,
    audiences: Option<&[String]>,
    now: u64,
) -> Result<Verified, Failure> {
    if !provider.issuer.is_empty() && token.issuer() != Some(provider.issuer.as_str()) {
        return Err(Failure::UnknownIssuer);
    }
    check_times(&token.payload, provider, now)?;
    let audiences = audiences.unwrap_or(&provider.audiences);
    if !audiences.is_empty() && !audience_allowed(&token.payload, audiences) {
        return Err(Failure::AudienceNotAllowed);
    }
    let (alg, kid) = (token.alg.as_str(), token.kid.as_deref());
    let mut candidates = provider.keys.iter().filter(|k| k.fits(alg, kid)).peekable();
    if candidates.peek().is_none() {
        return Err(Failure::NoMatchingKey);
    }
    let message = token.signing_input.as_bytes();
    if !candidates.any(|key| key.verify(alg, message, &token.signature)) {
        return Err(Failure::VerificationFails);
    }
    Ok(Verified {
        payload: token.payload.clone(),
        payload_segment: token.payload_segment.to_owned(),
    })
}

/// `exp` and `nbf`, each tolerated `clock_skew_seconds` either way.
fn check_times(payload: &Map<String, Value>, provider: &Provider, now: u64) -> Result<(), Failure> {
    let time = |claim: &str| -> Result<Option<u64>, Failure> {
        match payload.get(claim) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or(Failure::BadPayload),
        }
    };
    let skew = provider.clock_skew_seconds;
    if let Some(nbf) = time("nbf")?
        && now.saturating_add(skew) < nbf
    {
        return Err(Failure::NotYetValid);
    }
    match time("exp")? {
        Some(exp) if now > exp.saturating_add(skew) => Err(Failure::Expired),
        None if provider.require_expiration => Err(Failure::NoExpiration),
        _ => Ok(()),
    }
}

/// Whether one of the token's audiences is allowed; as Envoy compares
/// them, without an `http://` or `https://` scheme and a trailing slash.
fn audience_allowed(payload: &Map<String, Value>, allowed: &[String]) -> bool {
    let token: Vec<&str> = match payload.get("aud") {
        Some(Value::String(aud)) => vec![aud.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    token
        .iter()
        .any(|aud| allowed.iter().any(|a| normalize(a) == normalize(aud)))
}

fn normalize(audience: &str) -> &str {
    let bare = audience
        .strip_prefix("https://")
        .or_else(|| audience.strip_prefix("http://"))
        .unwrap_or(audience);
    bare.strip_suffix('/').unwrap_or(bare)
}
