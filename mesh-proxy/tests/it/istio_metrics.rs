//! Istio's standard metrics end to end: a client sidecar and a server
//! sidecar configured as istiod configures them (`istio.metadata_exchange`,
//! `istio.stats`, node metadata, cluster service metadata) learn each other's
//! workload from the peer metadata headers and report the same requests,
//! one as `source` and one as `destination`.

use crate::support;

use std::net::SocketAddr;

use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener, tcp_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPED_STRUCT: &str = "type.googleapis.com/udpa.type.v1.TypedStruct";
const PEER_METADATA: &str = "type.googleapis.com/io.istio.http.peer_metadata.Config";
const STATS: &str = "type.googleapis.com/stats.PluginConfig";
const ROUTER: &str = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router";

fn node(id: &str, workload: &str, app: &str, version: &str) -> Value {
    json!({
        "id": id,
        "cluster": format!("{app}.default"),
        "metadata": {
            "NAME": format!("{workload}-5d8f"), "NAMESPACE": "default",
            "WORKLOAD_NAME": workload, "CLUSTER_ID": "Kubernetes",
            "SERVICE_ACCOUNT": format!("bookinfo-{app}"),
            "LABELS": {"app": app, "version": version,
                       "service.istio.io/canonical-name": app,
                       "service.istio.io/canonical-revision": version}
        }
    })
}

/// The HTTP filters istiod gives a sidecar listener in `direction`.
fn istio_filters(direction: &str) -> Value {
    let (discovery, propagation, disable_fallback) = match direction {
        "INBOUND" => ("downstream_discovery", "downstream_propagation", true),
        _ => ("upstream_discovery", "upstream_propagation", false),
    };
    json!([
        {"name": "istio.metadata_exchange", "typed_config": {
            "@type": TYPED_STRUCT, "type_url": PEER_METADATA,
            "value": {
                discovery: [{"istio_headers": {}}, {"workload_discovery": {}}],
                propagation: [{"istio_headers": {}}]
            }}},
        {"name": "istio.stats", "typed_config": {
            "@type": STATS, "disable_host_header_fallback": disable_fallback}},
        {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}
    ])
}

fn sidecar_listener(name: &str, direction: &str, cluster: &str) -> Value {
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}]);
    let mut listener = http_listener(name, vhosts);
    listener["traffic_direction"] = json!(direction);
    listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"] =
        istio_filters(direction);
    listener
}

/// A cluster with the service metadata istiod attaches.
fn service_cluster(name: &str, endpoint: SocketAddr, service: &str) -> Value {
    let mut c = cluster(name, &[endpoint]);
    c["metadata"] = json!({"filter_metadata": {"istio": {"services": [{
        "host": format!("{service}.default.svc.cluster.local"),
        "name": service, "namespace": "default"}]}}});
    c
}

