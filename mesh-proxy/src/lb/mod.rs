//! Picking an endpoint of a cluster: by weight (round robin, random, least
//! request) or by the request's hash key (ring hash, Maglev), among the
//! usable endpoints: not ejected by outlier detection, not failing active
//! health checks, and not reported unhealthy, draining or timed out by the
//! control plane. Degraded endpoints are used only when no healthy one is.
//!
//! Every policy sees the same view of the endpoints in service, rebuilt when
//! an ejection or a health check changes an endpoint. When fewer than
//! `healthy_panic_threshold` percent of the endpoints are usable, the view
//! holds them all (Envoy's panic mode): the cluster keeps serving. See
//! [`in_service`] for the rules.

mod hash;
mod health;
mod request;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::time::{Instant, MissedTickBehavior};

pub use health::{Condition, HostStatus, Membership, in_service};
pub use request::{Downstream, RequestHash};

use crate::config::{Cluster, Endpoint, LbPolicy};
use crate::health::HostHealth;
use crate::outlier::Detector;
use crate::stats::OutlierStats;

/// Picks endpoints of one cluster by its policy; shared by every request.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<Endpoint>,
    policy: LbPolicy,
    next: AtomicUsize,
    /// Requests in flight per endpoint, for least-request.
    active: Vec<AtomicUsize>,
    /// Requests per endpoint, for the admin pages.
    requests: Vec<health::Requests>,
    outlier: Option<Detector>,
    /// Active health check results.
    health: Arc<HostHealth>,
    /// Below this percentage of usable endpoints, all are used.
    panic_threshold: f64,
    /// Ring points per unit of weight, from all the endpoints (ring hash).
    ring_scale: f64,
    /// The endpoints in service, as of the detector's generation.
    view: ArcSwap<View>,
    rebuilding: Mutex<()>,
}

/// The endpoints in service, as each policy picks from them.
#[derive(Debug)]
struct View {
    generation: u64,
    /// Endpoint indexes repeated by weight, for weighted round robin and random.
    schedule: Vec<usize>,
    table: Option<Table>,
}

#[derive(Debug)]
enum Table {
    Ring(hash::Ring),
    Maglev(hash::Maglev),
}

/// An endpoint in use; dropping it ends the request for least-request.
#[derive(Debug)]
pub struct Pick {
    balancer: Arc<Balancer>,
    index: usize,
}

impl Pick {
    pub fn endpoint(&self) -> &Endpoint {
        &self.balancer.endpoints[self.index]
    }

    /// Tells outlier detection how the request went: the response status, or
    /// 503 for a connect failure or a reset and 504 for a timeout.
    pub fn report(&self, status: u16) {
        self.balancer.requests[self.index].report(status);
        if let Some(detector) = &self.balancer.outlier {
            detector.report(self.index, status, Instant::now());
        }
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
        let ring_scale = match cluster.lb {
            LbPolicy::RingHash(config) => {
                let all: Vec<usize> = (0..cluster.endpoints.len()).collect();
                hash::points_per_weight(&hosts(&cluster.endpoints, &all), config)
            }
            _ => 0.0,
        };
        let mut balancer = Balancer {
            endpoints: cluster.endpoints.clone(),
            policy: cluster.lb,
            next: AtomicUsize::new(0),
            active: cluster
                .endpoints
                .iter()
                .map(|_| AtomicUsize::new(0))
                .collect(),
            requests: cluster
                .endpoints
                .iter()
                .map(|_| health::Requests::default())
                .collect(),
            health: Arc::new(HostHealth::new(cluster)),
            panic_threshold: cluster.healthy_panic_threshold,
            outlier: cluster
                .outlier
                .map(|config| Detector::new(config, cluster.endpoints.len(), Instant::now())),
            ring_scale,
            view: ArcSwap::from_pointee(View {
                generation: 0,
                schedule: Vec::new(),
                table: None,
            }),
            rebuilding: Mutex::new(()),
        };
        balancer.view = ArcSwap::from_pointee(balancer.build(0));
        balancer
    }

    /// Picks an endpoint, or `None` when the cluster has none. Hashing
    /// policies pick at random, as without a hash key.
    pub fn pick(self: &Arc<Self>) -> Option<Pick> {
        self.pick_hashed(None, 0)
    }

