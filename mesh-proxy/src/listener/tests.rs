use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::testing::compile;

fn tcp_chain(cluster: &str, matcher: Value) -> Value {
    json!({"filter_chain_match": matcher, "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": cluster, "cluster": cluster}}]})
}

fn bootstrap(listeners: Value, clusters: &[&str]) -> Value {
    json!({"static_resources": {
        "listeners": listeners,
        "clusters": clusters.iter().map(|name| json!({"name": name})).collect::<Vec<_>>()
    }})
}

fn runtimes(bootstrap: &Value) -> Vec<Arc<Runtime>> {
    let config = compile(bootstrap).unwrap();
    let upstreams = Arc::new(crate::upstream::build(&config));
    let (spans, _exporter) = crate::telemetry::export::channel(1);
    let telemetry = Arc::new(crate::telemetry::Telemetry::new(&config.node, spans));
    let mut http = Vec::new();
    let context = BuildContext {
        upstreams: &upstreams,
        telemetry: &telemetry,
        drain: crate::drain::channel().1,
        previous: None,
    };
    config
        .listeners
        .iter()
        .map(|l| Arc::new(Runtime::build(l, &context, &mut http).unwrap()))
        .collect()
}

/// The cluster of the chain chosen for `destination` and `transport`.
fn chosen(runtime: &Runtime, destination: &str, transport: Option<Transport>) -> String {
    let sniffed = Sniffed {
        transport,
        hello: ClientHello::default(),
    };
    chosen_for(runtime, destination, &sniffed)
}

fn chosen_for(runtime: &Runtime, destination: &str, sniffed: &Sniffed) -> String {
    match runtime
        .select(destination.parse().unwrap(), sniffed)
        .map(|c| &c.handler)
    {
        Some(Handler::Tcp { targets, .. }) => targets.first().map_or_else(
            || "missing".into(),
            |(upstream, _)| upstream.cluster.name.clone(),
        ),
        Some(Handler::Http(_)) => "http".into(),
        None => "-".into(),
    }
}

#[tokio::test]
async fn chains_are_chosen_like_envoy() {
    let listener = json!({
        "name": "virtualInbound",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15006}},
        "listener_filters": [{"name": "envoy.filters.listener.original_dst"}, {"name": "envoy.filters.listener.tls_inspector"}],
        "filter_chains": [
            tcp_chain("any", json!({})),
            tcp_chain("port-9080", json!({"destination_port": 9080})),
            tcp_chain("port-9080-tls", json!({"destination_port": 9080, "transport_protocol": "tls"})),
            tcp_chain("net-10", json!({"prefix_ranges": [{"address_prefix": "10.0.0.0", "prefix_len": 8}]})),
            tcp_chain("net-10-1", json!({"prefix_ranges": [{"address_prefix": "10.1.0.0", "prefix_len": 16}]}))
        ]
    });
    let all = runtimes(&bootstrap(
        json!([listener]),
        &["any", "port-9080", "port-9080-tls", "net-10", "net-10-1"],
    ));
    let inbound = &all[0];
    assert!(inbound.sniffs);
    assert_eq!(
        chosen(inbound, "10.1.2.3:9080", Some(Transport::Raw)),
        "port-9080",
        "the port beats the prefix"
    );
    assert_eq!(
        chosen(inbound, "10.1.2.3:9080", Some(Transport::Tls)),
        "port-9080-tls"
    );
    assert_eq!(
        chosen(inbound, "10.1.2.3:80", Some(Transport::Raw)),
        "net-10-1",
        "the longest prefix wins"
    );
    assert_eq!(
        chosen(inbound, "10.9.2.3:80", Some(Transport::Raw)),
        "net-10"
    );
    assert_eq!(
        chosen(inbound, "192.168.0.1:80", Some(Transport::Raw)),
        "any"
    );
}

