//! The local mesh end to end, with real processes on loopback: mesh-control
//! serving a config directory, a client sidecar and one sidecar in front of
//! each of two versions of `reviews`, every proxy bound to its own random
//! loopback address by a Sidecar resource with capture mode NONE (the
//! proxies announce `INTERCEPTION_MODE: NONE`). A VirtualService moves live
//! traffic without a failed request, and the proxies outlive the control
//! plane and resync with it when it comes back. With mesh-control as the
//! CA, the sidecars get their certificates with bootstrap tokens, talk
//! mTLS, and under a STRICT PeerAuthentication refuse plain text. A CUSTOM
//! AuthorizationPolicy has `reviews`' sidecar ask an external authorizer
//! (a MeshConfig `envoyExtAuthzHttp` provider) about some paths, and an
//! AUDIT policy changes no decision.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
const PATIENCE: Duration = Duration::from_secs(30);
const PORT: u16 = 9080;

/// Kills the process when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn assert_alive(&mut self, what: &str) {
        assert!(self.0.try_wait().unwrap().is_none(), "{what} exited");
    }
}

/// The directory cargo puts this profile's binaries in.
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash>
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// mesh-proxy, built once per test binary: cargo builds a dependency's
/// binaries only for a workspace build, and a test must not depend on how
/// it was started. A no-op when it is already up to date.
fn mesh_proxy() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = binaries_dir();
            let mut build = Command::new(env!("CARGO"));
            build.args(["build", "-p", "mesh-proxy", "--bin", "mesh-proxy"]);
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
fn loopback_ips(count: usize) -> Vec<Ipv4Addr> {
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
async fn app(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_: http::Request<Incoming>| async move {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(name))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    address
}

async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct ControlPlane {
    /// Killed when dropped.
    _process: Running,
    xds: SocketAddr,
    monitoring: SocketAddr,
    /// The CA's port, when started with one.
    secure: Option<SocketAddr>,
}

impl ControlPlane {
    /// Starts mesh-control on the given ports (0 for ephemeral ones).
    async fn start(dir: &Path, xds: u16, monitoring: u16) -> ControlPlane {
        Self::start_with(dir, xds, monitoring, &[]).await
    }

    async fn start_with(dir: &Path, xds: u16, monitoring: u16, args: &[&str]) -> ControlPlane {
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

    async fn syncz(&self, client: &Http) -> Vec<Value> {
        let url = format!("http://{}/debug/syncz", self.monitoring);
        match client.get(&url, None).await {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A workload's certificate and the mesh trust bundle, which the agent
/// would fetch: inbound mTLS chains and mesh clusters refer to them.
struct Ca(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl Ca {
    fn new() -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        Ca(rcgen::CertifiedIssuer::self_signed(params, key).unwrap())
    }

    fn secrets(&self, service_account: &str) -> Value {
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
enum Identity<'a> {
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
fn sidecar(
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
fn mesh_config(client: Ipv4Addr, v1: (Ipv4Addr, SocketAddr), v2: (Ipv4Addr, SocketAddr)) -> String {
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
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: client, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: client}}}}
  egress:
  - port: {{number: {PORT}, protocol: HTTP, name: http}}
    bind: {client}
    captureMode: NONE
    hosts: [./reviews.default.svc.cluster.local]
"
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

fn route_all_to(version: &str) -> String {
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

/// Replaces a file in the watched directory in one step.
fn write_config(dir: &Path, name: &str, text: &str) {
    let temporary = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, dir.join(name)).unwrap();
}

/// A keep-alive HTTP client, as an application would hold one.
#[derive(Clone)]
struct Http(Client<HttpConnector, Empty<Bytes>>);

impl Http {
    fn new() -> Http {
        Http(Client::builder(TokioExecutor::new()).build_http())
    }

    /// GET `url`, optionally with a Host header: status and body.
    async fn get(&self, url: &str, host: Option<&str>) -> Result<(u16, String), String> {
        let host = host.map(|h| ("host", h));
        self.get_with(url, host.as_slice()).await
    }

    /// GET `url` with these headers: status and body.
    async fn get_with(&self, url: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
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

/// Requests to `reviews` through the client sidecar, in a loop, counting
/// answers by version and failures.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicU64>,
    /// Every answer's body, with when it arrived.
    answers: Arc<Mutex<Vec<(Instant, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(client: Http, url: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicU64::new(0));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (stop, failures, sent, answers) = (
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&sent),
                Arc::clone(&answers),
            );
            async move {
                while !stop.load(Ordering::Relaxed) {
                    sent.fetch_add(1, Ordering::Relaxed);
                    match client.get(&url, Some("reviews:9080")).await {
                        Ok((200, body)) => answers.lock().unwrap().push((Instant::now(), body)),
                        other => failures.lock().unwrap().push(format!("{other:?}")),
                    }
                }
            }
        });
        Load {
            stop,
            failures,
            sent,
            answers,
            task,
        }
    }

    fn answered(&self) -> bool {
        !self.answers.lock().unwrap().is_empty()
    }

    /// When the answers turned to all `version`: the time of the first of
    /// a final run of at least `RUN` answers from it, none from another.
    fn turned_to(&self, version: &str) -> Option<Instant> {
        const RUN: usize = 50;
        let answers = self.answers.lock().unwrap();
        let run = answers
            .iter()
            .rev()
            .take_while(|(_, body)| body == version)
            .count();
        (run >= RUN).then(|| answers[answers.len() - run].0)
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

/// Waits until every request of the load answers from `version`, and says
/// how long after `since` that began.
/// Routes everything to `version` by rewriting the watched config while a
/// load runs; returns how long live traffic took to move (reported, not
/// asserted: the benchmark measures speed) after checking that no request
/// failed meanwhile.
async fn shift_live(http: &Http, url: &str, config_dir: &Path, version: &str) -> Duration {
    let load = Load::start(http.clone(), url.to_owned());
    wait_for("load flowing", async || load.answered().then_some(())).await;
    let change = Instant::now();
    write_config(config_dir, "routing.yaml", &route_all_to(version));
    let took = moved_to(&load, version, change).await;
    finish_without_failures(load).await;
    took
}

async fn finish_without_failures(load: Load) {
    let (sent, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
}

async fn moved_to(load: &Load, version: &str, since: Instant) -> Duration {
    wait_for(&format!("traffic on {version}"), async || {
        load.turned_to(version)
            .map(|at| at.saturating_duration_since(since))
    })
    .await
}

/// Whether syncz lists every one of `proxies` with clusters and listeners
/// sent, and every type it subscribed to acknowledged at the version last
/// sent (a proxy without outbound HTTP listeners asks for no routes).
fn all_synced(statuses: &[Value], proxies: &[String]) -> bool {
    proxies.iter().all(|id| {
        statuses
            .iter()
            .any(|status| status["proxy"] == id.as_str() && synced(status))
    })
}

fn synced(status: &Value) -> bool {
    let Some(types) = status["resources"].as_object() else {
        return false;
    };
    ["cluster", "listener"]
        .iter()
        .all(|kind| status[format!("{kind}_sent")].is_string())
        && types
            .values()
            .all(|t| t["sent"].is_string() && t["sent"] == t["acked"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_route_live_and_outlive_the_control_plane() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let ips = loopback_ips(3);
    let (client_ip, v1_ip, v2_ip) = (ips[0], ips[1], ips[2]);
    let v1_app = app("v1").await;
    let v2_app = app("v2").await;
    write_config(
        &config_dir,
        "mesh.yaml",
        &mesh_config(client_ip, (v1_ip, v1_app), (v2_ip, v2_app)),
    );
    let plane = ControlPlane::start(dir.path(), 0, 0).await;
    let ca = Ca::new();
    let workloads = [
        ("client", client_ip, BTreeMap::from([("app", "client")])),
        (
            "reviews-v1",
            v1_ip,
            BTreeMap::from([("app", "reviews"), ("version", "v1")]),
        ),
        (
            "reviews-v2",
            v2_ip,
            BTreeMap::from([("app", "reviews"), ("version", "v2")]),
        ),
    ];
    let mut proxies: Vec<Running> = workloads
        .iter()
        .map(|(name, ip, labels)| {
            sidecar(
                dir.path(),
                name,
                *ip,
                labels,
                &Identity::Static(&ca),
                plane.xds,
            )
        })
        .collect();
    let proxy_ids: Vec<String> = workloads
        .iter()
        .map(|(name, ip, _)| format!("sidecar~{ip}~{name}.default~default.svc.cluster.local"))
        .collect();
    let http = Http::new();
    let url = format!("http://{client_ip}:{PORT}/reviews/0");

    // (1) Both versions answer through the client's egress listener.
    let mut seen = BTreeSet::new();
    wait_for("both versions through the client sidecar", async || {
        for (proxy, (name, ..)) in proxies.iter_mut().zip(&workloads) {
            proxy.assert_alive(name);
        }
        if let Ok((200, body)) = http.get(&url, Some("reviews:9080")).await {
            seen.insert(body);
        }
        (seen.len() == 2).then_some(())
    })
    .await;
    println!("both versions answer after {:?}", started.elapsed());

    // (2) All to v2, live, with no failed request.
    let took = shift_live(&http, &url, &config_dir, "v2").await;
    println!("all-v2 reached live traffic in {took:?}");
    // Stays on v2: a window of requests after the switch sees only v2.
    for _ in 0..20 {
        assert_eq!(
            http.get(&url, Some("reviews:9080")).await,
            Ok((200, "v2".into()))
        );
    }

    // (3) Without the control plane, traffic keeps flowing.
    let (xds, monitoring) = (plane.xds, plane.monitoring);
    drop(plane);
    let load = Load::start(http.clone(), url.clone());
    wait_for("load flowing without mesh-control", async || {
        (load.sent.load(Ordering::Relaxed) > 50).then_some(())
    })
    .await;
    finish_without_failures(load).await;

    // Back on the same ports: every proxy resyncs, and changes apply again.
    let restart = Instant::now();
    let plane = ControlPlane::start(dir.path(), xds.port(), monitoring.port()).await;
    assert_eq!((plane.xds, plane.monitoring), (xds, monitoring));
    wait_for("every proxy acked after the restart", async || {
        all_synced(&plane.syncz(&http).await, &proxy_ids).then_some(())
    })
    .await;
    println!(
        "all three proxies resynced {:?} after the restart",
        restart.elapsed()
    );
    let took = shift_live(&http, &url, &config_dir, "v1").await;
    println!("all-v1 after the restart reached live traffic in {took:?}");
    for proxy in &mut proxies {
        proxy.assert_alive("a sidecar");
    }
    println!("the whole test took {:?}", started.elapsed());
}

/// Writes each workload's bootstrap token, from `mesh-control token`.
fn write_tokens(ca_dir: &Path, tokens: &Path, names: &[&str]) {
    std::fs::create_dir_all(tokens).unwrap();
    for name in names {
        let output = Command::new(env!("CARGO_BIN_EXE_mesh-control"))
            .args(["token", "--namespace", "default", "--service-account", name])
            .arg("--ca-dir")
            .arg(ca_dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::fs::write(tokens.join(name), output.stdout).unwrap();
    }
}

/// Whether a plain-text request straight to a sidecar's inbound listener
/// is answered at all.
async fn plain_text_answered(http: &Http, ip: Ipv4Addr) -> bool {
    http.get(
        &format!("http://{ip}:{PORT}/reviews/0"),
        Some("reviews:9080"),
    )
    .await
    .is_ok()
}

/// A mesh where `reviews` is routed to v1 alone, which fronts `v1_app`
/// (v2's address has no sidecar), in a config directory under `dir`.
struct V1Only {
    config_dir: PathBuf,
    client_ip: Ipv4Addr,
    v1_ip: Ipv4Addr,
}

impl V1Only {
    fn write(dir: &Path, v1_app: SocketAddr) -> V1Only {
        let config_dir = dir.join("config");
        std::fs::create_dir(&config_dir).unwrap();
        let ips = loopback_ips(3);
        let (client_ip, v1_ip, v2_ip) = (ips[0], ips[1], ips[2]);
        write_config(
            &config_dir,
            "mesh.yaml",
            &mesh_config(client_ip, (v1_ip, v1_app), (v2_ip, v1_app)),
        );
        write_config(&config_dir, "route.yaml", &route_all_to("v1"));
        V1Only {
            config_dir,
            client_ip,
            v1_ip,
        }
    }

    /// The client's sidecar and v1's.
    fn sidecars(&self, dir: &Path, identity: &Identity, xds: SocketAddr) -> [Running; 2] {
        [
            sidecar(
                dir,
                "client",
                self.client_ip,
                &BTreeMap::from([("app", "client")]),
                identity,
                xds,
            ),
            sidecar(
                dir,
                "reviews-v1",
                self.v1_ip,
                &BTreeMap::from([("app", "reviews"), ("version", "v1")]),
                identity,
                xds,
            ),
        ]
    }

    /// The URL of `path` on `reviews` through the client's sidecar.
    fn url(&self, path: &str) -> String {
        format!("http://{}:{PORT}{path}", self.client_ip)
    }

    /// Waits until v1 answers through the client's sidecar, checking that
    /// every sidecar stays up meanwhile.
    async fn wait_for_v1(&self, http: &Http, proxies: &mut [Running], what: &str) {
        let url = self.url("/reviews/0");
        wait_for(what, async || {
            for proxy in proxies.iter_mut() {
                proxy.assert_alive("a sidecar");
            }
            match http.get(&url, Some("reviews:9080")).await {
                Ok((200, body)) if body == "v1" => Some(()),
                _ => None,
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_the_mesh_ca_carry_strict_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = V1Only::write(dir.path(), app("v1").await);
    let (config_dir, v1_ip) = (&mesh.config_dir, mesh.v1_ip);
    let ca_dir = dir.path().join("ca");
    let tokens = dir.path().join("tokens");
    write_tokens(&ca_dir, &tokens, &["client", "reviews-v1"]);
    let plane = ControlPlane::start_with(
        dir.path(),
        0,
        0,
        &["--secure-port", "0", "--ca-dir", ca_dir.to_str().unwrap()],
    )
    .await;
    let identity = Identity::Ca {
        address: plane.secure.expect("the secure port"),
        root: &ca_dir.join("root-cert.pem"),
        tokens: &tokens,
        // Short, so that certificates rotate several times during the test.
        ttl: "4s",
    };
    let mut proxies = mesh.sidecars(dir.path(), &identity, plane.xds);
    let http = Http::new();
    let url = mesh.url("/reviews/0");
    mesh.wait_for_v1(
        &http,
        &mut proxies,
        "v1 through the client sidecar, over mTLS",
    )
    .await;
    assert!(
        plain_text_answered(&http, v1_ip).await,
        "PERMISSIVE by default: plain text is served too"
    );

    // Mesh-wide STRICT: the sidecars keep talking; plain text is refused.
    write_config(
        config_dir,
        "strict.yaml",
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: mesh-system}
spec: {mtls: {mode: STRICT}}
",
    );
    wait_for("plain text refused under STRICT", async || {
        (!plain_text_answered(&http, v1_ip).await).then_some(())
    })
    .await;
    for _ in 0..20 {
        assert_eq!(
            http.get(&url, Some("reviews:9080")).await,
            Ok((200, "v1".into())),
            "mesh traffic flows under STRICT"
        );
    }

    // Certificates rotate under load without a failed request.
    let load = Load::start(http.clone(), url.clone());
    let admin = std::fs::read_to_string(dir.path().join("reviews-v1.admin")).unwrap();
    let mut serials = BTreeSet::new();
    wait_for("three certificates of reviews-v1 under load", async || {
        let certs = http
            .get(&format!("http://{}/certs", admin.trim()), None)
            .await;
        if let Ok((200, body)) = certs {
            let json: Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(serial) = json["certificates"][0]["cert_chain"][0]["serial_number"].as_str()
            {
                serials.insert(serial.to_owned());
            }
        }
        (serials.len() >= 3).then_some(())
    })
    .await;
    assert!(load.sent.load(Ordering::Relaxed) > 0);
    finish_without_failures(load).await;
}

/// What the authorizer answers a denied request with.
const AUTHORIZER_DENIES: &str = "denied by the authorizer";

/// An HTTP authorizer: 200 for requests with `x-allow: yes`, else 403;
/// counts what it is asked.
async fn authorizer(asked: Arc<AtomicU64>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<Incoming>| {
                    asked.fetch_add(1, Ordering::Relaxed);
                    let allowed = request.headers().get("x-allow").is_some_and(|v| v == "yes");
                    let response = if allowed {
                        http::Response::new(Full::new(Bytes::new()))
                    } else {
                        let mut denied =
                            http::Response::new(Full::new(Bytes::from(AUTHORIZER_DENIES)));
                        *denied.status_mut() = http::StatusCode::FORBIDDEN;
                        denied
                    };
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

/// The authorizer as a service of the registry, and the policies: CUSTOM
/// on `/admin/*` of `reviews`, AUDIT on everything.
fn authorization_config(authorizer: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ext-authz, namespace: default}}
spec:
  hosts: [ext-authz.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8000, name: http, protocol: HTTP}}]
  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: admin, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: CUSTOM
  provider: {{name: ext-authz}}
  rules:
  - to: [{{operation: {{paths: ['/admin/*']}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: audit-everything, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: AUDIT
  rules:
  - {{}}
",
        ip = authorizer.ip(),
        port = authorizer.port()
    )
}

const EXT_AUTHZ_MESH: &str = "extensionProviders:
- name: ext-authz
  envoyExtAuthzHttp:
    service: ext-authz.default.svc.cluster.local
    port: 8000
    timeout: 5s
    includeRequestHeadersInCheck: [x-allow]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_policy_asks_the_external_authorizer() {
    let dir = tempfile::tempdir().unwrap();
    let mesh = V1Only::write(dir.path(), app("v1").await);
    let asked = Arc::new(AtomicU64::new(0));
    let authorizer = authorizer(Arc::clone(&asked)).await;
    let authorization = authorization_config(authorizer);
    write_config(&mesh.config_dir, "authz.yaml", &authorization);
    let mesh_file = dir.path().join("meshconfig.yaml");
    std::fs::write(&mesh_file, EXT_AUTHZ_MESH).unwrap();
    let flags = ["--mesh-config", mesh_file.to_str().unwrap()];
    let plane = ControlPlane::start_with(dir.path(), 0, 0, &flags).await;
    let ca = Ca::new();
    let mut proxies = mesh.sidecars(dir.path(), &Identity::Static(&ca), plane.xds);
    let http = Http::new();
    mesh.wait_for_v1(&http, &mut proxies, "v1 through the client sidecar")
        .await;
    assert_eq!(
        asked.load(Ordering::Relaxed),
        0,
        "paths outside the CUSTOM policy are not put to the authorizer"
    );

    let admin = mesh.url("/admin/users");
    let host = ("host", "reviews:9080");
    assert_eq!(
        http.get_with(&admin, &[host]).await,
        Ok((403, AUTHORIZER_DENIES.into()))
    );
    assert_eq!(
        http.get_with(&admin, &[host, ("x-allow", "yes")]).await,
        Ok((200, "v1".into()))
    );
    assert_eq!(asked.load(Ordering::Relaxed), 2);
    // The AUDIT policy matches every request and refuses none.
    for _ in 0..5 {
        assert_eq!(
            http.get(&mesh.url("/reviews/0"), Some("reviews:9080"))
                .await,
            Ok((200, "v1".into()))
        );
    }
    for proxy in &mut proxies {
        proxy.assert_alive("a sidecar");
    }
}
