//! Outlier detection: passive health checking from the outcomes of real
//! requests, as Envoy does it for consecutive errors.
//!
//! - Every response an endpoint gives is reported: its status, or 503 for a
//!   connect failure or a reset and 504 for a timeout (Envoy's mapping when
//!   local and external errors are not split).
//! - The `consecutive_5xx`-th 5xx in a row, or the
//!   `consecutive_gateway_failure`-th 502/503/504 in a row, detects an
//!   outlier at once (not at the next interval). It is ejected unless that
//!   would leave more than `max_ejection_percent` of the endpoints ejected
//!   (counting it; `always_eject_one_host` allows the first anyway), and then
//!   only with the `enforcing_*` percent chance.
//! - An ejection lasts `base_ejection_time` times the endpoint's ejection
//!   count, at most `max_ejection_time`, plus up to
//!   `max_ejection_time_jitter`. As in Envoy the count goes down by one for
//!   each `interval` the endpoint spends back in service, so an endpoint
//!   that failed long ago starts over.
//! - Ejections end when their time is up: checked when an endpoint is picked
//!   and on every `interval`. A returning endpoint's error counts start at 0.
//!
//! Time is passed in, so that tests can run the clock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::OutlierDetection;
use crate::stats::OutlierStats;

/// The detector of one cluster.
#[derive(Debug)]
pub struct Detector {
    config: OutlierDetection,
    hosts: Vec<Counters>,
    state: Mutex<State>,
    /// Bumped on every ejection and return, so that balancers know to
    /// rebuild their view of the endpoints.
    generation: AtomicU64,
    /// When the earliest ejection ends, in nanoseconds after `epoch`.
    next_return: AtomicU64,
    epoch: Instant,
    stats: Arc<OutlierStats>,
}

/// What the data path updates without a lock.
#[derive(Debug, Default)]
struct Counters {
    consecutive_5xx: AtomicU32,
    consecutive_gateway_failure: AtomicU32,
    ejected: AtomicBool,
}

