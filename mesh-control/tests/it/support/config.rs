//! Test data, a poll-until helper and a server around the config API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_control::store::MemoryStore;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// `shared/testdata/istio-bookinfo` beside the repository.
pub fn testdata() -> PathBuf {
    let dir = repo().join("../shared/testdata/istio-bookinfo");
    assert!(dir.is_dir(), "test data not found at {}", dir.display());
    dir.canonicalize().unwrap()
}

/// `examples/bookinfo/networking` in the repository.
pub fn examples() -> PathBuf {
    repo().join("examples/bookinfo/networking")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The config API on a real HTTP server on an ephemeral loopback port.
pub struct ApiServer {
    pub address: SocketAddr,
    pub store: Arc<MemoryStore>,
    accept: JoinHandle<()>,
}

impl ApiServer {
    pub async fn start(store: Arc<MemoryStore>) -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let served = store.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = served.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let store = store.clone();
                        async move {
                            Ok::<_, Infallible>(mesh_control::api::handle(&store, request).await)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ApiServer {
            address,
            store,
            accept,
        }
    }

    /// Sends a request; the status and the body as text.
    pub async fn send(&self, method: Method, path: &str, body: &str) -> (StatusCode, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.address))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
