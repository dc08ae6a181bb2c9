use http::Request;
use serde_json::{Value, json};

use super::{Failure, METADATA_FILTER, check_at};
use crate::config::{DynamicMetadata, HttpAccess, JwtAuthn};
use crate::testing::access_filter;

#[path = "../../../tests/it/support/jwt.rs"]
mod signer;
use signer::{Signer, jwks};

const ISSUER: &str = "https://issuer.example";
const NOW: u64 = 1_700_000_000;
const JWT_AUTHN: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";

/// The filter as istiod writes it for one rule: the provider or no token.
fn istio_filter(provider: Value) -> JwtAuthn {
    filter(json!({
        "providers": {"origins-0": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"}, {"allow_missing": {}}]}}}],
        "bypass_cors_preflight": true,
    }))
}

fn provider(signers: &[&Signer]) -> Value {
    json!({
        "issuer": ISSUER,
        "audiences": ["bookinfo"],
        "local_jwks": {"inline_string": jwks(signers)},
        "payload_in_metadata": "payload",
        "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
    })
}

fn filter(config: Value) -> JwtAuthn {
    match access_filter("envoy.filters.http.jwt_authn", JWT_AUTHN, config, &[]) {
        HttpAccess::Jwt(jwt) => jwt,
        _ => panic!("a jwt_authn filter"),
    }
}

fn claims(extra: Value) -> Value {
    let mut claims = json!({"iss": ISSUER, "sub": "alice", "aud": "bookinfo",
        "exp": NOW + 600, "scope": "read write"});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    claims
}

fn request(token: Option<&str>) -> http::request::Parts {
    let mut builder = Request::get("http://reviews/ratings");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    builder.body(()).unwrap().into_parts().0
}

fn run(filter: &JwtAuthn, token: Option<&str>) -> (Result<(), Failure>, http::request::Parts) {
    let mut parts = request(token);
    let result = check_at(filter, &mut parts, NOW);
    (result, parts)
}

#[test]
fn valid_tokens_of_each_algorithm_pass_and_reach_the_metadata() {
    let rsa = Signer::rsa("rsa");
    let p256 = Signer::p256("p256");
    let p384 = Signer::p384("p384");
    let filter = istio_filter(provider(&[&rsa, &p256, &p384]));
    let signed = [
        rsa.sign("RS256", &claims(json!({}))),
        rsa.sign("RS384", &claims(json!({}))),
        rsa.sign("RS512", &claims(json!({}))),
        rsa.sign("PS256", &claims(json!({}))),
        p256.sign("ES256", &claims(json!({}))),
        p384.sign("ES384", &claims(json!({}))),
    ];
    for token in &signed {
        let (result, parts) = run(&filter, Some(token));
        assert_eq!(result, Ok(()), "{token}");
        let metadata = parts.extensions.get::<DynamicMetadata>().unwrap();
        let payload = &metadata.0[METADATA_FILTER]["payload"];
        assert_eq!(payload["sub"], "alice");
        assert_eq!(payload["scope"], json!(["read", "write"]));
        assert!(
            !parts.headers.contains_key("authorization"),
            "the token is not forwarded"
        );
    }
}

#[test]
fn invalid_tokens_are_refused_with_envoys_reasons() {
    let key = Signer::p256("k1");
    let other = Signer::p256("k1");
    let filter = istio_filter(provider(&[&key]));
    let cases = [
        (
            key.sign("ES256", &claims(json!({"exp": NOW - 61}))),
            Failure::Expired,
        ),
        (
            key.sign("ES256", &claims(json!({"nbf": NOW + 61}))),
            Failure::NotYetValid,
        ),
        (
            key.sign("ES256", &claims(json!({"iss": "https://elsewhere"}))),
            Failure::UnknownIssuer,
        ),
        (
            key.sign("ES256", &claims(json!({"aud": ["other", "more"]}))),
            Failure::AudienceNotAllowed,
        ),
        (
            other.sign("ES256", &claims(json!({}))),
            Failure::VerificationFails,
        ),
        (
            Signer::p256("unknown").sign("ES256", &claims(json!({}))),
            Failure::NoMatchingKey,
        ),
        ("not-a-token".to_owned(), Failure::BadFormat),
    ];
    for (token, failure) in cases {
        let (result, parts) = run(&filter, Some(&token));
        assert_eq!(result, Err(failure), "{token}");
        assert!(parts.extensions.get::<DynamicMetadata>().is_none());
    }
    assert_eq!(Failure::Expired.message(), "Jwt is expired");
}

#[test]
fn the_clock_skew_tolerates_a_minute() {
    let key = Signer::p256("k");
    let filter = istio_filter(provider(&[&key]));
    let barely = key.sign("ES256", &claims(json!({"exp": NOW - 60, "nbf": NOW + 60})));
    assert_eq!(run(&filter, Some(&barely)).0, Ok(()));
}

#[test]
fn a_request_without_a_token_passes_without_metadata() {
    let key = Signer::p256("k");
    let filter = istio_filter(provider(&[&key]));
    let (result, parts) = run(&filter, None);
    assert_eq!(result, Ok(()));
    assert!(parts.extensions.get::<DynamicMetadata>().is_none());
}

#[test]
fn a_provider_requirement_wants_a_token() {
    let key = Signer::p256("k");
    let filter = filter(json!({
        "providers": {"p": provider(&[&key])},
        "rules": [
            {"match": {"prefix": "/public"}},
            {"match": {"prefix": "/"}, "requires": {"provider_name": "p"}},
        ],
    }));
    assert_eq!(run(&filter, None).0, Err(Failure::Missing));
    let mut public = Request::get("http://reviews/public/x")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(check_at(&filter, &mut public, NOW), Ok(()));
}

#[test]
fn tokens_come_from_the_configured_header_and_claims_go_to_headers() {
    let key = Signer::p256("k");
    let mut config = provider(&[&key]);
    config["from_headers"] = json!([{"name": "x-jwt", "value_prefix": "Token "}]);
    config["from_params"] = json!(["jwt"]);
    config["forward"] = json!(true);
    config["forward_payload_header"] = json!("x-jwt-payload");
    config["claim_to_headers"] = json!([{"header_name": "x-sub", "claim_name": "sub"}]);
    let filter = istio_filter(config);
    let token = key.sign("ES256", &claims(json!({})));
    let mut parts = Request::get("http://reviews/")
        .header("x-jwt", format!("Token {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(check_at(&filter, &mut parts, NOW), Ok(()));
    assert_eq!(parts.headers["x-sub"], "alice");
    assert_eq!(parts.headers["x-jwt"], format!("Token {token}").as_str());
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(parts.headers["x-jwt-payload"], payload);

    let expired = key.sign("ES256", &claims(json!({"exp": NOW - 3600})));
    let mut by_param = Request::get(format!("http://reviews/?a=1&jwt={expired}"))
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(check_at(&filter, &mut by_param, NOW), Err(Failure::Expired));
    // A bearer token is not where this provider looks: no token, allowed.
    assert_eq!(run(&filter, Some(&expired)).0, Ok(()));

    // Without a token, the claim and payload headers a client sends
    // itself do not reach the application.
    let mut forged = Request::get("http://reviews/")
        .header("x-sub", "admin")
        .header("x-jwt-payload", "e30")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(check_at(&filter, &mut forged, NOW), Ok(()));
    assert!(forged.headers.get("x-sub").is_none());
    assert!(forged.headers.get("x-jwt-payload").is_none());
}

#[test]
fn with_two_issuers_each_token_needs_its_own_provider() {
    let (one, two) = (Signer::p256("one"), Signer::p384("two"));
    let mut second = provider(&[&two]);
    second["issuer"] = json!("https://two.example");
    let missing_or = |name: &str| json!({"requires_any": {"requirements": [{"provider_name": name}, {"allow_missing": {}}]}});
    // istiod's shape for several rules: any provider, or each one-or-missing.
    let filter = filter(json!({
        "providers": {"origins-0": provider(&[&one]), "origins-1": second},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"},
            {"provider_name": "origins-1"},
            {"requires_all": {"requirements": [missing_or("origins-0"), missing_or("origins-1")]}},
        ]}}}],
    }));
    let valid = two.sign("ES384", &claims(json!({"iss": "https://two.example"})));
    assert_eq!(run(&filter, Some(&valid)).0, Ok(()));
    // Signed by another key under the same key id.
    let forged = Signer::p384("two").sign("ES384", &claims(json!({"iss": "https://two.example"})));
    assert_eq!(
        run(&filter, Some(&forged)).0,
        Err(Failure::VerificationFails)
    );
    assert_eq!(run(&filter, None).0, Ok(()));
}

#[test]
fn cors_preflights_bypass_the_check() {
    let key = Signer::p256("k");
    let filter = filter(json!({
        "providers": {"p": provider(&[&key])},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "p"}}],
        "bypass_cors_preflight": true,
    }));
    let mut preflight = Request::options("http://reviews/")
        .header("origin", "http://web")
        .header("access-control-request-method", "GET")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(check_at(&filter, &mut preflight, NOW), Ok(()));
}
