use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::validate::testing::{self, parse};

#[track_caller]
fn assert_only_error(doc: Value, path: &str, fragment: &str) {
    testing::assert_only_error::<AuthorizationPolicySpec>(doc, path, fragment);
}

/// A DENY policy with one rule holding `source` and `operation` as given.
fn deny_with(source: Value, operation: Value) -> Value {
    json!({
        "action": "DENY",
        "rules": [{"from": [{"source": source}], "to": [{"operation": operation}]}]
    })
}

/// An ALLOW policy with one rule holding only the condition `when`.
fn allow_when(condition: Value) -> Value {
    json!({"rules": [{"when": [condition]}]})
}

fn rich() -> Value {
    json!({
        "selector": {"matchLabels": {"app": "httpbin", "version": "v1"}},
        "action": "ALLOW",
        "rules": [
            {
                "from": [
                    {"source": {
                        "principals": ["cluster.local/ns/default/sa/sleep", "cluster.local/ns/prod/*", "*"],
                        "notPrincipals": ["*/sa/admin"],
                        "requestPrincipals": ["https://accounts.google.com/*"],
                        "notRequestPrincipals": ["https://evil.example.com/*"],
                        "namespaces": ["test", "prod-*"],
                        "notNamespaces": ["kube-system"],
                        "ipBlocks": ["203.0.113.4", "10.0.0.0/8", "2001:db8::/32"],
                        "notIpBlocks": ["10.1.2.3/32"],
                        "remoteIpBlocks": ["198.51.100.0/24"],
                        "notRemoteIpBlocks": ["::1"],
                        "trustDomains": ["cluster.local"],
                        "notTrustDomains": ["*.evil"]
                    }},
                    {"source": {"serviceAccounts": ["default/sleep", "curl"], "notServiceAccounts": ["prod/admin"]}}
                ],
                "to": [
                    {"operation": {
                        "hosts": ["*.example.com", "httpbin"],
                        "notHosts": ["admin.example.com"],
                        "ports": ["8080", "9080"],
                        "notPorts": ["15000"],
                        "methods": ["GET", "HEAD", "PROP*"],
                        "notMethods": ["DELETE"],
                        "paths": ["/info*", "/data", "*.png", "/api/{*}/items/{**}", "/foo/{**}/"],
                        "notPaths": ["/admin/*"]
                    }}
                ],
                "when": [
                    {"key": "request.auth.claims[iss]", "values": ["https://accounts.google.com"]},
                    {"key": "request.auth.claims[groups][admins]", "values": ["true"]},
                    {"key": "request.headers[x-user]", "notValues": ["guest"]},
                    {"key": "source.ip", "values": ["10.0.0.0/8"], "notValues": ["10.0.0.1"]},
                    {"key": "remote.ip", "values": ["2001:db8::1"]},
                    {"key": "destination.ip", "values": ["10.0.0.2"]},
                    {"key": "destination.port", "values": ["9080"]},
                    {"key": "source.namespace", "values": ["default"]},
                    {"key": "source.principal", "values": ["cluster.local/ns/default/sa/sleep"]},
                    {"key": "source.serviceAccount", "values": ["default/sleep"]},
                    {"key": "request.auth.principal", "values": ["issuer/subject"]},
                    {"key": "request.auth.audiences", "values": ["bookinfo"]},
                    {"key": "request.auth.presenter", "values": ["client"]},
                    {"key": "connection.sni", "values": ["*.example.com"]},
                    {"key": "experimental.envoy.filters.network.mysql_proxy[db.table]", "values": ["[update]"]}
                ]
            },
            {}
        ]
    })
}

