use mesh_api::security::authorization_policy::{RuleFrom, RuleTo};

use super::*;

fn rule(methods: &[&str], namespaces: &[&str]) -> Rule {
    Rule {
        from: vec![RuleFrom {
            source: Some(Source {
                namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
                ..Source::default()
            }),
        }],
        to: vec![RuleTo {
            operation: Some(Operation {
                methods: methods.iter().map(|s| (*s).to_owned()).collect(),
                ..Operation::default()
            }),
        }],
        when: Vec::new(),
    }
}

fn json_of(policy: &Policy) -> serde_json::Value {
    mesh_api::envoy::to_json(policy).unwrap()
}

#[test]
fn http_fields_on_a_tcp_port_drop_allow_rules_and_widen_deny_rules() {
    let r = rule(&["GET"], &["default"]);
    assert!(translate_rule(&r, Action::Allow, true).is_some());
    assert!(
        translate_rule(&r, Action::Allow, false).is_none(),
        "an ALLOW rule on methods matches no TCP connection"
    );
    let deny = translate_rule(&r, Action::Deny, false).expect("kept, without the methods");
    let text = json_of(&deny).to_string();
    assert!(!text.contains(":method"), "{text}");
    assert!(text.contains("/ns/default/"), "the namespace stays: {text}");
}

#[test]
fn namespaces_and_service_accounts_match_by_regex_with_escapes() {
    assert_eq!(segment("default"), "default");
    assert_eq!(segment("team.a"), "team\\.a");
    assert_eq!(segment("*"), "[^/]+");
    assert_eq!(segment("dev-*"), "dev-[^/]*");
    assert_eq!(segment("*-prod"), "[^/]*-prod");
    let text = mesh_api::envoy::to_json(&service_account("default/bookinfo-*"))
        .unwrap()
        .to_string();
    assert!(text.contains(".*/ns/default/sa/bookinfo-[^/]*"), "{text}");
}

#[test]
fn principals_and_paths_take_istios_wildcards() {
    let exact = mesh_api::envoy::to_json(&principal_name("cluster.local/ns/a/sa/b")).unwrap();
    assert_eq!(
        exact["authenticated"]["principal_name"]["exact"],
        "spiffe://cluster.local/ns/a/sa/b"
    );
    let prefix = mesh_api::envoy::to_json(&principal_name("cluster.local/ns/a/*")).unwrap();
    assert_eq!(
        prefix["authenticated"]["principal_name"]["prefix"],
        "spiffe://cluster.local/ns/a/"
    );
    let any = mesh_api::envoy::to_json(&principal_name("*")).unwrap();
    assert_eq!(any["authenticated"], serde_json::json!({}));
    let path = mesh_api::envoy::to_json(&path_permission("/ratings/*")).unwrap();
    assert_eq!(path["url_path"]["path"]["prefix"], "/ratings/");
    let cidr = mesh_api::envoy::to_json(&ip("10.1.0.0/16", false)).unwrap();
    assert_eq!(
        cidr["direct_remote_ip"],
        serde_json::json!({"address_prefix": "10.1.0.0", "prefix_len": 16})
    );
}

#[test]
fn dry_run_reads_the_annotation_as_istiod_does() {
    let annotated =
        |value: &str| std::collections::BTreeMap::from([(DRY_RUN.to_owned(), value.to_owned())]);
    for value in ["true", "True", "TRUE", "t", "1"] {
        assert!(dry_run(Some(&annotated(value))), "{value}");
    }
    for value in ["false", "0", "yes", ""] {
        assert!(!dry_run(Some(&annotated(value))), "{value}");
    }
    assert!(!dry_run(None));
}
