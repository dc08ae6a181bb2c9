//! Envoy's priority levels: how much of the load each level takes, and
//! which levels are in panic.
//!
//! A level's health is the share of its endpoints that are healthy, times
//! the overprovisioning factor (1.4 by default), capped at 100%; its
//! degraded availability is the same for its degraded endpoints. Level 0
//! takes as much load as its health allows, the rest spills to level 1, and
//! so on; whatever the healthy endpoints of all levels cannot take goes to
//! the degraded ones, in the same order. When the levels together are less
//! than 100% available (the normalized total availability), the load is
//! scaled up so that it still adds up to 100%.
//!
//! Panic mode: while the normalized total availability is 100%, no level
//! panics, however few usable endpoints one has. Below that, a level whose
//! usable (healthy or degraded) endpoints are fewer than
//! `healthy_panic_threshold` percent of its endpoints panics: requests sent
//! to it go to all its endpoints. When every level panics (as when nothing
//! is usable), the load is shared by the levels' endpoint counts instead. A
//! threshold of 0 turns panic off; with nothing usable, level 0 then takes
//! all the load and has nothing to pick.
//!
//! Everything is in whole percents, rounded down as Envoy does, so a cluster
//! behaves like an Envoy-served one with the same endpoints.

/// How many endpoints of one priority level there are, by condition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LevelCounts {
    pub total: u32,
    pub healthy: u32,
    pub degraded: u32,
}

/// The percentage of requests each level takes, first to its healthy
/// endpoints, then to its degraded ones (together 100 when there is a
/// level), and whether each level is in panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityLoad {
    pub healthy: Vec<u32>,
    pub degraded: Vec<u32>,
    pub panic: Vec<bool>,
}

/// `count` of `total` endpoints, scaled by `overprovisioning` percent, in
/// percent capped at 100. Also a locality's availability in locality
/// weighted balancing.
pub fn availability(count: u32, total: u32, overprovisioning: u32) -> u32 {
    if total == 0 {
        return 0;
    }
    let scaled = u64::from(overprovisioning) * u64::from(count) / u64::from(total);
    scaled.min(100) as u32
}

/// The load of each level, highest priority first.
pub fn priority_load(
    levels: &[LevelCounts],
    overprovisioning: u32,
    panic_threshold: f64,
) -> PriorityLoad {
    let n = levels.len();
    let mut load = PriorityLoad {
        healthy: vec![0; n],
        degraded: vec![0; n],
        panic: vec![false; n],
    };
    if n == 0 {
        return load;
    }
    let health: Vec<u32> = levels
        .iter()
        .map(|l| availability(l.healthy, l.total, overprovisioning))
        .collect();
    let degraded: Vec<u32> = levels
        .iter()
        .map(|l| availability(l.degraded, l.total, overprovisioning))
        .collect();
    let total = (health.iter().sum::<u32>() + degraded.iter().sum::<u32>()).min(100);
    if total > 0 {
        let (first_healthy, left) = distribute(&mut load.healthy, &health, 100, total);
        let (first_degraded, left) = distribute(&mut load.degraded, &degraded, left, total);
        // Rounding leftovers go to the first level that can take them.
        match (first_healthy, first_degraded) {
            (Some(level), _) => load.healthy[level] += left,
            (None, Some(level)) => load.degraded[level] += left,
            (None, None) => {}
        }
    } else if panic_threshold == 0.0 {
        load.healthy[0] = 100;
        return load;
    }
    if total < 100 {
        for (panic, level) in load.panic.iter_mut().zip(levels) {
            *panic = in_panic(level, panic_threshold);
        }
    }
    if load.panic.iter().all(|panic| *panic) {
        by_endpoint_count(&mut load, levels);
    }
    load
}

