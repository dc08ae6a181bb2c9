//! The local mesh end to end, with real processes: `meshctl local up` runs
//! Bookinfo (every service with its sidecar, mesh-control, the ingress
//! gateway), and the Bookinfo walkthrough is done against it with `meshctl
//! apply`, asserting what a user sees in the product page. Ctrl-C, during
//! start-up and after it, and `meshctl local down` leave no process behind.
//!
//! Every mesh takes its own random loopback addresses and free ports, so
//! tests run side by side.

use crate::common;
use crate::dashboard::browser;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustix::process::{Pid, Signal, kill_process};
use serde_json::Value;

use common::meshctl;

/// How long a mesh may take to start, or a change to reach the pages, on
/// a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn networking(file: &str) -> PathBuf {
    repository().join("examples/bookinfo/networking").join(file)
}

/// The Bookinfo local mesh file with its addresses moved to a random
/// 127.x.y.0/24, so that meshes of different tests do not meet.
fn bookinfo_file(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        repository().join("examples/bookinfo/platform/local/bookinfo.yaml"),
    )
    .unwrap();
    let prefix = format!("127.{}.{}.", fastrand::u8(1..=254), fastrand::u8(0..=255));
    let path = dir.join("bookinfo.yaml");
    std::fs::write(&path, text.replace("127.0.10.", &prefix)).unwrap();
    path
}

/// A `meshctl local up` of Bookinfo, stopped with Ctrl-C when dropped.
struct LocalMesh {
    child: Option<Child>,
    state_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalMesh {
    /// Starts it; returns once `meshctl` has started its first processes.
    fn start() -> LocalMesh {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let child = meshctl()
            .args(["local", "up", "-f"])
            .arg(bookinfo_file(dir.path()))
            .arg("-f")
            .arg(networking("bookinfo-gateway.yaml"))
            .arg("-f")
            .arg(networking("destination-rule-all.yaml"))
            .arg("--state-dir")
            .arg(&state_dir)
            .args(["--gateway-port", "0", "--gateway-https-port", "0"])
            .args([
                "--xds-port",
                "0",
                "--secure-port",
                "0",
                "--monitoring-port",
                "0",
                "--dashboard-port",
                "0",
            ])
            .args(["--timeout", "120s"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        LocalMesh {
            child: Some(child),
            state_dir,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `state.json`, once written.
    fn state(&self) -> Option<Value> {
        serde_json::from_slice(&std::fs::read(self.state_dir.join("state.json")).ok()?).ok()
    }

    /// Waits until every part is ready; the state then.
    fn ready(&mut self) -> Value {
        wait_until("the local mesh to be ready", || {
            self.assert_running();
            self.state().filter(|s| s["ready"] == true)
        })
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
            panic!("meshctl local up exited: {status}");
        }
    }

    /// Sends Ctrl-C's signal and waits for meshctl to stop everything.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
        kill_process(pid, Signal::INT).unwrap();
        wait_until("meshctl to stop after Ctrl-C", || child.try_wait().unwrap())
    }

    fn meshctl(&self) -> Command {
        let mut command = meshctl();
        command.env("MESHCTL_STATE_DIR", &self.state_dir);
        command
    }
}

impl Drop for LocalMesh {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = Pid::from_raw(i32::try_from(child.id()).unwrap()) {
                let _ = kill_process(pid, Signal::INT);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 50 ms until it gives a value, or panics after
/// [`PATIENCE`].
fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether any process's environment names `supervisor` as its meshctl.
fn any_process_of(supervisor: u32) -> bool {
    let wanted = format!("MESHCTL_SUPERVISOR_PID={supervisor}");
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        std::fs::read(entry.path().join("environ")).is_ok_and(|environ| {
            environ
                .split(|b| *b == 0)
                .any(|var| var == wanted.as_bytes())
        })
    })
}

fn assert_nothing_left(supervisor: u32) {
    // The children end right after the supervisor; give the kernel a moment.
    wait_until("the mesh's processes to end", || {
        (!any_process_of(supervisor)).then_some(())
    });
}

/// A page load as a browser does it.
#[derive(Clone)]
struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(gateway: &str) -> Browser {
        Browser {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://{gateway}"),
            cookie: None,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<(u16, String, hyper::HeaderMap), String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| "no answer in 30 s".to_owned())?
            .map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned(), headers))
    }

