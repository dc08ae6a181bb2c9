//! Which endpoints are usable, panic mode, and what the admin pages show of
//! each endpoint.
//!
//! An endpoint is unhealthy when outlier detection ejected it, it fails its
//! active health checks, or the control plane reports it `UNHEALTHY`,
//! `DRAINING` or `TIMEOUT`; otherwise it is degraded when reported
//! `DEGRADED`, and healthy. As in Envoy, when the healthy and degraded
//! endpoints together are fewer than `healthy_panic_threshold` percent of
//! all (by count, not weight), every endpoint is used; a threshold of 0
//! turns panic mode off, and a cluster with no usable endpoint then has
//! nothing to pick. Degraded endpoints take traffic only when no healthy
//! one is left (Envoy would start sending them a share as soon as the
//! healthy ones fall below 100/1.4 = 71.4%).

use std::sync::atomic::{AtomicU64, Ordering};

use super::Balancer;
use crate::config::{Endpoint, HealthStatus};

/// How load balancing sees one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Healthy,
    Degraded,
    Unhealthy,
}

/// The endpoints to pick from, by index: the healthy ones, else the degraded
/// ones, or all of them in panic mode.
pub fn in_service(conditions: &[Condition], panic_threshold: f64) -> Vec<usize> {
    let of = |wanted: Condition| -> Vec<usize> {
        (0..conditions.len())
            .filter(|i| conditions[*i] == wanted)
            .collect()
    };
    let healthy = of(Condition::Healthy);
    let degraded = of(Condition::Degraded);
    let usable = (healthy.len() + degraded.len()) as f64;
    if conditions.is_empty() || 100.0 * usable / (conditions.len() as f64) < panic_threshold {
        return (0..conditions.len()).collect();
    }
    if healthy.is_empty() {
        degraded
    } else {
        healthy
    }
}

/// Request counters of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Requests {
    total: AtomicU64,
    success: AtomicU64,
    error: AtomicU64,
}

impl Requests {
    pub(super) fn picked(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// A 5xx (or a connect failure, reset or timeout) is an error.
    pub(super) fn report(&self, status: u16) {
        let counter = if status >= 500 {
            &self.error
        } else {
            &self.success
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One endpoint as the admin pages show it.
#[derive(Debug, Clone)]
pub struct HostStatus {
    pub endpoint: Endpoint,
    pub failed_active_hc: bool,
    pub pending_active_hc: bool,
    pub failed_outlier_check: bool,
    /// Requests in flight.
    pub rq_active: u64,
    /// Requests sent to it (each retry counts).
    pub rq_total: u64,
    pub rq_success: u64,
    /// 5xx, connect failures, resets and timeouts.
    pub rq_error: u64,
}

impl HostStatus {
    /// Envoy's `health_flags`: `healthy`, or the failure flags, each after a `/`.
    pub fn health_flags(&self) -> String {
        let flags = [
            (self.failed_active_hc, "/failed_active_hc"),
            (self.failed_outlier_check, "/failed_outlier_check"),
            (
                self.endpoint.health_status.is_failed(),
                "/failed_eds_health",
            ),
            (
                self.endpoint.health_status == HealthStatus::Degraded,
                "/degraded_eds_health",
            ),
            (self.pending_active_hc, "/pending_active_hc"),
        ];
        let text: String = flags
            .iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| *name)
            .collect();
        if text.is_empty() {
            "healthy".to_owned()
        } else {
            text
        }
    }
}

/// How many endpoints are healthy, degraded, and in all (Envoy's
/// `membership_*` gauges; panic mode does not change them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub total: usize,
    pub healthy: usize,
    pub degraded: usize,
}

impl Balancer {
    /// How endpoint `index` stands now.
    pub(super) fn condition(&self, index: usize) -> Condition {
        let ejected = self.outlier.as_ref().is_some_and(|d| d.is_ejected(index));
        let status = self.endpoints[index].health_status;
        if ejected || self.health.failed_active_hc(index) || status.is_failed() {
            Condition::Unhealthy
        } else if status == HealthStatus::Degraded {
            Condition::Degraded
        } else {
            Condition::Healthy
        }
    }

    pub fn membership(&self) -> Membership {
        let mut membership = Membership {
            total: self.endpoints.len(),
            healthy: 0,
            degraded: 0,
        };
        for index in 0..self.endpoints.len() {
            match self.condition(index) {
                Condition::Healthy => membership.healthy += 1,
                Condition::Degraded => membership.degraded += 1,
                Condition::Unhealthy => {}
            }
        }
        membership
    }

    /// Every endpoint with its health and request counts.
    pub fn host_statuses(&self) -> Vec<HostStatus> {
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, endpoint)| {
                let requests = &self.requests[i];
                HostStatus {
                    endpoint: endpoint.clone(),
                    failed_active_hc: self.health.failed_active_hc(i),
                    pending_active_hc: self.health.pending_active_hc(i),
                    failed_outlier_check: self.outlier.as_ref().is_some_and(|d| d.is_ejected(i)),
                    rq_active: self.active[i].load(Ordering::Relaxed) as u64,
                    rq_total: requests.total.load(Ordering::Relaxed),
                    rq_success: requests.success.load(Ordering::Relaxed),
                    rq_error: requests.error.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Condition::{Degraded, Healthy, Unhealthy};
    use super::*;

    #[test]
    fn panic_mode_below_the_threshold() {
        // Envoy's default threshold: half.
        assert_eq!(in_service(&[Healthy, Unhealthy], 50.0), [0]);
        assert_eq!(
            in_service(&[Healthy, Unhealthy, Unhealthy], 50.0),
            [0, 1, 2],
            "one of three is below half: all serve"
        );
        assert_eq!(in_service(&[Healthy, Unhealthy, Unhealthy], 30.0), [0]);
        assert_eq!(in_service(&[Unhealthy, Unhealthy], 50.0), [0, 1]);
        // 0 turns panic mode off: nothing usable, nothing to pick.
        assert_eq!(
            in_service(&[Unhealthy, Unhealthy], 0.0),
            Vec::<usize>::new()
        );
        // 100: anything unhealthy means all serve.
        assert_eq!(
            in_service(&[Healthy, Healthy, Healthy, Unhealthy], 100.0),
            [0, 1, 2, 3]
        );
        assert_eq!(in_service(&[], 50.0), Vec::<usize>::new());
    }

    #[test]
    fn degraded_endpoints_serve_last_and_count_as_usable() {
        assert_eq!(in_service(&[Degraded, Healthy, Degraded], 50.0), [1]);
        assert_eq!(in_service(&[Degraded, Unhealthy, Degraded], 50.0), [0, 2]);
        assert_eq!(
            in_service(&[Degraded, Unhealthy, Unhealthy], 50.0),
            [0, 1, 2],
            "panic counts healthy and degraded together"
        );
    }
}
