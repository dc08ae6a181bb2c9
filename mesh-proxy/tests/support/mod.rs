//! Real processes and servers on loopback for the proxy's tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How long anything may take to become ready before a test fails.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// An HTTP server that answers every request with JSON describing it.
/// `/status/<code>` answers with that status; `/delay/<ms>` waits first.
pub struct Echo {
    pub address: SocketAddr,
}

impl Echo {
    pub async fn start(name: &'static str) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = service_fn(move |request| echo(name, request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Echo { address }
    }
}

async fn echo(name: &str, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    // Repeated headers are joined with commas, as HTTP allows.
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = value.to_str().unwrap_or_default();
        headers
            .entry(name.to_string())
            .and_modify(|joined| {
                joined.push(',');
                joined.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    let method = request.method().to_string();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut status = StatusCode::OK;
    if let Some(code) = path.strip_prefix("/status/") {
        status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
    }
    if let Some(ms) = path.strip_prefix("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    let reply = json!({"server": name, "method": method, "path": path, "headers": headers, "body_bytes": body.len()});
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    *response.status_mut() = status;
    Ok(response)
}

/// A mesh-proxy process; killed when dropped.
pub struct Proxy {
    child: Child,
    pub admin: SocketAddr,
    pub listeners: BTreeMap<String, SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    pub async fn start(bootstrap: &Value) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bootstrap.json");
        std::fs::write(&config, serde_json::to_string_pretty(bootstrap).unwrap()).unwrap();
        let admin_file = dir.path().join("admin");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
            .arg("--bootstrap")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--drain-timeout")
            .arg("2s")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let admin = wait_for_file(&admin_file, &mut child).await;
        let (_, listing) = get(admin, "/listeners", &[]).await;
        let listeners = listing
            .lines()
            .filter_map(|line| line.split_once("::"))
            .map(|(name, address)| (name.to_owned(), address.parse().unwrap()))
            .collect();
        Proxy {
            child,
            admin,
            listeners,
            _dir: dir,
        }
    }

    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    /// Asks the proxy to quit and waits for it to exit.
    pub async fn quit(mut self) -> std::process::ExitStatus {
        let _ = post(self.admin, "/quitquitquit").await;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the proxy did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The value of one Prometheus sample from the admin server.
    pub async fn stat(&self, series: &str) -> u64 {
        let (_, text) = get(self.admin, "/stats/prometheus", &[]).await;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_for_file(path: &PathBuf, child: &mut Child) -> SocketAddr {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return text.trim().parse().unwrap();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mesh-proxy exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "mesh-proxy was not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `path` from `address` with extra headers; the status and body text.
pub async fn get(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::get(format!("http://{address}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(client(), request.body(Empty::new()).unwrap()).await
}

pub async fn post(address: SocketAddr, path: &str) -> (StatusCode, String) {
    let request = Request::post(format!("http://{address}{path}"))
        .body(Empty::new())
        .unwrap();
    send(client(), request).await
}

pub async fn send(
    client: Client<HttpConnector, Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> (StatusCode, String) {
    let response = tokio::time::timeout(READY_WITHIN, client.request(request))
        .await
        .expect("the request finished in time")
        .expect("the request was answered");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The `server` field of an echo reply.
pub fn server_of(body: &str) -> String {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not an echo reply: {body}"));
    value["server"].as_str().unwrap_or_default().to_owned()
}

/// A bootstrap with an admin server, the given listeners and clusters, all on loopback port 0.
pub fn bootstrap(listeners: Value, clusters: Value) -> Value {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": clusters}
    })
}

pub fn http_listener(name: &str, virtual_hosts: Value) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "route_config": {"name": name, "virtual_hosts": virtual_hosts},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]
            }
        }]}]
    })
}

pub fn tcp_listener(name: &str, cluster: &str) -> Value {
    json!({
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": name, "cluster": cluster
            }
        }]}]
    })
}

pub fn cluster(name: &str, endpoints: &[SocketAddr]) -> Value {
    json!({
        "name": name,
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints.iter().map(|a| json!(
            {"endpoint": {"address": {"socket_address": {"address": a.ip().to_string(), "port_value": a.port()}}}}
        )).collect::<Vec<_>>()}]}
    })
}

/// A loopback port nothing listens on.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
