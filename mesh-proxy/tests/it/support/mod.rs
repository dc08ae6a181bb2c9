//! Real processes and servers on loopback for the proxy's tests.

pub mod authz;
pub mod ca_server;
pub mod collector;
// Also the JWT unit tests' signer, which use the EC keys too.
#[allow(dead_code)]
pub mod jwt;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// How long anything may take to become ready before a test fails.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it gives `Ok`; after [`READY_WITHIN`]
/// the test fails with the last `Err`, what was seen instead.
pub async fn eventually<T>(mut check: impl AsyncFnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "not within {READY_WITHIN:?}: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP server that answers every request with JSON describing it.
/// `/status/<code>` answers with that status; `/delay/<ms>` waits first.
pub struct Echo {
    pub address: SocketAddr,
    /// Connections accepted, and those closed since.
    pub connections: Arc<ConnectionCount>,
}

#[derive(Debug, Default)]
pub struct ConnectionCount {
    pub accepted: AtomicU32,
    pub closed: AtomicU32,
    /// The most requests one connection has carried.
    pub most_requests: AtomicU32,
}

impl ConnectionCount {
    pub fn open(&self) -> u32 {
        // Closed first: a connection accepted and closed in between then
        // counts in neither, rather than making `closed` exceed `accepted`.
        let closed = self.closed.load(Ordering::SeqCst);
        self.accepted.load(Ordering::SeqCst) - closed
    }
}

impl Echo {
    pub async fn start(name: &'static str) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(ConnectionCount::default());
        let count = Arc::clone(&connections);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                count.accepted.fetch_add(1, Ordering::SeqCst);
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    let requests = AtomicU32::new(0);
                    let service = service_fn(|request| {
                        let carried = requests.fetch_add(1, Ordering::SeqCst) + 1;
                        count.most_requests.fetch_max(carried, Ordering::SeqCst);
                        echo(name, request)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    count.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Echo {
            address,
            connections,
        }
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

/// A server answering echo-style JSON that names it and the path. While the
/// returned flag is set (it starts set), a request for which `failure`
/// gives a status is answered with that status instead of 200.
pub async fn flagged(
    name: &'static str,
    failure: fn(&str) -> Option<StatusCode>,
) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let set = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&set);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let flag = Arc::clone(&flag);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let path = request.uri().path();
                    let status = failure(path)
                        .filter(|_| flag.load(Ordering::SeqCst))
                        .unwrap_or(StatusCode::OK);
                    let body = json!({"server": name, "path": path}).to_string();
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = status;
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, set)
}

/// A mesh-proxy process; killed when dropped.
pub struct Proxy {
    child: Child,
    pub admin: SocketAddr,
    pub listeners: BTreeMap<String, SocketAddr>,
    /// Where its standard error goes, when kept.
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Proxy {
    pub async fn start(bootstrap: &Value) -> Proxy {
        Proxy::spawn(bootstrap, &[], false).await
    }

    /// A proxy with more flags, its standard error kept for [`Proxy::log`];
    /// returns once the admin server is up, ready or not.
    pub async fn launch(bootstrap: &Value, args: &[String]) -> Proxy {
        Proxy::spawn(bootstrap, args, true).await
    }

    async fn spawn(bootstrap: &Value, args: &[String], keep_log: bool) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bootstrap.json");
        std::fs::write(&config, serde_json::to_string_pretty(bootstrap).unwrap()).unwrap();
        let admin_file = dir.path().join("admin");
        let log = keep_log.then(|| dir.path().join("stderr.log"));
        let stderr = match &log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-proxy"))
            .arg("--bootstrap")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .arg("--drain-timeout")
            .arg("2s")
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let admin = wait_for_file(&admin_file, &mut child).await;
        let mut proxy = Proxy {
            child,
            admin,
            listeners: BTreeMap::new(),
            log,
            _dir: dir,
        };
        proxy.read_listeners().await;
        proxy
    }

    async fn read_listeners(&mut self) {
        let (_, listing) = get(self.admin, "/listeners", &[]).await;
        self.listeners = listing
            .lines()
            .filter_map(|line| line.split_once("::"))
            .map(|(name, address)| (name.to_owned(), address.parse().unwrap()))
            .collect();
    }

    /// Waits until `/ready` says LIVE, then reads the listeners again.
    pub async fn wait_ready(&mut self) {
        eventually(async || {
            if get(self.admin, "/ready", &[]).await.0 == StatusCode::OK {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "mesh-proxy exited before it was ready: {status}\n{}",
                    self.log()
                );
            }
            Err(format!("mesh-proxy is not ready\n{}", self.log()))
        })
        .await;
        self.read_listeners().await;
    }

    /// What the proxy has logged so far (with [`Proxy::launch`]).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .map(|path| std::fs::read_to_string(path).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub async fn wait_for_log(&self, text: &str) -> String {
        eventually(async || {
            let log = self.log();
            match log.contains(text) {
                true => Ok(log),
                false => Err(format!("no {text:?} in the log:\n{log}")),
            }
        })
        .await
    }

    pub fn listener(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    /// Asks the proxy to quit and waits for it to exit.
    pub async fn quit(mut self) -> std::process::ExitStatus {
        let _ = post(self.admin, "/quitquitquit").await;
        eventually(async || {
            let exited = self.child.try_wait().unwrap();
            exited.ok_or_else(|| "the proxy did not exit".to_owned())
        })
        .await
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
    eventually(async || {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text.trim().parse().unwrap());
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("mesh-proxy exited before it was ready: {status}");
        }
        Err(format!("no {}", path.display()))
    })
    .await
}

