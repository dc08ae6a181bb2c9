//! The product page with all four services, and with each of them failing.

use std::net::SocketAddr;

use bookinfo::{Running, Service};
use http::StatusCode;

use crate::support::{Bookinfo, Dead, Env, Stalled, get, login, start, start_reviews, url};

const DETAILS_ERROR: &str = "Sorry, product details are currently unavailable for this book.";
const REVIEWS_ERROR: &str = "Sorry, product reviews are currently unavailable for this book.";
const RATINGS_ERROR: &str = "Ratings service is currently unavailable";

#[tokio::test]
async fn the_page_shows_the_book_its_details_and_its_reviews() {
    let bookinfo = Bookinfo::start("v2").await;
    let page = get(&bookinfo.url("/productpage"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("<h1 id=\"product-title\">The Comedy of Errors</h1>")
    );
    for detail in [
        "id=\"details-author\">William Shakespeare<",
        "id=\"details-year\">1595<",
        "id=\"details-type\">paperback<",
        "id=\"details-pages\">200<",
        "id=\"details-publisher\">PublisherA<",
        "id=\"details-language\">English<",
        "id=\"details-isbn-10\">1234567890<",
        "id=\"details-isbn-13\">123-1234567890<",
    ] {
        assert!(
            page.body.contains(detail),
            "{detail} missing: {}",
            page.body
        );
    }
    assert!(page.body.contains("data-reviewer=\"Reviewer1\""));
    assert!(page.body.contains("data-reviewer=\"Reviewer2\""));
    assert!(page.body.contains("The slapstick humour is refreshing!"));
    assert!(page.body.contains("Reviews served by: <u>reviews-v2</u>"));
    assert!(
        page.body.contains("id=\"login\""),
        "anonymous users get the form"
    );
    assert!(!page.body.contains("id=\"user-name\""));
}

/// The stars each reviews version shows, for an anonymous and a signed-in user.
#[tokio::test]
async fn stars_follow_the_reviews_version() {
    for (version, color) in [("v1", None), ("v2", Some("black")), ("v3", Some("red"))] {
        let bookinfo = Bookinfo::start(version).await;
        let cookie = login(bookinfo.productpage.addr(), "jason").await;
        let anonymous = get(&bookinfo.url("/productpage"), &[]).await;
        let jason = get(&bookinfo.url("/productpage"), &[("cookie", &cookie)]).await;
        assert!(
            jason.body.contains("<b id=\"user-name\">jason</b>"),
            "{}",
            jason.body
        );
        for page in [anonymous, jason] {
            assert_eq!(
                page.count("class=\"review\""),
                2,
                "{version}: {}",
                page.body
            );
            match color {
                None => assert_eq!(page.count("class=\"stars\""), 0, "{version}: {}", page.body),
                Some(color) => {
                    let five = format!("data-stars=\"5\" data-color=\"{color}\"");
                    let four = format!("data-stars=\"4\" data-color=\"{color}\"");
                    assert_eq!(page.count(&five), 1, "{version}: {}", page.body);
                    assert_eq!(page.count(&four), 1, "{version}: {}", page.body);
                }
            }
            assert!(!page.body.contains(RATINGS_ERROR));
        }
    }
}

#[tokio::test]
async fn logout_clears_the_user() {
    let bookinfo = Bookinfo::start("v1").await;
    let reply = get(&bookinfo.url("/logout"), &[("cookie", "session=jason")]).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.headers["location"], "/productpage");
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("session=;") && cookie.contains("Max-Age=0"),
        "{cookie}"
    );
}

#[tokio::test]
async fn details_down_shows_the_details_error() {
    let reviews = start_reviews("v1", &Env::new()).await;
    let details = Dead::new();
    let productpage = productpage(details.addr, reviews.addr()).await;
    let page = get(&url(productpage.addr(), "/productpage"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(DETAILS_ERROR), "{}", page.body);
    assert!(page.body.contains("id=\"details-error\""));
    assert_eq!(page.count("class=\"review\""), 2, "reviews still show");
}

#[tokio::test]
async fn reviews_down_shows_the_reviews_error() {
    let details = start(Service::Details, &Env::new()).await;
    let reviews = Dead::new();
    let productpage = productpage(details.addr(), reviews.addr).await;
    let page = get(&url(productpage.addr(), "/productpage"), &[]).await;
    assert!(page.body.contains(REVIEWS_ERROR), "{}", page.body);
    assert!(page.body.contains("id=\"reviews-error\""));
    assert!(
        page.body.contains("id=\"details-type\">paperback<"),
        "details still show"
    );
}

#[tokio::test]
async fn ratings_down_under_v2_shows_the_ratings_error() {
    let details = start(Service::Details, &Env::new()).await;
    let ratings = Dead::new();
    let reviews_env = Env::new().upstream("ratings", ratings.addr);
    let reviews = start_reviews("v2", &reviews_env).await;
    let productpage = productpage(details.addr(), reviews.addr()).await;
    let page = get(&url(productpage.addr(), "/productpage"), &[]).await;
    assert_eq!(page.count(RATINGS_ERROR), 2, "{}", page.body);
    assert_eq!(page.count("class=\"rating-error"), 2);
    assert_eq!(page.count("class=\"stars\""), 0);
}

/// Reviews that never answer cost two 3 s tries, then the page shows the error.
#[tokio::test]
async fn a_stalled_reviews_times_out_twice_then_shows_the_error() {
    let details = start(Service::Details, &Env::new()).await;
    let reviews = Stalled::start().await;
    let productpage = productpage(details.addr(), reviews.addr).await;
    let page = get(&url(productpage.addr(), "/productpage"), &[]).await;
    assert!(page.body.contains(REVIEWS_ERROR), "{}", page.body);
    assert_eq!(
        reviews.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one call tried twice"
    );
}

/// productpage alone, with details and reviews wherever the test wants them.
async fn productpage(details: SocketAddr, reviews: SocketAddr) -> Running {
    let env = Env::new()
        .upstream("details", details)
        .upstream("reviews", reviews);
    start(Service::Productpage, &env).await
}
