//! Helpers shared by meshctl's integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The meshctl binary cargo built for these tests.
pub fn meshctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
}

/// `shared/testdata/istio-bookinfo` beside the repository (MESH_TESTDATA overrides).
pub fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESH_TESTDATA") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join("../shared/testdata/istio-bookinfo");
    assert!(dir.is_dir(), "test data not found at {}", dir.display());
    dir.canonicalize().unwrap()
}

/// The control plane's config API (mesh-control's handler) on a real HTTP
/// server on an ephemeral loopback port, with its own runtime.
pub struct ControlPlane {
    pub url: String,
    pub store: std::sync::Arc<mesh_control::store::MemoryStore>,
    /// Serves until the test ends.
    _runtime: tokio::runtime::Runtime,
}

impl ControlPlane {
    pub fn start() -> ControlPlane {
        use hyper_util::rt::{TokioExecutor, TokioIo};

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = std::sync::Arc::new(mesh_control::store::MemoryStore::new());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = store.clone();
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = served.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let store = store.clone();
                        async move {
                            let response = mesh_control::api::handle(&store, request).await;
                            Ok::<_, std::convert::Infallible>(response)
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
        ControlPlane {
            url,
            store,
            _runtime: runtime,
        }
    }

    /// meshctl pointed at this control plane through its environment variable.
    pub fn meshctl(&self) -> Command {
        let mut command = meshctl();
        command.env("MESH_CONTROL_ADDRESS", &self.url);
        command
    }
}
