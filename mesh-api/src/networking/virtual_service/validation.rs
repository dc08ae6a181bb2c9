//! The rules of Istio's validating webhook for VirtualService; the parent
//! module's documentation lists them.

use std::net::IpAddr;

use super::{
    Abort, CorsPolicy, Delay, Delegate, Destination, HeaderOperations, Headers, HttpBody,
    HttpDirectResponse, HttpFaultInjection, HttpMatchRequest, HttpMirrorPolicy, HttpRedirect,
    HttpRetry, HttpRewrite, HttpRoute, L4MatchAttributes, Percent, RouteDestination, StringMatch,
    StringMatchKind, TcpRoute, TlsMatchAttributes, TlsRoute, VirtualServiceSpec,
};
use crate::selector::validate_labels;
use crate::validate::{self, Errors, ExportToNone, Path, Validate};

/// The reserved gateway name for all sidecars.
const MESH_GATEWAY: &str = "mesh";
/// Envoy caps regex program size; Istio approximates it by length.
const MAX_REGEX_LEN: usize = 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Header-match prefix that routes on a JWT claim instead of a header.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";
const PSEUDO_HEADERS: &[&str] = &[":method", ":scheme", ":authority", ":path", ":status"];
/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` conditions.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];
/// Redirect codes Envoy can send; Istio drops routes with any other code.
const REDIRECT_CODES: &[u32] = &[301, 302, 303, 307, 308];

/// What the rules of one route need to know about the VirtualService around it.
struct Scope<'a> {
    hosts: &'a [String],
    /// No hosts: a delegate, whose HTTP routes are merged into a root's.
    delegate: bool,
    /// `gateways` is set and does not name `mesh`.
    gateway_only: bool,
}

/// Where a string match sits, which decides what an empty match means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Uri,
    /// `scheme`, `method`, `authority`.
    Request,
    Header,
    WithoutHeader,
    QueryParam,
    Origin,
}

impl Validate for VirtualServiceSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let scope = Scope {
            hosts: &self.hosts,
            delegate: self.hosts.is_empty(),
            gateway_only: !self.gateways.is_empty()
                && !self.gateways.iter().any(|g| g == MESH_GATEWAY),
        };
        if scope.delegate {
            let why = "a delegate VirtualService (one with no hosts)";
            if !self.gateways.is_empty() {
                errs.add(
                    &at.field("gateways"),
                    format!("{why} must not set gateways; the root VirtualService chooses them"),
                );
            }
            if !self.tls.is_empty() {
                errs.add(&at.field("tls"), format!("{why} may only have http routes"));
            }
            if !self.tcp.is_empty() {
                errs.add(&at.field("tcp"), format!("{why} may only have http routes"));
            }
        }
        validate_hosts(self, &scope, &at.field("hosts"), errs);
        gateway_names(&self.gateways, &at.field("gateways"), errs);
        if self.http.is_empty() && self.tcp.is_empty() && self.tls.is_empty() {
            errs.add(
                at,
                "a VirtualService needs at least one http, tcp or tls route",
            );
        }
        for (i, route) in self.http.iter().enumerate() {
            http_route(route, &scope, &at.field("http").index(i), errs);
        }
        for (i, route) in self.tls.iter().enumerate() {
            tls_route(route, &scope, &at.field("tls").index(i), errs);
        }
        for (i, route) in self.tcp.iter().enumerate() {
            tcp_route(route, &at.field("tcp").index(i), errs);
        }
        validate::export_to(
            &self.export_to,
            ExportToNone::Refused,
            &at.field("exportTo"),
            errs,
        );
    }
}

fn validate_hosts(spec: &VirtualServiceSpec, scope: &Scope, at: &Path, errs: &mut Errors) {
    let sni = spec
        .tls
        .iter()
        .flat_map(|route| &route.r#match)
        .any(|m| !m.sni_hosts.is_empty());
    let mut all_valid = true;
    for (i, host) in spec.hosts.iter().enumerate() {
        if host.parse::<IpAddr>().is_ok() {
            continue;
        }
        if let Err(reason) = virtual_host(host, scope.gateway_only && sni) {
            errs.add(&at.index(i), reason);
            all_valid = false;
        } else if host == "*" && !scope.gateway_only {
            errs.add(
                &at.index(i),
                "the host \"*\" is only allowed when the VirtualService is bound to gateways only \
                 (gateways set and not including mesh)",
            );
            all_valid = false;
        }
    }
    if !all_valid {
        return;
    }
    for (j, later) in spec.hosts.iter().enumerate() {
        if let Some(earlier) = spec.hosts[..j].iter().find(|h| hosts_overlap(h, later)) {
            errs.add(
                &at.index(j),
                format!(
                    "host {later:?} overlaps host {earlier:?} listed before it; list each host once"
                ),
            );
        }
    }
}

/// A VirtualService host or SNI name; gateways also accept the names of
/// auto-passthrough SNI clusters, `outbound_.<port>_.<subset>_.<host>`.
fn virtual_host(host: &str, allow_auto_sni: bool) -> Result<(), String> {
    if allow_auto_sni && host.starts_with("outbound_") {
        let parts: Vec<&str> = host.split('_').collect();
        let ok = parts.len() >= 4
            && parts[0] == "outbound"
            && parts[1]
                .trim_matches('.')
                .starts_with(|c: char| c.is_ascii_digit())
            && parts[3]
                .trim_matches('.')
                .contains(|c: char| c.is_ascii_alphabetic());
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "{host:?} must follow the outbound_.<port>_.<subset>_.<hostname> format"
            ))
        };
    }
    validate::wildcard_host(host)
}

/// Whether two (possibly wildcard) hosts can name the same host, as Istio decides it.
fn hosts_overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(a), Some(b)) => a.ends_with(b) || b.ends_with(a),
        (Some(suffix), None) => b.ends_with(suffix),
        (None, Some(suffix)) => a.ends_with(suffix),
        (None, None) => a == b,
    }
}

/// Whether `sni` falls within `host` (`a.example.com` within `*.example.com`).
fn host_within(sni: &str, host: &str) -> bool {
    match (sni.strip_prefix('*'), host.strip_prefix('*')) {
        (Some(sni), Some(host)) => sni.len() >= host.len() && sni.ends_with(host),
        (Some(_), None) => false,
        (None, Some(suffix)) => sni.ends_with(suffix),
        (None, None) => sni == host,
    }
}

/// Gateway references: `mesh`, a name (a DNS name) or `namespace/name`.
fn gateway_names(names: &[String], at: &Path, errs: &mut Errors) {
    for (i, name) in names.iter().enumerate() {
        let here = at.index(i);
        match name.split_once('/') {
            None => {
                if let Err(reason) = dns_name(name) {
                    errs.add(
                        &here,
                        format!("gateway {name:?} must be mesh, a gateway name or namespace/name: {reason}"),
                    );
                }
            }
            Some((namespace, gateway)) => {
                if !validate::is_dns_label(namespace) {
                    errs.add(
                        &here,
                        format!("gateway {name:?} has an invalid namespace {namespace:?} (must be a DNS label)"),
                    );
                }
                if !validate::is_dns_label(gateway) {
                    errs.add(
                        &here,
                        format!(
                            "gateway {name:?} has an invalid name {gateway:?} (must be a DNS label)"
                        ),
                    );
                }
            }
        }
    }
}

fn http_route(route: &HttpRoute, scope: &Scope, at: &Path, errs: &mut Errors) {
    route_actions(route, scope, at, errs);
    for (i, m) in route.r#match.iter().enumerate() {
        http_match(m, scope, &at.field("match").index(i), errs);
    }
    route.headers.validate(&at.field("headers"), errs);
    single_authority_rewrite(route, at, errs);
    route.cors_policy.validate(&at.field("corsPolicy"), errs);
    route.fault.validate(&at.field("fault"), errs);
    if let Some(percent) = route.mirror_percent.filter(|p| *p > 100) {
        errs.add(
            &at.field("mirrorPercent"),
            format!("mirrorPercent {percent} must be at most 100"),
        );
    }
    if let Some(percentage) = &route.mirror_percentage {
        errs.check(
            &at.field("mirrorPercentage").field("value"),
            validate::percent(percentage.value),
        );
    }
    route.mirror.validate(&at.field("mirror"), errs);
    validate::each(&route.mirrors, &at.field("mirrors"), errs);
    if let Some(redirect) = &route.redirect {
        http_redirect(redirect, &route.r#match, &at.field("redirect"), errs);
    }
    route
        .direct_response
        .validate(&at.field("directResponse"), errs);
    route.delegate.validate(&at.field("delegate"), errs);
    route.retries.validate(&at.field("retries"), errs);
    route.rewrite.validate(&at.field("rewrite"), errs);
    for (i, destination) in route.route.iter().enumerate() {
        let here = at.field("route").index(i);
        destination
            .destination
            .validate(&here.field("destination"), errs);
        destination.headers.validate(&here.field("headers"), errs);
    }
    let weights: Vec<Option<i32>> = route.route.iter().map(|d| d.weight).collect();
    check_weights(&weights, &at.field("route"), errs);
    if let Some(timeout) = route.timeout {
        errs.check(&at.field("timeout"), validate::duration_ms(timeout));
    }
}

/// What a route does with a request: forward, redirect, answer, or delegate.
fn route_actions(route: &HttpRoute, scope: &Scope, at: &Path, errs: &mut Errors) {
    if route.mirror.is_some() && !route.mirrors.is_empty() {
        errs.add(
            &at.field("mirrors"),
            "mirror and mirrors cannot both be set; move mirror into mirrors",
        );
    }
    let forwards = !route.route.is_empty();
    if route.delegate.is_some() {
        if scope.delegate {
            errs.add(
                &at.field("delegate"),
                "a delegate VirtualService (one with no hosts) cannot delegate again; only one level is supported",
            );
            return;
        }
        let others = [
            ("route", forwards),
            ("redirect", route.redirect.is_some()),
            ("directResponse", route.direct_response.is_some()),
        ];
        for (field, _) in others.iter().filter(|(_, set)| *set) {
            errs.add(
                &at.field(field),
                format!("{field} cannot be set together with delegate; the delegate VirtualService routes the request"),
            );
        }
        return;
    }
    let (action, excluded): (&str, &[(&str, bool)]) = if route.redirect.is_some() {
        (
            "redirect",
            &[
                ("route", forwards),
                ("fault", route.fault.is_some()),
                ("rewrite", route.rewrite.is_some()),
                ("directResponse", route.direct_response.is_some()),
            ],
        )
    } else if route.direct_response.is_some() {
        (
            "directResponse",
            &[
                ("route", forwards),
                ("fault", route.fault.is_some()),
                ("rewrite", route.rewrite.is_some()),
            ],
        )
    } else {
        if !forwards {
            errs.add(
                at,
                "an HTTP route needs one of route, redirect, directResponse or delegate",
            );
        }
        return;
    };
    for (field, _) in excluded.iter().filter(|(_, set)| *set) {
        errs.add(
            &at.field(field),
            format!(
                "{field} cannot be set together with {action}, which answers the request itself"
            ),
        );
    }
}

fn http_match(m: &HttpMatchRequest, scope: &Scope, at: &Path, errs: &mut Errors) {
    if let Some(uri) = &m.uri {
        string_match(uri, Site::Uri, &at.field("uri"), errs);
    }
    for (field, value) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(value) = value {
            string_match(value, Site::Request, &at.field(field), errs);
        }
    }
    for (field, site, map) in [
        ("headers", Site::Header, &m.headers),
        ("withoutHeaders", Site::WithoutHeader, &m.without_headers),
    ] {
        for (name, value) in map {
            let here = at.field(field).field(name);
            match_header_name(name, scope, &here, errs);
            string_match(value, site, &here, errs);
        }
    }
    for (name, value) in &m.query_params {
        string_match(
            value,
            Site::QueryParam,
            &at.field("queryParams").field(name),
            errs,
        );
    }
    match_selectors(
        m.port,
        &m.source_labels,
        &m.gateways,
        &m.source_namespace,
        at,
        errs,
    );
}

/// The fields every kind of match shares.
fn match_selectors(
    port: Option<u32>,
    source_labels: &std::collections::BTreeMap<String, String>,
    gateways: &[String],
    source_namespace: &str,
    at: &Path,
    errs: &mut Errors,
) {
    if let Some(port) = port {
        errs.check(&at.field("port"), validate::port(port));
    }
    validate_labels(source_labels, &at.field("sourceLabels"), errs);
    gateway_names(gateways, &at.field("gateways"), errs);
    if !source_namespace.is_empty() && !validate::is_dns_label(source_namespace) {
        errs.add(
            &at.field("sourceNamespace"),
            format!("sourceNamespace {source_namespace:?} must be a namespace name (a DNS label)"),
        );
    }
}

/// A header name in a match: a header, an HTTP/2 pseudo-header, or a JWT claim.
fn match_header_name(name: &str, scope: &Scope, at: &Path, errs: &mut Errors) {
    if is_jwt_claim(name) {
        if !scope.gateway_only {
            errs.add(
                at,
                format!(
                    "routing on the JWT claim {name:?} only works on gateways; \
                     bind the VirtualService to gateways without mesh"
                ),
            );
        }
    } else if !PSEUDO_HEADERS.contains(&name) {
        errs.check(at, validate::header_name(name));
    }
}

/// `@request.auth.claims.<claim>` or `@request.auth.claims[<claim>]...`.
fn is_jwt_claim(name: &str) -> bool {
    let Some(prefix) = name.get(..JWT_CLAIM_PREFIX.len()) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(JWT_CLAIM_PREFIX) {
        return false;
    }
    let rest = &name[JWT_CLAIM_PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

fn string_match(m: &StringMatch, site: Site, at: &Path, errs: &mut Errors) {
    let set = [
        ("exact", m.exact.is_some()),
        ("prefix", m.prefix.is_some()),
        ("regex", m.regex.is_some()),
    ];
    if let Err(reason) = validate::one_of(&set) {
        errs.add(at, reason);
        return;
    }
    match m.kind() {
        None => {
            if !matches!(site, Site::Header | Site::WithoutHeader | Site::QueryParam) {
                errs.add(at, "set one of exact, prefix or regex");
            }
        }
        Some(StringMatchKind::Exact("")) if site == Site::Origin => {
            errs.add(&at.field("exact"), "an allowed origin must not be empty");
        }
        Some(StringMatchKind::Exact(_)) => {}
        Some(StringMatchKind::Prefix("")) if site != Site::Uri => {
            errs.add(
                &at.field("prefix"),
                "an empty prefix is only allowed in a uri match; remove the match or write a prefix",
            );
        }
        Some(StringMatchKind::Prefix(_)) => {}
        // Istio reads `regex: "*"` in withoutHeaders as "the header is present".
        Some(StringMatchKind::Regex("*")) if site == Site::WithoutHeader => {}
        Some(StringMatchKind::Regex(pattern)) => regex(pattern, &at.field("regex"), errs),
    }
}

fn regex(pattern: &str, at: &Path, errs: &mut Errors) {
    if pattern.is_empty() {
        errs.add(at, "regex must not be empty");
    } else if pattern.len() > MAX_REGEX_LEN {
        errs.add(
            at,
            format!(
                "regex is {} characters long; at most {MAX_REGEX_LEN} are allowed",
                pattern.len()
            ),
        );
    } else {
        errs.check(at, validate::re2(pattern));
    }
}

impl Validate for Headers {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(request) = &self.request {
            header_operations(request, true, &at.field("request"), errs);
        }
        if let Some(response) = &self.response {
            header_operations(response, false, &at.field("response"), errs);
        }
    }
}

fn header_operations(ops: &HeaderOperations, request: bool, at: &Path, errs: &mut Errors) {
    for (field, map) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in map {
            let here = at.field(field).field(name);
            let name_ok = if request {
                request_header_name(name)
            } else {
                fixed_header_name(name)
            };
            errs.check(&here, name_ok);
            errs.check(&here, header_value(value));
        }
    }
    for (i, name) in ops.remove.iter().enumerate() {
        errs.check(&at.field("remove").index(i), fixed_header_name(name));
    }
}

fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A header a request `set`/`add` may name: the authority is allowed.
fn request_header_name(name: &str) -> Result<(), String> {
    if is_authority_header(name) {
        return Ok(());
    }
    if name.starts_with(':') {
        return Err(format!(
            "header {name:?} cannot be changed: only :authority among the pseudo-headers may be set"
        ));
    }
    validate::header_name(name)
}

/// A header a request `remove` or any response operation may name.
fn fixed_header_name(name: &str) -> Result<(), String> {
    if name.eq_ignore_ascii_case("host") || name.starts_with(':') {
        return Err(format!(
            "header {name:?} cannot be removed from requests or changed on responses"
        ));
    }
    validate::header_name(name)
}

/// A header value as Envoy reads it: no control characters, and `%` either
/// doubled or opening a `%VARIABLE%` (or `%VARIABLE(args)%`) that is closed.
fn header_value(value: &str) -> Result<(), String> {
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\t') || c == '\u{7f}')
    {
        return Err(format!(
            "header value {value:?} contains control characters"
        ));
    }
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'%') {
            i += 2;
            continue;
        }
        let (mut j, mut depth, mut quoted) = (i + 1, 0usize, false);
        loop {
            match bytes.get(j) {
                None => {
                    return Err(format!(
                        "header value {value:?} has an unterminated %VARIABLE%; write %% for a literal %"
                    ));
                }
                Some(b'\\') if quoted => j += 1,
                Some(b'"') => quoted = !quoted,
                Some(b'(') if !quoted => depth += 1,
                Some(b')') if !quoted => depth = depth.saturating_sub(1),
                Some(b'%') if !quoted && depth == 0 => break,
                Some(_) => {}
            }
            j += 1;
        }
        i = j + 1;
    }
    Ok(())
}

/// Istio rewrites the authority in one place only.
fn single_authority_rewrite(route: &HttpRoute, at: &Path, errs: &mut Errors) {
    let mut current = route
        .rewrite
        .as_ref()
        .filter(|rewrite| !rewrite.authority.is_empty())
        .map(|_| "rewrite.authority".to_owned());
    let Some(request) = route.headers.as_ref().and_then(|h| h.request.as_ref()) else {
        return;
    };
    for (field, map) in [("set", &request.set), ("add", &request.add)] {
        for name in map.keys().filter(|name| is_authority_header(name)) {
            let here = format!("headers.request.{field}.{name}");
            match &current {
                Some(first) => errs.add(
                    &at.field("headers").field("request").field(field).field(name),
                    format!("the authority is already rewritten by {first}; rewrite it in one place only"),
                ),
                None => current = Some(here),
            }
        }
    }
}

impl Validate for Destination {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.host == "*" {
            errs.add(
                &at.field("host"),
                "destination host cannot be \"*\"; name a service",
            );
        } else {
            errs.check(&at.field("host"), validate::wildcard_host(&self.host));
        }
        if !self.subset.is_empty() && !validate::is_dns_label(&self.subset) {
            errs.add(
                &at.field("subset"),
                format!(
                    "subset {:?} must be a DNS label (letters, digits and '-', at most 63 characters)",
                    self.subset
                ),
            );
        }
        self.port.validate(&at.field("port"), errs);
    }
}

/// Weights: never negative; with several destinations, all written and adding up to 100.
fn check_weights(weights: &[Option<i32>], at: &Path, errs: &mut Errors) {
    let several = weights.len() > 1;
    let mut complete = true;
    for (i, weight) in weights.iter().enumerate() {
        let here = at.index(i).field("weight");
        match *weight {
            Some(w) if w < 0 => {
                errs.add(&here, format!("weight {w} must not be negative"));
                complete = false;
            }
            None if several => {
                errs.add(
                    &here,
                    "weight is required when a rule has more than one destination",
                );
                complete = false;
            }
            _ => {}
        }
    }
    if several && complete {
        let total: i64 = weights.iter().flatten().map(|w| i64::from(*w)).sum();
        if total != 100 {
            errs.add(
                at,
                format!("destination weights add up to {total}; with more than one destination they must add up to 100"),
            );
        }
    }
}

impl Validate for HttpMirrorPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        self.destination.validate(&at.field("destination"), errs);
        if let Some(percentage) = &self.percentage {
            errs.check(
                &at.field("percentage").field("value"),
                validate::percent(percentage.value),
            );
        }
    }
}

fn http_redirect(
    redirect: &HttpRedirect,
    matches: &[HttpMatchRequest],
    at: &Path,
    errs: &mut Errors,
) {
    errs.check(
        at,
        validate::one_of(&[
            ("port", redirect.port.is_some()),
            ("derivePort", redirect.derive_port.is_some()),
        ]),
    );
    if !redirect.uri.is_empty() && !redirect.prefix_rewrite.is_empty() {
        errs.add(
            &at.field("prefixRewrite"),
            "uri and prefixRewrite cannot both be set: uri replaces the whole path",
        );
    } else if !redirect.prefix_rewrite.is_empty() {
        let not_prefix = matches.iter().position(|m| {
            m.uri
                .as_ref()
                .is_some_and(|uri| !matches!(uri.kind(), Some(StringMatchKind::Prefix(_))))
        });
        if let Some(i) = not_prefix {
            errs.add(
                &at.field("prefixRewrite"),
                format!("prefixRewrite needs every uri match to be a prefix match, but match[{i}].uri is not"),
            );
        }
    }
    if redirect.uri.is_empty()
        && redirect.prefix_rewrite.is_empty()
        && redirect.authority.is_empty()
        && redirect.scheme.is_empty()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
    {
        errs.add(
            at,
            "a redirect must change at least one of uri, prefixRewrite, authority, scheme, port or derivePort",
        );
    }
    if let Some(code) = redirect
        .redirect_code
        .filter(|c| *c != 0 && !REDIRECT_CODES.contains(c))
    {
        errs.add(
            &at.field("redirectCode"),
            format!("redirectCode {code} is not supported; use 301, 302, 303, 307 or 308"),
        );
    }
    if !matches!(redirect.scheme.as_str(), "" | "http" | "https") {
        errs.add(
            &at.field("scheme"),
            format!(
                "redirect scheme {:?} must be http or https",
                redirect.scheme
            ),
        );
    }
    if let Some(port) = redirect.port {
        errs.check(&at.field("port"), validate::port(port));
    }
}

impl Validate for HttpDirectResponse {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !(200..=599).contains(&self.status) {
            errs.add(
                &at.field("status"),
                format!("status {} must be between 200 and 599", self.status),
            );
        }
        self.body.validate(&at.field("body"), errs);
    }
}

impl Validate for HttpBody {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(
            at,
            validate::one_of(&[
                ("string", self.string.is_some()),
                ("bytes", self.bytes.is_some()),
            ]),
        );
        let size = match (&self.string, &self.bytes) {
            (Some(text), _) => Some((text.len(), "string")),
            (None, Some(encoded)) => match base64_len(encoded) {
                Some(len) => Some((len, "bytes")),
                None => {
                    errs.add(&at.field("bytes"), "bytes must be base64-encoded");
                    None
                }
            },
            (None, None) => None,
        };
        if let Some((len, field)) = size.filter(|(len, _)| *len > MAX_BODY_BYTES) {
            errs.add(
                &at.field(field),
                format!("the body is {len} bytes; a direct response body may be at most 1 MiB"),
            );
        }
    }
}

/// The decoded length of base64 text (standard or URL alphabet, padding optional).
fn base64_len(text: &str) -> Option<usize> {
    let data = text.trim_end_matches('=');
    let padding = text.len() - data.len();
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_');
    if padding > 2 || (padding > 0 && !text.len().is_multiple_of(4)) || data.len() % 4 == 1 {
        return None;
    }
    data.bytes().all(alphabet).then_some(data.len() * 3 / 4)
}

impl Validate for Delegate {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.name.is_empty() {
            errs.add(&at.field("name"), "delegate name is required");
        } else {
            errs.check(&at.field("name"), validate::dns_subdomain(&self.name));
        }
        if !self.namespace.is_empty() {
            errs.check(&at.field("namespace"), validate::dns_label(&self.namespace));
        }
    }
}

impl Validate for HttpRetry {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let attempts = self.attempts.unwrap_or(0);
        if attempts < 0 {
            errs.add(
                &at.field("attempts"),
                format!("attempts {attempts} must not be negative"),
            );
        } else if attempts == 0
            && (self.per_try_timeout.is_some()
                || !self.retry_on.is_empty()
                || self.retry_remote_localities.is_some())
        {
            errs.add(
                &at.field("attempts"),
                "retries are disabled (attempts is 0 or unset) but perTryTimeout, retryOn or \
                 retryRemoteLocalities is set; set attempts or remove them",
            );
        }
        if let Some(timeout) = self.per_try_timeout {
            errs.check(&at.field("perTryTimeout"), validate::duration_ms(timeout));
        }
        if let Some(backoff) = self.backoff {
            errs.check(&at.field("backoff"), validate::duration_ms(backoff));
        }
        if !self.retry_on.is_empty() {
            for policy in self.retry_on.split(',') {
                if !RETRY_ON.contains(&policy) && !is_http_status(policy) {
                    errs.add(
                        &at.field("retryOn"),
                        format!(
                            "{policy:?} is not a retry condition: use Envoy's names (5xx, gateway-error, reset, \
                             connect-failure, refused-stream, unavailable, ...) or HTTP status codes, \
                             separated by commas without spaces"
                        ),
                    );
                }
            }
        }
    }
}

/// A registered HTTP status code, written as a plain number.
fn is_http_status(text: &str) -> bool {
    let Ok(code) = text.parse::<u16>() else {
        return false;
    };
    !text.starts_with('+')
        && matches!(code,
            100..=103 | 200..=208 | 226 | 300..=308 | 400..=418 | 421..=426 | 428 | 429 | 431 | 451
            | 500..=508 | 510 | 511)
}

impl Validate for HttpRewrite {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if !self.uri.is_empty() && self.uri_regex_rewrite.is_some() {
            errs.add(
                &at.field("uriRegexRewrite"),
                "uri and uriRegexRewrite cannot both be set",
            );
        }
        if self.uri.is_empty() && self.uri_regex_rewrite.is_none() && self.authority.is_empty() {
            errs.add(
                at,
                "a rewrite must set at least one of uri, uriRegexRewrite or authority",
            );
        }
        if let Some(regex_rewrite) = &self.uri_regex_rewrite {
            let here = at.field("uriRegexRewrite");
            if regex_rewrite.r#match.is_empty() {
                errs.add(
                    &here.field("match"),
                    "match is required: the RE2 regex to replace",
                );
            } else {
                regex(&regex_rewrite.r#match, &here.field("match"), errs);
            }
            if regex_rewrite.rewrite.is_empty() {
                errs.add(
                    &here.field("rewrite"),
                    "rewrite is required: the replacement text",
                );
            }
        }
    }
}

impl Validate for CorsPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        for (i, origin) in self.allow_origins.iter().enumerate() {
            string_match(
                origin,
                Site::Origin,
                &at.field("allowOrigins").index(i),
                errs,
            );
        }
        for (i, method) in self.allow_methods.iter().enumerate() {
            if !CORS_METHODS.contains(&method.as_str()) {
                errs.add(
                    &at.field("allowMethods").index(i),
                    format!(
                        "{method:?} is not an HTTP method; use {}",
                        CORS_METHODS.join(", ")
                    ),
                );
            }
        }
        for field in ["allowHeaders", "exposeHeaders"] {
            let list = if field == "allowHeaders" {
                &self.allow_headers
            } else {
                &self.expose_headers
            };
            for (i, name) in list.iter().enumerate() {
                if name != "*" {
                    errs.check(&at.field(field).index(i), validate::header_name(name));
                }
            }
        }
        if let Some(max_age) = self.max_age {
            let d = max_age.as_std();
            if d.as_secs() == 0 || d.subsec_nanos() != 0 {
                errs.add(
                    &at.field("maxAge"),
                    format!("maxAge {max_age} must be a whole number of seconds, at least 1s"),
                );
            }
        }
    }
}

impl Validate for HttpFaultInjection {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.delay.is_none() && self.abort.is_none() {
            errs.add(at, "a fault needs a delay, an abort or both");
        }
        self.delay.validate(&at.field("delay"), errs);
        self.abort.validate(&at.field("abort"), errs);
    }
}

impl Validate for Delay {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(percent) = self.percent.filter(|p| !(0..=100).contains(p)) {
            errs.add(
                &at.field("percent"),
                format!("percent {percent} must be between 0 and 100"),
            );
        }
        errs.check(
            at,
            validate::one_of(&[
                ("fixedDelay", self.fixed_delay.is_some()),
                ("exponentialDelay", self.exponential_delay.is_some()),
            ]),
        );
        if self.exponential_delay.is_some() {
            errs.add(
                &at.field("exponentialDelay"),
                "exponentialDelay is not supported; use fixedDelay",
            );
        } else if let Some(delay) = self.fixed_delay {
            errs.check(&at.field("fixedDelay"), validate::duration_ms(delay));
        } else {
            errs.add(at, "a delay needs fixedDelay");
        }
        fault_percentage(self.percentage.as_ref(), at, errs);
    }
}

impl Validate for Abort {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let chosen = [
            ("httpStatus", self.http_status.is_some()),
            ("grpcStatus", self.grpc_status.is_some()),
            ("http2Error", self.http2_error.is_some()),
        ];
        if let Err(reason) = validate::one_of(&chosen) {
            errs.add(at, reason);
        } else if let Some(status) = self.http_status {
            if !(200..=599).contains(&status) {
                errs.add(
                    &at.field("httpStatus"),
                    format!("httpStatus {status} must be between 200 and 599"),
                );
            }
        } else if let Some(status) = &self.grpc_status {
            if !super::GRPC_STATUSES.contains(&status.as_str()) {
                errs.add(
                    &at.field("grpcStatus"),
                    format!(
                        "grpcStatus {status:?} is not a gRPC status name; use one such as UNAVAILABLE or NOT_FOUND"
                    ),
                );
            }
        } else if self.http2_error.is_some() {
            errs.add(
                &at.field("http2Error"),
                "http2Error is not supported; use httpStatus or grpcStatus",
            );
        } else {
            errs.add(at, "an abort needs httpStatus or grpcStatus");
        }
        fault_percentage(self.percentage.as_ref(), at, errs);
    }
}

/// Fault percentages: 0, or 0.0001 to 100 (Envoy's finest step).
fn fault_percentage(percentage: Option<&Percent>, at: &Path, errs: &mut Errors) {
    let Some(percentage) = percentage else {
        return;
    };
    let here = at.field("percentage").field("value");
    let value = percentage.value;
    if let Err(reason) = validate::percent(value) {
        errs.add(&here, reason);
    } else if value > 0.0 && value < 0.0001 {
        errs.add(
            &here,
            format!(
                "percentage {value} is below the finest step, 0.0001; use 0 or at least 0.0001"
            ),
        );
    }
}

fn tls_route(route: &TlsRoute, scope: &Scope, at: &Path, errs: &mut Errors) {
    if route.r#match.is_empty() {
        errs.add(
            &at.field("match"),
            "a TLS route needs at least one match with sniHosts",
        );
    }
    for (i, m) in route.r#match.iter().enumerate() {
        tls_match(m, scope, &at.field("match").index(i), errs);
    }
    route_destinations(&route.route, "TLS", &at.field("route"), errs);
}

fn tls_match(m: &TlsMatchAttributes, scope: &Scope, at: &Path, errs: &mut Errors) {
    if m.sni_hosts.is_empty() {
        errs.add(
            &at.field("sniHosts"),
            "a TLS match needs at least one SNI host",
        );
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        let here = at.field("sniHosts").index(i);
        if sni.parse::<IpAddr>().is_ok() {
            continue;
        }
        if let Err(reason) = virtual_host(sni, scope.gateway_only) {
            errs.add(&here, reason);
        } else if !scope.hosts.is_empty() && !scope.hosts.iter().any(|h| host_within(sni, h)) {
            errs.add(
                &here,
                format!(
                    "SNI host {sni:?} does not fall within any of the VirtualService hosts [{}]",
                    scope.hosts.join(", ")
                ),
            );
        }
    }
    subnets(
        &m.destination_subnets,
        &at.field("destinationSubnets"),
        errs,
    );
    match_selectors(
        m.port,
        &m.source_labels,
        &m.gateways,
        &m.source_namespace,
        at,
        errs,
    );
}

fn tcp_route(route: &TcpRoute, at: &Path, errs: &mut Errors) {
    for (i, m) in route.r#match.iter().enumerate() {
        l4_match(m, &at.field("match").index(i), errs);
    }
    route_destinations(&route.route, "TCP", &at.field("route"), errs);
}

fn l4_match(m: &L4MatchAttributes, at: &Path, errs: &mut Errors) {
    subnets(
        &m.destination_subnets,
        &at.field("destinationSubnets"),
        errs,
    );
    if !m.source_subnet.is_empty() {
        errs.check(
            &at.field("sourceSubnet"),
            validate::ip_or_cidr(&m.source_subnet),
        );
    }
    match_selectors(
        m.port,
        &m.source_labels,
        &m.gateways,
        &m.source_namespace,
        at,
        errs,
    );
}

fn route_destinations(route: &[RouteDestination], kind: &str, at: &Path, errs: &mut Errors) {
    if route.is_empty() {
        errs.add(at, format!("a {kind} route needs at least one destination"));
    }
    for (i, destination) in route.iter().enumerate() {
        destination
            .destination
            .validate(&at.index(i).field("destination"), errs);
    }
    let weights: Vec<Option<i32>> = route.iter().map(|d| d.weight).collect();
    check_weights(&weights, at, errs);
}

fn subnets(list: &[String], at: &Path, errs: &mut Errors) {
    for (i, subnet) in list.iter().enumerate() {
        errs.check(&at.index(i), validate::ip_or_cidr(subnet));
    }
}

/// A DNS name of DNS-1123 labels: at most 255 characters, a trailing dot
/// allowed, and a last label that is not all digits.
fn dns_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 characters".into());
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if let Some(bad) = trimmed
        .split('.')
        .find(|label| !validate::is_dns_label(label))
    {
        return Err(format!("label {bad:?} is not a DNS label"));
    }
    let last = trimmed.rsplit('.').next().unwrap_or(trimmed);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the last label {last:?} cannot be all digits"));
    }
    Ok(())
}
