//! `meshctl trace-collector` receives spans over OTLP/gRPC, and
//! `meshctl traces` prints the most recent trace as a tree.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, status};

/// The collector process; killed when dropped.
struct Collector {
    child: Child,
    otlp: SocketAddr,
    http: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("addresses.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args(["trace-collector", "--otlp-port", "0", "--http-port", "0"])
            .arg("--address-file")
            .arg(&file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addresses = wait_for_file(&file, &mut child);
        Collector {
            otlp: addresses["otlp"].as_str().unwrap().parse().unwrap(),
            http: addresses["http"].as_str().unwrap().parse().unwrap(),
            child,
            _dir: dir,
        }
    }

    fn traces(&self, limit: &str) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_meshctl"))
            .args([
                "traces",
                "--collector",
                &self.http.to_string(),
                "--limit",
                limit,
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_file(path: &Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(child.try_wait().unwrap().is_none(), "the collector exited");
        assert!(Instant::now() < deadline, "the collector did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..KeyValue::default()
    }
}

/// A span of trace `trace` starting `start_ms` after a fixed instant.
fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, start_ms: u64, ms: u64) -> Span {
    const BASE: u64 = 1_700_000_000_000_000_000;
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: BASE + start_ms * 1_000_000,
        end_time_unix_nano: BASE + (start_ms + ms) * 1_000_000,
        attributes: vec![text("http.status_code", "200")],
        ..Span::default()
    }
}

fn from(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![text("service.name", service)],
            ..Resource::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }
}

async fn export(address: SocketAddr, resource_spans: Vec<ResourceSpans>) {
    let mut client = TraceServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();
    client
        .export(ExportTraceServiceRequest { resource_spans })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_most_recent_trace_prints_as_a_tree() {
    let collector = Collector::start();
    assert_eq!(collector.traces("1"), "no traces yet\n");
    let mut failed = span(1, 9, None, "old", 0, 1);
    failed.status = Some(Status {
        code: status::StatusCode::Error as i32,
        ..Status::default()
    });
    export(collector.otlp, vec![from("gateway", vec![failed])]).await;
    // The newest trace arrives in two exports, children before parents.
    export(
        collector.otlp,
        vec![from(
            "reviews.default",
            vec![span(2, 3, Some(2), "ratings:9080/*", 20, 5)],
        )],
    )
    .await;
    export(
        collector.otlp,
        vec![
            from(
                "productpage.default",
                vec![
                    span(2, 1, None, "productpage:9080/productpage", 0, 40),
                    span(2, 4, Some(1), "details:9080/*", 30, 2),
                ],
            ),
            from(
                "reviews.default",
                vec![span(2, 2, Some(1), "ingress", 10, 20)],
            ),
        ],
    )
    .await;
    let trace2 = "02".repeat(16);
    assert_eq!(
        collector.traces("1"),
        format!(
            "trace {trace2}\n\
             \x20 productpage.default  productpage:9080/productpage  40.00ms  unset 200\n\
             \x20   reviews.default  ingress  20.00ms  unset 200\n\
             \x20     reviews.default  ratings:9080/*  5.00ms  unset 200\n\
             \x20   productpage.default  details:9080/*  2.00ms  unset 200\n"
        )
    );
    let both = collector.traces("5");
    assert!(
        both.ends_with(&format!(
            "trace {}\n  gateway  old  1.00ms  error 200\n",
            "01".repeat(16)
        )),
        "{both}"
    );

    let (status, body) = get(collector.http, &format!("/api/traces/{trace2}")).await;
    assert_eq!(status, 200);
    let trace: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(trace["trace_id"], trace2);
    assert_eq!(trace["spans"].as_array().unwrap().len(), 4);
    assert_eq!(trace["spans"][0]["service"], "reviews.default");
    assert_eq!(trace["spans"][0]["parent_span_id"], "02".repeat(8));
    assert_eq!(trace["spans"][0]["kind"], "server");
    let (status, body) = get(collector.http, "/api/traces?limit=1").await;
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listing["traces"].as_array().unwrap().len(), 1);
    assert_eq!(get(collector.http, "/api/traces/ffff").await.0, 404);
}

async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let response = client
        .get(format!("http://{address}{path}").parse().unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
