//! Serving HTTP/1.1 and HTTP/2 (prior knowledge) on a listener.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;

use super::proxy::{self, HttpState};
use crate::drain::Drain;
use crate::lb::Downstream;

/// hyper's smallest read buffer.
const MIN_BUFFER: usize = 8192;

/// Serves one accepted connection until it closes or the proxy drains.
pub async fn serve_connection(state: Arc<HttpState>, stream: TcpStream, drain: Drain) {
    state.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (headers_timeout, max_headers) = (
        state.manager.request_headers_timeout,
        state.manager.max_request_headers,
    );
    // For hash policies on the client's address.
    let downstream = match (stream.peer_addr(), stream.local_addr()) {
        (Ok(remote), Ok(local)) => Some(Downstream { remote, local }),
        _ => None,
    };
    let service = service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        if let Some(downstream) = downstream {
            request.extensions_mut().insert(downstream);
        }
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(proxy::handle(state, request).await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(headers_timeout)
        // hyper answers 431 past this; it needs room for at least one read.
        .max_buf_size(max_headers.max(MIN_BUFFER));
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
