//! External authorizers for the `ext_authz` tests: one answering plain
//! HTTP, one answering `envoy.service.auth.v3.Authorization/Check`.
//!
//! Both allow a request carrying `x-allow: yes` (the HTTP one also a body
//! of exactly `let me in`) and add `x-user: alice` for the upstream and
//! `x-seen-by: authz` for the client; they deny any other with
//! `x-reason: not-allowed` and a body. The gRPC one decides connections
//! (checks without an HTTP request) by a flag.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc::Status;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// The body the HTTP authorizer denies with.
pub const DENIED_BODY: &str = "denied by the authorizer";
/// The body the gRPC authorizer denies with, and its status.
pub const GRPC_DENIED_BODY: &str = "the gRPC authorizer says no";
pub const GRPC_DENIED_STATUS: StatusCode = StatusCode::UNAUTHORIZED;

/// What an authorizer was asked.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// Paths, for the HTTP authorizer (its `path_prefix` included).
    pub paths: Vec<String>,
    pub calls: usize,
    /// Each request's body, and its `x-envoy-auth-partial-body` header.
    pub bodies: Vec<(String, Option<String>)>,
}

pub struct HttpAuthorizer {
    pub address: SocketAddr,
    asked: Arc<Mutex<Asked>>,
}

impl HttpAuthorizer {
    pub async fn start() -> HttpAuthorizer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Asked::default()));
        let record = Arc::clone(&asked);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let record = Arc::clone(&record);
                tokio::spawn(async move {
                    let service = service_fn(move |request| decide(Arc::clone(&record), request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpAuthorizer { address, asked }
    }

    pub fn asked(&self) -> Asked {
        self.asked.lock().unwrap().clone()
    }
}

async fn decide(
    asked: Arc<Mutex<Asked>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let allow_header = request.headers().get("x-allow").is_some_and(|v| v == "yes");
    let partial = request
        .headers()
        .get("x-envoy-auth-partial-body")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = request.into_body().collect().await.unwrap().to_bytes();
    {
        let mut asked = asked.lock().unwrap();
        asked.paths.push(path);
        asked.calls += 1;
        let text = String::from_utf8_lossy(&body).into_owned();
        asked.bodies.push((text, partial));
    }
    let response = if allow_header || body.as_ref() == b"let me in" {
        Response::builder()
            .header("x-user", "alice")
            .header("x-seen-by", "authz")
            .body(Full::new(Bytes::new()))
    } else {
        Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("x-reason", "not-allowed")
            .header("x-internal", "hidden")
            .body(Full::new(Bytes::from_static(DENIED_BODY.as_bytes())))
    };
    Ok(response.unwrap())
}

pub struct GrpcAuthorizer {
    pub address: SocketAddr,
    calls: Arc<AtomicUsize>,
    /// Whether connections (checks without an HTTP request) are allowed.
    pub allow_connections: Arc<AtomicBool>,
}

impl GrpcAuthorizer {
    pub async fn start() -> GrpcAuthorizer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let allow_connections = Arc::new(AtomicBool::new(false));
        let service = AuthorizationServer::new(Decider {
            calls: Arc::clone(&calls),
            allow_connections: Arc::clone(&allow_connections),
        });
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let service = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        GrpcAuthorizer {
            address,
            calls,
            allow_connections,
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

struct Decider {
    calls: Arc<AtomicUsize>,
    allow_connections: Arc<AtomicBool>,
}

fn header(key: &str, value: &str) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.into(),
            value: value.into(),
            ..HeaderValue::default()
        }),
        ..HeaderValueOption::default()
    }
}

#[tonic::async_trait]
impl Authorization for Decider {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let http = request
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http);
        let allowed = match &http {
            Some(http) => http.headers.get("x-allow").is_some_and(|v| v == "yes"),
            None => self.allow_connections.load(Ordering::SeqCst),
        };
        let response = if allowed {
            CheckResponse {
                status: Some(Status::default()),
                http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![header("x-user", "alice")],
                    response_headers_to_add: vec![header("x-seen-by", "authz")],
                    ..OkHttpResponse::default()
                })),
                ..CheckResponse::default()
            }
        } else {
            CheckResponse {
                status: Some(Status {
                    code: 7,
                    ..Status::default()
                }),
                http_response: Some(check_response::HttpResponse::DeniedResponse(
                    DeniedHttpResponse {
                        status: Some(HttpStatus {
                            code: i32::from(GRPC_DENIED_STATUS.as_u16()),
                        }),
                        headers: vec![header("x-reason", "not-allowed")],
                        body: GRPC_DENIED_BODY.into(),
                    },
                )),
                ..CheckResponse::default()
            }
        };
        Ok(tonic::Response::new(response))
    }
}
