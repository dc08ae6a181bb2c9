//! Whether a connection is in use, for closing it after an idle timeout:
//! the upstream pool's connections, the connections clients make to an
//! HTTP listener (requests in flight), and `tcp_proxy` connections (bytes
//! passing) share this.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The requests a connection has in flight, and when its last one ended.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicU32,
    /// When the last request ended, in milliseconds since `opened`.
    idle_since: AtomicU64,
    opened: Instant,
}

impl Activity {
    /// A connection opened now: idle from now until its first request.
    pub fn new() -> Activity {
        Activity {
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
        }
    }

    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended; returns how many are still in flight. SeqCst, so
    /// that a waiter for the last one (see the pool's retired connections)
    /// never misses it.
    pub fn end(&self) -> u32 {
        self.touch();
        self.in_flight.fetch_sub(1, Ordering::SeqCst) - 1
    }

    /// Something happened on the connection just now: it is idle from now.
    pub fn touch(&self) {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since.store(millis, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Resolves once the connection has had no request for `timeout`;
    /// never without one. It looks again only when the timeout could have
    /// passed, so a busy connection costs one timer per `timeout`, not one
    /// per request.
    pub async fn idle_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let wait = if self.in_flight.load(Ordering::Relaxed) > 0 {
                timeout
            } else {
                let since = Duration::from_millis(self.idle_since.load(Ordering::Relaxed));
                let idle_for = self.opened.elapsed().saturating_sub(since);
                match timeout.checked_sub(idle_for) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

/// Resolves `max` after now, or never without a limit.
pub async fn after(max: Option<Duration>) {
    match max {
        Some(max) => tokio::time::sleep(max).await,
        None => std::future::pending().await,
    }
}
