//! What the policies pick from: the endpoints in service, arranged by
//! priority level and, with locality weighted balancing, by locality;
//! rebuilt whenever an ejection or a health check changes an endpoint.
//!
//! A request first picks a level by the levels' loads (see [`priority`]):
//! at random, or by its hash key under `RING_HASH` and `MAGLEV`, so that a
//! key stays on one level. A level serves its healthy endpoints, or its
//! degraded ones when it was picked for its degraded load, or all its
//! endpoints when it is in panic. With locality weighted balancing (and not
//! in panic), a locality of the level is then picked at random by its
//! effective weight: its `load_balancing_weight` times its availability
//! (its serving share of its endpoints times the overprovisioning factor,
//! capped at 1), as Envoy does. If no locality has any effective weight, the
//! level's endpoints are balanced together. Last, the cluster's policy picks
//! an endpoint of that pool by endpoint weight.
//!
//! `RING_HASH` and `MAGLEV` build one table per level and availability, as
//! Envoy builds one per priority. They do not split by locality: Envoy
//! scales each endpoint's share of the table by its locality's weight,
//! here every endpoint of the level counts by its own weight alone.

use std::sync::atomic::AtomicUsize;

use super::health::Condition;
use super::priority::{self, LevelCounts};
use super::{Balancer, hash};
use crate::config::{Endpoint, LbPolicy};

/// Weights are scaled down so that a schedule stays small.
const MAX_SCHEDULE: usize = 4096;

/// The endpoints of one priority level, as configured.
#[derive(Debug)]
pub(super) struct Priority {
    endpoints: Vec<usize>,
    localities: Vec<LocalityGroup>,
    /// Ring points per unit of weight, from all the level's endpoints, so
    /// that an ejection moves only the ejected endpoint's keys.
    ring_scale: f64,
}

#[derive(Debug)]
struct LocalityGroup {
    /// 0 for a locality without `load_balancing_weight`: it takes no traffic.
    weight: u32,
    endpoints: Vec<usize>,
}

/// The endpoints in service, as each policy picks from them.
#[derive(Debug)]
pub(super) struct View {
    pub(super) generation: u64,
    levels: Vec<Level>,
}

/// A priority level picked for its healthy or its degraded load.
#[derive(Debug)]
struct Level {
    /// The sum of the loads up to this one, in percent.
    upto: u32,
    choice: Choice,
}

#[derive(Debug)]
enum Choice {
    Pool(Pool),
    /// Localities with their effective weights added up.
    Localities {
        cumulative: Vec<f64>,
        pools: Vec<Pool>,
    },
}

/// Endpoints that one pick chooses among by the cluster's policy.
#[derive(Debug)]
pub(super) struct Pool {
    /// Endpoint indexes repeated by weight, for weighted round robin and random.
    pub(super) schedule: Vec<usize>,
    pub(super) table: Option<Table>,
    /// Where round robin is in the schedule.
    pub(super) next: AtomicUsize,
}

#[derive(Debug)]
pub(super) enum Table {
    Ring(hash::Ring),
    Maglev(hash::Maglev),
}

/// The cluster's endpoints grouped by priority level, highest first, and
/// within a level by locality.
pub(super) fn priorities(endpoints: &[Endpoint], policy: LbPolicy) -> Vec<Priority> {
    let mut levels: Vec<u32> = endpoints.iter().map(|e| e.priority).collect();
    levels.sort_unstable();
    levels.dedup();
    levels
        .iter()
        .map(|level| {
            let members: Vec<usize> = (0..endpoints.len())
                .filter(|i| endpoints[*i].priority == *level)
                .collect();
            let mut localities: Vec<LocalityGroup> = Vec::new();
            for i in &members {
                let endpoint = &endpoints[*i];
                match localities
                    .iter_mut()
                    .find(|l| endpoints[l.endpoints[0]].locality == endpoint.locality)
                {
                    Some(group) => group.endpoints.push(*i),
                    None => localities.push(LocalityGroup {
                        weight: endpoint.locality_weight.unwrap_or(0),
                        endpoints: vec![*i],
                    }),
                }
            }
            let ring_scale = match policy {
                LbPolicy::RingHash(config) => {
                    hash::points_per_weight(&hosts(endpoints, &members), config)
                }
                _ => 0.0,
            };
            Priority {
                endpoints: members,
                localities,
                ring_scale,
            }
        })
        .collect()
}

impl View {
    pub(super) fn empty() -> View {
        View {
            generation: 0,
            levels: Vec::new(),
        }
    }

