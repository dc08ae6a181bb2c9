//! Route configurations: virtual hosts, matches and actions.

use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::data_source;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, RedirectAction, Route as EnvoyRoute, RouteAction, RouteConfiguration,
    RouteMatch as EnvoyRouteMatch, VirtualHost as EnvoyVirtualHost, header_matcher,
    query_parameter_matcher, redirect_action, route, route_action, route_match,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::Duration;
use http::{HeaderName, StatusCode};
use regex::Regex;

use super::Mirror;
use super::fault;
use super::retry;
use super::{
    Action, At, ConfigError, Domain, Forward, GrpcTimeout, HeaderMatch, PathMatch, Redirect,
    RequestTimeout, Route, RouteMatch, RouteTable, ValueMatch, VirtualHost,
};
use super::{HeaderKey, QueryMatch, RegexRewrite, cors, headers};

pub(super) fn compile(config: &RouteConfiguration, at: &At) -> Result<RouteTable, ConfigError> {
    fault::refuse_per_filter_config(
        &config.typed_per_filter_config,
        &at.field("typed_per_filter_config"),
    )?;
    let virtual_hosts = config
        .virtual_hosts
        .iter()
        .enumerate()
        .map(|(i, vh)| virtual_host(vh, &at.field("virtual_hosts").index(i)))
        .collect::<Result<_, _>>()?;
    let lists = headers::Lists {
        request_add: &config.request_headers_to_add,
        request_remove: &config.request_headers_to_remove,
        response_add: &config.response_headers_to_add,
        response_remove: &config.response_headers_to_remove,
    };
    Ok(RouteTable::new(
        config.name.clone(),
        virtual_hosts,
        headers::compile(lists, at)?,
    ))
}

fn virtual_host(vh: &EnvoyVirtualHost, at: &At) -> Result<VirtualHost, ConfigError> {
    if vh.domains.is_empty() {
        return Err(at.field("domains").error("at least one domain is required"));
    }
    fault::refuse_per_filter_config(
        &vh.typed_per_filter_config,
        &at.field("typed_per_filter_config"),
    )?;
    let domains = vh
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| domain(d, &at.field("domains").index(i)))
        .collect::<Result<_, _>>()?;
    let routes = vh
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| compile_route(r, &at.field("routes").index(i)))
        .collect::<Result<_, _>>()?;
    let lists = headers::Lists {
        request_add: &vh.request_headers_to_add,
        request_remove: &vh.request_headers_to_remove,
        response_add: &vh.response_headers_to_add,
        response_remove: &vh.response_headers_to_remove,
    };
    Ok(VirtualHost {
        name: vh.name.clone(),
        domains,
        routes,
        headers: headers::compile(lists, at)?,
    })
}

fn domain(pattern: &str, at: &At) -> Result<Domain, ConfigError> {
    let lower = pattern.to_ascii_lowercase();
    if lower == "*" {
        return Ok(Domain::Any);
    }
    if let Some(suffix) = lower.strip_prefix('*') {
        return Ok(Domain::Suffix(suffix.to_owned()));
    }
    if let Some(prefix) = lower.strip_suffix('*') {
        return Ok(Domain::Prefix(prefix.to_owned()));
    }
    if lower.contains('*') || lower.is_empty() {
        return Err(at.error(format_args!(
            "{pattern:?}: a wildcard may only lead or end a domain"
        )));
    }
    Ok(Domain::Exact(lower))
}

