//! `meshctl dashboard` as a user runs it: a real process serving the page,
//! fake Bookinfo proxies whose counters grow between scrapes, mesh-control's
//! monitoring server with applied and invalid config, and headless Chromium
//! reading the page.

pub mod browser;
mod fake_proxies;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use fake_proxies::{CALLS, GATEWAY, PRODUCTPAGE, RATINGS, REVIEWS_V2, REVIEWS_V3, WORKLOADS};

/// How long anything that should happen may take (scrapes every 2 s, config
/// reads every 3 s, on a machine busy with builds).
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` until it gives a value, failing past [`PATIENCE`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GETs `path` and parses the body as JSON.
fn get_json(address: SocketAddr, path: &str) -> Value {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/json"), "{head}");
    serde_json::from_str(body).unwrap()
}

/// The control plane's monitoring server with Bookinfo's config applied
/// through its API, and a config directory holding a broken route for
/// reviews, which it leaves out and reports.
fn start_control_plane(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) -> mesh_control::app::Running {
    use mesh_control::store::{ConfigSource, DirectorySource, MemoryStore};

    let testdata = testdata();
    let config_dir = dir.join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let routes = std::fs::read_to_string(testdata.join("virtual-service-reviews-v3.yaml")).unwrap();
    std::fs::write(
        config_dir.join("reviews-canary.yaml"),
        routes.replace("subset: v3", "subset: v3\n      weight: -5"),
    )
    .unwrap();

    let store = Arc::new(MemoryStore::new());
    for file in [
        "bookinfo-gateway.yaml",
        "destination-rule-all-mtls.yaml",
        "virtual-service-all-v1.yaml",
    ] {
        let text = std::fs::read_to_string(testdata.join(file)).unwrap();
        store.apply_yaml(file, &text).unwrap();
    }
    runtime.block_on(async {
        let directory = DirectorySource::start(&config_dir).unwrap();
        let sources: Vec<Arc<dyn ConfigSource>> = vec![Arc::new(directory), store.clone()];
        let inputs = mesh_control::snapshot::Inputs {
            mesh: mesh_control::model::MeshConfig::default(),
            sources: sources.clone(),
            registries: Vec::new(),
            jwks: None,
        };
        let (_, snapshots) = tokio::sync::watch::channel(Arc::new(inputs.build(1)));
        let api = move |request| {
            let store = Arc::clone(&store);
            async move { mesh_control::api::handle(&store, request).await }
        };
        let options = mesh_control::app::Options {
            address: "127.0.0.1".parse().unwrap(),
            xds_port: 0,
            monitoring_port: 0,
            api: Some(Arc::new(api)),
            config_sources: sources,
            ..mesh_control::app::Options::default()
        };
        mesh_control::app::start(options, snapshots, Arc::new(mesh_control::xds::Translate))
            .await
            .expect("the control plane starts")
    })
}

fn testdata() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/istio-bookinfo");
    assert!(dir.is_dir(), "test data not found at {}", dir.display());
    dir
}

/// The dashboard process; killed if the test fails before stopping it.
struct Dashboard {
    child: Child,
    address: SocketAddr,
}

impl Dashboard {
    fn start(dir: &Path, targets: &Path, control_plane: SocketAddr) -> Dashboard {
        let address_file = dir.join("dashboard.address");
        let child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(["dashboard", "--port", "0", "--address-file"])
            .arg(&address_file)
            .arg("--targets")
            .arg(targets)
            .arg("--control-plane")
            .arg(format!("http://{control_plane}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("meshctl starts");
        let mut dashboard = Dashboard {
            child,
            address: "0.0.0.0:0".parse().unwrap(),
        };
        dashboard.address = wait_for("the dashboard's address file", || {
            if let Some(status) = dashboard.child.try_wait().unwrap() {
                panic!("meshctl dashboard exited early: {status}");
            }
            std::fs::read_to_string(&address_file).ok()?.parse().ok()
        });
        dashboard
    }

    fn url(&self) -> String {
        format!("http://{}/", self.address)
    }

    /// Stops it as a user would, with SIGTERM, and checks it exits cleanly.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let status = wait_for("the dashboard to exit", || self.child.try_wait().unwrap());
        assert!(status.success(), "meshctl dashboard exited with {status}");
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn edge<'a>(graph: &'a Value, source: &str, destination: &str) -> Option<&'a Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["source"] == source && e["destination"] == destination)
}

/// Every opening tag in `dom` that has all of `attributes` (`name="value"`).
fn tags_with<'a>(dom: &'a str, attributes: &[String]) -> Vec<&'a str> {
    dom.split('<')
        .filter_map(|tag| tag.split('>').next())
        .filter(|tag| attributes.iter().all(|a| tag.contains(a.as_str())))
        .collect()
}

#[test]
fn dashboard_shows_bookinfo_traffic_and_config_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let control_plane = start_control_plane(&runtime, dir.path());
    let targets = dir.path().join("targets.json");
    let dashboard = Dashboard::start(dir.path(), &targets, control_plane.monitoring);

    // No targets file yet: no proxies, and the dashboard serves anyway.
    let empty = wait_for("a first graph", || {
        let graph = get_json(dashboard.address, "/api/graph");
        graph.get("nodes").is_some().then_some(graph)
    });
    assert_eq!(empty["nodes"], serde_json::json!([]), "{empty}");

    // The proxies come up and the local mesh lists them.
    let proxies: Vec<Value> = runtime.block_on(async {
        let mut entries = Vec::new();
        for workload in WORKLOADS {
            entries.push(workload.target(fake_proxies::serve(workload).await));
        }
        entries
    });
    let partial = dir.path().join("targets.partial");
    std::fs::write(&partial, serde_json::to_string_pretty(&proxies).unwrap()).unwrap();
    std::fs::rename(&partial, &targets).unwrap();

    let graph = wait_for("every Bookinfo call in the graph", || {
        let graph = get_json(dashboard.address, "/api/graph");
        CALLS
            .iter()
            .all(|c| edge(&graph, &c.source.id(), &c.destination.id()).is_some())
            .then_some(graph)
    });
    assert_eq!(
        graph["edges"].as_array().unwrap().len(),
        CALLS.len(),
        "{graph:#}"
    );
    assert_eq!(
        graph["nodes"].as_array().unwrap().len(),
        WORKLOADS.len(),
        "{graph:#}"
    );
    let gateway = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == GATEWAY.id())
        .unwrap();
    assert_eq!(gateway["kind"], "gateway");
    for call in &CALLS {
        let edge = edge(&graph, &call.source.id(), &call.destination.id()).unwrap();
        assert!(edge["rate"].as_f64().unwrap() > 0.0, "{edge}");
        assert_eq!(edge["reporter"], "source", "{edge}");
        assert_eq!(edge["mtls"], true, "the callee's side saw mTLS: {edge}");
        assert_eq!(edge["protocol"], "http");
        let p99 = edge["p99_ms"].as_f64().unwrap();
        assert!((5.0..=100.0).contains(&p99), "{edge}");
    }
    // Both sides count each call; rates show it once. productpage's calls
    // to reviews-v2 are 3 for every 10 to details, from the same scrapes.
    let details = edge(&graph, &PRODUCTPAGE.id(), &fake_proxies::DETAILS.id()).unwrap();
    let reviews = edge(&graph, &PRODUCTPAGE.id(), &REVIEWS_V2.id()).unwrap();
    let ratio = reviews["rate"].as_f64().unwrap() / details["rate"].as_f64().unwrap();
    assert!((ratio - 0.3).abs() < 1e-9, "{ratio}");
    let failing = edge(&graph, &REVIEWS_V3.id(), &RATINGS.id()).unwrap();
    let error_rate = failing["error_rate"].as_f64().unwrap();
    assert!((error_rate - 1.0 / 3.0).abs() < 1e-9, "{failing}");
    assert_eq!(details["error_rate"], 0.0);

    let config = wait_for("the applied config", || {
        let config = get_json(dashboard.address, "/api/config");
        let resources = config["resources"].as_array()?;
        (!resources.is_empty()).then_some(config)
    });
    assert_eq!(config["error"], Value::Null, "{config:#}");
    let resources = config["resources"].as_array().unwrap();
    let kinds: Vec<&str> = resources
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"DestinationRule") && kinds.contains(&"Gateway"),
        "{kinds:?}"
    );
    let reviews_routes = resources
        .iter()
        .find(|r| r["kind"] == "VirtualService" && r["name"] == "reviews")
        .unwrap();
    let message = reviews_routes["problems"][0].as_str().unwrap();
    assert!(
        message.contains("reviews-canary.yaml") && message.contains("weight"),
        "{reviews_routes}"
    );
    assert_eq!(
        config["problems"].as_array().unwrap().len(),
        1,
        "{config:#}"
    );

    // What a person sees.
    let profile = dir.path().join("chromium");
    let dom = browser::dump_dom(&dashboard.url(), &profile);
    for app in ["productpage", "details", "reviews", "ratings"] {
        let boxes = tags_with(
            &dom,
            &[r#"class="app""#.into(), format!(r#"data-app="{app}""#)],
        );
        assert_eq!(boxes.len(), 1, "the {app} box in\n{dom}");
    }
    for workload in WORKLOADS {
        let nodes = tags_with(&dom, &[format!(r#"data-node="{}""#, workload.id())]);
        assert_eq!(nodes.len(), 1, "{} in\n{dom}", workload.name);
    }
    for call in &CALLS {
        let edges = tags_with(
            &dom,
            &[
                format!(r#"data-source="{}""#, call.source.id()),
                format!(r#"data-destination="{}""#, call.destination.id()),
            ],
        );
        assert_eq!(
            edges.len(),
            1,
            "{} -> {} in\n{dom}",
            call.source.name,
            call.destination.name
        );
        let red = edges[0].contains(r#"class="edge error""#);
        assert_eq!(red, call.failed > 0, "{}", edges[0]);
    }
    assert_eq!(
        tags_with(&dom, &[r#"class="lock""#.into()]).len(),
        CALLS.len()
    );
    let invalid = tags_with(
        &dom,
        &[
            r#"class="resource invalid""#.into(),
            r#"data-name="reviews""#.into(),
        ],
    );
    assert_eq!(
        invalid.len(),
        1,
        "the broken reviews route highlighted in\n{dom}"
    );

    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-bookinfo.png");
    browser::screenshot(&dashboard.url(), &profile, &screenshot, (1600, 1000));
    println!("dashboard screenshot: {}", screenshot.display());

    dashboard.stop();
    runtime.block_on(control_plane.shutdown());
}