#[derive(Debug)]
struct State {
    hosts: Vec<Ejections>,
    active: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Ejections {
    /// When the current ejection ends.
    until: Option<Instant>,
    /// The ejection time multiplier.
    backoff: u32,
    returned_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detected {
    Consecutive5xx,
    ConsecutiveGatewayFailure,
}

const NONE_DUE: u64 = u64::MAX;

impl Detector {
    pub fn new(config: OutlierDetection, endpoints: usize, now: Instant) -> Detector {
        Detector {
            config,
            hosts: (0..endpoints).map(|_| Counters::default()).collect(),
            state: Mutex::new(State {
                hosts: vec![Ejections::default(); endpoints],
                active: 0,
            }),
            generation: AtomicU64::new(0),
            next_return: AtomicU64::new(NONE_DUE),
            epoch: now,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> &Arc<OutlierStats> {
        &self.stats
    }

    pub fn interval(&self) -> Duration {
        self.config.interval
    }

    /// Whether endpoint `index` is ejected (as of the last [`Detector::refresh`]).
    pub fn is_ejected(&self, index: usize) -> bool {
        self.hosts[index].ejected.load(Ordering::SeqCst)
    }

    /// Ends the ejections whose time is up, and returns the generation of the
    /// ejected set. Cheap unless an ejection is due to end.
    pub fn refresh(&self, now: Instant) -> u64 {
        if self.nanos(now) >= self.next_return.load(Ordering::SeqCst) {
            let mut state = self.lock();
            self.end_ejections(&mut state, now);
        }
        self.generation.load(Ordering::SeqCst)
    }

    /// The interval's review: ejections that are due end, and the ejection
    /// multiplier of endpoints back in service for an interval goes down.
    pub fn tick(&self, now: Instant) {
        let mut state = self.lock();
        self.end_ejections(&mut state, now);
        for (i, host) in state.hosts.iter_mut().enumerate() {
            let back_for_an_interval = host
                .returned_at
                .is_some_and(|at| now.saturating_duration_since(at) >= self.config.interval);
            if !self.is_ejected(i) && back_for_an_interval {
                host.backoff = host.backoff.saturating_sub(1);
            }
        }
    }

    /// How a request to endpoint `index` went: its status, or 503 for a
    /// connect failure or reset, 504 for a timeout.
    pub fn report(&self, index: usize, status: u16, now: Instant) {
        let host = &self.hosts[index];
        if !(500..600).contains(&status) {
            host.consecutive_5xx.store(0, Ordering::SeqCst);
            host.consecutive_gateway_failure.store(0, Ordering::SeqCst);
            return;
        }
        if matches!(status, 502..=504) {
            let n = host
                .consecutive_gateway_failure
                .fetch_add(1, Ordering::SeqCst)
                .wrapping_add(1);
            if n == self.config.consecutive_gateway_failure && n > 0 {
                self.detected(index, Detected::ConsecutiveGatewayFailure, now);
            }
        } else {
            host.consecutive_gateway_failure.store(0, Ordering::SeqCst);
        }
        let n = host
            .consecutive_5xx
            .fetch_add(1, Ordering::SeqCst)
            .wrapping_add(1);
        if n == self.config.consecutive_5xx && n > 0 {
            self.detected(index, Detected::Consecutive5xx, now);
        }
    }

    fn detected(&self, index: usize, kind: Detected, now: Instant) {
        let mut state = self.lock();
        self.end_ejections(&mut state, now);
        let host = &self.hosts[index];
        if host.ejected.load(Ordering::SeqCst) {
            return;
        }
        let (detected, counter) = match kind {
            Detected::Consecutive5xx => (
                &self.stats.ejections_detected_consecutive_5xx,
                &host.consecutive_5xx,
            ),
            Detected::ConsecutiveGatewayFailure => (
                &self.stats.ejections_detected_consecutive_gateway_failure,
                &host.consecutive_gateway_failure,
            ),
        };
        detected.fetch_add(1, Ordering::Relaxed);
        self.eject(&mut state, index, kind, now);
        // Count afresh, so that another run of errors is detected too.
        counter.store(0, Ordering::SeqCst);
    }

    fn eject(&self, state: &mut State, index: usize, kind: Detected, now: Instant) {
        let total = self.hosts.len() as u64;
        let after = state.active as u64 + 1;
        let within_limit = after * 100 <= u64::from(self.config.max_ejection_percent) * total;
        let first_anyway = self.config.always_eject_one_host && state.active == 0;
        if !(within_limit || first_anyway) {
            self.stats
                .ejections_overflow
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (enforcing, enforced) = match kind {
            Detected::Consecutive5xx => (
                self.config.enforcing_consecutive_5xx,
                &self.stats.ejections_enforced_consecutive_5xx,
            ),
            Detected::ConsecutiveGatewayFailure => (
                self.config.enforcing_consecutive_gateway_failure,
                &self.stats.ejections_enforced_consecutive_gateway_failure,
            ),
        };
        if fastrand::u32(..100) >= enforcing {
            return;
        }
        enforced.fetch_add(1, Ordering::Relaxed);
        self.stats
            .ejections_enforced_total
            .fetch_add(1, Ordering::Relaxed);
        let (base, max) = (
            self.config.base_ejection_time,
            self.config.max_ejection_time,
        );
        let host = &mut state.hosts[index];
        if base.saturating_mul(host.backoff) < max.saturating_add(base) {
            host.backoff += 1;
        }
        let jitter_ms =
            u64::try_from(self.config.max_ejection_time_jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = Duration::from_millis(fastrand::u64(..=jitter_ms));
        let until = now + base.saturating_mul(host.backoff).min(max) + jitter;
        host.until = Some(until);
        state.active += 1;
        self.hosts[index].ejected.store(true, Ordering::SeqCst);
        self.stats
            .ejections_active
            .store(state.active as u64, Ordering::Relaxed);
        self.next_return
            .fetch_min(self.nanos(until), Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn end_ejections(&self, state: &mut State, now: Instant) {
        let mut next = NONE_DUE;
        let mut changed = false;
        for (i, host) in state.hosts.iter_mut().enumerate() {
            let Some(until) = host.until else { continue };
            if until > now {
                next = next.min(self.nanos(until));
                continue;
            }
            host.until = None;
            host.returned_at = Some(now);
            let counters = &self.hosts[i];
            counters.consecutive_5xx.store(0, Ordering::SeqCst);
            counters
                .consecutive_gateway_failure
                .store(0, Ordering::SeqCst);
            counters.ejected.store(false, Ordering::SeqCst);
            state.active -= 1;
            changed = true;
        }
        self.next_return.store(next, Ordering::SeqCst);
        if changed {
            self.stats
                .ejections_active
                .store(state.active as u64, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(NONE_DUE - 1)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 3,
            interval: Duration::from_millis(100),
            base_ejection_time: Duration::from_secs(1),
            max_ejection_percent: 100,
            ..OutlierDetection::default()
        }
    }

    fn fail(detector: &Detector, index: usize, times: usize, status: u16, now: Instant) {
        for _ in 0..times {
            detector.report(index, status, now);
        }
    }

    fn active(detector: &Detector) -> u64 {
        detector.stats.ejections_active.load(Ordering::Relaxed)
    }

    fn enforced(detector: &Detector) -> u64 {
        detector
            .stats
            .ejections_enforced_total
            .load(Ordering::Relaxed)
    }

    #[test]
    fn consecutive_5xx_eject_and_time_brings_back() {
        let start = Instant::now();
        let detector = Detector::new(config(), 2, start);
        fail(&detector, 0, 2, 500, start);
        detector.report(0, 200, start);
        fail(&detector, 0, 2, 500, start);
        assert!(!detector.is_ejected(0), "a success breaks the run");
        let before = detector.refresh(start);
        detector.report(0, 500, start);
        assert!(detector.is_ejected(0) && !detector.is_ejected(1));
        assert_ne!(detector.refresh(start), before, "the generation moved");
        assert_eq!((active(&detector), enforced(&detector)), (1, 1));
        assert_eq!(
            detector
                .stats
                .ejections_detected_consecutive_5xx
                .load(Ordering::Relaxed),
            1
        );

        detector.refresh(start + Duration::from_millis(999));
        assert!(detector.is_ejected(0));
        detector.refresh(start + Duration::from_secs(1));
        assert!(!detector.is_ejected(0), "back after base_ejection_time");
        assert_eq!((active(&detector), enforced(&detector)), (1 - 1, 1));
    }

    #[test]
    fn each_ejection_lasts_longer_up_to_the_maximum() {
        let mut config = config();
        config.max_ejection_time = Duration::from_secs(3);
        let t0 = Instant::now();
        let detector = Detector::new(config, 1, t0);
        let mut now = t0;
        for expected in [1, 2, 3, 3] {
            fail(&detector, 0, 3, 503, now);
            assert!(detector.is_ejected(0));
            let back = now + Duration::from_secs(expected);
            detector.refresh(back - Duration::from_millis(1));
            assert!(detector.is_ejected(0), "ejected for {expected}s");
            detector.refresh(back);
            assert!(!detector.is_ejected(0), "back after {expected}s");
            now = back;
        }
        assert_eq!(enforced(&detector), 4);
    }

    #[test]
    fn the_multiplier_decays_while_the_endpoint_is_healthy() {
        let t0 = Instant::now();
        let detector = Detector::new(config(), 1, t0);
        fail(&detector, 0, 3, 500, t0);
        let back = t0 + Duration::from_secs(1);
        detector.tick(back);
        assert!(!detector.is_ejected(0));
        // Ejected again at once: for 2 s.
        fail(&detector, 0, 3, 500, back);
        let back = back + Duration::from_secs(2);
        detector.tick(back);
        assert!(!detector.is_ejected(0));
        // Healthy for several intervals: the multiplier goes back down to 0.
        for i in 1..=3 {
            detector.tick(back + Duration::from_millis(100 * i));
        }
        let now = back + Duration::from_millis(300);
        fail(&detector, 0, 3, 500, now);
        detector.refresh(now + Duration::from_secs(1));
        assert!(!detector.is_ejected(0), "ejected for the base time again");
    }

    #[test]
    fn max_ejection_percent_counts_the_new_ejection() {
        let t0 = Instant::now();
        // Envoy's default of 10%: with fewer than 10 endpoints nothing is ejected.
        let mut config = config();
        config.max_ejection_percent = 10;
        let detector = Detector::new(config, 5, t0);
        fail(&detector, 0, 3, 500, t0);
        assert!(!detector.is_ejected(0));
        assert_eq!(detector.stats.ejections_overflow.load(Ordering::Relaxed), 1);
        // ... unless one ejection is always allowed.
        config.always_eject_one_host = true;
        let detector = Detector::new(config, 5, t0);
        fail(&detector, 0, 3, 500, t0);
        fail(&detector, 1, 3, 500, t0);
        assert!(detector.is_ejected(0) && !detector.is_ejected(1));

        config.max_ejection_percent = 50;
        config.always_eject_one_host = false;
        let detector = Detector::new(config, 4, t0);
        for i in 0..4 {
            fail(&detector, i, 3, 500, t0);
        }
        let ejected = (0..4).filter(|i| detector.is_ejected(*i)).count();
        assert_eq!(ejected, 2);
        assert_eq!(active(&detector), 2);
    }

    #[test]
    fn gateway_failures_and_enforcement() {
        let t0 = Instant::now();
        let mut config = config();
        config.consecutive_5xx = 0;
        config.consecutive_gateway_failure = 2;
        // Envoy's default enforcing_consecutive_gateway_failure is 0: detected, not ejected.
        let detector = Detector::new(config, 2, t0);
        fail(&detector, 0, 2, 502, t0);
        assert!(!detector.is_ejected(0));
        assert_eq!(
            detector
                .stats
                .ejections_detected_consecutive_gateway_failure
                .load(Ordering::Relaxed),
            1
        );
        config.enforcing_consecutive_gateway_failure = 100;
        let detector = Detector::new(config, 2, t0);
        detector.report(0, 502, t0);
        detector.report(0, 500, t0);
        detector.report(0, 504, t0);
        assert!(!detector.is_ejected(0), "a 500 is not a gateway failure");
        detector.report(0, 503, t0);
        assert!(detector.is_ejected(0));
        assert_eq!(
            detector
                .stats
                .ejections_enforced_consecutive_gateway_failure
                .load(Ordering::Relaxed),
            1
        );

        let mut config = super::tests::config();
        config.enforcing_consecutive_5xx = 0;
        let detector = Detector::new(config, 2, t0);
        fail(&detector, 0, 10, 500, t0);
        assert!(!detector.is_ejected(0));
        assert_eq!(enforced(&detector), 0);
    }

    #[test]
    fn the_interval_ends_ejections_without_traffic() {
        let t0 = Instant::now();
        let detector = Detector::new(config(), 3, t0);
        fail(&detector, 2, 3, 500, t0);
        assert_eq!(active(&detector), 1);
        detector.tick(t0 + Duration::from_millis(1100));
        assert_eq!(active(&detector), 0);
        assert!(!detector.is_ejected(2));
        // Errors before the ejection do not count after it.
        fail(&detector, 2, 2, 500, t0 + Duration::from_millis(1200));
        assert!(!detector.is_ejected(2));
    }
}
