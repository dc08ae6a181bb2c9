//! The HTTP client the services call each other with.
//!
//! It is hyper's pooled client with one twist: when a forward proxy is
//! configured, connections go to the proxy and are marked as proxied, so hyper
//! writes requests in absolute form (`GET http://reviews:9080/reviews/0`) and
//! the proxy can route them by host.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::{
    self,
    connect::{Connected, Connection, HttpConnector},
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::config::Proxy;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a call to an upstream service gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0:?} is not a valid URL")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("reading the answer failed: {0}")]
    Body(#[from] hyper::Error),
    #[error("the answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CallError {
    /// The status to pass on to our own caller, as upstream's productpage does:
    /// the upstream's status if it answered, 500 otherwise.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Status(status) => *status,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A pooled HTTP/1.1 client, optionally through a forward proxy.
#[derive(Debug, Clone)]
pub struct Client {
    inner: legacy::Client<Connector, Full<Bytes>>,
}

impl Client {
    pub fn new(proxy: Option<Proxy>) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let connector = Connector { http, proxy };
        Self {
            inner: legacy::Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// GETs `url` with `headers` and parses a 200 answer as JSON. Failures are
    /// logged here, with the URL and the reason, so every caller reports them
    /// the same way.
    pub async fn get_json(
        &self,
        url: &str,
        headers: &HeaderMap,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let result = tokio::time::timeout(timeout, self.try_get_json(url, headers))
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)));
        if let Err(error) = &result {
            tracing::warn!(url, %error, "upstream call failed");
        }
        result
    }

    async fn try_get_json(&self, url: &str, headers: &HeaderMap) -> Result<Value, CallError> {
        let uri: Uri = url.parse().map_err(|_| CallError::Url(url.to_owned()))?;
        let mut request = Request::new(Full::default());
        *request.method_mut() = Method::GET;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers.clone();
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|e| CallError::Request(error_chain(&e)))?;
        if response.status() != StatusCode::OK {
            return Err(CallError::Status(response.status()));
        }
        let body = response.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&body)?)
    }
}

/// hyper's own errors say little at the top ("client error (Connect)"); the
/// cause, such as "Connection refused", is further down the chain.
fn error_chain(error: &dyn StdError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Connects to the destination, or to the proxy when one applies to it.
#[derive(Debug, Clone)]
struct Connector {
    http: HttpConnector,
    proxy: Option<Proxy>,
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        let proxy = self
            .proxy
            .as_ref()
            .filter(|p| p.applies_to(destination.host().unwrap_or_default()));
        let (target, proxied) = match proxy {
            Some(proxy) => (proxy.address.clone(), true),
            None => (destination, false),
        };
        let connecting = self.http.call(target);
        Box::pin(async move {
            let io = connecting.await?;
            Ok(Stream { io, proxied })
        })
    }
}

/// A TCP connection that remembers whether it leads to a proxy.
#[derive(Debug)]
struct Stream {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
