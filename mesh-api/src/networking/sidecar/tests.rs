use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::validate::check;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn assert_only_error(doc: Value, path: &str, reason: &str) {
    testing::assert_only_error::<SidecarSpec>(doc, path, reason);
}

/// A Sidecar with `listener` as its only ingress listener.
fn ingress(listener: Value) -> Value {
    json!({ "ingress": [listener] })
}

/// A Sidecar with these egress listeners.
fn egress(listeners: Value) -> Value {
    json!({ "egress": listeners })
}

fn rich() -> Value {
    json!({
        "workloadSelector": { "labels": { "app": "ratings", "version": "v1" } },
        "ingress": [
            {
                "port": { "number": 9080, "protocol": "HTTP", "name": "somename" },
                "defaultEndpoint": "unix:///var/run/someuds.sock",
                "connectionPool": { "http": { "http2MaxRequests": 1000, "idleTimeout": "30s" } }
            },
            {
                "port": { "number": 9443, "protocol": "HTTPS", "name": "https" },
                "bind": "0.0.0.0",
                "captureMode": "IPTABLES",
                "defaultEndpoint": "127.0.0.1:8443",
                "tls": {
                    "mode": "MUTUAL",
                    "serverCertificate": "/etc/certs/server.pem",
                    "privateKey": "/etc/certs/key.pem",
                    "caCertificates": "/etc/certs/ca.pem"
                }
            },
            { "port": { "number": 9090, "protocol": "TCP" }, "defaultEndpoint": "[::1]:9090" }
        ],
        "egress": [
            {
                "port": { "number": 9080, "protocol": "HTTP", "name": "egresshttp" },
                "bind": "127.0.0.1",
                "captureMode": "NONE",
                "hosts": ["prod-us1/*"]
            },
            {
                "port": { "number": 0, "protocol": "HTTP" },
                "bind": "unix:///var/run/outbound.sock",
                "hosts": ["*/reviews.default.svc.cluster.local"]
            },
            { "hosts": ["./*", "istio-system/*", "~prod-us2/*", "*/*.example.com"] }
        ],
        "inboundConnectionPool": {
            "tcp": { "maxConnections": 500, "connectTimeout": "1s" },
            "http": { "http1MaxPendingRequests": 1024, "h2UpgradePolicy": "UPGRADE" }
        },
        "outboundTrafficPolicy": {
            "mode": "ALLOW_ANY",
            "egressProxy": { "host": "egress.istio-system.svc.cluster.local", "subset": "v1", "port": { "number": 3128 } }
        }
    })
}

#[test]
fn rich_document_is_valid_and_round_trips() {
    let sidecar: SidecarSpec = parse(rich());
    assert_eq!(check(&sidecar), Vec::new());
    let text = serde_json::to_string(&sidecar).unwrap();
    let again: SidecarSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(again, sidecar);
    assert_eq!(sidecar.ingress[1].capture_mode, CaptureMode::Iptables);
    assert_eq!(sidecar.egress[0].capture_mode, CaptureMode::None);
    assert_eq!(
        sidecar.outbound_traffic_policy.as_ref().unwrap().mode,
        OutboundTrafficPolicyMode::AllowAny
    );
    let selector = sidecar.workload_selector.as_ref().unwrap();
    let pod = BTreeMap::from([
        ("app".to_owned(), "ratings".to_owned()),
        ("version".to_owned(), "v1".to_owned()),
    ]);
    assert!(selector.matches(&pod));
}

#[test]
fn crd_has_istio_names() {
    use kube::CustomResourceExt;
    let crd = Sidecar::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("sidecars.networking.istio.io")
    );
    assert_eq!(crd.spec.names.short_names, None);
    let categories = crd.spec.names.categories.clone().unwrap_or_default();
    assert_eq!(categories, ["istio-io", "networking-istio-io"]);
}

