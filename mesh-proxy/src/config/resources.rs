//! Config from xDS resources: the bootstrap's static resources plus the
//! listeners, route configurations, clusters, endpoints and secrets the
//! control plane sent, compiled as a whole.
//!
//! Resources refer to each other by name (a listener to its RDS route
//! configuration, a cluster to its EDS assignment, TLS contexts to SDS
//! secrets). A compile records every name it looked up, so that the client
//! can subscribe to them, and those not received yet: a config with missing
//! names is valid but not complete, and is not served until they arrive.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{DefaultHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener as EnvoyListener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;

use super::tls::Secrets;
use super::{At, Config, ConfigError, cluster, listener};
use crate::dns::DnsTable;
use crate::identity::Provided;

/// The latest accepted resources of each xDS type, by name.
#[derive(Debug, Default, Clone)]
pub struct Resources {
    pub listeners: BTreeMap<String, EnvoyListener>,
    pub routes: BTreeMap<String, RouteConfiguration>,
    pub clusters: BTreeMap<String, EnvoyCluster>,
    pub endpoints: BTreeMap<String, ClusterLoadAssignment>,
    pub secrets: BTreeMap<String, Secret>,
}

/// The names a compile looked up, and those it did not find.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// RDS route configuration names.
    pub routes: BTreeSet<String>,
    /// EDS service names.
    pub endpoints: BTreeSet<String>,
    /// SDS secret names.
    pub secrets: BTreeSet<String>,
    /// The host names of DNS clusters, with how often to look them up.
    pub hosts: BTreeMap<String, Duration>,
    /// The looked-up resources not received yet, as `kind "name"`.
    pub missing: BTreeSet<String>,
}

/// The outcome of compiling resources: the config or the reason it was
/// refused, and the names it refers to either way.
#[derive(Debug)]
pub struct Compiled {
    pub config: Result<Config, ConfigError>,
    pub references: References,
    /// The compile stopped at a secret not received yet (over SDS or from
    /// the CA), which is no fault of the resources: the rest is checked
    /// once it comes.
    pub awaits_secret: bool,
}

impl Compiled {
    /// Valid, and nothing it refers to is missing.
    pub fn is_complete(&self) -> bool {
        self.config.is_ok() && self.references.missing.is_empty()
    }
}

/// What each listener and cluster was compiled from, so that a new config
/// tells which of them changed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Fingerprints {
    pub listeners: BTreeMap<String, Arc<Fingerprint>>,
    pub clusters: BTreeMap<String, Arc<Fingerprint>>,
}

/// A listener's or cluster's definition with what it was compiled with.
/// Compared as messages rather than as encoded bytes: protobuf maps (such as
/// the `Struct`s in metadata) encode in no fixed order, so equal definitions
/// may arrive as different bytes, and must not count as changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Fingerprint {
    Listener {
        definition: Box<EnvoyListener>,
        /// The secrets' hash, when a chain speaks TLS.
        secrets: Option<u64>,
    },
    Cluster {
        definition: Box<EnvoyCluster>,
        assignment: Option<ClusterLoadAssignment>,
        /// The secrets' hash, when the cluster speaks TLS.
        secrets: Option<u64>,
    },
}

/// What the compile of one listener or cluster may look up by name.
#[derive(Debug)]
pub(super) struct Sources<'a> {
    pub(super) secrets: Secrets,
    /// `None` for a static bootstrap, which cannot use RDS or EDS.
    routes: Option<&'a BTreeMap<String, RouteConfiguration>>,
    endpoints: Option<&'a BTreeMap<String, ClusterLoadAssignment>>,
    dns: &'a DnsTable,
    references: RefCell<References>,
}

