//! What the end-to-end tests run: mesh-control on a config directory,
//! mesh-proxy sidecars on random loopback addresses, applications, and an
//! HTTP client.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// Bound on every wait for something that should happen soon.
pub const PATIENCE: Duration = Duration::from_secs(30);
pub const PORT: u16 = 9080;

/// Kills the process when the test ends, however it ends.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    pub fn assert_alive(&mut self, what: &str) {
        assert!(self.0.try_wait().unwrap().is_none(), "{what} exited");
    }
}

/// The directory cargo puts this profile's binaries in.
pub fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash>
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// mesh-proxy, built once per test process: cargo builds a dependency's
/// binaries only for a workspace build, and a test must not depend on how
/// it was started.
///
/// The build selects the whole workspace and its examples because cargo
/// unifies dependency features over the packages selected, dev-dependencies
/// included when anything built needs them. `-p mesh-proxy` alone would
/// resolve other features (tokio without `test-util`, say) than the
/// workspace's test build: it would compile the dependency tree a second
/// time and overwrite the binary the other tests are running. With the
/// workspace's features it is a no-op after `cargo nextest run --workspace`.
pub fn mesh_proxy() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = binaries_dir();
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "--workspace", "--examples", "--bin", "mesh-proxy"]);
            if dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "building mesh-proxy failed");
            let path = dir.join("mesh-proxy");
            assert!(path.exists(), "no {}", path.display());
            path
        })
        .clone()
}

/// Distinct random loopback addresses outside 127.0.0.0/24, so that
/// tests running at the same time do not meet.
pub fn loopback_ips(count: usize) -> Vec<Ipv4Addr> {
    let mut ips = BTreeSet::new();
    while ips.len() < count {
        ips.insert(Ipv4Addr::new(
            127,
            fastrand::u8(1..=254),
            fastrand::u8(0..=255),
            fastrand::u8(2..=254),
        ));
    }
    let mut ips: Vec<_> = ips.into_iter().collect();
    fastrand::shuffle(&mut ips);
    ips
}

/// An HTTP upstream that answers every request with its name.
pub async fn app(name: &'static str) -> SocketAddr {
    serve(move |_| (200, name.to_owned())).await
}

