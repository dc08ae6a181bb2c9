use std::net::IpAddr;

use envoy_types::pb::envoy::config::rbac::v3::Rbac as EnvoyRbac;
use serde_json::{Value, json};

use super::*;

fn compile_json(rules: Value, http: bool) -> Result<Rbac, ConfigError> {
    let rules: EnvoyRbac = mesh_api::envoy::from_json(&rules).unwrap();
    let namespace = if http {
        HTTP_METADATA
    } else {
        NETWORK_METADATA
    };
    let at = At::resource("listener", "inbound");
    compile(namespace, Some(&rules), None, "", &at).map(|r| r.unwrap())
}

fn allows(rbac: &Rbac, facts: &Facts<'_>) -> bool {
    rbac.decide(facts).allowed
}

/// Whether every filter lets it through, as a chain of filters decides.
fn allowed(filters: &[Rbac], facts: &Facts<'_>) -> bool {
    filters.iter().all(|f| allows(f, facts))
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
    assert!(allows(
        &rbac,
        &facts(Some(&get), Some(PRODUCTPAGE), "10.0.0.2", 9080)
    ));
    assert!(!allows(
        &rbac,
        &facts(Some(&delete), Some(PRODUCTPAGE), "10.0.0.2", 9080)
    ));
    assert!(!allows(
        &rbac,
        &facts(Some(&admin), Some(PRODUCTPAGE), "10.0.0.2", 9080)
    ));
    assert!(
        !allows(
            &rbac,
            &facts(
                Some(&get),
                Some("spiffe://cluster.local/ns/default/sa/other"),
                "10.0.0.2",
                9080
            )
        ),
        "another principal"
    );
    assert!(
        !allows(&rbac, &facts(Some(&get), None, "10.0.0.2", 9080)),
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
    assert!(allows(&deny, &facts(Some(&get), None, "10.1.2.3", 9080)));
    assert!(!allows(
        &deny,
        &facts(Some(&delete), None, "10.1.2.3", 9080)
    ));
    assert!(!allows(
        &deny,
        &facts(Some(&get), None, "192.168.0.1", 9080)
    ));
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
    assert!(allows(&rbac, &facts(Some(&blue), None, "10.0.0.2", 9080)));
    assert!(allows(&rbac, &facts(Some(&blue), None, "10.0.0.2", 15009)));
    assert!(
        !allows(&rbac, &facts(Some(&blue), None, "10.0.0.2", 15010)),
        "the end is excluded"
    );
    assert!(!allows(&rbac, &facts(Some(&red), None, "10.0.0.2", 9080)));
}

#[test]
fn a_policy_set_with_no_policies_allows_nothing_under_allow() {
    let rbac = compile_json(json!({"action": "ALLOW"}), false).unwrap();
    assert!(!allows(&rbac, &facts(None, None, "10.0.0.2", 9080)));
    let rbac = compile_json(json!({"action": "DENY"}), false).unwrap();
    assert!(allows(&rbac, &facts(None, None, "10.0.0.2", 9080)));
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
    let matcher: HttpRbac = mesh_api::envoy::from_json(&json!({
        "rules": {"action": "ALLOW"},
        "shadow_matcher": {"matcher_list": {"matchers": []}}
    }))
    .unwrap();
    let err = http_filter(&matcher, &At::resource("listener", "inbound")).unwrap_err();
    assert_eq!(err.field, "shadow_matcher", "{err}");
}

/// What the CUSTOM action of Istio writes: shadow DENY rules whose match
/// `ext_authz` reads back from the metadata.
fn shadow_filter() -> Rbac {
    let config: HttpRbac = mesh_api::envoy::from_json(&json!({
        "shadow_rules": {"action": "DENY", "policies": {
            "istio-ext-authz-ns[default]-policy[ext]-rule[0]": {
                "permissions": [{"url_path": {"path": {"prefix": "/admin"}}}],
                "principals": [{"any": true}]
            }
        }},
        "shadow_rules_stat_prefix": "istio_ext_authz_"
    }))
    .unwrap();
    http_filter(&config, &At::resource("listener", "inbound"))
        .unwrap()
        .unwrap()
}

#[test]
fn shadow_rules_report_and_never_refuse() {
    let rbac = shadow_filter();
    let admin = request("GET", "/admin/users", &[]);
    let decision = rbac.decide(&facts(Some(&admin), None, "10.0.0.2", 80));
    assert!(decision.allowed, "shadow rules do not enforce");
    let key = |k: &str| {
        decision
            .metadata
            .get(HTTP_METADATA, &[k.to_owned()])
            .cloned()
    };
    assert_eq!(
        key("istio_ext_authz_shadow_effective_policy_id"),
        Some(json!("istio-ext-authz-ns[default]-policy[ext]-rule[0]"))
    );
    assert_eq!(
        key("istio_ext_authz_shadow_engine_result"),
        Some(json!("denied"))
    );

    let other = request("GET", "/products", &[]);
    let decision = rbac.decide(&facts(Some(&other), None, "10.0.0.2", 80));
    assert!(decision.allowed);
    let namespace = &decision.metadata.0[HTTP_METADATA];
    assert_eq!(
        namespace.get("istio_ext_authz_shadow_engine_result"),
        Some(&json!("allowed"))
    );
    assert!(
        !namespace.contains_key("istio_ext_authz_shadow_effective_policy_id"),
        "no policy matched"
    );
}

#[test]
fn log_rules_hint_the_access_log_and_allow_everything() {
    let rbac = compile_json(
        json!({"action": "LOG", "policies": {"ns[default]-policy[audit]-rule[0]": {
            "permissions": [{"header": {"name": ":method", "string_match": {"exact": "DELETE"}}}],
            "principals": [{"any": true}]
        }}}),
        true,
    )
    .unwrap();
    let hint = |method: &str| {
        let parts = request(method, "/", &[]);
        let decision = rbac.decide(&facts(Some(&parts), None, "10.0.0.2", 80));
        assert!(decision.allowed, "LOG never refuses");
        decision
            .metadata
            .get(COMMON_METADATA, &[ACCESS_LOG_HINT.to_owned()])
            .cloned()
    };
    assert_eq!(hint("DELETE"), Some(json!(true)));
    assert_eq!(hint("GET"), Some(json!(false)));
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
    let allows = |parts: &Parts| allows(&rbac, &facts(Some(parts), None, "10.0.0.2", 80));
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
