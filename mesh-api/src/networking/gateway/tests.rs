use serde_json::{Value, json};

use super::*;
use crate::validate::check;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn only_error(doc: Value, path: &str, needle: &str) {
    testing::assert_only_error::<GatewaySpec>(doc, path, needle);
}

/// A valid gateway with one server; tests change one thing in it.
fn base() -> Value {
    json!({
        "selector": {"istio": "ingressgateway"},
        "servers": [{
            "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
            "hosts": ["bookinfo.example.com"],
            "tls": {"mode": "SIMPLE", "credentialName": "bookinfo-cert"}
        }]
    })
}

fn tls_server(tls: Value) -> Value {
    let mut doc = base();
    doc["servers"][0]["tls"] = tls;
    doc
}

#[test]
fn rich_gateway_is_valid_and_round_trips() {
    let doc = json!({
        "selector": {"istio": "ingressgateway", "app.kubernetes.io/name": "edge"},
        "servers": [
            {
                "port": {"number": 80, "name": "http", "protocol": "http"},
                "hosts": ["*"],
                "tls": {"httpsRedirect": true},
                "name": "plain"
            },
            {
                "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                "hosts": ["bookinfo/bookinfo.example.com", "./*.example.org", "*/api.example.net", "10.0.0.1"],
                "tls": {
                    "mode": "SIMPLE",
                    "credentialNames": ["rsa-cert", "ecdsa-cert"],
                    "minProtocolVersion": "TLSV1_2",
                    "maxProtocolVersion": "TLSV1_3",
                    "cipherSuites": ["ECDHE-RSA-AES128-GCM-SHA256"]
                },
                "name": "secure"
            },
            {
                "port": {"number": 8443, "name": "mtls", "protocol": "TLS"},
                "bind": "192.168.1.10",
                "hosts": ["partner.example.com"],
                "tls": {
                    "mode": "MUTUAL",
                    "serverCertificate": "/etc/certs/server.pem",
                    "privateKey": "/etc/certs/key.pem",
                    "caCertificates": "/etc/certs/ca.pem",
                    "caCrl": "/etc/certs/crl.pem",
                    "subjectAltNames": ["spiffe://partner/client"],
                    "verifyCertificateSpki": ["Tm90IGEgcmVhbCBoYXNo"],
                    "verifyCertificateHash": ["AB:CD:EF"],
                    "insecureSkipVerify": false,
                    "caCertCredentialName": "partner-ca"
                }
            },
            {
                "port": {"number": 9443, "name": "dual", "protocol": "HTTPS"},
                "hosts": ["dual.example.com"],
                "tls": {
                    "mode": "OPTIONAL_MUTUAL",
                    "caCertificates": "/etc/certs/ca.pem",
                    "tlsCertificates": [
                        {"serverCertificate": "/etc/certs/rsa.pem", "privateKey": "/etc/certs/rsa.key"},
                        {"serverCertificate": "/etc/certs/ec.pem", "privateKey": "/etc/certs/ec.key", "caCertificates": "/etc/certs/ca.pem"}
                    ]
                }
            },
            {
                "port": {"number": 15443, "name": "tls-sni", "protocol": "TLS"},
                "hosts": ["*.local"],
                "tls": {"mode": "AUTO_PASSTHROUGH"}
            },
            {
                "port": {"number": 15012, "name": "tls-istiod", "protocol": "TLS"},
                "hosts": ["*"],
                "tls": {"mode": "ISTIO_MUTUAL"}
            },
            {
                "port": {"number": 0, "name": "metrics", "protocol": "TCP"},
                "bind": "unix:///var/run/gateway.sock",
                "hosts": ["*"],
                "defaultEndpoint": "127.0.0.1:15090"
            },
            {
                "port": {"number": 0, "name": "mongo", "protocol": "MONGO"},
                "bind": "unix://@mongo-proxy",
                "hosts": ["*"]
            }
        ]
    });
    let spec: GatewaySpec = parse(doc);
    assert_eq!(check(&spec), vec![]);
    assert_eq!(spec.servers[0].port.protocol(), Some(Protocol::Http));
    assert_eq!(
        spec.servers[2].tls.as_ref().map(|t| t.mode),
        Some(TlsMode::Mutual)
    );
    let text = serde_json::to_string(&spec).unwrap();
    let again: GatewaySpec = serde_json::from_str(&text).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn protocols_read_case_insensitively() {
    assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
    assert_eq!(Protocol::parse("Mongo"), Some(Protocol::Mongo));
    assert_eq!(Protocol::parse("HTTP3"), None);
    assert!(Protocol::Https.is_tls() && !Protocol::Https.is_http());
    assert!(Protocol::Grpc.is_http() && Protocol::Grpc.is_http2());
    assert!(Protocol::Redis.is_tcp() && !Protocol::Udp.is_tcp());
}

#[test]
fn unknown_field_fails_to_parse() {
    let mut doc = base();
    doc["servers"][0]["tls"]["mtlsMode"] = json!("STRICT");
    let err = serde_json::from_value::<GatewaySpec>(doc).unwrap_err();
    assert!(err.to_string().contains("mtlsMode"), "{err}");
}

#[test]
fn misspelled_enum_fails_to_parse() {
    let err =
        serde_json::from_value::<GatewaySpec>(tls_server(json!({"mode": "SIMPEL"}))).unwrap_err();
    assert!(err.to_string().contains("SIMPEL"), "{err}");
    let err =
        serde_json::from_value::<GatewaySpec>(tls_server(json!({"minProtocolVersion": "TLSv1_2"})))
            .unwrap_err();
    assert!(err.to_string().contains("TLSv1_2"), "{err}");
}

#[test]
fn missing_required_port_fails_to_parse() {
    let err =
        serde_json::from_value::<GatewaySpec>(json!({"servers": [{"hosts": ["*"]}]})).unwrap_err();
    assert!(err.to_string().contains("port"), "{err}");
}

#[test]
fn gateway_without_servers() {
    only_error(
        json!({"selector": {"istio": "ingressgateway"}}),
        "spec.servers",
        "at least one server",
    );
}

#[test]
fn selector_with_wildcard() {
    let mut doc = base();
    doc["selector"] = json!({"istio": "*"});
    only_error(doc, "spec.selector.istio", "wildcards are not allowed");
}

#[test]
fn server_without_hosts() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!([]);
    only_error(doc, "spec.servers[0].hosts", "at least one host");
}