#[test]
fn rich_document_is_valid_and_round_trips() {
    let spec: AuthorizationPolicySpec = parse(rich());
    assert_eq!(crate::validate::check(&spec), vec![]);
    let again: AuthorizationPolicySpec =
        serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn istio_documented_edge_cases_are_valid() {
    for doc in [
        json!({}),
        json!({"rules": [{}]}),
        json!({"action": "DENY", "rules": [{}]}),
        json!({"action": "AUDIT", "rules": [{"to": [{"operation": {"paths": ["/user/profile/*"]}}]}]}),
        json!({
            "action": "CUSTOM",
            "provider": {"name": "my-custom-authz"},
            "rules": [{"to": [{"operation": {"paths": ["/admin/*"]}}], "from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]
        }),
        json!({"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "waypoint"}]}),
        json!({"targetRef": {"kind": "Service", "name": "reviews"}}),
        json!({"targetRefs": [{"kind": "ServiceEntry", "group": "networking.istio.io", "name": "ext"}]}),
    ] {
        assert_eq!(
            crate::validate::check(&parse::<AuthorizationPolicySpec>(doc.clone())),
            vec![],
            "{doc}"
        );
    }
}

#[test]
fn effective_action_defaults_to_allow() {
    assert_eq!(
        parse::<AuthorizationPolicySpec>(json!({})).effective_action(),
        Action::Allow
    );
    assert_eq!(
        parse::<AuthorizationPolicySpec>(json!({"action": "AUDIT", "rules": [{}]}))
            .effective_action(),
        Action::Audit
    );
}

#[test]
fn crd_has_istio_names() {
    let crd = AuthorizationPolicy::crd();
    assert_eq!(crd.spec.names.plural, "authorizationpolicies");
    assert_eq!(crd.spec.names.short_names, Some(vec!["ap".to_owned()]));
    assert_eq!(
        crd.spec.names.categories,
        Some(vec!["istio-io".to_owned(), "security-istio-io".to_owned()])
    );
}

#[test]
fn unknown_field_fails_to_parse() {
    let doc = json!({"rules": [{"from": [{"source": {"principal": ["a"]}}]}]});
    let err = serde_json::from_value::<AuthorizationPolicySpec>(doc).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `principal`"),
        "{err}"
    );
}

#[test]
fn misspelled_action_fails_to_parse() {
    let err =
        serde_json::from_value::<AuthorizationPolicySpec>(json!({"action": "REJECT"})).unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `REJECT`"),
        "{err}"
    );
}

#[test]
fn condition_without_key_fails_to_parse() {
    let err =
        serde_json::from_value::<AuthorizationPolicySpec>(allow_when(json!({"values": ["a"]})))
            .unwrap_err();
    assert!(err.to_string().contains("missing field `key`"), "{err}");
}

// --- scope ---

#[test]
fn selector_and_target_refs_are_exclusive() {
    assert_only_error(
        json!({
            "selector": {"matchLabels": {"app": "a"}},
            "targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw"}]
        }),
        "spec.targetRefs",
        "only one of selector, targetRefs may be set",
    );
}

#[test]
fn target_ref_to_unsupported_kind_is_rejected() {
    assert_only_error(
        json!({"targetRefs": [{"kind": "HTTPRoute", "group": "gateway.networking.k8s.io", "name": "r"}]}),
        "spec.targetRefs[0].kind",
        "not gateway.networking.k8s.io/HTTPRoute",
    );
}

#[test]
fn cross_namespace_target_ref_is_rejected() {
    assert_only_error(
        json!({"targetRef": {"kind": "Service", "name": "reviews", "namespace": "other"}}),
        "spec.targetRef.namespace",
        "cross-namespace",
    );
}

#[test]
fn too_many_target_refs_are_rejected() {
    let refs: Vec<Value> = (0..17)
        .map(|i| json!({"kind": "Service", "name": format!("s{i}")}))
        .collect();
    assert_only_error(
        json!({"targetRefs": refs}),
        "spec.targetRefs",
        "at most 16 targetRefs",
    );
}

// --- action and provider ---

#[test]
fn custom_without_provider_is_rejected() {
    assert_only_error(
        json!({"action": "CUSTOM", "rules": [{}]}),
        "spec.provider",
        "CUSTOM action needs a provider",
    );
}

#[test]
fn custom_with_empty_provider_name_is_rejected() {
    assert_only_error(
        json!({"action": "CUSTOM", "provider": {}, "rules": [{}]}),
        "spec.provider.name",
        "provider.name must name",
    );
}

#[test]
fn provider_without_custom_is_rejected() {
    assert_only_error(
        json!({"action": "DENY", "provider": {"name": "ext-authz"}, "rules": [{}]}),
        "spec.provider",
        "only allowed with the CUSTOM action, not Deny",
    );
}

#[test]
fn deny_without_rules_is_rejected() {
    assert_only_error(
        json!({"action": "DENY"}),
        "spec.rules",
        "action DENY and no rules never matches",
    );
}

#[test]
fn audit_without_rules_is_rejected() {
    assert_only_error(
        json!({"action": "AUDIT", "selector": {"matchLabels": {"app": "a"}}}),
        "spec.rules",
        "action AUDIT and no rules",
    );
}

#[test]
fn custom_with_principals_is_rejected() {
    assert_only_error(
        json!({
            "action": "CUSTOM",
            "provider": {"name": "ext-authz"},
            "rules": [{"from": [{"source": {"principals": ["cluster.local/ns/a/sa/b"]}}]}]
        }),
        "spec.rules[0].from[0].source.principals",
        "principals is not supported with the CUSTOM action",
    );
}

#[test]
fn custom_with_jwt_condition_is_rejected() {
    assert_only_error(
        json!({
            "action": "CUSTOM",
            "provider": {"name": "ext-authz"},
            "rules": [{"when": [{"key": "request.auth.claims[iss]", "values": ["x"]}]}]
        }),
        "spec.rules[0].when[0].key",
        "not supported with the CUSTOM action",
    );
}

// --- rule shape ---

#[test]
fn from_entry_without_source_is_rejected() {
    assert_only_error(
        json!({"rules": [{"from": [{}]}]}),
        "spec.rules[0].from[0].source",
        "needs a source",
    );
}

#[test]
fn empty_source_is_rejected() {
    assert_only_error(
        json!({"rules": [{"from": [{"source": {}}]}]}),
        "spec.rules[0].from[0].source",
        "source must set at least one field",
    );
}

#[test]
fn empty_operation_is_rejected() {
    assert_only_error(
        json!({"rules": [{"to": [{"operation": {}}]}]}),
        "spec.rules[0].to[0].operation",
        "operation must set at least one field",
    );
}

#[test]
fn to_entry_without_operation_is_rejected() {
    assert_only_error(
        json!({"rules": [{"to": [{}]}]}),
        "spec.rules[0].to[0].operation",
        "needs an operation",
    );
}

// --- source values ---

#[test]
fn service_accounts_with_namespaces_are_rejected() {
    assert_only_error(
        deny_with(
            json!({"serviceAccounts": ["default/sleep"], "namespaces": ["default"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.serviceAccounts",
        "cannot be combined with principals or namespaces",
    );
}

#[test]
fn wildcard_in_the_middle_of_a_principal_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"principals": ["cluster.local/ns/*/sa/admin"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.principals[0]",
        "`*` in an unsupported place",
    );
}

#[test]
fn spiffe_prefixed_principal_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"notPrincipals": ["spiffe://cluster.local/ns/a/sa/b"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.notPrincipals[0]",
        "must not start with spiffe://",
    );
}

#[test]
fn service_account_with_two_slashes_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"serviceAccounts": ["cluster.local/ns/sleep"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.serviceAccounts[0]",
        "must be written namespace/name or name",
    );
}

#[test]
fn service_account_wildcard_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"notServiceAccounts": ["default/*"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.notServiceAccounts[0]",
        "must not contain a wildcard",
    );
}

#[test]
fn bad_cidr_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"ipBlocks": ["10.0.0.0/33"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.ipBlocks[0]",
        "is not a valid CIDR block (prefix length 0 to 32)",
    );
}

