//! Counters, rendered in Prometheus' text format with Envoy's names so that
//! existing dashboards read them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one cluster.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub rq_total: AtomicU64,
    /// By status class: 1xx .. 5xx.
    pub rq_class: [AtomicU64; 5],
    pub rq_timeout: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub cx_total: AtomicU64,
}

impl ClusterStats {
    pub fn response(&self, status: u16) {
        self.rq_total.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = self.rq_class.get(usize::from(status / 100).wrapping_sub(1)) {
            class.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, cluster: &str, out: &mut String) {
        let label = format!("envoy_cluster_name=\"{cluster}\"");
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq_total{{{label}}} {}",
            get(&self.rq_total)
        );
        for (i, class) in self.rq_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"{}\",{label}}} {}",
                i + 1,
                get(class)
            );
        }
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_rq_timeout{{{label}}} {}",
            get(&self.rq_timeout)
        );
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_cx_connect_fail{{{label}}} {}",
            get(&self.cx_connect_fail)
        );
        let _ = writeln!(
            out,
            "envoy_cluster_upstream_cx_total{{{label}}} {}",
            get(&self.cx_total)
        );
    }
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub cx_total: AtomicU64,
    pub rq_total: AtomicU64,
    /// Requests that matched no route.
    pub rq_no_route: AtomicU64,
}

impl ListenerStats {
    pub fn render(&self, prefix: &str, out: &mut String) {
        let label = format!("envoy_http_conn_manager_prefix=\"{prefix}\"");
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "envoy_http_downstream_cx_total{{{label}}} {}",
            get(&self.cx_total)
        );
        let _ = writeln!(
            out,
            "envoy_http_downstream_rq_total{{{label}}} {}",
            get(&self.rq_total)
        );
        let _ = writeln!(
            out,
            "envoy_http_no_route{{{label}}} {}",
            get(&self.rq_no_route)
        );
    }
}
