//! HTTP/2 to upstreams: a gRPC-style exchange keeps its trailers end to end.

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
