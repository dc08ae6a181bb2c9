//! State-of-the-world ADS, without the network: what to subscribe to, and
//! what a response leads to (an ACK or a NACK, new subscriptions, and maybe
//! a config to serve).
//!
//! Every response is checked by compiling the whole config: the latest
//! accepted resources of every type, with this response's in place of its
//! type's. If that fails the response is NACKed (the previous version, the
//! response's nonce and the error as `error_detail`) and nothing changes. If
//! it compiles the response is ACKed and its resources become the accepted
//! ones; the config is served once nothing it names is missing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use prost::Message;

use crate::config::{Compiled, Config, References, Resources};
use crate::dns::Resolver;
use crate::identity::Provided;

/// The xDS types, in the order Envoy subscribes to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Cluster,
    Endpoint,
    Listener,
    Route,
    Secret,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Cluster,
        Kind::Endpoint,
        Kind::Listener,
        Kind::Route,
        Kind::Secret,
    ];

    pub fn type_url(self) -> &'static str {
        match self {
            Kind::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Kind::Endpoint => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            Kind::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Kind::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            Kind::Secret => "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
        }
    }

    fn from_type_url(url: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.type_url() == url)
    }

    /// Clusters and listeners are asked for all at once, and each response
    /// holds all of them; the others by name, and a response may hold some.
    fn wildcard(self) -> bool {
        matches!(self, Kind::Cluster | Kind::Listener)
    }
}

/// Where one type stands.
#[derive(Debug, Default, Clone)]
pub struct TypeState {
    /// The names asked for (not for wildcard types).
    pub names: BTreeSet<String>,
    /// The version of the last accepted response.
    pub version: String,
    /// The nonce of the last response, accepted or not.
    pub nonce: String,
    /// When the last accepted response came.
    pub last_updated: Option<SystemTime>,
}

/// The client's whole state: accepted resources and per-type bookkeeping.
#[derive(Debug)]
pub struct Protocol {
    bootstrap: Bootstrap,
    node: Node,
    accepted: Resources,
    /// `default` and `ROOTCA` from the certificate provider.
    provided: Provided,
    /// Looks up the host names of DNS clusters.
    resolver: Arc<Resolver>,
    types: BTreeMap<Kind, TypeState>,
}

/// What handling a response leads to.
#[derive(Debug)]
pub struct Outcome {
    /// The ACK or NACK, then any changed subscriptions.
    pub requests: Vec<DiscoveryRequest>,
    /// A whole config to serve.
    pub config: Option<Config>,
    /// Why the response was refused, for the logs.
    pub rejected: Option<String>,
    /// Names still awaited, for the logs.
    pub missing: BTreeSet<String>,
}

impl Protocol {
    pub fn new(bootstrap: Bootstrap, node: Node) -> Protocol {
        let types = Kind::ALL
            .into_iter()
            .map(|kind| (kind, TypeState::default()))
            .collect();
        Protocol {
            bootstrap,
            node,
            accepted: Resources::default(),
            provided: Provided::Off,
            resolver: Resolver::new(),
            types,
        }
    }

    /// Looks up DNS clusters' hosts with `resolver` (shared with the static
    /// config's compile) instead of its own.
    pub fn with_resolver(mut self, resolver: Arc<Resolver>) -> Protocol {
        self.resolver = resolver;
        self
    }

    /// Compiles with what the certificate provider offers now.
    pub fn with_provided(mut self, provided: Provided) -> Protocol {
        self.provided = provided;
        self
    }

    /// What the certificate provider offers changed (its first certificate,
    /// a new root): the accepted resources are compiled again, which may
    /// complete the config and name more secrets. Nothing is ACKed or NACKed;
    /// an error (in resources that waited for the certificate, and could
    /// not be checked before) is reported for the logs.
    pub fn provide(&mut self, provided: Provided) -> Outcome {
        self.provided = provided;
        self.recompile()
    }

    /// The resolver's answers changed: the accepted resources are compiled
    /// again with them, as with [`Protocol::provide`].
    pub fn resolved(&mut self) -> Outcome {
        self.recompile()
    }

    /// Tells when the host names of DNS clusters resolve differently.
    pub fn resolver(&self) -> &Arc<Resolver> {
        &self.resolver
    }

