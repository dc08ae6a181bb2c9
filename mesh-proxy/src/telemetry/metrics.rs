//! Istio's standard metrics: `istio_requests_total`, the request duration
//! and size histograms, and the TCP counters, with Istio's labels.
//!
//! A series is found by its labels' identities (shared `Arc`s of peers and
//! services), which makes the per-request lookup a cheap hash; series whose
//! printed labels coincide (a peer decoded twice, a label removed by an
//! override) are summed when the metrics are rendered.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use super::peer::Workload;
use crate::config::{MetricOverride, ServiceRef};
use crate::http::info::ResponseFlags;

/// Envoy's default histogram buckets, which Istio keeps.
const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Who reports: the client's proxy, the server's, or a shared server-side one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reporter {
    Source,
    Destination,
    Waypoint,
}

impl Reporter {
    fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
            Reporter::Waypoint => "waypoint",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http,
    Grpc,
    Tcp,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
            Protocol::Tcp => "tcp",
        }
    }
}

/// `connection_security_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Security {
    MutualTls,
    None,
    Unknown,
}

impl Security {
    fn as_str(self) -> &'static str {
        match self {
            Security::MutualTls => "mutual_tls",
            Security::None => "none",
            Security::Unknown => "unknown",
        }
    }
}

/// An `Arc` compared and hashed by address.
#[derive(Debug)]
pub struct ById<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for ById<T> {
    fn clone(&self) -> Self {
        ById(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> PartialEq for ById<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: ?Sized> Eq for ById<T> {}

impl<T: ?Sized> Hash for ById<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0).cast::<()>(), state);
    }
}

/// What every standard metric is labelled with, request or connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peers {
    pub reporter: Reporter,
    pub source: ById<Workload>,
    pub destination: ById<Workload>,
    /// SPIFFE ids; `None` prints `unknown`.
    pub source_principal: Option<ById<str>>,
    pub destination_principal: Option<ById<str>>,
    pub service: ById<ServiceRef>,
    pub security: Security,
    /// The listener's overrides.
    pub overrides: ById<Overrides>,
}

/// The labels of one request's series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub peers: Peers,
    pub protocol: Protocol,
    pub response_code: u16,
    pub grpc_status: Option<u32>,
    pub flags: ResponseFlags,
}

/// One request, measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSample {
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// The standard metrics of the whole proxy, across config changes.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: RwLock<HashMap<RequestLabels, Arc<RequestSeries>>>,
    connections: RwLock<HashMap<Peers, Arc<TcpSeries>>>,
}

