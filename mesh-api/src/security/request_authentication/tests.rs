use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn assert_only_error(doc: Value, path: &str, fragment: &str) {
    testing::assert_only_error::<RequestAuthenticationSpec>(doc, path, fragment);
}

/// A policy with one JWT rule: a valid issuer plus the given fields.
fn rule_with(fields: Value) -> Value {
    let mut rule = json!({"issuer": "https://example.com"});
    rule.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    json!({"jwtRules": [rule]})
}

const JWKS: &str = r#"{"keys":[{"kty":"RSA","e":"AQAB","n":"xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ"}]}"#;

fn rich() -> Value {
    json!({
        "selector": {"matchLabels": {"app": "productpage"}},
        "jwtRules": [
            {
                "issuer": "testing@secure.istio.io",
                "audiences": ["bookstore_android.apps.example.com", "bookstore_web.apps.example.com"],
                "jwksUri": "https://raw.githubusercontent.com/istio/istio/release-1.20/security/tools/jwt/samples/jwks.json",
                "fromHeaders": [{"name": "x-jwt-assertion", "prefix": "Bearer "}, {"name": "authorization"}],
                "fromParams": ["my_token"],
                "fromCookies": ["auth-token"],
                "outputPayloadToHeader": "x-jwt-payload",
                "forwardOriginalToken": true,
                "outputClaimToHeaders": [
                    {"header": "x-my-company-jwt-group", "claim": "my-group"},
                    {"header": "x_jwt_claim_group", "claim": "nested.key.group"}
                ],
                "timeout": "10s",
                "spaceDelimitedClaims": ["custom_scope", "roles"]
            },
            {"issuer": "https://local.example.com", "jwks": JWKS, "timeout": "1500ms"},
            {"issuer": "https://ip.example.com", "jwksUri": "http://10.0.0.1:8080/jwks.json"},
            {"issuer": "https://v6.example.com", "jwksUri": "https://[2001:db8::1]:8443/keys?x=1"}
        ]
    })
}

#[test]
fn rich_document_is_valid_and_round_trips() {
    let spec: RequestAuthenticationSpec = parse(rich());
    assert_eq!(crate::validate::check(&spec), vec![]);
    let again: RequestAuthenticationSpec =
        serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(again, spec);
    assert_eq!(spec.jwt_rules[1].timeout, Some(Duration::from_millis(1500)));
}