impl<'a> Sources<'a> {
    /// A static bootstrap's: its own secrets and nothing else.
    pub(super) fn bootstrap(secrets: Secrets, dns: &'a DnsTable) -> Sources<'a> {
        Sources {
            secrets,
            routes: None,
            endpoints: None,
            dns,
            references: RefCell::default(),
        }
    }

    /// Whether resources come from a control plane.
    pub(super) fn dynamic(&self) -> bool {
        self.routes.is_some()
    }

    /// The RDS route configuration `name`; `Ok(None)` when it has not arrived.
    pub(super) fn route_config(
        &self,
        name: &str,
        at: &At,
    ) -> Result<Option<&'a RouteConfiguration>, ConfigError> {
        let Some(routes) = self.routes else {
            return Err(at.unsupported("RDS in a static bootstrap (use route_config)"));
        };
        let mut references = self.references.borrow_mut();
        references.routes.insert(name.to_owned());
        let found = routes.get(name);
        if found.is_none() {
            references
                .missing
                .insert(format!("route_configuration {name:?}"));
        }
        Ok(found)
    }

    /// The EDS assignment `name`; `Ok(None)` when it has not arrived.
    pub(super) fn assignment(
        &self,
        name: &str,
        at: &At,
    ) -> Result<Option<&'a ClusterLoadAssignment>, ConfigError> {
        let Some(endpoints) = self.endpoints else {
            return Err(at.unsupported("EDS in a static bootstrap (use STATIC)"));
        };
        let mut references = self.references.borrow_mut();
        references.endpoints.insert(name.to_owned());
        let found = endpoints.get(name);
        if found.is_none() {
            references
                .missing
                .insert(format!("cluster_load_assignment {name:?}"));
        }
        Ok(found)
    }

    /// The EDS assignment `name` as received, without taking note of it.
    pub(super) fn received(&self, name: &str) -> Option<&'a ClusterLoadAssignment> {
        self.endpoints?.get(name)
    }

    /// The addresses of `host`, to be looked up every `refresh` (or more
    /// often, when another cluster asks); `None` before the first lookup.
    pub(super) fn resolved(&self, host: &str, refresh: Duration) -> Option<&'a [IpAddr]> {
        let mut references = self.references.borrow_mut();
        references
            .hosts
            .entry(host.to_owned())
            .and_modify(|rate| *rate = (*rate).min(refresh))
            .or_insert(refresh);
        let found = self.dns.get(host);
        if found.is_none() {
            references.missing.insert(format!("dns name {host:?}"));
        }
        found
    }

    fn into_references(self) -> References {
        let mut references = self.references.into_inner();
        references.secrets = self.secrets.requested();
        references.missing.extend(
            self.secrets
                .missing()
                .map(|name| format!("secret {name:?}")),
        );
        references
    }
}

impl Config {
    /// Compiles the bootstrap's static resources together with dynamic ones.
    /// A dynamic resource may not take the name of a static one.
    pub fn from_resources(bootstrap: &Bootstrap, resources: &Resources) -> Compiled {
        Config::from_resources_with(bootstrap, resources, &Provided::Off, &DnsTable::default())
    }

    /// Like [`Config::from_resources`], with `default` and `ROOTCA` from the
    /// certificate provider for the names neither source defines, and the
    /// addresses in `dns` for DNS clusters.
    pub fn from_resources_with(
        bootstrap: &Bootstrap,
        resources: &Resources,
        provided: &Provided,
        dns: &DnsTable,
    ) -> Compiled {
        let statics = bootstrap.static_resources.clone().unwrap_or_default();
        let secrets = match Secrets::with_dynamic(&statics.secrets, resources.secrets.values()) {
            Ok(secrets) => secrets.with_provided(provided.clone()),
            Err(err) => return Compiled::failed(err),
        };
        let sources = Sources {
            secrets,
            routes: Some(&resources.routes),
            endpoints: Some(&resources.endpoints),
            dns,
            references: RefCell::default(),
        };
        let clusters: Vec<_> = statics
            .clusters
            .iter()
            .chain(resources.clusters.values())
            .collect();
        let listeners: Vec<_> = statics
            .listeners
            .iter()
            .chain(resources.listeners.values())
            .collect();
        let config = compile(bootstrap, &clusters, &listeners, &sources);
        Compiled::of(config, sources)
    }
}

impl Compiled {
    pub(super) fn failed(err: ConfigError) -> Compiled {
        Compiled {
            config: Err(err),
            references: References::default(),
            awaits_secret: false,
        }
    }

