//! Consistent hashing, outlier detection and priority failover, end to
//! end; endpoints from DNS host names, and ORIGINAL_DST clusters.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use support::{
    Echo, Proxy, bootstrap, closed_port, cluster, flagged, get, http_listener, server_of,
    tcp_listener,
};

/// How long a condition may take before a test fails. Only ever a bound on
/// waiting: no test asserts that something happened quickly.
const DEADLINE: Duration = Duration::from_secs(30);

fn one_route(cluster: &str, hash_policy: Value) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster, "hash_policy": hash_policy}}
    ]}])
}

async fn three_echoes() -> Vec<Echo> {
    vec![
        Echo::start("a").await,
        Echo::start("b").await,
        Echo::start("c").await,
    ]
}

/// GET with headers; the status, the response headers and the body.
async fn get_with_headers(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::get(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(
        DEADLINE,
        client.request(request.body(Empty::new()).unwrap()),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn hashing_keeps_users_on_one_endpoint(lb: Value) {
    let echoes = three_echoes().await;
    let addresses: Vec<SocketAddr> = echoes.iter().map(|e| e.address).collect();
    let mut hashed = cluster("hashed", &addresses);
    for (key, value) in lb.as_object().unwrap() {
        hashed[key] = value.clone();
    }
    let vhosts = one_route("hashed", json!([{"header": {"header_name": "x-user"}}]));
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([hashed]),
    ))
    .await;
    let front = proxy.listener("http");

    let mut servers = BTreeSet::new();
    for n in 0..30 {
        let user = format!("user-{n}");
        // A hundred requests for the first few users, a few for the others.
        let requests = if n < 5 { 100 } else { 5 };
        let mut seen = BTreeMap::<String, usize>::new();
        for _ in 0..requests {
            let (status, body) = get(front, "/profile", &[("x-user", user.as_str())]).await;
            assert_eq!(status, 200);
            *seen.entry(server_of(&body)).or_default() += 1;
        }
        assert_eq!(seen.len(), 1, "{user} went to {seen:?}");
        servers.extend(seen.into_keys());
    }
    assert_eq!(servers.len(), 3, "thirty users hashed only to {servers:?}");

    // Without the header, requests are spread at random.
    let mut anonymous = BTreeSet::new();
    for _ in 0..60 {
        anonymous.insert(server_of(&get(front, "/", &[]).await.1));
    }
    assert_eq!(anonymous.len(), 3, "{anonymous:?}");
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_keeps_a_header_value_on_one_endpoint() {
    hashing_keeps_users_on_one_endpoint(json!({
        "lb_policy": "RING_HASH",
        "ring_hash_lb_config": {"minimum_ring_size": 1024, "maximum_ring_size": 8192}
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maglev_keeps_a_header_value_on_one_endpoint() {
    hashing_keeps_users_on_one_endpoint(json!({
        "lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 251}
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_with_a_ttl_is_made_up_and_then_sticks() {
    let echoes = three_echoes().await;
    let addresses: Vec<SocketAddr> = echoes.iter().map(|e| e.address).collect();
    let mut hashed = cluster("hashed", &addresses);
    hashed["lb_policy"] = json!("RING_HASH");
    let vhosts = one_route(
        "hashed",
        json!([{"cookie": {"name": "session-affinity", "ttl": "3600s", "path": "/"}}]),
    );
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([hashed]),
    ))
    .await;
    let front = proxy.listener("http");

    let (status, headers, body) = get_with_headers(front, "/cart", &[]).await;
    assert_eq!(status, 200);
    let set_cookie = headers
        .get("set-cookie")
        .expect("a cookie is set")
        .to_str()
        .unwrap();
    let value = set_cookie
        .strip_prefix("session-affinity=")
        .and_then(|rest| rest.split_once(';'))
        .map(|(value, _)| value)
        .unwrap_or_else(|| panic!("{set_cookie}"));
    assert!(!value.is_empty());
    assert_eq!(
        set_cookie,
        format!("session-affinity={value}; Max-Age=3600; Path=/; HttpOnly")
    );
    let first = server_of(&body);

    // Sending the cookie back keeps the client where its first request went,
    // and sets nothing new.
    let cookie = format!("theme=dark; session-affinity={value}");
    for _ in 0..30 {
        let (status, headers, body) =
            get_with_headers(front, "/cart", &[("cookie", cookie.as_str())]).await;
        assert_eq!(status, 200);
        assert!(!headers.contains_key("set-cookie"));
        assert_eq!(server_of(&body), first);
    }
    assert!(proxy.quit().await.success());
}

fn outlier_cluster(name: &str, endpoints: &[SocketAddr]) -> Value {
    let mut c = cluster(name, endpoints);
    c["outlier_detection"] = json!({
        "consecutive_5xx": 3, "base_ejection_time": "1s", "interval": "0.1s",
        "max_ejection_percent": 100
    });
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_endpoint_and_brings_it_back() {
    let good = Echo::start("good").await;
    let (bad, failing) = flagged("bad", |_| Some(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", one_route("pool", json!([])))]),
        json!([outlier_cluster("pool", &[good.address, bad])]),
    ))
    .await;
    let front = proxy.listener("http");
    let active = "envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name=\"pool\"}";
    let enforced =
        "envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name=\"pool\"}";
    assert_eq!(proxy.stat(active).await, 0);

    // Round robin sends every other request to the failing endpoint; its
    // third 500 in a row ejects it.
    let mut failures = 0;
    let mut last_failure_sent = Instant::now();
    let started = Instant::now();
    while proxy.stat(active).await == 0 {
        assert!(started.elapsed() < DEADLINE, "never ejected");
        let sent = Instant::now();
        let (status, body) = get(front, "/", &[]).await;
        if status == 500 {
            assert_eq!(server_of(&body), "bad");
            failures += 1;
            last_failure_sent = sent;
        }
    }
    assert_eq!(failures, 3, "the third consecutive 5xx ejects");
    assert_eq!(proxy.stat(enforced).await, 1);

    // Ejected: only the healthy endpoint serves. Bounded by the ejection
    // time, so stop early if it comes back.
    let mut served = 0;
    while last_failure_sent.elapsed() < Duration::from_millis(500) && served < 20 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!((status.as_u16(), server_of(&body).as_str()), (200, "good"));
        served += 1;
    }
    assert!(served > 0);

    // It recovers; after the ejection time it gets traffic again.
    failing.store(false, Ordering::SeqCst);
    let back = loop {
        assert!(
            last_failure_sent.elapsed() < DEADLINE,
            "the endpoint never came back"
        );
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!(status, 200);
        if server_of(&body) == "bad" {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        back - last_failure_sent >= Duration::from_millis(1000),
        "back after {:?}, before base_ejection_time",
        back - last_failure_sent
    );
    let started = Instant::now();
    while proxy.stat(active).await != 0 {
        assert!(started.elapsed() < DEADLINE, "the gauge stayed up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.stat(enforced).await, 1);
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures_eject_like_5xx() {
    let good = Echo::start("good").await;
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", one_route("pool", json!([])))]),
        json!([outlier_cluster("pool", &[good.address, closed_port()])]),
    ))
    .await;
    let front = proxy.listener("http");
    let active = "envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name=\"pool\"}";
    let mut failures = 0;
    let mut last_failure_sent = Instant::now();
    let started = Instant::now();
    while proxy.stat(active).await == 0 {
        assert!(started.elapsed() < DEADLINE, "never ejected");
        let sent = Instant::now();
        let (status, _) = get(front, "/", &[]).await;
        if status == 503 {
            failures += 1;
            last_failure_sent = sent;
        }
    }
    assert_eq!(failures, 3);
    // Until the ejection ends (a second after), every request succeeds.
    let mut served = 0;
    while last_failure_sent.elapsed() < Duration::from_millis(500) && served < 10 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!((status.as_u16(), server_of(&body).as_str()), (200, "good"));
        served += 1;
    }
    assert!(served > 0);
    assert!(proxy.quit().await.success());
}

/// A cluster with `primary` at priority 0 and `backup` at priority 1, in
/// two zones.
fn failover_cluster(name: &str, primary: SocketAddr, backup: SocketAddr) -> Value {
    let group = |zone: &str, priority: u32, address: SocketAddr| {
        json!({
            "locality": {"region": "eu", "zone": zone},
            "priority": priority,
            "lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": address.ip().to_string(), "port_value": address.port()}}}}]
        })
    };
    json!({
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [
            group("eu-1a", 0, primary),
            group("eu-1b", 1, backup)
        ]}
    })
}

/// Sends requests until one is answered by `server`, and then `n` more
/// that must all be answered by it with 200.
async fn until_served_by(front: SocketAddr, server: &str, n: usize) {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < DEADLINE, "{server} never answered");
        let (status, body) = get(front, "/", &[]).await;
        if status == 200 && server_of(&body) == server {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..n {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!((status.as_u16(), server_of(&body).as_str()), (200, server));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_checks_move_traffic_to_the_next_priority_and_back() {
    let (primary, failing) = flagged("primary", |_| Some(StatusCode::INTERNAL_SERVER_ERROR)).await;
    failing.store(false, Ordering::SeqCst);
    let backup = Echo::start("backup").await;
    let mut pool = failover_cluster("pool", primary, backup.address);
    pool["health_checks"] = json!([{
        "timeout": "1s", "interval": "0.05s",
        "unhealthy_threshold": 2, "healthy_threshold": 2,
        "http_health_check": {"path": "/healthz"}
    }]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", one_route("pool", json!([])))]),
        json!([pool]),
    ))
    .await;
    let front = proxy.listener("http");
    until_served_by(front, "primary", 20).await;

    let (_, page) = get(proxy.admin, "/clusters", &[]).await;
    for line in [
        format!("pool::{primary}::priority::0"),
        format!("pool::{}::priority::1", backup.address),
        format!("pool::{}::zone::eu-1b", backup.address),
    ] {
        assert!(page.lines().any(|l| l == line), "no {line} in\n{page}");
    }

    // The only priority 0 endpoint fails its checks: all traffic to P1.
    failing.store(true, Ordering::SeqCst);
    until_served_by(front, "backup", 20).await;
    // It passes again: all traffic back to P0.
    failing.store(false, Ordering::SeqCst);
    until_served_by(front, "primary", 20).await;
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_endpoint_moves_traffic_to_the_next_priority_until_it_returns() {
    let (primary, failing) = flagged("primary", |_| Some(StatusCode::INTERNAL_SERVER_ERROR)).await;
    let backup = Echo::start("backup").await;
    let mut pool = failover_cluster("pool", primary, backup.address);
    pool["outlier_detection"] = json!({
        "consecutive_5xx": 3, "base_ejection_time": "1s", "interval": "0.1s",
        "max_ejection_percent": 100
    });
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", one_route("pool", json!([])))]),
        json!([pool]),
    ))
    .await;
    let front = proxy.listener("http");

    // Priority 0 takes everything until its third 500 in a row ejects it.
    for _ in 0..3 {
        let (status, body) = get(front, "/", &[]).await;
        assert_eq!(
            (status.as_u16(), server_of(&body).as_str()),
            (500, "primary")
        );
    }
    let ejected = Instant::now();
    let (status, body) = get(front, "/", &[]).await;
    assert_eq!(
        (status.as_u16(), server_of(&body).as_str()),
        (200, "backup")
    );
    let active = "envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name=\"pool\"}";
    assert_eq!(proxy.stat(active).await, 1);

    // Recovered, it takes the traffic back once the ejection ends.
    failing.store(false, Ordering::SeqCst);
    until_served_by(front, "primary", 20).await;
    assert!(
        ejected.elapsed() >= Duration::from_millis(900),
        "back before base_ejection_time"
    );
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_strict_dns_cluster_sends_to_every_address_of_its_hosts() {
    let (one, two) = (Echo::start("one").await, Echo::start("two").await);
    // Two host names, each an address literal (which resolves to itself),
    // and `localhost` for the second echo.
    let endpoint = |host: &str, port: u16| {
        json!({"endpoint": {"address":
        {"socket_address": {"address": host, "port_value": port}}}})
    };
    let dns = json!({"name": "dns", "type": "STRICT_DNS", "connect_timeout": "1s",
    "dns_lookup_family": "V4_ONLY",
    "load_assignment": {"cluster_name": "dns", "endpoints": [{"lb_endpoints": [
        endpoint("127.0.0.1", one.address.port()),
        endpoint("localhost", two.address.port()),
    ]}]}});
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", one_route("dns", json!([])))]),
        json!([dns]),
    ))
    .await;
    let address = proxy.listener("http");
    let mut servers = BTreeSet::new();
    for _ in 0..20 {
        let (status, body) = get(address, "/", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        servers.insert(server_of(&body));
    }
    assert_eq!(
        servers,
        BTreeSet::from(["one".to_owned(), "two".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_dst_cluster_sends_each_request_where_its_header_says() {
    let (one, two) = (Echo::start("one").await, Echo::start("two").await);
    let passthrough = json!({"name": "PassthroughCluster", "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s",
        "original_dst_lb_config": {"use_http_header": true}});
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener(
            "http",
            one_route("PassthroughCluster", json!([]))
        )]),
        json!([passthrough]),
    ))
    .await;
    let address = proxy.listener("http");
    for (echo, name) in [(&one, "one"), (&two, "two"), (&one, "one")] {
        let target = echo.address.to_string();
        let (status, body) = get(
            address,
            "/",
            &[("x-envoy-original-dst-host", target.as_str())],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(server_of(&body), name);
    }
}

/// Istio's `InboundPassthroughCluster` binds its connections to 127.0.0.6;
/// the backend here answers one HTTP request and tells where it came from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_dst_connections_come_from_the_bind_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = backend.local_addr().unwrap().to_string();
    let answered = tokio::spawn(async move {
        let (mut stream, peer) = backend.accept().await.unwrap();
        let mut request = Vec::new();
        while !request.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            request.push(byte[0]);
        }
        let body = peer.ip().to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(reply.as_bytes()).await.unwrap();
        peer
    });
    let passthrough = json!({"name": "InboundPassthroughCluster", "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s",
        "original_dst_lb_config": {"use_http_header": true},
        "upstream_bind_config": {"source_address": {"address": "127.0.0.6", "port_value": 0}}});
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener(
            "http",
            one_route("InboundPassthroughCluster", json!([]))
        )]),
        json!([passthrough]),
    ))
    .await;
    let (status, body) = get(
        proxy.listener("http"),
        "/",
        &[("x-envoy-original-dst-host", target.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "127.0.0.6");
    let peer = tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_original_dst_connection_that_was_not_redirected_is_closed() {
    use tokio::io::AsyncReadExt;
    let passthrough = json!({"name": "PassthroughCluster", "type": "ORIGINAL_DST",
        "lb_policy": "CLUSTER_PROVIDED", "connect_timeout": "1s"});
    let proxy = Proxy::start(&bootstrap(
        json!([tcp_listener("tcp", "PassthroughCluster")]),
        json!([passthrough]),
    ))
    .await;
    // Its destination is the proxy's own listener: no host, as in Envoy,
    // rather than a connection to itself.
    let mut client = tokio::net::TcpStream::connect(proxy.listener("tcp"))
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "closed: {read:?}");
}