#[derive(Debug, Default)]
struct RequestSeries {
    total: AtomicU64,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

/// Counters of the TCP connections that share labels.
#[derive(Debug, Default)]
pub struct TcpSeries {
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// In thousandths of the unit, so that fractional milliseconds add up.
    sum_milli: AtomicU64,
}

impl Histogram {
    fn observe(&self, value: f64) {
        if let Some(i) = BUCKETS.iter().position(|le| value <= *le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_milli
            .fetch_add((value * 1000.0) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            count: self.count.load(Ordering::Relaxed),
            sum_milli: self.sum_milli.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct HistogramSnapshot {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_milli: u64,
}

impl HistogramSnapshot {
    fn add(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_milli += other.sum_milli;
    }
}

/// The metrics Istio defines, in the order they are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Metric {
    RequestsTotal,
    RequestDuration,
    RequestBytes,
    ResponseBytes,
    TcpOpened,
    TcpClosed,
    TcpSent,
    TcpReceived,
}

impl Metric {
    const ALL: [Metric; 8] = [
        Metric::RequestsTotal,
        Metric::RequestDuration,
        Metric::RequestBytes,
        Metric::ResponseBytes,
        Metric::TcpOpened,
        Metric::TcpClosed,
        Metric::TcpSent,
        Metric::TcpReceived,
    ];

    /// The name without `istio_`, as overrides name it.
    fn short_name(self) -> &'static str {
        match self {
            Metric::RequestsTotal => "requests_total",
            Metric::RequestDuration => "request_duration_milliseconds",
            Metric::RequestBytes => "request_bytes",
            Metric::ResponseBytes => "response_bytes",
            Metric::TcpOpened => "tcp_connections_opened_total",
            Metric::TcpClosed => "tcp_connections_closed_total",
            Metric::TcpSent => "tcp_sent_bytes_total",
            Metric::TcpReceived => "tcp_received_bytes_total",
        }
    }
}

/// A listener's overrides, resolved per metric.
#[derive(Debug, Default)]
pub struct Overrides {
    dropped: Vec<Metric>,
    removed: Vec<(Metric, String)>,
}

impl Overrides {
    pub fn new(overrides: &[MetricOverride]) -> Overrides {
        let mut resolved = Overrides::default();
        for entry in overrides {
            let metrics = Metric::ALL
                .into_iter()
                .filter(|m| entry.metric.as_deref().is_none_or(|n| n == m.short_name()));
            for metric in metrics {
                if entry.drop {
                    resolved.dropped.push(metric);
                }
                for tag in &entry.tags_to_remove {
                    resolved.removed.push((metric, tag.clone()));
                }
            }
        }
        resolved
    }

    fn keeps(&self, metric: Metric) -> bool {
        !self.dropped.contains(&metric)
    }

    fn keeps_label(&self, metric: Metric, label: &str) -> bool {
        !self.removed.iter().any(|(m, l)| *m == metric && l == label)
    }

    /// Whether any request metric is reported.
    pub fn reports_requests(&self) -> bool {
        Metric::ALL[..4].iter().any(|m| self.keeps(*m))
    }
}

impl Metrics {
    pub fn record_request(&self, labels: RequestLabels, sample: RequestSample) {
        let series = lookup(&self.requests, labels);
        series.total.fetch_add(1, Ordering::Relaxed);
        series.duration.observe(sample.duration_ms);
        series.request_bytes.observe(sample.request_bytes as f64);
        series.response_bytes.observe(sample.response_bytes as f64);
    }

    /// The counters a new TCP connection adds to; counts it opened.
    pub fn open_connection(&self, peers: Peers) -> Arc<TcpSeries> {
        let series = lookup(&self.connections, peers);
        series.opened.fetch_add(1, Ordering::Relaxed);
        series
    }

    /// Prometheus text: `# TYPE` lines, then the series.
    pub fn render(&self, out: &mut String) {
        let mut counters: BTreeMap<(Metric, String), u64> = BTreeMap::new();
        let mut histograms: BTreeMap<(Metric, String), HistogramSnapshot> = BTreeMap::new();
        for (labels, series) in read(&self.requests).iter() {
            let overrides = &labels.peers.overrides.0;
            let histogram_series = [
                (Metric::RequestDuration, &series.duration),
                (Metric::RequestBytes, &series.request_bytes),
                (Metric::ResponseBytes, &series.response_bytes),
            ];
            if overrides.keeps(Metric::RequestsTotal) {
                let key = (
                    Metric::RequestsTotal,
                    request_labels(labels, Metric::RequestsTotal),
                );
                *counters.entry(key).or_default() += series.total.load(Ordering::Relaxed);
            }
            for (metric, histogram) in histogram_series {
                if overrides.keeps(metric) {
                    let key = (metric, request_labels(labels, metric));
                    histograms
                        .entry(key)
                        .or_default()
                        .add(&histogram.snapshot());
                }
            }
        }
        for (peers, series) in read(&self.connections).iter() {
            let values = [
                (Metric::TcpOpened, &series.opened),
                (Metric::TcpClosed, &series.closed),
                (Metric::TcpSent, &series.sent),
                (Metric::TcpReceived, &series.received),
            ];
            for (metric, value) in values {
                if peers.overrides.0.keeps(metric) {
                    let mut text = String::new();
                    peer_labels(&mut text, peers, Protocol::Tcp, metric);
                    *counters.entry((metric, text)).or_default() += value.load(Ordering::Relaxed);
                }
            }
        }
        render_all(&counters, &histograms, out);
    }
}

fn read<K, V>(map: &RwLock<HashMap<K, V>>) -> std::sync::RwLockReadGuard<'_, HashMap<K, V>> {
    map.read().unwrap_or_else(PoisonError::into_inner)
}

/// The series for `key`, made on first use.
fn lookup<K: Hash + Eq, V: Default>(map: &RwLock<HashMap<K, Arc<V>>>, key: K) -> Arc<V> {
    if let Some(series) = read(map).get(&key) {
        return Arc::clone(series);
    }
    let mut map = map.write().unwrap_or_else(PoisonError::into_inner);
    Arc::clone(map.entry(key).or_default())
}

fn render_all(
    counters: &BTreeMap<(Metric, String), u64>,
    histograms: &BTreeMap<(Metric, String), HistogramSnapshot>,
    out: &mut String,
) {
    let mut last = None;
    for ((metric, labels), value) in counters {
        if last != Some(*metric) {
            let _ = writeln!(out, "# TYPE istio_{} counter", metric.short_name());
            last = Some(*metric);
        }
        let _ = writeln!(out, "istio_{}{{{labels}}} {value}", metric.short_name());
    }
    for ((metric, labels), h) in histograms {
        let name = metric.short_name();
        if last != Some(*metric) {
            let _ = writeln!(out, "# TYPE istio_{name} histogram");
            last = Some(*metric);
        }
        let mut cumulative = 0;
        for (le, count) in BUCKETS.iter().zip(h.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "istio_{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "istio_{name}_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "istio_{name}_sum{{{labels}}} {}",
            h.sum_milli as f64 / 1000.0
        );
        let _ = writeln!(out, "istio_{name}_count{{{labels}}} {}", h.count);
    }
}

fn request_labels(labels: &RequestLabels, metric: Metric) -> String {
    let mut text = String::with_capacity(768);
    peer_labels(&mut text, &labels.peers, labels.protocol, metric);
    let keeps = |l| labels.peers.overrides.0.keeps_label(metric, l);
    if keeps("response_code") {
        let _ = write!(text, ",response_code=\"{}\"", labels.response_code);
    }
    if keeps("grpc_response_status") {
        let status = labels
            .grpc_status
            .map(|s| s.to_string())
            .unwrap_or_default();
        let _ = write!(text, ",grpc_response_status=\"{status}\"");
    }
    if keeps("response_flags") {
        let _ = write!(text, ",response_flags=\"{}\"", labels.flags);
    }
    text
}

/// The labels requests and connections share, in Istio's order.
fn peer_labels(text: &mut String, peers: &Peers, protocol: Protocol, metric: Metric) {
    let source = &peers.source.0;
    let destination = &peers.destination.0;
    let service = &peers.service.0;
    let principal = |p: &Option<ById<str>>| p.as_ref().map_or("", |p| &*p.0).to_owned();
    let pairs: [(&str, &str); 22] = [
        ("reporter", peers.reporter.as_str()),
        ("source_workload", &source.workload),
        ("source_canonical_service", &source.canonical_service),
        ("source_canonical_revision", &source.canonical_revision),
        ("source_workload_namespace", &source.namespace),
        ("source_principal", &principal(&peers.source_principal)),
        ("source_app", &source.app),
        ("source_version", &source.version),
        ("source_cluster", &source.cluster),
        ("destination_workload", &destination.workload),
        ("destination_workload_namespace", &destination.namespace),
        (
            "destination_principal",
            &principal(&peers.destination_principal),
        ),
        ("destination_app", &destination.app),
        ("destination_version", &destination.version),
        ("destination_service", &service.host),
        (
            "destination_canonical_service",
            &destination.canonical_service,
        ),
        (
            "destination_canonical_revision",
            &destination.canonical_revision,
        ),
        ("destination_service_name", &service.name),
        ("destination_service_namespace", &service.namespace),
        ("destination_cluster", &destination.cluster),
        ("request_protocol", protocol.as_str()),
        ("connection_security_policy", peers.security.as_str()),
    ];
    for (name, value) in pairs {
        if !peers.overrides.0.keeps_label(metric, name) {
            continue;
        }
        if !text.is_empty() {
            text.push(',');
        }
        let value = if value.is_empty() { "unknown" } else { value };
        let _ = write!(text, "{name}=\"");
        escape(value, text);
        text.push('"');
    }
}

/// Prometheus label values escape backslashes, quotes and newlines.
fn escape(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(overrides: Overrides) -> Peers {
        let workload = Arc::new(Workload {
            workload: "productpage-v1".into(),
            namespace: "default".into(),
            app: "productpage".into(),
            version: "v1".into(),
            canonical_service: "productpage".into(),
            canonical_revision: "v1".into(),
            ..Workload::default()
        });
        Peers {
            reporter: Reporter::Source,
            source: ById(workload),
            destination: ById(Arc::new(Workload::default())),
            source_principal: None,
            destination_principal: None,
            service: ById(Arc::new(ServiceRef {
                host: "reviews.default.svc.cluster.local".into(),
                name: "reviews".into(),
                namespace: "default".into(),
            })),
            security: Security::Unknown,
            overrides: ById(Arc::new(overrides)),
        }
    }

    fn labels(peers: Peers, code: u16) -> RequestLabels {
        RequestLabels {
            peers,
            protocol: Protocol::Http,
            response_code: code,
            grpc_status: None,
            flags: ResponseFlags::NONE,
        }
    }

    fn sample(ms: f64) -> RequestSample {
        RequestSample {
            duration_ms: ms,
            request_bytes: 100,
            response_bytes: 2000,
        }
    }

    #[test]
    fn counts_and_histograms_render_with_istio_labels() {
        let metrics = Metrics::default();
        let p = peers(Overrides::default());
        metrics.record_request(labels(p.clone(), 200), sample(3.0));
        metrics.record_request(labels(p.clone(), 200), sample(30.0));
        metrics.record_request(labels(p, 503), sample(0.2));
        let mut out = String::new();
        metrics.render(&mut out);
        let total_200 = out
            .lines()
            .find(|l| l.starts_with("istio_requests_total{") && l.contains("response_code=\"200\""))
            .expect("a 200 series");
        assert!(total_200.ends_with(" 2"), "{total_200}");
        for label in [
            "reporter=\"source\"",
            "source_workload=\"productpage-v1\"",
            "destination_workload=\"unknown\"",
            "destination_service=\"reviews.default.svc.cluster.local\"",
            "destination_service_name=\"reviews\"",
            "request_protocol=\"http\"",
            "response_flags=\"-\"",
            "grpc_response_status=\"\"",
            "connection_security_policy=\"unknown\"",
        ] {
            assert!(total_200.contains(label), "{label} in {total_200}");
        }
        assert!(out.contains("# TYPE istio_request_duration_milliseconds histogram"));
        let bucket_5 = out
            .lines()
            .find(|l| {
                l.starts_with("istio_request_duration_milliseconds_bucket")
                    && l.contains("response_code=\"200\"")
                    && l.contains("le=\"5\"")
            })
            .unwrap();
        assert!(bucket_5.ends_with(" 1"), "{bucket_5}");
        assert!(out.lines().any(|l| {
            l.starts_with("istio_request_duration_milliseconds_sum")
                && l.contains("response_code=\"200\"")
                && l.ends_with(" 33")
        }));
    }

    #[test]
    fn overrides_drop_metrics_and_merge_removed_labels() {
        let metrics = Metrics::default();
        let overrides = Overrides::new(&[
            MetricOverride {
                metric: Some("requests_total".into()),
                drop: false,
                tags_to_remove: vec!["response_code".into()],
            },
            MetricOverride {
                metric: Some("request_bytes".into()),
                drop: true,
                tags_to_remove: vec![],
            },
        ]);
        let p = peers(overrides);
        metrics.record_request(labels(p.clone(), 200), sample(1.0));
        metrics.record_request(labels(p, 503), sample(1.0));
        let mut out = String::new();
        metrics.render(&mut out);
        let totals: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .collect();
        assert_eq!(totals.len(), 1, "{out}");
        assert!(totals[0].ends_with(" 2") && !totals[0].contains("response_code"));
        assert!(!out.contains("istio_request_bytes"));
        assert!(out.contains("istio_response_bytes_count"));
    }
}
