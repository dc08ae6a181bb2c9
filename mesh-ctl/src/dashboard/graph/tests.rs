use super::*;
use crate::dashboard::prometheus::parse;

/// A call between workloads, labelled as mesh-proxy labels it.
struct Call {
    reporter: &'static str,
    source: &'static str,
    destination: &'static str,
    service: &'static str,
    security: &'static str,
}

impl Call {
    fn labels(&self) -> String {
        let (source_app, source_version) = app_version(self.source);
        let (destination_app, destination_version) = app_version(self.destination);
        format!(
            "reporter=\"{}\",source_workload=\"{}\",source_workload_namespace=\"default\",\
             source_app=\"{source_app}\",source_version=\"{source_version}\",\
             destination_workload=\"{}\",destination_workload_namespace=\"default\",\
             destination_app=\"{destination_app}\",destination_version=\"{destination_version}\",\
             destination_service=\"{}.default.svc.cluster.local\",\
             destination_service_name=\"{}\",destination_service_namespace=\"default\",\
             connection_security_policy=\"{}\"",
            self.reporter, self.source, self.destination, self.service, self.service, self.security
        )
    }

    /// `istio_requests_total` with a response code.
    fn requests(&self, code: u16, count: u64) -> String {
        format!(
            "istio_requests_total{{{},request_protocol=\"http\",response_code=\"{code}\",response_flags=\"-\"}} {count}\n",
            self.labels()
        )
    }

    /// Duration buckets from (upper bound, cumulative count) pairs.
    fn durations(&self, buckets: &[(&str, u64)]) -> String {
        buckets
            .iter()
            .map(|(le, count)| {
                format!(
                    "istio_request_duration_milliseconds_bucket{{{},request_protocol=\"http\",response_code=\"200\",le=\"{le}\"}} {count}\n",
                    self.labels()
                )
            })
            .collect()
    }

    fn tcp(&self, metric: &str, flags: &str, value: u64) -> String {
        format!(
            "istio_tcp_{metric}{{{},request_protocol=\"tcp\",response_flags=\"{flags}\"}} {value}\n",
            self.labels()
        )
    }
}

/// `reviews-v2` is app `reviews`, version `v2`; anything else is unknown.
fn app_version(workload: &str) -> (&str, &str) {
    workload.rsplit_once('-').unwrap_or(("unknown", "unknown"))
}

fn target(workload: &str, kind: ProxyKind) -> Target {
    let (app, version) = app_version(workload);
    Target {
        workload: workload.into(),
        namespace: "default".into(),
        app: app.into(),
        version: version.into(),
        kind,
        admin: "127.0.0.1:1".into(),
    }
}

/// The graph of proxies scraped twice, 10 s apart.
fn graph(scrapes: &[(&Target, String, String)]) -> Graph {
    let parsed: Vec<(Vec<Sample>, Vec<Sample>)> = scrapes
        .iter()
        .map(|(_, before, now)| (parse(before).unwrap(), parse(now).unwrap()))
        .collect();
    let proxies: Vec<Proxy> = scrapes
        .iter()
        .zip(&parsed)
        .map(|((target, _, _), (before, now))| Proxy {
            target,
            state: ProxyState::Measured {
                seconds: 10.0,
                before,
                now,
            },
        })
        .collect();
    build(&proxies)
}

fn edge<'a>(graph: &'a Graph, source: &str, destination: &str) -> &'a Edge {
    graph
        .edges
        .iter()
        .find(|e| e.source == source && e.destination == destination)
        .unwrap_or_else(|| panic!("no edge {source} -> {destination} in {graph:#?}"))
}

const PRODUCTPAGE_TO_REVIEWS: Call = Call {
    reporter: "source",
    source: "productpage-v1",
    destination: "reviews-v2",
    service: "reviews",
    security: "unknown",
};

const REVIEWS_FROM_PRODUCTPAGE: Call = Call {
    reporter: "destination",
    security: "mutual_tls",
    ..PRODUCTPAGE_TO_REVIEWS
};

