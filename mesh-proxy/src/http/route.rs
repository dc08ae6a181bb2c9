//! Choosing the virtual host and route for a request.

use http::request::Parts;

use crate::config::{
    Domain, HeaderKey, HeaderMatch, PathMatch, QueryMatch, Route, RouteMatch, RouteTable,
    ValueMatch, VirtualHost,
};

/// The best virtual host for the request, and its first route that matches.
pub fn select<'a>(table: &'a RouteTable, request: &Parts) -> Option<(&'a VirtualHost, &'a Route)> {
    let host = authority(request);
    let vhost = best_virtual_host(table, &host)?;
    let route = vhost
        .routes
        .iter()
        .find(|route| matches(&route.matcher, request))?;
    Some((vhost, route))
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
    path_ok
        && m.headers.iter().all(|h| header_matches(h, request))
        && m.query_parameters
            .iter()
            .all(|q| query_matches(q, request.uri.query().unwrap_or_default()))
}

fn query_matches(m: &QueryMatch, query: &str) -> bool {
    let value = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == m.name).then_some(value)
    });
    match (&m.value, value) {
        (ValueMatch::Present(present), value) => value.is_some() == *present,
        (_, None) => false,
        (expected, Some(value)) => value_matches(expected, value),
    }
}

pub(crate) fn value_matches(expected: &ValueMatch, value: &str) -> bool {
    match expected {
        ValueMatch::Exact(v) => value == v,
        ValueMatch::Prefix(v) => value.starts_with(v.as_str()),
        ValueMatch::Suffix(v) => value.ends_with(v.as_str()),
        ValueMatch::Contains(v) => value.contains(v.as_str()),
        ValueMatch::Regex(re) => re.is_match(value),
        ValueMatch::Present(present) => *present,
    }
}

/// The values of a header, or of a pseudo-header.
fn header_values<'a>(key: &HeaderKey, request: &'a Parts) -> Vec<&'a str> {
    let single = |value: Option<&'a str>| value.into_iter().collect();
    match key {
        HeaderKey::Method => single(Some(request.method.as_str())),
        HeaderKey::Path => single(request.uri.path_and_query().map(|p| p.as_str())),
        HeaderKey::Scheme => single(request.uri.scheme_str()),
        HeaderKey::Authority => single(
            request
                .uri
                .authority()
                .map(|a| a.as_str())
                .or_else(|| request.headers.get(http::header::HOST)?.to_str().ok()),
        ),
        HeaderKey::Regular(name) => request
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect(),
    }
}

fn header_matches(m: &HeaderMatch, request: &Parts) -> bool {
    let values = header_values(&m.name, request);
    // Envoy matches repeated headers on their values joined with commas.
    let found = match &m.value {
        ValueMatch::Present(present) => values.is_empty() != *present,
        _ if values.is_empty() => false,
        expected => value_matches(expected, &values.join(",")),
    };
    found != m.invert
}

#[cfg(test)]
mod tests;
