//! Host matching between Gateway servers and VirtualServices, with Istio's
//! rules: server hosts are `namespace/dnsName` (`*/` any namespace, `./`
//! the gateway's own), VirtualService hosts are names (short ones in the
//! VirtualService's namespace), and a wildcard only leads (`*.example.com`,
//! `*`).

use mesh_api::names::fqdn;

/// A server host with its namespace made explicit: `./h` becomes
/// `<gateway namespace>/h` and a bare `h` becomes `*/h`.
pub fn qualify(host: &str, gateway_namespace: &str) -> String {
    match host.split_once('/') {
        Some((".", name)) => format!("{gateway_namespace}/{name}"),
        Some(_) => host.to_owned(),
        None => format!("*/{host}"),
    }
}

/// The names of qualified server hosts that VirtualServices of `namespace`
/// may bind to.
pub fn for_namespace<'h>(hosts: &'h [String], namespace: &str) -> Vec<&'h str> {
    hosts
        .iter()
        .filter_map(|h| {
            let (ns, name) = h.split_once('/').unwrap_or(("*", h.as_str()));
            (ns == "*" || ns == namespace).then_some(name)
        })
        .collect()
}

/// The dnsName part of a server host, whatever its namespace.
pub fn name(host: &str) -> &str {
    host.split_once('/').map_or(host, |(_, name)| name)
}

/// Whether every name `host` covers is covered by `other` (Istio's
/// `SubsetOf`): `*.a.example.com` is within `*.example.com`, which is
/// within `*`; `example.com` is not within `*.example.com`.
pub fn subset_of(host: &str, other: &str) -> bool {
    match (host.strip_prefix('*'), other.strip_prefix('*')) {
        (Some(suffix), Some(other_suffix)) => suffix.ends_with(other_suffix),
        (Some(_), None) => false,
        (None, Some(other_suffix)) => host.ends_with(other_suffix),
        (None, None) => host == other,
    }
}

/// The hosts both lists cover, the narrower of each overlapping pair
/// (Istio's `Intersection`), in the order of `server_hosts`.
/// VirtualService hosts are expanded in `vs_namespace` first.
pub fn intersection(
    server_hosts: &[&str],
    vs_hosts: &[String],
    vs_namespace: &str,
    domain: &str,
) -> Vec<String> {
    let vs_hosts: Vec<String> = vs_hosts
        .iter()
        .map(|h| fqdn(h, vs_namespace, domain))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for server in server_hosts {
        for vs in &vs_hosts {
            let narrower = if subset_of(server, vs) {
                *server
            } else if subset_of(vs, server) {
                vs.as_str()
            } else {
                continue;
            };
            if !out.iter().any(|h| h == narrower) {
                out.push(narrower.to_owned());
            }
        }
    }
    out
}
