//! The workload certificate from the mesh's CA: two proxies that get theirs
//! from a test CA speak mTLS with SPIFFE identities, keep serving through
//! rotations, and refuse what a CA should not have given them.

use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use support::ca_server::{Mode, TestCa};
use support::{Echo, Proxy, bootstrap, cluster, downstream_tls, get, http_listener, upstream_tls};

const WITHIN: Duration = Duration::from_secs(20);
const TOKEN: &str = "bootstrap-token";
const SERVER_ID: &str = "spiffe://cluster.local/ns/shop/sa/server";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/web/sa/client";

fn catch_all(cluster: &str) -> Value {
    json!([{"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}])
}

fn node(pod: &str, namespace: &str, account: &str) -> Value {
    json!({
        "id": format!("sidecar~127.0.0.1~{pod}.{namespace}~{namespace}.svc.cluster.local"),
        "metadata": {"SERVICE_ACCOUNT": account}
    })
}

/// The server side: an mTLS listener presenting `default`, trusting
/// `ROOTCA`, that logs the caller's SPIFFE id, in front of `app`.
fn server_bootstrap(app: &Echo, log: &Path) -> Value {
    let mut inbound = http_listener("inbound", catch_all("app"));
    let chain = &mut inbound["filter_chains"][0];
    chain["transport_socket"] = downstream_tls(json!({
        "require_client_certificate": true,
        "common_tls_context": {
            "alpn_protocols": ["istio", "h2", "http/1.1"],
            "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"ads": {}}}],
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"ads": {}}}
        }
    }));
    chain["filters"][0]["typed_config"]["access_log"] = json!([{
        "name": "envoy.access_loggers.file",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": log, "log_format": {"text_format_source": {"inline_string": "peer=%DOWNSTREAM_PEER_URI_SAN%\n"}}}
    }]);
    let mut config = bootstrap(json!([inbound]), json!([cluster("app", &[app.address])]));
    config["node"] = node("server-1", "shop", "server");
    config
}

/// The client side: plain HTTP in, mTLS with `default` out to `server`,
/// which must be the server's SPIFFE id under `ROOTCA`.
fn client_bootstrap(server: &Proxy) -> Value {
    let mut outbound = cluster("server", &[server.listener("inbound")]);
    outbound["transport_socket"] = upstream_tls(json!({
        "sni": "outbound_.80_._.server.shop.svc.cluster.local",
        "common_tls_context": {
            "alpn_protocols": ["istio"],
            "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": {"ads": {}}}],
            "combined_validation_context": {
                "default_validation_context": {"match_typed_subject_alt_names":
                    [{"san_type": "URI", "matcher": {"exact": SERVER_ID}}]},
                "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": {"ads": {}}}
            }
        }
    }));
    let mut config = bootstrap(
        json!([http_listener("outbound", catch_all("server"))]),
        json!([outbound]),
    );
    config["node"] = node("client-1", "web", "client");
    config
}

struct Mesh {
    ca: TestCa,
    server: Proxy,
    client: Proxy,
    access_log: tempfile::NamedTempFile,
    _token: tempfile::NamedTempFile,
    _app: Echo,
}

/// A CA, an app behind a server proxy, and a client proxy, each proxy with
/// its certificate from the CA for `ttl`.
async fn mesh(ttl: &str) -> Mesh {
    let ca = TestCa::start(TOKEN).await;
    let token = token_file(TOKEN);
    let app = Echo::start("app").await;
    let access_log = tempfile::NamedTempFile::new().unwrap();
    let flags = ca.flags(token.path(), ttl);
    let mut server = Proxy::launch(&server_bootstrap(&app, access_log.path()), &flags).await;
    server.wait_ready().await;
    let mut client = Proxy::launch(&client_bootstrap(&server), &flags).await;
    client.wait_ready().await;
    Mesh {
        ca,
        server,
        client,
        access_log,
        _token: token,
        _app: app,
    }
}

fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    file
}

