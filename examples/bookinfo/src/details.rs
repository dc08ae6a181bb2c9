//! The details service: publication facts about a book.

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use crate::server::{self, Body, Handler};

/// Serves `GET /details/<id>` and `/health`.
#[derive(Debug, Clone, Copy)]
pub struct Details;

/// What `GET /details/<id>` returns; the values are upstream's.
#[derive(Debug, Serialize)]
pub struct BookDetails {
    pub id: i64,
    pub author: &'static str,
    pub year: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub pages: u32,
    pub publisher: &'static str,
    pub language: &'static str,
    #[serde(rename = "ISBN-10")]
    pub isbn_10: &'static str,
    #[serde(rename = "ISBN-13")]
    pub isbn_13: &'static str,
}

impl BookDetails {
    /// Every id gets the same book, as upstream's details v1 does.
    pub fn of(id: i64) -> Self {
        Self {
            id,
            author: "William Shakespeare",
            year: 1595,
            kind: "paperback",
            pages: 200,
            publisher: "PublisherA",
            language: "English",
            isbn_10: "1234567890",
            isbn_13: "123-1234567890",
        }
    }
}

impl Handler for Details {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET {
            return server::not_found();
        }
        match server::segments(&request)[..] {
            ["health"] => server::json(StatusCode::OK, &json!({"status": "Details is healthy"})),
            ["details", id] => details(id),
            _ => server::not_found(),
        }
    }
}

fn details(id: &str) -> Response<Body> {
    match id.parse() {
        Ok(id) => server::json(StatusCode::OK, &BookDetails::of(id)),
        Err(_) => server::json_error(StatusCode::BAD_REQUEST, "please provide numeric product id"),
    }
}
