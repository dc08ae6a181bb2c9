//! Delays between reconnections: exponential, capped, with jitter so that
//! many proxies losing one control plane do not come back in step.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(10);
/// Each delay is within ±25 % of its nominal value.
const JITTER: f64 = 0.25;

#[derive(Debug, Clone)]
pub struct Backoff {
    nominal: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff { nominal: FIRST }
    }
}

impl Backoff {
    /// The next delay; each is twice the last, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.nominal;
        self.nominal = (nominal * 2).min(MAX);
        nominal.mul_f64(1.0 + JITTER * (2.0 * fastrand::f64() - 1.0))
    }

    /// Back to the first delay, once the control plane answered.
    pub fn reset(&mut self) {
        self.nominal = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets() {
        let mut backoff = Backoff::default();
        let within = |d: Duration, nominal: Duration| {
            d >= nominal.mul_f64(1.0 - JITTER) && d <= nominal.mul_f64(1.0 + JITTER)
        };
        for nominal_ms in [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000] {
            let delay = backoff.next_delay();
            assert!(
                within(delay, Duration::from_millis(nominal_ms)),
                "{delay:?} for {nominal_ms} ms"
            );
        }
        backoff.reset();
        assert!(within(backoff.next_delay(), FIRST));
    }
}
