//! What the services send upstream: forwarded headers, the signed-in user, and
//! the forward proxy.

use bookinfo::Service;
use http::HeaderMap;

use crate::support::{Env, Recorder, get, login, start, start_reviews, url};

const DETAILS_JSON: &str = r#"{"id": 0, "type": "paperback"}"#;
const REVIEWS_JSON: &str =
    r#"{"id": "0", "podname": "recorded", "clustername": "null", "reviews": []}"#;
const RATINGS_JSON: &str = r#"{"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}"#;

/// Headers a browser or an ingress sends, all of which must reach upstreams.
const TRACE_HEADERS: &[(&str, &str)] = &[
    ("x-request-id", "4b1c0b4e-request"),
    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
    ("x-b3-spanid", "e457b5a2e4d86bd1"),
    ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
    ("x-b3-sampled", "1"),
    ("x-b3-flags", "0"),
    ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
    (
        "traceparent",
        "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01",
    ),
    ("tracestate", "vendor=value"),
    ("x-ot-span-context", "ot-context"),
    (
        "x-cloud-trace-context",
        "105445aa7843bc8bf206b12000100000/1;o=1",
    ),
    ("grpc-trace-bin", "AAARCgYYAAAAAAA"),
    ("x-datadog-trace-id", "123"),
    ("x-datadog-parent-id", "456"),
    ("x-datadog-sampling-priority", "1"),
    ("sw8", "1-sw8-context"),
    ("user-agent", "bookinfo-test"),
    ("cookie", "theme=dark"),
    ("authorization", "Bearer token"),
    ("jwt", "jwt-token"),
];

fn assert_forwarded(headers: &HeaderMap) {
    for (name, value) in TRACE_HEADERS {
        assert_eq!(
            headers.get(*name).map(|v| v.to_str().unwrap()),
            Some(*value),
            "{name}"
        );
    }
    assert!(headers.get("x-not-forwarded").is_none());
}

fn incoming() -> Vec<(&'static str, &'static str)> {
    let mut headers = TRACE_HEADERS.to_vec();
    headers.push(("x-not-forwarded", "1"));
    headers
}

#[tokio::test]
async fn productpage_forwards_tracing_and_identity_headers() {
    let details = Recorder::start(DETAILS_JSON).await;
    let reviews = Recorder::start(REVIEWS_JSON).await;
    let env = Env::new()
        .upstream("details", details.addr)
        .upstream("reviews", reviews.addr);
    let productpage = start(Service::Productpage, &env).await;
    get(&url(productpage.addr(), "/productpage"), &incoming()).await;
    assert_forwarded(&details.only_request().headers);
    assert_forwarded(&reviews.only_request().headers);
    assert!(
        details.only_request().headers.get("end-user").is_none(),
        "nobody signed in"
    );
}

#[tokio::test]
async fn reviews_forwards_headers_and_the_end_user_to_ratings() {
    let ratings = Recorder::start(RATINGS_JSON).await;
    let reviews = start_reviews("v2", &Env::new().upstream("ratings", ratings.addr)).await;
    let mut headers = incoming();
    headers.push(("end-user", "jason"));
    let reply = get(&url(reviews.addr(), "/reviews/0"), &headers).await;
    assert_eq!(reply.json()["reviews"][0]["rating"]["stars"], 5);
    let request = ratings.only_request();
    assert_eq!(request.uri.path(), "/ratings/0");
    assert_forwarded(&request.headers);
    assert_eq!(request.headers["end-user"], "jason");
}

#[tokio::test]
async fn after_login_productpage_sends_the_end_user() {
    let details = Recorder::start(DETAILS_JSON).await;
    let reviews = Recorder::start(REVIEWS_JSON).await;
    let env = Env::new()
        .upstream("details", details.addr)
        .upstream("reviews", reviews.addr);
    let productpage = start(Service::Productpage, &env).await;
    let cookie = login(productpage.addr(), "jason").await;
    assert_eq!(cookie, "session=jason");
    let page = get(
        &url(productpage.addr(), "/productpage"),
        &[("cookie", &cookie)],
    )
    .await;
    assert!(
        page.body.contains("<b id=\"user-name\">jason</b>"),
        "{}",
        page.body
    );
    for recorder in [&details, &reviews] {
        let request = recorder.only_request();
        assert_eq!(request.headers["end-user"], "jason");
        assert_eq!(request.headers["cookie"], "session=jason");
    }
}

#[tokio::test]
async fn http_proxy_gets_absolute_form_requests() {
    let proxy = Recorder::start(DETAILS_JSON).await;
    let env = Env::new()
        .set("HTTP_PROXY", format!("http://{}", proxy.addr))
        .set("SERVICES_DOMAIN", "bookinfo");
    let productpage = start(Service::Productpage, &env).await;
    get(&url(productpage.addr(), "/api/v1/products/0"), &[]).await;
    get(&url(productpage.addr(), "/api/v1/products/0/reviews"), &[]).await;
    let seen: Vec<_> = proxy
        .requests()
        .iter()
        .map(|r| {
            (
                r.uri.to_string(),
                r.headers["host"].to_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "http://details.bookinfo:9080/details/0".to_owned(),
                "details.bookinfo:9080".to_owned()
            ),
            (
                "http://reviews.bookinfo:9080/reviews/0".to_owned(),
                "reviews.bookinfo:9080".to_owned()
            ),
        ]
    );

    let reviews = start_reviews("v2", &Env::new().set("http_proxy", proxy.addr.to_string())).await;
    get(&url(reviews.addr(), "/reviews/0"), &[]).await;
    let last = proxy.requests().pop().unwrap();
    assert_eq!(last.uri.to_string(), "http://ratings:9080/ratings/0");
}

#[tokio::test]
async fn no_proxy_hosts_are_called_directly() {
    let proxy = Recorder::start(DETAILS_JSON).await;
    let details = Recorder::start(DETAILS_JSON).await;
    let env = Env::new()
        .upstream("details", details.addr)
        .set("HTTP_PROXY", format!("http://{}", proxy.addr))
        .set("NO_PROXY", "127.0.0.1");
    let productpage = start(Service::Productpage, &env).await;
    get(&url(productpage.addr(), "/api/v1/products/0"), &[]).await;
    assert_eq!(details.only_request().uri.to_string(), "/details/0");
    assert!(proxy.requests().is_empty());
}