fn compile_route(r: &EnvoyRoute, at: &At) -> Result<Route, ConfigError> {
    let matcher = r
        .r#match
        .as_ref()
        .ok_or_else(|| at.field("match").error("match is required"))?;
    let matcher = route_matcher(matcher, &at.field("match"))?;
    let action = match &r.action {
        Some(route::Action::Route(action)) => {
            Action::Forward(Box::new(forward(action, &at.field("route"))?))
        }
        Some(route::Action::Redirect(redirect)) => {
            Action::Redirect(compile_redirect(redirect, &at.field("redirect"))?)
        }
        Some(route::Action::DirectResponse(direct)) => {
            let at = at.field("direct_response");
            let status = u16::try_from(direct.status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or_else(|| {
                    at.field("status")
                        .error(format_args!("{} is not an HTTP status", direct.status))
                })?;
            let body = match direct.body.as_ref().and_then(|b| b.specifier.as_ref()) {
                None => Bytes::new(),
                Some(data_source::Specifier::InlineString(s)) => Bytes::from(s.clone()),
                Some(data_source::Specifier::InlineBytes(b)) => Bytes::from(b.clone()),
                Some(_) => {
                    return Err(at
                        .field("body")
                        .unsupported("bodies from files or the environment"));
                }
            };
            Action::DirectResponse { status, body }
        }
        _ => return Err(at.error("a route needs route, redirect or direct_response")),
    };
    let fault = fault::per_route(&r.typed_per_filter_config, at)?;
    let cors = match r.typed_per_filter_config.get(cors::FILTER_NAME) {
        Some(any) => Some(cors::per_route(
            any,
            &at.field(&format!("typed_per_filter_config[{:?}]", cors::FILTER_NAME)),
        )?),
        None => None,
    };
    let lists = headers::Lists {
        request_add: &r.request_headers_to_add,
        request_remove: &r.request_headers_to_remove,
        response_add: &r.response_headers_to_add,
        response_remove: &r.response_headers_to_remove,
    };
    Ok(Route {
        name: r.name.clone(),
        operation: r
            .decorator
            .as_ref()
            .map(|d| Arc::from(d.operation.as_str()))
            .filter(|op: &Arc<str>| !op.is_empty()),
        matcher,
        action,
        fault,
        cors,
        headers: headers::compile(lists, at)?,
    })
}

pub(super) fn route_matcher(m: &EnvoyRouteMatch, at: &At) -> Result<RouteMatch, ConfigError> {
    let path = match &m.path_specifier {
        Some(route_match::PathSpecifier::Prefix(prefix)) => PathMatch::Prefix(prefix.clone()),
        Some(route_match::PathSpecifier::Path(path)) => PathMatch::Exact(path.clone()),
        Some(route_match::PathSpecifier::SafeRegex(re)) => {
            PathMatch::Regex(regex(re, &at.field("safe_regex"))?)
        }
        Some(_) => return Err(at.unsupported("this path matcher")),
        None => return Err(at.error("one of prefix, path or safe_regex is required")),
    };
    let query_parameters = m
        .query_parameters
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let at = at.field("query_parameters").index(i);
            let value = match &q.query_parameter_match_specifier {
                Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(sm)) => {
                    string_matcher(sm, &at.field("string_match"))?
                }
                Some(query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(p)) => {
                    ValueMatch::Present(*p)
                }
                None => ValueMatch::Present(true),
            };
            Ok(QueryMatch {
                name: q.name.clone(),
                value,
            })
        })
        .collect::<Result<_, ConfigError>>()?;
    let headers = m
        .headers
        .iter()
        .enumerate()
        .map(|(i, h)| header_matcher(h, &at.field("headers").index(i)))
        .collect::<Result<_, _>>()?;
    Ok(RouteMatch {
        path,
        case_sensitive: m.case_sensitive.is_none_or(|c| c.value),
        headers,
        query_parameters,
    })
}

