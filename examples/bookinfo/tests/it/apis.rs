//! The JSON APIs, in the shapes of Istio's sample.

use bookinfo::Service;
use http::StatusCode;
use serde_json::json;

use crate::support::{Bookinfo, Dead, Env, Stalled, get, post, start, start_reviews, url};

const REVIEW1: &str =
    "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!";
const REVIEW2: &str = "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.";

fn book_details(id: i64) -> serde_json::Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}

#[tokio::test]
async fn details_answers_any_numeric_id_and_refuses_others() {
    let details = start(Service::Details, &Env::new()).await;
    let reply = get(&url(details.addr(), "/details/0"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.json(), book_details(0));
    assert_eq!(
        get(&url(details.addr(), "/details/7"), &[]).await.json(),
        book_details(7)
    );

    let reply = get(&url(details.addr(), "/details/zero"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"error": "please provide numeric product id"})
    );

    let health = get(&url(details.addr(), "/health"), &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(
        get(&url(details.addr(), "/nope"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn ratings_answers_defaults_and_keeps_what_is_posted() {
    let ratings = start(Service::Ratings, &Env::new()).await;
    let reply = get(&url(ratings.addr(), "/ratings/0"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    );

    let posted = post(
        &url(ratings.addr(), "/ratings/0"),
        &[("content-type", "application/json")],
        r#"{"Reviewer1": 1, "Reviewer2": 2}"#,
    )
    .await;
    let expected = json!({"id": 0, "ratings": {"Reviewer1": 1, "Reviewer2": 2}});
    assert_eq!(posted.status, StatusCode::OK);
    assert_eq!(posted.json(), expected);
    assert_eq!(
        get(&url(ratings.addr(), "/ratings/0"), &[]).await.json(),
        expected
    );
    let other = get(&url(ratings.addr(), "/ratings/1"), &[]).await.json();
    assert_eq!(other["ratings"], json!({"Reviewer1": 5, "Reviewer2": 4}));

    let bad = post(
        &url(ratings.addr(), "/ratings/0"),
        &[],
        r#"{"Reviewer1": 9}"#,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!({"error": "please provide valid ratings JSON"})
    );
    let bad = get(&url(ratings.addr(), "/ratings/x"), &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json(),
        json!({"error": "please provide numeric product ID"})
    );
    assert_eq!(
        get(&url(ratings.addr(), "/health"), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reviews_v1_has_no_ratings() {
    // Ratings is not even reachable: v1 must not need it.
    let ratings = Dead::new();
    let env = Env::new()
        .upstream("ratings", ratings.addr)
        .set("HOSTNAME", "reviews-v1-abc")
        .set("CLUSTER_NAME", "local");
    let reviews = start_reviews("v1", &env).await;
    let reply = get(&url(reviews.addr(), "/reviews/0"), &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "id": "0",
            "podname": "reviews-v1-abc",
            "clustername": "local",
            "reviews": [
                {"reviewer": "Reviewer1", "text": REVIEW1},
                {"reviewer": "Reviewer2", "text": REVIEW2},
            ],
        })
    );
    assert_eq!(
        get(&url(reviews.addr(), "/health"), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reviews_v3_rates_in_red_and_reports_ratings_errors() {
    let ratings = start(Service::Ratings, &Env::new()).await;
    let reviews = start_reviews("v3", &Env::new().upstream("ratings", ratings.addr())).await;
    let reply = get(&url(reviews.addr(), "/reviews/0"), &[]).await.json();
    assert_eq!(
        reply["reviews"][0]["rating"],
        json!({"stars": 5, "color": "red"})
    );
    assert_eq!(
        reply["reviews"][1]["rating"],
        json!({"stars": 4, "color": "red"})
    );

    let stalled = Stalled::start().await;
    let reviews = start_reviews("v3", &Env::new().upstream("ratings", stalled.addr)).await;
    let reply = get(&url(reviews.addr(), "/reviews/0"), &[]).await;
    let error = json!({"error": "Ratings service is currently unavailable"});
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["reviews"][0]["rating"], error);
    assert_eq!(reply.json()["reviews"][1]["rating"], error);
    // One call (no retry); the 2.5 s timeout itself is checked where the
    // versions are read (`reviews::tests`).
    assert_eq!(
        stalled.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn productpage_api_passes_the_services_answers_on() {
    let bookinfo = Bookinfo::start("v2").await;
    let products = get(&bookinfo.url("/api/v1/products"), &[]).await;
    assert_eq!(products.status, StatusCode::OK);
    let products = products.json();
    assert_eq!(products[0]["id"], 0);
    assert_eq!(products[0]["title"], "The Comedy of Errors");
    assert!(
        products[0]["descriptionHtml"]
            .as_str()
            .unwrap()
            .contains("Shakespeare")
    );

    let details = get(&bookinfo.url("/api/v1/products/0"), &[]).await;
    assert_eq!(details.json(), book_details(0));
    let reviews = get(&bookinfo.url("/api/v1/products/0/reviews"), &[])
        .await
        .json();
    assert_eq!(reviews["id"], "0");
    assert_eq!(
        reviews["reviews"][1]["rating"],
        json!({"stars": 4, "color": "black"})
    );
    let ratings = get(&bookinfo.url("/api/v1/products/0/ratings"), &[])
        .await
        .json();
    assert_eq!(
        ratings,
        json!({"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
    );

    let health = get(&bookinfo.url("/health"), &[]).await;
    assert_eq!(health.body, "Product page is healthy");
    let index = get(&bookinfo.url("/"), &[]).await;
    assert!(
        index.body.contains("href=\"/productpage\""),
        "{}",
        index.body
    );
    assert_eq!(
        get(&bookinfo.url("/index.html"), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn productpage_api_reports_failed_upstreams() {
    let dead = Dead::new();
    let env = Env::new()
        .upstream("details", dead.addr)
        .upstream("reviews", dead.addr)
        .upstream("ratings", dead.addr);
    let productpage = start(Service::Productpage, &env).await;
    for (path, error) in [
        (
            "/api/v1/products/0",
            "Sorry, product details are currently unavailable for this book.",
        ),
        (
            "/api/v1/products/0/reviews",
            "Sorry, product reviews are currently unavailable for this book.",
        ),
        (
            "/api/v1/products/0/ratings",
            "Sorry, product ratings are currently unavailable for this book.",
        ),
    ] {
        let reply = get(&url(productpage.addr(), path), &[]).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(reply.json(), json!({"error": error}), "{path}");
    }
    // An upstream's own error status is passed on.
    let details = start(Service::Details, &Env::new()).await;
    let env = Env::new().upstream("details", details.addr());
    let productpage = start(Service::Productpage, &env).await;
    let reply = get(&url(productpage.addr(), "/api/v1/products/x"), &[]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
