//! AuthorizationPolicy's CUSTOM and AUDIT actions, translated into the
//! inbound filters istiod writes: shadow RBAC rules and `ext_authz` for a
//! MeshConfig provider, a DENY filter when the provider cannot be asked,
//! and RBAC `LOG` for AUDIT.

use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use mesh_api::networking::gateway::Protocol;
use serde_json::{Value, json};

use super::{
    endpoint, http_filters_of, inbound_chain, json_of, proxy, reviews_snapshot, service, translate,
};
use crate::mesh_config::tests::AUTHORIZERS;
use crate::model::{MeshSnapshot, ServicePort};
use crate::translate::authorization_problems;

/// A policy of `reviews` with `action` on `path`.
fn policy(name: &str, action: &str, path: &str) -> String {
    format!(
        "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: {action}
  rules:
  - to: [{{operation: {{paths: ['{path}']}}}}]
---
"
    )
}

fn custom(name: &str, provider: &str, path: &str) -> String {
    policy(
        name,
        &format!("CUSTOM\n  provider: {{name: {provider}}}"),
        path,
    )
}

const AUDIT: &str = "\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-deletes, namespace: default}
spec:
  action: AUDIT
  rules:
  - to: [{operation: {methods: [DELETE]}}]
";

/// The reviews workload with an HTTP port (8080) and a TCP one (9091),
/// the authorizer's service in `foo`, and the mesh's providers.
fn snapshot(config: &str) -> MeshSnapshot {
    let mut snapshot = reviews_snapshot(config);
    snapshot.mesh = crate::mesh_config::parse("mesh.yaml", AUTHORIZERS).unwrap();
    let mut reviews = (*snapshot.services[0]).clone();
    reviews.ports.push(ServicePort {
        name: "tcp".into(),
        number: 9090,
        protocol: Some(Protocol::Tcp),
        target_port: None,
    });
    snapshot.services[0] = Arc::new(reviews);
    snapshot.services.push(service("ext-authz", "foo", &[]));
    let mut own = (*endpoint("reviews", "v1", "10.9.9.9")).clone();
    own.ports.insert("http".into(), 8080);
    own.ports.insert("tcp".into(), 9091);
    snapshot.endpoints.push(Arc::new(own));
    snapshot
}

fn chain(snapshot: &MeshSnapshot, name: &str) -> FilterChain {
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    inbound_chain(&translate(&me, snapshot), name)
}

/// The HTTP filters of the inbound HTTP chain, as JSON.
fn http_filters(snapshot: &MeshSnapshot) -> Vec<Value> {
    http_filters_of(&chain(snapshot, "0.0.0.0_8080"))
}

/// The network filters of the inbound TCP chain, as JSON.
fn tcp_filters(snapshot: &MeshSnapshot) -> Vec<Value> {
    chain(snapshot, "0.0.0.0_9091")
        .filters
        .iter()
        .map(json_of)
        .collect()
}

fn names(filters: &[Value]) -> Vec<&str> {
    filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect()
}

