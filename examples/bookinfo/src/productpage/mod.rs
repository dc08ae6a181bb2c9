//! The productpage service: the web page and JSON API in front of details,
//! reviews and ratings.

mod page;
mod session;

use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Value, json};

use crate::client::{CallError, Client};
use crate::config::Upstreams;
use crate::headers;
use crate::reviews::ProductReviews;
use crate::server::{self, Body, Handler};

/// Shown, and returned by the API, when details gave no answer.
pub const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
/// Shown, and returned by the API, when reviews gave no answer in two tries.
pub const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";
/// Returned by the ratings API when ratings gave no answer.
pub const RATINGS_UNAVAILABLE: &str =
    "Sorry, product ratings are currently unavailable for this book.";

/// Upstream's client timeout for every call productpage makes.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Upstream tries reviews twice on purpose: the fault-injection task relies on
/// the page taking 6 s when reviews stalls.
const REVIEWS_TRIES: usize = 2;

/// The only book in the shop, as upstream's.
const PRODUCT: Product = Product {
    id: 0,
    title: "The Comedy of Errors",
    description_html: "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: \
        The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest \
        and one of his most farcical comedies, with a major part of the humour coming from slapstick \
        and mistaken identity, in addition to puns and word play.",
};

/// An entry of `/api/v1/products`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Product {
    pub id: u32,
    pub title: &'static str,
    #[serde(rename = "descriptionHtml")]
    pub description_html: &'static str,
}

/// The upstream a product API path asks.
#[derive(Debug, Clone, Copy)]
enum Api {
    Details,
    Reviews,
    Ratings,
}

/// Serves the page, the login and the API.
#[derive(Debug)]
pub struct Productpage {
    upstreams: Upstreams,
    client: Client,
}

impl Productpage {
    pub fn new(upstreams: Upstreams) -> Self {
        let client = Client::new(upstreams.proxy.clone());
        Self { upstreams, client }
    }

    async fn product_page(&self, request: &Request<Incoming>) -> Response<Body> {
        let user = session::user(request.headers());
        let outgoing = outgoing_headers(request.headers(), user.as_deref());
        let id = PRODUCT.id.to_string();
        let (details, reviews) =
            tokio::join!(self.details(&id, &outgoing), self.reviews(&id, &outgoing));
        let reviews = reviews.ok().and_then(parse_reviews);
        server::html(page::product_page(&page::ProductPage {
            user: user.as_deref(),
            product: &PRODUCT,
            details: details.ok().as_ref(),
            reviews: reviews.as_ref(),
        }))
    }

    async fn details(&self, id: &str, headers: &HeaderMap) -> Result<Value, CallError> {
        let url = self.upstreams.details.url(&format!("/details/{id}"));
        self.client.get_json(&url, headers, CALL_TIMEOUT).await
    }

    async fn reviews(&self, id: &str, headers: &HeaderMap) -> Result<Value, CallError> {
        let url = self.upstreams.reviews.url(&format!("/reviews/{id}"));
        let mut result = self.client.get_json(&url, headers, CALL_TIMEOUT).await;
        for _ in 1..REVIEWS_TRIES {
            if result.is_ok() {
                break;
            }
            result = self.client.get_json(&url, headers, CALL_TIMEOUT).await;
        }
        result
    }

    async fn ratings(&self, id: &str, headers: &HeaderMap) -> Result<Value, CallError> {
        let url = self.upstreams.ratings.url(&format!("/ratings/{id}"));
        self.client.get_json(&url, headers, CALL_TIMEOUT).await
    }

    /// `/api/v1/products/<id>[/reviews|/ratings]`: the upstream's answer, or
    /// its status with an error message.
    async fn api(&self, request: &Request<Incoming>, id: &str, api: Api) -> Response<Body> {
        let user = session::user(request.headers());
        let outgoing = outgoing_headers(request.headers(), user.as_deref());
        let (result, message) = match api {
            Api::Details => (self.details(id, &outgoing).await, DETAILS_UNAVAILABLE),
            Api::Reviews => (self.reviews(id, &outgoing).await, REVIEWS_UNAVAILABLE),
            Api::Ratings => (self.ratings(id, &outgoing).await, RATINGS_UNAVAILABLE),
        };
        match result {
            Ok(value) => server::json(StatusCode::OK, &value),
            Err(error) => server::json(error.status(), &json!({ "error": message })),
        }
    }
}

impl Handler for Productpage {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        // The login form is the one request whose body is read, so it is
        // routed before the path is borrowed for the others.
        if request.method() == Method::POST && request.uri().path() == "/login" {
            return session::login(request).await;
        }
        if request.method() != Method::GET {
            return server::not_found();
        }
        match server::segments(&request)[..] {
            [""] | ["index.html"] => server::html(page::index()),
            ["health"] => server::text(StatusCode::OK, "Product page is healthy"),
            ["logout"] => session::logout(request.headers()),
            ["productpage"] => self.product_page(&request).await,
            ["api", "v1", "products"] => server::json(StatusCode::OK, &[PRODUCT]),
            ["api", "v1", "products", id] => self.api(&request, id, Api::Details).await,
            ["api", "v1", "products", id, "reviews"] => self.api(&request, id, Api::Reviews).await,
            ["api", "v1", "products", id, "ratings"] => self.api(&request, id, Api::Ratings).await,
            _ => server::not_found(),
        }
    }
}

/// The forwarded headers, plus `end-user` for a signed-in user so routes can
/// match on who is asking.
fn outgoing_headers(incoming: &HeaderMap, user: Option<&str>) -> HeaderMap {
    let mut outgoing = headers::forwarded(incoming);
    if let Some(user) = user {
        headers::set_end_user(&mut outgoing, user);
    }
    outgoing
}

/// The page needs the reviews' structure; an answer without it counts as no
/// answer.
fn parse_reviews(value: Value) -> Option<ProductReviews> {
    serde_json::from_value(value)
        .inspect_err(|error| tracing::warn!(%error, "reviews answered an unexpected shape"))
        .ok()
}
