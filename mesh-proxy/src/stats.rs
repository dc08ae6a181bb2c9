//! Counters, rendered in Prometheus' text format with Envoy's names so that
//! existing dashboards read them.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A cluster's connections to its endpoints: opened so far, open now, and
/// attempts that failed (once per attempt, however many requests waited
/// for it).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub total: AtomicU64,
    pub active: AtomicU64,
    pub connect_fail: AtomicU64,
}

impl ConnectionStats {
    /// Counts a new connection; the guard counts its end.
    pub fn opened(self: &Arc<Self>) -> OpenConnection {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }
}

/// An open connection, counted in `active` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<ConnectionStats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counters of one cluster.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub rq_total: AtomicU64,
    /// By status class: 1xx .. 5xx.
    pub rq_class: [AtomicU64; 5],
    pub rq_timeout: AtomicU64,
    /// Connections to the endpoints, shared with the tasks that run them.
    pub connections: Arc<ConnectionStats>,
    /// Requests refused by the circuit breakers.
    pub rq_pending_overflow: AtomicU64,
    pub rq_retry: AtomicU64,
    pub rq_retry_overflow: AtomicU64,
    /// Present when the cluster has outlier detection.
    pub outlier: Option<Arc<OutlierStats>>,
    /// Present when the cluster has active health checking.
    pub health: Option<Arc<crate::health::HealthStats>>,
    /// Present when some endpoint is reached over TLS.
    pub tls: Option<Arc<crate::tls::TlsStats>>,
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
        for (i, class) in self.rq_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "envoy_cluster_upstream_rq_xx{{envoy_response_code_class=\"{}\",{label}}} {}",
                i + 1,
                class.load(Ordering::Relaxed)
            );
        }
        let counters = [
            ("upstream_rq_total", &self.rq_total),
            ("upstream_rq_timeout", &self.rq_timeout),
            ("upstream_cx_connect_fail", &self.connections.connect_fail),
            ("upstream_cx_total", &self.connections.total),
            ("upstream_cx_active", &self.connections.active),
            ("upstream_rq_pending_overflow", &self.rq_pending_overflow),
            ("upstream_rq_retry", &self.rq_retry),
            ("upstream_rq_retry_overflow", &self.rq_retry_overflow),
        ];
        for (name, counter) in counters {
            let _ = writeln!(
                out,
                "envoy_cluster_{name}{{{label}}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        if let Some(outlier) = &self.outlier {
            outlier.render(&label, out);
        }
        if let Some(health) = &self.health {
            health.render(&label, out);
        }
        if let Some(tls) = &self.tls {
            tls.render(&label, out);
        }
    }

    /// Envoy's `membership_*` gauges, counted from the endpoints' health now.
    pub fn render_membership(cluster: &str, membership: crate::lb::Membership, out: &mut String) {
        let label = format!("envoy_cluster_name=\"{cluster}\"");
        for (name, value) in [
            ("total", membership.total),
            ("healthy", membership.healthy),
            ("degraded", membership.degraded),
        ] {
            let _ = writeln!(out, "envoy_cluster_membership_{name}{{{label}}} {value}");
        }
    }
}

/// Outlier detection of one cluster: a gauge and counters.
#[derive(Debug, Default)]
pub struct OutlierStats {
    /// Endpoints ejected now (a gauge).
    pub ejections_active: AtomicU64,
    pub ejections_enforced_total: AtomicU64,
    pub ejections_enforced_consecutive_5xx: AtomicU64,
    pub ejections_enforced_consecutive_gateway_failure: AtomicU64,
    pub ejections_detected_consecutive_5xx: AtomicU64,
    pub ejections_detected_consecutive_gateway_failure: AtomicU64,
    /// Ejections refused by `max_ejection_percent`.
    pub ejections_overflow: AtomicU64,
}

impl OutlierStats {
    fn render(&self, label: &str, out: &mut String) {
        let series = [
            ("ejections_active", &self.ejections_active),
            ("ejections_enforced_total", &self.ejections_enforced_total),
            (
                "ejections_enforced_consecutive_5xx",
                &self.ejections_enforced_consecutive_5xx,
            ),
            (
                "ejections_enforced_consecutive_gateway_failure",
                &self.ejections_enforced_consecutive_gateway_failure,
            ),
            (
                "ejections_detected_consecutive_5xx",
                &self.ejections_detected_consecutive_5xx,
            ),
            (
                "ejections_detected_consecutive_gateway_failure",
                &self.ejections_detected_consecutive_gateway_failure,
            ),
            ("ejections_overflow", &self.ejections_overflow),
        ];
        for (name, value) in series {
            let _ = writeln!(
                out,
                "envoy_cluster_outlier_detection_{name}{{{label}}} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub cx_total: AtomicU64,
    pub rq_total: AtomicU64,
    /// Requests that matched no route.
    pub rq_no_route: AtomicU64,
    /// Requests an RBAC filter refused.
    pub rq_rbac_denied: AtomicU64,
    /// What `ext_authz` filters did with requests.
    pub ext_authz: ExtAuthzStats,
    /// Requests the fault filter delayed, and those it aborted.
    pub fault_delays_injected: AtomicU64,
    pub fault_aborts_injected: AtomicU64,
    /// Requests past their route's `max_stream_duration`.
    pub rq_max_duration_reached: AtomicU64,
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
        let _ = writeln!(
            out,
            "envoy_http_rbac_denied{{{label}}} {}",
            get(&self.rq_rbac_denied)
        );
        let _ = writeln!(
            out,
            "envoy_http_fault_delays_injected{{{label}}} {}",
            get(&self.fault_delays_injected)
        );
        let _ = writeln!(
            out,
            "envoy_http_fault_aborts_injected{{{label}}} {}",
            get(&self.fault_aborts_injected)
        );
        let _ = writeln!(
            out,
            "envoy_http_downstream_rq_max_duration_reached{{{label}}} {}",
            get(&self.rq_max_duration_reached)
        );
    }
}

/// Envoy's `ext_authz` counters of a connection manager.
#[derive(Debug, Default)]
pub struct ExtAuthzStats {
    /// The authorizer allowed the request.
    pub ok: AtomicU64,
    /// The authorizer denied it.
    pub denied: AtomicU64,
    /// The authorizer could not be asked, or failed.
    pub error: AtomicU64,
    /// Requests let through after an error, by `failure_mode_allow`.
    pub failure_mode_allowed: AtomicU64,
    /// Requests the filter skipped (`filter_enabled_metadata`).
    pub disabled: AtomicU64,
}

impl ExtAuthzStats {
    /// For connection managers with an `ext_authz` filter, as Envoy has them.
    pub fn render(&self, prefix: &str, out: &mut String) {
        let label = format!("envoy_http_conn_manager_prefix=\"{prefix}\"");
        let series = [
            ("ok", &self.ok),
            ("denied", &self.denied),
            ("error", &self.error),
            ("failure_mode_allowed", &self.failure_mode_allowed),
            ("disabled", &self.disabled),
        ];
        for (name, value) in series {
            let _ = writeln!(
                out,
                "envoy_http_ext_authz_{name}{{{label}}} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}
