//! Test harness: the services started in process on ephemeral ports, fake
//! upstreams that record what they are sent, and a small HTTP client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bookinfo::config::Upstreams;
use bookinfo::reviews;
use bookinfo::{Config, Running, Service};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Environment variables for one service, instead of the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// Points `<NAME>_HOSTNAME` and `<NAME>_SERVICE_PORT` at `addr`.
    pub fn upstream(self, name: &str, addr: SocketAddr) -> Self {
        let prefix = name.to_ascii_uppercase();
        self.set(&format!("{prefix}_HOSTNAME"), addr.ip().to_string())
            .set(&format!("{prefix}_SERVICE_PORT"), addr.port().to_string())
    }

    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

/// Starts one service on 127.0.0.1 with an ephemeral port. The listener is bound
/// before this returns, so the service is ready at once.
pub async fn start(service: Service, env: &Env) -> Running {
    let lookup = |name: &str| env.get(name);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        service,
        upstreams: Upstreams::from_env(&lookup).expect("upstreams from the test environment"),
    };
    bookinfo::start(config).await.expect("service starts")
}

/// Starts reviews as `version` (v1, v2 or v3).
pub async fn start_reviews(version: &str, env: &Env) -> Running {
    let lookup = |name: &str| env.get(name);
    let settings = reviews::Settings::from_env(Some(version), &lookup).unwrap();
    start(Service::Reviews(settings), env).await
}

/// All four services wired together.
#[derive(Debug)]
pub struct Bookinfo {
    pub productpage: Running,
    /// details, reviews and ratings, held so that they keep serving.
    _upstreams: [Running; 3],
}

impl Bookinfo {
    pub async fn start(reviews_version: &str) -> Self {
        let ratings = start(Service::Ratings, &Env::new()).await;
        let details = start(Service::Details, &Env::new()).await;
        let reviews_env = Env::new().upstream("ratings", ratings.addr());
        let reviews = start_reviews(reviews_version, &reviews_env).await;
        let env = Env::new()
            .upstream("details", details.addr())
            .upstream("reviews", reviews.addr())
            .upstream("ratings", ratings.addr());
        let productpage = start(Service::Productpage, &env).await;
        Self {
            productpage,
            _upstreams: [details, reviews, ratings],
        }
    }

    pub fn url(&self, path: &str) -> String {
        url(self.productpage.addr(), path)
    }
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// An address where nothing listens: a socket bound and never listening,
/// so that connections are refused and no other test can take the port
/// while it lives.
#[derive(Debug)]
pub struct Dead {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl Dead {
    pub fn new() -> Dead {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        Dead {
            _socket: socket,
            addr,
        }
    }
}

/// An upstream that accepts connections and never answers.
#[derive(Debug)]
pub struct Stalled {
    pub addr: SocketAddr,
    /// Connections accepted so far: one per try of a client.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

impl Stalled {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request as an upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// As written on the request line: origin form, or absolute form when the
    /// request came through a proxy.
    pub uri: Uri,
    pub headers: HeaderMap,
}

/// An upstream that records every request and answers 200 with a fixed JSON
/// body.
#[derive(Debug)]
pub struct Recorder {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: JoinHandle<()>,
}

impl Recorder {
    pub async fn start(body: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(record(listener, requests.clone(), body));
        Self {
            addr,
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The one request recorded, failing if there were more or none.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "requests: {requests:#?}");
        requests.into_iter().next().unwrap()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(listener: TcpListener, requests: Arc<Mutex<Vec<Recorded>>>, body: &'static str) {
    while let Ok((stream, _)) = listener.accept().await {
        let requests = requests.clone();
        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
            requests.lock().unwrap().push(Recorded {
                uri: request.uri().clone(),
                headers: request.headers().clone(),
            });
            let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            async move { Ok::<_, Infallible>(response) }
        });
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: not JSON: {}", self.body))
    }

    /// How many times `needle` occurs in the body.
    pub fn count(&self, needle: &str) -> usize {
        self.body.matches(needle).count()
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, url, headers, Bytes::new()).await
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send(Method::POST, url, headers, Bytes::from(body.to_owned())).await
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Signs in as `user` and returns the cookie the browser would send back.
pub async fn login(productpage: SocketAddr, user: &str) -> String {
    let reply = post(
        &url(productpage, "/login"),
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("username={user}&passwd=anything"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let cookie = reply.headers["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}
