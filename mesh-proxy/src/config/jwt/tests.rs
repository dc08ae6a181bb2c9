use serde_json::{Value, json};

use crate::config::{HttpAccess, ListenerKind};
use crate::testing::{compile, http_bootstrap};

const JWT_AUTHN: &str =
    "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication";
const RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k",
    "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

/// A bootstrap whose one listener has `filters` before the router.
fn with_filters(filters: Value) -> Value {
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}]),
        &["a"],
    );
    let list = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"];
    let router = list[0].take();
    let mut all = filters.as_array().unwrap().clone();
    all.push(router);
    *list = Value::Array(all);
    bootstrap
}

/// Why the HTTP filters of the one listener, before the router, do not compile.
fn error(filters: Value) -> String {
    compile(&with_filters(filters)).unwrap_err().to_string()
}

fn jwt_filter(provider: Value, requires: Value) -> Value {
    json!({"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": JWT_AUTHN,
        "providers": {"p": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": requires}],
    }})
}

#[test]
fn fetching_keys_is_refused_by_field() {
    let remote = json!({"issuer": "i", "remote_jwks": {"http_uri": {
        "uri": "https://issuer/jwks", "cluster": "jwks", "timeout": "5s"}}});
    let err = error(json!([jwt_filter(remote, json!({"provider_name": "p"}))]));
    assert!(err.contains("providers[\"p\"].remote_jwks"), "{err}");
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn unreadable_keys_and_unknown_providers_are_refused() {
    let not_json = json!({"issuer": "i", "local_jwks": {"inline_string": "keys"}});
    let err = error(json!([jwt_filter(not_json, json!({"provider_name": "p"}))]));
    assert!(err.contains("local_jwks: the JWKS is not JSON"), "{err}");
    // A key set with no usable key is taken, as Envoy takes it: its tokens
    // fail, the rest of the config serves.
    let no_keys = json!({"issuer": "i", "local_jwks": {"inline_string": r#"{"keys":[]}"#}});
    let filters = json!([jwt_filter(no_keys, json!({"provider_name": "p"}))]);
    assert!(compile(&with_filters(filters)).is_ok());

    let good = json!({"issuer": "i", "local_jwks": {"inline_string": JWKS}});
    let err = error(json!([jwt_filter(
        good.clone(),
        json!({"provider_name": "q"})
    )]));
    assert!(
        err.contains("rules[0].requires.provider_name: no provider \"q\""),
        "{err}"
    );

    let mut subjects = good;
    subjects["subjects"] = json!({"exact": "alice"});
    let err = error(json!([jwt_filter(subjects, json!({"provider_name": "p"}))]));
    assert!(err.contains("subjects is not supported"), "{err}");
}

#[test]
fn access_filters_keep_their_order() {
    let good = json!({"issuer": "i", "local_jwks": {"inline_string": JWKS}});
    let rbac = json!({"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": RBAC, "rules": {"action": "DENY"}}});
    let config = compile(&with_filters(json!([
        rbac,
        jwt_filter(good, json!({"allow_missing": {}}))
    ])))
    .unwrap();
    let ListenerKind::Http(manager) = &config.listeners[0].chains[0].kind else {
        panic!("an HTTP listener");
    };
    // An RBAC filter before jwt_authn does not see what it verifies, as in Envoy.
    assert!(matches!(
        manager.access.as_slice(),
        [HttpAccess::Rbac(_), HttpAccess::Jwt(_)]
    ));
}
