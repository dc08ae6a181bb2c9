//! Clusters and their endpoints.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as EnvoyCluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint;

use super::listener::socket_address;
use super::{At, Cluster, ConfigError, Endpoint, LbPolicy, duration};

/// Envoy's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn compile(c: &EnvoyCluster) -> Result<Cluster, ConfigError> {
    let at = At::resource("cluster", &c.name);
    if c.name.is_empty() {
        return Err(at.field("name").error("a cluster needs a name"));
    }
    match &c.cluster_discovery_type {
        None => {}
        Some(cluster::ClusterDiscoveryType::Type(t))
            if *t == cluster::DiscoveryType::Static as i32 => {}
        Some(_) => {
            return Err(at
                .field("type")
                .unsupported("discovery types other than STATIC"));
        }
    }
    let lb = match cluster::LbPolicy::try_from(c.lb_policy) {
        Ok(cluster::LbPolicy::RoundRobin) => LbPolicy::RoundRobin,
        Ok(cluster::LbPolicy::LeastRequest) => LbPolicy::LeastRequest,
        Ok(cluster::LbPolicy::Random) => LbPolicy::Random,
        _ => {
            return Err(at
                .field("lb_policy")
                .unsupported("this load-balancing policy"));
        }
    };
    if c.transport_socket.is_some() {
        return Err(at
            .field("transport_socket")
            .unsupported("upstream TLS (yet)"));
    }
    let connect_timeout = match &c.connect_timeout {
        Some(d) => duration(d, &at.field("connect_timeout"))?,
        None => DEFAULT_CONNECT_TIMEOUT,
    };
    let mut endpoints = Vec::new();
    if let Some(assignment) = &c.load_assignment {
        let at = at.field("load_assignment").field("endpoints");
        for (i, locality) in assignment.endpoints.iter().enumerate() {
            let at = at.index(i).field("lb_endpoints");
            for (j, lb) in locality.lb_endpoints.iter().enumerate() {
                let at = at.index(j);
                let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier
                else {
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
                endpoints.push(Endpoint { address, weight });
            }
        }
    }
    Ok(Cluster {
        name: c.name.clone(),
        connect_timeout,
        lb,
        endpoints,
    })
}
