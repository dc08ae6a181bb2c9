//! The ratings service: stars per reviewer, kept in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Value, json};

use crate::server::{self, Body, Handler};

/// Stars per reviewer; ordered so answers are stable.
pub type Stars = BTreeMap<String, u8>;

/// Serves `GET` and `POST /ratings/<id>` and `/health`.
#[derive(Debug, Default)]
pub struct Ratings {
    /// Ratings posted for a product replace the defaults for it.
    posted: Mutex<HashMap<i64, Stars>>,
}

/// What `/ratings/<id>` returns.
#[derive(Debug, Serialize)]
pub struct ProductRatings {
    pub id: i64,
    pub ratings: Stars,
}

impl Handler for Ratings {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let (method, id) = match (request.method(), &server::segments(&request)[..]) {
            (&Method::GET, ["health"]) => {
                return server::json(StatusCode::OK, &json!({"status": "Ratings is healthy"}));
            }
            (method @ (&Method::GET | &Method::POST), ["ratings", id]) => {
                (method.clone(), id.parse::<i64>())
            }
            _ => return server::not_found(),
        };
        let Ok(id) = id else {
            return server::json_error(
                StatusCode::BAD_REQUEST,
                "please provide numeric product ID",
            );
        };
        if method == Method::POST {
            let body = server::read_body(request).await;
            self.post(id, body.as_deref())
        } else {
            server::json(StatusCode::OK, &self.get(id))
        }
    }
}

impl Ratings {
    fn get(&self, id: i64) -> ProductRatings {
        let posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        let ratings = posted.get(&id).cloned().unwrap_or_else(default_stars);
        ProductRatings { id, ratings }
    }

    fn post(&self, id: i64, body: Option<&[u8]>) -> Response<Body> {
        let Some(ratings) = body.and_then(parse_stars) else {
            return server::json_error(
                StatusCode::BAD_REQUEST,
                "please provide valid ratings JSON",
            );
        };
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, ratings.clone());
        server::json(StatusCode::OK, &ProductRatings { id, ratings })
    }
}

fn default_stars() -> Stars {
    Stars::from([("Reviewer1".to_owned(), 5), ("Reviewer2".to_owned(), 4)])
}

/// A JSON object of reviewer to whole stars from 1 to 5, as upstream accepts.
fn parse_stars(body: &[u8]) -> Option<Stars> {
    let Value::Object(object) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    object
        .into_iter()
        .map(|(reviewer, stars)| {
            let stars = stars.as_u64().filter(|s| (1..=5).contains(s))?;
            Some((reviewer, u8::try_from(stars).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_whole_stars_from_one_to_five() {
        let stars = parse_stars(br#"{"Reviewer1": 1, "Reviewer2": 5}"#).unwrap();
        assert_eq!(stars["Reviewer1"], 1);
        assert_eq!(stars["Reviewer2"], 5);
    }

    #[test]
    fn refuses_anything_else() {
        for body in [
            &br#"{"Reviewer1": 0}"#[..],
            br#"{"Reviewer1": 6}"#,
            br#"{"Reviewer1": 2.5}"#,
            br#"{"Reviewer1": "5"}"#,
            br#"[5, 4]"#,
            b"not json",
        ] {
            assert_eq!(parse_stars(body), None, "{}", String::from_utf8_lossy(body));
        }
    }
}
