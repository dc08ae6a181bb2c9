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
    /// Resolves once the drain has started.
    pub async fn started(mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}
