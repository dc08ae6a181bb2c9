use serde_json::{Value, json};

use crate::testing::{compile, http_bootstrap};

fn catch_all() -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "a"}}]}])
}

/// A bootstrap whose cluster "a" has this `UpstreamTlsContext`.
fn upstream(context: Value) -> Value {
    let mut bootstrap = http_bootstrap(catch_all(), &["a"]);
    let mut context = context;
    context["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext");
    bootstrap["static_resources"]["clusters"][0]["transport_socket"] =
        json!({"name": "envoy.transport_sockets.tls", "typed_config": context});
    bootstrap
}

/// A bootstrap whose listener's chain has this `DownstreamTlsContext`.
fn downstream(context: Value) -> Value {
    let mut bootstrap = http_bootstrap(catch_all(), &["a"]);
    let mut context = context;
    context["@type"] =
        json!("type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext");
    bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["transport_socket"] =
        json!({"name": "envoy.transport_sockets.tls", "typed_config": context});
    bootstrap
}

fn error(bootstrap: Value) -> String {
    compile(&bootstrap).unwrap_err().to_string()
}

fn pem_pair() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[test]
fn unknown_secrets_name_the_referring_field() {
    let bootstrap = upstream(json!({"common_tls_context": {
        "tls_certificate_sds_secret_configs": [{"name": "default"}]}}));
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name: secret \"default\" is not among static_resources.secrets"
    );
    let bootstrap = upstream(
        json!({"common_tls_context": {"combined_validation_context": {
        "default_validation_context": {},
        "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}),
    );
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name: secret \"ROOTCA\" is not among static_resources.secrets"
    );
}

#[test]
fn secrets_of_the_wrong_kind_are_refused() {
    let (cert, key) = pem_pair();
    let mut bootstrap = upstream(json!({"common_tls_context": {
        "validation_context_sds_secret_config": {"name": "default"}}}));
    bootstrap["static_resources"]["secrets"] = json!([{"name": "default", "tls_certificate": {
        "certificate_chain": {"inline_string": cert}, "private_key": {"inline_string": key}}}]);
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.validation_context_sds_secret_config.name: secret \"default\" is not a validation_context"
    );
}

#[test]
fn bad_pem_names_the_data_source() {
    let bootstrap = upstream(json!({"common_tls_context": {"validation_context": {
        "trusted_ca": {"inline_string": "not a certificate"}}}}));
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: no certificate in the PEM data"
    );
    let (cert, _) = pem_pair();
    let bootstrap = downstream(json!({"common_tls_context": {"tls_certificates": [{
        "certificate_chain": {"inline_string": cert}, "private_key": {"inline_string": "garbage"}}]}}));
    let message = error(bootstrap);
    assert!(
        message.starts_with("listener \"http\": filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].private_key: "),
        "{message}"
    );
}

#[test]
fn unsupported_fields_are_named() {
    let bootstrap = upstream(json!({"common_tls_context": {"validation_context": {
        "verify_certificate_spki": ["abc"]}}}));
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.validation_context.verify_certificate_spki: verify_certificate_spki is not supported by this proxy"
    );
    let bootstrap = upstream(json!({"common_tls_context": {"validation_context": {
        "match_typed_subject_alt_names": [{"san_type": "EMAIL", "matcher": {"exact": "a@b"}}]}}}));
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type: SAN types other than DNS and URI is not supported by this proxy"
    );
    let bootstrap = upstream(json!({"common_tls_context": {"validation_context": {
        "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {"exact": "spiffe://x"}}]}}}));
    assert_eq!(
        error(bootstrap),
        "cluster \"a\": transport_socket.typed_config.common_tls_context.validation_context.trusted_ca: matching subject alt names needs a trusted_ca"
    );
    let (cert, key) = pem_pair();
    let bootstrap = downstream(
        json!({"require_client_certificate": true, "common_tls_context": {"tls_certificates": [{
        "certificate_chain": {"inline_string": cert}, "private_key": {"inline_string": key}}]}}),
    );
    assert_eq!(
        error(bootstrap),
        "listener \"http\": filter_chains[0].transport_socket.typed_config.require_client_certificate: a validation context with trusted_ca is required to check client certificates"
    );
}

#[test]
fn transport_socket_matches_follow_endpoint_metadata() {
    let (cert, _) = pem_pair();
    let mut bootstrap = http_bootstrap(catch_all(), &["a"]);
    let cluster = &mut bootstrap["static_resources"]["clusters"][0];
    cluster["load_assignment"]["endpoints"][0]["lb_endpoints"] = json!([
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}},
         "metadata": {"filter_metadata": {"envoy.transport_socket_match": {"tlsMode": "istio"}}}},
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 2}}}}
    ]);
    cluster["transport_socket_matches"] = json!([
        {"name": "tlsMode-istio", "match": {"tlsMode": "istio"}, "transport_socket": {
            "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "common_tls_context": {"validation_context": {"trusted_ca": {"inline_string": cert}}}}}},
        {"name": "tlsMode-disabled", "match": {}, "transport_socket": {"name": "envoy.transport_sockets.raw_buffer"}}
    ]);
    let config = compile(&bootstrap).unwrap();
    let cluster = &config.clusters["a"];
    assert!(cluster.tls_for(&cluster.endpoints[0]).is_some());
    assert!(cluster.tls_for(&cluster.endpoints[1]).is_none());
}