/// The sample of `metric` whose labels include every one of `labels`.
fn sample(text: &str, metric: &str, labels: &[&str]) -> Option<u64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn metrics(proxy: &Proxy) -> String {
    get(proxy.admin, "/stats/prometheus", &[]).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sidecars_report_requests_with_each_others_workload() {
    let app = Echo::start("reviews").await;
    let mut server_bootstrap = bootstrap(
        json!([sidecar_listener(
            "virtualInbound",
            "INBOUND",
            "inbound|9080||"
        )]),
        json!([service_cluster("inbound|9080||", app.address, "reviews")]),
    );
    server_bootstrap["node"] = node(
        "sidecar~10.0.0.2~reviews-v2-5d8f.default~default.svc.cluster.local",
        "reviews-v2",
        "reviews",
        "v2",
    );
    let server = Proxy::start(&server_bootstrap).await;
    let mut client_bootstrap = bootstrap(
        json!([sidecar_listener(
            "0.0.0.0_9080",
            "OUTBOUND",
            "outbound|9080||reviews"
        )]),
        json!([service_cluster(
            "outbound|9080||reviews",
            server.listener("virtualInbound"),
            "reviews"
        )]),
    );
    client_bootstrap["node"] = node(
        "sidecar~10.0.0.1~productpage-v1-5d8f.default~default.svc.cluster.local",
        "productpage-v1",
        "productpage",
        "v1",
    );
    let client = Proxy::start(&client_bootstrap).await;
    let outbound = client.listener("0.0.0.0_9080");

    for _ in 0..7 {
        let (status, body) = get(outbound, "/reviews/0", &[]).await;
        assert_eq!(status, 200);
        // The server's sidecar took the exchange headers out before the app.
        let headers = &serde_json::from_str::<Value>(&body).unwrap()["headers"];
        assert!(headers.get("x-envoy-peer-metadata").is_none(), "{body}");
        assert!(headers.get("x-envoy-peer-metadata-id").is_none(), "{body}");
    }
    for _ in 0..3 {
        assert_eq!(get(outbound, "/status/503", &[]).await.0, 503);
    }

    let common = [
        "source_workload=\"productpage-v1\"",
        "source_app=\"productpage\"",
        "source_version=\"v1\"",
        "source_canonical_service=\"productpage\"",
        "source_workload_namespace=\"default\"",
        "source_cluster=\"Kubernetes\"",
        "destination_workload=\"reviews-v2\"",
        "destination_app=\"reviews\"",
        "destination_version=\"v2\"",
        "destination_canonical_revision=\"v2\"",
        "destination_service=\"reviews.default.svc.cluster.local\"",
        "destination_service_name=\"reviews\"",
        "destination_service_namespace=\"default\"",
        "request_protocol=\"http\"",
    ];
    // The config dump prints Istio's filter configs back.
    let (_, dump) = get(client.admin, "/config_dump", &[]).await;
    assert!(
        dump.contains("type.googleapis.com/stats.PluginConfig"),
        "{dump}"
    );
    assert!(dump.contains("upstream_propagation"), "{dump}");

    let client_text = metrics(&client).await;
    let server_text = metrics(&server).await;
    for (text, reporter, security) in [
        (
            &client_text,
            "reporter=\"source\"",
            "connection_security_policy=\"unknown\"",
        ),
        (
            &server_text,
            "reporter=\"destination\"",
            "connection_security_policy=\"none\"",
        ),
    ] {
        let mut ok = common.to_vec();
        ok.extend([reporter, security, "response_code=\"200\""]);
        assert_eq!(
            sample(text, "istio_requests_total", &ok),
            Some(7),
            "{reporter}: {text}"
        );
        let mut failed = common.to_vec();
        failed.extend([reporter, "response_code=\"503\"", "response_flags=\"-\""]);
        assert_eq!(sample(text, "istio_requests_total", &failed), Some(3));
        let mut count = common.to_vec();
        count.extend([reporter, "response_code=\"200\""]);
        assert_eq!(
            sample(text, "istio_request_duration_milliseconds_count", &count),
            Some(7)
        );
        let mut inf = count.clone();
        inf.push("le=\"+Inf\"");
        assert_eq!(sample(text, "istio_response_bytes_bucket", &inf), Some(7));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_failures_are_reported_with_their_flags() {
    let mut config = bootstrap(
        json!([sidecar_listener("out", "OUTBOUND", "nowhere")]),
        json!([service_cluster(
            "nowhere",
            support::closed_port(),
            "ratings"
        )]),
    );
    config["node"] = node(
        "sidecar~10.0.0.3~a.default~default.svc.cluster.local",
        "a",
        "a",
        "v1",
    );
    let proxy = Proxy::start(&config).await;
    let (status, _) = get(proxy.listener("out"), "/", &[]).await;
    assert_eq!(status, 503);
    let text = metrics(&proxy).await;
    let labels = [
        "reporter=\"source\"",
        "destination_workload=\"unknown\"",
        "destination_service_name=\"ratings\"",
        "response_code=\"503\"",
        "response_flags=\"UF\"",
    ];
    assert_eq!(
        sample(&text, "istio_requests_total", &labels),
        Some(1),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_and_bytes_are_counted() {
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0; 1024];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    // Twice what was sent, so that the two directions differ.
                    let _ = stream.write_all(&buf[..n]).await;
                    let _ = stream.write_all(&buf[..n]).await;
                }
            });
        }
    });
    let mut listener = tcp_listener("tcp", "mysql");
    listener["traffic_direction"] = json!("INBOUND");
    let filters = listener["filter_chains"][0]["filters"].clone();
    listener["filter_chains"][0]["filters"] = json!([
        {"name": "istio.stats", "typed_config": {"@type": STATS}},
        filters[0]
    ]);
    let mut config = bootstrap(
        json!([listener]),
        json!([service_cluster("mysql", upstream, "mysqldb")]),
    );
    config["node"] = node(
        "sidecar~10.0.0.4~db.default~default.svc.cluster.local",
        "mysqldb-v1",
        "mysqldb",
        "v1",
    );
    let proxy = Proxy::start(&config).await;

    let mut stream = tokio::net::TcpStream::connect(proxy.listener("tcp"))
        .await
        .unwrap();
    stream.write_all(&[7; 100]).await.unwrap();
    let mut back = vec![0; 200];
    stream.read_exact(&mut back).await.unwrap();
    let labels = [
        "reporter=\"destination\"",
        "destination_workload=\"mysqldb-v1\"",
        "destination_service=\"mysqldb.default.svc.cluster.local\"",
        "request_protocol=\"tcp\"",
    ];
    // Bytes count while the connection is open.
    let text = metrics(&proxy).await;
    assert_eq!(
        sample(&text, "istio_tcp_connections_opened_total", &labels),
        Some(1),
        "{text}"
    );
    assert_eq!(
        sample(&text, "istio_tcp_received_bytes_total", &labels),
        Some(100)
    );
    assert_eq!(
        sample(&text, "istio_tcp_sent_bytes_total", &labels),
        Some(200)
    );
    assert_eq!(
        sample(&text, "istio_tcp_connections_closed_total", &labels),
        Some(0)
    );
    drop(stream);
    support::eventually(async || {
        let text = metrics(&proxy).await;
        match sample(&text, "istio_tcp_connections_closed_total", &labels) {
            Some(1) => Ok(()),
            _ => Err(format!("never closed: {text}")),
        }
    })
    .await;
}
