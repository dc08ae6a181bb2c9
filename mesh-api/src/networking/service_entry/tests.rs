use serde_json::{Value, json};

use super::*;
use crate::validate::check;
use crate::validate::testing::{self, assert_valid, parse};

#[track_caller]
fn only_error(doc: Value, path: &str, needle: &str) {
    testing::assert_only_error::<ServiceEntrySpec>(doc, path, needle);
}

/// A valid external service resolved by DNS; tests change one thing in it.
fn base() -> Value {
    json!({
        "hosts": ["api.example.com"],
        "ports": [{"number": 443, "name": "https", "protocol": "TLS"}],
        "resolution": "DNS",
        "location": "MESH_EXTERNAL"
    })
}

/// A valid mesh-internal service with static endpoints.
fn static_entry() -> Value {
    json!({
        "hosts": ["vm.internal"],
        "addresses": ["10.1.0.0/16"],
        "ports": [{"number": 9080, "name": "http", "protocol": "HTTP"}],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "endpoints": [{"address": "10.1.2.3", "ports": {"http": 8080}}]
    })
}

#[test]
fn rich_service_entry_is_valid_and_round_trips() {
    let doc = json!({
        "hosts": ["ratings.vm.internal", "ratings-legacy.vm.internal"],
        "addresses": ["240.0.0.10", "2001:db8::/64"],
        "ports": [
            {"number": 9080, "name": "http", "protocol": "http", "targetPort": 8080},
            {"number": 9443, "name": "tls-api", "protocol": "TLS"},
            {"number": 50051, "name": "grpc", "protocol": "GRPC"}
        ],
        "location": "MESH_INTERNAL",
        "resolution": "STATIC",
        "endpoints": [
            {
                "address": "10.0.0.5",
                "ports": {"http": 8080, "grpc": 50052},
                "labels": {"app": "ratings", "version": "v2-mysql-vm"},
                "network": "vm-network",
                "locality": "us-east1/us-east1-b",
                "weight": 3,
                "serviceAccount": "bookinfo-ratings"
            },
            {"address": "10.0.0.6"}
        ],
        "exportTo": [".", "bookinfo"],
        "subjectAltNames": ["spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings"]
    });
    let spec: ServiceEntrySpec = parse(doc);
    assert_eq!(check(&spec), vec![]);
    assert_eq!(spec.resolution, Resolution::Static);
    assert_eq!(spec.ports[0].protocol(), Some(Protocol::Http));
    let text = serde_json::to_string(&spec).unwrap();
    let again: ServiceEntrySpec = serde_json::from_str(&text).unwrap();
    assert_eq!(again, spec);
}

#[test]
fn istio_samples_are_valid() {
    // Bookinfo's egress rule for Google APIs.
    let google = json!({
        "hosts": ["www.googleapis.com"],
        "ports": [
            {"number": 80, "name": "http", "protocol": "HTTP"},
            {"number": 443, "name": "https", "protocol": "HTTPS"}
        ],
        "resolution": "DNS"
    });
    assert_valid::<ServiceEntrySpec>(google);
    // Shapes Istio's own valid test data accepts.
    let selector = json!({
        "hosts": ["example.com"],
        "workloadSelector": {"labels": {"foo": "bar"}},
        "addresses": ["1.2.3.4", "001:db8::"],
        "exportTo": ["foo", "."],
        "ports": [{"name": "foo", "protocol": "HTTP", "number": 1234, "targetPort": 2345}],
        "resolution": "DNS"
    });
    assert_valid::<ServiceEntrySpec>(selector);
    assert_valid::<ServiceEntrySpec>(json!({"hosts": ["example.com"], "workloadSelector": {}}));
    assert_valid::<ServiceEntrySpec>(json!({"hosts": ["*x"]}));
    assert_valid::<ServiceEntrySpec>(
        json!({"hosts": ["example.com"], "addresses": ["1.1.1.1/32"]}),
    );
    let unix = json!({
        "hosts": ["local.uds"],
        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
        "resolution": "STATIC",
        "endpoints": [{"address": "unix:///var/run/app.sock"}]
    });
    assert_valid::<ServiceEntrySpec>(unix);
    let dynamic = json!({
        "hosts": ["*.wikipedia.org"],
        "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}],
        "resolution": "DYNAMIC_DNS"
    });
    assert_valid::<ServiceEntrySpec>(dynamic);
}

#[test]
fn unknown_field_fails_to_parse() {
    let mut doc = base();
    doc["ports"][0]["appProtocol"] = json!("https");
    let err = serde_json::from_value::<ServiceEntrySpec>(doc).unwrap_err();
    assert!(err.to_string().contains("appProtocol"), "{err}");
    let mut doc = base();
    doc["workloadSelector"] = json!({"matchLabels": {"app": "ratings"}});
    let err = serde_json::from_value::<ServiceEntrySpec>(doc).unwrap_err();
    assert!(err.to_string().contains("matchLabels"), "{err}");
}