#[test]
fn short_host_name() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!(["bookinfo.example.com", "reviews"]);
    only_error(doc, "spec.servers[0].hosts[1]", "short name");
}

#[test]
fn partial_wildcard_host() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!(["prod/*-api.example.com"]);
    only_error(doc, "spec.servers[0].hosts[0]", "partial wildcard");
}

#[test]
fn host_with_invalid_namespace() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!(["Prod_1/api.example.com"]);
    only_error(
        doc,
        "spec.servers[0].hosts[0]",
        "invalid namespace \"Prod_1\"",
    );
}

#[test]
fn host_with_empty_dns_name() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!(["prod/"]);
    only_error(doc, "spec.servers[0].hosts[0]", "neither part empty");
}

#[test]
fn host_with_invalid_label() {
    let mut doc = base();
    doc["servers"][0]["hosts"] = json!(["*/api..example.com"]);
    only_error(doc, "spec.servers[0].hosts[0]", "not a valid domain name");
}

#[test]
fn port_number_zero_without_unix_bind() {
    let mut doc = base();
    doc["servers"][0]["port"]["number"] = json!(0);
    only_error(doc, "spec.servers[0].port.number", "between 1 and 65535");
}

#[test]
fn port_number_too_large() {
    let mut doc = base();
    doc["servers"][0]["port"]["number"] = json!(70000);
    only_error(doc, "spec.servers[0].port.number", "70000");
}