#[tokio::test]
async fn unbound_listeners_receive_handoffs_by_address_then_port() {
    let unbound = |name: &str, address: &str, port: u16| {
        json!({
            "name": name, "bind_to_port": false,
            "address": {"socket_address": {"address": address, "port_value": port}},
            "filter_chains": [tcp_chain(name, json!({}))]
        })
    };
    let listeners = json!([
        {"name": "virtualOutbound", "use_original_dst": true,
         "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
         "filter_chains": [tcp_chain("passthrough", json!({}))]},
        unbound("wildcard", "0.0.0.0", 9080),
        unbound("vip", "10.96.0.10", 9080)
    ]);
    let all = runtimes(&bootstrap(listeners, &["passthrough", "wildcard", "vip"]));
    let handoffs = Handoffs::new(&all);
    let find = |d: &str| handoffs.find(d.parse().unwrap()).map(|l| l.name.clone());
    assert_eq!(find("10.96.0.10:9080").as_deref(), Some("vip"));
    assert_eq!(find("10.96.0.11:9080").as_deref(), Some("wildcard"));
    assert_eq!(
        find("10.96.0.10:80"),
        None,
        "no listener: the outbound listener's own chains serve it"
    );
    assert!(all[0].use_original_dst && all[0].bind_to_port && !all[1].bind_to_port);
}

fn tls_hello(server_name: Option<&str>, alpn: &[&str]) -> Sniffed {
    Sniffed {
        transport: Some(Transport::Tls),
        hello: ClientHello {
            server_name: server_name.map(str::to_owned),
            alpn: alpn.iter().map(|p| p.to_string()).collect(),
        },
    }
}

#[tokio::test]
async fn server_names_rank_after_addresses_and_before_transport() {
    let listener = json!({
        "name": "gateway",
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": 443}},
        "filter_chains": [
            tcp_chain("fallback", json!({})),
            tcp_chain("wildcard", json!({"server_names": ["*.example.com"]})),
            tcp_chain("deeper", json!({"server_names": ["*.api.example.com"]})),
            tcp_chain("exact", json!({"server_names": ["www.example.com"], "transport_protocol": "tls"})),
            tcp_chain("h2", json!({"server_names": ["*.example.com"], "application_protocols": ["h2"]})),
            tcp_chain("port", json!({"destination_port": 8443}))
        ]
    });
    let clusters = ["fallback", "wildcard", "deeper", "exact", "h2", "port"];
    let all = runtimes(&bootstrap(json!([listener]), &clusters));
    let gateway = &all[0];
    assert!(gateway.sniffs);
    let at = |sni: Option<&str>, alpn: &[&str]| {
        chosen_for(gateway, "10.0.0.1:443", &tls_hello(sni, alpn))
    };
    assert_eq!(at(Some("www.example.com"), &[]), "exact");
    assert_eq!(at(Some("a.example.com"), &[]), "wildcard");
    assert_eq!(at(Some("a.example.com"), &["http/1.1", "h2"]), "h2");
    assert_eq!(at(Some("v1.api.example.com"), &[]), "deeper");
    assert_eq!(
        at(Some("example.com"), &[]),
        "fallback",
        "a wildcard needs a label"
    );
    assert_eq!(at(None, &[]), "fallback");
    assert_eq!(
        chosen_for(
            gateway,
            "10.0.0.1:8443",
            &tls_hello(Some("www.example.com"), &[])
        ),
        "port",
        "the destination port ranks first"
    );
}

#[test]
fn matches_refused_until_supported_name_the_field() {
    let listener = json!({"name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": 1}},
        "filter_chains": [tcp_chain("c", json!({"source_ports": [1234]}))]});
    let err = compile(&bootstrap(json!([listener]), &["c"]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "listener \"l\": filter_chains[0].filter_chain_match.source_ports: matching on source_ports (yet) is not supported by this proxy"
    );
}

#[test]
fn the_http_inspector_tells_http_from_other_bytes() {
    use super::http_protocol;
    assert_eq!(
        http_protocol(b"GET /productpage HTTP/1.1\r\nhost: x\r\n"),
        Some(Some("http/1.1"))
    );
    assert_eq!(
        http_protocol(b"POST / HTTP/1.0\r\n"),
        Some(Some("http/1.1"))
    );
    assert_eq!(
        http_protocol(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Some(Some("h2c"))
    );
    // Not yet decided: a partial preface, a partial request line.
    assert_eq!(http_protocol(b"PRI * HT"), None);
    assert_eq!(http_protocol(b"GET /very/long/pa"), None);
    assert_eq!(http_protocol(b"GE"), None);
    // Not HTTP.
    assert_eq!(http_protocol(b"\x00\x01binary"), Some(None));
    assert_eq!(http_protocol(b"GET / SMTP\r\n"), Some(None));
    assert_eq!(http_protocol(b"hello world\r\n"), Some(None));
    assert_eq!(http_protocol(b"GET /x\x00y"), Some(None));
}
