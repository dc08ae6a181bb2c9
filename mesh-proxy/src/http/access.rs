//! The filters before the router that decide whether a request goes on
//! (`jwt_authn`, RBAC, `ext_authz`), run in their order; each may refuse
//! it, and each leaves what later ones read in its dynamic metadata.

use std::sync::atomic::Ordering;

use http::HeaderMap;
use http::request::Parts;
use http::{Response, StatusCode};

use super::Body;
use super::info::ResponseFlags;
use super::proxy::{HttpState, local_reply};
use crate::config::{DynamicMetadata, Facts, HttpAccess};
use crate::ext_authz::request::{self as ext_authz, Outcome};
use crate::lb::Downstream;
use crate::tls::DownstreamTls;

/// What the filters made of a request.
#[derive(Debug)]
pub enum Verdict {
    /// Every filter let it through: its body, and headers to add to the
    /// response the client gets.
    Pass {
        body: Body,
        response: HeaderMap,
    },
    Refused(Response<Body>),
}

pub async fn check(state: &HttpState, parts: &mut Parts, mut body: Body) -> Verdict {
    let mut response = HeaderMap::new();
    for filter in &state.manager.access {
        match filter {
            HttpAccess::Jwt(jwt) => {
                if let Some(refusal) = super::jwt::check(jwt, parts) {
                    return Verdict::Refused(refusal);
                }
            }
            HttpAccess::Rbac(rbac) => {
                let decision = rbac.decide(&facts(parts));
                if !decision.metadata.is_empty() {
                    parts
                        .extensions
                        .get_or_insert_default::<DynamicMetadata>()
                        .merge(decision.metadata);
                }
                if !decision.allowed {
                    state.stats.rq_rbac_denied.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Refused(local_reply(
                        StatusCode::FORBIDDEN,
                        "RBAC: access denied",
                        ResponseFlags::RBAC,
                    ));
                }
            }
            HttpAccess::ExtAuthz(authz) => {
                // Boxed: the authorizer call is large, and every request's
                // future would otherwise carry its size, filter or not.
                match Box::pin(ext_authz::check(authz, state, parts, body)).await {
                    Outcome::Allowed {
                        body: rest,
                        response: headers,
                    } => {
                        body = rest;
                        response.extend(headers);
                    }
                    Outcome::Refused(refusal) => return Verdict::Refused(refusal),
                }
            }
        }
    }
    Verdict::Pass { body, response }
}

/// What RBAC looks at for one request: the request, and its connection's
/// addresses and client certificate. A request without its connection's
/// addresses (never the case when served by a listener) matches no
/// address rule.
fn facts(parts: &Parts) -> Facts<'_> {
    let downstream = parts
        .extensions
        .get::<Downstream>()
        .copied()
        .unwrap_or(Downstream::UNKNOWN);
    Facts::new(
        Some(parts),
        downstream,
        parts.extensions.get::<DownstreamTls>(),
        None,
    )
}