pub(super) fn header_matcher(h: &HeaderMatcher, at: &At) -> Result<HeaderMatch, ConfigError> {
    let name = match h.name.as_str() {
        ":method" => HeaderKey::Method,
        ":path" => HeaderKey::Path,
        ":authority" | "host" => HeaderKey::Authority,
        ":scheme" => HeaderKey::Scheme,
        other => HeaderKey::Regular(HeaderName::from_bytes(other.as_bytes()).map_err(|_| {
            at.field("name")
                .error(format_args!("{:?} is not a header name", h.name))
        })?),
    };
    use header_matcher::HeaderMatchSpecifier as S;
    // The deprecated forms are what existing Envoy configs still use.
    #[allow(deprecated)]
    let value = match &h.header_match_specifier {
        None => ValueMatch::Present(true),
        Some(S::ExactMatch(v)) => ValueMatch::Exact(v.clone()),
        Some(S::PrefixMatch(v)) => ValueMatch::Prefix(v.clone()),
        Some(S::SuffixMatch(v)) => ValueMatch::Suffix(v.clone()),
        Some(S::ContainsMatch(v)) => ValueMatch::Contains(v.clone()),
        Some(S::SafeRegexMatch(re)) => ValueMatch::Regex(regex(re, &at.field("safe_regex_match"))?),
        Some(S::PresentMatch(present)) => ValueMatch::Present(*present),
        Some(S::StringMatch(m)) => string_matcher(m, &at.field("string_match"))?,
        Some(S::RangeMatch(_)) => return Err(at.field("range_match").unsupported("range_match")),
    };
    Ok(HeaderMatch {
        name,
        value,
        invert: h.invert_match,
    })
}

pub(super) fn string_matcher(m: &StringMatcher, at: &At) -> Result<ValueMatch, ConfigError> {
    if m.ignore_case {
        return Err(at.field("ignore_case").unsupported("ignore_case"));
    }
    pattern(m, at)
}

/// A matcher honouring `ignore_case` for values the caller lower-cases:
/// literal patterns are lower-cased too, and a regex ignores case.
pub(super) fn folding_string_matcher(
    m: &StringMatcher,
    at: &At,
) -> Result<ValueMatch, ConfigError> {
    if !m.ignore_case {
        return pattern(m, at);
    }
    use string_matcher::MatchPattern as P;
    Ok(match &m.match_pattern {
        Some(P::SafeRegex(re)) => {
            ValueMatch::Regex(regex_with_flags(re, "(?i)", &at.field("safe_regex"))?)
        }
        _ => match pattern(m, at)? {
            ValueMatch::Exact(v) => ValueMatch::Exact(v.to_ascii_lowercase()),
            ValueMatch::Prefix(v) => ValueMatch::Prefix(v.to_ascii_lowercase()),
            ValueMatch::Suffix(v) => ValueMatch::Suffix(v.to_ascii_lowercase()),
            ValueMatch::Contains(v) => ValueMatch::Contains(v.to_ascii_lowercase()),
            other => other,
        },
    })
}

fn pattern(m: &StringMatcher, at: &At) -> Result<ValueMatch, ConfigError> {
    use string_matcher::MatchPattern as P;
    Ok(match &m.match_pattern {
        Some(P::Exact(v)) => ValueMatch::Exact(v.clone()),
        Some(P::Prefix(v)) => ValueMatch::Prefix(v.clone()),
        Some(P::Suffix(v)) => ValueMatch::Suffix(v.clone()),
        Some(P::Contains(v)) => ValueMatch::Contains(v.clone()),
        Some(P::SafeRegex(re)) => ValueMatch::Regex(regex(re, &at.field("safe_regex"))?),
        _ => {
            return Err(
                at.error("one of exact, prefix, suffix, contains or safe_regex is required")
            );
        }
    })
}

/// A RE2 regex that must match the whole value, as Envoy's `safe_regex` does.
fn regex(m: &RegexMatcher, at: &At) -> Result<Regex, ConfigError> {
    regex_with_flags(m, "", at)
}

fn regex_with_flags(m: &RegexMatcher, flags: &str, at: &At) -> Result<Regex, ConfigError> {
    Regex::new(&format!("{flags}^(?:{})$", m.regex)).map_err(|err| {
        at.field("regex").error(format_args!(
            "{:?} is not a valid RE2 regex: {err}",
            m.regex
        ))
    })
}

