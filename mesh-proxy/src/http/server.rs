//! Serving HTTP/1.1 and HTTP/2 (prior knowledge, or chosen by ALPN) on a listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::proxy::{self, HttpState};
use crate::activity::{self, Activity, Ended};
use crate::config::ClientConnections;
use crate::drain::Drain;
use crate::lb::Downstream;
use crate::tls::DownstreamTls;

/// hyper's smallest read buffer.
const MIN_BUFFER: usize = 8192;

/// Serves one accepted connection until it closes, or drains it when
/// `drain` starts, when it has been idle for the connection manager's
/// `idle_timeout` or has lived its `max_connection_duration`. Each
/// request runs on the state of the moment it arrives, to its end.
/// `downstream` (the addresses, for hash policies and logs) and `tls` (what
/// the handshake told) go into every request's extensions; `http2` when
/// ALPN chose it.
pub async fn serve_connection<S>(
    live: Arc<ArcSwap<HttpState>>,
    stream: S,
    downstream: Option<Downstream>,
    tls: Option<DownstreamTls>,
    http2: bool,
    drain: Drain,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = live.load_full();
    state.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let manager = &state.manager;
    let (headers_timeout, max_headers) =
        (manager.request_headers_timeout, manager.max_request_headers);
    let limits = manager.connections;
    let activity = Arc::new(Activity::new());
    let requests = Arc::clone(&activity);
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(downstream) = downstream {
            request.extensions_mut().insert(downstream);
        }
        if let Some(tls) = &tls {
            request.extensions_mut().insert(tls.clone());
        }
        let state = live.load_full();
        let in_flight = InFlight::begin(&requests);
        async move {
            let response = proxy::handle(state, request).await;
            // The body holds the request's guard: hyper drops it once sent.
            let response = response.map(|body| {
                body.map_frame(move |frame| {
                    let _in_flight = &in_flight;
                    frame
                })
            });
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(headers_timeout)
        // hyper answers 431 past this; it needs room for at least one read.
        .max_buf_size(max_headers.max(MIN_BUFFER));
    if http2 {
        builder = builder.http2_only();
    }
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let stopping = stop(drain, &activity, limits);
    let ended = activity::until(connection.as_mut(), stopping).await;
    match ended {
        Ended::Done(Ok(())) => {}
        Ended::Done(Err(err)) => tracing::debug!(error = %err, "connection ended with an error"),
        Ended::Stopped(why) => {
            tracing::debug!("{why}: draining a client connection");
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Why a connection should drain: its requests in flight finish, and an
/// HTTP/1.1 connection closes after, an HTTP/2 one gets a GOAWAY.
async fn stop(drain: Drain, activity: &Activity, limits: ClientConnections) -> &'static str {
    tokio::select! {
        () = drain.started() => "the listener drains",
        () = activity.idle_for(limits.idle_timeout) => "idle timeout",
        () = activity::after(limits.max_duration) => "max connection duration",
    }
}

/// A request the connection is serving, until its response body has been
/// sent (or dropped): a long stream keeps its connection busy, as in Envoy.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.begin();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}
