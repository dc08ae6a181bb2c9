//! `translate(proxy, snapshot)`: the xDS resources one proxy needs, built as
//! istiod builds them and with istiod's names. A pure function: no I/O, the
//! same input always gives the same output.
//!
//! # What a sidecar gets
//! - Clusters ([`cluster`]): `outbound|<port>||<fqdn>` per port of every
//!   service exported to the proxy's namespace, and `outbound|<port>|<subset>|<fqdn>`
//!   per DestinationRule subset; EDS over ADS for STATIC services (the
//!   load assignments are in `endpoints`), STRICT_DNS / LOGICAL_DNS for DNS
//!   ServiceEntries, ORIGINAL_DST for resolution NONE and `PASSTHROUGH`
//!   balancing. DestinationRule traffic policies ([`policy`], [`tls`]):
//!   load balancing, connection pool, outlier detection, TLS (and auto
//!   mTLS), port-level settings, subset overrides. `inbound|<port>||` per
//!   port of the proxy's own services; `PassthroughCluster`,
//!   `BlackHoleCluster`, `InboundPassthroughCluster`.
//! - Endpoints ([`endpoint`]): per EDS cluster, by locality, with weights
//!   and the `tlsMode` metadata auto mTLS reads (not for ports whose
//!   PeerAuthentication is DISABLE).
//! - RequestAuthentication ([`request_authentication`]) becomes a
//!   `jwt_authn` filter on the inbound HTTP connection managers (and a
//!   gateway's), with keys inline or fetched into the snapshot.
//! - AuthorizationPolicy ([`authorization`]) becomes filters on the
//!   inbound chains: CUSTOM (shadow RBAC rules and the MeshConfig
//!   provider's `ext_authz`) first, then `jwt_authn`, then RBAC for AUDIT
//!   (`LOG`), DENY and ALLOW; request principals and claims match the
//!   verified token. CUSTOM policies that cannot reach their authorizer
//!   deny what they match, and are listed by [`authorization_problems`].
//! - PeerAuthentication ([`peer_authentication`]) sets each inbound port's
//!   chains: mTLS and plain text (PERMISSIVE), mTLS only (STRICT), or plain
//!   text only (DISABLE).
//! - Routes ([`route`], [`http_route`]): one outbound route configuration per
//!   HTTP port, a virtual host per service, VirtualService HTTP rules.
//! - Listeners ([`listener`], [`filters`]): `virtualOutbound`,
//!   `0.0.0.0_<port>` (HTTP, RDS), `<VIP>_<port>` (TCP), `virtualInbound`.
//!   The proxy's `IDLE_TIMEOUT` metadata becomes every connection
//!   manager's idle timeout, and that of `tcp_proxy` filters whose
//!   DestinationRule sets none (`connectionPool.tcp.idleTimeout`).
//! - The `Sidecar` that applies ([`sidecar_scope`]) narrows the services
//!   (clusters, routes, listeners) to its egress hosts, sets the policy for
//!   unknown hosts and the inbound ports. Listeners with capture mode NONE,
//!   or every listener of a proxy with `INTERCEPTION_MODE: NONE`, bind their
//!   address ([`sidecar_listener`]): `<bind>_<port>` for egress and ingress,
//!   and then no `virtualOutbound` / `virtualInbound`, no
//!   `PassthroughCluster` / `InboundPassthroughCluster`.
//!
//! # A proxyless gRPC client
//! ([`grpc`], `GENERATOR=grpc`): `api_listener` listeners per service port
//! under the names clients dial, a route configuration per service port,
//! EDS clusters and endpoints.
//!
//! # What a gateway gets
//! Listeners from the Gateway servers that select it, routes from the
//! VirtualServices bound to them, clusters and endpoints as a sidecar's:
//! see [`gateway`].
//!
//! # Tracing
//! With a tracing provider in the MeshConfig, every connection manager of
//! sidecars and gateways gets `tracing` ([`trace`]); without, none.
//!
//! # Left out, and where this differs from istiod
//! - Waypoints get no resources.
//! - Tracing comes from the MeshConfig's default provider only: the
//!   Telemetry API is not read.
//! - VirtualService `delegate` rules are skipped; RequestAuthentication
//!   and AuthorizationPolicy with `targetRef(s)` are left out, and
//!   gateways get `jwt_authn` but no RBAC or external authorization. `retries.retryRemoteLocalities`,
//!   `warmup`, `tunnel`, `proxyProtocol`,
//!   `retryBudget` and `outlierDetection.consecutiveLocalOriginFailures`
//!   are not translated.
//! - Sidecar: `inboundConnectionPool`, ingress `tls` and `connectionPool`,
//!   `outboundTrafficPolicy.egressProxy` and egress listeners on `unix://`
//!   sockets are not translated; in capture mode, egress listeners' ports
//!   and binds are not used (only their hosts), and one route
//!   configuration per port serves every egress listener on that port. A
//!   proxy with `INTERCEPTION_MODE: NONE` refuses unknown hosts
//!   (`block_all`) whatever `outboundTrafficPolicy` says, since it has no
//!   original destination to pass them to; without ingress listeners it
//!   gets no inbound listener.
//! - `DYNAMIC_DNS` ServiceEntries get no cluster.
//! - Secrets: `default` and `ROOTCA` are referenced over SDS on ADS but not
//!   produced here; certificates are issued elsewhere.
//! - Clusters' `istio.services` metadata names a ServiceEntry host of the
//!   form `<name>.<ns>.svc.<domain>` by `<name>` (istiod uses the whole host).
//! - Inbound clusters are STATIC to `127.0.0.1:<port>` (see [`cluster`]);
//!   mesh ALPN is written into clusters instead of an `istio.alpn` filter
//!   (see [`tls`]); ports of unknown protocol are TCP (see [`listener`]).

