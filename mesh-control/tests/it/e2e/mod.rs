//! The local mesh end to end, with real processes on loopback: mesh-control
//! serving a config directory, a client sidecar and one sidecar in front of
//! each of two versions of `reviews`, every proxy bound to its own random
//! loopback address by a Sidecar resource with capture mode NONE (the
//! proxies announce `INTERCEPTION_MODE: NONE`). A VirtualService moves live
//! traffic without a failed request, and the proxies outlive the control
//! plane and resync with it when it comes back. With mesh-control as the
//! CA, the sidecars get their certificates with bootstrap tokens, talk
//! mTLS, and under a STRICT PeerAuthentication refuse plain text.
//! RequestAuthentication with keys mesh-control fetches, and an
//! AuthorizationPolicy with `requestPrincipals`, check tokens at the
//! server's sidecar ([`jwt`]). A CUSTOM AuthorizationPolicy sends some
//! requests to an external authorizer ([`ext_authz`]).

mod egress;
mod ext_authz;
mod jwt;
mod mesh;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mesh::{
    Ca, ControlPlane, Http, Identity, PORT, Running, V1Only, app, loopback_ips, mesh_config,
    route_all_to, serve, sidecar, wait_for, workspace, write_config,
};
use serde_json::Value;

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

/// Waits until every request of the load answers from `version`, and says
/// how long after `since` that began.
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
    let (dir, config_dir) = workspace();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_from_the_mesh_ca_carry_strict_mtls() {
    let (dir, config_dir) = workspace();
    // v1, which tells `/reviews/caller` what its sidecar said of the caller.
    let v1 = serve(|request| match request.uri().path() {
        "/reviews/caller" => {
            let xfcc = request.headers().get("x-forwarded-client-cert");
            (
                200,
                xfcc.and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
        _ => (200, "v1".to_owned()),
    })
    .await;
    let mesh = V1Only::write(&config_dir, v1);
    let v1_ip = mesh.v1_ip;
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
        &config_dir,
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
            mesh.get(&http, "/reviews/0", &[]).await,
            Ok((200, "v1".into())),
            "mesh traffic flows under STRICT"
        );
    }
    // The CA's certificates name the workload by its SPIFFE id alone, with
    // an empty subject, as Istio's do.
    let (_, xfcc) = mesh.get(&http, "/reviews/caller", &[]).await.unwrap();
    assert!(
        xfcc.ends_with(";Subject=\"\";URI=spiffe://cluster.local/ns/default/sa/client"),
        "{xfcc}"
    );

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