#[test]
fn misspelled_enum_fails_to_parse() {
    let mut doc = base();
    doc["resolution"] = json!("DNS_RR");
    let err = serde_json::from_value::<ServiceEntrySpec>(doc).unwrap_err();
    assert!(err.to_string().contains("DNS_RR"), "{err}");
    let mut doc = base();
    doc["location"] = json!("EXTERNAL");
    let err = serde_json::from_value::<ServiceEntrySpec>(doc).unwrap_err();
    assert!(err.to_string().contains("EXTERNAL"), "{err}");
}

#[test]
fn missing_hosts_fails_to_parse() {
    let err = serde_json::from_value::<ServiceEntrySpec>(json!({"resolution": "DNS"})).unwrap_err();
    assert!(err.to_string().contains("hosts"), "{err}");
}

#[test]
fn empty_hosts() {
    let mut doc = base();
    doc["hosts"] = json!([]);
    only_error(doc, "spec.hosts", "at least one host");
}

#[test]
fn wildcard_only_host() {
    let mut doc = static_entry();
    doc["hosts"] = json!(["*"]);
    only_error(doc, "spec.hosts[0]", "host \"*\" is not allowed");
}

#[test]
fn invalid_host() {
    let mut doc = base();
    doc["hosts"] = json!(["api..example.com"]);
    only_error(doc, "spec.hosts[0]", "not a valid domain name");
}

#[test]
fn invalid_address() {
    let mut doc = base();
    doc["addresses"] = json!(["240.0.0"]);
    only_error(
        doc,
        "spec.addresses[0]",
        "not a valid IP address or CIDR block",
    );
}

#[test]
fn invalid_cidr() {
    let mut doc = static_entry();
    doc["addresses"] = json!(["10.0.0.0/33"]);
    only_error(doc, "spec.addresses[0]", "not a valid CIDR block");
}

#[test]
fn cidr_with_dns_resolution() {
    let mut doc = base();
    doc["addresses"] = json!(["240.0.0.0/24"]);
    only_error(
        doc,
        "spec.addresses[0]",
        "only allowed with resolution NONE or STATIC, not DNS",
    );
}

#[test]
fn port_number_zero() {
    let mut doc = base();
    doc["ports"][0]["number"] = json!(0);
    only_error(doc, "spec.ports[0].number", "between 1 and 65535");
}

#[test]
fn target_port_out_of_range() {
    let mut doc = base();
    doc["ports"][0]["targetPort"] = json!(70000);
    only_error(doc, "spec.ports[0].targetPort", "70000");
}

#[test]
fn empty_port_name() {
    let mut doc = base();
    doc["ports"][0]["name"] = json!("");
    only_error(doc, "spec.ports[0].name", "invalid port name");
}

#[test]
fn upper_case_port_name() {
    let mut doc = base();
    doc["ports"][0]["name"] = json!("HTTPS");
    only_error(doc, "spec.ports[0].name", "lower-case DNS label");
}

#[test]
fn duplicate_port_name() {
    let mut doc = base();
    doc["ports"] = json!([
        {"number": 443, "name": "https", "protocol": "TLS"},
        {"number": 8443, "name": "https", "protocol": "TLS"}
    ]);
    only_error(doc, "spec.ports[1].name", "port names must be unique");
}

#[test]
fn duplicate_port_number() {
    let mut doc = base();
    doc["ports"] = json!([
        {"number": 443, "name": "https", "protocol": "TLS"},
        {"number": 443, "name": "tls", "protocol": "TLS"}
    ]);
    only_error(doc, "spec.ports[1].number", "port numbers must be unique");
}

#[test]
fn unknown_port_protocol() {
    let mut doc = base();
    doc["ports"][0]["protocol"] = json!("QUIC");
    only_error(
        doc,
        "spec.ports[0].protocol",
        "unsupported protocol \"QUIC\"",
    );
}

#[test]
fn selector_and_endpoints() {
    let mut doc = static_entry();
    doc["workloadSelector"] = json!({"labels": {"app": "ratings"}});
    only_error(
        doc,
        "spec.workloadSelector",
        "only one of workloadSelector or endpoints",
    );
}

#[test]
fn selector_with_wildcard() {
    let mut doc = base();
    doc["workloadSelector"] = json!({"labels": {"app": "*"}});
    only_error(
        doc,
        "spec.workloadSelector.labels.app",
        "wildcards are not allowed",
    );
}

#[test]
fn endpoints_with_resolution_none() {
    let mut doc = static_entry();
    doc["resolution"] = json!("NONE");
    only_error(doc, "spec.endpoints", "resolution NONE takes no endpoints");
}

#[test]
fn static_endpoint_with_host_name() {
    let mut doc = static_entry();
    doc["endpoints"][0]["address"] = json!("vm1.internal");
    only_error(
        doc,
        "spec.endpoints[0].address",
        "must be an IP address or a unix:// socket with resolution STATIC",
    );
}

