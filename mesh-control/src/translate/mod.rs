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
//!   and the `tlsMode` metadata auto mTLS reads.
//! - Routes ([`route`], [`http_route`]): one outbound route configuration per
//!   HTTP port, a virtual host per service, VirtualService HTTP rules.
//! - Listeners ([`listener`], [`filters`]): `virtualOutbound`,
//!   `0.0.0.0_<port>` (HTTP, RDS), `<VIP>_<port>` (TCP), `virtualInbound`.
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
//! # Left out, and where this differs from istiod
//! - Waypoints get no resources.
//! - VirtualService `delegate` rules are skipped; PeerAuthentication
//!   (inbound is always PERMISSIVE) and AuthorizationPolicy are not read. `retries.retryRemoteLocalities`,
//!   `localityLbSetting`, `warmup`, `tunnel`, `proxyProtocol`,
//!   `retryBudget`, `connectionPool.tcp.idleTimeout` and
//!   `outlierDetection.consecutiveLocalOriginFailures` are not translated.
//! - Sidecar: `inboundConnectionPool`, ingress `tls` and `connectionPool`,
//!   `outboundTrafficPolicy.egressProxy` and egress listeners on `unix://`
//!   sockets are not translated; in capture mode, egress listeners' ports
//!   and binds are not used (only their hosts), and one route
//!   configuration per port serves every egress listener on that port. A
//!   proxy with `INTERCEPTION_MODE: NONE` refuses unknown hosts
//!   (`block_all`) whatever `outboundTrafficPolicy` says, since it has no
//!   original destination to pass them to; without ingress listeners it
//!   gets no inbound listener.
//! - Weighted TCP routes send everything to the first destination.
//! - `DYNAMIC_DNS` ServiceEntries get no cluster.
//! - Secrets: `default` and `ROOTCA` are referenced over SDS on ADS but not
//!   produced here; certificates are issued elsewhere.
//! - Clusters' `istio.services` metadata names a ServiceEntry host of the
//!   form `<name>.<ns>.svc.<domain>` by `<name>` (istiod uses the whole host).
//! - Inbound clusters are STATIC to `127.0.0.1:<port>` (see [`cluster`]);
//!   mesh ALPN is written into clusters instead of an `istio.alpn` filter
//!   (see [`tls`]); ports of unknown protocol are TCP (see [`listener`]).

mod cluster;
mod context;
mod endpoint;
mod filters;
mod gateway;
mod grpc;
mod http_route;
mod listener;
mod policy;
mod proto;
mod route;
mod sidecar_listener;
mod sidecar_scope;
mod tls;

#[cfg(test)]
mod tests;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use mesh_api::names::ProxyKind;

use crate::model::{MeshSnapshot, Proxy};

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

/// The resources `proxy` needs from `snapshot`.
pub fn translate(proxy: &Proxy, snapshot: &MeshSnapshot) -> Resources {
    let ctx = context::Context::new(proxy, snapshot);
    if proxy.grpc_generator {
        return grpc::build(&ctx);
    }
    match proxy.kind {
        ProxyKind::Router => return gateway::build(&ctx),
        ProxyKind::Sidecar => {}
        ProxyKind::Waypoint => return Resources::default(),
    }
    let clusters = cluster::build(&ctx);
    let mut routes = route::outbound(&ctx);
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    Resources {
        listeners: listener::build(&ctx),
        routes,
        clusters: clusters.clusters,
        endpoints: clusters.endpoints,
        secrets: Vec::new(),
    }
}