    fn recompile(&mut self) -> Outcome {
        let compiled = self.compile(&self.accepted);
        let references = compiled.references.clone();
        let complete = compiled.is_complete();
        let (config, whole) = match compiled.config {
            Err(_) if compiled.awaits_secret => (None, false),
            Err(err) => {
                return Outcome {
                    requests: Vec::new(),
                    config: None,
                    rejected: Some(err.to_string()),
                    missing: references.missing,
                };
            }
            Ok(config) => ((complete && self.fetched_first()).then_some(config), true),
        };
        self.resolver.follow(&references.hosts, whole);
        Outcome {
            requests: self.resubscribe(&references, whole),
            config,
            rejected: None,
            missing: references.missing,
        }
    }

    pub fn accepted(&self) -> &Resources {
        &self.accepted
    }

    pub fn type_state(&self, kind: Kind) -> &TypeState {
        &self.types[&kind]
    }

    /// The requests that open a stream: every subscription, with the last
    /// accepted versions (so that an unchanged server need not resend) and
    /// no nonce; the node goes in the first.
    pub fn initial_requests(&self) -> Vec<DiscoveryRequest> {
        let mut requests: Vec<_> = Kind::ALL
            .into_iter()
            .filter(|kind| kind.wildcard() || !self.types[kind].names.is_empty())
            .map(|kind| {
                let state = &self.types[&kind];
                DiscoveryRequest {
                    version_info: state.version.clone(),
                    resource_names: state.names.iter().cloned().collect(),
                    type_url: kind.type_url().to_owned(),
                    ..DiscoveryRequest::default()
                }
            })
            .collect();
        if let Some(first) = requests.first_mut() {
            first.node = Some(self.node.clone());
        }
        requests
    }

    pub fn handle(&mut self, response: DiscoveryResponse) -> Outcome {
        let Some(kind) = Kind::from_type_url(&response.type_url) else {
            let reason = format!("resource type {:?} is not supported", response.type_url);
            return self.refuse(None, &response, reason);
        };
        self.types
            .get_mut(&kind)
            .expect("every kind")
            .nonce
            .clone_from(&response.nonce);
        let mut candidate = self.accepted.clone();
        if let Err(reason) = merge(&mut candidate, kind, &response.resources) {
            return self.refuse(Some(kind), &response, reason);
        }
        let compiled = self.compile(&candidate);
        let references = compiled.references.clone();
        let complete = compiled.is_complete();
        // A compile stopped by a missing secret has not seen every name yet:
        // subscriptions then only grow.
        let awaits_secret = compiled.awaits_secret;
        let (config, whole) = match compiled.config {
            Err(_) if awaits_secret => (None, false),
            Err(err) => return self.refuse(Some(kind), &response, err.to_string()),
            Ok(config) => (complete.then_some(config), true),
        };
        self.accepted = candidate;
        self.resolver.follow(&references.hosts, whole);
        let state = self.types.get_mut(&kind).expect("every kind");
        state.version.clone_from(&response.version_info);
        state.last_updated = Some(SystemTime::now());
        let config = config.filter(|_| self.fetched_first());
        let mut requests = vec![self.request(kind)];
        requests.extend(self.resubscribe(&references, whole));
        Outcome {
            requests,
            config,
            rejected: None,
            missing: references.missing,
        }
    }

    /// Clusters and listeners have each come once: until then a config
    /// would be the static resources alone, and the proxy would say it is
    /// ready before the control plane configured it (Envoy's initial fetch).
    fn fetched_first(&self) -> bool {
        [Kind::Cluster, Kind::Listener]
            .iter()
            .all(|kind| self.types[kind].last_updated.is_some())
    }

    fn compile(&self, resources: &Resources) -> Compiled {
        let dns = self.resolver.table();
        Config::from_resources_with(&self.bootstrap, resources, &self.provided, &dns)
    }

