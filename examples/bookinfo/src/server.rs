//! The HTTP server every service runs on, and the answers they share.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::{Config, Service};
use crate::{details, productpage, ratings, reviews};

/// The body of every answer: all of them are small and built in memory.
pub type Body = Full<Bytes>;

/// Request bodies (login forms, posted ratings) are tiny; anything larger is
/// refused rather than buffered.
const MAX_REQUEST_BODY: usize = 64 * 1024;

/// One Bookinfo service: turns a request into an answer.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

/// A service that is accepting connections. Dropping it stops the service and
/// closes its connections.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// The address actually bound (the port is real even when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds the configured address and starts serving in the background.
pub async fn start(config: Config) -> std::io::Result<Running> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let name = config.service.name();
    tracing::info!(service = name, address = %addr, "listening");
    let task = match config.service {
        Service::Productpage => spawn(listener, productpage::Productpage::new(config.upstreams)),
        Service::Details => spawn(listener, details::Details),
        Service::Reviews(settings) => {
            spawn(listener, reviews::Reviews::new(settings, config.upstreams))
        }
        Service::Ratings => spawn(listener, ratings::Ratings::default()),
    };
    Ok(Running { addr, task })
}

/// Serves until interrupted (SIGINT, as from Ctrl-C).
pub async fn run(config: Config) -> std::io::Result<()> {
    let _running = start(config).await?;
    tokio::signal::ctrl_c().await
}

impl Service {
    fn name(&self) -> &'static str {
        match self {
            Self::Productpage => "productpage",
            Self::Details => "details",
            Self::Reviews(_) => "reviews",
            Self::Ratings => "ratings",
        }
    }
}

fn spawn<H: Handler>(listener: TcpListener, handler: H) -> JoinHandle<()> {
    tokio::spawn(accept_loop(listener, Arc::new(handler)))
}

/// Accepts connections until aborted. The connections live in a `JoinSet` owned
/// by this loop, so aborting the loop also closes them: a stopped service is
/// really gone, which the failure tests rely on.
async fn accept_loop<H: Handler>(listener: TcpListener, handler: Arc<H>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, handler.clone()));
                }
                Err(error) => tracing::warn!(%error, "accepting a connection failed"),
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_connection<H: Handler>(stream: tokio::net::TcpStream, handler: Arc<H>) {
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler.handle(request).await) }
    });
    if let Err(error) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Reads a request body, refusing bodies over [`MAX_REQUEST_BODY`].
pub async fn read_body(request: Request<Incoming>) -> Option<Bytes> {
    Limited::new(request.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .ok()
        .map(|collected| collected.to_bytes())
}

/// The path split into its segments, without the leading slash.
pub fn segments<B>(request: &Request<B>) -> Vec<&str> {
    request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect()
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    with_type(status, "application/json", body.into())
}

/// A JSON answer `{"error": message}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &json!({ "error": message }))
}

/// An HTML answer.
pub fn html(body: String) -> Response<Body> {
    with_type(StatusCode::OK, "text/html; charset=utf-8", body.into())
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    with_type(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

/// 404 for paths a service does not serve.
pub fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "Not Found\n")
}

fn with_type(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
