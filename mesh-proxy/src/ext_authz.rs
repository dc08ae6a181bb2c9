//! External authorization at run time (the config is
//! [`crate::config::ExtAuthz`] and [`crate::config::NetworkExtAuthz`]).
//!
//! An HTTP request ([`request::check`]) is put to the authorizer unless
//! `filter_enabled_metadata` says otherwise (Istio's CUSTOM action has
//! its shadow RBAC rules mark the requests its policies match): over gRPC
//! (`Authorization/Check`, see [`grpc`]) or plain HTTP (see
//! [`http_service`]). An allowing answer lets the request go on with the
//! headers the authorizer adds; a denying one is what the client gets
//! (flag `UAEX`). When the authorizer cannot be asked in time, or fails,
//! the request is refused with `status_on_error` (403), or let through
//! under `failure_mode_allow`. With `with_request_body` the body is read
//! first, up to its limit, and sent along ([`body`]).
//!
//! A connection ([`connection_allowed`]) is put to a gRPC authorizer with
//! its addresses and client identity before anything is proxied; a denied
//! one is closed. Unlike Envoy, which asks when the first bytes arrive,
//! the question is asked at once, so server-first protocols are checked
//! too.

pub mod body;
pub mod grpc;
pub mod http_service;
pub mod request;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, attribute_context,
};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::config::{DynamicMetadata, NetworkExtAuthz};
use crate::grpc_call::{self, CallError};
use crate::lb::Downstream;
use crate::upstream::Upstream;

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// What the authorizer said.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Allow(Allowance),
    /// The answer the client gets.
    Deny {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    },
}

/// What an allowing answer changes.
#[derive(Debug, Default, PartialEq)]
pub struct Allowance {
    /// Headers for the request to the upstream: replacing (false) or
    /// appended to (true) its own.
    pub upstream: Vec<(HeaderName, HeaderValue, bool)>,
    pub remove: Vec<HeaderName>,
    /// Headers added to the response the client gets.
    pub response: HeaderMap,
}

/// Why the authorizer could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error("cluster {0:?} is not defined")]
    NoCluster(String),
    #[error("cluster {0:?} has no endpoint to ask")]
    NoEndpoint(String),
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Grpc(#[from] CallError),
    #[error("the authorizer cannot be reached: {0}")]
    Request(#[from] crate::upstream::SendError),
    #[error("reading the authorizer's answer: {0}")]
    Body(#[from] hyper::Error),
    #[error("the authorizer answered {0}")]
    Failed(StatusCode),
    #[error("the authorizer cannot be sent this request: {0}")]
    BadRequest(#[from] http::Error),
}

/// `Check` on the cluster, within `timeout`.
async fn check(
    upstream: Option<&Upstream>,
    cluster: &str,
    request: &CheckRequest,
    timeout: Duration,
) -> Result<CheckResponse, AskError> {
    let upstream = authorizer(upstream, cluster)?;
    within(timeout, async {
        Ok(grpc_call::unary(upstream, CHECK_PATH, request).await?)
    })
    .await
}

/// The authorizer's cluster, which must exist.
fn authorizer<'a>(upstream: Option<&'a Upstream>, cluster: &str) -> Result<&'a Upstream, AskError> {
    upstream.ok_or_else(|| AskError::NoCluster(cluster.to_owned()))
}

/// A call to the authorizer, within `timeout`.
async fn within<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, AskError>>,
) -> Result<T, AskError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(AskError::TimedOut(timeout)))
}

/// Whether the connection may go on: skipped unless its metadata matches
/// `filter_enabled_metadata`; on an error, as `failure_mode_allow` says.
pub async fn connection_allowed(
    filter: &NetworkExtAuthz,
    upstream: Option<&Upstream>,
    downstream: Downstream,
    principal: Option<&str>,
    metadata: &DynamicMetadata,
) -> bool {
    if let Some(enabled) = &filter.enabled_when
        && !enabled.matches(Some(metadata))
    {
        return true;
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(peer(downstream.remote, principal)),
            destination: Some(peer(downstream.local, None)),
            ..AttributeContext::default()
        }),
    };
    match check(upstream, &filter.cluster, &request, filter.timeout).await {
        Ok(answer) => {
            let allowed = answer.status.as_ref().is_none_or(|s| s.code == 0);
            if !allowed {
                tracing::debug!(remote = %downstream.remote, "the authorizer denied the connection; closing");
            }
            allowed
        }
        Err(err) => {
            tracing::debug!(cluster = %filter.cluster, error = %err, "external authorization failed");
            filter.failure_mode_allow
        }
    }
}

/// One end of the connection, as `AttributeContext` describes it.
fn peer(address: SocketAddr, principal: Option<&str>) -> attribute_context::Peer {
    attribute_context::Peer {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: address.ip().to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    address.port(),
                ))),
                ..SocketAddress::default()
            })),
        }),
        principal: principal.unwrap_or_default().to_owned(),
        ..attribute_context::Peer::default()
    }
}

#[cfg(test)]
mod tests;