pub fn client() -> Client<HttpConnector, Empty<Bytes>> {
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

/// Puts `filters` (a list) before the router of an [`http_listener`].
pub fn before_router(listener: &mut Value, filters: Value) {
    let list = &mut listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
    let router = list[0].take();
    let mut all = filters.as_array().expect("a list of filters").clone();
    all.push(router);
    *list = Value::Array(all);
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

/// A test certificate authority with its own key.
pub struct Ca {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).unwrap();
        let pem = issuer.pem();
        Ca { issuer, pem }
    }

    /// A certificate for both server and client use, with these DNS and URI SANs.
    pub fn issue(&self, dns: &[&str], uris: &[&str]) -> Leaf {
        let names: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*uri).unwrap(),
            ));
        }
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

impl Leaf {
    /// The SHA-256 of the certificate's DER, in lowercase hex.
    pub fn fingerprint(&self) -> String {
        let der = &pem_certs(&self.cert)[0];
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A server config with this certificate; `clients` makes client
    /// certificates from that CA mandatory.
    pub fn server_config(&self, clients: Option<&Ca>, alpn: &[&str]) -> Arc<rustls::ServerConfig> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match clients {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(pem_certs(&ca.pem));
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes()).unwrap();
        let mut config = builder
            .with_single_cert(pem_certs(&self.cert), key)
            .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Arc::new(config)
    }
}

/// An [`Echo`] behind TLS. Each reply's `headers` also show the client
/// certificate's first URI SAN (`x-tls-peer`) and the negotiated ALPN
/// protocol (`x-tls-alpn`).
pub struct TlsEcho {
    pub address: SocketAddr,
}

impl TlsEcho {
    pub async fn start(name: &'static str, config: Arc<rustls::ServerConfig>) -> TlsEcho {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let session = stream.get_ref().1;
                    let peer = session
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|leaf| mesh_proxy::tls::uri_sans(leaf).into_iter().next())
                        .unwrap_or_default();
                    let alpn = String::from_utf8_lossy(session.alpn_protocol().unwrap_or_default())
                        .into_owned();
                    let service = service_fn(move |mut request: Request<Incoming>| {
                        let headers = request.headers_mut();
                        headers.insert("x-tls-peer", peer.parse().unwrap());
                        headers.insert("x-tls-alpn", alpn.parse().unwrap());
                        echo(name, request)
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TlsEcho { address }
    }
}

/// What a TLS client offers: SNI, ALPN, trusted CA, maybe a certificate.
pub struct TlsClient<'a> {
    pub sni: &'a str,
    pub alpn: &'a [&'a str],
    pub ca: &'a Ca,
    pub identity: Option<&'a Leaf>,
}

impl TlsClient<'_> {
    /// GET `path` over TLS, in HTTP/2 when ALPN chose it; the status, the
    /// body, and the negotiated protocol.
    pub async fn get(&self, address: SocketAddr, path: &str) -> (StatusCode, String, String) {
        self.try_get(address, path).await.unwrap()
    }

    /// Like [`TlsClient::get`], with failed handshakes and requests as errors.
    pub async fn try_get(
        &self,
        address: SocketAddr,
        path: &str,
    ) -> Result<(StatusCode, String, String), String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(pem_certs(&self.ca.pem));
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match self.identity {
            Some(leaf) => builder
                .with_client_auth_cert(
                    pem_certs(&leaf.cert),
                    PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(self.sni.to_owned()).unwrap();
        let stream = tokio::time::timeout(READY_WITHIN, connector.connect(name, tcp))
            .await
            .expect("the handshake finished in time")
            .map_err(|err| format!("handshake: {err}"))?;
        let alpn = String::from_utf8_lossy(stream.get_ref().1.alpn_protocol().unwrap_or_default())
            .into_owned();
        let io = TokioIo::new(stream);
        let request = Request::get(format!("https://{}{path}", self.sni))
            .header("host", self.sni)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let failed = |err: hyper::Error| format!("request: {err}");
        let response = if alpn == "h2" {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(failed)?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(failed)?
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(failed)?
        };
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(failed)?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned(), alpn))
    }
}

/// A `transport_socket` with an `UpstreamTlsContext` (`context` is its JSON).
pub fn upstream_tls(context: Value) -> Value {
    tls_socket("UpstreamTlsContext", context)
}

/// A `transport_socket` with a `DownstreamTlsContext`.
pub fn downstream_tls(context: Value) -> Value {
    tls_socket("DownstreamTlsContext", context)
}

fn tls_socket(kind: &str, mut context: Value) -> Value {
    context["@type"] = json!(format!(
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}"
    ));
    json!({"name": "envoy.transport_sockets.tls", "typed_config": context})
}

/// The lines of `path` once it holds at least `n` of them.
pub async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    eventually(async || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        match lines.len() >= n {
            true => Ok(lines),
            false => Err(format!(
                "only {} of {n} log lines in {}",
                lines.len(),
                path.display()
            )),
        }
    })
    .await
}

/// An echo reply's header, as the upstream received it.
pub fn echoed_header(body: &str, name: &str) -> String {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not an echo reply: {body}"));
    value["headers"][name]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
