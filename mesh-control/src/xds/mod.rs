//! The ADS server (`envoy.service.discovery.v3.AggregatedDiscoveryService`,
//! state of the world) that hands each proxy its xDS resources and keeps them
//! current.
//!
//! - Per stream, the node of the first request becomes a [`Proxy`]; a node id
//!   that does not read is refused with `InvalidArgument` naming the id.
//! - Types: CDS, EDS, LDS, RDS and SDS. CDS and LDS are wildcard unless the
//!   client names resources (gRPC's xDS client does; a later empty list
//!   then unsubscribes from all); EDS, RDS and SDS send only what the
//!   client subscribed to. Other type URLs are ignored.
//! - A request with a new subscription is answered at once; an ACK records the
//!   version; a NACK (`error_detail`) is logged with the proxy id and reason and
//!   kept for `/debug/syncz`; a request whose nonce is not the last one sent is
//!   stale and ignored, as the xDS protocol says.
//! - Versions are per proxy and per type: a hash of the resources sent, so a
//!   version changes exactly when that type's resources for that proxy change.
//!   Nonces are unique per response.
//! - Snapshots are debounced ([`Debounce`]); each push regenerates the proxy's
//!   resources and sends, in Envoy's order (CDS, EDS, LDS, RDS, SDS), only the
//!   types whose content changed.
//! - The part of the resources a proxy shares with its scope (a sidecar's
//!   outbound config, alike for a namespace) is built and encoded once per
//!   snapshot ([`scopes`]); responses carry those bytes without copying
//!   them ([`response`]), so a thousand proxies cost little more memory
//!   than one. Generation runs on blocking threads, as many at a time as
//!   there are cores.
//!
//! Delta xDS is not served: `DeltaAggregatedResources` answers `Unimplemented`,
//! and clients fall back to state of the world.

mod ads;
mod connection;
mod debounce;
mod resources;
mod response;
mod scopes;
mod status;

use std::fmt;

use crate::model::{MeshSnapshot, Proxy};
use crate::translate::{self, Resources, ScopeKey};

pub use ads::{Ads, PeerIdentity};
pub use connection::Connections;
pub use debounce::{Debounce, Push, debounce};
pub use status::{ResourceStatus, SyncStatus, config_dump, syncz};

/// The path prefix of the ADS service's methods.
pub const ADS_SERVICE_PREFIX: &str = "/envoy.service.discovery.v3.AggregatedDiscoveryService/";

/// Resolves once `shutdown` turns true, or its sender is gone.
pub(crate) async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Builds the resources of one proxy from a snapshot, in two parts: what
/// it shares with the other proxies of its scope, and its own. The control
/// plane uses [`Translate`]; tests use a closure, whose proxies share
/// nothing.
pub trait Generator: Send + Sync + 'static {
    /// The scope of the proxy's shared part; `None` when nothing is shared.
    fn scope_key(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Option<ScopeKey>;
    /// The part shared by every proxy of the proxy's scope.
    fn shared(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources;
    /// The proxy's own part.
    fn own(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources;
}

/// [`translate`](crate::translate) as a [`Generator`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Translate;

impl Generator for Translate {
    fn scope_key(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Option<ScopeKey> {
        translate::scope_key(proxy, snapshot)
    }

    fn shared(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
        translate::shared(proxy, snapshot)
    }

    fn own(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
        translate::own(proxy, snapshot)
    }
}

impl<F> Generator for F
where
    F: Fn(&Proxy, &MeshSnapshot) -> Resources + Send + Sync + 'static,
{
    fn scope_key(&self, _: &Proxy, _: &MeshSnapshot) -> Option<ScopeKey> {
        None
    }

    fn shared(&self, _: &Proxy, _: &MeshSnapshot) -> Resources {
        Resources::default()
    }

    fn own(&self, proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
        self(proxy, snapshot)
    }
}

/// The xDS resource types served, in the order Envoy wants a change pushed:
/// clusters before their endpoints, listeners before their routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
    Secret,
}

impl XdsType {
    pub const ALL: [XdsType; 5] = [
        XdsType::Cluster,
        XdsType::Endpoint,
        XdsType::Listener,
        XdsType::Route,
        XdsType::Secret,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            XdsType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            XdsType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            XdsType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            XdsType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            XdsType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    pub fn from_type_url(url: &str) -> Option<XdsType> {
        XdsType::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Istio's short name, used as the `type` label of metrics.
    pub fn short(self) -> &'static str {
        match self {
            XdsType::Cluster => "cds",
            XdsType::Endpoint => "eds",
            XdsType::Listener => "lds",
            XdsType::Route => "rds",
            XdsType::Secret => "sds",
        }
    }

    /// Whether an empty list of names subscribes to everything (CDS, LDS).
    pub fn wildcard(self) -> bool {
        matches!(self, XdsType::Cluster | XdsType::Listener)
    }
}

impl fmt::Display for XdsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}