fn forward(action: &RouteAction, at: &At) -> Result<Forward, ConfigError> {
    let clusters = match &action.cluster_specifier {
        Some(route_action::ClusterSpecifier::Cluster(name)) if !name.is_empty() => {
            vec![(name.clone(), 1)]
        }
        Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
            let at = at.field("weighted_clusters");
            let clusters: Vec<(String, u32)> = weighted
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.weight.map_or(0, |w| w.value)))
                .collect();
            if clusters.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
                return Err(at
                    .field("clusters")
                    .error("the weights must not all be zero"));
            }
            clusters
        }
        Some(_) => return Err(at.unsupported("this cluster specifier")),
        None => {
            return Err(at
                .field("cluster")
                .error("cluster or weighted_clusters is required"));
        }
    };
    let timeout = request_timeout(action, at)?;
    let host_rewrite = match &action.host_rewrite_specifier {
        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host)) => Some(host.clone()),
        Some(_) => return Err(at.unsupported("this host rewrite")),
        None => None,
    };
    let retry = match &action.retry_policy {
        Some(policy) => Some(retry::compile(policy, &at.field("retry_policy"))?),
        None => None,
    };
    let mirrors = action
        .request_mirror_policies
        .iter()
        .enumerate()
        .map(|(i, m)| mirror(m, &at.field("request_mirror_policies").index(i)))
        .collect::<Result<_, _>>()?;
    Ok(Forward {
        clusters,
        timeout,
        prefix_rewrite: Some(action.prefix_rewrite.clone()).filter(|p| !p.is_empty()),
        regex_rewrite: match &action.regex_rewrite {
            Some(rewrite) => Some(regex_rewrite(rewrite, &at.field("regex_rewrite"))?),
            None => None,
        },
        host_rewrite,
        retry,
        mirrors,
        hash_policy: super::hash_policy::compile(&action.hash_policy, &at.field("hash_policy"))?,
    })
}

/// The route's timeout model: `max_stream_duration` when it is set,
/// else `timeout` with `max_grpc_timeout`.
fn request_timeout(action: &RouteAction, at: &At) -> Result<RequestTimeout, ConfigError> {
    if let Some(stream) = &action.max_stream_duration {
        let at = at.field("max_stream_duration");
        let grpc = grpc_timeout(
            (
                stream.grpc_timeout_header_max.as_ref(),
                "grpc_timeout_header_max",
            ),
            (
                stream.grpc_timeout_header_offset.as_ref(),
                "grpc_timeout_header_offset",
            ),
            &at,
        )?;
        let max = super::timeout(
            stream.max_stream_duration.as_ref(),
            None,
            &at.field("max_stream_duration"),
        )?;
        return Ok(RequestTimeout::Stream { max, grpc });
    }
    let timeout = super::timeout(
        action.timeout.as_ref(),
        Some(std::time::Duration::from_secs(15)),
        &at.field("timeout"),
    )?;
    #[allow(deprecated)]
    let grpc = grpc_timeout(
        (action.max_grpc_timeout.as_ref(), "max_grpc_timeout"),
        (action.grpc_timeout_offset.as_ref(), "grpc_timeout_offset"),
        at,
    )?;
    Ok(RequestTimeout::Router { timeout, grpc })
}

/// A gRPC maximum (0: none) and offset, each with its field's name; `None`
/// without a maximum, when `grpc-timeout` is not read.
fn grpc_timeout(
    (max, max_field): (Option<&Duration>, &str),
    (offset, offset_field): (Option<&Duration>, &str),
    at: &At,
) -> Result<Option<GrpcTimeout>, ConfigError> {
    let Some(max) = max else {
        return Ok(None);
    };
    Ok(Some(GrpcTimeout {
        max: super::timeout(Some(max), None, &at.field(max_field))?,
        offset: match offset {
            Some(d) => super::duration(d, &at.field(offset_field))?,
            None => std::time::Duration::ZERO,
        },
    }))
}

