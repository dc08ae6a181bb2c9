//! The reviews service: two fixed reviews, with stars from ratings in v2 and v3.

use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;
use crate::config::{ConfigError, Lookup, Upstream, Upstreams};
use crate::headers::{self, END_USER};
use crate::server::{self, Body, Handler};

/// What a review says when ratings gave no stars for it.
pub const RATINGS_UNAVAILABLE: &str = "Ratings service is currently unavailable";

/// The reviews, as upstream's; every product gets the same two.
const REVIEWS: [(&str, &str); 2] = [
    (
        "Reviewer1",
        "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    ),
    (
        "Reviewer2",
        "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.",
    ),
];

/// How a reviews version behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `None` for v1, which never calls ratings.
    pub stars: Option<StarSettings>,
    /// Reported as `podname`, so a page shows which instance answered.
    pub pod_name: String,
    pub cluster_name: String,
}

/// How ratings are fetched and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarSettings {
    pub color: String,
    pub timeout: Duration,
}

/// What `GET /reviews/<id>` returns. The id is a string because upstream's
/// answer quotes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProductReviews {
    pub id: String,
    #[serde(default)]
    pub podname: String,
    #[serde(default)]
    pub clustername: String,
    pub reviews: Vec<Review>,
}

/// One review, with its rating when ratings were asked.
#[derive(Debug, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
}

/// Stars in a colour, or why there are none.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rating {
    Stars { stars: u64, color: String },
    Error { error: String },
}

impl Settings {
    /// The version comes from `--version`, else `SERVICE_VERSION`, else
    /// upstream's `ENABLE_RATINGS` and `STAR_COLOR`. Like upstream, black stars
    /// wait 10 s for ratings and any other colour 2.5 s.
    pub fn from_env(version: Option<&str>, env: Lookup<'_>) -> Result<Self, ConfigError> {
        let version = version
            .map(str::to_owned)
            .or_else(|| env("SERVICE_VERSION"));
        let color = match version.as_deref() {
            Some("v1") => None,
            Some("v2") => Some("black".to_owned()),
            Some("v3") => Some("red".to_owned()),
            Some(other) => return Err(ConfigError::Version(other.to_owned())),
            None => env("ENABLE_RATINGS")
                .filter(|v| v.eq_ignore_ascii_case("true"))
                .map(|_| env("STAR_COLOR").unwrap_or_else(|| "black".to_owned())),
        };
        let stars = color.map(|color| StarSettings {
            timeout: if color == "black" {
                Duration::from_secs(10)
            } else {
                Duration::from_millis(2500)
            },
            color,
        });
        let pod_name = env("HOSTNAME").unwrap_or_else(|| default_pod_name(stars.as_ref()));
        Ok(Self {
            stars,
            pod_name,
            // Upstream prints Java's `null` when the variable is unset.
            cluster_name: env("CLUSTER_NAME").unwrap_or_else(|| "null".to_owned()),
        })
    }
}

fn default_pod_name(stars: Option<&StarSettings>) -> String {
    let version = match stars.map(|s| s.color.as_str()) {
        None => "v1",
        Some("black") => "v2",
        Some("red") => "v3",
        Some(other) => other,
    };
    format!("reviews-{version}")
}

/// Serves `GET /reviews/<id>` and `/health`.
#[derive(Debug)]
pub struct Reviews {
    settings: Settings,
    ratings: Upstream,
    client: Client,
}

impl Reviews {
    pub fn new(settings: Settings, upstreams: Upstreams) -> Self {
        Self {
            settings,
            ratings: upstreams.ratings,
            client: Client::new(upstreams.proxy),
        }
    }

