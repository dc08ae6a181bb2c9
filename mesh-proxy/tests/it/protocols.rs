//! Upgrades, mirroring and malformed traffic, end to end.

use crate::support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WITHIN: Duration = Duration::from_secs(20);

fn catch_all(action: Value) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": action}]}])
}

fn manager(listener: &mut Value) -> &mut Value {
    &mut listener["filter_chains"][0]["filters"][0]["typed_config"]
}

/// An HTTP/1.1 server that accepts upgrades and then echoes raw bytes back.
async fn upgrade_echo() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|mut request: Request<Incoming>| async move {
                    let upgraded = hyper::upgrade::on(&mut request);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgraded.await else { return };
                        let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                        let _ = tokio::io::copy(&mut reader, &mut writer).await;
                    });
                    let mut response = Response::new(Empty::<Bytes>::new());
                    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    response
                        .headers_mut()
                        .insert("connection", "upgrade".parse().unwrap());
                    response
                        .headers_mut()
                        .insert("upgrade", "websocket".parse().unwrap());
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    address
}

/// Reads from `stream` until `needle` has arrived (bounded by [`WITHIN`]).
async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(WITHIN, async {
        while !seen.windows(needle.len()).any(|w| w == needle) {
            let n = stream.read(&mut buffer).await.unwrap();
            assert!(
                n > 0,
                "closed before {:?} arrived: {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buffer[..n]);
        }
    })
    .await
    .expect("the bytes arrived in time");
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled() {
    let server = upgrade_echo().await;
    let mut listener = http_listener("http", catch_all(json!({"cluster": "ws"})));
    manager(&mut listener)["upgrade_configs"] = json!([{"upgrade_type": "websocket"}]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("ws", &[server])]),
    ))
    .await;

    let mut stream = TcpStream::connect(proxy.listener("http")).await.unwrap();
    stream
        .write_all(b"GET /chat HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .unwrap();
    let head = read_until(&mut stream, b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&head).to_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [&b"ping one"[..], b"ping two"] {
        stream.write_all(message).await.unwrap();
        read_until(&mut stream, message).await;
    }
}

/// An echo server that counts requests and remembers the last Host header.
async fn counting_echo() -> (
    std::net::SocketAddr,
    Arc<AtomicU32>,
    Arc<std::sync::Mutex<String>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU32::new(0));
    let host = Arc::new(std::sync::Mutex::new(String::new()));
    let (c, h) = (Arc::clone(&count), Arc::clone(&host));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (c, h) = (Arc::clone(&c), Arc::clone(&h));
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let (c, h) = (Arc::clone(&c), Arc::clone(&h));
                    async move {
                        *h.lock().unwrap() = request
                            .headers()
                            .get("host")
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        c.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, count, host)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_delivers_copies() {
    let primary = Echo::start("primary").await;
    let (shadow, copies, shadow_host) = counting_echo().await;
    let action = json!({"cluster": "primary", "request_mirror_policies": [{"cluster": "shadow"}]});
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", catch_all(action))]),
        json!([
            cluster("primary", &[primary.address]),
            cluster("shadow", &[shadow])
        ]),
    ))
    .await;
    for _ in 0..50 {
        let (status, body) = get(
            proxy.listener("http"),
            "/reviews",
            &[("host", "reviews:9080")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            support::server_of(&body),
            "primary",
            "the client sees the primary's answer"
        );
    }
    support::eventually(async || match copies.load(Ordering::SeqCst) {
        50.. => Ok(()),
        arrived => Err(format!("only {arrived} copies arrived")),
    })
    .await;
    assert_eq!(copies.load(Ordering::SeqCst), 50);
    assert_eq!(*shadow_host.lock().unwrap(), "reviews-shadow:9080");
}

