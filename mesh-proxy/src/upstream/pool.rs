//! Connections to a cluster's endpoints, kept open between requests.
//!
//! HTTP/1.1: each endpoint has a stack of idle connections. A request takes
//! the most recently used one, or opens a new one, and gives it back once
//! the response body has been read to its end; a response dropped before
//! then takes its connection with it, as the connection is no longer in a
//! known state. HTTP/2: one multiplexed connection per endpoint (more while
//! `max_requests_per_connection` leaves requests waiting); requests
//! that come while it is being made wait for it, as Envoy's pending
//! requests do, and share its outcome.
//!
//! Each connection is driven by its own task, which also closes it after
//! `idle_timeout` without a request (Envoy's `common_http_protocol_options`,
//! one hour by default). `max_requests_per_connection` and
//! `max_connection_duration` retire a connection: it takes no new request
//! and closes when its last one is done. A request that a reused connection could not
//! even start to send (the server had just closed it) is sent again on
//! another, as it never reached the server.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{Notify, watch};

use crate::activity::{self, Activity, Ended};
use crate::config::HttpConnections;
use crate::http::Body;
use crate::lb::Pick;
use crate::stats::ConnectionStats;
use crate::tls::{ConnectError, Connector};

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection: shared by every request that waited for it.
    #[error(transparent)]
    Connect(#[from] ConnectFailure),
    /// Sent, or partly sent, and no response came.
    #[error(transparent)]
    Request(hyper::Error),
}

/// Why a connection could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectFailure {
    #[error(transparent)]
    Connect(Arc<ConnectError>),
    /// The connection could not be set up for HTTP after it was made.
    #[error("HTTP handshake: {0}")]
    Handshake(Arc<hyper::Error>),
}

impl SendError {
    /// Whether no connection could be made (Envoy's connect failure).
    pub fn is_connect(&self) -> bool {
        !matches!(self, SendError::Request(_))
    }
}

#[derive(Debug)]
pub struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    connector: Connector,
    http2: bool,
    options: HttpConnections,
    stats: Arc<ConnectionStats>,
    /// HTTP/1.1 connections waiting for a request, most recent last.
    idle: Mutex<HashMap<SocketAddr, Vec<Http1Connection>>>,
    /// The HTTP/2 connection each endpoint's requests share.
    multiplexed: Mutex<HashMap<SocketAddr, Http2Slot>>,
}

#[derive(Debug)]
struct Http1Connection {
    sender: http1::SendRequest<Body>,
    state: Arc<ConnectionState>,
}

#[derive(Debug, Clone)]
struct Http2Connection {
    sender: http2::SendRequest<Body>,
    state: Arc<ConnectionState>,
}

/// An endpoint's HTTP/2 connection, and those being made with the
/// requests waiting on each. With `max_requests_per_connection`, a
/// connection being made takes at most that many waiting requests, and the
/// next request starts another, as Envoy opens enough for what is pending.
#[derive(Debug, Default)]
struct Http2Slot {
    open: Option<Http2Connection>,
    connecting: Vec<Pending>,
}

/// A connection being made and how many requests wait on it.
#[derive(Debug)]
struct Pending {
    connecting: Connecting,
    waiting: u32,
}

impl Http2Slot {
    fn is_empty(&self) -> bool {
        self.open.is_none() && self.connecting.is_empty()
    }

    /// Stops counting on the connection being made on `connecting`, and
    /// tells how many requests waited on it.
    fn settled(&mut self, connecting: &Connecting) -> u32 {
        let mut waited = 0;
        self.connecting.retain(|pending| {
            let this = pending.connecting.same_channel(connecting);
            if this {
                waited = pending.waiting;
            }
            !this
        });
        waited
    }
}

/// Where the outcome of a connection being made is announced.
type Connecting = watch::Receiver<Option<Result<Http2Connection, ConnectFailure>>>;