#[test]
fn namespace_default_sidecar_is_valid() {
    assert_valid::<SidecarSpec>(json!({ "egress": [{ "hosts": ["./*", "istio-system/*"] }] }));
    assert_valid::<SidecarSpec>(json!({ "outboundTrafficPolicy": { "mode": "REGISTRY_ONLY" } }));
}

#[test]
fn unknown_field_fails_to_parse() {
    // Sidecar's selector says `labels`; the `matchLabels` of other kinds is refused.
    let err = serde_json::from_value::<SidecarSpec>(json!({
        "workloadSelector": { "matchLabels": { "app": "ratings" } },
        "egress": [{ "hosts": ["./*"] }]
    }))
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `matchLabels`"),
        "{err}"
    );
}

#[test]
fn misspelled_enum_fails_to_parse() {
    let err = serde_json::from_value::<SidecarSpec>(egress(
        json!([{ "captureMode": "IPTABLE", "hosts": ["./*"] }]),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("IPTABLE"), "{err}");
    let err = serde_json::from_value::<SidecarSpec>(
        json!({ "outboundTrafficPolicy": { "mode": "ALLOW_ALL" } }),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ALLOW_ALL"), "{err}");
}

#[test]
fn required_fields_fail_to_parse_when_missing() {
    let err = serde_json::from_value::<SidecarSpec>(egress(json!([{ "port": { "number": 80 } }])))
        .unwrap_err();
    assert!(err.to_string().contains("missing field `hosts`"), "{err}");
    let err =
        serde_json::from_value::<SidecarSpec>(ingress(json!({ "bind": "127.0.0.1" }))).unwrap_err();
    assert!(err.to_string().contains("missing field `port`"), "{err}");
}

// ---- the whole resource

#[test]
fn sidecar_must_not_be_empty() {
    assert_only_error(json!({}), "spec", "at least one of ingress, egress");
}

#[test]
fn workload_selector_labels_are_valid() {
    assert_only_error(
        json!({ "workloadSelector": { "labels": { "app": "rat*" } }, "egress": [{ "hosts": ["./*"] }] }),
        "spec.workloadSelector.labels.app",
        "wildcards are not allowed",
    );
}

#[test]
fn inbound_connection_pool_follows_destination_rule_rules() {
    assert_only_error(
        json!({ "inboundConnectionPool": { "http": { "http2MaxRequests": -1 } } }),
        "spec.inboundConnectionPool.http.http2MaxRequests",
        "-1 is negative",
    );
}

// ---- ingress

#[test]
fn ingress_port_number_is_valid() {
    assert_only_error(
        ingress(json!({ "port": { "number": 0, "protocol": "HTTP" } })),
        "spec.ingress[0].port.number",
        "between 1 and 65535",
    );
}

#[test]
fn ingress_ports_are_unique() {
    assert_only_error(
        json!({ "ingress": [
            { "port": { "number": 9080, "protocol": "HTTP" } },
            { "port": { "number": 9080, "protocol": "TCP" } }
        ] }),
        "spec.ingress[1].port.number",
        "ingress port 9080 is used by another ingress listener",
    );
}

#[test]
fn port_protocol_is_known() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080, "protocol": "HTTPX" } })),
        "spec.ingress[0].port.protocol",
        "unsupported protocol \"HTTPX\"",
    );
}

#[test]
fn port_name_is_a_dns_label() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080, "protocol": "HTTP", "name": "Http_Web" } })),
        "spec.ingress[0].port.name",
        "port name \"Http_Web\" must be a lower-case DNS label",
    );
}

#[test]
fn target_port_has_no_effect() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080, "protocol": "HTTP", "targetPort": 8080 } })),
        "spec.ingress[0].port.targetPort",
        "no effect on a Sidecar",
    );
}

#[test]
fn ingress_bind_is_an_ip() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "bind": "unix:///var/run/in.sock" })),
        "spec.ingress[0].bind",
        "not a valid IP address",
    );
}

