//! Access logs end to end: Envoy's default text format and a JSON format,
//! with response flags for local failures.

use crate::support;

use serde_json::{Value, json};
use support::{Echo, Proxy, bootstrap, cluster, get, http_listener, wait_for_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_logged_with_flags() {
    let echo = Echo::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (text_log, json_log) = (
        dir.path().join("access.log"),
        dir.path().join("access.json"),
    );
    let vhosts = json!([{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/ok"}, "route": {"cluster": "up"}},
        {"match": {"prefix": "/down"}, "route": {"cluster": "down"}}
    ]}]);
    let mut listener = http_listener("http", vhosts);
    listener["filter_chains"][0]["filters"][0]["typed_config"]["access_log"] = json!([
        {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": text_log}},
        {"name": "envoy.access_loggers.file", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
            "path": json_log,
            "log_format": {"json_format": {
                "method": "%REQ(:METHOD)%", "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
                "response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
                "upstream_cluster": "%UPSTREAM_CLUSTER%", "upstream_host": "%UPSTREAM_HOST%",
                "bytes_sent": "%BYTES_SENT%", "request_id": "%REQ(X-REQUEST-ID)%",
                "route_name": "%ROUTE_NAME%"}}}}
    ]);
    let proxy = Proxy::start(&bootstrap(
        json!([listener]),
        json!([
            cluster("up", &[echo.address]),
            cluster("down", &[support::closed_port()])
        ]),
    ))
    .await;
    let front = proxy.listener("http");
    let (_, body) = get(
        front,
        "/ok",
        &[("x-request-id", "abc-123"), ("user-agent", "tester")],
    )
    .await;
    get(front, "/nowhere", &[]).await;
    get(front, "/down", &[]).await;

    let text = wait_for_lines(&text_log, 3).await;
    assert!(
        text[0].contains("\"GET /ok HTTP/1.1\" 200 - 0 "),
        "{}",
        text[0]
    );
    assert!(text[0].contains("\"tester\" \"abc-123\""), "{}", text[0]);
    assert!(
        text[0].ends_with(&format!("\"{}\"", echo.address)),
        "{}",
        text[0]
    );
    assert!(
        text[1].contains("\"GET /nowhere HTTP/1.1\" 404 NR "),
        "{}",
        text[1]
    );
    assert!(text[2].contains("\" 503 UF "), "{}", text[2]);

    let records: Vec<Value> = wait_for_lines(&json_log, 3)
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["response_code"], 200);
    assert_eq!(records[0]["response_flags"], "-");
    assert_eq!(records[0]["upstream_cluster"], "up");
    assert_eq!(records[0]["request_id"], "abc-123");
    assert_eq!(records[0]["bytes_sent"], body.len() as u64);
    assert_eq!(records[0]["route_name"], Value::Null);
    assert_eq!(records[1]["response_flags"], "NR");
    assert_eq!(records[2]["response_flags"], "UF");
    assert_eq!(records[2]["upstream_cluster"], "down");
    assert_eq!(records[2]["path"], "/down");
}
