//! Picking an endpoint of a cluster: by weight (round robin, random, least
//! request) or by the request's hash key (ring hash, Maglev), among the
//! usable endpoints: not ejected by outlier detection, not failing active
//! health checks, and not reported unhealthy, draining or timed out by the
//! control plane. Degraded endpoints are used only when no healthy one is.
//!
//! Every policy sees the same view of the endpoints in service, rebuilt when
//! an ejection or a health check changes an endpoint: Envoy's priority
//! levels, with their overprovisioning and panic mode (see [`priority`]),
//! and locality weighted balancing within a level (see [`view`]).

mod hash;
mod health;
mod priority;
mod request;
mod view;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use http::uri::Authority;
use tokio::time::{Instant, MissedTickBehavior};

pub use health::{Condition, HostStatus, Membership};
pub use request::{Downstream, RequestHash};

use crate::config::{Cluster, Endpoint, LbPolicy};
use crate::health::HostHealth;
use crate::outlier::Detector;
use crate::stats::OutlierStats;
use view::{Table, View};

/// Picks endpoints of one cluster by its policy; shared by every request.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<Endpoint>,
    /// Each endpoint as a URI authority, for requests to it.
    authorities: Vec<Authority>,
    policy: LbPolicy,
    /// The endpoints by priority level and locality.
    priorities: Vec<view::Priority>,
    /// Percent by which a level's or a locality's serving share is scaled.
    overprovisioning: u32,
    locality_weighted: bool,
    /// Requests in flight per endpoint, for least-request.
    active: Vec<AtomicUsize>,
    /// Requests per endpoint, for the admin pages.
    requests: Vec<health::Requests>,
    outlier: Option<Detector>,
    /// Active health check results.
    health: Arc<HostHealth>,
    /// Below this percentage of usable endpoints, a level is in panic.
    panic_threshold: f64,
    /// The endpoints in service, as of the detector's generation.
    view: ArcSwap<View>,
    rebuilding: Mutex<()>,
}

/// An endpoint in use; dropping it ends the request for least-request.
#[derive(Debug)]
pub struct Pick(Picked);

#[derive(Debug)]
enum Picked {
    /// One of a cluster's endpoints.
    Balanced {
        balancer: Arc<Balancer>,
        index: usize,
    },
    /// An address the request brought (an ORIGINAL_DST cluster's), which
    /// no balancer knows.
    Direct(Box<(Endpoint, Authority)>),
}

impl Pick {
    /// `address` as an endpoint of its own, for ORIGINAL_DST clusters.
    pub fn direct(address: SocketAddr) -> Pick {
        let endpoint = Endpoint::at(address);
        let authority = Authority::try_from(address.to_string())
            .expect("a socket address is a valid authority");
        Pick(Picked::Direct(Box::new((endpoint, authority))))
    }

    pub fn endpoint(&self) -> &Endpoint {
        match &self.0 {
            Picked::Balanced { balancer, index } => &balancer.endpoints[*index],
            Picked::Direct(direct) => &direct.0,
        }
    }

    /// The endpoint's `ip:port` as a URI authority, made once per endpoint.
    pub fn authority(&self) -> Authority {
        match &self.0 {
            Picked::Balanced { balancer, index } => balancer.authorities[*index].clone(),
            Picked::Direct(direct) => direct.1.clone(),
        }
    }

    /// Tells outlier detection how the request went: the response status, or
    /// 503 for a connect failure or a reset and 504 for a timeout.
    pub fn report(&self, status: u16) {
        let Picked::Balanced { balancer, index } = &self.0 else {
            return;
        };
        balancer.requests[*index].report(status);
        if let Some(detector) = &balancer.outlier {
            detector.report(*index, status, Instant::now());
        }
    }
}

impl Drop for Pick {
    fn drop(&mut self) {
        if let Picked::Balanced { balancer, index } = &self.0 {
            balancer.active[*index].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Balancer {
    pub fn new(cluster: &Cluster) -> Balancer {
        let mut balancer = Balancer {
            endpoints: cluster.endpoints.clone(),
            authorities: cluster
                .endpoints
                .iter()
                .map(|e| {
                    Authority::try_from(e.address.to_string())
                        .expect("a socket address is a valid authority")
                })
                .collect(),
            policy: cluster.lb,
            priorities: view::priorities(&cluster.endpoints, cluster.lb),
            overprovisioning: cluster.overprovisioning_factor,
            locality_weighted: cluster.locality_weighted,
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
            view: ArcSwap::from_pointee(View::empty()),
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
        let view = self.view();
        let hashing = matches!(self.policy, LbPolicy::RingHash(_) | LbPolicy::Maglev(_));
        // A hash key keeps its requests on one level, as in Envoy.
        let pool = view.pool(|| match key {
            Some(key) if hashing => key,
            _ => fastrand::u64(..),
        })?;
        let schedule = &pool.schedule;
        if schedule.is_empty() {
            return None;
        }
        let index = match (self.policy, &pool.table, key) {
            (LbPolicy::RoundRobin, _, _) => {
                schedule[pool.next.fetch_add(1, Ordering::Relaxed) % schedule.len()]
            }
            (LbPolicy::LeastRequest, _, _) => self.least_of_two(schedule),
            (_, Some(Table::Ring(ring)), Some(key)) => ring.get(key, attempt),
            (_, Some(Table::Maglev(maglev)), Some(key)) => maglev.get(key, attempt),
            // RANDOM, and hashing without a key.
            _ => schedule[fastrand::usize(..schedule.len())],
        };
        self.active[index].fetch_add(1, Ordering::Relaxed);
        self.requests[index].picked();
        Some(Pick(Picked::Balanced {
            balancer: Arc::clone(self),
            index,
        }))
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

/// One of `choices`, each as likely as its share of the weights (Envoy's
/// weighted clusters, for requests and for connections); the last one when
/// every weight is zero.
pub fn by_weight<T>(choices: &[(T, u32)]) -> &T {
    if let [(only, _)] = choices {
        return only;
    }
    let total: u64 = choices.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut ticket = fastrand::u64(..total.max(1));
    for (choice, weight) in choices {
        if ticket < u64::from(*weight) {
            return choice;
        }
        ticket -= u64::from(*weight);
    }
    &choices[choices.len() - 1].0
}

#[cfg(test)]
mod tests;
