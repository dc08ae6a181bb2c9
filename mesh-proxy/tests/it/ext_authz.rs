//! External authorization end to end: real HTTP and gRPC authorizers in
//! front of an echo upstream, as Istio's CUSTOM action configures them
//! (shadow RBAC rules choosing the requests the authorizer sees).

use crate::support;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::authz::{
    DENIED_BODY, GRPC_DENIED_BODY, GRPC_DENIED_STATUS, GrpcAuthorizer, HttpAuthorizer,
};
use support::{Echo, Proxy, READY_WITHIN, bootstrap, cluster, echoed_header, http_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EXT_AUTHZ: &str = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz";
const NETWORK_EXT_AUTHZ: &str =
    "type.googleapis.com/envoy.extensions.filters.network.ext_authz.v3.ExtAuthz";
const HTTP_RBAC: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";

/// An answer: status, headers and body text.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::from_static(body.as_bytes())));
    let response = tokio::time::timeout(READY_WITHIN, client.request(request.unwrap()))
        .await
        .expect("answered in time")
        .expect("answered");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(address, Method::GET, path, headers, "").await
}

/// An HTTP listener with `filters` before the router, everything routed
/// to the `app` cluster.
fn listener_with(filters: Value) -> Value {
    let mut listener = http_listener(
        "inbound",
        json!([{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]),
    );
    support::before_router(&mut listener, filters);
    listener
}

fn ext_authz(config: Value) -> Value {
    let mut typed = json!({"@type": EXT_AUTHZ, "transport_api_version": "V3"});
    typed
        .as_object_mut()
        .unwrap()
        .extend(config.as_object().unwrap().clone());
    json!({"name": "envoy.filters.http.ext_authz", "typed_config": typed})
}

/// istiod's filter for an `envoyExtAuthzHttp` provider with
/// `includeRequestHeadersInCheck: [x-allow]` and `extra` fields.
fn http_authz(extra: Value) -> Value {
    let mut config = json!({
        "http_service": http_service("authz"),
        "allowed_headers": {"patterns": [{"exact": "x-allow", "ignore_case": true}]}
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    ext_authz(config)
}

/// istiod's `http_service` for an `envoyExtAuthzHttp` provider with
/// `pathPrefix: /check`, `headersToUpstreamOnAllow: [x-user]`,
/// `headersToDownstreamOnDeny: [x-reason]` and
/// `headersToDownstreamOnAllow: [x-seen-by]`.
fn http_service(cluster: &str) -> Value {
    json!({
        "server_uri": {"uri": format!("http://{cluster}"), "cluster": cluster, "timeout": "5s"},
        "path_prefix": "/check",
        "authorization_response": {
            "allowed_upstream_headers": {"patterns": [{"exact": "x-user", "ignore_case": true}]},
            "allowed_client_headers": {"patterns": [{"exact": "x-reason", "ignore_case": true}]},
            "allowed_client_headers_on_success": {"patterns": [{"exact": "x-seen-by", "ignore_case": true}]}
        }
    })
}

fn grpc_service(cluster: &str) -> Value {
    json!({"envoy_grpc": {"cluster_name": cluster, "authority": "authz"}, "timeout": "5s"})
}

async fn proxy_with(filters: Value, authorizer: SocketAddr) -> (Proxy, Echo) {
    proxy_with_listener(listener_with(filters), authorizer).await
}

/// A proxy with `listener`, the echo upstream as cluster `app` and the
/// authorizer as `authz`.
async fn proxy_with_listener(listener: Value, authorizer: SocketAddr) -> (Proxy, Echo) {
    let echo = Echo::start("app").await;
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([
            cluster("app", &[echo.address]),
            cluster("authz", &[authorizer])
        ]),
    ))
    .await;
    (proxy, echo)
}

async fn stat(proxy: &Proxy, name: &str) -> u64 {
    proxy
        .stat(&format!(
            "envoy_http_ext_authz_{name}{{envoy_http_conn_manager_prefix=\"inbound\"}}"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_authorizer_allows_and_denies() {
    let authorizer = HttpAuthorizer::start().await;
    let (proxy, _echo) = proxy_with(json!([http_authz(json!({}))]), authorizer.address).await;
    let address = proxy.listener("inbound");

    let allowed = get(address, "/api/items?page=2", &[("x-allow", "yes")]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(
        echoed_header(&allowed.body, "x-user"),
        "alice",
        "the authorizer's header reached the upstream"
    );
    assert_eq!(allowed.header("x-seen-by"), Some("authz"));

    let denied = get(address, "/api/items", &[]).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.body, DENIED_BODY);
    assert_eq!(denied.header("x-reason"), Some("not-allowed"));
    assert_eq!(denied.header("x-internal"), None, "not an allowed header");

    assert_eq!(
        authorizer.asked().paths,
        ["/check/api/items?page=2", "/check/api/items"]
    );
    assert_eq!(stat(&proxy, "ok").await, 1);
    assert_eq!(stat(&proxy, "denied").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_authorizer_allows_and_denies() {
    let authorizer = GrpcAuthorizer::start().await;
    let filter = ext_authz(json!({"grpc_service": grpc_service("authz")}));
    let (proxy, _echo) = proxy_with(json!([filter]), authorizer.address).await;
    let address = proxy.listener("inbound");

    let allowed = get(address, "/api", &[("x-allow", "yes")]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(echoed_header(&allowed.body, "x-user"), "alice");
    assert_eq!(allowed.header("x-seen-by"), Some("authz"));

    let denied = get(address, "/api", &[]).await;
    assert_eq!(denied.status, GRPC_DENIED_STATUS);
    assert_eq!(denied.body, GRPC_DENIED_BODY);
    assert_eq!(denied.header("x-reason"), Some("not-allowed"));
    assert_eq!(authorizer.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorizer_that_is_down_refuses_unless_failing_open() {
    let down = support::closed_port();
    let (proxy, _echo) = proxy_with(json!([http_authz(json!({}))]), down).await;
    let refused = get(proxy.listener("inbound"), "/api", &[("x-allow", "yes")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(stat(&proxy, "error").await, 1);

    let open = ext_authz(json!({
        "grpc_service": grpc_service("authz"),
        "failure_mode_allow": true,
        "failure_mode_allow_header_add": true
    }));
    let (proxy, _echo) = proxy_with(json!([open]), down).await;
    let allowed = get(proxy.listener("inbound"), "/api", &[]).await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    assert_eq!(
        echoed_header(&allowed.body, "x-envoy-auth-failure-mode-allowed"),
        "true"
    );
    assert_eq!(stat(&proxy, "failure_mode_allowed").await, 1);

    let custom = ext_authz(json!({
        "grpc_service": grpc_service("authz"),
        "status_on_error": {"code": "ServiceUnavailable"}
    }));
    let (proxy, _echo) = proxy_with(json!([custom]), down).await;
    let refused = get(proxy.listener("inbound"), "/api", &[]).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
}

/// Istio's CUSTOM action for a policy on `/admin`: shadow rules mark the
/// requests it matches, and only those go to the authorizer.
fn custom_action_for_admin() -> Value {
    let rbac = json!({"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": HTTP_RBAC,
        "shadow_rules": {"action": "DENY", "policies": {
            "istio-ext-authz-ns[default]-policy[admin]-rule[0]": {
                "permissions": [{"and_rules": {"rules": [{"or_rules": {"rules": [
                    {"url_path": {"path": {"prefix": "/admin/"}}}]}}]}}],
                "principals": [{"and_ids": {"ids": [{"any": true}]}}]
            }
        }},
        "shadow_rules_stat_prefix": "istio_ext_authz_"
    }});
    let authz = http_authz(json!({
        "filter_enabled_metadata": {"filter": "envoy.filters.http.rbac",
            "path": [{"key": "istio_ext_authz_shadow_effective_policy_id"}],
            "value": {"string_match": {"prefix": "istio-ext-authz"}}}
    }));
    json!([rbac, authz])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_requests_the_shadow_rules_match_go_to_the_authorizer() {
    let authorizer = HttpAuthorizer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let mut listener = listener_with(custom_action_for_admin());
    listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = json!([
        {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": log,
            "log_format": {"text_format_source": {"inline_string":
                "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %DYNAMIC_METADATA(envoy.filters.http.rbac:istio_ext_authz_shadow_effective_policy_id)%\n"}}}}
    ]);
    let (proxy, _echo) = proxy_with_listener(listener, authorizer.address).await;
    let address = proxy.listener("inbound");

    let public = get(address, "/public", &[]).await;
    assert_eq!(public.status, StatusCode::OK, "{}", public.body);
    assert_eq!(authorizer.asked().calls, 0, "not asked about /public");
    let admin = get(address, "/admin/users", &[]).await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    assert_eq!(admin.body, DENIED_BODY);
    let allowed = get(address, "/admin/users", &[("x-allow", "yes")]).await;
    assert_eq!(allowed.status, StatusCode::OK);
    assert_eq!(authorizer.asked().calls, 2);
    assert_eq!(stat(&proxy, "disabled").await, 1);

    let lines = support::wait_for_lines(&log, 3).await;
    assert_eq!(lines[0], "/public 200 - -");
    assert_eq!(
        lines[1],
        "/admin/users 403 UAEX istio-ext-authz-ns[default]-policy[admin]-rule[0]"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_can_be_sent_the_body() {
    let authorizer = HttpAuthorizer::start().await;
    let filter = |allow_partial: bool| {
        http_authz(json!({
            "with_request_body": {"max_request_bytes": 16, "allow_partial_message": allow_partial}
        }))
    };
    let (proxy, _echo) = proxy_with(json!([filter(false)]), authorizer.address).await;
    let address = proxy.listener("inbound");
    let allowed = send(address, Method::POST, "/orders", &[], "let me in").await;
    assert_eq!(allowed.status, StatusCode::OK, "{}", allowed.body);
    let echoed: Value = serde_json::from_str(&allowed.body).unwrap();
    assert_eq!(echoed["body_bytes"], 9, "the body went on, whole");
    let too_long = "a body longer than sixteen bytes";
    let refused = send(address, Method::POST, "/orders", &[], too_long).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);

    let (proxy, _echo) = proxy_with(json!([filter(true)]), authorizer.address).await;
    let cut = send(
        proxy.listener("inbound"),
        Method::POST,
        "/orders",
        &[("x-allow", "yes")],
        too_long,
    )
    .await;
    assert_eq!(cut.status, StatusCode::OK, "{}", cut.body);
    let echoed: Value = serde_json::from_str(&cut.body).unwrap();
    assert_eq!(echoed["body_bytes"], too_long.len());
    // The authorizer saw the whole short body, and only the first 16
    // bytes of the long one, each marked as Envoy marks them; the refused
    // long body never reached it.
    let seen = |body: &str, partial: &str| (body.to_owned(), Some(partial.to_owned()));
    assert_eq!(
        authorizer.asked().bodies,
        [seen("let me in", "false"), seen(&too_long[..16], "true")]
    );
}

/// Whether a connection through `address` gets the echo server's answer.
async fn tcp_answered(address: SocketAddr) -> bool {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = b"GET /tcp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // A refused connection may be closed before or while this is written.
    let _ = stream.write_all(request).await;
    let mut reply = Vec::new();
    let read = tokio::time::timeout(READY_WITHIN, stream.read_to_end(&mut reply))
        .await
        .expect("the connection ended in time");
    read.is_ok() && reply.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_ext_authz_closes_denied_connections() {
    let authorizer = GrpcAuthorizer::start().await;
    let mut listener = support::tcp_listener("tcp", "app");
    let filters = &mut listener["filter_chains"][0]["filters"];
    let tcp_proxy = filters[0].take();
    *filters = json!([
        {"name": "envoy.filters.network.ext_authz", "typed_config": {
            "@type": NETWORK_EXT_AUTHZ, "stat_prefix": "tcp.",
            "grpc_service": grpc_service("authz"), "transport_api_version": "V3"}},
        tcp_proxy
    ]);
    let (proxy, _echo) = proxy_with_listener(listener, authorizer.address).await;
    let address = proxy.listener("tcp");
    assert!(!tcp_answered(address).await, "denied: closed");
    authorizer
        .allow_connections
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(tcp_answered(address).await, "allowed: proxied");
    assert_eq!(authorizer.calls(), 2);
}
