//! RBAC filters end to end: HTTP requests refused with 403 and counted, TCP
//! connections closed, as Envoy's filters (and Istio's AuthorizationPolicy
//! translated into them) do; LOG rules (Istio's AUDIT) only mark requests
//! for the access log.

use crate::support;

use http::StatusCode;
use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener, tcp_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HTTP_RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
const NETWORK_RBAC: &str = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC";

fn all_to(cluster: &str) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
    ]}])
}

/// DENY DELETE from anyone; ALLOW GET and POST under /api from loopback.
fn http_rules() -> Value {
    json!([
        {"name": "envoy.filters.http.rbac", "typed_config": {"@type": HTTP_RBAC, "rules": {
            "action": "DENY",
            "policies": {"no-delete": {
                "permissions": [{"header": {"name": ":method", "string_match": {"exact": "DELETE"}}}],
                "principals": [{"any": true}]
            }}
        }}},
        {"name": "envoy.filters.http.rbac", "typed_config": {"@type": HTTP_RBAC, "rules": {
            "action": "ALLOW",
            "policies": {"api-from-loopback": {
                "permissions": [{"and_rules": {"rules": [
                    {"url_path": {"path": {"prefix": "/api/"}}},
                    {"or_rules": {"rules": [
                        {"header": {"name": ":method", "string_match": {"exact": "GET"}}},
                        {"header": {"name": ":method", "string_match": {"exact": "POST"}}}
                    ]}}
                ]}}],
                "principals": [{"direct_remote_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}}]
            }}
        }}}
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_outside_the_policies_get_403() {
    let echo = Echo::start("app").await;
    let mut listener = http_listener("inbound", all_to("app"));
    support::before_router(&mut listener, http_rules());
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;
    let address = proxy.listener("inbound");

    let (status, body) = get(address, "/api/products", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = get(address, "/admin", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "RBAC: access denied");
    let (status, body) = support::post(address, "/api/orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let request = http::Request::delete(format!("http://{address}/api/products"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let (status, body) = support::send(support::client(), request).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        proxy
            .stat("envoy_http_rbac_denied{envoy_http_conn_manager_prefix=\"inbound\"}")
            .await,
        2
    );
}

/// A TCP listener whose network RBAC allows connections matching `permission`.
fn tcp_with_rbac(permission: Value, upstream: &str) -> Value {
    let mut listener = tcp_listener("tcp", upstream);
    let filters = &mut listener["filter_chains"][0]["filters"];
    let tcp_proxy = filters[0].clone();
    *filters = json!([
        {"name": "envoy.filters.network.rbac", "typed_config": {"@type": NETWORK_RBAC, "stat_prefix": "tcp.", "rules": {
            "action": "ALLOW",
            "policies": {"p": {"permissions": [permission], "principals": [{"any": true}]}}
        }}},
        tcp_proxy
    ]);
    listener
}

/// Whether a connection through `address` gets the echo server's answer.
async fn tcp_answered(address: std::net::SocketAddr) -> bool {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = b"GET /tcp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // A refused connection may be closed before or while this is written.
    let _ = stream.write_all(request).await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(support::READY_WITHIN, stream.read_to_end(&mut reply))
        .await
        .expect("the connection ended in time");
    read.is_ok() && reply.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_outside_the_policies_are_closed() {
    let echo = Echo::start("app").await;
    let clusters = json!([cluster("app", &[echo.address])]);
    // Port 1 is never the listener's: the first lets nothing through, the
    // second everything.
    let only_port_1 = json!({"destination_port": 1});
    let closed = Proxy::start(&bootstrap(
        json!([tcp_with_rbac(only_port_1.clone(), "app")]),
        clusters.clone(),
    ))
    .await;
    assert!(!tcp_answered(closed.listener("tcp")).await);
    let not_port_1 = json!({"not_rule": only_port_1});
    let open = Proxy::start(&bootstrap(
        json!([tcp_with_rbac(not_port_1, "app")]),
        clusters,
    ))
    .await;
    assert!(tcp_answered(open.listener("tcp")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_rules_mark_requests_and_refuse_none() {
    let echo = Echo::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut listener = http_listener("inbound", all_to("app"));
    support::before_router(
        &mut listener,
        json!([{"name": "envoy.filters.http.rbac", "typed_config": {"@type": HTTP_RBAC, "rules": {
            "action": "LOG",
            "policies": {"ns[default]-policy[audit-deletes]-rule[0]": {
                "permissions": [{"header": {"name": ":method", "string_match": {"exact": "DELETE"}}}],
                "principals": [{"any": true}]
            }}
        }}}]),
    );
    listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = json!([{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": log,
        "log_format": {"text_format_source": {"inline_string":
            "%REQ(:METHOD)% %RESPONSE_CODE% %DYNAMIC_METADATA(envoy.common:access_log_hint)%\n"}}}}]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;
    let address = proxy.listener("inbound");
    let (status, body) = get(address, "/items", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = http::Request::delete(format!("http://{address}/items/1"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let (status, body) = support::send(support::client(), request).await;
    assert_eq!(status, StatusCode::OK, "audited, not refused: {body}");
    assert_eq!(
        support::wait_for_lines(&log, 2).await,
        ["GET 200 false", "DELETE 200 true"]
    );
}