    /// Picks an endpoint for a request with this hash key; policies that do
    /// not hash ignore it. A retry that wants another host than the last pick
    /// passes `attempt` > 0, which moves a hash elsewhere. `None` when the
    /// cluster has no endpoint, or none usable and panic mode is off.
    pub fn pick_hashed(self: &Arc<Self>, key: Option<u64>, attempt: u32) -> Option<Pick> {
        if self.endpoints.is_empty() {
            return None;
        }
        let view = self.view();
        let schedule = &view.schedule;
        if schedule.is_empty() {
            return None;
        }
        let index = match (self.policy, &view.table, key) {
            (LbPolicy::RoundRobin, _, _) => {
                schedule[self.next.fetch_add(1, Ordering::Relaxed) % schedule.len()]
            }
            (LbPolicy::LeastRequest, _, _) => self.least_of_two(schedule),
            (_, Some(Table::Ring(ring)), Some(key)) => ring.get(key, attempt),
            (_, Some(Table::Maglev(maglev)), Some(key)) => maglev.get(key, attempt),
            // RANDOM, and hashing without a key.
            _ => schedule[fastrand::usize(..schedule.len())],
        };
        self.active[index].fetch_add(1, Ordering::Relaxed);
        self.requests[index].picked();
        Some(Pick {
            balancer: Arc::clone(self),
            index,
        })
    }

    /// The outlier detection counters, when the cluster has outlier detection.
    pub fn outlier_stats(&self) -> Option<Arc<OutlierStats>> {
        self.outlier.as_ref().map(|d| Arc::clone(d.stats()))
    }

    /// Runs outlier detection's interval review in the background, while the
    /// balancer lives; nothing without outlier detection or a runtime.
    pub fn start_outlier_sweeps(self: &Arc<Self>) {
        let (Some(detector), Ok(runtime)) = (&self.outlier, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let interval = detector.interval();
        let balancer = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(balancer) = balancer.upgrade() else {
                    return;
                };
                if let Some(detector) = &balancer.outlier {
                    detector.tick(Instant::now());
                }
            }
        });
    }

    /// The active health check flags, which the health checker sets.
    pub fn health(&self) -> &Arc<HostHealth> {
        &self.health
    }

    /// The current view, rebuilt first if an ejection or a health check
    /// changed an endpoint.
    fn view(&self) -> Arc<View> {
        // Both only go up, so their sum moves whenever either does.
        let generation = self
            .outlier
            .as_ref()
            .map_or(0, |d| d.refresh(Instant::now()))
            + self.health.generation();
        let view = self.view.load_full();
        if view.generation >= generation {
            return view;
        }
        let _building = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let view = self.view.load_full();
        if view.generation >= generation {
            return view;
        }
        let view = Arc::new(self.build(generation));
        self.view.store(Arc::clone(&view));
        view
    }

    /// The view of the usable endpoints, or of all in panic mode.
    fn build(&self, generation: u64) -> View {
        let conditions: Vec<Condition> = (0..self.endpoints.len())
            .map(|i| self.condition(i))
            .collect();
        let in_service = in_service(&conditions, self.panic_threshold);
        let total: u64 = in_service
            .iter()
            .map(|i| u64::from(self.endpoints[*i].weight))
            .sum();
        let scale = (total / MAX_SCHEDULE as u64).max(1);
        let schedule = in_service
            .iter()
            .flat_map(|i| {
                let weight = u64::from(self.endpoints[*i].weight);
                std::iter::repeat_n(*i, (weight / scale).max(1) as usize)
            })
            .collect();
        let table = match self.policy {
            LbPolicy::RingHash(_) => Some(Table::Ring(hash::Ring::build(
                &hosts(&self.endpoints, &in_service),
                self.ring_scale,
            ))),
            LbPolicy::Maglev(config) => Some(Table::Maglev(hash::Maglev::build(
                &hosts(&self.endpoints, &in_service),
                config.table_size,
            ))),
            _ => None,
        };
        View {
            generation,
            schedule,
            table,
        }
    }

    /// Power of two choices: the less busy of two weighted random picks.
    fn least_of_two(&self, schedule: &[usize]) -> usize {
        let a = schedule[fastrand::usize(..schedule.len())];
        let b = schedule[fastrand::usize(..schedule.len())];
        if self.active[b].load(Ordering::Relaxed) < self.active[a].load(Ordering::Relaxed) {
            b
        } else {
            a
        }
    }
}