#[test]
fn single_jwk_and_snake_case_jwks_uri_are_accepted() {
    let doc = rule_with(json!({"jwks": r#"{"kty":"EC","crv":"P-256","x":"a","y":"b"}"#}));
    assert_valid::<RequestAuthenticationSpec>(doc);
    let spec: RequestAuthenticationSpec =
        parse(rule_with(json!({"jwks_uri": "https://example.com/jwks"})));
    assert_eq!(spec.jwt_rules[0].jwks_uri, "https://example.com/jwks");
}

#[test]
fn crd_has_istio_names() {
    let crd = RequestAuthentication::crd();
    assert_eq!(crd.spec.names.plural, "requestauthentications");
    assert_eq!(crd.spec.names.short_names, Some(vec!["ra".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["istio-io".to_owned(), "security-istio-io".to_owned()])
    );
}

#[test]
fn unknown_field_fails_to_parse() {
    let err = serde_json::from_value::<RequestAuthenticationSpec>(rule_with(
        json!({"jwksUrl": "https://x"}),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `jwksUrl`"), "{err}");
}

#[test]
fn malformed_timeout_fails_to_parse() {
    let err = serde_json::from_value::<RequestAuthenticationSpec>(rule_with(
        json!({"timeout": "5 days"}),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("invalid duration"), "{err}");
}

#[test]
fn header_location_without_name_fails_to_parse() {
    let doc = rule_with(json!({"fromHeaders": [{"prefix": "Bearer "}]}));
    let err = serde_json::from_value::<RequestAuthenticationSpec>(doc).unwrap_err();
    assert!(err.to_string().contains("missing field `name`"), "{err}");
}

#[test]
fn selector_and_target_ref_are_exclusive() {
    assert_only_error(
        json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRef": {"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}
        }),
        "spec.targetRef",
        "only one of selector, targetRef may be set",
    );
}

#[test]
fn target_ref_to_unsupported_kind_is_rejected() {
    assert_only_error(
        json!({"targetRefs": [{"kind": "Deployment", "group": "apps", "name": "d"}]}),
        "spec.targetRefs[0].kind",
        "not apps/Deployment",
    );
}

#[test]
fn missing_issuer_is_rejected() {
    assert_only_error(
        json!({"jwtRules": [{"jwksUri": "https://example.com/jwks"}]}),
        "spec.jwtRules[0].issuer",
        "issuer is required",
    );
}

#[test]
fn empty_audience_is_rejected() {
    assert_only_error(
        rule_with(json!({"audiences": ["web", ""]})),
        "spec.jwtRules[0].audiences[1]",
        "audience must not be empty",
    );
}

#[test]
fn jwks_and_jwks_uri_are_exclusive() {
    assert_only_error(
        rule_with(json!({"jwksUri": "https://example.com/jwks", "jwks": JWKS})),
        "spec.jwtRules[0].jwks",
        "only one of jwksUri, jwks may be set",
    );
}

#[test]
fn non_http_jwks_uri_is_rejected() {
    assert_only_error(
        rule_with(json!({"jwksUri": "ftp://example.com/jwks"})),
        "spec.jwtRules[0].jwksUri",
        "scheme must be http:// or https://",
    );
}

#[test]
fn jwks_uri_without_host_is_rejected() {
    assert_only_error(
        rule_with(json!({"jwksUri": "https:///jwks.json"})),
        "spec.jwtRules[0].jwksUri",
        "the host is missing",
    );
}

#[test]
fn jwks_uri_with_bad_port_is_rejected() {
    assert_only_error(
        rule_with(json!({"jwksUri": "https://example.com:99999/jwks"})),
        "spec.jwtRules[0].jwksUri",
        "port number 99999",
    );
}

#[test]
fn jwks_that_is_not_json_is_rejected() {
    assert_only_error(
        rule_with(json!({"jwks": "{keys: [}"})),
        "spec.jwtRules[0].jwks",
        "jwks is not valid JSON",
    );
}

#[test]
fn jwks_key_without_type_is_rejected() {
    assert_only_error(
        rule_with(json!({"jwks": r#"{"keys":[{"kty":"RSA","n":"a","e":"b"},{"n":"a"}]}"#})),
        "spec.jwtRules[0].jwks",
        "keys[1] has no kty",
    );
}

#[test]
fn bad_from_header_name_is_rejected() {
    assert_only_error(
        rule_with(json!({"fromHeaders": [{"name": "x jwt"}]})),
        "spec.jwtRules[0].fromHeaders[0].name",
        "not a valid HTTP header name",
    );
}

#[test]
fn empty_from_param_is_rejected() {
    assert_only_error(
        rule_with(json!({"fromParams": [""]})),
        "spec.jwtRules[0].fromParams[0]",
        "query parameter name must not be empty",
    );
}

#[test]
fn bad_cookie_name_is_rejected() {
    assert_only_error(
        rule_with(json!({"fromCookies": ["auth;token"]})),
        "spec.jwtRules[0].fromCookies[0]",
        "not a valid cookie name",
    );
}

#[test]
fn bad_output_payload_header_is_rejected() {
    assert_only_error(
        rule_with(json!({"outputPayloadToHeader": "x:payload"})),
        "spec.jwtRules[0].outputPayloadToHeader",
        "not a valid HTTP header name",
    );
}

#[test]
fn bad_claim_header_name_is_rejected() {
    assert_only_error(
        rule_with(json!({"outputClaimToHeaders": [{"header": "x.group", "claim": "group"}]})),
        "spec.jwtRules[0].outputClaimToHeaders[0].header",
        "letters, digits, '-' and '_'",
    );
}

#[test]
fn duplicate_claim_header_is_rejected() {
    assert_only_error(
        rule_with(json!({"outputClaimToHeaders": [
            {"header": "x-group", "claim": "group"},
            {"header": "X-Group", "claim": "team"}
        ]})),
        "spec.jwtRules[0].outputClaimToHeaders[1].header",
        "already set by an earlier entry",
    );
}

#[test]
fn empty_claim_is_rejected() {
    assert_only_error(
        rule_with(json!({"outputClaimToHeaders": [{"header": "x-group", "claim": ""}]})),
        "spec.jwtRules[0].outputClaimToHeaders[0].claim",
        "claim must name",
    );
}

#[test]
fn zero_timeout_is_rejected() {
    assert_only_error(
        rule_with(json!({"timeout": "0s"})),
        "spec.jwtRules[0].timeout",
        "at least 1ms",
    );
}

#[test]
fn sub_millisecond_timeout_is_rejected() {
    assert_only_error(
        rule_with(json!({"timeout": "1500us"})),
        "spec.jwtRules[0].timeout",
        "more than millisecond precision",
    );
}

#[test]
fn empty_space_delimited_claim_is_rejected() {
    assert_only_error(
        rule_with(json!({"spaceDelimitedClaims": ["roles", ""]})),
        "spec.jwtRules[0].spaceDelimitedClaims[1]",
        "claim name must not be empty",
    );
}