    /// A NACK: the previous version, this response's nonce, and why.
    fn refuse(&self, kind: Option<Kind>, response: &DiscoveryResponse, reason: String) -> Outcome {
        let mut request = match kind {
            Some(kind) => self.request(kind),
            None => DiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce.clone(),
                ..DiscoveryRequest::default()
            },
        };
        request.error_detail = Some(Status {
            // google.rpc.Code.INVALID_ARGUMENT, as Envoy sends.
            code: 3,
            message: reason.clone(),
            details: Vec::new(),
        });
        Outcome {
            requests: vec![request],
            config: None,
            rejected: Some(reason),
            missing: BTreeSet::new(),
        }
    }

    /// The current subscription of one type, acknowledging its last response.
    fn request(&self, kind: Kind) -> DiscoveryRequest {
        let state = &self.types[&kind];
        DiscoveryRequest {
            version_info: state.version.clone(),
            resource_names: state.names.iter().cloned().collect(),
            type_url: kind.type_url().to_owned(),
            response_nonce: state.nonce.clone(),
            ..DiscoveryRequest::default()
        }
    }

    /// Requests for the named types whose wanted names changed. Resources no
    /// longer named are dropped, when `whole` says every name was seen. An
    /// empty set is not sent, since an empty request means "everything" to
    /// servers of the older protocol; its resources are dropped all the same.
    fn resubscribe(&mut self, references: &References, whole: bool) -> Vec<DiscoveryRequest> {
        let wanted = [
            (Kind::Endpoint, &references.endpoints),
            (Kind::Route, &references.routes),
            (Kind::Secret, &references.secrets),
        ];
        let mut requests = Vec::new();
        for (kind, names) in wanted {
            let state = self.types.get_mut(&kind).expect("every kind");
            let names: BTreeSet<String> = match whole {
                true => names.clone(),
                false => state.names.union(names).cloned().collect(),
            };
            if state.names == names {
                continue;
            }
            retain(&mut self.accepted, kind, &names);
            let empty = names.is_empty();
            state.names = names;
            if !empty {
                requests.push(self.request(kind));
            }
        }
        requests
    }
}

/// Puts a response's resources in place: all of a wildcard type's, or the
/// named ones of the others.
fn merge(resources: &mut Resources, kind: Kind, any: &[Any]) -> Result<(), String> {
    fn decoded<M: Message + Default>(
        any: &[Any],
        kind: Kind,
        name: impl Fn(&M) -> &str,
    ) -> Result<BTreeMap<String, M>, String> {
        let mut out = BTreeMap::new();
        for (i, any) in any.iter().enumerate() {
            if any.type_url != kind.type_url() {
                return Err(format!(
                    "resources[{i}]: {:?} in a response of {:?}",
                    any.type_url,
                    kind.type_url()
                ));
            }
            let message = M::decode(any.value.as_slice())
                .map_err(|err| format!("resources[{i}]: cannot decode: {err}"))?;
            let key = name(&message).to_owned();
            if key.is_empty() {
                return Err(format!("resources[{i}]: a resource needs a name"));
            }
            if out.insert(key.clone(), message).is_some() {
                return Err(format!("resources[{i}]: {key:?} appears twice"));
            }
        }
        Ok(out)
    }
    fn upsert<M>(into: &mut BTreeMap<String, M>, from: BTreeMap<String, M>) {
        into.extend(from);
    }
    match kind {
        Kind::Cluster => resources.clusters = decoded(any, kind, |c: &Cluster| &c.name)?,
        Kind::Listener => resources.listeners = decoded(any, kind, |l: &Listener| &l.name)?,
        Kind::Endpoint => upsert(
            &mut resources.endpoints,
            decoded(any, kind, |e: &ClusterLoadAssignment| &e.cluster_name)?,
        ),
        Kind::Route => upsert(
            &mut resources.routes,
            decoded(any, kind, |r: &RouteConfiguration| &r.name)?,
        ),
        Kind::Secret => upsert(
            &mut resources.secrets,
            decoded(any, kind, |s: &Secret| &s.name)?,
        ),
    }
    Ok(())
}

/// Drops the resources of a named type that are no longer wanted.
fn retain(resources: &mut Resources, kind: Kind, names: &BTreeSet<String>) {
    match kind {
        Kind::Endpoint => resources.endpoints.retain(|name, _| names.contains(name)),
        Kind::Route => resources.routes.retain(|name, _| names.contains(name)),
        Kind::Secret => resources.secrets.retain(|name, _| names.contains(name)),
        Kind::Cluster | Kind::Listener => {}
    }
}

#[cfg(test)]
mod tests;
