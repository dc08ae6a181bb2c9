use std::net::IpAddr;

use envoy_types::pb::envoy::config::rbac::v3::Rbac as EnvoyRbac;
use serde_json::{Value, json};

use super::*;

fn compile_json(rules: Value, http: bool) -> Result<Rbac, ConfigError> {
    let rules: EnvoyRbac = mesh_api::envoy::from_json(&rules).unwrap();
    compile(Some(&rules), http, &At::resource("listener", "inbound")).map(|r| r.unwrap())
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

fn facts<'a>(
    request: Option<&'a Parts>,
    peer: Option<&'a str>,
    remote: &str,
    port: u16,
) -> Facts<'a> {
    Facts {
        request,
        peer,
        remote: remote.parse().unwrap(),
        destination_ip: IpAddr::from([10, 0, 0, 1]),
        destination_port: port,
        server_name: None,
    }
}

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";

/// Istio's shape for "reviews only from productpage, GET only; nothing under /admin".
fn allow_productpage() -> Value {
    json!({
        "action": "ALLOW",
        "policies": {
            "ns[default]-policy[reviews-viewer]-rule[0]": {
                "permissions": [{"and_rules": {"rules": [
                    {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": "GET"}}}]}},
                    {"not_rule": {"url_path": {"path": {"prefix": "/admin"}}}}
                ]}}],
                "principals": [{"and_ids": {"ids": [
                    {"or_ids": {"ids": [{"authenticated": {"principal_name": {"exact": PRODUCTPAGE}}}]}}
                ]}}]
            }
        }
    })
}

#[test]
fn allow_lets_through_only_what_a_policy_matches() {
    let rbac = compile_json(allow_productpage(), true).unwrap();
    let get = request("GET", "/reviews/0?x=1", &[]);
    let delete = request("DELETE", "/reviews/0", &[]);
    let admin = request("GET", "/admin/stats", &[]);
    assert!(rbac.allows(&facts(Some(&get), Some(PRODUCTPAGE), "10.0.0.2", 9080)));
    assert!(!rbac.allows(&facts(Some(&delete), Some(PRODUCTPAGE), "10.0.0.2", 9080)));
    assert!(!rbac.allows(&facts(Some(&admin), Some(PRODUCTPAGE), "10.0.0.2", 9080)));
    assert!(
        !rbac.allows(&facts(
            Some(&get),
            Some("spiffe://cluster.local/ns/default/sa/other"),
            "10.0.0.2",
            9080
        )),
        "another principal"
    );
    assert!(
        !rbac.allows(&facts(Some(&get), None, "10.0.0.2", 9080)),
        "plain text has no principal"
    );
}

#[test]
fn deny_refuses_what_a_policy_matches_and_filters_chain() {
    let deny = compile_json(
        json!({
            "action": "DENY",
            "policies": {
                "deny-delete": {
                    "permissions": [{"header": {"name": ":method", "string_match": {"exact": "DELETE"}}}],
                    "principals": [{"any": true}]
                },
                "deny-outsiders": {
                    "permissions": [{"any": true}],
                    "principals": [{"not_id": {"remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}}]
                }
            }
        }),
        true,
    )
    .unwrap();
    let allow = compile_json(allow_productpage(), true).unwrap();
    let get = request("GET", "/reviews/0", &[]);
    let delete = request("DELETE", "/reviews/0", &[]);
    assert!(deny.allows(&facts(Some(&get), None, "10.1.2.3", 9080)));
    assert!(!deny.allows(&facts(Some(&delete), None, "10.1.2.3", 9080)));
    assert!(!deny.allows(&facts(Some(&get), None, "192.168.0.1", 9080)));
    let both = [deny, allow];
    assert!(allowed(
        &both,
        &facts(Some(&get), Some(PRODUCTPAGE), "10.1.2.3", 9080)
    ));
    assert!(!allowed(
        &both,
        &facts(Some(&get), Some(PRODUCTPAGE), "192.168.0.1", 9080)
    ));
    assert!(!allowed(&both, &facts(Some(&get), None, "10.1.2.3", 9080)));
}

#[test]
fn ports_headers_and_names() {
    let rbac = compile_json(
        json!({
            "action": "ALLOW",
            "policies": {"p": {
                "permissions": [{"or_rules": {"rules": [
                    {"destination_port": 9080},
                    {"destination_port_range": {"start": 15000, "end": 15010}}
                ]}}],
                "principals": [{"header": {"name": "x-team", "string_match": {"prefix": "blue"}}}]
            }}
        }),
        true,
    )
    .unwrap();
    let blue = request("GET", "/", &[("x-team", "blue-1")]);
    let red = request("GET", "/", &[("x-team", "red")]);
    assert!(rbac.allows(&facts(Some(&blue), None, "10.0.0.2", 9080)));
    assert!(rbac.allows(&facts(Some(&blue), None, "10.0.0.2", 15009)));
    assert!(
        !rbac.allows(&facts(Some(&blue), None, "10.0.0.2", 15010)),
        "the end is excluded"
    );
    assert!(!rbac.allows(&facts(Some(&red), None, "10.0.0.2", 9080)));
}

#[test]
fn a_policy_set_with_no_policies_allows_nothing_under_allow() {
    let rbac = compile_json(json!({"action": "ALLOW"}), false).unwrap();
    assert!(!rbac.allows(&facts(None, None, "10.0.0.2", 9080)));
    let rbac = compile_json(json!({"action": "DENY"}), false).unwrap();
    assert!(rbac.allows(&facts(None, None, "10.0.0.2", 9080)));
}

#[test]
fn unsupported_and_http_only_rules_are_refused_by_field() {
    let err = compile_json(allow_productpage(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("header in a network RBAC filter is not supported"),
        "{err}"
    );
    assert!(
        err.contains(
            "rules.policies[\"ns[default]-policy[reviews-viewer]-rule[0]\"].permissions[0]"
        ),
        "{err}"
    );
    let err = compile_json(
        json!({"action": "ALLOW", "policies": {"p": {
            "permissions": [{"any": true}],
            "principals": [{"filter_state": {"key": "x", "string_match": {"exact": "y"}}}]
        }}}),
        true,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("principal filter_state is not supported"),
        "{err}"
    );
    let err = compile_json(json!({"action": "LOG"}), true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rules.action"), "{err}");
}

/// istiod's principal for `requestPrincipals: ["https://issuer.example/alice"]`
/// and `request.auth.claims[groups]: ["admin"]`.
fn allow_request_principal() -> Value {
    let claim = |key: &str, exact: &str| {
        json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
            "path": [{"key": "payload"}, {"key": key}],
            "value": {"string_match": {"exact": exact}}}})
    };
    let groups = json!({"metadata": {"filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "payload"}, {"key": "groups"}],
        "value": {"or_match": {"value_matchers": [
            {"list_match": {"one_of": {"string_match": {"exact": "admin"}}}},
            {"string_match": {"exact": "admin"}}]}}}});
    json!({
        "action": "ALLOW",
        "policies": {"ns[default]-policy[jwt]-rule[0]": {
            "permissions": [{"any": true}],
            "principals": [{"and_ids": {"ids": [
                {"and_ids": {"ids": [claim("iss", "https://issuer.example"), claim("sub", "alice")]}},
                groups,
            ]}}]
        }}
    })
}

fn with_payload(payload: Value) -> Parts {
    let mut parts = request("GET", "/", &[]);
    let mut metadata = DynamicMetadata::default();
    metadata.set("envoy.filters.http.jwt_authn", "payload", payload);
    parts.extensions.insert(metadata);
    parts
}

#[test]
fn metadata_rules_read_what_jwt_authn_verified() {
    let rbac = compile_json(allow_request_principal(), true).unwrap();
    let allows = |parts: &Parts| rbac.allows(&facts(Some(parts), None, "10.0.0.2", 80));
    let alice = |groups: Value| {
        with_payload(json!({"iss": "https://issuer.example", "sub": "alice", "groups": groups}))
    };
    assert!(allows(&alice(json!(["dev", "admin"]))));
    assert!(allows(&alice(json!("admin"))));
    assert!(!allows(&alice(json!(["dev"]))));
    assert!(!allows(&with_payload(
        json!({"iss": "https://issuer.example", "sub": "bob", "groups": "admin"})
    )));
    assert!(!allows(&request("GET", "/", &[])), "no token, no principal");
}

#[test]
fn metadata_rules_are_http_only() {
    let err = compile_json(allow_request_principal(), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("metadata in a network RBAC filter"),
        "{err}"
    );
}
