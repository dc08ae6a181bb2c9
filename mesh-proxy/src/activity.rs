//! Whether a connection is in use, for closing it after an idle timeout:
//! the upstream pool's connections, the connections clients make to an
//! HTTP listener (requests in flight), and `tcp_proxy` connections (bytes
//! passing) share this.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

/// One request started, in [`Activity::state`]'s upper half.
const BEGUN: u64 = 1 << 32;
/// How many parts of its idle timeout a connection sleeps between looks.
const LOOKS: u32 = 4;

/// The requests a connection has in flight, and whether anything has
/// happened on it lately. No clock is read per request: the idle timer
/// looks at a counter a few times per timeout instead.
#[derive(Debug)]
pub struct Activity {
    /// Events so far (requests begun, bytes passed) in the upper 32 bits,
    /// both wrapping; requests in flight in the lower 32. One word, so
    /// that a request costs one atomic operation at each end.
    state: AtomicU64,
}

impl Activity {
    /// A connection opened now: idle from now until its first request.
    pub fn new() -> Activity {
        Activity {
            state: AtomicU64::new(0),
        }
    }

    pub fn begin(&self) {
        self.state.fetch_add(BEGUN + 1, Ordering::Relaxed);
    }

    /// A request ended; returns how many are still in flight. SeqCst, so
    /// that a waiter for the last one (see the pool's retired connections)
    /// never misses it.
    pub fn end(&self) -> u32 {
        let before = self.state.fetch_sub(1, Ordering::SeqCst);
        in_flight(before) - 1
    }

    /// Something happened on the connection: it is not idle.
    pub fn touch(&self) {
        self.state.fetch_add(BEGUN, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u32 {
        in_flight(self.state.load(Ordering::SeqCst))
    }

    /// Resolves once the connection has had nothing in flight and nothing
    /// new for `timeout`, at most a quarter of it later; never without a
    /// timeout. It wakes a few times per timeout, whatever the traffic.
    pub async fn idle_for(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        let look = (timeout / LOOKS).max(Duration::from_millis(1));
        let mut seen = self.state.load(Ordering::Relaxed);
        let mut quiet = 0;
        loop {
            tokio::time::sleep(look).await;
            let now = self.state.load(Ordering::Relaxed);
            if now == seen && in_flight(now) == 0 {
                quiet += 1;
                if quiet == LOOKS {
                    return;
                }
            } else {
                (seen, quiet) = (now, 0);
            }
        }
    }
}

/// The requests in flight, from an [`Activity::state`].
fn in_flight(state: u64) -> u32 {
    state as u32
}

impl Default for Activity {
    fn default() -> Activity {
        Activity::new()
    }
}

/// Resolves `max` after the call (not the first poll), or never without
/// a limit.
pub fn after(max: Option<Duration>) -> impl Future<Output = ()> {
    let deadline = max.map(|max| tokio::time::Instant::now() + max);
    async move {
        match deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }
}

/// How [`until`] ended.
#[derive(Debug)]
pub enum Ended<T, U> {
    /// The work finished.
    Done(T),
    /// `stop` resolved first; the work is left as it was.
    Stopped(U),
}

/// Runs `work` until it finishes or `stop` resolves, polling `stop` only
/// when its own waker has fired. A `select!` polls every branch whenever
/// any of them wakes the task; a connection, woken several times for each
/// request, would check its drain signal and idle timer every time.
pub fn until<W, S>(work: W, stop: S) -> Until<W, S>
where
    W: Future + Unpin,
    S: Future,
{
    Until {
        work,
        stop: Box::pin(stop),
        stop_waker: Arc::new(StopWaker {
            // Polled at once, so that it can register its waker.
            woken: AtomicBool::new(true),
            task: Mutex::new(None),
        }),
        task: None,
    }
}

#[derive(Debug)]
pub struct Until<W, S> {
    work: W,
    stop: Pin<Box<S>>,
    stop_waker: Arc<StopWaker>,
    /// The waker `stop_waker` passes wakeups on to, as last registered.
    task: Option<Waker>,
}

/// Notes that `stop` asked to be polled, and wakes the task.
#[derive(Debug)]
struct StopWaker {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for StopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().expect("waker lock").as_ref() {
            task.wake_by_ref();
        }
    }
}

impl<W, S> Future for Until<W, S>
where
    W: Future + Unpin,
    S: Future,
{
    type Output = Ended<W::Output, S::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(done) = Pin::new(&mut this.work).poll(cx) {
            return Poll::Ready(Ended::Done(done));
        }
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            this.task = Some(cx.waker().clone());
            *this.stop_waker.task.lock().expect("waker lock") = Some(cx.waker().clone());
        }
        if this.stop_waker.woken.swap(false, Ordering::Acquire) {
            let waker = Waker::from(Arc::clone(&this.stop_waker));
            if let Poll::Ready(stopped) = this.stop.as_mut().poll(&mut Context::from_waker(&waker))
            {
                return Poll::Ready(Ended::Stopped(stopped));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Pending until `open`; counts its polls.
    fn gate(
        open: Arc<tokio::sync::Notify>,
        polls: Arc<AtomicUsize>,
    ) -> impl Future<Output = &'static str> {
        let mut notified = Box::pin(async move { open.notified().await });
        std::future::poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::Relaxed);
            notified.as_mut().poll(cx).map(|()| "stopped")
        })
    }

    #[tokio::test]
    async fn idle_means_nothing_in_flight_and_nothing_new_for_the_timeout() {
        let timeout = Some(Duration::from_millis(80));
        let activity = Activity::new();
        activity.begin();
        // A request in flight for three timeouts, then events for three more.
        let busy = async {
            tokio::time::sleep(Duration::from_millis(240)).await;
            activity.end();
            for _ in 0..24 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                activity.touch();
            }
            std::time::Instant::now()
        };
        let idle = async {
            activity.idle_for(timeout).await;
            std::time::Instant::now()
        };
        let (last, idle) = tokio::join!(busy, idle);
        assert!(idle >= last + Duration::from_millis(80), "idle too early");
    }

    #[tokio::test]
    async fn stop_is_polled_only_when_it_was_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(tokio::sync::Notify::new());
        // Wakes its task twenty times before it is done.
        let work = Box::pin(async {
            for _ in 0..20 {
                tokio::task::yield_now().await;
            }
            "done"
        });
        let ended = until(work, gate(Arc::clone(&open), Arc::clone(&polls))).await;
        assert!(matches!(ended, Ended::Done("done")), "{ended:?}");
        assert_eq!(polls.load(Ordering::Relaxed), 1, "only the first poll");
    }

    #[tokio::test]
    async fn stop_ends_the_wait_when_it_resolves() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(tokio::sync::Notify::new());
        let opener = Arc::clone(&open);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            opener.notify_one();
        });
        let never = std::future::pending::<()>();
        let ended = until(Box::pin(never), gate(open, Arc::clone(&polls))).await;
        assert!(matches!(ended, Ended::Stopped("stopped")), "{ended:?}");
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }
}