/// An HTTP/1.1 server on loopback answering every request with the status
/// and body `answer` makes of it.
pub async fn serve<F>(answer: F) -> SocketAddr
where
    F: Fn(&http::Request<Incoming>) -> (u16, String) + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<Incoming>| {
                    let (status, body) = answer(&request);
                    let mut response = http::Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() =
                        http::StatusCode::from_u16(status).expect("a valid status");
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

pub async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct ControlPlane {
    /// Killed when dropped.
    _process: Running,
    pub xds: SocketAddr,
    pub monitoring: SocketAddr,
    /// The CA's port, when started with one.
    pub secure: Option<SocketAddr>,
}

impl ControlPlane {
    /// Starts mesh-control on the given ports (0 for ephemeral ones).
    pub async fn start(dir: &Path, xds: u16, monitoring: u16) -> ControlPlane {
        Self::start_with(dir, xds, monitoring, &[]).await
    }

    pub async fn start_with(dir: &Path, xds: u16, monitoring: u16, args: &[&str]) -> ControlPlane {
        let address_file = dir.join(format!("addresses-{}.json", fastrand::u64(..)));
        let mut process = Running(
            Command::new(env!("CARGO_BIN_EXE_mesh-control"))
                .args(["--xds-port", &xds.to_string()])
                .args(["--monitoring-port", &monitoring.to_string()])
                .arg("--config-dir")
                .arg(dir.join("config"))
                .arg("--address-file")
                .arg(&address_file)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let addresses: Value = wait_for("mesh-control's address file", async || {
            process.assert_alive("mesh-control");
            let text = std::fs::read_to_string(&address_file).ok()?;
            serde_json::from_str(&text).ok()
        })
        .await;
        let parse = |key: &str| addresses[key].as_str().unwrap().parse().unwrap();
        ControlPlane {
            xds: parse("xds"),
            monitoring: parse("monitoring"),
            secure: addresses["secure"].as_str().map(|a| a.parse().unwrap()),
            _process: process,
        }
    }

    pub async fn syncz(&self, client: &Http) -> Vec<Value> {
        let url = format!("http://{}/debug/syncz", self.monitoring);
        match client.get(&url, None).await {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A workload's certificate and the mesh trust bundle, which the agent
/// would fetch: inbound mTLS chains and mesh clusters refer to them.
pub struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    pub fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        Ca(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    pub fn secrets(&self, service_account: &str) -> Value {
        let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        leaf.subject_alt_names.push(rcgen::SanType::URI(
            rcgen::string::Ia5String::try_from(format!(
                "spiffe://cluster.local/ns/default/sa/{service_account}"
            ))
            .unwrap(),
        ));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &self.0).unwrap();
        json!([
            {"name": "default", "tls_certificate": {
                "certificate_chain": {"inline_string": cert.pem()},
                "private_key": {"inline_string": key.serialize_pem()}}},
            {"name": "ROOTCA", "validation_context": {
                "trusted_ca": {"inline_string": self.0.pem()}}}
        ])
    }
}

/// Where a sidecar's certificate comes from.
pub enum Identity<'a> {
    /// Written into its bootstrap.
    Static(&'a Ca),
    /// Asked of mesh-control's CA with the workload's token, as an agent does.
    Ca {
        address: SocketAddr,
        root: &'a Path,
        tokens: &'a Path,
        /// The lifetime asked for (`--cert-ttl`).
        ttl: &'a str,
    },
}

/// A sidecar on `ip` for a workload with `labels`, configured by the
/// control plane at `xds`.
pub fn sidecar(
    dir: &Path,
    name: &str,
    ip: Ipv4Addr,
    labels: &BTreeMap<&str, &str>,
    identity: &Identity,
    xds: SocketAddr,
) -> Running {
    let mut bootstrap = json!({
        "node": {
            "id": format!("sidecar~{ip}~{name}.default~default.svc.cluster.local"),
            "cluster": format!("{name}.default"),
            "metadata": {
                "NAMESPACE": "default",
                "WORKLOAD_NAME": name,
                "SERVICE_ACCOUNT": name,
                "LABELS": labels,
                "INTERCEPTION_MODE": "NONE",
            },
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
    });
    let mut command = Command::new(mesh_proxy());
    match identity {
        Identity::Static(ca) => {
            bootstrap["static_resources"] = json!({"secrets": ca.secrets(name)});
        }
        Identity::Ca {
            address,
            root,
            tokens,
            ttl,
        } => {
            command
                .args(["--ca-address", &format!("https://{address}")])
                .args(["--cert-ttl", ttl])
                .arg("--ca-root-cert")
                .arg(root)
                .arg("--ca-token-file")
                .arg(tokens.join(name));
        }
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, bootstrap.to_string()).unwrap();
    Running(
        command
            .arg("--bootstrap")
            .arg(&path)
            .args(["--xds-address", &xds.to_string(), "--concurrency", "1"])
            .arg("--admin-address-path")
            .arg(dir.join(format!("{name}.admin")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// The registry and the Sidecars: `reviews` with v1 and v2 on their own
/// addresses, each fronting its app; the client reaching `reviews` through
/// an egress listener on its own address.
pub fn mesh_config(
    client: Ipv4Addr,
    v1: (Ipv4Addr, SocketAddr),
    v2: (Ipv4Addr, SocketAddr),
) -> String {
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: reviews}}}}
---
{}",
        client_sidecar(client, PORT, "reviews.default.svc.cluster.local")
    );
    for (version, (ip, app)) in [("v1", v1), ("v2", v2)] {
        yaml += &format!(
            "---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-{version}, namespace: default}}
spec:
  address: {ip}
  labels: {{app: reviews, version: {version}, security.istio.io/tlsMode: istio}}
  serviceAccount: reviews-{version}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: reviews-{version}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: reviews, version: {version}}}}}
  ingress:
  - port: {{number: {PORT}, protocol: HTTP, name: http}}
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:{port}
",
            port = app.port()
        );
    }
    yaml
}

