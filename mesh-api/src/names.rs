//! Names the mesh shares with Istio's tools: SPIFFE ids, service host names,
//! xDS cluster names and proxy node ids. Each one builds and parses, so that
//! what one component writes another can read back.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The trust domain and DNS suffix of a default install.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// The namespace of the control plane, and the mesh's root namespace.
pub const SYSTEM_NAMESPACE: &str = "mesh-system";

/// Why a name could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error(
        "{input:?} is not a SPIFFE id of the form spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
    )]
    Spiffe { input: String },
    #[error(
        "{input:?} is not a cluster name of the form <inbound|outbound>|<port>|<subset>|<host>"
    )]
    Cluster { input: String },
    #[error(
        "{input:?} is not a node id of the form <sidecar|router|waypoint>~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>"
    )]
    Node { input: String },
}

/// A workload identity, `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            // Istio writes an `@` in a trust domain as `.`.
            trust_domain: trust_domain.replace('@', "."),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }

    /// The principal as AuthorizationPolicy writes it: the id without `spiffe://`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

impl FromStr for SpiffeId {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = || NameError::Spiffe {
            input: input.to_owned(),
        };
        let rest = input.strip_prefix("spiffe://").ok_or_else(fail)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(SpiffeId::new(td, ns, sa))
            }
            _ => Err(fail()),
        }
    }
}

/// Expands a host as written in config to a fully qualified name: a short
/// name (no dot) is taken to live in `namespace`, as Istio does; names with a
/// dot and wildcards are kept as written.
pub fn fqdn(host: &str, namespace: &str, domain: &str) -> String {
    if host.contains('.') || host.contains('*') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

/// Which way a cluster's traffic goes, relative to the proxy's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// An xDS cluster name as istiod writes it: `outbound|9080|v1|reviews.default.svc.cluster.local`
/// or `inbound|9080||`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterName {
    pub direction: Direction,
    pub port: u16,
    /// Empty for the whole service.
    pub subset: String,
    /// Empty for inbound clusters.
    pub host: String,
}

impl ClusterName {
    pub fn outbound(port: u16, subset: &str, host: &str) -> Self {
        ClusterName {
            direction: Direction::Outbound,
            port,
            subset: subset.to_owned(),
            host: host.to_owned(),
        }
    }

    pub fn inbound(port: u16) -> Self {
        ClusterName {
            direction: Direction::Inbound,
            port,
            subset: String::new(),
            host: String::new(),
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        write!(f, "{direction}|{}|{}|{}", self.port, self.subset, self.host)
    }
}

impl FromStr for ClusterName {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = || NameError::Cluster {
            input: input.to_owned(),
        };
        let parts: Vec<&str> = input.split('|').collect();
        let [direction, port, subset, host] = parts.as_slice() else {
            return Err(fail());
        };
        let direction = match *direction {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            _ => return Err(fail()),
        };
        let port = port.parse().ok().filter(|p| *p != 0).ok_or_else(fail)?;
        if direction == Direction::Outbound && host.is_empty() {
            return Err(fail());
        }
        Ok(ClusterName {
            direction,
            port,
            subset: (*subset).to_owned(),
            host: (*host).to_owned(),
        })
    }
}

/// What kind of proxy a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyKind {
    /// Beside a workload.
    Sidecar,
    /// A gateway.
    Router,
    Waypoint,
}

impl ProxyKind {
    fn as_str(self) -> &'static str {
        match self {
            ProxyKind::Sidecar => "sidecar",
            ProxyKind::Router => "router",
            ProxyKind::Waypoint => "waypoint",
        }
    }
}

/// A proxy's xDS node id: `sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId {
    pub kind: ProxyKind,
    pub ip: IpAddr,
    pub pod: String,
    pub namespace: String,
    /// The DNS domain, `cluster.local` by default.
    pub domain: String,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let NodeId {
            kind,
            ip,
            pod,
            namespace,
            domain,
        } = self;
        write!(
            f,
            "{}~{ip}~{pod}.{namespace}~{namespace}.svc.{domain}",
            kind.as_str()
        )
    }
}

