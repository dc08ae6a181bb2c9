//! Which endpoints are usable, and what the admin pages show of each
//! endpoint.
//!
//! An endpoint is unhealthy when outlier detection ejected it, it fails its
//! active health checks, or the control plane reports it `UNHEALTHY`,
//! `DRAINING` or `TIMEOUT`; otherwise it is degraded when reported
//! `DEGRADED`, and healthy. How many of each a priority level has decides
//! its load and panic mode (see [`super::priority`]): degraded endpoints
//! take the share of the load that the healthy ones cannot, as in Envoy.

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
