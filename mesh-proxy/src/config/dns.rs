//! DNS clusters: `STRICT_DNS` (every address of every host name is an
//! endpoint) and `LOGICAL_DNS` (one host name, one of its addresses: Envoy
//! takes the resolver's first, which the system resolver rotates; here
//! each proxy keeps one it drew, since the answers are sorted). The
//! cluster's `load_assignment` names hosts instead of addresses; compiling
//! it with the resolver's answers gives an assignment of addresses, which
//! compiles like any other (see [`crate::dns`]).
//!
//! `dns_lookup_family` picks among the addresses; `dns_refresh_rate` is how
//! often each name is looked up again. `respect_dns_ttl` cannot be followed
//! (the system resolver does not tell TTLs): names are looked up at the
//! refresh rate.

use std::net::IpAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as EnvoyCluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress, address, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, lb_endpoint,
};

use super::resources::Sources;
use super::{At, ConfigError, duration};

/// Which of a LOGICAL_DNS name's addresses this proxy connects to: one
/// drawn at start, so that it stays put while the answer does.
static PROXY_CHOICE: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| fastrand::usize(..));

/// Envoy's default `dns_refresh_rate`.
const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// How a DNS cluster turns its host names into endpoints.
#[derive(Debug, Clone, Copy)]
pub(super) struct DnsCluster {
    /// `LOGICAL_DNS`: the first address only.
    pub logical: bool,
    family: cluster::DnsLookupFamily,
    refresh: Duration,
}

impl DnsCluster {
    pub(super) fn compile(
        c: &EnvoyCluster,
        logical: bool,
        at: &At,
    ) -> Result<DnsCluster, ConfigError> {
        let family = cluster::DnsLookupFamily::try_from(c.dns_lookup_family)
            .map_err(|_| at.field("dns_lookup_family").error("unknown lookup family"))?;
        // Deprecated for the DnsCluster extension, which istiod does not use.
        #[allow(deprecated)]
        let refresh = match &c.dns_refresh_rate {
            Some(d) => duration(d, &at.field("dns_refresh_rate"))?,
            None => DEFAULT_REFRESH,
        };
        if refresh < Duration::from_millis(1) {
            return Err(at.field("dns_refresh_rate").error("must be at least 1ms"));
        }
        Ok(DnsCluster {
            logical,
            family,
            refresh,
        })
    }

    /// The cluster's `load_assignment` with each host name's endpoint
    /// repeated for each of its addresses (the first one only for
    /// `LOGICAL_DNS`); a name not looked up yet has none for now.
    pub(super) fn assignment(
        &self,
        c: &EnvoyCluster,
        sources: &Sources<'_>,
        at: &At,
    ) -> Result<ClusterLoadAssignment, ConfigError> {
        let at = at.field("load_assignment");
        let mut assignment = c.load_assignment.clone().unwrap_or_default();
        let count: usize = assignment
            .endpoints
            .iter()
            .map(|g| g.lb_endpoints.len())
            .sum();
        if self.logical && count != 1 {
            return Err(at
                .field("endpoints")
                .error("a LOGICAL_DNS cluster needs exactly one endpoint"));
        }
        for (i, group) in assignment.endpoints.iter_mut().enumerate() {
            let at = at.field("endpoints").index(i).field("lb_endpoints");
            let named = std::mem::take(&mut group.lb_endpoints);
            for (j, lb) in named.into_iter().enumerate() {
                let (host, port) = host_and_port(&lb, &at.index(j))?;
                let Some(found) = sources.resolved(&host, self.refresh) else {
                    continue;
                };
                let picked = self.pick(found);
                let addresses = match (self.logical, picked.len()) {
                    (_, 0) | (false, _) => &picked[..],
                    // Answers are sorted; each proxy takes its own one of
                    // them, so that a name's addresses share the load.
                    (true, count) => {
                        let at = *PROXY_CHOICE % count;
                        &picked[at..=at]
                    }
                };
                for &ip in addresses {
                    group.lb_endpoints.push(with_address(&lb, ip, port));
                }
            }
        }
        Ok(assignment)
    }

    /// The addresses `dns_lookup_family` allows, in the order it prefers.
    fn pick(&self, found: &[IpAddr]) -> Vec<IpAddr> {
        use cluster::DnsLookupFamily as Family;
        let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = found.iter().partition(|ip| ip.is_ipv4());
        match self.family {
            Family::V4Only => v4,
            Family::V6Only => v6,
            Family::Auto if !v6.is_empty() => v6,
            Family::Auto => v4,
            Family::V4Preferred if !v4.is_empty() => v4,
            Family::V4Preferred => v6,
            Family::All => v4.into_iter().chain(v6).collect(),
        }
    }
}

/// The host name and port of a DNS cluster's endpoint.
fn host_and_port(lb: &LbEndpoint, at: &At) -> Result<(String, u32), ConfigError> {
    let at = at.field("endpoint").field("address");
    let socket = match &lb.host_identifier {
        Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) => match &endpoint.address {
            Some(Address {
                address: Some(address::Address::SocketAddress(socket)),
            }) => socket,
            _ => return Err(at.error("a socket address with a host name is required")),
        },
        _ => return Err(at.error("an endpoint is required")),
    };
    let at = at.field("socket_address");
    if socket.address.is_empty() {
        return Err(at.field("address").error("a host name is required"));
    }
    match socket.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(port)) if port <= u32::from(u16::MAX) => {
            Ok((socket.address.clone(), port))
        }
        Some(socket_address::PortSpecifier::PortValue(_)) => {
            Err(at.field("port_value").error("not a port number"))
        }
        _ => Err(at.field("port_value").error("a port is required")),
    }
}

/// The endpoint `lb` at `ip:port`, with everything else it says.
fn with_address(lb: &LbEndpoint, ip: IpAddr, port: u32) -> LbEndpoint {
    let mut resolved = lb.clone();
    if let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &mut resolved.host_identifier {
        endpoint.address = Some(Address {
            address: Some(address::Address::SocketAddress(SocketAddress {
                address: ip.to_string(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
                ..SocketAddress::default()
            })),
        });
    }
    resolved
}

#[cfg(test)]
mod tests;