#[test]
fn unknown_protocol() {
    let mut doc = base();
    doc["servers"][0]["port"]["protocol"] = json!("HTTP3");
    only_error(
        doc,
        "spec.servers[0].port.protocol",
        "unsupported protocol \"HTTP3\"",
    );
}

#[test]
fn empty_port_name() {
    let mut doc = base();
    doc["servers"][0]["port"]["name"] = json!("");
    only_error(doc, "spec.servers[0].port.name", "port name must be set");
}

#[test]
fn target_port_on_gateway() {
    let mut doc = base();
    doc["servers"][0]["port"]["targetPort"] = json!(8443);
    only_error(
        doc,
        "spec.servers[0].port.targetPort",
        "no effect on gateways",
    );
}

#[test]
fn duplicate_port_names() {
    let mut doc = base();
    let mut second = doc["servers"][0].clone();
    second["port"]["number"] = json!(8443);
    doc["servers"].as_array_mut().unwrap().push(second);
    only_error(
        doc,
        "spec.servers[1].port.name",
        "port names must be unique",
    );
}

#[test]
fn duplicate_server_names() {
    let mut doc = base();
    doc["servers"][0]["name"] = json!("edge");
    let mut second = doc["servers"][0].clone();
    second["port"] = json!({"number": 80, "name": "http", "protocol": "HTTP"});
    second.as_object_mut().unwrap().remove("tls");
    doc["servers"].as_array_mut().unwrap().push(second);
    only_error(doc, "spec.servers[1].name", "server names must be unique");
}

#[test]
fn bind_not_an_ip() {
    let mut doc = base();
    doc["servers"][0]["bind"] = json!("localhost");
    only_error(
        doc,
        "spec.servers[0].bind",
        "must be an IP address or a unix:// socket",
    );
}

#[test]
fn unix_bind_with_port_number() {
    let mut doc = base();
    doc["servers"][0]["bind"] = json!("unix:///var/run/gw.sock");
    only_error(doc, "spec.servers[0].bind", "needs port number 0, not 443");
}

#[test]
fn unix_bind_with_relative_path() {
    let mut doc = base();
    doc["servers"][0]["bind"] = json!("unix://var/run/gw.sock");
    doc["servers"][0]["port"]["number"] = json!(0);
    only_error(doc, "spec.servers[0].bind", "absolute socket file path");
}

#[test]
fn https_server_without_tls() {
    let mut doc = base();
    doc["servers"][0].as_object_mut().unwrap().remove("tls");
    only_error(
        doc,
        "spec.servers[0].tls",
        "HTTPS server needs tls settings",
    );
}

#[test]
fn tcp_server_with_tls() {
    let mut doc = base();
    doc["servers"][0]["port"]["protocol"] = json!("TCP");
    only_error(
        doc,
        "spec.servers[0].tls",
        "TCP server cannot have tls settings",
    );
}

#[test]
fn http_server_terminating_tls() {
    let mut doc = base();
    doc["servers"][0]["port"] = json!({"number": 80, "name": "http", "protocol": "HTTP"});
    only_error(
        doc,
        "spec.servers[0].tls.mode",
        "can only use tls for httpsRedirect",
    );
}

#[test]
fn https_redirect_on_https_server_is_accepted_as_istio_does() {
    let mut doc = base();
    doc["servers"][0]["tls"]["httpsRedirect"] = json!(true);
    assert_valid::<GatewaySpec>(doc);
}

#[test]
fn simple_without_private_key() {
    let doc = tls_server(json!({"mode": "SIMPLE", "serverCertificate": "/etc/certs/cert.pem"}));
    only_error(
        doc,
        "spec.servers[0].tls.privateKey",
        "SIMPLE mode needs privateKey",
    );
}