#[test]
fn rates_errors_and_p99_come_from_the_difference_between_scrapes() {
    let call = &PRODUCTPAGE_TO_REVIEWS;
    // Lifetime: 100 requests, none failed. In the window: 20 more, 2 of
    // them 503s; 10 took at most 10 ms, 8 more at most 25 ms, 2 more at
    // most 50 ms.
    let before = call.requests(200, 100)
        + &call.durations(&[("10", 50), ("25", 90), ("50", 100), ("+Inf", 100)]);
    let now = call.requests(200, 118)
        + &call.requests(503, 2)
        + &call.durations(&[("10", 60), ("25", 108), ("50", 120), ("+Inf", 120)]);
    let productpage = target("productpage-v1", ProxyKind::Sidecar);
    let graph = graph(&[(&productpage, before, now)]);

    let edge = edge(&graph, "default/productpage-v1", "default/reviews-v2");
    assert!((edge.rate - 2.0).abs() < 1e-9, "{edge:?}");
    assert!((edge.error_rate - 0.1).abs() < 1e-9, "{edge:?}");
    // The 99th of 20 is 19.8: in (25, 50], 1.8 of the bucket's 2.
    let p99 = edge.p99_ms.unwrap();
    assert!((p99 - 47.5).abs() < 1e-9, "{edge:?}");
    assert_eq!(edge.protocol, "http");
    assert_eq!(edge.reporter, "source");
    assert!(!edge.mtls, "the caller's side cannot tell");
    assert_eq!(edge.bytes_per_second, None);
    assert_eq!(graph.window_seconds, Some(10.0));

    let ids: Vec<&str> = graph.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["default/productpage-v1", "default/reviews-v2"]);
    let reviews = &graph.nodes[1];
    assert_eq!(
        (reviews.app.as_str(), reviews.version.as_str()),
        ("reviews", "v2")
    );
    assert_eq!(reviews.kind, NodeKind::Workload);
    assert!(!reviews.proxy && graph.nodes[0].proxy);
}

#[test]
fn both_sides_count_once_and_the_callee_tells_mtls() {
    let productpage = target("productpage-v1", ProxyKind::Sidecar);
    let reviews = target("reviews-v2", ProxyKind::Sidecar);
    let graph = graph(&[
        (
            &productpage,
            PRODUCTPAGE_TO_REVIEWS.requests(200, 10),
            PRODUCTPAGE_TO_REVIEWS.requests(200, 40),
        ),
        (
            &reviews,
            REVIEWS_FROM_PRODUCTPAGE.requests(200, 10),
            REVIEWS_FROM_PRODUCTPAGE.requests(200, 40),
        ),
    ]);
    assert_eq!(graph.edges.len(), 1, "{graph:#?}");
    let edge = edge(&graph, "default/productpage-v1", "default/reviews-v2");
    assert_eq!(
        edge.rate, 3.0,
        "not 6: the callee's count is the same calls"
    );
    assert_eq!(edge.reporter, "source");
    assert!(edge.mtls);
}

#[test]
fn callers_without_source_series_show_from_the_callee() {
    // The gateway's proxy is not scraped; productpage's counts the calls.
    let from_gateway = Call {
        reporter: "destination",
        source: "istio-ingressgateway",
        destination: "productpage-v1",
        service: "productpage",
        security: "none",
    };
    // Its call to details, a service without a proxy, counts on its side.
    let to_details = Call {
        reporter: "source",
        source: "productpage-v1",
        destination: "unknown",
        service: "details",
        security: "unknown",
    };
    let productpage = target("productpage-v1", ProxyKind::Sidecar);
    let before = from_gateway.requests(200, 5) + &to_details.requests(200, 5);
    let now = from_gateway.requests(200, 25) + &to_details.requests(200, 15);
    let graph = graph(&[(&productpage, before, now)]);

    let inbound = edge(
        &graph,
        "default/istio-ingressgateway",
        "default/productpage-v1",
    );
    assert_eq!((inbound.rate, inbound.reporter), (2.0, "destination"));
    assert!(!inbound.mtls, "plaintext from the gateway");
    let outbound = edge(&graph, "default/productpage-v1", "service:default/details");
    assert_eq!(outbound.rate, 1.0);
    let details = graph
        .nodes
        .iter()
        .find(|n| n.id == "service:default/details")
        .unwrap();
    assert_eq!(details.kind, NodeKind::Service);
    assert_eq!(details.name, "details");
}