#[test]
fn bad_remote_ip_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"notRemoteIpBlocks": ["10.0.0.256"]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.notRemoteIpBlocks[0]",
        "is not a valid IP address or CIDR block",
    );
}

#[test]
fn empty_namespace_value_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["prod", ""]}),
            json!({"ports": ["80"]}),
        ),
        "spec.rules[0].from[0].source.namespaces[1]",
        "empty values are not allowed",
    );
}

// --- operation values ---

#[test]
fn non_numeric_port_is_rejected() {
    assert_only_error(
        deny_with(json!({"namespaces": ["dev"]}), json!({"ports": ["http"]})),
        "spec.rules[0].to[0].operation.ports[0]",
        "port \"http\" must be a number",
    );
}

#[test]
fn port_zero_is_rejected() {
    assert_only_error(
        deny_with(json!({"namespaces": ["dev"]}), json!({"notPorts": ["0"]})),
        "spec.rules[0].to[0].operation.notPorts[0]",
        "between 1 and 65535",
    );
}

#[test]
fn lower_case_method_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "methods": ["get"]}),
        ),
        "spec.rules[0].to[0].operation.methods[0]",
        "upper-case HTTP method",
    );
}

#[test]
fn relative_path_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "paths": ["api/v1"]}),
        ),
        "spec.rules[0].to[0].operation.paths[0]",
        "must start with /",
    );
}