#[test]
fn default_endpoint_is_loopback_or_wildcard() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "defaultEndpoint": "10.0.0.1:8080" })),
        "spec.ingress[0].defaultEndpoint",
        "other addresses are not supported",
    );
}

#[test]
fn default_endpoint_port_is_a_number() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "defaultEndpoint": "127.0.0.1:http" })),
        "spec.ingress[0].defaultEndpoint",
        "is not a number",
    );
}

#[test]
fn default_endpoint_port_is_in_range() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "defaultEndpoint": "[::]:70000" })),
        "spec.ingress[0].defaultEndpoint",
        "between 1 and 65535",
    );
}

#[test]
fn default_endpoint_socket_is_absolute() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "defaultEndpoint": "unix://relative.sock" })),
        "spec.ingress[0].defaultEndpoint",
        "absolute socket file path",
    );
}

#[test]
fn default_endpoint_accepts_istio_forms() {
    for endpoint in [
        "127.0.0.1:8080",
        "0.0.0.0:8080",
        "[::1]:8080",
        "[::]:8080",
        ":8080",
        "unix://@app",
    ] {
        let sidecar: SidecarSpec = parse(ingress(
            json!({ "port": { "number": 9080 }, "defaultEndpoint": endpoint }),
        ));
        assert_eq!(check(&sidecar), Vec::new(), "{endpoint}");
    }
}

#[test]
fn ingress_tls_needs_a_tls_port() {
    assert_only_error(
        ingress(json!({
            "port": { "number": 9080, "protocol": "HTTP" },
            "tls": { "mode": "SIMPLE", "serverCertificate": "/etc/cert.pem", "privateKey": "/etc/key.pem" }
        })),
        "spec.ingress[0].tls",
        "tls needs an HTTPS or TLS port",
    );
}

#[test]
fn ingress_tls_refuses_istio_mutual() {
    assert_only_error(
        ingress(
            json!({ "port": { "number": 9443, "protocol": "TLS" }, "tls": { "mode": "ISTIO_MUTUAL" } }),
        ),
        "spec.ingress[0].tls.mode",
        "ISTIO_MUTUAL mode is not allowed on a sidecar ingress listener",
    );
}

#[test]
fn ingress_tls_refuses_credential_name() {
    assert_only_error(
        ingress(
            json!({ "port": { "number": 9443, "protocol": "HTTPS" }, "tls": { "mode": "SIMPLE", "credentialName": "cert" } }),
        ),
        "spec.ingress[0].tls.credentialName",
        "not supported in sidecar ingress tls",
    );
}

#[test]
fn ingress_tls_follows_gateway_rules() {
    assert_only_error(
        ingress(
            json!({ "port": { "number": 9443, "protocol": "HTTPS" }, "tls": { "mode": "SIMPLE", "privateKey": "/etc/key.pem" } }),
        ),
        "spec.ingress[0].tls.serverCertificate",
        "needs serverCertificate",
    );
}

#[test]
fn ingress_connection_pool_is_checked() {
    assert_only_error(
        ingress(json!({ "port": { "number": 9080 }, "connectionPool": {} })),
        "spec.ingress[0].connectionPool",
        "must set tcp or http",
    );
}

// ---- egress

#[test]
fn portless_egress_listener_comes_last() {
    assert_only_error(
        egress(json!([
            { "hosts": ["./*"] },
            { "port": { "number": 9080, "protocol": "HTTP" }, "hosts": ["./*"] }
        ])),
        "spec.egress[0]",
        "only the last egress listener may omit the port",
    );
}

#[test]
fn only_one_portless_egress_listener() {
    assert_only_error(
        egress(json!([{ "hosts": ["./*"] }, { "hosts": ["istio-system/*"] }])),
        "spec.egress[0]",
        "at most one catch-all listener",
    );
}

#[test]
fn egress_ports_are_unique() {
    assert_only_error(
        egress(json!([
            { "port": { "number": 9080, "protocol": "HTTP" }, "hosts": ["./*"] },
            { "port": { "number": 9080, "protocol": "HTTP" }, "hosts": ["istio-system/*"] }
        ])),
        "spec.egress[1].port.number",
        "egress port 9080 is used by another egress listener",
    );
}

