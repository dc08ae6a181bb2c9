//! Trace spans across two proxies, exported to an OTLP collector, and the
//! context the application behind them sees.

use crate::support;

use serde_json::{Value, json};
use support::collector::{Collector, Received};
use support::{Echo, Proxy, bootstrap, cluster, echoed_header, get, http_listener};

const OPERATION: &str = "echo.default.svc.cluster.local:80/*";

fn tracing(service: &str) -> Value {
    json!({
        "random_sampling": {"value": 100.0},
        "provider": {"name": "envoy.tracers.opentelemetry", "typed_config": {
            "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
            "service_name": service,
            "grpc_service": {"envoy_grpc": {"cluster_name": "collector"}}
        }}
    })
}

/// A listener sending everything to `to`, traced as `service`.
fn traced(name: &str, direction: &str, to: &str, operation: Option<&str>) -> Value {
    let mut route = json!({"match": {"prefix": "/"}, "route": {"cluster": to}});
    if let Some(operation) = operation {
        route["decorator"] = json!({"operation": operation});
    }
    let mut listener = http_listener(
        name,
        json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
    );
    listener["traffic_direction"] = json!(direction);
    listener["filter_chains"][0]["filters"][0]["typed_config"]["tracing"] = tracing(name);
    listener
}

/// A client-side proxy in front of a server-side proxy in front of the app.
struct Chain {
    outbound: Proxy,
    inbound: Proxy,
    collector: Collector,
}

impl Chain {
    async fn start() -> Chain {
        let collector = Collector::start().await;
        let app = Echo::start("app").await;
        let inbound = Proxy::start(&bootstrap(
            json!([traced("inbound", "INBOUND", "app", None)]),
            json!([
                cluster("app", &[app.address]),
                cluster("collector", &[collector.address])
            ]),
        ))
        .await;
        let outbound = Proxy::start(&bootstrap(
            json!([traced("outbound", "OUTBOUND", "next", Some(OPERATION))]),
            json!([
                cluster("next", &[inbound.listener("inbound")]),
                cluster("collector", &[collector.address])
            ]),
        ))
        .await;
        Chain {
            outbound,
            inbound,
            collector,
        }
    }

    async fn get(&self, headers: &[(&str, &str)]) -> String {
        let (status, body) = get(self.outbound.listener("outbound"), "/hello", headers).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn by_service<'a>(spans: &'a [Received], service: &str) -> &'a Received {
    spans
        .iter()
        .find(|s| s.service == service)
        .unwrap_or_else(|| panic!("no span of {service}: {spans:#?}"))
}

#[tokio::test]
async fn one_trace_across_two_proxies_and_none_when_the_caller_says_no() {
    let chain = Chain::start().await;
    // Spans leave each proxy in order: once the sampled request's have
    // come, an unsampled request sent before would have shown by then.
    let unsampled = chain
        .get(&[("x-b3-sampled", "0"), ("x-request-id", "not-traced")])
        .await;
    assert_eq!(echoed_header(&unsampled, "x-b3-sampled"), "0");
    assert!(echoed_header(&unsampled, "traceparent").ends_with("-00"));

    let body = chain.get(&[("x-request-id", "traced")]).await;
    let spans = chain.collector.wait_for(2).await;
    assert_eq!(spans.len(), 2, "{spans:#?}");
    let client = by_service(&spans, "outbound");
    let server = by_service(&spans, "inbound");

    // One trace: the client span is the root, the server span its child.
    assert_eq!(client.trace_id(), server.trace_id());
    assert_eq!(client.span.parent_span_id, Vec::<u8>::new());
    assert_eq!(server.parent_span_id(), client.span_id());
    assert_eq!(client.span.kind, 3, "client");
    assert_eq!(server.span.kind, 2, "server");
    assert_eq!(client.span.name, OPERATION);
    assert_eq!(server.span.name, "ingress");
    for span in [client, server] {
        assert_eq!(
            span.attribute("guid:x-request-id").as_deref(),
            Some("traced")
        );
        assert_eq!(span.attribute("http.status_code").as_deref(), Some("200"));
        assert_eq!(span.attribute("http.method").as_deref(), Some("GET"));
        assert_eq!(span.attribute("component").as_deref(), Some("proxy"));
        assert_eq!(span.attribute("response_flags").as_deref(), Some("-"));
        assert!(span.attribute("peer.address").is_some());
        assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    }
    assert_eq!(
        client.attribute("upstream_cluster").as_deref(),
        Some("next")
    );
    assert_eq!(server.attribute("upstream_cluster").as_deref(), Some("app"));

    // The app sees the server span as its parent, in both formats.
    let trace = server.trace_id();
    assert_eq!(
        echoed_header(&body, "traceparent"),
        format!("00-{trace}-{}-01", server.span_id())
    );
    assert_eq!(echoed_header(&body, "x-b3-traceid"), trace);
    assert_eq!(echoed_header(&body, "x-b3-spanid"), server.span_id());
    assert_eq!(echoed_header(&body, "x-b3-parentspanid"), client.span_id());
    assert_eq!(echoed_header(&body, "x-b3-sampled"), "1");

    // The proxy counts a span once the collector has answered.
    support::eventually(async || {
        let sent = chain
            .outbound
            .stat("envoy_tracing_opentelemetry_spans_sent")
            .await;
        (sent == 1)
            .then_some(())
            .ok_or(format!("{sent} spans sent"))
    })
    .await;
    assert_eq!(
        chain
            .inbound
            .stat("envoy_tracing_opentelemetry_spans_dropped")
            .await,
        0
    );
}

#[tokio::test]
async fn an_apps_b3_context_is_continued() {
    let chain = Chain::start().await;
    let trace = "463ac35c9f6413ad48485a3953bb6124";
    let parent = "a2fb4a1d1a96d312";
    chain
        .get(&[
            ("x-b3-traceid", trace),
            ("x-b3-spanid", parent),
            ("x-b3-sampled", "1"),
        ])
        .await;
    let spans = chain.collector.wait_for(2).await;
    let client = by_service(&spans, "outbound");
    assert_eq!(client.trace_id(), trace);
    assert_eq!(client.parent_span_id(), parent);
    assert_eq!(by_service(&spans, "inbound").trace_id(), trace);
}

#[tokio::test]
async fn spans_still_queued_are_sent_at_shutdown() {
    let chain = Chain::start().await;
    chain.get(&[]).await;
    chain.outbound.quit().await;
    let spans = chain.collector.wait_for(2).await;
    by_service(&spans, "outbound");
}
