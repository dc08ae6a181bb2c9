//! Choosing the virtual host and route for a request.

use http::request::Parts;

use crate::config::{
    Domain, HeaderMatch, PathMatch, Route, RouteMatch, RouteTable, ValueMatch, VirtualHost,
};

/// The first route of the best virtual host that matches the request.
pub fn select<'a>(table: &'a RouteTable, request: &Parts) -> Option<&'a Route> {
    let host = authority(request);
    let vhost = best_virtual_host(table, &host)?;
    vhost
        .routes
        .iter()
        .find(|route| matches(&route.matcher, request))
}

/// The request's authority without its port, lower-cased.
fn authority(request: &Parts) -> String {
    let raw = request
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            request
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or_default();
    let without_port = match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(':') => {
            host
        }
        _ => raw,
    };
    without_port.to_ascii_lowercase()
}

/// Envoy's order: exact domains, then the longest `*` suffix, then the longest
/// `*` prefix, then `*`.
fn best_virtual_host<'a>(table: &'a RouteTable, host: &str) -> Option<&'a VirtualHost> {
    let mut best: Option<((u8, usize), &VirtualHost)> = None;
    for vhost in &table.virtual_hosts {
        for domain in &vhost.domains {
            let rank = match domain {
                Domain::Exact(d) if d == host => (4, d.len()),
                Domain::Suffix(s) if host.len() > s.len() && host.ends_with(s.as_str()) => {
                    (3, s.len())
                }
                Domain::Prefix(p) if host.len() > p.len() && host.starts_with(p.as_str()) => {
                    (2, p.len())
                }
                Domain::Any => (1, 0),
                _ => continue,
            };
            if best.is_none_or(|(top, _)| rank > top) {
                best = Some((rank, vhost));
            }
        }
    }
    best.map(|(_, vhost)| vhost)
}

fn matches(m: &RouteMatch, request: &Parts) -> bool {
    let path = request.uri.path();
    let path_ok = match &m.path {
        PathMatch::Prefix(prefix) if m.case_sensitive => path.starts_with(prefix.as_str()),
        PathMatch::Prefix(prefix) => {
            path.len() >= prefix.len() && path[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        PathMatch::Exact(exact) if m.case_sensitive => path == exact,
        PathMatch::Exact(exact) => path.eq_ignore_ascii_case(exact),
        PathMatch::Regex(re) => re.is_match(path),
    };
    path_ok && m.headers.iter().all(|h| header_matches(h, request))
}

fn header_matches(m: &HeaderMatch, request: &Parts) -> bool {
    let values: Vec<&str> = request
        .headers
        .get_all(&m.name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    // Envoy matches repeated headers on their values joined with commas.
    let joined = values.join(",");
    let found = match &m.value {
        ValueMatch::Present(present) => values.is_empty() != *present,
        _ if values.is_empty() => false,
        ValueMatch::Exact(v) => joined == *v,
        ValueMatch::Prefix(v) => joined.starts_with(v.as_str()),
        ValueMatch::Suffix(v) => joined.ends_with(v.as_str()),
        ValueMatch::Contains(v) => joined.contains(v.as_str()),
        ValueMatch::Regex(re) => re.is_match(&joined),
    };
    found != m.invert
}

#[cfg(test)]
mod tests;
