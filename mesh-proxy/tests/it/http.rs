//! The HTTP data path end to end: a real mesh-proxy process between real
//! clients and upstream servers on loopback.

use crate::support;

use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener, server_of};

fn route(matcher: Value, action: Value) -> Value {
    json!({"match": matcher, "route": action})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_path_header_and_weight() {
    let (v1, v2) = (Echo::start("v1").await, Echo::start("v2").await);
    let vhosts = json!([{"name": "reviews", "domains": ["*"], "routes": [
        route(json!({"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]}), json!({"cluster": "v2"})),
        route(json!({"prefix": "/only-v1/"}), json!({"cluster": "v1", "prefix_rewrite": "/rewritten/"})),
        route(json!({"prefix": "/"}), json!({"weighted_clusters": {"clusters": [{"name": "v1", "weight": 70}, {"name": "v2", "weight": 30}]}}))
    ]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([cluster("v1", &[v1.address]), cluster("v2", &[v2.address])]),
    ))
    .await;
    let front = proxy.listener("http");

    let (status, body) = get(front, "/reviews/0", &[("end-user", "jason")]).await;
    assert_eq!(status, 200);
    assert_eq!(server_of(&body), "v2");

    let (_, body) = get(front, "/only-v1/x?q=1", &[("host", "reviews:9080")]).await;
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["server"], "v1");
    assert_eq!(reply["path"], "/rewritten/x");
    assert_eq!(reply["headers"]["host"], "reviews:9080");
    assert_eq!(reply["headers"]["x-request-id"].as_str().unwrap().len(), 36);

    let total = 2000;
    let mut to_v2 = 0;
    for _ in 0..total {
        let (status, body) = get(front, "/reviews/0", &[]).await;
        assert_eq!(status, 200);
        to_v2 += usize::from(server_of(&body) == "v2");
    }
    let share = to_v2 as f64 / total as f64;
    assert!(
        (share - 0.30).abs() < 0.05,
        "v2 got {share:.3} of the traffic, expected 0.30 ± 0.05"
    );

    let sent_to_v2 = proxy
        .stat("envoy_cluster_upstream_rq_total{envoy_cluster_name=\"v2\"}")
        .await;
    assert_eq!(
        sent_to_v2,
        to_v2 as u64 + 1,
        "the counter matches the requests sent"
    );
    let downstream = proxy
        .stat("envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix=\"http\"}")
        .await;
    assert_eq!(downstream, total as u64 + 2);
    assert!(proxy.quit().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_answer_the_client_and_are_counted() {
    let echo = Echo::start("up").await;
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        route(json!({"prefix": "/down"}), json!({"cluster": "down"})),
        route(json!({"prefix": "/delay/"}), json!({"cluster": "up", "timeout": "0.2s"})),
        route(json!({"prefix": "/status/"}), json!({"cluster": "up"})),
        {"match": {"path": "/teapot"}, "direct_response": {"status": 418, "body": {"inline_string": "short and stout"}}},
        {"match": {"path": "/old"}, "redirect": {"path_redirect": "/new", "response_code": "FOUND"}}
    ]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([
            cluster("up", &[echo.address]),
            cluster("down", &[support::closed_port()])
        ]),
    ))
    .await;
    let front = proxy.listener("http");

    let (status, body) = get(front, "/down", &[]).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (
            503,
            "upstream connect error or disconnect/reset before headers"
        )
    );
    let (status, body) = get(front, "/delay/3000", &[]).await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (504, "upstream request timeout")
    );
    let (status, _) = get(front, "/status/503", &[]).await;
    assert_eq!(status, 503, "an upstream's own status passes through");
    let (status, body) = get(front, "/teapot", &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (418, "short and stout"));
    let (status, body) = get(front, "/nowhere", &[]).await;
    assert_eq!((status.as_u16(), body.as_str()), (404, "route not found"));
    let (status, _) = get(front, "/old", &[("host", "shop.local:8080")]).await;
    assert_eq!(status, 302);

    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_cx_connect_fail{envoy_cluster_name=\"down\"}")
            .await,
        1
    );
    assert_eq!(
        proxy
            .stat("envoy_cluster_upstream_rq_timeout{envoy_cluster_name=\"up\"}")
            .await,
        1
    );
    assert_eq!(proxy.stat("envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"up\"}").await, 2);
    assert_eq!(
        proxy
            .stat("envoy_http_no_route{envoy_http_conn_manager_prefix=\"http\"}")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_reach_http1_upstreams() {
    let echo = Echo::start("h1").await;
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [route(json!({"prefix": "/"}), json!({"cluster": "h1"}))]}]);
    let proxy = Proxy::start(&bootstrap(
        json!([http_listener("http", vhosts)]),
        json!([cluster("h1", &[echo.address])]),
    ))
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = http::Request::get(format!("http://{}/h2", proxy.listener("http")))
        .body(http_body_util::Empty::new())
        .unwrap();
    let (status, body) = support::send(client, request).await;
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reply["server"], "h1");
    assert_eq!(reply["path"], "/h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_added_and_removed_at_every_level() {
    let echo = Echo::start("up").await;
    let header = |key: &str, value: &str, action: &str| json!({"header": {"key": key, "value": value}, "append_action": action});
    let vhosts = json!([{"name": "all", "domains": ["*"],
        "request_headers_to_add": [header("x-vhost", "yes", "OVERWRITE_IF_EXISTS_OR_ADD")],
        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"},
            "request_headers_to_add": [header("x-route", "1", "APPEND_IF_EXISTS_OR_ADD"), header("x-kept", "new", "ADD_IF_ABSENT")],
            "request_headers_to_remove": ["x-secret"],
            "response_headers_to_add": [header("x-served-by", "mesh", "OVERWRITE_IF_EXISTS_OR_ADD")],
            "response_headers_to_remove": ["content-length"]}]}]);
    let mut listener = http_listener("http", vhosts);
    listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["response_headers_to_add"] =
        json!([header("x-config", "global", "OVERWRITE_IF_EXISTS_OR_ADD")]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("up", &[echo.address])]),
    ))
    .await;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let request = http::Request::get(format!("http://{}/h", proxy.listener("http")))
        .header("x-secret", "token")
        .header("x-kept", "old")
        .header("x-route", "0")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.headers()["x-served-by"], "mesh");
    assert_eq!(response.headers()["x-config"], "global");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    let seen = &reply["headers"];
    assert_eq!(seen["x-vhost"], "yes");
    assert_eq!(seen["x-route"], "0,1", "appended to the client's value");
    assert_eq!(seen["x-kept"], "old");
    assert!(seen.get("x-secret").is_none(), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_and_responses_decorated() {
    let echo = Echo::start("up").await;
    let policy = json!({"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": [{"exact": "https://shop.example.com"}, {"suffix": ".trusted.example"}],
        "allow_methods": "GET,POST", "allow_headers": "x-custom", "expose_headers": "x-served-by",
        "max_age": "86400", "allow_credentials": true});
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "up"},
        "typed_per_filter_config": {"envoy.filters.http.cors": policy}}]}]);
    let mut listener = http_listener("http", vhosts);
    listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] = json!([
        {"name": "envoy.filters.http.cors", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
        {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([cluster("up", &[echo.address])]),
    ))
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let send = |method: &str, origin: &str| {
        http::Request::builder()
            .method(method)
            .uri(format!("http://{}/items", proxy.listener("http")))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };

    let preflight = client
        .request(send("OPTIONS", "https://shop.example.com"))
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(headers["access-control-max-age"], "86400");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let body = http_body_util::BodyExt::collect(preflight.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert!(body.is_empty(), "answered by the proxy, not the upstream");

    let simple = client
        .request(send("GET", "https://api.trusted.example"))
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "https://api.trusted.example"
    );
    assert_eq!(
        simple.headers()["access-control-expose-headers"],
        "x-served-by"
    );

    let stranger = client
        .request(send("GET", "https://evil.example"))
        .await
        .unwrap();
    assert!(
        !stranger
            .headers()
            .contains_key("access-control-allow-origin")
    );
    let stranger_preflight = client
        .request(send("OPTIONS", "https://evil.example"))
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(stranger_preflight.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        server_of(std::str::from_utf8(&body).unwrap()),
        "up",
        "forwarded, as Envoy does by default"
    );
}
