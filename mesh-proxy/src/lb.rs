//! Picking an endpoint of a cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{Cluster, Endpoint, LbPolicy};

/// Picks endpoints of one cluster by its policy; shared by every request.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<Endpoint>,
    policy: LbPolicy,
    /// Endpoint indexes repeated by weight, for weighted round robin and random.
    schedule: Vec<usize>,
    next: AtomicUsize,
    /// Requests in flight per endpoint, for least-request.
    active: Vec<AtomicUsize>,
}

/// An endpoint in use; dropping it ends the request for least-request.
#[derive(Debug)]
pub struct Pick {
    balancer: Arc<Balancer>,
    index: usize,
}

impl Pick {
    pub fn endpoint(&self) -> Endpoint {
        self.balancer.endpoints[self.index]
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.balancer.active[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

/// Weights are scaled down so that the schedule stays small.
const MAX_SCHEDULE: usize = 4096;

impl Balancer {
    pub fn new(cluster: &Cluster) -> Balancer {
        let total: u64 = cluster.endpoints.iter().map(|e| u64::from(e.weight)).sum();
        let scale = (total / MAX_SCHEDULE as u64).max(1);
        let schedule = cluster
            .endpoints
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                std::iter::repeat_n(i, (u64::from(e.weight) / scale).max(1) as usize)
            })
            .collect();
        Balancer {
            endpoints: cluster.endpoints.clone(),
            policy: cluster.lb,
            schedule,
            next: AtomicUsize::new(0),
            active: cluster
                .endpoints
                .iter()
                .map(|_| AtomicUsize::new(0))
                .collect(),
        }
    }

    /// Picks an endpoint, or `None` when the cluster has none.
    pub fn pick(self: &Arc<Self>) -> Option<Pick> {
        if self.endpoints.is_empty() {
            return None;
        }
        let index = match self.policy {
            LbPolicy::RoundRobin => {
                self.schedule[self.next.fetch_add(1, Ordering::Relaxed) % self.schedule.len()]
            }
            LbPolicy::Random => self.schedule[fastrand::usize(..self.schedule.len())],
            LbPolicy::LeastRequest => self.least_of_two(),
        };
        self.active[index].fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            balancer: Arc::clone(self),
            index,
        })
    }

    /// Power of two choices: the less busy of two weighted random picks.
    fn least_of_two(&self) -> usize {
        let a = self.schedule[fastrand::usize(..self.schedule.len())];
        let b = self.schedule[fastrand::usize(..self.schedule.len())];
        if self.active[b].load(Ordering::Relaxed) < self.active[a].load(Ordering::Relaxed) {
            b
        } else {
            a
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;

    fn cluster(policy: LbPolicy, weights: &[u32]) -> Arc<Balancer> {
        let endpoints = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Endpoint {
                address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                weight: *w,
            })
            .collect();
        let cluster = Cluster {
            name: "c".into(),
            connect_timeout: Duration::from_secs(1),
            lb: policy,
            endpoints,
            http2: false,
            limits: crate::config::Limits::default(),
        };
        Arc::new(Balancer::new(&cluster))
    }

    fn counts(balancer: &Arc<Balancer>, n: usize) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let pick = balancer.pick().unwrap();
            *counts.entry(pick.endpoint().address.port()).or_default() += 1;
        }
        counts
    }

    #[test]
    fn round_robin_follows_weights_exactly() {
        let balancer = cluster(LbPolicy::RoundRobin, &[1, 3]);
        assert_eq!(
            counts(&balancer, 400),
            BTreeMap::from([(9000, 100), (9001, 300)])
        );
    }

    #[test]
    fn random_follows_weights_roughly() {
        fastrand::seed(7);
        let balancer = cluster(LbPolicy::Random, &[1, 1]);
        let counts = counts(&balancer, 2000);
        assert!(
            counts.values().all(|c| (900..=1100).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let balancer = cluster(LbPolicy::LeastRequest, &[1, 1]);
        let held: Vec<Pick> = (0..50)
            .filter_map(|_| balancer.pick())
            .filter(|p| p.endpoint().address.port() == 9000)
            .collect();
        assert!(!held.is_empty());
        let counts = counts(&balancer, 200);
        assert!(
            counts.get(&9001).copied().unwrap_or(0) > counts.get(&9000).copied().unwrap_or(0),
            "{counts:?}"
        );
        drop(held);
        assert!(
            balancer
                .active
                .iter()
                .all(|a| a.load(Ordering::Relaxed) == 0)
        );
    }

    #[test]
    fn an_empty_cluster_has_nothing_to_pick() {
        assert!(cluster(LbPolicy::RoundRobin, &[]).pick().is_none());
    }
}
