//! Telling every listener and connection that the proxy is shutting down.

use tokio::sync::watch;

/// Starts the drain.
#[derive(Debug, Clone)]
pub struct Trigger(watch::Sender<bool>);

/// Learns that the drain has started.
#[derive(Debug, Clone)]
pub struct Drain(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Drain) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Drain(rx))
}

impl Trigger {
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

impl Drain {
    /// A drain of its own that also starts when this one does: for one
    /// listener, or one cluster's background work. Needs a tokio runtime.
    pub fn child(&self) -> (Trigger, Drain) {
        let (trigger, drain) = channel();
        let (parent, forward) = (self.clone(), trigger.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = parent.started() => forward.start(),
                // Every receiver is gone: nothing left to tell.
                () = forward.0.closed() => {}
            }
        });
        (trigger, drain)
    }

    /// Resolves once the drain has started.
    pub async fn started(mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}
