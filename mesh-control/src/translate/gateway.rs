//! What a gateway (router proxy) gets, as istiod builds it: listeners and
//! routes from the Gateways whose `selector` its labels carry (in any
//! namespace, Istio's default without `PILOT_SCOPE_GATEWAY_TO_NAMESPACE`)
//! and the VirtualServices bound to them (`gateways: [<ns>/<name>]`, or a
//! name in the VirtualService's namespace), clusters and endpoints as for
//! sidecars, and the secrets of file certificates.
//!
//! - Servers ([`servers`]) are grouped by address and port into one
//!   listener `0.0.0.0_<port>` ([`listeners`]); HTTP servers on a port
//!   share the route configuration `http.<port>`, each terminated HTTPS
//!   server has its own ([`routes`]), TLS servers are told apart by SNI.
//! - Host matching ([`hosts`]): a server host `ns/name` binds
//!   VirtualServices of `ns` (`*` any, `.` the gateway's); the virtual host
//!   is the narrower of a server host and a VirtualService host.
//! - HTTP routes are built by the sidecars' route builder, with the match
//!   `gateways` read against this gateway.
//! - TLS ([`credentials`]): SDS `kubernetes://<credentialName>` (and
//!   `-cacert`), `file-cert:<cert>~<key>` / `file-root:<ca>` for files.
//! - Telemetry: gateway connection managers carry the outbound metadata
//!   exchange and `istio.stats` with `disable_host_header_fallback`, as
//!   istiod configures gateways.
//! - Clusters: every visible service's, as istiod sends them (not only
//!   those the routes name), with DestinationRule policies, and
//!   `BlackHoleCluster`; no passthrough or inbound clusters.
//! - Ports: a server binds the target port of the gateway's own service
//!   port with the server's number (Kubernetes' `istio-ingressgateway`
//!   maps 80 to 8080, so Gateway port 80 becomes listener `0.0.0.0_8080`
//!   and route `http.8080`), or its own number. A gateway announcing
//!   `INTERCEPTION_MODE: NONE` shares its host with other proxies (the
//!   local mesh) and binds its own address instead of `0.0.0.0`.
//!
//! Differences from istiod: AUTO_PASSTHROUGH servers, `defaultEndpoint`,
//! unix-socket binds, HTTP/3, `tls.credentialNames` beyond the first and
//! `tlsCertificates` are not translated. VirtualServices apply in config
//! order (kind, namespace, name), where istiod orders them by creation
//! time. `httpsRedirect` is written as istiod writes it, `require_tls: ALL`
//! on the virtual hosts.

mod credentials;
mod hosts;
mod listeners;
mod routes;
mod servers;

#[cfg(test)]
mod tests;

use super::Resources;
use super::cluster::{self, PASSTHROUGH};
use super::context::Context;

pub fn build(ctx: &Context) -> Resources {
    let mut out = Resources::default();
    for (name, servers) in servers::by_listener(ctx) {
        let Some(built) = listeners::build(ctx, &name, &servers) else {
            continue;
        };
        out.listeners.push(built.listener);
        out.routes.extend(built.routes);
        out.secrets.extend(built.secrets);
    }
    let clusters = cluster::outbound(ctx);
    out.clusters = clusters
        .clusters
        .into_iter()
        .filter(|c| c.name != PASSTHROUGH)
        .collect();
    out.endpoints = clusters.endpoints;
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.routes.sort_by(|a, b| a.name.cmp(&b.name));
    out.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    out.secrets.dedup_by(|a, b| a.name == b.name);
    out
}