/// Gives each level its availability's share of `total` until the load
/// runs out: the first level with any availability, and the load left.
fn distribute(
    load: &mut [u32],
    availability: &[u32],
    mut left: u32,
    total: u32,
) -> (Option<usize>, u32) {
    let mut first = None;
    for (i, available) in availability.iter().enumerate() {
        if first.is_none() && *available > 0 {
            first = Some(i);
        }
        load[i] = left.min(available * 100 / total);
        left -= load[i];
    }
    (first, left)
}

fn in_panic(level: &LevelCounts, panic_threshold: f64) -> bool {
    let usable = if level.total == 0 {
        0.0
    } else {
        100.0 * f64::from(level.healthy + level.degraded) / f64::from(level.total)
    };
    usable < panic_threshold
}

/// Total panic: each level takes its share of all endpoints.
fn by_endpoint_count(load: &mut PriorityLoad, levels: &[LevelCounts]) {
    let all: u32 = levels.iter().map(|l| l.total).sum();
    load.degraded.iter_mut().for_each(|d| *d = 0);
    if all == 0 {
        load.healthy.iter_mut().for_each(|h| *h = 0);
        load.healthy[0] = 100;
        return;
    }
    let mut left = 100;
    for (share, level) in load.healthy.iter_mut().zip(levels) {
        *share = 100 * level.total / all;
        left -= *share;
    }
    if let Some(first) = levels.iter().position(|l| l.total > 0) {
        load.healthy[first] += left;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(total: u32, healthy: u32, degraded: u32) -> LevelCounts {
        LevelCounts {
            total,
            healthy,
            degraded,
        }
    }

    fn healthy_load(levels: &[LevelCounts]) -> Vec<u32> {
        priority_load(levels, 140, 50.0).healthy
    }

    #[test]
    fn health_is_the_usable_share_overprovisioned_and_capped() {
        assert_eq!(availability(2, 4, 140), 70);
        assert_eq!(availability(4, 5, 140), 100, "80% x 1.4 is capped");
        assert_eq!(availability(1, 3, 140), 46, "rounded down");
        assert_eq!(availability(1, 2, 100), 50);
        assert_eq!(availability(0, 0, 140), 0);
    }

    #[test]
    fn load_spills_to_lower_priorities() {
        // Envoy's documented examples.
        assert_eq!(healthy_load(&[level(4, 4, 0), level(4, 4, 0)]), [100, 0]);
        assert_eq!(healthy_load(&[level(4, 2, 0), level(4, 4, 0)]), [70, 30]);
        assert_eq!(healthy_load(&[level(10, 5, 0), level(10, 5, 0)]), [70, 30]);
        assert_eq!(
            healthy_load(&[level(10, 2, 0), level(10, 2, 0), level(10, 10, 0)]),
            [28, 28, 44]
        );
        // 70% and 14% available: 84% in all, scaled up to 100%.
        let load = priority_load(&[level(10, 5, 0), level(10, 1, 0)], 140, 50.0);
        assert_eq!(load.healthy, [84, 16], "normalized by total health");
        assert_eq!(load.panic, [false, true]);
        assert_eq!(healthy_load(&[level(4, 0, 0), level(2, 2, 0)]), [0, 100]);
        // Another overprovisioning factor.
        assert_eq!(
            priority_load(&[level(4, 2, 0), level(4, 4, 0)], 100, 50.0).healthy,
            [50, 50]
        );
    }

    #[test]
    fn degraded_endpoints_take_what_healthy_ones_cannot() {
        let load = priority_load(&[level(4, 2, 1), level(4, 0, 4)], 140, 50.0);
        // Healthy 70% at P0; degraded availability 35% at P0 takes the rest.
        assert_eq!((load.healthy, load.degraded), (vec![70, 0], vec![30, 0]));
        let load = priority_load(&[level(3, 1, 2)], 140, 50.0);
        assert_eq!((load.healthy, load.degraded), (vec![46], vec![54]));
        let load = priority_load(&[level(2, 0, 1)], 140, 50.0);
        assert_eq!((load.healthy, load.degraded), (vec![0], vec![100]));
        // The rounding leftover goes to the first healthy level (Envoy's
        // example: 10/20/10% healthy, 20/10/0% degraded; no panic here).
        let load = priority_load(
            &[level(100, 10, 20), level(100, 20, 10), level(100, 10, 0)],
            100,
            0.0,
        );
        assert_eq!(load.healthy, [16, 28, 14]);
        assert_eq!(load.degraded, [28, 14, 0]);
    }

    #[test]
    fn no_panic_while_the_levels_together_are_fully_available() {
        let load = priority_load(&[level(4, 1, 0), level(4, 4, 0)], 140, 50.0);
        assert_eq!(load.healthy, [35, 65]);
        assert_eq!(load.panic, [false, false], "P0 is 25% usable, P1 covers");
        // One level alone: 3 of 4 is 105% available, so even a threshold of
        // 100% does not panic.
        let load = priority_load(&[level(4, 3, 0)], 140, 100.0);
        assert_eq!(load.panic, [false]);
    }

    #[test]
    fn panic_per_level_below_full_availability() {
        // 1 of 4 and 1 of 2 healthy: 35% + 70%, capped at 100%: no panic.
        let load = priority_load(&[level(4, 1, 0), level(2, 1, 0)], 140, 50.0);
        assert_eq!(load.panic, [false, false]);
        // 1 of 4 and 1 of 4: 35% + 35% = 70%. Both are below half: total
        // panic, shared by endpoint count.
        let load = priority_load(&[level(4, 1, 0), level(4, 1, 0)], 140, 50.0);
        assert_eq!(load.panic, [true, true]);
        assert_eq!((load.healthy, load.degraded), (vec![50, 50], vec![0, 0]));
        // 1 of 4 and 1 of 2: with no overprovisioning 25% + 50% = 75%; P0
        // panics, P1 (at the threshold) does not.
        let load = priority_load(&[level(4, 1, 0), level(2, 1, 0)], 100, 50.0);
        assert_eq!(load.panic, [true, false]);
        assert_eq!(load.healthy, [34, 66]);
        // A lower threshold keeps P0 out of panic.
        let load = priority_load(&[level(4, 1, 0), level(2, 1, 0)], 100, 20.0);
        assert_eq!(load.panic, [false, false]);
    }

    #[test]
    fn total_panic_shares_by_endpoint_count() {
        let load = priority_load(&[level(1, 0, 0), level(3, 0, 0)], 140, 50.0);
        assert_eq!(load.panic, [true, true]);
        assert_eq!(load.healthy, [25, 75]);
        let load = priority_load(&[level(2, 0, 0), level(1, 0, 0)], 140, 50.0);
        assert_eq!(load.healthy, [67, 33], "the rounding leftover to P0");
        // One level: 1 of 2 is 70% available and not below half; none is.
        let load = priority_load(&[level(2, 1, 0)], 140, 50.0);
        assert_eq!((load.healthy, load.panic), (vec![100], vec![false]));
        let load = priority_load(&[level(2, 0, 0)], 140, 50.0);
        assert_eq!((load.healthy, load.panic), (vec![100], vec![true]));
        let load = priority_load(&[level(3, 1, 0)], 140, 50.0);
        assert_eq!((load.healthy, load.panic), (vec![100], vec![true]));
        let load = priority_load(&[level(3, 1, 0)], 140, 30.0);
        assert_eq!((load.healthy, load.panic), (vec![100], vec![false]));
        // Degraded endpoints count as usable.
        let load = priority_load(&[level(3, 0, 1)], 140, 30.0);
        assert_eq!((load.degraded, load.panic), (vec![100], vec![false]));
    }

    #[test]
    fn panic_off_and_nothing_usable() {
        let load = priority_load(&[level(2, 0, 0), level(2, 0, 0)], 140, 0.0);
        assert_eq!(load.healthy, [100, 0]);
        assert_eq!(load.panic, [false, false]);
        assert_eq!(
            priority_load(&[], 140, 50.0),
            PriorityLoad {
                healthy: vec![],
                degraded: vec![],
                panic: vec![]
            }
        );
    }
}
