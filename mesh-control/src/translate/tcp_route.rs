//! Where a TCP connection goes: the `tcp_proxy` filter to one cluster, or,
//! for a `tcp` (or `tls`) rule with several weighted destinations, to
//! `weighted_clusters`, picked per connection (Istio's TCP traffic
//! shifting). The filter closes connections as the DestinationRule of
//! the first destination's host says (`connectionPool.tcp.idleTimeout`
//! and `maxConnectionDuration` of its top-level traffic policy), as
//! istiod writes it.

use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use mesh_api::networking::virtual_service::{Destination, RouteDestination};

use super::proto::{any, duration};

/// The clusters of a TCP route, with their weights, and when its
/// connections are closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    clusters: Vec<(String, u32)>,
    limits: TcpLimits,
}

/// When a TCP route's connections are closed; unset, the proxy's defaults
/// apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpLimits {
    pub idle_timeout: Option<std::time::Duration>,
    pub max_duration: Option<std::time::Duration>,
}

impl TcpTarget {
    pub fn cluster(name: &str) -> TcpTarget {
        TcpTarget::weighted(vec![(name.to_owned(), 100)])
    }

    fn weighted(clusters: Vec<(String, u32)>) -> TcpTarget {
        TcpTarget {
            clusters,
            limits: TcpLimits::default(),
        }
    }

    pub fn limited_by(self, limits: TcpLimits) -> TcpTarget {
        TcpTarget { limits, ..self }
    }

    /// A rule's destinations, each as `cluster` names it; a lone
    /// destination takes everything whatever its weight, and destinations
    /// of weight 0 take nothing. `None` for a rule without destinations.
    pub fn of_route(
        route: &[RouteDestination],
        cluster: impl Fn(&Destination) -> String,
    ) -> Option<TcpTarget> {
        if let [only] = route {
            return Some(TcpTarget::cluster(&cluster(&only.destination)));
        }
        let clusters: Vec<(String, u32)> = route
            .iter()
            .filter_map(|d| {
                let weight = u32::try_from(d.weight.unwrap_or(0))
                    .ok()
                    .filter(|w| *w > 0)?;
                Some((cluster(&d.destination), weight))
            })
            .collect();
        (!clusters.is_empty()).then(|| TcpTarget::weighted(clusters))
    }

    /// The cluster connections are counted under: the first.
    pub fn first(&self) -> &str {
        &self.clusters[0].0
    }

    /// The `envoy.filters.network.tcp_proxy` filter.
    pub fn filter(&self) -> Filter {
        let cluster_specifier = match self.clusters.as_slice() {
            [(only, _)] => tcp_proxy::ClusterSpecifier::Cluster(only.clone()),
            many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
                clusters: many
                    .iter()
                    .map(
                        |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                            name: name.clone(),
                            weight: *weight,
                            ..Default::default()
                        },
                    )
                    .collect(),
            }),
        };
        let proxy = TcpProxy {
            stat_prefix: self.first().to_owned(),
            cluster_specifier: Some(cluster_specifier),
            idle_timeout: self.limits.idle_timeout.map(duration),
            max_downstream_connection_duration: self.limits.max_duration.map(duration),
            ..TcpProxy::default()
        };
        Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(&proxy))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn destination(host: &str, weight: Option<i32>) -> RouteDestination {
        RouteDestination {
            destination: Destination {
                host: host.into(),
                ..Destination::default()
            },
            weight,
        }
    }

    #[test]
    fn weights_split_and_a_lone_destination_takes_all() {
        let name = |d: &Destination| d.host.clone();
        let split = TcpTarget::of_route(
            &[
                destination("v1", Some(80)),
                destination("v2", Some(20)),
                destination("v3", Some(0)),
            ],
            name,
        )
        .unwrap();
        assert_eq!(
            split.clusters,
            [("v1".to_owned(), 80), ("v2".to_owned(), 20)]
        );
        let json = mesh_api::envoy::to_json(&split.filter()).unwrap();
        assert_eq!(
            json["typed_config"]["weighted_clusters"]["clusters"][1],
            serde_json::json!({"name": "v2", "weight": 20})
        );
        let lone = TcpTarget::of_route(&[destination("v1", None)], name).unwrap();
        let json = mesh_api::envoy::to_json(&lone.filter()).unwrap();
        assert_eq!(json["typed_config"]["cluster"], "v1");
        assert_eq!(TcpTarget::of_route(&[], name), None);
    }
}
