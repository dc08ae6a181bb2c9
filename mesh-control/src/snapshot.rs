//! Builds the [`MeshSnapshot`] translation reads, from the config sources,
//! the service registries and the mesh config, and publishes a new one, with
//! a higher version, whenever any source or registry changes.
//!
//! Sources only ever hold valid config, so only valid config goes in. When
//! two sources hold the same resource (kind, namespace, name), the source
//! listed first wins and the other is reported. Bursts of changes coalesce:
//! a rebuild reads whatever every source holds at that moment. Pushes to
//! proxies are debounced by the xDS server, not here.

use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::model::{FetchedJwks, MeshConfig, MeshSnapshot};
use crate::registry::{ServiceRegistry, ServiceSet};
use crate::store::{ConfigSet, ConfigSource};

/// What a snapshot is built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub mesh: MeshConfig,
    /// In order of precedence.
    pub sources: Vec<Arc<dyn ConfigSource>>,
    pub registries: Vec<Arc<dyn ServiceRegistry>>,
    /// The key sets fetched for RequestAuthentication (see [`crate::jwks`]);
    /// without it, rules that need fetched keys refuse every token.
    pub jwks: Option<watch::Receiver<Arc<FetchedJwks>>>,
}

impl Inputs {
    /// The snapshot of what every source and registry holds now.
    pub fn build(&self, version: u64) -> MeshSnapshot {
        let sets: Vec<Arc<ConfigSet>> = self.sources.iter().map(|s| s.current()).collect();
        let merged = ConfigSet::merge(sets.iter().map(AsRef::as_ref));
        let own: usize = sets.iter().map(|s| s.problems.len()).sum();
        for duplicate in &merged.problems[own..] {
            tracing::warn!("config left out: {duplicate}");
        }
        let config = merged.resources();
        let mut services = ServiceSet::default();
        for registry in &self.registries {
            services.extend(registry.services(&config, &self.mesh));
        }
        MeshSnapshot {
            version,
            mesh: self.mesh.clone(),
            config,
            services: services.services,
            endpoints: services.endpoints,
            jwks: self
                .jwks
                .as_ref()
                .map(|keys| Arc::clone(&keys.borrow()))
                .unwrap_or_default(),
        }
    }
}

/// Publishes a snapshot now and again after every change. Runs until no
/// one holds a receiver of `sender` any more, or every source and registry
/// that can change is gone. Versions continue from the snapshot `sender` holds.
pub async fn publish(inputs: Inputs, sender: watch::Sender<Arc<MeshSnapshot>>) {
    let (changed, mut changes) = mpsc::channel::<()>(1);
    // Dropped on return, which stops the forwarders.
    let mut forwarders = JoinSet::new();
    for source in &inputs.sources {
        tracing::info!(source = %source.name(), "following config source");
        forwarders.spawn(forward(source.subscribe(), changed.clone()));
    }
    for registry in &inputs.registries {
        tracing::info!(registry = %registry.name(), "following service registry");
        if let Some(receiver) = registry.subscribe() {
            forwarders.spawn(forward(receiver, changed.clone()));
        }
    }
    if let Some(keys) = &inputs.jwks {
        forwarders.spawn(forward(keys.clone(), changed.clone()));
    }
    drop(changed);
    loop {
        let version = sender.borrow().version + 1;
        let snapshot = inputs.build(version);
        tracing::info!(
            version,
            resources = snapshot.config.len(),
            services = snapshot.services.len(),
            endpoints = snapshot.endpoints.len(),
            "mesh snapshot built"
        );
        sender.send_replace(Arc::new(snapshot));
        tokio::select! {
            change = changes.recv() => if change.is_none() { return },
            () = sender.closed() => return,
        }
    }
}

/// Passes on that `receiver` changed; a change already waiting to be read
/// covers this one too.
async fn forward<T: Send + Sync>(mut receiver: watch::Receiver<T>, changed: mpsc::Sender<()>) {
    while receiver.changed().await.is_ok() {
        // Full means a change is already waiting to be read.
        if let Err(mpsc::error::TrySendError::Closed(())) = changed.try_send(()) {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