    /// Signs in as `user` through the page's form.
    async fn login(&mut self, user: &str) {
        let (status, _, headers) = self
            .send(
                Method::POST,
                "/login",
                &format!("username={user}&passwd=password"),
            )
            .await
            .unwrap();
        assert_eq!(status, 302, "a login redirects back to the page");
        let cookie = headers["set-cookie"].to_str().unwrap();
        self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
    }

    async fn product_page(&self) -> Page {
        match self.send(Method::GET, "/productpage", "").await {
            Ok((status, body, _)) => Page { status, body },
            Err(err) => Page {
                status: 0,
                body: err,
            },
        }
    }
}

/// What a user sees.
#[derive(Debug)]
struct Page {
    status: u16,
    body: String,
}

impl Page {
    /// `v1`, `v2` or `v3`: the reviews version that served the page.
    fn reviews(&self) -> Option<&str> {
        let (_, rest) = self.body.split_once("Reviews served by: <u>reviews-")?;
        rest.get(..2)
    }

    /// The stars' colour, if the page shows stars.
    fn stars(&self) -> Option<&str> {
        let (_, rest) = self.body.split_once("data-color=\"")?;
        rest.split('"').next()
    }

    fn shows(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

/// What a successful `meshctl <args>` prints.
fn meshctl_output(mesh: &LocalMesh, args: &[&str]) -> String {
    let output = mesh.meshctl().args(args).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "meshctl {args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// Applies a walkthrough file with `meshctl apply`.
fn apply(mesh: &LocalMesh, file: &Path) {
    let output = mesh
        .meshctl()
        .arg("apply")
        .arg("-f")
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "meshctl apply -f {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Loads pages until `good` holds for `streak` loads in a row (config
/// reaches every proxy within a second or so, not at once).
async fn settle(browser: &Browser, what: &str, streak: usize, good: impl Fn(&Page) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    let mut in_a_row = 0;
    let mut last = None;
    while in_a_row < streak {
        let page = browser.product_page().await;
        if good(&page) {
            in_a_row += 1;
        } else {
            in_a_row = 0;
            last = Some(page);
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; last page: {last:?}"
        );
    }
}

/// Whether a plain-text request straight to a sidecar's inbound port is
/// answered at all.
async fn plain_text_answered(address: &str) -> bool {
    let browser = Browser::new(address);
    browser.send(Method::GET, "/reviews/0", "").await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bookinfo_walkthrough_on_the_local_mesh() {
    let mut mesh = LocalMesh::start();
    let state = mesh.ready();
    let gateway = state["gateway"].as_str().unwrap().to_owned();
    let anonymous = Browser::new(&gateway);
    let page = anonymous.product_page().await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.shows("<h2>Book Details</h2>"), "{page:?}");
    assert!(page.shows("<h2>Book Reviews</h2>"), "{page:?}");

    // The mesh's own commands work against it.
    let status = meshctl_output(&mesh, &["proxy-status"]);
    for proxy in [
        "productpage-v1.default",
        "reviews-v3.default",
        "istio-ingressgateway.istio-system",
    ] {
        assert!(status.contains(proxy), "{status}");
    }

    // Request routing: everything to v1, then jason to v2.
    apply(&mesh, &networking("virtual-service-all-v1.yaml"));
    let listed = meshctl_output(&mesh, &["get", "virtualservices"]);
    for name in ["bookinfo", "productpage", "reviews", "ratings", "details"] {
        assert!(listed.contains(name), "{listed}");
    }
    let clusters = meshctl_output(
        &mesh,
        &[
            "proxy-config",
            "cluster",
            "istio-ingressgateway.istio-system",
        ],
    );
    assert!(
        clusters.contains("productpage.default.svc.cluster.local"),
        "{clusters}"
    );
    settle(&anonymous, "only reviews v1", 10, |p| {
        p.reviews() == Some("v1")
    })
    .await;
    for _ in 0..10 {
        let page = anonymous.product_page().await;
        assert_eq!(page.reviews(), Some("v1"), "{page:?}");
        assert_eq!(page.stars(), None, "v1 shows no stars");
    }
    apply(&mesh, &networking("virtual-service-reviews-test-v2.yaml"));
    let mut jason = Browser::new(&gateway);
    jason.login("jason").await;
    settle(&jason, "jason on reviews v2", 5, |p| {
        p.reviews() == Some("v2")
    })
    .await;
    let page = jason.product_page().await;
    assert_eq!(page.stars(), Some("black"), "{page:?}");
    assert!(page.shows("jason"), "the page greets the user");
    let page = anonymous.product_page().await;
    assert_eq!(
        (page.reviews(), page.stars()),
        (Some("v1"), None),
        "{page:?}"
    );

    // Fault injection: a 7 s delay for jason outlasts productpage's
    // patience for reviews (3 s, tried twice).
    apply(
        &mesh,
        &networking("virtual-service-ratings-test-delay.yaml"),
    );
    settle(&jason, "the delay to break jason's reviews", 1, |p| {
        p.shows("Error fetching product reviews")
    })
    .await;
    let page = anonymous.product_page().await;
    assert_eq!(
        page.reviews(),
        Some("v1"),
        "others are not delayed: {page:?}"
    );
    // An abort for jason: ratings answer 500.
    apply(
        &mesh,
        &networking("virtual-service-ratings-test-abort.yaml"),
    );
    settle(&jason, "the abort to reach jason's ratings", 2, |p| {
        p.shows("Ratings service is currently unavailable")
    })
    .await;

    // Traffic shifting: 50/50 between v1 and v3, then all to v3.
    apply(&mesh, &networking("virtual-service-all-v1.yaml"));
    settle(&jason, "jason back on v1", 5, |p| p.reviews() == Some("v1")).await;
    apply(&mesh, &networking("virtual-service-reviews-50-v3.yaml"));
    settle(&anonymous, "the first page from v3", 1, |p| {
        p.reviews() == Some("v3")
    })
    .await;
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..200 {
        let page = anonymous.product_page().await;
        *served
            .entry(page.reviews().unwrap_or("none").to_owned())
            .or_default() += 1;
    }
    let v3 = served.get("v3").copied().unwrap_or(0);
    assert!(
        (80..=120).contains(&v3),
        "50 % ± 10 % on v3 over 200 loads: {served:?}"
    );
    assert_eq!(
        served.get("v1").copied().unwrap_or(0) + v3,
        200,
        "{served:?}"
    );
    apply(&mesh, &networking("virtual-service-reviews-v3.yaml"));
    settle(&anonymous, "only reviews v3", 10, |p| {
        p.reviews() == Some("v3")
    })
    .await;
    let page = anonymous.product_page().await;
    assert_eq!(page.stars(), Some("red"), "{page:?}");

    // Observing: one page load is one trace through the five services, and
    // the dashboard draws the calls.
    observe_traces(&mesh, &anonymous).await;
    observe_dashboard(&state, &anonymous, &mesh._dir.path().join("chromium")).await;

    // Circuit breaking: one connection to productpage, one waiting.
    apply(
        &mesh,
        &networking("destination-rule-productpage-circuit-breaker.yaml"),
    );
    let tripped = wait_until_async("the circuit breaker to trip", async || {
        let loads = (0..40).map(|_| {
            let browser = anonymous.clone();
            tokio::spawn(async move { browser.product_page().await.status })
        });
        let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
        for load in loads.collect::<Vec<_>>() {
            *codes.entry(load.await.unwrap()).or_default() += 1;
        }
        (codes.get(&503).copied().unwrap_or(0) > 0 && codes.get(&200).copied().unwrap_or(0) > 0)
            .then_some(codes)
    })
    .await;
    println!("40 concurrent page loads through the circuit breaker: {tripped:?}");
    apply(&mesh, &networking("destination-rule-all.yaml"));

    // Mutual TLS: under a mesh-wide STRICT policy a plain-text client is
    // refused by the sidecars, while the pages keep working.
    let reviews = workload_address(&state, "reviews-v3");
    assert!(plain_text_answered(&reviews).await, "PERMISSIVE by default");
    apply_yaml(&mesh, "strict.yaml", MESH_STRICT);
    wait_until_async("plain text to be refused", async || {
        (!plain_text_answered(&reviews).await).then_some(())
    })
    .await;
    settle(&anonymous, "pages under STRICT", 10, |p| {
        p.status == 200 && p.reviews() == Some("v3") && p.stars() == Some("red")
    })
    .await;

    // Authorization: allow nothing, then each call Bookinfo makes.
    apply(
        &mesh,
        &networking("authorization-policy-allow-nothing.yaml"),
    );
    settle(&anonymous, "every request refused", 3, |p| {
        p.status == 403 && p.shows("RBAC: access denied")
    })
    .await;
    apply(
        &mesh,
        &networking("authorization-policy-bookinfo-viewers.yaml"),
    );
    settle(&anonymous, "the viewers let the page through", 10, |p| {
        p.status == 200 && p.stars() == Some("red") && p.shows("<h2>Book Details</h2>")
    })
    .await;

    // Ctrl-C stops everything.
    let supervisor = mesh.pid();
    let status = mesh.interrupt();
    assert!(status.success(), "{status}");
    assert_nothing_left(supervisor);
}

/// Loads pages until `meshctl traces` prints one trace that spans the
/// gateway and the four services.
async fn observe_traces(mesh: &LocalMesh, browser: &Browser) {
    let services = [
        "istio-ingressgateway.istio-system",
        "productpage.default",
        "details.default",
        "reviews.default",
        "ratings.default",
    ];
    let trace = wait_until_async("a trace through every service", async || {
        browser.product_page().await;
        // The newest trace may still miss spans that have not been
        // exported yet (proxies send them in batches): look at a few.
        let output = mesh
            .meshctl()
            .args(["traces", "--limit", "5"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.split("trace ")
            .find(|trace| services.iter().all(|s| trace.contains(s)))
            .map(str::to_owned)
    })
    .await;
    println!("{trace}");
}

/// Waits for the dashboard's graph to hold the calls of a product page
/// served by reviews v3, then looks at the page in headless Chromium and
/// keeps a screenshot.
async fn observe_dashboard(state: &Value, pages: &Browser, profile: &Path) {
    let dashboard = state["dashboard"]
        .as_str()
        .expect("the dashboard's address")
        .to_owned();
    let calls = [
        (
            "istio-system/istio-ingressgateway",
            "default/productpage-v1",
        ),
        ("default/productpage-v1", "default/details-v1"),
        ("default/productpage-v1", "default/reviews-v3"),
        ("default/reviews-v3", "default/ratings-v1"),
    ];
    let browser = Browser::new(&dashboard);
    let graph = wait_until_async("the dashboard's edges", async || {
        // Rates are measured between scrapes: keep traffic flowing.
        for _ in 0..5 {
            pages.product_page().await;
        }
        let (_, body, _) = browser.send(Method::GET, "/api/graph", "").await.ok()?;
        let graph: Value = serde_json::from_str(&body).ok()?;
        let edges = graph["edges"].as_array()?;
        calls
            .iter()
            .all(|(from, to)| {
                edges
                    .iter()
                    .any(|e| e["source"] == *from && e["destination"] == *to)
            })
            .then_some(graph)
    })
    .await;
    let mtls = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["source"] == "default/productpage-v1" && e["destination"] == "default/reviews-v3"
        })
        .unwrap();
    assert_eq!(mtls["mtls"], true, "sidecars talk mTLS: {mtls}");

    let url = format!("http://{dashboard}/");
    let dom = tokio::task::block_in_place(|| browser::dump_dom(&url, profile));
    for app in ["productpage", "details", "reviews", "ratings"] {
        assert!(
            dom.contains(&format!("data-app=\"{app}\"")),
            "{app} is drawn: {dom}"
        );
    }
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("local-mesh-dashboard.png");
    tokio::task::block_in_place(|| browser::screenshot(&url, profile, &screenshot, (1400, 900)));
    println!("the dashboard of the local mesh: {}", screenshot.display());
}

/// [`wait_until`] for async checks.
async fn wait_until_async<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn ctrl_c_during_start_up_leaves_no_process() {
    let mut mesh = LocalMesh::start();
    // Some of the mesh runs, not all of it.
    wait_until("the first processes", || {
        mesh.assert_running();
        mesh.state()
            .filter(|s| s["processes"].as_array().is_some_and(|p| p.len() >= 3))
    });
    let supervisor = mesh.pid();
    let status = mesh.interrupt();
    assert_eq!(status.code(), Some(130), "interrupted while starting");
    assert_nothing_left(supervisor);
}

#[test]
fn local_down_stops_a_running_mesh_and_removes_its_directory() {
    let mut mesh = LocalMesh::start();
    mesh.ready();
    let supervisor = mesh.pid();
    let output = mesh.meshctl().args(["local", "status"]).output().unwrap();
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{status}");
    assert!(status.contains("up."), "{status}");
    assert!(status.contains("reviews-v2-sidecar"), "{status}");

    let output = mesh.meshctl().args(["local", "down"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exit = wait_until("meshctl local up to end", || {
        mesh.child.as_mut().unwrap().try_wait().unwrap()
    });
    assert!(exit.success(), "{exit}");
    mesh.child = None;
    assert_nothing_left(supervisor);
    assert!(!mesh.state_dir.exists(), "local down removes the directory");
}

/// Mutual TLS required everywhere, by a policy in the root namespace.
const MESH_STRICT: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: mesh-system}
spec: {mtls: {mode: STRICT}}
";

/// Writes `yaml` to a file in the mesh's test directory and applies it.
fn apply_yaml(mesh: &LocalMesh, name: &str, yaml: &str) -> PathBuf {
    let path = mesh._dir.path().join(name);
    std::fs::write(&path, yaml).unwrap();
    apply(mesh, &path);
    path
}

/// The address of a workload's sidecar, from the mesh's state.
fn workload_address(state: &Value, workload: &str) -> String {
    let address = state["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == workload)
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("{address}:9080")
}

/// Istio's precedence: a workload's port-level mode over its namespace's
/// policy over the mesh-wide one, with the pages working throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_authentication_follows_istios_precedence() {
    let mut mesh = LocalMesh::start();
    let state = mesh.ready();
    let pages = Browser::new(state["gateway"].as_str().unwrap());
    let ratings = workload_address(&state, "ratings-v1");
    let reviews = workload_address(&state, "reviews-v2");
    apply_yaml(&mesh, "strict.yaml", MESH_STRICT);
    wait_until_async("mesh-wide STRICT to refuse plain text", async || {
        let plain = plain_text_answered(&ratings).await || plain_text_answered(&reviews).await;
        (!plain).then_some(())
    })
    .await;
    apply_yaml(
        &mesh,
        "reviews.yaml",
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  portLevelMtls:
    9080: {mode: DISABLE}
",
    );
    let namespace = apply_yaml(
        &mesh,
        "namespace.yaml",
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: PERMISSIVE}}
",
    );
    // Namespace PERMISSIVE over mesh STRICT: ratings takes plain text too.
    // Workload port DISABLE: reviews takes plain text only, and its
    // callers stop offering mTLS, or the pages would fail.
    wait_until_async("the namespace's and the workload's policies", async || {
        let plain = plain_text_answered(&ratings).await && plain_text_answered(&reviews).await;
        plain.then_some(())
    })
    .await;
    settle(&pages, "pages under the three policies", 10, |p| {
        p.status == 200 && p.shows("<h2>Book Reviews</h2>")
    })
    .await;

    // Without the namespace's policy, the mesh's STRICT applies to ratings,
    // while reviews' port stays plain text.
    let output = mesh
        .meshctl()
        .arg("delete")
        .arg("-f")
        .arg(&namespace)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    wait_until_async("ratings to refuse plain text", async || {
        (!plain_text_answered(&ratings).await).then_some(())
    })
    .await;
    assert!(
        plain_text_answered(&reviews).await,
        "reviews' port is DISABLE"
    );
    settle(&pages, "pages with ratings STRICT", 10, |p| {
        p.status == 200
            && p.shows("<h2>Book Reviews</h2>")
            && !p.shows("Ratings service is currently unavailable")
    })
    .await;
}

/// Even a meshctl killed outright leaves nothing behind: each process it
/// started ends with it, and `local down` then finds nothing to stop.
#[test]
fn a_killed_meshctl_leaves_no_process() {
    let mut mesh = LocalMesh::start();
    mesh.ready();
    let supervisor = mesh.pid();
    let mut child = mesh.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_nothing_left(supervisor);
    let output = mesh.meshctl().args(["local", "down"]).output().unwrap();
    assert!(output.status.success());
    assert!(!mesh.state_dir.exists(), "local down removes the directory");
}