#[test]
fn static_unix_endpoint_with_two_ports() {
    let mut doc = static_entry();
    doc["addresses"] = json!([]);
    doc["ports"] = json!([
        {"number": 80, "name": "http", "protocol": "HTTP"},
        {"number": 81, "name": "admin", "protocol": "HTTP"}
    ]);
    doc["endpoints"] = json!([{"address": "unix:///var/run/app.sock"}]);
    only_error(
        doc,
        "spec.endpoints[0].address",
        "needs exactly one declared port, the service entry declares 2",
    );
}

#[test]
fn endpoint_port_not_declared() {
    let mut doc = static_entry();
    doc["endpoints"][0]["ports"] = json!({"grpc": 50051});
    only_error(
        doc,
        "spec.endpoints[0].ports.grpc",
        "does not name a port declared in ports",
    );
}

#[test]
fn endpoint_checked_as_workload_entry() {
    let mut doc = static_entry();
    doc["endpoints"][0]["weight"] = json!(0);
    only_error(
        doc,
        "spec.endpoints[0].weight",
        "weight must be greater than 0",
    );
}

#[test]
fn endpoint_without_address() {
    let mut doc = static_entry();
    doc["endpoints"][0]
        .as_object_mut()
        .unwrap()
        .remove("address");
    only_error(
        doc,
        "spec.endpoints[0].address",
        "address is required unless network is set",
    );
}

#[test]
fn dns_without_endpoints_and_wildcard_host() {
    let mut doc = base();
    doc["hosts"] = json!(["*.example.com"]);
    only_error(
        doc,
        "spec.hosts[0]",
        "has a wildcard, so resolution DNS without endpoints",
    );
}

#[test]
fn dns_with_unix_endpoint() {
    let mut doc = base();
    doc["endpoints"] = json!([{"address": "unix:///var/run/app.sock"}]);
    only_error(
        doc,
        "spec.endpoints[0].address",
        "resolution DNS cannot use",
    );
}

#[test]
fn dns_round_robin_with_two_endpoints() {
    let mut doc = base();
    doc["resolution"] = json!("DNS_ROUND_ROBIN");
    doc["endpoints"] = json!([{"address": "a.example.com"}, {"address": "b.example.com"}]);
    only_error(
        doc,
        "spec.endpoints",
        "DNS_ROUND_ROBIN takes at most one endpoint, found 2",
    );
}

#[test]
fn dynamic_dns_with_exact_host() {
    let mut doc = base();
    doc["resolution"] = json!("DYNAMIC_DNS");
    only_error(doc, "spec.hosts[0]", "must be a wildcard");
}

#[test]
fn dynamic_dns_with_addresses() {
    let mut doc = base();
    doc["resolution"] = json!("DYNAMIC_DNS");
    doc["hosts"] = json!(["*.example.com"]);
    doc["addresses"] = json!(["240.0.0.1"]);
    only_error(
        doc,
        "spec.addresses",
        "cannot be set with resolution DYNAMIC_DNS",
    );
}

#[test]
fn dynamic_dns_with_tcp_port() {
    let mut doc = base();
    doc["resolution"] = json!("DYNAMIC_DNS");
    doc["hosts"] = json!(["*.example.com"]);
    doc["ports"][0]["protocol"] = json!("TCP");
    only_error(
        doc,
        "spec.ports[0].protocol",
        "cannot be used with resolution DYNAMIC_DNS",
    );
}

#[test]
fn several_hosts_with_tcp_port() {
    let mut doc = base();
    doc["hosts"] = json!(["a.example.com", "b.example.com"]);
    doc["ports"][0]["protocol"] = json!("TCP");
    only_error(doc, "spec.ports[0].protocol", "cannot tell 2 hosts apart");
}

#[test]
fn export_to_invalid_namespace() {
    let mut doc = base();
    doc["exportTo"] = json!(["Bookinfo"]);
    only_error(
        doc,
        "spec.exportTo[0]",
        "must be \".\", \"*\", \"~\" or a namespace name",
    );
}

#[test]
fn export_to_duplicate() {
    let mut doc = base();
    doc["exportTo"] = json!(["bookinfo", "bookinfo"]);
    only_error(doc, "spec.exportTo[1]", "listed more than once");
}

#[test]
fn export_to_no_one_and_more() {
    let mut doc = base();
    doc["exportTo"] = json!(["~", "bookinfo"]);
    only_error(
        doc,
        "spec.exportTo",
        "exportTo \"~\" means no namespace and cannot be combined with other entries",
    );
}

#[test]
fn export_to_everyone_and_more() {
    let mut doc = base();
    doc["exportTo"] = json!([".", "*"]);
    only_error(
        doc,
        "spec.exportTo",
        "exportTo \"*\" means every namespace and cannot be combined with other entries",
    );
}

#[test]
fn export_to_no_one_alone_is_valid() {
    let mut doc = base();
    doc["exportTo"] = json!(["~"]);
    assert_valid::<ServiceEntrySpec>(doc);
}
