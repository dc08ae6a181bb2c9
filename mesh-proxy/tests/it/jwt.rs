//! `jwt_authn` and RBAC end to end, in the shape istiod gives them to a
//! sidecar for a RequestAuthentication and an AuthorizationPolicy with
//! `requestPrincipals`: invalid tokens get 401, a path that needs a
//! principal refuses requests without a token with 403, and valid tokens
//! reach the application as configured.

use crate::support;

use http::StatusCode;
use serde_json::{Value, json};
use support::jwt::{Signer, jwks};
use support::{Echo, Proxy, bootstrap, cluster, echoed_header, get, http_listener};

const ISSUER: &str = "https://issuer.example";
const JWT_AUTHN: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const HTTP_RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// istiod's filter for one JWT rule with `outputPayloadToHeader` and
/// `outputClaimToHeaders`.
fn jwt_authn(keys: &str) -> Value {
    json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN,
        "providers": {"origins-0": {
            "issuer": ISSUER,
            "audiences": ["reviews"],
            "local_jwks": {"inline_string": keys},
            "forward_payload_header": "x-jwt-payload",
            "claim_to_headers": [{"header_name": "x-jwt-sub", "claim_name": "sub"}],
            "payload_in_metadata": "payload",
            "normalize_payload_in_metadata": {"space_delimited_claims": ["permission", "scope"]},
        }},
        "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"}, {"allow_missing": {}}]}}}],
        "bypass_cors_preflight": true,
    }})
}

/// istiod's matcher for one JWT claim.
fn claim(key: &str, regex: &str) -> Value {
    json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "payload"}, {"key": key}],
        "value": {"string_match": {"safe_regex": {"regex": regex}}}}})
}

/// Anyone outside /private; under /private, any request principal
/// (`requestPrincipals: ["*"]`).
fn rbac() -> Value {
    json!({"name": "envoy.filters.http.rbac", "typed_config": {"@type": HTTP_RBAC, "rules": {
        "action": "ALLOW",
        "policies": {
            "ns[default]-policy[public]-rule[0]": {
                "permissions": [{"not_rule": {"url_path": {"path": {"prefix": "/private"}}}}],
                "principals": [{"any": true}]
            },
            "ns[default]-policy[private]-rule[0]": {
                "permissions": [{"url_path": {"path": {"prefix": "/private"}}}],
                "principals": [{"and_ids": {"ids": [claim("iss", ".+"), claim("sub", ".+")]}}]
            }
        }
    }}})
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(changes: Value) -> Value {
    let mut claims = json!({"iss": ISSUER, "sub": "alice", "aud": ["reviews"],
        "iat": now(), "exp": now() + 600});
    claims
        .as_object_mut()
        .unwrap()
        .extend(changes.as_object().unwrap().clone());
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_and_principals_required_where_policies_say() {
    let echo = Echo::start("reviews").await;
    let key = Signer::rsa("rsa-1");
    let mut listener = http_listener(
        "inbound",
        json!([{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "reviews"}}]}]),
    );
    support::before_router(&mut listener, json!([jwt_authn(&jwks(&[&key])), rbac()]));
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("reviews", &[echo.address])]),
    ))
    .await;
    let address = proxy.listener("inbound");
    let bearer = |claims: &Value| format!("Bearer {}", key.sign("RS256", claims));

    let valid = bearer(&claims(json!({})));
    let (status, body) = get(address, "/private/x", &[("authorization", &valid)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(echoed_header(&body, "x-jwt-sub"), "alice");
    let payload = valid.split('.').nth(1).unwrap();
    assert_eq!(echoed_header(&body, "x-jwt-payload"), payload);
    assert_eq!(
        echoed_header(&body, "authorization"),
        "",
        "the token is not forwarded"
    );

    let refused = [
        (json!({"exp": now() - 3600}), "Jwt is expired"),
        (
            json!({"iss": "https://other.example"}),
            "Jwt issuer is not configured",
        ),
        (
            json!({"aud": ["ratings"]}),
            "Audiences in Jwt are not allowed",
        ),
    ];
    for (changes, reason) in refused {
        let token = bearer(&claims(changes));
        let (status, body) = get(address, "/public", &[("authorization", &token)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{reason}");
        assert_eq!(body, reason);
    }

    let (status, body) = get(address, "/public", &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "no token is fine where no principal is needed: {body}"
    );
    let (status, body) = get(address, "/private/x", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "RBAC: access denied");
    proxy.quit().await;
}