    async fn reviews(&self, id: &str, incoming: &HeaderMap) -> ProductReviews {
        let ratings = match &self.settings.stars {
            Some(stars) => Some((self.fetch_ratings(id, incoming, stars.timeout).await, stars)),
            None => None,
        };
        let reviews = REVIEWS
            .iter()
            .map(|(reviewer, text)| Review {
                reviewer: (*reviewer).to_owned(),
                text: (*text).to_owned(),
                rating: ratings
                    .as_ref()
                    .map(|(ratings, stars)| rating(ratings.as_ref(), reviewer, &stars.color)),
            })
            .collect();
        ProductReviews {
            id: id.to_owned(),
            podname: self.settings.pod_name.clone(),
            clustername: self.settings.cluster_name.clone(),
            reviews,
        }
    }

    /// The ratings answer; `None` when the call failed (already logged).
    async fn fetch_ratings(
        &self,
        id: &str,
        incoming: &HeaderMap,
        timeout: Duration,
    ) -> Option<Value> {
        let mut outgoing = headers::forwarded(incoming);
        if let Some(user) = incoming.get(END_USER) {
            outgoing.insert(END_USER, user.clone());
        }
        let url = self.ratings.url(&format!("/ratings/{id}"));
        self.client.get_json(&url, &outgoing, timeout).await.ok()
    }
}

/// The reviewer's stars from a ratings answer, or the error upstream shows
/// when ratings failed or did not rate this reviewer.
fn rating(ratings: Option<&Value>, reviewer: &str, color: &str) -> Rating {
    match ratings.and_then(|r| r["ratings"][reviewer].as_u64()) {
        Some(stars) => Rating::Stars {
            stars,
            color: color.to_owned(),
        },
        None => Rating::Error {
            error: RATINGS_UNAVAILABLE.to_owned(),
        },
    }
}

impl Handler for Reviews {
    async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        if request.method() != Method::GET {
            return server::not_found();
        }
        match server::segments(&request)[..] {
            ["health"] => server::json(StatusCode::OK, &json!({"status": "Reviews is healthy"})),
            ["reviews", id] if id.parse::<i64>().is_ok() => {
                let reviews = self.reviews(id, request.headers()).await;
                server::json(StatusCode::OK, &reviews)
            }
            ["reviews", _] => {
                server::json_error(StatusCode::BAD_REQUEST, "please provide numeric product id")
            }
            _ => server::not_found(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_env(flag, &|name| map.get(name).cloned())
    }

    #[test]
    fn versions_set_colour_and_timeout() {
        assert_eq!(settings(Some("v1"), &[]).unwrap().stars, None);
        let v2 = settings(None, &[("SERVICE_VERSION", "v2")]).unwrap();
        assert_eq!(
            v2.stars,
            Some(StarSettings {
                color: "black".into(),
                timeout: Duration::from_secs(10)
            })
        );
        assert_eq!(v2.pod_name, "reviews-v2");
        let v3 = settings(Some("v3"), &[("SERVICE_VERSION", "v2")]).unwrap();
        assert_eq!(v3.stars.unwrap().timeout, Duration::from_millis(2500));
    }

    #[test]
    fn upstream_variables_apply_without_a_version() {
        assert_eq!(settings(None, &[]).unwrap().stars, None);
        let red = settings(None, &[("ENABLE_RATINGS", "true"), ("STAR_COLOR", "red")]).unwrap();
        assert_eq!(red.stars.unwrap().color, "red");
        let black = settings(None, &[("ENABLE_RATINGS", "TRUE")]).unwrap();
        assert_eq!(black.stars.unwrap().color, "black");
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let err = settings(Some("v4"), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reviews version \"v4\" is not one of v1, v2, v3"
        );
    }

    #[test]
    fn a_missing_reviewer_gets_the_error() {
        let ratings = json!({"id": 0, "ratings": {"Reviewer1": 3}});
        let one = serde_json::to_value(rating(Some(&ratings), "Reviewer1", "red")).unwrap();
        assert_eq!(one, json!({"stars": 3, "color": "red"}));
        let two = serde_json::to_value(rating(Some(&ratings), "Reviewer2", "red")).unwrap();
        assert_eq!(two, json!({"error": RATINGS_UNAVAILABLE}));
    }
}