async fn raw_exchange(address: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WITHIN, stream.read_to_end(&mut reply))
        .await
        .expect("the proxy answered or closed in time")
        .ok();
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_traffic_is_refused_without_harm() {
    let echo = Echo::start("up").await;
    let mut listener = http_listener("http", catch_all(json!({"cluster": "up"})));
    manager(&mut listener)["request_headers_timeout"] = json!("0.5s");
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("up", &[echo.address])]),
    ))
    .await;
    let front = proxy.listener("http");

    let reply = raw_exchange(front, b"\x16\x03\x01garbage that is not HTTP\r\n\r\n").await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "x".repeat(100_000)
    );
    let reply = raw_exchange(front, huge.as_bytes()).await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );

    // Headers that never finish: the connection is closed after the timeout.
    let reply = raw_exchange(front, b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ").await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );

    // The proxy is still healthy.
    let (status, _) = get(front, "/after", &[]).await;
    assert_eq!(status, 200);
}

/// A proxy in front of `upstream` whose connection manager has these
/// `common_http_protocol_options`.
async fn proxy_with_common(upstream: std::net::SocketAddr, common: Value) -> Proxy {
    let mut listener = http_listener("http", catch_all(json!({"cluster": "up"})));
    manager(&mut listener)["common_http_protocol_options"] = common;
    Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("up", &[upstream])]),
    ))
    .await
}

/// A kept-alive HTTP/1.1 connection to `address`, and a task that ends
/// when the connection closes.
async fn client_connection(
    address: std::net::SocketAddr,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(address).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, closed)
}

async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    path: &str,
) -> StatusCode {
    let request = Request::get(path)
        .header("host", "a")
        .body(Empty::new())
        .unwrap();
    sender.ready().await.expect("the connection is still open");
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_connection_is_closed_after_the_idle_timeout() {
    let echo = Echo::start("up").await;
    let proxy = proxy_with_common(echo.address, json!({"idle_timeout": "0.6s"})).await;
    let (mut sender, closed) = client_connection(proxy.listener("http")).await;
    assert_eq!(send(&mut sender, "/").await, 200);
    let answered = Instant::now();
    tokio::time::timeout(WITHIN, closed)
        .await
        .expect("the proxy closed the idle connection")
        .unwrap();
    // Not before the timeout, counted from the end of the request (a
    // little before the client had the whole response).
    assert!(answered.elapsed() >= Duration::from_millis(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_busy_past_the_idle_timeout_is_kept() {
    let echo = Echo::start("up").await;
    let proxy = proxy_with_common(echo.address, json!({"idle_timeout": "1s"})).await;
    let (mut sender, _closed) = client_connection(proxy.listener("http")).await;
    // Three idle timeouts long; the next request follows at once.
    assert_eq!(send(&mut sender, "/delay/3000").await, 200);
    assert_eq!(send(&mut sender, "/").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_connection_drains_at_its_max_duration() {
    let echo = Echo::start("up").await;
    let proxy = proxy_with_common(echo.address, json!({"max_connection_duration": "0.3s"})).await;
    let (mut sender, closed) = client_connection(proxy.listener("http")).await;
    // In flight when the connection reaches its age: it completes.
    assert_eq!(send(&mut sender, "/delay/700").await, 200);
    tokio::time::timeout(WITHIN, closed)
        .await
        .expect("the proxy closed the aged connection")
        .unwrap();
}

/// An HTTP/1.1 server whose every response sends its head at once and
/// its body in eight chunks 150 ms apart.
async fn slow_streaming_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let start = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if stream.write_all(start).await.is_err() {
                        return;
                    }
                    for _ in 0..8 {
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        if stream.write_all(b"2\r\nok\r\n").await.is_err() {
                            return;
                        }
                    }
                    if stream.write_all(b"0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_streaming_past_the_idle_timeout_keeps_its_connection() {
    let upstream = slow_streaming_server().await;
    let proxy = proxy_with_common(upstream, json!({"idle_timeout": "0.4s"})).await;
    let (mut sender, _closed) = client_connection(proxy.listener("http")).await;
    // The head comes at once and the body over 1.2 s, three idle timeouts:
    // the request is in flight until its body has been sent.
    assert_eq!(send(&mut sender, "/").await, 200);
    assert_eq!(send(&mut sender, "/").await, 200);
}