#[test]
fn wildcard_in_the_middle_of_a_path_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "notPaths": ["/api/*/admin"]}),
        ),
        "spec.rules[0].to[0].operation.notPaths[0]",
        "`*` in an unsupported place",
    );
}

#[test]
fn path_template_with_operator_after_match_any_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "paths": ["/{**}/foo/{*}"]}),
        ),
        "spec.rules[0].to[0].operation.paths[0]",
        "must be the last",
    );
}

#[test]
fn path_template_with_a_glob_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "paths": ["/*/baz/{*}"]}),
        ),
        "spec.rules[0].to[0].operation.paths[0]",
        "segment \"*\"",
    );
}

#[test]
fn path_template_with_text_around_an_operator_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "paths": ["/foo/{*}.txt"]}),
        ),
        "spec.rules[0].to[0].operation.paths[0]",
        "outside a whole",
    );
}

#[test]
fn host_with_inner_wildcard_is_rejected() {
    assert_only_error(
        deny_with(
            json!({"namespaces": ["dev"]}),
            json!({"ports": ["80"], "hosts": ["api.*.example.com"]}),
        ),
        "spec.rules[0].to[0].operation.hosts[0]",
        "`*` in an unsupported place",
    );
}

// --- conditions ---

#[test]
fn empty_condition_key_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "key must name",
    );
}

#[test]
fn unknown_condition_key_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "request.method", "values": ["GET"]})),
        "spec.rules[0].when[0].key",
        "unknown attribute \"request.method\"",
    );
}

#[test]
fn header_key_without_brackets_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "request.headers", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "must be written request.headers[name]",
    );
}

#[test]
fn pseudo_header_keys_are_accepted_and_bad_header_names_rejected() {
    crate::validate::testing::assert_valid::<AuthorizationPolicySpec>(allow_when(
        json!({"key": "request.headers[:method]", "values": ["GET"]}),
    ));
    assert_only_error(
        allow_when(json!({"key": "request.headers[x user]", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "is not a valid HTTP header name",
    );
}

#[test]
fn destination_labels_key_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "destination.labels[app]", "values": ["a"]})),
        "spec.rules[0].when[0].key",
        "use the policy's selector",
    );
}

#[test]
fn condition_without_values_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "source.namespace"})),
        "spec.rules[0].when[0].values",
        "at least one of values or notValues",
    );
}

#[test]
fn bad_source_ip_value_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "source.ip", "values": ["10.0.0.1", "not-an-ip"]})),
        "spec.rules[0].when[0].values[1]",
        "\"not-an-ip\" is not a valid IP address",
    );
}

#[test]
fn bad_destination_port_value_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "destination.port", "notValues": ["70000"]})),
        "spec.rules[0].when[0].notValues[0]",
        "port number 70000",
    );
}

#[test]
fn empty_condition_value_is_rejected() {
    assert_only_error(
        allow_when(json!({"key": "request.headers[x-user]", "values": [""]})),
        "spec.rules[0].when[0].values[0]",
        "empty values are not allowed",
    );
}