/// `/certs` as JSON.
async fn certs(proxy: &Proxy) -> Value {
    let (status, body) = get(proxy.admin, "/certs", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn leaf(certs: &Value) -> &Value {
    &certs["certificates"][0]["cert_chain"][0]
}

#[tokio::test]
async fn proxies_speak_mtls_with_their_spiffe_ids_from_the_ca() {
    let mesh = mesh("24h").await;
    let (status, body) = get(mesh.client.listener("outbound"), "/hello", &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(support::server_of(&body), "app");
    // The access log is written once the response is done, which may be
    // after the client has read it.
    let wanted = format!("peer={CLIENT_ID}");
    support::eventually(async || {
        let logged = std::fs::read_to_string(mesh.access_log.path()).unwrap();
        logged.contains(&wanted).then_some(()).ok_or(logged)
    })
    .await;

    for (proxy, id) in [(&mesh.client, CLIENT_ID), (&mesh.server, SERVER_ID)] {
        let certs = certs(proxy).await;
        let leaf = leaf(&certs);
        assert_eq!(leaf["subject_alt_names"], json!([{"uri": id}]), "{certs}");
        assert!(!leaf["serial_number"].as_str().unwrap().is_empty());
        let days: u64 = leaf["days_until_expiration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(days <= 1, "a 24h certificate: {certs}");
        assert!(leaf["valid_from"].as_str().unwrap().ends_with('Z'));
        assert!(leaf["expiration_time"].as_str().unwrap().ends_with('Z'));
        let root = &certs["certificates"][0]["ca_cert"][0];
        assert!(
            !root["serial_number"].as_str().unwrap().is_empty(),
            "{certs}"
        );
        let first = proxy
            .stat("envoy_server_days_until_first_cert_expiring")
            .await;
        assert!(first <= 1, "{first}");
        let expiry = proxy
            .stat("mesh_proxy_workload_cert_expiry_timestamp_seconds")
            .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            (now + 23 * 3600..=now + 24 * 3600 + 60).contains(&expiry),
            "{expiry}"
        );
        let log = proxy.wait_for_log("workload certificate obtained").await;
        assert!(log.contains(id), "{log}");
        assert_no_key(proxy).await;
    }
}

/// No private key in the admin pages or the logs.
async fn assert_no_key(proxy: &Proxy) {
    for page in ["/config_dump", "/certs", "/stats/prometheus"] {
        let (_, body) = get(proxy.admin, page, &[]).await;
        assert!(!body.contains("PRIVATE KEY"), "{page}: {body}");
        assert!(!body.contains("private_key\": {\""), "{page}: {body}");
    }
    let log = proxy.log();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[tokio::test]
async fn requests_keep_flowing_through_rotations() {
    let mesh = mesh("4s").await;
    let first = leaf(&certs(&mesh.client).await)["serial_number"].clone();
    let issued = mesh.ca.requests();
    let address = mesh.client.listener("outbound");
    let deadline = Instant::now() + WITHIN;
    let mut sent = 0;
    // Each request opens a connection to the client proxy; the client
    // proxy's connections to the server start with whichever certificates
    // are current. Two proxies renewing every 2 s: six renewals is three
    // rotations each.
    while mesh.ca.requests() < issued + 6 {
        assert!(
            Instant::now() < deadline,
            "the certificates were not renewed"
        );
        let (status, body) = get(address, &format!("/{sent}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "request {sent}: {body}");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent > 20, "only {sent} requests");
    let now = leaf(&certs(&mesh.client).await)["serial_number"].clone();
    assert_ne!(first, now);
    let log = mesh
        .client
        .wait_for_log("workload certificate rotated")
        .await;
    // The start-up line ("obtained") names the identity and its time too.
    let rotated = log
        .lines()
        .find(|line| line.contains("workload certificate rotated"))
        .expect("the rotation's line");
    assert!(rotated.contains(CLIENT_ID), "{rotated}");
    assert!(rotated.contains("took_ms"), "{rotated}");
    let rotations = mesh
        .client
        .stat("mesh_proxy_workload_cert_rotation_seconds_count")
        .await;
    assert!(rotations >= 1, "{rotations} rotations counted");
    for proxy in [&mesh.client, &mesh.server] {
        assert_no_key(proxy).await;
    }
}

/// Waits until `count` says at least `n`.
async fn wait_for(what: &str, n: u64, count: impl Fn() -> u64) {
    support::eventually(async || match count() {
        seen if seen >= n => Ok(()),
        seen => Err(format!("{what}: {seen} of {n}")),
    })
    .await
}

async fn assert_not_ready(proxy: &Proxy) {
    let (status, _) = get(proxy.admin, "/ready", &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(certs(proxy).await, json!({"certificates": []}));
}

#[tokio::test]
async fn a_refused_token_is_retried_until_the_file_holds_a_good_one() {
    let ca = TestCa::start(TOKEN).await;
    let token = token_file("stale-token");
    let app = Echo::start("app").await;
    let access_log = tempfile::NamedTempFile::new().unwrap();
    let mut server = Proxy::launch(
        &server_bootstrap(&app, access_log.path()),
        &ca.flags(token.path(), "1h"),
    )
    .await;
    wait_for("refused requests", 3, || ca.refused()).await;
    assert_not_ready(&server).await;
    assert!(server.listeners.is_empty(), "{:?}", server.listeners);
    let log = server
        .wait_for_log("refused the certificate request: Unauthenticated")
        .await;
    assert!(log.contains("the bearer token is not valid"), "{log}");
    std::fs::write(token.path(), TOKEN).unwrap();
    server.wait_ready().await;
    assert!(server.listeners.contains_key("inbound"));
    assert_eq!(
        leaf(&certs(&server).await)["subject_alt_names"],
        json!([{"uri": SERVER_ID}])
    );
}

#[tokio::test]
async fn certificates_that_are_expired_or_from_a_foreign_ca_are_not_used() {
    let ca = TestCa::start(TOKEN).await;
    ca.set_mode(Mode::Expired);
    let token = token_file(TOKEN);
    let app = Echo::start("app").await;
    let access_log = tempfile::NamedTempFile::new().unwrap();
    let mut server = Proxy::launch(
        &server_bootstrap(&app, access_log.path()),
        &ca.flags(token.path(), "1h"),
    )
    .await;
    let log = server.wait_for_log("is not used").await;
    assert!(log.contains("Expired"), "{log}");
    assert_not_ready(&server).await;

    let seen = ca.requests();
    ca.set_mode(Mode::Foreign);
    wait_for("requests", seen + 2, || ca.requests()).await;
    let log = server.wait_for_log("UnknownIssuer").await;
    assert!(
        log.contains("does not verify against the trusted root"),
        "{log}"
    );
    assert_not_ready(&server).await;

    ca.set_mode(Mode::Fail);
    let log = server.wait_for_log("told to fail").await;
    assert!(log.contains("cannot get the workload certificate"), "{log}");
    ca.set_mode(Mode::Sign);
    server.wait_ready().await;
    assert_no_key(&server).await;
}