fn hosts(endpoints: &[Endpoint], indexes: &[usize]) -> Vec<hash::Host> {
    indexes
        .iter()
        .map(|i| hash::Host {
            index: *i,
            address: endpoints[*i].address,
            weight: endpoints[*i].weight,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;
    use crate::config::{Maglev, OutlierDetection, RingHash};

    const HASHING: [LbPolicy; 2] = [
        LbPolicy::RingHash(RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
        }),
        LbPolicy::Maglev(Maglev { table_size: 65537 }),
    ];

    const ALL: [LbPolicy; 5] = [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
        HASHING[0],
        HASHING[1],
    ];

    /// Three failures eject for a minute; half the endpoints may go.
    fn strict() -> Option<OutlierDetection> {
        Some(OutlierDetection {
            consecutive_5xx: 3,
            base_ejection_time: Duration::from_secs(60),
            max_ejection_percent: 50,
            ..OutlierDetection::default()
        })
    }

    fn port_of(balancer: &Arc<Balancer>, key: Option<u64>) -> u16 {
        balancer
            .pick_hashed(key, 0)
            .unwrap()
            .endpoint()
            .address
            .port()
    }

    fn eject(balancer: &Arc<Balancer>, port: u16) {
        let index = balancer
            .endpoints
            .iter()
            .position(|e| e.address.port() == port)
            .unwrap();
        let pick = Pick {
            balancer: Arc::clone(balancer),
            index,
        };
        balancer.active[index].fetch_add(1, Ordering::Relaxed);
        for _ in 0..3 {
            pick.report(500);
        }
    }

    #[test]
    fn hashing_keeps_a_key_on_one_endpoint_and_follows_weights() {
        for policy in HASHING {
            let balancer = cluster(policy, &[1, 1, 2]);
            let mut counts = BTreeMap::<u16, usize>::new();
            for user in 0..3000u64 {
                let key = Some(hash::hash(&user.to_be_bytes()));
                let first = port_of(&balancer, key);
                for _ in 0..3 {
                    assert_eq!(port_of(&balancer, key), first, "{policy:?}");
                }
                *counts.entry(first).or_default() += 1;
            }
            let heavy = counts[&9002] as f64 / 3000.0;
            assert!((0.4..0.6).contains(&heavy), "{policy:?}: {counts:?}");
        }
    }

    #[test]
    fn hashing_without_a_key_is_random_and_other_policies_ignore_keys() {
        for policy in HASHING {
            let balancer = cluster(policy, &[1, 1, 1]);
            let seen: BTreeSet<u16> = (0..200).map(|_| port_of(&balancer, None)).collect();
            assert_eq!(seen.len(), 3, "{policy:?}");
        }
        let balancer = cluster(LbPolicy::RoundRobin, &[1, 1, 1]);
        let key = Some(42);
        let ports: Vec<u16> = (0..6).map(|_| port_of(&balancer, key)).collect();
        assert_eq!(ports, [9000, 9001, 9002, 9000, 9001, 9002]);
    }

    #[test]
    fn every_policy_skips_ejected_endpoints() {
        for policy in ALL {
            let balancer = with_outlier(policy, &[1, 1, 1, 1], strict());
            eject(&balancer, 9001);
            for n in 0..400u64 {
                let key = Some(hash::hash(&n.to_be_bytes()));
                assert_ne!(port_of(&balancer, key), 9001, "{policy:?}");
            }
            let stats = balancer.outlier_stats().unwrap();
            assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 1);
            assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn ejecting_moves_only_the_ejected_endpoints_keys() {
        for policy in HASHING {
            let balancer = with_outlier(policy, &[1, 1, 1, 1], strict());
            let keys: Vec<Option<u64>> = (0..2000u64)
                .map(|n| Some(hash::hash(&n.to_be_bytes())))
                .collect();
            let before: Vec<u16> = keys.iter().map(|k| port_of(&balancer, *k)).collect();
            eject(&balancer, 9003);
            for (key, was) in keys.iter().zip(&before) {
                let now = port_of(&balancer, *key);
                if *was != 9003 {
                    // Maglev may move a few more, as its paper says.
                    if matches!(policy, LbPolicy::RingHash(_)) {
                        assert_eq!(now, *was, "{policy:?}");
                    }
                } else {
                    assert_ne!(now, 9003);
                }
            }
        }
    }

    #[test]
    fn when_all_are_ejected_all_serve() {
        let mut config = strict().unwrap();
        config.max_ejection_percent = 100;
        for policy in ALL {
            let balancer = with_outlier(policy, &[1, 1], Some(config));
            eject(&balancer, 9000);
            let seen: BTreeSet<u16> = (0..50).map(|_| port_of(&balancer, None)).collect();
            assert_eq!(seen, BTreeSet::from([9001]), "{policy:?}");
            eject(&balancer, 9001);
            let seen: BTreeSet<u16> = (0..200).map(|_| port_of(&balancer, None)).collect();
            assert_eq!(seen, BTreeSet::from([9000, 9001]), "{policy:?}: panic mode");
        }
    }

    fn cluster(policy: LbPolicy, weights: &[u32]) -> Arc<Balancer> {
        with_outlier(policy, weights, None)
    }

    fn with_outlier(
        policy: LbPolicy,
        weights: &[u32],
        outlier: Option<OutlierDetection>,
    ) -> Arc<Balancer> {
        let endpoints = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Endpoint {
                address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                weight: *w,
                health_status: crate::config::HealthStatus::Unknown,
                locality: Arc::default(),
                health_check: crate::config::EndpointHealthCheck::default(),
                transport_socket_match: Default::default(),
            })
            .collect();
        let cluster = Cluster {
            name: "c".into(),
            connect_timeout: Duration::from_secs(1),
            lb: policy,
            endpoints,
            http2: false,
            limits: crate::config::Limits::default(),
            outlier,
            health_check: None,
            healthy_panic_threshold: crate::config::DEFAULT_PANIC_THRESHOLD,
            services: Vec::new(),
            tls: None,
            transport_socket_matches: Vec::new(),
        };
        Arc::new(Balancer::new(&cluster))
    }

    #[test]
    fn every_policy_skips_endpoints_failing_health_checks_until_they_pass() {
        for policy in ALL {
            let balancer = cluster(policy, &[1, 1, 1]);
            assert!(balancer.health().set_failed(1, true));
            for n in 0..300u64 {
                let key = Some(hash::hash(&n.to_be_bytes()));
                assert_ne!(port_of(&balancer, key), 9001, "{policy:?}");
            }
            let statuses = balancer.host_statuses();
            assert_eq!(statuses[1].health_flags(), "/failed_active_hc");
            assert_eq!(statuses[0].health_flags(), "healthy");
            assert_eq!(
                balancer.membership(),
                Membership {
                    total: 3,
                    healthy: 2,
                    degraded: 0
                }
            );
            balancer.health().set_failed(1, false);
            let seen: BTreeSet<u16> = (0..300).map(|_| port_of(&balancer, None)).collect();
            assert!(seen.contains(&9001), "{policy:?}: back in service");
        }
    }

    #[test]
    fn reported_health_status_and_the_panic_threshold() {
        use crate::config::HealthStatus;
        let with_statuses = |statuses: &[HealthStatus], threshold: f64| {
            let endpoints = statuses
                .iter()
                .enumerate()
                .map(|(i, status)| Endpoint {
                    address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                    weight: 1,
                    health_status: *status,
                    locality: Arc::default(),
                    health_check: crate::config::EndpointHealthCheck::default(),
                    transport_socket_match: Default::default(),
                })
                .collect();
            Arc::new(Balancer::new(&Cluster {
                name: "c".into(),
                connect_timeout: Duration::from_secs(1),
                lb: LbPolicy::RoundRobin,
                endpoints,
                http2: false,
                limits: crate::config::Limits::default(),
                outlier: None,
                health_check: None,
                healthy_panic_threshold: threshold,
                services: Vec::new(),
                tls: None,
                transport_socket_matches: Vec::new(),
            }))
        };
        let seen = |balancer: &Arc<Balancer>| -> BTreeSet<u16> {
            (0..30).map(|_| port_of(balancer, None)).collect()
        };
        use HealthStatus::{Degraded, Draining, Healthy, Unhealthy, Unknown};
        let balancer = with_statuses(&[Healthy, Unhealthy, Unknown, Degraded], 50.0);
        assert_eq!(seen(&balancer), BTreeSet::from([9000, 9002]));
        assert_eq!(
            balancer.host_statuses()[1].health_flags(),
            "/failed_eds_health"
        );
        assert_eq!(
            balancer.host_statuses()[3].health_flags(),
            "/degraded_eds_health"
        );
        let balancer = with_statuses(&[Degraded, Draining], 50.0);
        assert_eq!(seen(&balancer), BTreeSet::from([9000]), "degraded, last");
        let balancer = with_statuses(&[Healthy, Unhealthy, Unhealthy], 50.0);
        assert_eq!(seen(&balancer), BTreeSet::from([9000, 9001, 9002]), "panic");
        let balancer = with_statuses(&[Healthy, Unhealthy, Unhealthy], 30.0);
        assert_eq!(seen(&balancer), BTreeSet::from([9000]));
        let balancer = with_statuses(&[Unhealthy, Unhealthy], 0.0);
        assert!(balancer.pick().is_none(), "no panic mode, nothing usable");
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