fn policy_names(rules: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = rules["policies"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    names
}

#[test]
fn custom_with_an_http_provider_marks_requests_for_ext_authz() {
    let filters = http_filters(&snapshot(&custom("admin", "ext-authz-http", "/admin/*")));
    assert_eq!(
        names(&filters),
        [
            "istio.metadata_exchange",
            "envoy.filters.http.rbac",
            "envoy.filters.http.ext_authz",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    let rbac = &filters[1]["typed_config"];
    assert!(rbac.get("rules").is_none(), "nothing enforced: {rbac}");
    assert_eq!(rbac["shadow_rules_stat_prefix"], "istio_ext_authz_");
    assert_eq!(rbac["shadow_rules"]["action"], "DENY");
    assert_eq!(
        policy_names(&rbac["shadow_rules"]),
        ["istio-ext-authz-ext-authz-http-ns[default]-policy[admin]-rule[0]"]
    );
    let authz = &filters[2]["typed_config"];
    assert_eq!(
        authz["filter_enabled_metadata"],
        json!({"filter": "envoy.filters.http.rbac",
            "path": [{"key": "istio_ext_authz_shadow_effective_policy_id"}],
            "value": {"string_match": {"prefix": "istio-ext-authz-ext-authz-http"}}})
    );
    let service = &authz["http_service"];
    assert_eq!(
        service["server_uri"],
        json!({"uri": "http://ext-authz.foo.svc.cluster.local",
            "cluster": "outbound|8000||ext-authz.foo.svc.cluster.local", "timeout": "10s"})
    );
    assert_eq!(service["path_prefix"], "/check");
    assert_eq!(
        service["authorization_request"]["headers_to_add"],
        json!([{"key": "x-added", "value": "yes"}])
    );
    let response = &service["authorization_response"];
    assert_eq!(
        response["allowed_upstream_headers"],
        json!({"patterns": [{"exact": "x-user", "ignore_case": true}]})
    );
    assert_eq!(
        response["allowed_client_headers_on_success"],
        json!({"patterns": [{"suffix": "-seen", "ignore_case": true}]})
    );
    assert_eq!(
        authz["allowed_headers"],
        json!({"patterns": [{"exact": "x-ext-authz", "ignore_case": true},
            {"prefix": "x-prefix-", "ignore_case": true}]})
    );
    assert_eq!(authz["failure_mode_allow"], true);
    assert_eq!(
        authz["status_on_error"],
        json!({"code": "ServiceUnavailable"})
    );
    assert_eq!(
        authz["with_request_body"],
        json!({"max_request_bytes": 4096, "allow_partial_message": true})
    );
    assert_eq!(authz["transport_api_version"], "V3");

    let tcp = tcp_filters(&snapshot(&custom("admin", "ext-authz-http", "/admin/*")));
    assert!(
        !names(&tcp)
            .iter()
            .any(|n| n.contains("ext_authz") || n.contains("rbac")),
        "an HTTP authorizer does not judge TCP connections: {:?}",
        names(&tcp)
    );
}

#[test]
fn custom_with_a_grpc_provider_also_checks_tcp_connections() {
    let snapshot = snapshot(&custom("admin", "ext-authz-grpc", "/admin/*"));
    let filters = http_filters(&snapshot);
    let authz = &filters[2]["typed_config"];
    assert_eq!(
        authz["grpc_service"],
        json!({"envoy_grpc": {"cluster_name": "outbound|9000||ext-authz.foo.svc.cluster.local",
            "authority": "ext-authz.foo.svc.cluster.local"}, "timeout": "600s"})
    );
    assert!(authz.get("status_on_error").is_none());

    let tcp = tcp_filters(&snapshot);
    assert_eq!(
        names(&tcp)[..2],
        [
            "envoy.filters.network.rbac",
            "envoy.filters.network.ext_authz"
        ]
    );
    let rbac = &tcp[0]["typed_config"];
    assert_eq!(rbac["shadow_rules_stat_prefix"], "istio_ext_authz_");
    assert_eq!(
        policy_names(&rbac["shadow_rules"]),
        ["istio-ext-authz-ext-authz-grpc-ns[default]-policy[admin]-rule[0]"],
        "the path is dropped on TCP: the rule matches every connection"
    );
    let network = &tcp[1]["typed_config"];
    assert_eq!(network["stat_prefix"], "tcp.");
    assert_eq!(
        network["filter_enabled_metadata"]["filter"],
        "envoy.filters.network.rbac"
    );
    assert_eq!(
        network["grpc_service"]["envoy_grpc"]["cluster_name"],
        "outbound|9000||ext-authz.foo.svc.cluster.local"
    );
}

#[test]
fn an_unknown_provider_denies_what_its_policy_matches_and_is_reported() {
    let snapshot = snapshot(&custom("admin", "nowhere", "/admin/*"));
    let filters = http_filters(&snapshot);
    assert_eq!(
        names(&filters)[1..3],
        ["envoy.filters.http.rbac", "istio.stats"],
        "no ext_authz"
    );
    let rules = &filters[1]["typed_config"]["rules"];
    assert_eq!(rules["action"], "DENY");
    assert_eq!(
        policy_names(rules),
        ["istio-ext-authz-nowhere-ns[default]-policy[admin]-rule[0]-deny-due-to-bad-CUSTOM-action"]
    );
    let tcp = tcp_filters(&snapshot);
    assert_eq!(tcp[0]["typed_config"]["rules"]["action"], "DENY");

    let problems = authorization_problems(&snapshot, &[]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(
        (problems[0].namespace.as_str(), problems[0].name.as_str()),
        ("default", "admin")
    );
    assert_eq!(problems[0].field, "spec.provider.name");
    assert!(
        problems[0]
            .reason
            .contains("no envoyExtAuthzHttp or envoyExtAuthzGrpc provider \"nowhere\""),
        "{}",
        problems[0].reason
    );

    // A provider whose service is not in the registry cannot be asked either.
    let mut unregistered = self::snapshot(&custom("admin", "ext-authz-grpc", "/admin/*"));
    unregistered.services.retain(|s| s.namespace != "foo");
    let filters = http_filters(&unregistered);
    assert!(!names(&filters).contains(&"envoy.filters.http.ext_authz"));
    let problems = authorization_problems(&unregistered, &[]);
    assert!(
        problems[0].reason.contains("not in the registry"),
        "{problems:?}"
    );
}

#[test]
fn several_providers_for_one_workload_deny_what_their_policies_match() {
    let config =
        custom("admin", "ext-authz-http", "/admin/*") + &custom("api", "ext-authz-grpc", "/api/*");
    let snapshot = snapshot(&config);
    let filters = http_filters(&snapshot);
    assert!(!names(&filters).contains(&"envoy.filters.http.ext_authz"));
    let denied: Vec<&str> = filters[1..3]
        .iter()
        .flat_map(|f| policy_names(&f["typed_config"]["rules"]))
        .collect();
    assert_eq!(
        denied,
        [
            "istio-ext-authz-ext-authz-grpc-ns[default]-policy[api]-rule[0]-deny-due-to-bad-CUSTOM-action",
            "istio-ext-authz-ext-authz-http-ns[default]-policy[admin]-rule[0]-deny-due-to-bad-CUSTOM-action",
        ]
    );
    let me = proxy("default", &[("app", "reviews"), ("version", "v1")]);
    assert!(
        authorization_problems(&snapshot, &[]).is_empty(),
        "each provider alone is fine"
    );
    let problems = authorization_problems(&snapshot, &[me]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].reason.contains("several providers"),
        "{problems:?}"
    );
}

#[test]
fn audit_logs_after_custom_and_before_deny_and_allow() {
    let config = custom("admin", "ext-authz-grpc", "/admin/*")
        + &policy("no-admin", "DENY", "/admin/*")
        + AUDIT;
    let snapshot = snapshot(&config);
    let filters = http_filters(&snapshot);
    let actions: Vec<Value> = filters
        .iter()
        .filter(|f| f["name"] == "envoy.filters.http.rbac")
        .map(|f| f["typed_config"]["rules"]["action"].clone())
        .collect();
    assert_eq!(actions, [Value::Null, json!("LOG"), json!("DENY")]);
    let audit = &filters[3]["typed_config"]["rules"];
    assert_eq!(
        policy_names(audit),
        ["ns[default]-policy[audit-deletes]-rule[0]"]
    );
    let tcp = tcp_filters(&snapshot);
    let rbac = &tcp[2]["typed_config"];
    assert_eq!(rbac["rules"]["action"], "LOG");
    assert_eq!(
        policy_names(&rbac["rules"]),
        ["ns[default]-policy[audit-deletes]-rule[0]"],
        "the method is dropped on TCP: audited, as istiod audits more rather than less"
    );
}

/// `policy`, annotated `istio.io/dry-run: "true"`.
fn dry_run(name: &str, action: &str, path: &str) -> String {
    policy(name, action, path).replacen(
        "namespace: default}",
        "namespace: default, annotations: {istio.io/dry-run: 'true'}}",
        1,
    )
}

#[test]
fn dry_run_policies_are_shadow_rules_next_to_the_enforced_ones() {
    let config = [
        dry_run("no-admin", "DENY", "/admin/*"),
        policy("api-only", "ALLOW", "/api/*"),
        dry_run("maybe-docs", "ALLOW", "/docs/*"),
    ]
    .concat();
    let snapshot = snapshot(&config);
    let filters = http_filters(&snapshot);
    assert_eq!(
        names(&filters),
        [
            "istio.metadata_exchange",
            "envoy.filters.http.rbac",
            "envoy.filters.http.rbac",
            "istio.stats",
            "envoy.filters.http.router"
        ]
    );
    let deny = &filters[1]["typed_config"];
    assert!(
        deny.get("rules").is_none(),
        "a dry run denies nothing: {deny}"
    );
    assert_eq!(deny["shadow_rules"]["action"], "DENY");
    assert_eq!(
        policy_names(&deny["shadow_rules"]),
        ["ns[default]-policy[no-admin]-rule[0]"]
    );
    assert_eq!(deny["shadow_rules_stat_prefix"], "istio_dry_run_deny_");
    let allow = &filters[2]["typed_config"];
    assert_eq!(
        policy_names(&allow["rules"]),
        ["ns[default]-policy[api-only]-rule[0]"]
    );
    assert_eq!(
        policy_names(&allow["shadow_rules"]),
        ["ns[default]-policy[maybe-docs]-rule[0]"]
    );
    assert_eq!(allow["shadow_rules_stat_prefix"], "istio_dry_run_allow_");

    let tcp = tcp_filters(&snapshot);
    let deny = tcp
        .iter()
        .find(|f| f["typed_config"]["shadow_rules"]["action"] == "DENY")
        .expect("a network RBAC filter for the DENY dry run");
    assert!(deny["typed_config"].get("rules").is_none(), "{deny}");
}

#[test]
fn a_dry_run_allow_alone_lets_everything_through() {
    let filters = http_filters(&snapshot(&dry_run("maybe", "ALLOW", "/api/*")));
    let rbac = filters
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.rbac")
        .expect("the ALLOW filter, with shadow rules only");
    assert!(rbac["typed_config"].get("rules").is_none(), "{rbac}");
    // ALLOW is the enum's zero, which JSON leaves out.
    let shadow = &rbac["typed_config"]["shadow_rules"];
    assert!(shadow.get("action").is_none(), "{shadow}");
    assert_eq!(policy_names(shadow), ["ns[default]-policy[maybe]-rule[0]"]);
}
