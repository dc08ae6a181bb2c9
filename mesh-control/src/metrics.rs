//! The control plane's metrics, with istiod's names so that Istio's
//! dashboards read them: `pilot_xds_pushes{type}`, `pilot_xds` (connected
//! proxies), `pilot_total_xds_rejects{type}`, `pilot_proxy_convergence_time`
//! (seconds from a config change to a proxy's push), `pilot_services`, and
//! `pilot_total_rejected_configs{type,name}` (config refused at the door,
//! recorded by the config sources), and `pilot_xds_config_size_bytes{type}`
//! (the size of each response).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::xds::XdsType;

/// Istio's buckets for `pilot_proxy_convergence_time`, in seconds.
const CONVERGENCE_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0, 30.0];
/// Istio's buckets for `pilot_xds_config_size_bytes`.
const CONFIG_SIZE_BUCKETS: &[f64] = &[1.0, 10e3, 1e6, 4e6, 10e6, 40e6];

#[derive(Debug)]
pub struct Metrics {
    pushes: [AtomicU64; 5],
    rejects: [AtomicU64; 5],
    connected: AtomicU64,
    services: AtomicU64,
    convergence: Histogram,
    /// By type, as [`XdsType::ALL`].
    config_size: [Histogram; 5],
    /// By (kind, name).
    rejected_configs: Mutex<BTreeMap<(String, String), u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            pushes: Default::default(),
            rejects: Default::default(),
            connected: AtomicU64::new(0),
            services: AtomicU64::new(0),
            convergence: Histogram::new(CONVERGENCE_BUCKETS),
            config_size: std::array::from_fn(|_| Histogram::new(CONFIG_SIZE_BUCKETS)),
            rejected_configs: Mutex::default(),
        }
    }
}

fn index(xds_type: XdsType) -> usize {
    XdsType::ALL
        .iter()
        .position(|t| *t == xds_type)
        .expect("every type is in ALL")
}

impl Metrics {
    /// Counts a response of `bytes` sent.
    pub fn record_push(&self, xds_type: XdsType, bytes: usize) {
        self.pushes[index(xds_type)].fetch_add(1, Ordering::Relaxed);
        self.config_size[index(xds_type)].record(bytes as f64);
    }

    pub fn record_reject(&self, xds_type: XdsType) {
        self.rejects[index(xds_type)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_convergence(&self, delay: Duration) {
        self.convergence.record(delay.as_secs_f64());
    }

    pub fn set_connected(&self, proxies: usize) {
        self.connected.store(proxies as u64, Ordering::Relaxed);
    }

    pub fn set_services(&self, services: usize) {
        self.services.store(services as u64, Ordering::Relaxed);
    }

    /// Counts a piece of config that was refused (invalid, or conflicting);
    /// `kind` is e.g. `VirtualService`, `name` is `<namespace>/<name>`.
    pub fn record_rejected_config(&self, kind: &str, name: &str) {
        *self
            .rejected_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((kind.to_owned(), name.to_owned()))
            .or_default() += 1;
    }

    pub fn pushes(&self, xds_type: XdsType) -> u64 {
        self.pushes[index(xds_type)].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(
            &mut out,
            "pilot_xds_pushes",
            "counter",
            "Pushes of xDS resources, by type.",
        );
        for t in XdsType::ALL {
            let _ = writeln!(out, "pilot_xds_pushes{{type=\"{t}\"}} {}", self.pushes(t));
        }
        header(
            &mut out,
            "pilot_total_xds_rejects",
            "counter",
            "xDS responses rejected (NACKed) by proxies, by type.",
        );
        for t in XdsType::ALL {
            let rejects = self.rejects[index(t)].load(Ordering::Relaxed);
            let _ = writeln!(out, "pilot_total_xds_rejects{{type=\"{t}\"}} {rejects}");
        }
        header(
            &mut out,
            "pilot_xds",
            "gauge",
            "Proxies connected over xDS.",
        );
        let _ = writeln!(out, "pilot_xds {}", self.connected.load(Ordering::Relaxed));
        header(
            &mut out,
            "pilot_services",
            "gauge",
            "Services known to the control plane.",
        );
        let _ = writeln!(
            out,
            "pilot_services {}",
            self.services.load(Ordering::Relaxed)
        );
        header(
            &mut out,
            "pilot_total_rejected_configs",
            "counter",
            "Config the control plane refused or ignored.",
        );
        let rejected = self
            .rejected_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for ((kind, name), count) in rejected.iter() {
            let _ = writeln!(
                out,
                "pilot_total_rejected_configs{{type=\"{}\",name=\"{}\"}} {count}",
                escape(kind),
                escape(name)
            );
        }
        drop(rejected);
        header(
            &mut out,
            "pilot_proxy_convergence_time",
            "histogram",
            "Seconds from a config change to a proxy receiving the resources it changed.",
        );
        self.convergence
            .render(&mut out, "pilot_proxy_convergence_time", "");
        header(
            &mut out,
            "pilot_xds_config_size_bytes",
            "histogram",
            "Bytes of each xDS response, by type.",
        );
        for t in XdsType::ALL {
            self.config_size[index(t)].render(
                &mut out,
                "pilot_xds_config_size_bytes",
                &format!("type=\"{t}\","),
            );
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value in the exposition format's escaping.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A histogram over fixed bucket bounds.
#[derive(Debug)]
struct Histogram {
    bounds: &'static [f64],
    /// Counts per bucket (not cumulative), then the overflow.
    buckets: Vec<AtomicU64>,
    /// The sum in millionths, to stay an integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn record(&self, value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|le| value <= *le)
            .unwrap_or(self.bounds.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    /// Writes the series; `labels` go before `le`, each followed by a comma.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, le) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let series = |suffix: &str| match labels.strip_suffix(',') {
            Some(labels) => format!("{name}_{suffix}{{{labels}}}"),
            None => format!("{name}_{suffix}"),
        };
        let _ = writeln!(out, "{} {sum}", series("sum"));
        let _ = writeln!(out, "{} {cumulative}", series("count"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics.record_push(XdsType::Cluster, 20_000);
        metrics.record_push(XdsType::Cluster, 20_000);
        metrics.record_reject(XdsType::Listener);
        metrics.set_connected(3);
        metrics.record_convergence(Duration::from_millis(150));
        metrics.record_convergence(Duration::from_secs(40));
        metrics.record_rejected_config("VirtualService", "default/bad\"name");
        let text = metrics.render();
        for line in [
            "pilot_xds_pushes{type=\"cds\"} 2",
            "pilot_xds_pushes{type=\"sds\"} 0",
            "pilot_total_xds_rejects{type=\"lds\"} 1",
            "pilot_xds 3",
            "pilot_proxy_convergence_time_bucket{le=\"0.1\"} 0",
            "pilot_proxy_convergence_time_bucket{le=\"0.5\"} 1",
            "pilot_proxy_convergence_time_bucket{le=\"30\"} 1",
            "pilot_proxy_convergence_time_bucket{le=\"+Inf\"} 2",
            "pilot_proxy_convergence_time_count 2",
            "pilot_proxy_convergence_time_sum 40.15",
            "pilot_total_rejected_configs{type=\"VirtualService\",name=\"default/bad\\\"name\"} 1",
            "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"10000\"} 0",
            "pilot_xds_config_size_bytes_bucket{type=\"cds\",le=\"1000000\"} 2",
            "pilot_xds_config_size_bytes_sum{type=\"cds\"} 40000",
            "pilot_xds_config_size_bytes_count{type=\"cds\"} 2",
            "pilot_xds_config_size_bytes_count{type=\"eds\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