fn regex_rewrite(
    rewrite: &envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute,
    at: &At,
) -> Result<RegexRewrite, ConfigError> {
    let pattern = rewrite
        .pattern
        .as_ref()
        .ok_or_else(|| at.field("pattern").error("a pattern is required"))?;
    let pattern = Regex::new(&pattern.regex).map_err(|err| {
        at.field("pattern").field("regex").error(format_args!(
            "{:?} is not a valid RE2 regex: {err}",
            pattern.regex
        ))
    })?;
    Ok(RegexRewrite {
        pattern,
        substitution: envoy_substitution(&rewrite.substitution),
    })
}

/// Envoy writes capture groups as `\1`; the `regex` crate as `${1}`, and a
/// literal `$` as `$$`.
fn envoy_substitution(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let digit = chars.next().expect("peeked");
                out.push_str(&format!("${{{digit}}}"));
            }
            other => out.push(other),
        }
    }
    out
}

fn mirror(policy: &route_action::RequestMirrorPolicy, at: &At) -> Result<Mirror, ConfigError> {
    if policy.cluster.is_empty() {
        return Err(at.field("cluster").error("a cluster is required"));
    }
    if !policy.cluster_header.is_empty() || !policy.request_headers_mutations.is_empty() {
        return Err(at.unsupported("cluster_header and header mutations in mirrors"));
    }
    // Without a fraction, Envoy mirrors every request.
    let per_million = match policy.runtime_fraction.as_ref() {
        None => 1_000_000,
        Some(fraction) => super::fault::per_million(
            fraction.default_value.as_ref(),
            &at.field("runtime_fraction").field("default_value"),
        )?,
    };
    Ok(Mirror {
        cluster: policy.cluster.clone(),
        per_million,
        shadow_suffix: !policy.disable_shadow_host_suffix_append,
    })
}

fn compile_redirect(r: &RedirectAction, at: &At) -> Result<Redirect, ConfigError> {
    use redirect_action::RedirectResponseCode as Code;
    let status = match Code::try_from(r.response_code) {
        Ok(Code::MovedPermanently) => StatusCode::MOVED_PERMANENTLY,
        Ok(Code::Found) => StatusCode::FOUND,
        Ok(Code::SeeOther) => StatusCode::SEE_OTHER,
        Ok(Code::TemporaryRedirect) => StatusCode::TEMPORARY_REDIRECT,
        Ok(Code::PermanentRedirect) => StatusCode::PERMANENT_REDIRECT,
        Err(_) => return Err(at.field("response_code").error("unknown response code")),
    };
    let scheme = match &r.scheme_rewrite_specifier {
        Some(redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)) => {
            Some("https".to_owned())
        }
        Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(s)) => Some(s.clone()),
        _ => None,
    };
    let (path, prefix_rewrite) = match &r.path_rewrite_specifier {
        Some(redirect_action::PathRewriteSpecifier::PathRedirect(p)) => (Some(p.clone()), None),
        Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(p)) => (None, Some(p.clone())),
        Some(_) => return Err(at.unsupported("regex_rewrite in redirects")),
        None => (None, None),
    };
    let port = match r.port_redirect {
        0 => None,
        p => Some(
            u16::try_from(p).map_err(|_| at.field("port_redirect").error("port above 65535"))?,
        ),
    };
    Ok(Redirect {
        status,
        scheme,
        host: Some(r.host_redirect.clone()).filter(|h| !h.is_empty()),
        port,
        path,
        prefix_rewrite,
    })
}

#[cfg(test)]
mod tests {
    use super::envoy_substitution;

    #[test]
    fn translates_envoy_capture_groups() {
        assert_eq!(envoy_substitution("\\2/instance/\\1"), "${2}/instance/${1}");
        assert_eq!(envoy_substitution("/cost$"), "/cost$$");
    }
}