/// How a request gets onto an endpoint's HTTP/2 connection.
enum Http2Checkout {
    /// The open connection, with this request counted on it.
    Open(Http2Connection),
    /// The connection being made.
    Wait(Connecting),
}

/// What a connection's task needs to know to close it when idle.
#[derive(Debug)]
struct ConnectionState {
    endpoint: SocketAddr,
    activity: Activity,
    /// Takes no new request; closes when its last request in flight ends.
    retired: AtomicBool,
    /// Woken when the last request of a retired connection ends.
    drained: Notify,
    /// Requests sent over the connection so far, and those refused when it
    /// had served its last.
    served: AtomicU32,
}

impl Pool {
    pub fn new(
        connector: Connector,
        http2: bool,
        options: HttpConnections,
        stats: Arc<ConnectionStats>,
    ) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                connector,
                http2,
                options,
                stats,
                idle: Mutex::default(),
                multiplexed: Mutex::default(),
            }),
        }
    }

    /// Sends `request`, whose URI is in origin form (`/path?query`), to
    /// the endpoint `pick` chose. Over HTTP/2 the URI gains the scheme and
    /// the endpoint as authority, which become the pseudo-headers.
    pub async fn send(
        &self,
        pick: &Pick,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        let endpoint = pick.endpoint().address;
        if self.shared.http2 {
            absolute_form(request.uri_mut(), pick.authority());
            self.shared.send_http2(endpoint, request).await
        } else {
            self.shared.send_http1(endpoint, request).await
        }
    }
}

