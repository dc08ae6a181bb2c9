//! The service registry: which services exist, on which ports, and the
//! endpoints behind them. Every registry (ServiceEntry + WorkloadEntry here,
//! Kubernetes Services, EndpointSlices and Pods later) offers the same
//! [`ServiceRegistry`] face, and the snapshot joins what they all give.

mod service_entry;

use std::fmt;
use std::sync::Arc;

use mesh_api::load::Resource;
use tokio::sync::watch;

use crate::model::{Endpoint, MeshConfig, Service};

pub use service_entry::ServiceEntryRegistry;

/// A source of services and endpoints.
pub trait ServiceRegistry: Send + Sync + fmt::Debug {
    /// A short name for logs (`serviceentry`, `kubernetes`).
    fn name(&self) -> String;

    /// The services and endpoints known now. `config` is the valid Istio
    /// config the snapshot is built from: registries declared in config
    /// (ServiceEntry, WorkloadEntry) read it, registries that watch something
    /// else ignore it.
    fn services(&self, config: &[Arc<Resource>], mesh: &MeshConfig) -> ServiceSet;

    /// Fires when the registry changed on its own, outside the config; `None`
    /// for a registry that only follows the config.
    fn subscribe(&self) -> Option<watch::Receiver<()>>;
}

/// Services and their endpoints, each list in a stable order (services by
/// hostname and namespace, endpoints by service and address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSet {
    pub services: Vec<Arc<Service>>,
    pub endpoints: Vec<Arc<Endpoint>>,
}

impl ServiceSet {
    /// Adds another registry's services after these ones, keeping the order.
    pub fn extend(&mut self, other: ServiceSet) {
        self.services.extend(other.services);
        self.endpoints.extend(other.endpoints);
        self.sort();
    }

    /// Puts both lists in their stable order (stable sorts: entries that tie
    /// keep the order their registry gave them).
    pub fn sort(&mut self) {
        self.services
            .sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        self.endpoints.sort_by(|a, b| {
            (&a.service, &a.service_namespace, a.address).cmp(&(
                &b.service,
                &b.service_namespace,
                b.address,
            ))
        });
    }
}
