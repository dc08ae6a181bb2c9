//! Listeners that bind their address for real, for workloads whose traffic
//! no iptables rule redirects (Sidecar `captureMode: NONE`, or the proxy's
//! `INTERCEPTION_MODE: NONE`): the application connects to them itself.
//!
//! - Egress: `<bind>_<port>` on the listener's `bind` (127.0.0.1 when
//!   unset), on its `port`, or without one on every port of the services
//!   its hosts import. HTTP ports are routed by the route configuration
//!   named after the port, as in capture mode; TCP ports go to the first
//!   imported service on the port (or its VirtualService's `tcp` rule).
//! - Ingress: `<bind>_<port>` on the listener's `bind` (the proxy's
//!   instance IP when unset) with the inbound chains of `virtualInbound`
//!   (mTLS and plain text), to `inbound|<port>||`, whose endpoint is the
//!   port's `defaultEndpoint`.
//!
//! Left out: egress listeners on `unix://` sockets (port 0); an egress
//! port's own `protocol` (the services' port protocols decide).

use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::Listener;

use super::context::{Context, PortKind, port_kind};
use super::listener::{http_outbound, inbound_chains, inspectors, tcp_outbound};
use super::proto::socket;
use super::route::http_ports;
use super::sidecar_scope::{egress_ports, is_unix};

/// Bound ingress listeners: the proxy's own.
pub fn ingress(ctx: &Context) -> Vec<Listener> {
    let authz = super::authorization::inbound(ctx);
    ctx.inbound_ports()
        .iter()
        .filter_map(|inbound| {
            let bind = inbound.bind.as_deref()?;
            Some(Listener {
                name: format!("{bind}_{}", inbound.port),
                address: Some(socket(bind, inbound.port)),
                traffic_direction: TrafficDirection::Inbound as i32,
                listener_filters: inspectors(),
                filter_chains: inbound_chains(ctx, inbound, &authz),
                ..Listener::default()
            })
        })
        .collect()
}

/// Bound egress listeners: alike for every sidecar of one scope.
pub fn egress(ctx: &Context) -> Vec<Listener> {
    let routed = http_ports(ctx);
    let mut listeners: Vec<Listener> = Vec::new();
    for (listener, bind) in ctx.sidecar.bound_egress() {
        if is_unix(bind) {
            continue;
        }
        for (number, service, port) in egress_ports(ctx, listener) {
            let name = format!("{bind}_{number}");
            if listeners.iter().any(|l| l.name == name) {
                continue;
            }
            let http = matches!(port_kind(port), Some(PortKind::Http { .. }));
            listeners.push(if http && routed.contains_key(&number) {
                http_outbound(ctx, name, bind, number, true)
            } else {
                tcp_outbound(ctx, service, port, name, bind, true)
            });
        }
    }
    listeners
}
