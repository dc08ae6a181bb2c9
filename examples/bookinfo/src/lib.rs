//! Istio's Bookinfo sample application, rewritten as one small Rust binary.
//!
//! The four services speak the same HTTP API as the upstream images, so ours and
//! Istio's can be mixed behind the same mesh:
//!
//! - `productpage` serves `/`, `/index.html`, `/health`, `POST /login`,
//!   `GET /logout`, `/productpage` and the JSON API under `/api/v1/products`. It
//!   calls details (3 s timeout) and reviews (3 s timeout, tried twice).
//! - `details` serves `GET /details/<id>` and `/health`.
//! - `reviews` serves `GET /reviews/<id>` and `/health`. Version v1 never calls
//!   ratings, v2 calls it with a 10 s timeout and shows black stars, v3 with a
//!   2.5 s timeout and red stars.
//! - `ratings` serves `GET` and `POST /ratings/<id>` and `/health`.
//!
//! # Environment
//!
//! Upstreams are found as the upstream images find them:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `SERVICES_DOMAIN` | unset | appended as `.<domain>` to every upstream hostname |
//! | `DETAILS_HOSTNAME`, `DETAILS_SERVICE_PORT` | `details`, `9080` | where productpage finds details |
//! | `REVIEWS_HOSTNAME`, `REVIEWS_SERVICE_PORT` | `reviews`, `9080` | where productpage finds reviews |
//! | `RATINGS_HOSTNAME`, `RATINGS_SERVICE_PORT` | `ratings`, `9080` | where productpage and reviews find ratings |
//! | `http_proxy`, `HTTP_PROXY` | unset | send every upstream call, in absolute form, to this proxy |
//! | `no_proxy`, `NO_PROXY` | unset | hosts (or `.domain` suffixes, or `*`) reached directly |
//! | `SERVICE_VERSION` | unset | reviews: `v1`, `v2` or `v3` (the `--version` flag wins) |
//! | `ENABLE_RATINGS`, `STAR_COLOR` | `false`, `black` | reviews, as the upstream image: used when no version is given |
//! | `HOSTNAME`, `CLUSTER_NAME` | `reviews-<version>`, `null` | reviews: reported as `podname` and `clustername` |
//!
//! The proxy variables are how a local mesh puts a sidecar in front of each
//! app's outbound calls: `GET http://reviews:9080/reviews/0` goes to the proxy,
//! which routes it by host.
//!
//! Every service forwards the tracing and identity headers listed in
//! [`headers`] from the request it serves to the calls it makes.

pub mod cli;
pub mod client;
pub mod config;
pub mod details;
pub mod headers;
pub mod productpage;
pub mod ratings;
pub mod reviews;
pub mod server;

pub use config::{Args, Config, Service};
pub use server::{Running, run, start};