/// The client's Sidecar: `host` reached through an egress listener on the
/// client's own address and `port`.
pub fn client_sidecar(client: Ipv4Addr, port: u16, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: client}}}}
  egress:
  - port: {{number: {port}, protocol: HTTP, name: http}}
    bind: {client}
    captureMode: NONE
    hosts: [./{host}]
"
    )
}

pub fn route_all_to(version: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: {version}}}
"
    )
}

/// A temporary directory for a test's files, with the empty `config`
/// directory mesh-control will watch in it.
pub fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    (dir, config_dir)
}

/// Replaces a file in the watched directory in one step.
pub fn write_config(dir: &Path, name: &str, text: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, dir.join(name)).unwrap();
}

/// A keep-alive HTTP client, as an application would hold one.
#[derive(Clone)]
pub struct Http(Client<HttpConnector, Empty<Bytes>>);

impl Http {
    pub fn new() -> Http {
        Http(Client::builder(TokioExecutor::new()).build_http())
    }

    /// GET `url`, optionally with a Host header: status and body.
    pub async fn get(&self, url: &str, host: Option<&str>) -> Result<(u16, String), String> {
        let host = host.map(|host| ("host", host));
        self.get_with(url, host.as_slice()).await
    }

    /// GET `url` with these headers: status and body.
    pub async fn get_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let mut request = http::Request::get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::new()).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), self.0.request(request))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// A mesh where all of `reviews` is routed to v1, which fronts `v1_app`
/// (v2's address has no sidecar), written to `config_dir`.
pub struct V1Only {
    pub client_ip: Ipv4Addr,
    pub v1_ip: Ipv4Addr,
}

impl V1Only {
    pub fn write(config_dir: &Path, v1_app: SocketAddr) -> V1Only {
        let ips = loopback_ips(3);
        let (client_ip, v1_ip, v2_ip) = (ips[0], ips[1], ips[2]);
        let mesh = mesh_config(client_ip, (v1_ip, v1_app), (v2_ip, v1_app));
        write_config(config_dir, "mesh.yaml", &mesh);
        write_config(config_dir, "route.yaml", &route_all_to("v1"));
        V1Only { client_ip, v1_ip }
    }

    /// The client's sidecar and v1's.
    pub fn sidecars(&self, dir: &Path, identity: &Identity, xds: SocketAddr) -> [Running; 2] {
        let client = BTreeMap::from([("app", "client")]);
        let v1 = BTreeMap::from([("app", "reviews"), ("version", "v1")]);
        [
            sidecar(dir, "client", self.client_ip, &client, identity, xds),
            sidecar(dir, "reviews-v1", self.v1_ip, &v1, identity, xds),
        ]
    }

    /// The URL of `path` on `reviews` through the client's sidecar.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}:{PORT}{path}", self.client_ip)
    }

    /// GET `path` of `reviews` through the client's sidecar, with `headers`.
    pub async fn get(
        &self,
        http: &Http,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String), String> {
        let mut all = vec![("host", "reviews:9080")];
        all.extend_from_slice(headers);
        http.get_with(&self.url(path), &all).await
    }

    /// Waits until v1 answers through the client's sidecar, checking that
    /// every sidecar stays up meanwhile.
    pub async fn wait_for_v1(&self, http: &Http, proxies: &mut [Running], what: &str) {
        wait_for(what, async || {
            for proxy in proxies.iter_mut() {
                proxy.assert_alive("a sidecar");
            }
            match self.get(http, "/reviews/0", &[]).await {
                Ok((200, body)) if body == "v1" => Some(()),
                _ => None,
            }
        })
        .await;
    }
}
