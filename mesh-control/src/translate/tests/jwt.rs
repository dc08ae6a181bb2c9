//! RequestAuthentication and AuthorizationPolicy with request principals,
//! translated into the inbound filters istiod writes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{endpoint, http_filters_of, inbound_chain, proxy, reviews_snapshot, translate};
use crate::model::{FetchedJwks, MeshSnapshot};

const INLINE_KEYS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

fn policies() -> String {
    format!(
        "\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: mesh, namespace: mesh-system}}
spec:
  jwtRules:
  - issuer: https://b.example
    jwksUri: https://b.example/keys
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: reviews, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: https://a.example
    audiences: [reviews]
    jwks: '{INLINE_KEYS}'
    outputPayloadToHeader: x-jwt-payload
    fromHeaders: [{{name: x-token, prefix: 'Token '}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: ratings, namespace: default}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  jwtRules:
  - issuer: https://c.example
    jwks: '{INLINE_KEYS}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: admins, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  rules:
  - from: [{{source: {{requestPrincipals: [https://a.example/alice]}}}}]
    when:
    - key: request.auth.claims[groups]
      values: [admin]
"
    )
}

fn snapshot(fetched: &[(&str, &str)]) -> MeshSnapshot {
    let mut snapshot = reviews_snapshot(&policies());
    let mut own = (*endpoint("reviews", "v1", "10.9.9.9")).clone();
    own.ports.insert("http".into(), 8080);
    snapshot.endpoints.push(Arc::new(own));
    snapshot.jwks = Arc::new(FetchedJwks(
        fetched
            .iter()
            .map(|(url, keys)| ((*url).to_owned(), Arc::from(*keys)))
            .collect(),
    ));
    snapshot
}

/// The HTTP filters of the first inbound HTTP chain, as JSON.
fn inbound_filters(snapshot: &MeshSnapshot) -> Vec<Value> {
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    let resources = translate(&me, snapshot);
    http_filters_of(&inbound_chain(&resources, "0.0.0.0_8080"))
}

#[test]
fn request_authentication_becomes_jwt_authn_ahead_of_rbac() {
    let filters = inbound_filters(&snapshot(&[("https://b.example/keys", INLINE_KEYS)]));
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "istio.metadata_exchange",
            "envoy.filters.http.jwt_authn",
            "envoy.filters.http.rbac",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    let jwt = &filters[1]["typed_config"];
    let a = &jwt["providers"]["origins-0"];
    assert_eq!(a["issuer"], "https://a.example", "sorted by issuer");
    assert_eq!(a["audiences"], json!(["reviews"]));
    assert_eq!(
        a["from_headers"],
        json!([{"name": "x-token", "value_prefix": "Token "}])
    );
    assert_eq!(a["forward_payload_header"], "x-jwt-payload");
    assert_eq!(a["payload_in_metadata"], "payload");
    assert_eq!(
        a["normalize_payload_in_metadata"]["space_delimited_claims"],
        json!(["permission", "scope"])
    );
    assert_eq!(a["local_jwks"]["inline_string"], INLINE_KEYS);
    let b = &jwt["providers"]["origins-1"];
    assert_eq!(b["issuer"], "https://b.example");
    assert_eq!(
        b["local_jwks"]["inline_string"], INLINE_KEYS,
        "fetched keys"
    );
    assert_eq!(
        jwt["providers"].as_object().unwrap().len(),
        2,
        "not ratings'"
    );
    let one_or_missing = |name: &str| json!({"requires_any": {"requirements": [{"provider_name": name}, {"allow_missing": {}}]}});
    assert_eq!(
        jwt["rules"],
        json!([{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
            {"provider_name": "origins-0"},
            {"provider_name": "origins-1"},
            {"requires_all": {"requirements": [one_or_missing("origins-0"), one_or_missing("origins-1")]}},
        ]}}}])
    );
    assert_eq!(jwt["bypass_cors_preflight"], true);
}

#[test]
fn request_principals_and_claims_match_the_verified_payload() {
    let filters = inbound_filters(&snapshot(&[]));
    let rbac = &filters[2]["typed_config"]["rules"];
    let policy = &rbac["policies"]["ns[default]-policy[admins]-rule[0]"];
    let claim = |key: &str, value: &str| {
        json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "payload"}, {"key": key}],
            "value": {"string_match": {"exact": value}}}})
    };
    let from = &policy["principals"][0]["and_ids"]["ids"][0]["or_ids"]["ids"][0];
    let principal = &from["and_ids"]["ids"][0]["or_ids"]["ids"][0];
    assert_eq!(
        principal,
        &json!({"and_ids": {"ids": [claim("iss", "https://a.example"), claim("sub", "alice")]}})
    );
    let when = &policy["principals"][0]["and_ids"]["ids"][1]["and_ids"]["ids"][0]["or_ids"]["ids"]
        [0]["metadata"];
    assert_eq!(when["path"], json!([{"key": "payload"}, {"key": "groups"}]));
    assert_eq!(
        when["value"],
        json!({"or_match": {"value_matchers": [
            {"list_match": {"one_of": {"string_match": {"exact": "admin"}}}},
            {"string_match": {"exact": "admin"}}]}})
    );
}

#[test]
fn keys_not_fetched_yet_let_no_token_through() {
    let filters = inbound_filters(&snapshot(&[]));
    let keys = filters[1]["typed_config"]["providers"]["origins-1"]["local_jwks"]["inline_string"]
        .as_str()
        .unwrap()
        .to_owned();
    let keys: Value = serde_json::from_str(&keys).unwrap();
    assert_eq!(keys["keys"][0]["kty"], "RSA");
    assert!(keys["keys"][0].get("d").is_none(), "public only");
}
