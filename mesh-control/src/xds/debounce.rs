//! Debouncing snapshots: a burst of changes (a `kubectl apply` of ten files,
//! a directory rewritten by an editor) becomes one push.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::MeshSnapshot;

/// How long to wait for config to settle before pushing.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    /// A push waits until no change came for this long...
    pub quiet: Duration,
    /// ...but no longer than this after the first change.
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// A snapshot to push.
#[derive(Debug, Clone)]
pub struct Push {
    pub snapshot: Arc<MeshSnapshot>,
    /// When the first change of the burst arrived; `None` for the snapshot
    /// the server started with.
    pub changed_at: Option<Instant>,
}

/// Passes the snapshots of `input` on, debounced. The first snapshot goes out
/// at once. The task ends when `input`'s sender is gone.
pub fn debounce(
    mut input: watch::Receiver<Arc<MeshSnapshot>>,
    timing: Debounce,
) -> watch::Receiver<Push> {
    let first = Push {
        snapshot: Arc::clone(&input.borrow_and_update()),
        changed_at: None,
    };
    let (output, pushes) = watch::channel(first);
    tokio::spawn(async move {
        while input.changed().await.is_ok() {
            let first = Instant::now();
            let deadline = first + timing.max;
            let mut quiet_until = first + timing.quiet;
            loop {
                tokio::select! {
                    changed = input.changed() => {
                        if changed.is_err() { break; }
                        quiet_until = Instant::now() + timing.quiet;
                    }
                    () = tokio::time::sleep_until(quiet_until.min(deadline)) => break,
                }
            }
            let snapshot = Arc::clone(&input.borrow_and_update());
            let push = Push {
                snapshot,
                changed_at: Some(first),
            };
            if output.send(push).is_err() {
                return;
            }
        }
    });
    pushes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(version: u64) -> Arc<MeshSnapshot> {
        Arc::new(MeshSnapshot {
            version,
            ..MeshSnapshot::default()
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_one_push_and_a_stream_of_changes_waits_at_most_max() {
        let (input, rx) = watch::channel(snapshot(1));
        let mut pushes = debounce(rx, Debounce::default());
        assert_eq!(pushes.borrow_and_update().snapshot.version, 1);

        let start = Instant::now();
        for v in 2..=4 {
            input.send(snapshot(v)).unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pushes.changed().await.unwrap();
        let push = pushes.borrow_and_update().clone();
        assert_eq!(push.snapshot.version, 4);
        assert!(start.elapsed() >= Duration::from_millis(140));
        assert!(start.elapsed() < Duration::from_millis(200));

        // A change every 50 ms never goes quiet: the push leaves at 1 s.
        let start = Instant::now();
        let feeder = tokio::spawn(async move {
            for v in 5..40 {
                input.send(snapshot(v)).unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        pushes.changed().await.unwrap();
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(1) && elapsed < Duration::from_millis(1100),
            "{elapsed:?}"
        );
        feeder.abort();
    }
}