#[test]
fn egress_bind_is_an_ip() {
    assert_only_error(
        egress(json!([{ "port": { "number": 9080 }, "bind": "localhost", "hosts": ["./*"] }])),
        "spec.egress[0].bind",
        "\"localhost\" is not a valid IP address",
    );
}

#[test]
fn egress_port_zero_needs_a_socket() {
    assert_only_error(
        egress(
            json!([{ "port": { "number": 0, "protocol": "HTTP" }, "bind": "127.0.0.1", "hosts": ["./*"] }]),
        ),
        "spec.egress[0].bind",
        "port 0 must bind a unix:// socket",
    );
}

#[test]
fn egress_socket_capture_mode() {
    assert_only_error(
        egress(json!([{
            "port": { "number": 0, "protocol": "HTTP" }, "bind": "unix:///var/run/out.sock",
            "captureMode": "IPTABLES", "hosts": ["./*"]
        }])),
        "spec.egress[0].captureMode",
        "DEFAULT or NONE",
    );
}

#[test]
fn egress_sockets_are_unique() {
    assert_only_error(
        egress(json!([
            { "port": { "number": 0, "protocol": "HTTP" }, "bind": "unix://@out", "hosts": ["./*"] },
            { "port": { "number": 0, "protocol": "TCP" }, "bind": "unix://@out", "hosts": ["istio-system/*"] }
        ])),
        "spec.egress[1].bind",
        "bound by another egress listener",
    );
}

#[test]
fn egress_needs_hosts() {
    assert_only_error(
        egress(json!([{ "hosts": [] }])),
        "spec.egress[0].hosts",
        "at least one host",
    );
}

#[test]
fn egress_host_names_its_namespace() {
    assert_only_error(
        egress(json!([{ "hosts": ["reviews.default.svc.cluster.local"] }])),
        "spec.egress[0].hosts[0]",
        "must be written namespace/dnsName",
    );
}

#[test]
fn egress_host_namespace_is_valid() {
    assert_only_error(
        egress(json!([{ "hosts": ["Prod_NS/*"] }])),
        "spec.egress[0].hosts[0]",
        "invalid namespace",
    );
}

#[test]
fn egress_host_is_not_a_short_name() {
    assert_only_error(
        egress(json!([{ "hosts": ["./reviews"] }])),
        "spec.egress[0].hosts[0]",
        "short name",
    );
}

#[test]
fn egress_host_has_no_partial_wildcard() {
    assert_only_error(
        egress(json!([{ "hosts": ["*/*-api.example.com"] }])),
        "spec.egress[0].hosts[0]",
        "partial wildcard",
    );
}

// ---- outbound traffic policy

#[test]
fn egress_proxy_needs_allow_any() {
    assert_only_error(
        json!({ "outboundTrafficPolicy": {
            "mode": "REGISTRY_ONLY",
            "egressProxy": { "host": "egress.example.com", "port": { "number": 3128 } }
        } }),
        "spec.outboundTrafficPolicy.egressProxy",
        "only be set when mode is ALLOW_ANY",
    );
}

#[test]
fn egress_proxy_needs_a_port() {
    assert_only_error(
        json!({ "outboundTrafficPolicy": { "mode": "ALLOW_ANY", "egressProxy": { "host": "egress.example.com" } } }),
        "spec.outboundTrafficPolicy.egressProxy.port",
        "needs a port",
    );
}

#[test]
fn egress_proxy_host_has_no_wildcard() {
    assert_only_error(
        json!({ "outboundTrafficPolicy": {
            "mode": "ALLOW_ANY",
            "egressProxy": { "host": "*.example.com", "port": { "number": 3128 } }
        } }),
        "spec.outboundTrafficPolicy.egressProxy.host",
        "must not contain a wildcard",
    );
}