impl Shared {
    async fn send_http1(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            // Connecting is boxed: with the TLS handshake its future is
            // larger than the rest of a request's, which reuse never needs.
            let (connection, reused) = match self.take_idle(endpoint) {
                Some(connection) => (connection, true),
                None => (Box::pin(self.connect_http1(endpoint)).await?, false),
            };
            let Http1Connection { mut sender, state } = connection;
            // Only one request at a time has an HTTP/1.1 connection, and an
            // exhausted one is never given back: this always counts.
            state.reserve(self.options.max_requests);
            let mut lease = Lease::new(self, state);
            if reused && !self.settled(&mut sender).await {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    // After a protocol switch the connection is no longer HTTP's.
                    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
                        lease.sender = Some(sender);
                    }
                    return Ok(lease.attach(response));
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Request(err.into_error())),
                },
            }
        }
    }

    async fn send_http2(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (connection, reused) = match self.checkout_http2(endpoint) {
                Http2Checkout::Open(connection) => (connection, true),
                Http2Checkout::Wait(connecting) => match self.fresh(connecting).await? {
                    Some(connection) => (connection, false),
                    // Its connecting task died: try again.
                    None => continue,
                },
            };
            let Http2Connection { mut sender, state } = connection;
            let lease = Lease::new(self, state);
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(lease.attach(response)),
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Request(err.into_error())),
                },
            }
        }
    }

    /// Whether an idle connection can take a request. It is ready at once,
    /// unless its previous request is still sending a body the server
    /// answered without reading; that one gets the connect timeout to
    /// finish, and is left to close after it.
    async fn settled(&self, sender: &mut http1::SendRequest<Body>) -> bool {
        if sender.is_ready() {
            return true;
        }
        let limit = self.connector.timeout();
        matches!(
            tokio::time::timeout(limit, sender.ready()).await,
            Ok(Ok(()))
        )
    }

    /// The most recently used open idle connection to `endpoint`.
    fn take_idle(&self, endpoint: SocketAddr) -> Option<Http1Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let stack = idle.get_mut(&endpoint)?;
        while let Some(connection) = stack.pop() {
            if !connection.sender.is_closed() && !connection.state.retired.load(Ordering::Relaxed) {
                return Some(connection);
            }
        }
        None
    }

    /// The endpoint's shared connection with this request counted on it,
    /// or the wait for one. A connection that closed, was retired or has
    /// served its last request leaves the pool (it stays open for the
    /// streams it already has), and a new one is started.
    fn checkout_http2(self: &Arc<Self>, endpoint: SocketAddr) -> Http2Checkout {
        let mut multiplexed = self.multiplexed.lock().expect("pool lock");
        let slot = multiplexed.entry(endpoint).or_default();
        slot.open.take_if(|c| !c.usable());
        if let Some(connection) = slot.open.take() {
            match connection.state.reserve(self.options.max_requests) {
                Reserved::Request => {
                    slot.open = Some(connection.clone());
                    return Http2Checkout::Open(connection);
                }
                // It leaves the pool with its last request.
                Reserved::LastRequest => return Http2Checkout::Open(connection),
                Reserved::Nothing => {}
            }
        }
        let room = self.options.max_requests.map_or(u32::MAX, |max| max.get());
        if let Some(pending) = slot.connecting.iter_mut().find(|p| p.waiting < room) {
            pending.waiting += 1;
            return Http2Checkout::Wait(pending.connecting.clone());
        }
        let connecting = self.start_http2(endpoint);
        slot.connecting.push(Pending {
            connecting: connecting.clone(),
            waiting: 1,
        });
        Http2Checkout::Wait(connecting)
    }

    /// Makes a connection to `endpoint` on a task of its own, so that a
    /// request that gives up waiting does not abort it for the others.
    fn start_http2(self: &Arc<Self>, endpoint: SocketAddr) -> Connecting {
        let (announce, connecting) = watch::channel(None);
        let shared = Arc::clone(self);
        let own = connecting.clone();
        tokio::spawn(async move {
            let outcome = shared.connect_http2(endpoint).await;
            {
                let mut multiplexed = shared.multiplexed.lock().expect("pool lock");
                let slot = multiplexed.entry(endpoint).or_default();
                let waited = slot.settled(&own);
                if let Ok(connection) = &outcome {
                    // Its waiters' requests are counted on it before anyone
                    // else sees it, so that none of them loses its place.
                    connection.state.served.store(waited, Ordering::Relaxed);
                    let room = shared
                        .options
                        .max_requests
                        .is_none_or(|max| waited < max.get());
                    // It becomes the one new requests go to, if it has room
                    // and no usable one is there.
                    if room && !slot.open.as_ref().is_some_and(Http2Connection::usable) {
                        slot.open = Some(connection.clone());
                    }
                }
                if slot.is_empty() {
                    multiplexed.remove(&endpoint);
                }
            }
            announce.send_replace(Some(outcome));
        });
        connecting
    }

    /// Stops waiting on `connecting` anywhere.
    fn forget_connecting(&self, connecting: &Connecting) {
        let mut multiplexed = self.multiplexed.lock().expect("pool lock");
        multiplexed.retain(|_, slot| {
            slot.settled(connecting);
            !slot.is_empty()
        });
    }

    /// The connection being made, with this request counted on it (when the
    /// connection was made, for every request that waited); `None` when its
    /// task died without a word.
    async fn fresh(
        &self,
        mut connecting: Connecting,
    ) -> Result<Option<Http2Connection>, ConnectFailure> {
        let outcome = match connecting.wait_for(Option::is_some).await {
            Ok(outcome) => Some(outcome.clone().expect("waited for an outcome")),
            Err(_) => None,
        };
        let Some(outcome) = outcome else {
            // The connecting task is gone without a word (it panicked):
            // its slot goes, so that the next try makes a new connection.
            self.forget_connecting(&connecting);
            return Ok(None);
        };
        Ok(Some(outcome?))
    }

    async fn connect_http1(
        self: &Arc<Self>,
        endpoint: SocketAddr,
    ) -> Result<Http1Connection, ConnectFailure> {
        let io = self.counted(self.connector.connect(endpoint).await)?;
        let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
        let state = Arc::new(ConnectionState::new(endpoint));
        self.drive(connection.with_upgrades(), Arc::clone(&state));
        Ok(Http1Connection { sender, state })
    }

    async fn connect_http2(
        self: &Arc<Self>,
        endpoint: SocketAddr,
    ) -> Result<Http2Connection, ConnectFailure> {
        let io = self.counted(self.connector.connect(endpoint).await)?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(io))
            .await?;
        let state = Arc::new(ConnectionState::new(endpoint));
        self.drive(connection, Arc::clone(&state));
        Ok(Http2Connection { sender, state })
    }

    /// Counts a failed connect, once however many requests wait for it.
    fn counted<T>(&self, connected: Result<T, ConnectError>) -> Result<T, ConnectError> {
        if connected.is_err() {
            self.stats.connect_fail.fetch_add(1, Ordering::Relaxed);
        }
        connected
    }

    /// Runs a connection on its own task until it ends or stays idle too
    /// long; then the pool forgets it.
    fn drive<C>(self: &Arc<Self>, connection: C, state: Arc<ConnectionState>)
    where
        C: Future<Output = hyper::Result<()>> + Send + 'static,
    {
        let open = self.stats.opened();
        let options = self.options;
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let stop = async {
                tokio::select! {
                    () = state.activity.idle_for(options.idle_timeout) => "idle timeout",
                    () = state.aged(options.max_duration) => "max connection duration",
                }
            };
            match activity::until(std::pin::pin!(connection), stop).await {
                Ended::Done(Ok(())) => {}
                Ended::Done(Err(err)) => tracing::debug!(error = %err, "upstream connection ended"),
                Ended::Stopped(why) => tracing::debug!("{why}: closing an upstream connection"),
            }
            drop(open);
            if let Some(pool) = pool.upgrade() {
                pool.forget(&state);
            }
        });
    }

    /// Drops a connection that ended, and its endpoint's entry when it was
    /// the last: an ORIGINAL_DST cluster meets endpoints without end.
    fn forget(&self, state: &Arc<ConnectionState>) {
        let endpoint = state.endpoint;
        let mut idle = self.idle.lock().expect("pool lock");
        if let Some(stack) = idle.get_mut(&endpoint) {
            stack.retain(|c| !Arc::ptr_eq(&c.state, state));
            if stack.is_empty() {
                idle.remove(&endpoint);
            }
        }
        drop(idle);
        self.unpool_http2(state);
    }

    /// Takes the HTTP/2 connection with `state` out of its endpoint's slot.
    fn unpool_http2(&self, state: &Arc<ConnectionState>) {
        let mut multiplexed = self.multiplexed.lock().expect("pool lock");
        let Some(slot) = multiplexed.get_mut(&state.endpoint) else {
            return;
        };
        if slot
            .open
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.state, state))
        {
            slot.open = None;
        }
        if slot.is_empty() {
            multiplexed.remove(&state.endpoint);
        }
    }

    fn give_back(&self, connection: Http1Connection) {
        // One that ended meanwhile was already forgotten: keep it that way.
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        idle.entry(connection.state.endpoint)
            .or_default()
            .push(connection);
    }
}

