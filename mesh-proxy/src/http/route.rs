//! Choosing the virtual host and route for a request.

use std::borrow::Cow;

use http::request::Parts;

use super::proxy::{request_authority, strip_port};

use crate::config::{
    HeaderKey, HeaderMatch, PathMatch, QueryMatch, Route, RouteMatch, RouteTable, ValueMatch,
    VirtualHost,
};

/// The best virtual host for the request, and its first route that matches.
pub fn select<'a>(table: &'a RouteTable, request: &Parts) -> Option<(&'a VirtualHost, &'a Route)> {
    let host = authority(request);
    let vhost = &table.virtual_hosts[table.domains.find(&host)?];
    let route = vhost
        .routes
        .iter()
        .find(|route| matches(&route.matcher, request))?;
    Some((vhost, route))
}

/// The request's authority without its port, lower-cased.
fn authority(request: &Parts) -> Cow<'_, str> {
    let without_port = strip_port(request_authority(request).unwrap_or_default());
    if without_port.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(without_port.to_ascii_lowercase())
    } else {
        Cow::Borrowed(without_port)
    }
}

pub(crate) fn matches(m: &RouteMatch, request: &Parts) -> bool {
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

/// The value of a header, or of a pseudo-header. Envoy matches repeated
/// headers on their values joined with commas; one value needs no copy.
fn header_value<'a>(key: &HeaderKey, request: &'a Parts) -> Option<Cow<'a, str>> {
    let value = match key {
        HeaderKey::Method => Some(request.method.as_str()),
        HeaderKey::Path => request.uri.path_and_query().map(|p| p.as_str()),
        HeaderKey::Scheme => request.uri.scheme_str(),
        HeaderKey::Authority => request
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| request.headers.get(http::header::HOST)?.to_str().ok()),
        HeaderKey::Regular(name) => {
            let mut values = request
                .headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok());
            let first = values.next()?;
            let Some(second) = values.next() else {
                return Some(Cow::Borrowed(first));
            };
            let mut joined = format!("{first},{second}");
            for more in values {
                joined.push(',');
                joined.push_str(more);
            }
            return Some(Cow::Owned(joined));
        }
    };
    value.map(Cow::Borrowed)
}

pub(crate) fn header_matches(m: &HeaderMatch, request: &Parts) -> bool {
    let value = header_value(&m.name, request);
    let found = match (&m.value, value) {
        (ValueMatch::Present(present), value) => value.is_some() == *present,
        (_, None) => false,
        (expected, Some(value)) => value_matches(expected, &value),
    };
    found != m.invert
}

#[cfg(test)]
mod tests;
