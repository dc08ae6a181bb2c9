//! Fault injection (`envoy.filters.http.fault`): delay a request and/or
//! answer it with an error instead of forwarding it.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::Body;
use super::info::{ResponseFlags, ResponseInfo};
use crate::config::{AbortStatus, Fault, FaultAbort, HttpManager, Route};
use crate::stats::ListenerStats;

/// The fault that applies to a request: the route's override, else the
/// filter-level one; none when the HCM has no fault filter.
pub fn for_request<'a>(manager: &'a HttpManager, route: Option<&'a Route>) -> Option<&'a Fault> {
    let filter = manager.fault.as_ref()?;
    Some(route.and_then(|r| r.fault.as_ref()).unwrap_or(filter))
}

/// What the fault filter did to one request.
#[derive(Debug, Default)]
pub struct Injected {
    /// `DI` when a delay was waited out, `FI` with an abort.
    pub flags: ResponseFlags,
    /// The reply of an injected abort; `None` to carry on.
    pub abort: Option<Response<Body>>,
}

/// Runs the fault filter for one request: waits out an injected delay, then
/// decides on an abort.
pub async fn inject(fault: Option<&Fault>, stats: &ListenerStats) -> Injected {
    let mut injected = Injected::default();
    let Some(fault) = fault else {
        return injected;
    };
    if let Some(delay) = &fault.delay
        && chance(delay.per_million)
    {
        stats.fault_delays_injected.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(delay.delay).await;
        injected.flags = ResponseFlags::DI;
    }
    if let Some(abort) = fault.abort.as_ref().filter(|a| chance(a.per_million)) {
        stats.fault_aborts_injected.fetch_add(1, Ordering::Relaxed);
        injected.flags = injected.flags.with(ResponseFlags::FI);
        injected.abort = Some(abort_reply(abort));
    }
    injected
}

/// True for `per_million` out of a million calls, at random.
pub(crate) fn chance(per_million: u32) -> bool {
    per_million > 0 && fastrand::u32(..1_000_000) < per_million
}

/// The reply of an abort: the status with its body, or for gRPC a
/// trailers-only response (HTTP 200, the status in `grpc-status`).
pub fn abort_reply(abort: &FaultAbort) -> Response<Body> {
    match abort.status {
        AbortStatus::Http(status) => {
            let mut response = super::proxy::reply(status, abort.body.clone());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            // A gRPC client gets it as a gRPC status, as any reply made here.
            response.extensions_mut().insert(ResponseInfo {
                local_reply: Some(abort.body.clone()),
                ..ResponseInfo::default()
            });
            response
        }
        AbortStatus::Grpc(code) => {
            let mut response = super::proxy::reply(StatusCode::OK, Bytes::new());
            super::grpc::trailers_only(response.headers_mut(), code, &abort.body);
            response
        }
    }
}

#[cfg(test)]
mod tests;