    /// The pool a request goes to; `roll` is called only when there is more
    /// than one level to choose from.
    pub(super) fn pool(&self, roll: impl FnOnce() -> u64) -> Option<&Pool> {
        let level = match self.levels.as_slice() {
            [] => return None,
            [only] => only,
            levels => {
                // 1 to 100, as Envoy rolls.
                let roll = (roll() % 100) as u32 + 1;
                levels.iter().find(|l| roll <= l.upto)?
            }
        };
        match &level.choice {
            Choice::Pool(pool) => Some(pool),
            Choice::Localities { cumulative, pools } => {
                let total = cumulative.last()?;
                let at = fastrand::f64() * total;
                let i = cumulative.partition_point(|sum| *sum <= at);
                pools.get(i.min(pools.len() - 1))
            }
        }
    }
}

impl Balancer {
    /// The view of the endpoints as they stand now.
    pub(super) fn build(&self, generation: u64) -> View {
        let conditions: Vec<Condition> = (0..self.endpoints.len())
            .map(|i| self.condition(i))
            .collect();
        let counts: Vec<LevelCounts> = self
            .priorities
            .iter()
            .map(|p| count(&p.endpoints, &conditions))
            .collect();
        let load = priority::priority_load(&counts, self.overprovisioning, self.panic_threshold);
        let mut levels = Vec::new();
        let mut upto = 0;
        for (condition, loads) in [
            (Condition::Healthy, &load.healthy),
            (Condition::Degraded, &load.degraded),
        ] {
            for (level, share) in loads.iter().enumerate() {
                if *share == 0 {
                    continue;
                }
                upto += share;
                let serving = (!load.panic[level]).then_some(condition);
                levels.push(Level {
                    upto,
                    choice: self.choice(level, serving, &conditions),
                });
            }
        }
        View { generation, levels }
    }

    /// The endpoints of `level` in `serving` condition (all of them in
    /// panic), split by locality when the cluster weighs localities.
    fn choice(&self, level: usize, serving: Option<Condition>, conditions: &[Condition]) -> Choice {
        let priority = &self.priorities[level];
        let serves = |i: &usize| serving.is_none_or(|c| conditions[*i] == c);
        let hashing = matches!(self.policy, LbPolicy::RingHash(_) | LbPolicy::Maglev(_));
        if self.locality_weighted && serving.is_some() && !hashing {
            let mut cumulative = Vec::new();
            let mut pools = Vec::new();
            let mut total = 0.0;
            for locality in &priority.localities {
                let members: Vec<usize> =
                    locality.endpoints.iter().copied().filter(serves).collect();
                let weight = effective_weight(
                    locality.weight,
                    members.len(),
                    locality.endpoints.len(),
                    self.overprovisioning,
                );
                if weight > 0.0 {
                    total += weight;
                    cumulative.push(total);
                    pools.push(self.pool(level, &members));
                }
            }
            if !pools.is_empty() {
                return Choice::Localities { cumulative, pools };
            }
        }
        let members: Vec<usize> = priority.endpoints.iter().copied().filter(serves).collect();
        Choice::Pool(self.pool(level, &members))
    }

    fn pool(&self, level: usize, members: &[usize]) -> Pool {
        let total: u64 = members
            .iter()
            .map(|i| u64::from(self.endpoints[*i].weight))
            .sum();
        let scale = (total / MAX_SCHEDULE as u64).max(1);
        let schedule = members
            .iter()
            .flat_map(|i| {
                let weight = u64::from(self.endpoints[*i].weight);
                std::iter::repeat_n(*i, (weight / scale).max(1) as usize)
            })
            .collect();
        let table = match self.policy {
            _ if members.is_empty() => None,
            LbPolicy::RingHash(_) => Some(Table::Ring(hash::Ring::build(
                &hosts(&self.endpoints, members),
                self.priorities[level].ring_scale,
            ))),
            LbPolicy::Maglev(config) => Some(Table::Maglev(hash::Maglev::build(
                &hosts(&self.endpoints, members),
                config.table_size,
            ))),
            _ => None,
        };
        Pool {
            schedule,
            table,
            next: AtomicUsize::new(0),
        }
    }
}

fn count(members: &[usize], conditions: &[Condition]) -> LevelCounts {
    let mut counts = LevelCounts {
        total: members.len() as u32,
        ..LevelCounts::default()
    };
    for i in members {
        match conditions[*i] {
            Condition::Healthy => counts.healthy += 1,
            Condition::Degraded => counts.degraded += 1,
            Condition::Unhealthy => {}
        }
    }
    counts
}

/// Envoy's effective locality weight: the weight times the locality's
/// availability, `overprovisioning` percent of its serving share, capped at 1.
pub(super) fn effective_weight(
    weight: u32,
    serving: usize,
    total: usize,
    overprovisioning: u32,
) -> f64 {
    if serving == 0 || total == 0 {
        return 0.0;
    }
    let availability =
        (f64::from(overprovisioning) / 100.0 * serving as f64 / total as f64).min(1.0);
    f64::from(weight) * availability
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
