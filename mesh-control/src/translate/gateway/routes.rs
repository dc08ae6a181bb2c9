//! Route configurations of a gateway: `http.<port>` for the plain-text
//! HTTP servers of a port, `https.<port>.<portName>.<gateway>.<namespace>`
//! for each terminated HTTPS server. A virtual host per host that a server
//! and a bound VirtualService share (`<host>:<port>`), holding the
//! VirtualServices' routes built as for sidecars; `blackhole:<port>` (404
//! for everything) when there is none.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost, virtual_host};

use super::super::context::Context;
use super::super::http_route::{Bound, bound_routes};
use super::super::proto::boolv;
use super::hosts;
use super::servers::{GatewayServer, bound_virtual_services};

pub fn http_name(port: u16) -> String {
    format!("http.{port}")
}

pub fn https_name(server: &GatewayServer) -> String {
    format!(
        "https.{}.{}.{}.{}",
        server.server.port.number,
        server.server.port.name,
        server.gateway.name,
        server.gateway.namespace
    )
}

/// The route configuration `name` for `servers`, all on `port`.
pub fn build(
    ctx: &Context,
    name: String,
    port: u16,
    servers: &[&GatewayServer],
) -> RouteConfiguration {
    let mut by_host: BTreeMap<String, VirtualHost> = BTreeMap::new();
    for server in servers {
        add_server(ctx, server, port, &mut by_host);
    }
    let mut virtual_hosts: Vec<VirtualHost> = by_host.into_values().collect();
    if virtual_hosts.is_empty() {
        virtual_hosts.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".into()],
            ..VirtualHost::default()
        });
    }
    virtual_hosts.sort_by(|a, b| a.name.cmp(&b.name));
    RouteConfiguration {
        name,
        virtual_hosts,
        validate_clusters: boolv(false),
        ignore_port_in_host_matching: true,
        ..RouteConfiguration::default()
    }
}

/// Adds the virtual hosts of one server; routes of VirtualServices that
/// share a host with another server of the port join that host's.
fn add_server(
    ctx: &Context,
    server: &GatewayServer,
    port: u16,
    by_host: &mut BTreeMap<String, VirtualHost>,
) {
    let require_tls = if server.https_redirect() {
        virtual_host::TlsRequirementType::All
    } else {
        virtual_host::TlsRequirementType::None
    } as i32;
    let virtual_services = bound_virtual_services(ctx, &server.gateway_name);
    if virtual_services.is_empty() && server.https_redirect() {
        // Nothing is routed, but plain-text requests still get redirected.
        for host in &server.hosts {
            let host = hosts::name(host);
            by_host
                .entry(host.to_owned())
                .or_insert_with(|| virtual_host(host, port))
                .require_tls = require_tls;
        }
        return;
    }
    for vs in virtual_services {
        let server_hosts = hosts::for_namespace(&server.hosts, vs.namespace);
        let shared = hosts::intersection(&server_hosts, &vs.spec.hosts, vs.namespace, ctx.domain());
        if shared.is_empty() {
            continue;
        }
        let routes = bound_routes(ctx, vs, port, Bound::Gateway(&server.gateway_name));
        for host in shared {
            let vhost = by_host
                .entry(host.clone())
                .or_insert_with(|| virtual_host(&host, port));
            vhost.routes.extend(routes.iter().cloned());
            if server.https_redirect() {
                vhost.require_tls = require_tls;
            }
        }
    }
}

/// `<host>:<port>`, answering to the host with any port (`*` alone
/// answers to everything).
fn virtual_host(host: &str, port: u16) -> VirtualHost {
    let mut domains = vec![host.to_owned()];
    if host != "*" {
        domains.push(format!("{host}:*"));
    }
    VirtualHost {
        name: format!("{host}:{port}"),
        domains,
        include_request_attempt_count: true,
        ..VirtualHost::default()
    }
}
