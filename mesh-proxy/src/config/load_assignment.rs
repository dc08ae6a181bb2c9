//! A cluster's `load_assignment`: endpoints grouped by locality, each group
//! with its `priority` and `load_balancing_weight`, and the `policy`'s
//! `overprovisioning_factor`.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::config::endpoint::v3::locality_lb_endpoints::LbConfig;
use envoy_types::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};

use super::listener::socket_address;
use super::{At, ConfigError, Endpoint, health};

/// Envoy's default overprovisioning factor, in percent (1.4).
pub const DEFAULT_OVERPROVISIONING_FACTOR: u32 = 140;

/// The endpoints and how priority levels count their health.
#[derive(Debug, Default)]
pub(super) struct LoadAssignment {
    pub endpoints: Vec<Endpoint>,
    /// In percent: a priority level (or a locality) whose usable share
    /// times this is 100% or more counts as fully available.
    pub overprovisioning_factor: u32,
}

/// `at` is the assignment: a cluster's `load_assignment`, or an EDS resource.
pub(super) fn compile(
    assignment: Option<&ClusterLoadAssignment>,
    at: &At,
) -> Result<LoadAssignment, ConfigError> {
    let Some(assignment) = assignment else {
        return Ok(LoadAssignment {
            endpoints: Vec::new(),
            overprovisioning_factor: DEFAULT_OVERPROVISIONING_FACTOR,
        });
    };
    let overprovisioning_factor = policy(assignment, at)?;
    let mut endpoints = Vec::new();
    // A locality appears once per priority, so that its weight is unambiguous.
    let mut seen = BTreeSet::new();
    for (i, group) in assignment.endpoints.iter().enumerate() {
        let at = at.field("endpoints").index(i);
        let locality = Arc::new(health::locality(group.locality.as_ref()));
        if !seen.insert((group.priority, Arc::clone(&locality))) {
            return Err(at.field("locality").error(format_args!(
                "locality {locality} appears twice at priority {}",
                group.priority
            )));
        }
        let locality_weight = match &group.load_balancing_weight {
            Some(w) if w.value == 0 => {
                return Err(at
                    .field("load_balancing_weight")
                    .error("weights must be at least 1"));
            }
            Some(w) => Some(w.value),
            None => None,
        };
        #[allow(deprecated)]
        let other_list = match &group.lb_config {
            None => None,
            Some(LbConfig::LoadBalancerEndpoints(_)) => Some("load_balancer_endpoints"),
            Some(LbConfig::LedsClusterLocalityConfig(_)) => Some("leds_cluster_locality_config"),
        };
        if let Some(field) = other_list {
            return Err(at
                .field(field)
                .unsupported("endpoints outside lb_endpoints"));
        }
        let at = at.field("lb_endpoints");
        for (j, lb) in group.lb_endpoints.iter().enumerate() {
            let at = at.index(j);
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                return Err(at.field("endpoint").error("an endpoint is required"));
            };
            let address = endpoint.address.as_ref().ok_or_else(|| {
                at.field("endpoint")
                    .field("address")
                    .error("an address is required")
            })?;
            let address = socket_address(address, &at.field("endpoint").field("address"))?;
            let weight = lb.load_balancing_weight.map_or(1, |w| w.value);
            if weight == 0 {
                return Err(at
                    .field("load_balancing_weight")
                    .error("weights must be at least 1"));
            }
            endpoints.push(Endpoint {
                address,
                weight,
                health_status: health::status(lb.health_status, &at.field("health_status"))?,
                locality: Arc::clone(&locality),
                priority: group.priority,
                locality_weight,
                health_check: health::endpoint_check(
                    endpoint.health_check_config.as_ref(),
                    &at.field("endpoint").field("health_check_config"),
                )?,
                transport_socket_match: super::tls::endpoint_match(lb.metadata.as_ref()),
            });
        }
    }
    Ok(LoadAssignment {
        endpoints,
        overprovisioning_factor,
    })
}