impl From<ConnectError> for ConnectFailure {
    fn from(err: ConnectError) -> ConnectFailure {
        ConnectFailure::Connect(Arc::new(err))
    }
}

impl From<hyper::Error> for ConnectFailure {
    fn from(err: hyper::Error) -> ConnectFailure {
        ConnectFailure::Handshake(Arc::new(err))
    }
}

impl Http2Connection {
    fn usable(&self) -> bool {
        !self.sender.is_closed() && !self.state.retired.load(Ordering::Relaxed)
    }
}

/// What a request got when it asked to be counted on a connection.
enum Reserved {
    Request,
    /// The last request the connection may serve.
    LastRequest,
    /// The connection has served all it may.
    Nothing,
}

impl ConnectionState {
    /// Counts a request on the connection, within `max_requests`. The count
    /// is one atomic step, so concurrent HTTP/2 requests never exceed it.
    fn reserve(&self, max_requests: Option<std::num::NonZeroU32>) -> Reserved {
        let count = self
            .served
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        match max_requests.map(std::num::NonZeroU32::get) {
            None => Reserved::Request,
            Some(max) if count < max => Reserved::Request,
            Some(max) if count == max => Reserved::LastRequest,
            Some(_) => Reserved::Nothing,
        }
    }

    /// A connection made just now: idle from now until its first request.
    fn new(endpoint: SocketAddr) -> ConnectionState {
        ConnectionState {
            endpoint,
            activity: Activity::new(),
            retired: AtomicBool::new(false),
            drained: Notify::new(),
            served: AtomicU32::new(0),
        }
    }

