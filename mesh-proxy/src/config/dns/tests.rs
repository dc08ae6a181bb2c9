use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{Compiled, Config};
use crate::dns::DnsTable;
use crate::identity::Provided;
use crate::testing::http_bootstrap;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn table() -> DnsTable {
    DnsTable::with([
        (
            "db.example".to_owned(),
            vec![ip("10.0.0.1"), ip("10.0.0.2"), ip("fd00::1")],
        ),
        ("v6.example".to_owned(), vec![ip("fd00::2")]),
        ("gone.example".to_owned(), vec![]),
    ])
}

fn endpoint(host: &str, port: u16) -> Value {
    json!({"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}})
}

/// A bootstrap whose one cluster `a` is of `kind` with these endpoints and
/// extra fields, compiled with [`table`].
fn compile(kind: &str, endpoints: Vec<Value>, fields: Value) -> Compiled {
    let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
    let mut bootstrap = http_bootstrap(
        json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
        &["a"],
    );
    let cluster = &mut bootstrap["static_resources"]["clusters"][0];
    cluster["type"] = json!(kind);
    cluster["load_assignment"] =
        json!({"cluster_name": "a", "endpoints": [{"lb_endpoints": endpoints}]});
    for (key, value) in fields.as_object().unwrap() {
        cluster[key] = value.clone();
    }
    let parsed = mesh_api::envoy::from_json(&bootstrap).unwrap();
    Config::from_bootstrap_with(&parsed, &Provided::Off, &table())
}

fn addresses(compiled: Compiled) -> Vec<SocketAddr> {
    let config = compiled.config.unwrap();
    config.clusters["a"]
        .endpoints
        .iter()
        .map(|e| e.address)
        .collect()
}

fn socket(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn strict_dns_makes_an_endpoint_of_every_address_of_the_family() {
    let v4 = compile(
        "STRICT_DNS",
        vec![endpoint("db.example", 5432)],
        json!({"dns_lookup_family": "V4_ONLY"}),
    );
    assert_eq!(
        addresses(v4),
        [socket("10.0.0.1:5432"), socket("10.0.0.2:5432")]
    );
    let all = compile(
        "STRICT_DNS",
        vec![endpoint("db.example", 5432)],
        json!({"dns_lookup_family": "ALL"}),
    );
    assert_eq!(addresses(all).len(), 3);
    // AUTO prefers IPv6; V4_PREFERRED falls back to it.
    let auto = compile("STRICT_DNS", vec![endpoint("db.example", 5432)], json!({}));
    assert_eq!(addresses(auto), [socket("[fd00::1]:5432")]);
    let preferred = compile(
        "STRICT_DNS",
        vec![endpoint("v6.example", 80)],
        json!({"dns_lookup_family": "V4_PREFERRED"}),
    );
    assert_eq!(addresses(preferred), [socket("[fd00::2]:80")]);
}

#[test]
fn logical_dns_takes_one_address_and_keeps_it() {
    let compile_once = || {
        compile(
            "LOGICAL_DNS",
            vec![endpoint("db.example", 5432)],
            json!({"dns_lookup_family": "V4_ONLY"}),
        )
    };
    let first = addresses(compile_once());
    assert_eq!(first.len(), 1);
    assert!(
        [socket("10.0.0.1:5432"), socket("10.0.0.2:5432")].contains(&first[0]),
        "{first:?}"
    );
    assert_eq!(
        addresses(compile_once()),
        first,
        "the same answer, the same address"
    );
    let err = compile(
        "LOGICAL_DNS",
        vec![endpoint("db.example", 1), endpoint("v6.example", 1)],
        json!({}),
    )
    .config
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cluster \"a\": load_assignment.endpoints: a LOGICAL_DNS cluster needs exactly one endpoint"
    );
}

#[test]
fn hosts_are_wanted_at_the_fastest_refresh_and_unlooked_ones_are_missing() {
    let compiled = compile(
        "STRICT_DNS",
        vec![
            endpoint("db.example", 1),
            endpoint("new.example", 1),
            endpoint("gone.example", 1),
        ],
        json!({"dns_refresh_rate": "30s", "dns_lookup_family": "V4_ONLY"}),
    );
    let references = compiled.references.clone();
    assert_eq!(
        references.hosts.keys().collect::<Vec<_>>(),
        ["db.example", "gone.example", "new.example"]
    );
    assert!(
        references
            .hosts
            .values()
            .all(|rate| *rate == Duration::from_secs(30))
    );
    assert_eq!(
        references.missing.iter().collect::<Vec<_>>(),
        ["dns name \"new.example\""],
        "a lookup that found nothing is not missing"
    );
    assert_eq!(addresses(compiled).len(), 2);
}

#[test]
fn bad_dns_clusters_are_refused_with_the_field() {
    let err = |endpoints: Vec<Value>, fields: Value| {
        compile("STRICT_DNS", endpoints, fields)
            .config
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(
            vec![json!({"endpoint": {"address": {"socket_address": {"address": "db.example"}}}})],
            json!({})
        ),
        "cluster \"a\": load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: a port is required"
    );
    assert_eq!(
        err(
            vec![endpoint("db.example", 1)],
            json!({"dns_refresh_rate": "0s"})
        ),
        "cluster \"a\": dns_refresh_rate: must be at least 1ms"
    );
}
