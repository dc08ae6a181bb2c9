//! HTTP/2 to upstreams: a gRPC-style exchange keeps its trailers end to
//! end; replies the proxy makes itself reach gRPC clients as gRPC statuses;
//! a gRPC client's deadline (`grpc-timeout`) bounds its request.

use crate::support;

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::{Proxy, bootstrap, cluster, http_listener};
use tokio::net::TcpListener;

/// An HTTP/2-only server answering like gRPC: a body, then `grpc-status` in trailers.
async fn grpc_like_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|request: Request<hyper::body::Incoming>| async move {
                    let te = request.headers().get("te").cloned();
                    let received = request.into_body().collect().await.unwrap().to_bytes();
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", HeaderValue::from_static("7"));
                    trailers.insert(
                        "grpc-message",
                        HeaderValue::from_static("permission denied"),
                    );
                    let reply = format!("echo {} bytes, te={:?}", received.len(), te);
                    let body = Full::new(Bytes::from(reply))
                        .with_trailers(async move { Some(Ok::<_, Infallible>(trailers)) });
                    let mut response = Response::new(body);
                    response
                        .headers_mut()
                        .insert("content-type", HeaderValue::from_static("application/grpc"));
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_and_status_pass_through_an_http2_cluster() {
    let server = grpc_like_server().await;
    let mut grpc = cluster("grpc", &[server]);
    grpc["typed_extension_protocol_options"] = json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}});
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "grpc"}}]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([grpc]),
    ))
    .await;

    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = Request::post(format!(
        "http://{}/helloworld.Greeter/SayHello",
        proxy.listener("http")
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
    .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers arrive");
    assert_eq!(trailers["grpc-status"], "7");
    assert_eq!(trailers["grpc-message"], "permission denied");
    let body = String::from_utf8(collected.to_bytes().to_vec()).unwrap();
    assert_eq!(body, "echo 10 bytes, te=Some(\"trailers\")");
}

/// An h2c gRPC call (or, with `grpc` false, the same POST as plain HTTP)
/// through `address`: the status, `grpc-status` and `grpc-message`, and the
/// body.
async fn call(address: std::net::SocketAddr, path: &str, grpc: bool) -> (u16, HeaderMap, Bytes) {
    call_with(address, path, grpc, None).await
}

/// Like [`call`], with a `grpc-timeout` header when given.
async fn call_with(
    address: std::net::SocketAddr,
    path: &str,
    grpc: bool,
    deadline: Option<&'static str>,
) -> (u16, HeaderMap, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let content_type = if grpc {
        "application/grpc"
    } else {
        "application/octet-stream"
    };
    let mut request = Request::post(format!("http://{address}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers");
    if let Some(deadline) = deadline {
        request = request.header("grpc-timeout", deadline);
    }
    let request = request
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x05hello")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status.as_u16(),
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_errors_reach_grpc_clients_as_grpc_statuses() {
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/helloworld."}, "route": {"cluster": "empty"}},
        {"match": {"prefix": "/secret."}, "route": {"cluster": "empty"}}
    ]}]);
    let mut listener = http_listener("http", vhosts);
    support::before_router(
        &mut listener,
        json!([{"name": "envoy.filters.http.rbac", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC",
            "rules": {"action": "DENY", "policies": {"no-secrets": {
                "permissions": [{"url_path": {"path": {"prefix": "/secret."}}}],
                "principals": [{"any": true}]
            }}}
        }}]),
    );
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("empty", &[])]),
    ))
    .await;
    let address = proxy.listener("http");

    // (path, gRPC status, message): RBAC's 403, no route's 404, no endpoint's 503.
    let cases = [
        ("/secret.Vault/Open", "7", "RBAC: access denied"),
        ("/other.Service/Call", "12", "route not found"),
        ("/helloworld.Greeter/SayHello", "14", "no healthy upstream"),
    ];
    for (path, status, message) in cases {
        let (http, headers, body) = call(address, path, true).await;
        assert_eq!(http, 200, "{path}: trailers-only responses are HTTP 200");
        assert_eq!(headers["content-type"], "application/grpc", "{path}");
        assert_eq!(headers["grpc-status"], status, "{path}");
        assert_eq!(headers["grpc-message"], message, "{path}");
        assert!(body.is_empty(), "{path}: {body:?}");
    }

    // The same request as plain HTTP keeps the HTTP status and text.
    let (http, headers, body) = call(address, "/secret.Vault/Open", false).await;
    assert_eq!(http, 403);
    assert!(!headers.contains_key("grpc-status"));
    assert_eq!(body, "RBAC: access denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_deadline_bounds_the_request_as_the_route_says() {
    let echo = support::Echo::start("slow").await;
    // istiod's sidecar route (`max_grpc_timeout`) and the newer model
    // (`max_stream_duration`), each with no timeout of its own.
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/router/"}, "route": {"cluster": "app", "timeout": "0s",
            "max_grpc_timeout": "0s", "prefix_rewrite": "/"}},
        {"match": {"prefix": "/stream/"}, "route": {"cluster": "app", "timeout": "0s",
            "max_stream_duration": {"max_stream_duration": "0s", "grpc_timeout_header_max": "0s"},
            "prefix_rewrite": "/"}}
    ]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([cluster("app", &[echo.address])]),
    ))
    .await;
    let address = proxy.listener("http");

    // The upstream would answer after 5 s, with no grpc-status: a status
    // here is the proxy's reply at the deadline.
    let (http, headers, _) = call_with(address, "/router/delay/5000", true, Some("300m")).await;
    assert_eq!(http, 200);
    assert_eq!(
        headers["grpc-status"], "14",
        "a router timeout is UNAVAILABLE, as in Envoy"
    );
    assert_eq!(headers["grpc-message"], "upstream request timeout");
    let (http, headers, _) = call_with(address, "/stream/delay/5000", true, Some("300m")).await;
    assert_eq!(http, 200);
    assert_eq!(
        headers["grpc-status"], "4",
        "a stream past its duration is DEADLINE_EXCEEDED"
    );
    assert_eq!(headers["grpc-message"], "downstream duration timeout");
    assert_eq!(
        proxy
            .stat("envoy_http_downstream_rq_max_duration_reached{envoy_http_conn_manager_prefix=\"http\"}")
            .await,
        1
    );

    // Within its deadline, a call goes through.
    let (http, headers, body) = call_with(address, "/router/delay/10", true, Some("5S")).await;
    assert_eq!(http, 200, "{body:?}");
    assert!(!headers.contains_key("grpc-status"), "{headers:?}");
}