    /// Resolves once the connection has lived `max_duration` and its last
    /// request is done; it takes no new request from then on.
    async fn aged(&self, max_duration: Option<std::time::Duration>) {
        activity::after(max_duration).await;
        // SeqCst here and in `Lease::end`: one of the two sees the other's
        // write, so the last request's end is never missed.
        self.retired.store(true, Ordering::SeqCst);
        loop {
            let drained = self.drained.notified();
            if self.activity.in_flight() == 0 {
                return;
            }
            drained.await;
        }
    }
}

/// One request's use of a connection, from checkout until its response
/// body ends or is dropped.
#[derive(Debug)]
struct Lease {
    shared: Arc<Shared>,
    state: Arc<ConnectionState>,
    /// For HTTP/1.1, the sender to give back when the response has ended.
    sender: Option<http1::SendRequest<Body>>,
    ended: bool,
}

impl Lease {
    fn new(shared: &Arc<Shared>, state: Arc<ConnectionState>) -> Lease {
        state.activity.begin();
        Lease {
            shared: Arc::clone(shared),
            state,
            sender: None,
            ended: false,
        }
    }

    /// The response, with a body that ends the lease; a response without
    /// a body ends it at once.
    fn attach(mut self, response: Response<Incoming>) -> Response<PooledBody> {
        let (parts, inner) = response.into_parts();
        let lease = if inner.is_end_stream() {
            self.end(true);
            None
        } else {
            Some(self)
        };
        Response::from_parts(parts, PooledBody { inner, lease })
    }

    /// The request is over; an HTTP/1.1 connection goes back to the pool
    /// when its response was read to the end and it may serve more.
    fn end(&mut self, complete: bool) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let shared = &self.shared;
        let left = self.state.activity.end();
        let retired = self.state.retired.load(Ordering::SeqCst);
        if retired && left == 0 {
            self.state.drained.notify_waiters();
        }
        let Some(sender) = self.sender.take() else {
            return;
        };
        let exhausted = shared
            .options
            .max_requests
            .is_some_and(|max| self.state.served.load(Ordering::Relaxed) >= max.get());
        if complete && !exhausted && !retired {
            let state = Arc::clone(&self.state);
            shared.give_back(Http1Connection { sender, state });
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.end(false);
    }
}

/// A response body that ends its request's use of the connection.
#[derive(Debug)]
pub struct PooledBody {
    inner: Incoming,
    lease: Option<Lease>,
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let complete = match &frame {
            None => Some(true),
            Some(Ok(_)) => this.inner.is_end_stream().then_some(true),
            Some(Err(_)) => Some(false),
        };
        if let Some(complete) = complete
            && let Some(mut lease) = this.lease.take()
        {
            lease.end(complete);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `/path?q` becomes `http://<authority>/path?q`, which HTTP/2 sends as
/// `:scheme`, `:authority` and `:path`.
fn absolute_form(uri: &mut Uri, authority: Authority) {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    if let Ok(absolute) = Uri::from_parts(parts) {
        *uri = absolute;
    }
}