#[test]
fn idle_edges_reset_counters_and_new_series() {
    let call = &PRODUCTPAGE_TO_REVIEWS;
    let to_v3 = Call {
        destination: "reviews-v3",
        ..PRODUCTPAGE_TO_REVIEWS
    };
    let to_v1 = Call {
        destination: "reviews-v1",
        ..PRODUCTPAGE_TO_REVIEWS
    };
    let productpage = target("productpage-v1", ProxyKind::Sidecar);
    // v2: no change; v3: the proxy restarted and counted 7 since; v1: a
    // series that appeared in the window.
    let before = call.requests(200, 50) + &to_v3.requests(200, 90);
    let now = call.requests(200, 50) + &to_v3.requests(200, 7) + &to_v1.requests(200, 3);
    let graph = graph(&[(&productpage, before, now)]);
    let destinations: Vec<(&str, f64)> = graph
        .edges
        .iter()
        .map(|e| (e.destination.as_str(), e.rate))
        .collect();
    assert_eq!(
        destinations,
        [("default/reviews-v1", 0.3), ("default/reviews-v3", 0.7)]
    );
    assert!(
        !graph.nodes.iter().any(|n| n.id == "default/reviews-v2"),
        "a peer without traffic in the window is not drawn"
    );
}

#[test]
fn tcp_edges_count_connections_failures_and_bytes() {
    let call = Call {
        reporter: "source",
        source: "ratings-v2",
        destination: "unknown",
        service: "mongodb",
        security: "unknown",
    };
    let ratings = target("ratings-v2", ProxyKind::Sidecar);
    let before = call.tcp("connections_opened_total", "-", 10)
        + &call.tcp("sent_bytes_total", "-", 1000)
        + &call.tcp("received_bytes_total", "-", 5000);
    let now = call.tcp("connections_opened_total", "-", 13)
        + &call.tcp("connections_opened_total", "UF", 1)
        + &call.tcp("sent_bytes_total", "-", 3000)
        + &call.tcp("received_bytes_total", "-", 13000);
    let graph = graph(&[(&ratings, before, now)]);
    let edge = edge(&graph, "default/ratings-v2", "service:default/mongodb");
    assert_eq!(edge.protocol, "tcp");
    assert!((edge.rate - 0.4).abs() < 1e-9, "{edge:?}");
    assert!((edge.error_rate - 0.25).abs() < 1e-9, "{edge:?}");
    assert_eq!(edge.bytes_per_second, Some(1000.0));
    assert_eq!(edge.p99_ms, None);
}

#[test]
fn proxies_not_measured_yet_or_failing_are_nodes_without_edges() {
    let gateway = target("istio-ingressgateway", ProxyKind::Gateway);
    let ratings = target("ratings-v1", ProxyKind::Sidecar);
    let graph = build(&[
        Proxy {
            target: &gateway,
            state: ProxyState::Waiting,
        },
        Proxy {
            target: &ratings,
            state: ProxyState::Failed("connection refused"),
        },
    ]);
    assert!(graph.edges.is_empty());
    assert_eq!(graph.window_seconds, None);
    assert_eq!(graph.nodes[0].kind, NodeKind::Gateway);
    assert_eq!(graph.nodes[0].scrape_error, None);
    assert_eq!(
        graph.nodes[1].scrape_error.as_deref(),
        Some("connection refused")
    );
    let json = serde_json::to_value(&graph).unwrap();
    assert_eq!(json["nodes"][0]["kind"], "gateway");
    assert_eq!(json["nodes"][1]["scrape_error"], "connection refused");
}
