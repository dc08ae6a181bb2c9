//! Serving HTTP/1.1 and HTTP/2 (prior knowledge, or chosen by ALPN) on a listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use super::proxy::{self, HttpState};
use crate::drain::Drain;
use crate::lb::Downstream;
use crate::tls::DownstreamTls;

/// hyper's smallest read buffer.
const MIN_BUFFER: usize = 8192;

/// Serves one accepted connection until it closes or `drain` starts; each
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
    let (headers_timeout, max_headers) = (
        state.manager.request_headers_timeout,
        state.manager.max_request_headers,
    );
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(downstream) = downstream {
            request.extensions_mut().insert(downstream);
        }
        if let Some(tls) = &tls {
            request.extensions_mut().insert(tls.clone());
        }
        let state = live.load_full();
        async move { Ok::<_, Infallible>(proxy::handle(state, request).await) }
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
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        }
        () = drain.started() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