#[test]
fn simple_without_any_certificate_source() {
    let found = testing::problems::<GatewaySpec>(tls_server(json!({"mode": "SIMPLE"})));
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.servers[0].tls.serverCertificate",
            "spec.servers[0].tls.privateKey"
        ]
    );
}

#[test]
fn tls_certificate_entry_without_key() {
    let doc = tls_server(json!({
        "mode": "SIMPLE",
        "tlsCertificates": [{"serverCertificate": "/etc/certs/rsa.pem", "privateKey": "/etc/certs/rsa.key"}, {"serverCertificate": "/etc/certs/ec.pem"}]
    }));
    only_error(
        doc,
        "spec.servers[0].tls.tlsCertificates[1].privateKey",
        "needs privateKey",
    );
}

#[test]
fn mutual_without_ca_certificates() {
    let doc = tls_server(json!({
        "mode": "MUTUAL",
        "serverCertificate": "/etc/certs/cert.pem",
        "privateKey": "/etc/certs/key.pem"
    }));
    only_error(
        doc,
        "spec.servers[0].tls.caCertificates",
        "MUTUAL mode needs caCertificates",
    );
}

#[test]
fn mutual_with_credential_name_needs_no_files() {
    assert_valid::<GatewaySpec>(tls_server(
        json!({"mode": "MUTUAL", "credentialName": "cert"}),
    ));
}

#[test]
fn passthrough_with_unused_credential_is_accepted_as_istio_does() {
    let mut doc = tls_server(json!({"credentialName": "bookinfo-cert"}));
    doc["servers"][0]["port"]["protocol"] = json!("TLS");
    assert_valid::<GatewaySpec>(doc);
}

#[test]
fn auto_passthrough_with_unused_crl_is_accepted_as_istio_does() {
    let doc = tls_server(json!({"mode": "AUTO_PASSTHROUGH", "caCrl": "/etc/certs/crl.pem"}));
    assert_valid::<GatewaySpec>(doc);
}

#[test]
fn istio_mutual_with_server_certificate() {
    let doc =
        tls_server(json!({"mode": "ISTIO_MUTUAL", "serverCertificate": "/etc/certs/cert.pem"}));
    only_error(
        doc,
        "spec.servers[0].tls.serverCertificate",
        "ISTIO_MUTUAL mode uses the mesh's own certificates",
    );
}

#[test]
fn two_certificate_sources() {
    let doc =
        tls_server(json!({"mode": "SIMPLE", "credentialName": "a", "credentialNames": ["b"]}));
    only_error(
        doc,
        "spec.servers[0].tls",
        "only one of credentialName, credentialNames may be set",
    );
}

#[test]
fn too_many_credential_names() {
    let doc = tls_server(json!({"mode": "SIMPLE", "credentialNames": ["a", "b", "c"]}));
    only_error(doc, "spec.servers[0].tls.credentialNames", "at most 2");
}

#[test]
fn crl_with_simple_mode() {
    let doc = tls_server(json!({
        "mode": "SIMPLE",
        "serverCertificate": "/etc/certs/cert.pem",
        "privateKey": "/etc/certs/key.pem",
        "caCrl": "/etc/certs/crl.pem"
    }));
    only_error(doc, "spec.servers[0].tls.caCrl", "not SIMPLE");
}

#[test]
fn crl_with_credential_name() {
    let doc = tls_server(
        json!({"mode": "MUTUAL", "credentialName": "cert", "caCrl": "/etc/certs/crl.pem"}),
    );
    only_error(
        doc,
        "spec.servers[0].tls.caCrl",
        "cannot be used with credentialName",
    );
}

#[test]
fn min_version_above_max() {
    let mut doc = base();
    doc["servers"][0]["tls"]["minProtocolVersion"] = json!("TLSV1_3");
    doc["servers"][0]["tls"]["maxProtocolVersion"] = json!("TLSV1_2");
    only_error(
        doc,
        "spec.servers[0].tls.minProtocolVersion",
        "TLSV1_3 is above maxProtocolVersion TLSV1_2",
    );
}