impl FromStr for NodeId {
    type Err = NameError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = || NameError::Node {
            input: input.to_owned(),
        };
        let parts: Vec<&str> = input.split('~').collect();
        let [kind, ip, id, dns] = parts.as_slice() else {
            return Err(fail());
        };
        let kind = match *kind {
            "sidecar" => ProxyKind::Sidecar,
            "router" => ProxyKind::Router,
            "waypoint" => ProxyKind::Waypoint,
            _ => return Err(fail()),
        };
        let ip = ip.parse().map_err(|_| fail())?;
        let (pod, namespace) = id.rsplit_once('.').ok_or_else(fail)?;
        let domain = dns
            .strip_prefix(namespace)
            .and_then(|d| d.strip_prefix(".svc."))
            .ok_or_else(fail)?;
        if pod.is_empty() || namespace.is_empty() || domain.is_empty() {
            return Err(fail());
        }
        Ok(NodeId {
            kind,
            ip,
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            domain: domain.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
            .parse()
            .unwrap();
        assert_eq!(
            id,
            SpiffeId::new("cluster.local", "default", "bookinfo-reviews")
        );
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(
            id.principal(),
            "cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(
            SpiffeId::new("corp@example.com", "a", "b").trust_domain,
            "corp.example.com"
        );
        for bad in [
            "cluster.local/ns/a/sa/b",
            "spiffe://td/ns/a",
            "spiffe://td/ns//sa/b",
            "spiffe://td/x/a/sa/b",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(
            fqdn("reviews", "default", "cluster.local"),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            fqdn("reviews.prod.svc.cluster.local", "default", "cluster.local"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            fqdn("*.example.com", "default", "cluster.local"),
            "*.example.com"
        );
        assert_eq!(fqdn("*", "default", "cluster.local"), "*");
    }

    #[test]
    fn cluster_names() {
        let name = ClusterName::outbound(9080, "v1", "reviews.default.svc.cluster.local");
        assert_eq!(
            name.to_string(),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(name.to_string().parse::<ClusterName>().unwrap(), name);
        assert_eq!(ClusterName::inbound(9080).to_string(), "inbound|9080||");
        assert_eq!(
            "inbound|9080||".parse::<ClusterName>().unwrap(),
            ClusterName::inbound(9080)
        );
        let whole: ClusterName = "outbound|9080||reviews.default.svc.cluster.local"
            .parse()
            .unwrap();
        assert_eq!(whole.subset, "");
        for bad in [
            "outbound|9080|v1",
            "sideways|1||h",
            "outbound|0||h",
            "outbound|9080|v1|",
            "outbound|x||h",
        ] {
            assert!(bad.parse::<ClusterName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ids() {
        let text = "sidecar~10.1.2.3~reviews-v1-abc.default~default.svc.cluster.local";
        let node: NodeId = text.parse().unwrap();
        assert_eq!(node.kind, ProxyKind::Sidecar);
        assert_eq!(node.ip, "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(node.pod, "reviews-v1-abc");
        assert_eq!(node.namespace, "default");
        assert_eq!(node.domain, "cluster.local");
        assert_eq!(node.to_string(), text);
        let gateway: NodeId = "router~::1~ingress-7d9.mesh-system~mesh-system.svc.cluster.local"
            .parse()
            .unwrap();
        assert_eq!(gateway.kind, ProxyKind::Router);
        for bad in [
            "sidecar~10.1.2.3~pod~default.svc.cluster.local",
            "proxy~1.2.3.4~p.ns~ns.svc.cluster.local",
            "sidecar~nope~p.ns~ns.svc.cluster.local",
            "sidecar~1.2.3.4~p.ns~other.svc.cluster.local",
        ] {
            assert!(bad.parse::<NodeId>().is_err(), "{bad}");
        }
    }
}