/// The `policy`'s overprovisioning factor; dropping requests and weighing
/// priority health by endpoint weight are refused. `endpoint_stale_after`
/// is ignored: static endpoints never go stale.
fn policy(assignment: &ClusterLoadAssignment, at: &At) -> Result<u32, ConfigError> {
    let Some(policy) = &assignment.policy else {
        return Ok(DEFAULT_OVERPROVISIONING_FACTOR);
    };
    let at = at.field("policy");
    if !policy.drop_overloads.is_empty() {
        return Err(at.field("drop_overloads").unsupported("dropping requests"));
    }
    if policy.weighted_priority_health {
        return Err(at
            .field("weighted_priority_health")
            .unsupported("priority health by endpoint weight"));
    }
    match &policy.overprovisioning_factor {
        Some(factor) if factor.value == 0 => Err(at
            .field("overprovisioning_factor")
            .error("the factor must be above 0")),
        Some(factor) => Ok(factor.value),
        None => Ok(DEFAULT_OVERPROVISIONING_FACTOR),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::compile_with_cluster;

    fn endpoint(port: u16) -> serde_json::Value {
        json!({"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}})
    }

    #[test]
    fn priorities_locality_weights_and_the_overprovisioning_factor() {
        let config = compile_with_cluster(json!({
            "common_lb_config": {"locality_weighted_lb_config": {}},
            "load_assignment": {"cluster_name": "a",
                "policy": {"overprovisioning_factor": 200},
                "endpoints": [
                    {"locality": {"zone": "a"}, "load_balancing_weight": 3,
                     "lb_endpoints": [endpoint(1), endpoint(2)]},
                    {"locality": {"zone": "b"}, "priority": 1, "lb_endpoints": [endpoint(3)]},
                    {"locality": {"zone": "a"}, "priority": 1, "lb_endpoints": [endpoint(4)]}
                ]}
        }))
        .unwrap();
        let cluster = &config.clusters["a"];
        assert_eq!(cluster.overprovisioning_factor, 200);
        assert!(cluster.locality_weighted);
        let summary: Vec<(u16, u32, Option<u32>, &str)> = cluster
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.address.port(),
                    e.priority,
                    e.locality_weight,
                    e.locality.zone.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (1, 0, Some(3), "a"),
                (2, 0, Some(3), "a"),
                (3, 1, None, "b"),
                (4, 1, None, "a")
            ]
        );

        let defaults = compile_with_cluster(json!({})).unwrap();
        assert_eq!(defaults.clusters["a"].overprovisioning_factor, 140);
        assert!(!defaults.clusters["a"].locality_weighted);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let refused =
            |fields: serde_json::Value| compile_with_cluster(fields).unwrap_err().to_string();
        let assignment = |extra: serde_json::Value| {
            let mut assignment = json!({"cluster_name": "a", "endpoints": [
                {"lb_endpoints": [endpoint(1)]}]});
            for (key, value) in extra.as_object().unwrap() {
                assignment[key] = value.clone();
            }
            json!({"load_assignment": assignment})
        };
        assert_eq!(
            refused(assignment(
                json!({"policy": {"drop_overloads": [{"category": "x"}]}})
            )),
            "cluster \"a\": load_assignment.policy.drop_overloads: dropping requests is not supported by this proxy"
        );
        assert_eq!(
            refused(assignment(
                json!({"policy": {"weighted_priority_health": true}})
            )),
            "cluster \"a\": load_assignment.policy.weighted_priority_health: priority health by endpoint weight is not supported by this proxy"
        );
        assert_eq!(
            refused(assignment(
                json!({"policy": {"overprovisioning_factor": 0}})
            )),
            "cluster \"a\": load_assignment.policy.overprovisioning_factor: the factor must be above 0"
        );
        assert_eq!(
            refused(
                json!({"load_assignment": {"cluster_name": "a", "endpoints": [
                {"load_balancing_weight": 0, "lb_endpoints": [endpoint(1)]}]}})
            ),
            "cluster \"a\": load_assignment.endpoints[0].load_balancing_weight: weights must be at least 1"
        );
        assert_eq!(
            refused(
                json!({"load_assignment": {"cluster_name": "a", "endpoints": [
                {"locality": {"region": "eu"}, "lb_endpoints": [endpoint(1)]},
                {"locality": {"region": "eu"}, "lb_endpoints": [endpoint(2)]}]}})
            ),
            "cluster \"a\": load_assignment.endpoints[1].locality: locality eu// appears twice at priority 0"
        );
        assert_eq!(
            refused(json!({"common_lb_config": {"zone_aware_lb_config": {}}})),
            "cluster \"a\": common_lb_config.zone_aware_lb_config: zone aware routing (it needs the local cluster) is not supported by this proxy"
        );
    }
}