    pub(super) fn of(config: Result<Config, ConfigError>, sources: Sources<'_>) -> Compiled {
        let awaits_secret = config
            .as_ref()
            .is_err_and(|err| sources.secrets.is_awaited(err));
        Compiled {
            config,
            references: sources.into_references(),
            awaits_secret,
        }
    }
}

/// Compiles clusters and listeners; unknown clusters named by listeners are
/// refused in a static bootstrap only, since over xDS routes may name
/// clusters that come later (requests to them get a 503, as in Envoy).
pub(super) fn compile(
    bootstrap: &Bootstrap,
    clusters: &[&EnvoyCluster],
    listeners: &[&EnvoyListener],
    sources: &Sources<'_>,
) -> Result<Config, ConfigError> {
    let mut compiled_clusters = BTreeMap::new();
    let mut fingerprints = Fingerprints::default();
    for &cluster in clusters {
        let compiled = cluster::compile(cluster, sources)?;
        let at = At::resource("cluster", &cluster.name);
        if compiled_clusters
            .insert(compiled.name.clone(), Arc::new(compiled))
            .is_some()
        {
            return Err(at.field("name").error("another cluster has the same name"));
        }
        fingerprints
            .clusters
            .insert(cluster.name.clone(), cluster_fingerprint(cluster, sources));
    }
    let mut compiled_listeners = Vec::with_capacity(listeners.len());
    for &listener in listeners {
        let compiled = listener::compile(listener, sources)?;
        if !sources.dynamic() {
            listener::check_clusters(&compiled, &compiled_clusters)?;
        }
        if fingerprints
            .listeners
            .insert(
                listener.name.clone(),
                listener_fingerprint(listener, sources),
            )
            .is_some()
        {
            return Err(At::resource("listener", &listener.name)
                .field("name")
                .error("another listener has the same name"));
        }
        compiled_listeners.push(compiled);
    }
    Ok(Config {
        listeners: compiled_listeners,
        clusters: compiled_clusters,
        admin: admin_address(bootstrap)?,
        node: Arc::new(node_info(bootstrap)),
        fingerprints,
    })
}

/// The admin server's address, `admin.address`.
pub fn admin_address(bootstrap: &Bootstrap) -> Result<Option<SocketAddr>, ConfigError> {
    match bootstrap.admin.as_ref().and_then(|a| a.address.as_ref()) {
        Some(address) => Ok(Some(listener::socket_address(
            address,
            &At::resource("admin", "admin").field("address"),
        )?)),
        None => Ok(None),
    }
}

/// The local workload, as the bootstrap's `node` describes it.
pub fn node_info(bootstrap: &Bootstrap) -> super::NodeInfo {
    super::istio::node(bootstrap.node.as_ref())
}

/// A cluster changes with its definition, its EDS assignment or its host
/// names' addresses, and, when it speaks TLS, the secrets.
fn cluster_fingerprint(cluster: &EnvoyCluster, sources: &Sources<'_>) -> Arc<Fingerprint> {
    let tls = cluster.transport_socket.is_some() || !cluster.transport_socket_matches.is_empty();
    Arc::new(Fingerprint::Cluster {
        definition: Box::new(cluster.clone()),
        assignment: cluster::received_assignment(cluster, sources),
        secrets: tls.then(|| secrets_hash(sources)),
    })
}

/// A listener changes with its definition and, when a chain speaks TLS, the
/// secrets; its RDS routes are swapped in without replacing it.
fn listener_fingerprint(listener: &EnvoyListener, sources: &Sources<'_>) -> Arc<Fingerprint> {
    let tls = listener
        .filter_chains
        .iter()
        .chain(&listener.default_filter_chain)
        .any(|chain| chain.transport_socket.is_some());
    Arc::new(Fingerprint::Listener {
        definition: Box::new(listener.clone()),
        secrets: tls.then(|| secrets_hash(sources)),
    })
}

fn secrets_hash(sources: &Sources<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    sources.secrets.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