mod authorization;
mod cluster;
mod context;
mod endpoint;
mod filters;
mod gateway;
mod grpc;
mod http_route;
mod listener;
mod locality;
mod peer_authentication;
mod policy;
mod proto;
mod provider;
mod request_authentication;
mod route;
mod sidecar_listener;
mod sidecar_scope;
mod tcp_route;
mod tls;
mod trace;

#[cfg(test)]
pub(crate) mod tests;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use mesh_api::names::ProxyKind;

use crate::model::{MeshSnapshot, Proxy};

pub use authorization::{PolicyProblem, problems as authorization_problems};
pub use filters::{PluginConfig, TypedStruct};
pub use http_route::{DEFAULT_RETRIES, DEFAULT_RETRY_ON};

/// Every resource of one proxy, by xDS type, each list sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub secrets: Vec<Secret>,
}

impl Resources {
    /// Adds `other`'s resources, keeping each list sorted by name.
    pub fn merge(&mut self, other: Resources) {
        self.listeners.extend(other.listeners);
        self.routes.extend(other.routes);
        self.clusters.extend(other.clusters);
        self.endpoints.extend(other.endpoints);
        self.secrets.extend(other.secrets);
        self.sort();
    }

    /// Sorts each list by name.
    pub fn sort(&mut self) {
        self.listeners.sort_by(|a, b| a.name.cmp(&b.name));
        self.routes.sort_by(|a, b| a.name.cmp(&b.name));
        self.clusters.sort_by(|a, b| a.name.cmp(&b.name));
        self.endpoints
            .sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
        self.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// What decides a sidecar's outbound resources. Sidecars with equal keys
/// get equal outbound resources from one snapshot, so a control plane
/// builds them once per key instead of once per proxy: with a thousand
/// services that is most of the work, and of the memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScopeKey {
    namespace: String,
    /// The Sidecar resource that applies, by namespace and name.
    sidecar: Option<(String, String)>,
    interception_none: bool,
    /// The proxy's labels, only when some config in force reads them for
    /// outbound traffic (a DestinationRule `workloadSelector`, a
    /// VirtualService `sourceLabels` match).
    labels: Option<std::collections::BTreeMap<String, String>>,
    /// What the spans of the proxy's outbound listeners say of it, when
    /// the mesh traces.
    tracing: Option<Vec<String>>,
    /// The proxy's locality: locality load balancing ranks and weighs
    /// endpoints from it.
    locality: String,
}

/// The key of the proxy's shared resources ([`shared`]); `None` for proxies
/// that share nothing (gateways, proxyless gRPC clients, waypoints).
pub fn scope_key(proxy: &Proxy, snapshot: &MeshSnapshot) -> Option<ScopeKey> {
    if !shares(proxy) {
        return None;
    }
    let scope = sidecar_scope::SidecarScope::new(proxy, snapshot);
    Some(ScopeKey {
        namespace: proxy.namespace.clone(),
        sidecar: scope
            .name()
            .map(|(ns, name)| (ns.to_owned(), name.to_owned())),
        interception_none: sidecar_scope::interception_none(proxy),
        labels: context::outbound_reads_labels(&proxy.namespace, snapshot)
            .then(|| proxy.labels.clone()),
        tracing: trace::scope(proxy, snapshot),
        locality: proxy.locality.clone(),
    })
}

/// Sidecars share their outbound resources; gateways, proxyless gRPC
/// clients and waypoints share nothing.
fn shares(proxy: &Proxy) -> bool {
    !proxy.grpc_generator && proxy.kind == ProxyKind::Sidecar
}

/// The resources `proxy` shares with every proxy of its [`scope_key`]: a
/// sidecar's outbound clusters, endpoints, routes and listeners. Empty for
/// proxies without a key.
pub fn shared(proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
    if !shares(proxy) {
        return Resources::default();
    }
    let ctx = context::Context::new(proxy, snapshot);
    let clusters = cluster::outbound(&ctx);
    let mut routes = route::outbound(&ctx);
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    let mut listeners = listener::outbound(&ctx);
    trace::apply(&mut listeners, proxy, snapshot);
    Resources {
        listeners,
        routes,
        clusters: clusters.clusters,
        endpoints: clusters.endpoints,
        secrets: Vec::new(),
    }
}

/// The resources of `proxy` alone: a sidecar's inbound clusters and
/// listeners; everything for proxies without a [`scope_key`].
pub fn own(proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
    let ctx = context::Context::new(proxy, snapshot);
    if proxy.grpc_generator {
        return grpc::build(&ctx);
    }
    let mut resources = match proxy.kind {
        ProxyKind::Router => gateway::build(&ctx),
        ProxyKind::Sidecar => Resources {
            listeners: listener::inbound(&ctx),
            clusters: cluster::inbound(&ctx),
            ..Resources::default()
        },
        ProxyKind::Waypoint => Resources::default(),
    };
    trace::apply(&mut resources.listeners, proxy, snapshot);
    resources
}

/// The resources `proxy` needs from `snapshot`: [`shared`] and [`own`].
pub fn translate(proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
    let mut resources = shared(proxy, snapshot);
    resources.merge(own(proxy, snapshot));
    resources
}
