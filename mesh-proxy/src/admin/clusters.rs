//! `GET /clusters`: every cluster's endpoints with their health and request
//! counts, in Envoy's text format (`cluster::address::field::value`) or, with
//! `?format=json`, as Envoy's `envoy.admin.v3.Clusters`.
//!
//! Per endpoint: `rq_active`, `rq_error`, `rq_success`, `rq_total`,
//! `health_flags`, `weight`, `region`, `zone`, `sub_zone`, `priority`. Envoy's
//! `cx_active`, `cx_total`, `rq_timeout` and `success_rate` are not tracked
//! per endpoint here and are left out.

use std::fmt::Write;

use envoy_types::pb::envoy::admin::v3::{
    ClusterStatus, Clusters, HostHealthStatus, HostStatus as EnvoyHostStatus, SimpleMetric,
    simple_metric,
};
use envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers;
use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds;
use envoy_types::pb::envoy::config::core::v3::{
    Address, HealthStatus as EnvoyHealthStatus, Locality, SocketAddress, address, socket_address,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use crate::config::Limits;
use crate::lb::HostStatus;
use crate::upstream::Upstreams;

/// The text page.
pub fn text(upstreams: &Upstreams) -> String {
    let mut out = String::new();
    for (name, upstream) in upstreams {
        let limits = upstream.cluster.limits;
        let _ = writeln!(out, "{name}::observability_name::{name}");
        for (field, value) in thresholds(limits) {
            let _ = writeln!(out, "{name}::default_priority::{field}::{value}");
        }
        let _ = writeln!(out, "{name}::added_via_api::false");
        for host in upstream.balancer.host_statuses() {
            let address = host.endpoint.address;
            let locality = &host.endpoint.locality;
            for (field, value, _) in stats(&host) {
                let _ = writeln!(out, "{name}::{address}::{field}::{value}");
            }
            let _ = writeln!(
                out,
                "{name}::{address}::health_flags::{}",
                host.health_flags()
            );
            let _ = writeln!(out, "{name}::{address}::weight::{}", host.endpoint.weight);
            let _ = writeln!(out, "{name}::{address}::region::{}", locality.region);
            let _ = writeln!(out, "{name}::{address}::zone::{}", locality.zone);
            let _ = writeln!(out, "{name}::{address}::sub_zone::{}", locality.sub_zone);
            let _ = writeln!(
                out,
                "{name}::{address}::priority::{}",
                host.endpoint.priority
            );
        }
    }
    out
}

/// The JSON page.
pub fn json(upstreams: &Upstreams) -> Result<String, String> {
    let clusters = Clusters {
        cluster_statuses: upstreams
            .iter()
            .map(|(name, upstream)| ClusterStatus {
                name: name.clone(),
                observability_name: name.clone(),
                circuit_breakers: Some(circuit_breakers(upstream.cluster.limits)),
                host_statuses: upstream
                    .balancer
                    .host_statuses()
                    .iter()
                    .map(host_status)
                    .collect(),
                ..ClusterStatus::default()
            })
            .collect(),
    };
    let json = mesh_api::envoy::to_json(&clusters).map_err(|err| err.to_string())?;
    Ok(serde_json::to_string_pretty(&json).unwrap_or_default())
}

fn thresholds(limits: Limits) -> [(&'static str, u32); 4] {
    [
        ("max_connections", limits.max_connections),
        ("max_pending_requests", limits.max_pending_requests),
        ("max_requests", limits.max_requests),
        ("max_retries", limits.max_retries),
    ]
}

/// The endpoint's stats in Envoy's order; true for gauges.
fn stats(host: &HostStatus) -> [(&'static str, u64, bool); 4] {
    [
        ("rq_active", host.rq_active, true),
        ("rq_error", host.rq_error, false),
        ("rq_success", host.rq_success, false),
        ("rq_total", host.rq_total, false),
    ]
}

fn circuit_breakers(limits: Limits) -> CircuitBreakers {
    let value = |v: u32| Some(UInt32Value { value: v });
    CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: value(limits.max_connections),
            max_pending_requests: value(limits.max_pending_requests),
            max_requests: value(limits.max_requests),
            max_retries: value(limits.max_retries),
            ..Thresholds::default()
        }],
        ..CircuitBreakers::default()
    }
}

fn host_status(host: &HostStatus) -> EnvoyHostStatus {
    let endpoint = &host.endpoint;
    // Envoy reports an unset status as HEALTHY.
    let eds = match endpoint.health_status.to_proto() {
        EnvoyHealthStatus::Unknown => EnvoyHealthStatus::Healthy,
        status => status,
    };
    EnvoyHostStatus {
        address: Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: endpoint.address.ip().to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(
                    endpoint.address.port(),
                ))),
                ..SocketAddress::default()
            })),
        }),
        stats: stats(host)
            .iter()
            .map(|(name, value, gauge)| SimpleMetric {
                r#type: if *gauge {
                    simple_metric::Type::Gauge as i32
                } else {
                    simple_metric::Type::Counter as i32
                },
                value: *value,
                name: (*name).to_owned(),
            })
            .collect(),
        health_status: Some(HostHealthStatus {
            failed_active_health_check: host.failed_active_hc,
            failed_outlier_check: host.failed_outlier_check,
            pending_active_hc: host.pending_active_hc,
            eds_health_status: eds as i32,
            ..HostHealthStatus::default()
        }),
        weight: endpoint.weight,
        priority: endpoint.priority,
        locality: Some(Locality {
            region: endpoint.locality.region.clone(),
            zone: endpoint.locality.zone.clone(),
            sub_zone: endpoint.locality.sub_zone.clone(),
        }),
        ..EnvoyHostStatus::default()
    }
}
