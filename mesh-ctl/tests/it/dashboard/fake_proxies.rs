//! Proxies that serve Istio metrics for Bookinfo's traffic, on ephemeral
//! loopback ports: each scrape finds every counter grown by the same amount
//! again, so the dashboard sees steady traffic.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A Bookinfo workload and its proxy.
pub struct Workload {
    pub name: &'static str,
    pub namespace: &'static str,
    pub app: &'static str,
    pub version: &'static str,
    pub gateway: bool,
}

const fn sidecar(name: &'static str, app: &'static str, version: &'static str) -> Workload {
    Workload {
        name,
        namespace: "default",
        app,
        version,
        gateway: false,
    }
}

pub const GATEWAY: Workload = Workload {
    name: "istio-ingressgateway",
    namespace: "istio-system",
    app: "istio-ingressgateway",
    version: "unknown",
    gateway: true,
};
pub const PRODUCTPAGE: Workload = sidecar("productpage-v1", "productpage", "v1");
pub const DETAILS: Workload = sidecar("details-v1", "details", "v1");
pub const REVIEWS_V1: Workload = sidecar("reviews-v1", "reviews", "v1");
pub const REVIEWS_V2: Workload = sidecar("reviews-v2", "reviews", "v2");
pub const REVIEWS_V3: Workload = sidecar("reviews-v3", "reviews", "v3");
pub const RATINGS: Workload = sidecar("ratings-v1", "ratings", "v1");

pub const WORKLOADS: [&Workload; 7] = [
    &GATEWAY,
    &PRODUCTPAGE,
    &DETAILS,
    &REVIEWS_V1,
    &REVIEWS_V2,
    &REVIEWS_V3,
    &RATINGS,
];

/// Calls between workloads: how many succeed and how many get a 503 in
/// the time between two scrapes.
pub struct Call {
    pub source: &'static Workload,
    pub destination: &'static Workload,
    pub service: &'static str,
    pub ok: u64,
    pub failed: u64,
}

pub const CALLS: [Call; 7] = [
    call(&GATEWAY, &PRODUCTPAGE, "productpage", 10, 0),
    call(&PRODUCTPAGE, &DETAILS, "details", 10, 0),
    call(&PRODUCTPAGE, &REVIEWS_V1, "reviews", 4, 0),
    call(&PRODUCTPAGE, &REVIEWS_V2, "reviews", 3, 0),
    call(&PRODUCTPAGE, &REVIEWS_V3, "reviews", 3, 0),
    call(&REVIEWS_V2, &RATINGS, "ratings", 3, 0),
    // ratings fails a third of reviews-v3's calls.
    call(&REVIEWS_V3, &RATINGS, "ratings", 2, 1),
];

const fn call(
    source: &'static Workload,
    destination: &'static Workload,
    service: &'static str,
    ok: u64,
    failed: u64,
) -> Call {
    Call {
        source,
        destination,
        service,
        ok,
        failed,
    }
}

impl Workload {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Its entry in the dashboard's targets file.
    pub fn target(&self, admin: SocketAddr) -> Value {
        json!({
            "workload": self.name,
            "namespace": self.namespace,
            "app": self.app,
            "version": self.version,
            "kind": if self.gateway { "gateway" } else { "sidecar" },
            "admin": admin.to_string(),
        })
    }

    /// Its proxy's Istio metrics after `scrapes` scrapes: the calls it
    /// makes (as source) and, for a sidecar, those it receives over mTLS
    /// (as destination), the same calls both sides count.
    fn metrics(&self, scrapes: u64) -> String {
        let mut out = String::new();
        for call in &CALLS {
            if call.source.name == self.name {
                call.render("source", "unknown", scrapes, &mut out);
            }
            if call.destination.name == self.name && !self.gateway {
                call.render("destination", "mutual_tls", scrapes, &mut out);
            }
        }
        out
    }
}

impl Call {
    fn labels(&self, reporter: &str, security: &str, code: u16) -> String {
        let (s, d) = (self.source, self.destination);
        format!(
            "reporter=\"{reporter}\",source_workload=\"{}\",source_workload_namespace=\"{}\",\
             source_app=\"{}\",source_version=\"{}\",destination_workload=\"{}\",\
             destination_workload_namespace=\"{}\",destination_app=\"{}\",destination_version=\"{}\",\
             destination_service=\"{svc}.default.svc.cluster.local\",destination_service_name=\"{svc}\",\
             destination_service_namespace=\"default\",request_protocol=\"http\",\
             connection_security_policy=\"{security}\",response_code=\"{code}\",response_flags=\"-\"",
            s.name,
            s.namespace,
            s.app,
            s.version,
            d.name,
            d.namespace,
            d.app,
            d.version,
            svc = self.service,
        )
    }

    fn render(&self, reporter: &str, security: &str, scrapes: u64, out: &mut String) {
        for (code, count) in [(200, self.ok), (503, self.failed)] {
            if count == 0 {
                continue;
            }
            let labels = self.labels(reporter, security, code);
            let total = count * scrapes;
            out.push_str(&format!("istio_requests_total{{{labels}}} {total}\n"));
            // Half the calls within 5 ms, all within 100 ms.
            for (le, share) in [("5", 0.5), ("25", 0.9), ("100", 1.0), ("+Inf", 1.0)] {
                let cumulative = (total as f64 * share).round();
                out.push_str(&format!(
                    "istio_request_duration_milliseconds_bucket{{{labels},le=\"{le}\"}} {cumulative}\n"
                ));
            }
        }
    }
}

/// Serves `workload`'s metrics at `/stats/prometheus` on 127.0.0.1:0 from
/// the current runtime; returns the address.
pub async fn serve(workload: &'static Workload) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let scrapes = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let scrapes = Arc::clone(&scrapes);
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let body = match request.uri().path() {
                    "/stats/prometheus" => {
                        workload.metrics(scrapes.fetch_add(1, Ordering::Relaxed) + 1)
                    }
                    _ => String::new(),
                };
                async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    address
}
