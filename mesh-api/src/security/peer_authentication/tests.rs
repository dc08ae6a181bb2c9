use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn assert_only_error(doc: Value, path: &str, fragment: &str) {
    testing::assert_only_error::<PeerAuthenticationSpec>(doc, path, fragment);
}

fn rich() -> Value {
    json!({
        "selector": {"matchLabels": {"app": "reviews", "app.kubernetes.io/version": "v1"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {
            "8080": {"mode": "DISABLE"},
            "9090": {"mode": "PERMISSIVE"},
            "9443": {"mode": "UNSET"},
            "15000": {}
        }
    })
}

#[test]
fn rich_document_is_valid_and_round_trips() {
    let spec: PeerAuthenticationSpec = parse(rich());
    assert_eq!(crate::validate::check(&spec), vec![]);
    assert_eq!(spec.port_level_mtls[&8080].mode, Some(MtlsMode::Disable));
    let text = serde_json::to_value(&spec).unwrap();
    assert_eq!(
        text["portLevelMtls"]["9090"]["mode"], "PERMISSIVE",
        "ports serialize as string keys"
    );
    let again: PeerAuthenticationSpec = serde_json::from_value(text).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn mesh_wide_strict_is_valid() {
    assert_valid::<PeerAuthenticationSpec>(json!({"mtls": {"mode": "STRICT"}}));
    assert_valid::<PeerAuthenticationSpec>(json!({}));
}

#[test]
fn port_mode_prefers_the_port_then_the_workload() {
    let spec: PeerAuthenticationSpec = parse(rich());
    assert_eq!(spec.port_mode(8080), Some(MtlsMode::Disable));
    assert_eq!(spec.port_mode(9090), Some(MtlsMode::Permissive));
    assert_eq!(
        spec.port_mode(9443),
        Some(MtlsMode::Strict),
        "UNSET port inherits the workload mode"
    );
    assert_eq!(
        spec.port_mode(15000),
        Some(MtlsMode::Strict),
        "no mode inherits the workload mode"
    );
    assert_eq!(spec.port_mode(1), Some(MtlsMode::Strict));
    let unset: PeerAuthenticationSpec = parse(json!({"mtls": {"mode": "UNSET"}}));
    assert_eq!(unset.port_mode(8080), None);
    assert_eq!(
        parse::<PeerAuthenticationSpec>(json!({})).port_mode(8080),
        None
    );
}

#[test]
fn unknown_field_fails_to_parse() {
    let err = serde_json::from_value::<PeerAuthenticationSpec>(
        json!({"mtls": {"mode": "STRICT", "strict": true}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field `strict`"), "{err}");
}

#[test]
fn misspelled_mode_fails_to_parse() {
    let err = serde_json::from_value::<PeerAuthenticationSpec>(json!({"mtls": {"mode": "Strict"}}))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown variant `Strict`"),
        "{err}"
    );
}

#[test]
fn non_numeric_port_key_fails_to_parse() {
    let doc = json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"http": {"mode": "STRICT"}}});
    assert!(serde_json::from_value::<PeerAuthenticationSpec>(doc).is_err());
}

#[test]
fn crd_schema_describes_port_map_as_an_object() {
    let crd = PeerAuthentication::crd();
    assert_eq!(crd.spec.names.short_names, Some(vec!["pa".to_owned()]));
    let categories = crd.spec.names.categories.clone().unwrap();
    assert_eq!(categories, vec!["istio-io", "security-istio-io"]);
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let ports = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"]["portLevelMtls"];
    assert_eq!(ports["type"], "object", "{ports}");
    assert!(ports.get("patternProperties").is_none(), "{ports}");
    let mode = &ports["additionalProperties"]["properties"]["mode"];
    assert!(
        mode["enum"].as_array().unwrap().contains(&json!("STRICT")),
        "{ports}"
    );
}

#[test]
fn port_level_mtls_needs_a_selector() {
    assert_only_error(
        json!({"portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
        "spec.portLevelMtls",
        "requires a selector with at least one label",
    );
}

#[test]
fn port_level_mtls_needs_selector_labels() {
    assert_only_error(
        json!({"selector": {"matchLabels": {}}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}),
        "spec.portLevelMtls",
        "requires a selector",
    );
}

#[test]
fn port_zero_is_rejected() {
    assert_only_error(
        json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"0": {"mode": "DISABLE"}}}),
        "spec.portLevelMtls.0",
        "between 1 and 65535",
    );
}

#[test]
fn port_above_65535_is_rejected() {
    assert_only_error(
        json!({"selector": {"matchLabels": {"app": "a"}}, "portLevelMtls": {"70000": {"mode": "STRICT"}}}),
        "spec.portLevelMtls.70000",
        "port number 70000",
    );
}

#[test]
fn wildcard_selector_label_is_rejected() {
    assert_only_error(
        json!({"selector": {"matchLabels": {"app": "rev*"}}, "mtls": {"mode": "STRICT"}}),
        "spec.selector.matchLabels.app",
        "wildcards are not allowed",
    );
}

#[test]
fn invalid_selector_label_value_is_rejected() {
    assert_only_error(
        json!({"selector": {"matchLabels": {"version": "-v1"}}}),
        "spec.selector.matchLabels.version",
        "label value \"-v1\"",
    );
}

#[test]
fn yaml_port_keys_read_as_numbers() {
    let text = "selector:\n  matchLabels:\n    app: reviews\nportLevelMtls:\n  8080:\n    mode: DISABLE\n  \"9090\":\n    mode: STRICT\n";
    let (docs, err) = crate::load::parse_documents(text);
    assert!(err.is_none(), "{err:?}");
    let spec: PeerAuthenticationSpec = parse(docs[0].value.clone());
    assert_eq!(spec.port_mode(8080), Some(MtlsMode::Disable));
    assert_eq!(spec.port_mode(9090), Some(MtlsMode::Strict));
    assert_eq!(crate::validate::check(&spec), vec![]);
}
