//! One VirtualService HTTP rule as Envoy routes, the way istiod writes it:
//! one route per `match` entry (or one catch-all), each with the rule's
//! action, retries, timeout, fault, mirrors, header changes and CORS.

use base64::Engine;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, HeaderValue, HeaderValueOption, Metadata, RuntimeFractionalPercent, data_source,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    Decorator, DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction,
    RetryPolicy, Route, RouteAction, RouteMatch, WeightedCluster, header_matcher,
    query_parameter_matcher, redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use mesh_api::names::{ClusterName, fqdn};
use mesh_api::networking::virtual_service::{
    CorsPolicy, Destination, HeaderOperations, Headers, HttpFaultInjection, HttpMatchRequest,
    HttpRedirect, HttpRetry, HttpRoute, Percent, RedirectPortSelection, StringMatch,
    StringMatchKind, UnmatchedPreflights, VirtualServiceSpec,
};

use super::context::{Config, Context, selects};
use super::filters::{CORS, FAULT};
use super::policy::{self, Policy};
use super::proto::{any, boolv, duration, seconds, structure, u32v};

/// Istio's retry conditions when a route sets none.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's retries when a route sets none.
pub const DEFAULT_RETRIES: u32 = 2;
/// How many picks a retry may spend looking for a host not yet tried.
const HOST_SELECTION_ATTEMPTS: i64 = 5;
const PREVIOUS_HOSTS: &str = "envoy.retry_host_predicates.previous_hosts";

/// What routes are built for: sidecars (the `mesh` gateway of
/// VirtualServices) or one Gateway, named `<namespace>/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound<'a> {
    Mesh,
    Gateway(&'a str),
}

impl Bound<'_> {
    /// Whether a `gateways` list written in a VirtualService of `namespace`
    /// names this: `mesh`, or the gateway as `<ns>/<name>` or as a name in
    /// the VirtualService's own namespace.
    pub fn named_in(self, gateways: &[String], namespace: &str) -> bool {
        gateways.iter().any(|g| match self {
            Bound::Mesh => g == "mesh",
            Bound::Gateway(full) => match g.split_once('/') {
                Some(_) => g == full,
                None => full.split_once('/') == Some((namespace, g.as_str())),
            },
        })
    }
}

/// The routes of one VirtualService for a sidecar's virtual host on `port`.
pub fn routes(ctx: &Context, vs: Config<VirtualServiceSpec>, port: u16) -> Vec<Route> {
    bound_routes(ctx, vs, port, Bound::Mesh)
}

/// The routes of one VirtualService on `port` of what `bound` names.
pub fn bound_routes(
    ctx: &Context,
    vs: Config<VirtualServiceSpec>,
    port: u16,
    bound: Bound,
) -> Vec<Route> {
    let metadata = config_metadata(vs);
    vs.spec
        .http
        .iter()
        .filter(|rule| rule.delegate.is_none())
        .filter_map(|rule| {
            let matches = applicable_matches(ctx, rule, port, bound, vs.namespace)?;
            let built = Rule {
                ctx,
                vs,
                rule,
                port,
            };
            Some(built.routes(&matches, &metadata))
        })
        .flatten()
        .collect()
}

/// The rule's matches that can apply to this proxy on this port; `None`
/// when the rule has matches and none applies, `Some(empty)` when the rule
/// matches everything.
fn applicable_matches<'r>(
    ctx: &Context,
    rule: &'r HttpRoute,
    port: u16,
    bound: Bound,
    namespace: &str,
) -> Option<Vec<&'r HttpMatchRequest>> {
    if rule.r#match.is_empty() {
        return Some(Vec::new());
    }
    let proxy = ctx.proxy;
    let kept: Vec<&HttpMatchRequest> = rule
        .r#match
        .iter()
        .filter(|m| m.gateways.is_empty() || bound.named_in(&m.gateways, namespace))
        .filter(|m| selects(&m.source_labels, &proxy.labels))
        .filter(|m| m.source_namespace.is_empty() || m.source_namespace == proxy.namespace)
        .filter(|m| m.port.is_none_or(|p| p == u32::from(port)))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

fn config_metadata(vs: Config<VirtualServiceSpec>) -> Metadata {
    let path = format!(
        "/apis/networking.istio.io/v1/namespaces/{}/virtual-service/{}",
        vs.namespace, vs.name
    );
    Metadata {
        filter_metadata: [(
            "istio".to_owned(),
            structure(serde_json::json!({ "config": path })),
        )]
        .into(),
        ..Metadata::default()
    }
}

struct Rule<'a> {
    ctx: &'a Context<'a>,
    vs: Config<'a, VirtualServiceSpec>,
    rule: &'a HttpRoute,
    port: u16,
}

impl Rule<'_> {
    fn routes(&self, matches: &[&HttpMatchRequest], metadata: &Metadata) -> Vec<Route> {
        let template = self.template(metadata);
        if matches.is_empty() {
            let mut route = template;
            route.r#match = Some(catch_all());
            return vec![route];
        }
        matches
            .iter()
            .map(|m| {
                let mut route = template.clone();
                route.r#match = Some(route_match(m));
                if !m.name.is_empty() {
                    route.name = if route.name.is_empty() {
                        m.name.clone()
                    } else {
                        format!("{}.{}", route.name, m.name)
                    };
                }
                route
            })
            .collect()
    }

    /// Everything but the match.
    fn template(&self, metadata: &Metadata) -> Route {
        let rule = self.rule;
        let mut out = Route {
            name: rule.name.clone(),
            metadata: Some(metadata.clone()),
            ..Route::default()
        };
        let mut rewrite_host = None;
        if let Some(headers) = &rule.headers {
            rewrite_host = apply_headers(&mut out, headers);
        }
        if let Some(redirect) = &rule.redirect {
            out.action = Some(route::Action::Redirect(self.redirect(redirect)));
        } else if let Some(direct) = &rule.direct_response {
            out.action = Some(route::Action::DirectResponse(DirectResponseAction {
                status: direct.status,
                body: direct
                    .body
                    .as_ref()
                    .and_then(|b| body(b.string.as_deref(), b.bytes.as_deref())),
                ..DirectResponseAction::default()
            }));
        } else {
            let mut action = self.forward(&mut out);
            if let Some(host) = rewrite_host {
                action.host_rewrite_specifier =
                    Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host));
            }
            out.action = Some(route::Action::Route(action));
        }
        if let Some(fault) = &rule.fault {
            out.typed_per_filter_config
                .insert(FAULT.to_owned(), any(&http_fault(fault)));
        }
        if let Some(cors) = &rule.cors_policy {
            out.typed_per_filter_config
                .insert(CORS.to_owned(), any(&cors_policy(cors)));
        }
        out
    }

    /// The cluster a destination names: its host, subset and port (the
    /// destination's, else the service's only port, else this route's port).
    fn cluster(&self, destination: &Destination) -> String {
        let host = fqdn(&destination.host, self.vs.namespace, self.ctx.domain());
        let port = destination
            .port
            .as_ref()
            .and_then(|p| u16::try_from(p.number).ok())
            .or_else(|| {
                let service = self.ctx.service(&host)?;
                match service.ports.as_slice() {
                    [only] => Some(only.number),
                    _ => None,
                }
            })
            .unwrap_or(self.port);
        ClusterName::outbound(port, &destination.subset, &host).to_string()
    }

    /// The DestinationRule policy of a destination's cluster.
    fn destination_policy(&self, destination: &Destination) -> Policy {
        let cluster: ClusterName = self
            .cluster(destination)
            .parse()
            .expect("cluster names built here parse");
        destination_policy(self.ctx, &cluster.host, &cluster.subset, cluster.port)
    }

    fn forward(&self, out: &mut Route) -> RouteAction {
        let rule = self.rule;
        let destinations: Vec<_> = if rule.route.len() > 1 {
            rule.route
                .iter()
                .filter(|d| d.weight.is_none_or(|w| w > 0))
                .collect()
        } else {
            rule.route.iter().collect()
        };
        let mut action = RouteAction::default();
        match destinations.as_slice() {
            [only] => {
                action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(
                    self.cluster(&only.destination),
                ));
                if let Some(headers) = &only.headers
                    && let Some(host) = apply_headers(out, headers)
                {
                    action.host_rewrite_specifier =
                        Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(host));
                }
            }
            many => {
                let clusters = many
                    .iter()
                    .map(|d| {
                        let mut weighted = ClusterWeight {
                            name: self.cluster(&d.destination),
                            weight: u32v(d.weight.unwrap_or(0).max(0) as u32),
                            ..ClusterWeight::default()
                        };
                        if let Some(headers) = &d.headers {
                            weighted_headers(&mut weighted, headers);
                        }
                        weighted
                    })
                    .collect();
                action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
                    WeightedCluster {
                        clusters,
                        ..WeightedCluster::default()
                    },
                ));
            }
        }
        out.decorator = destinations.first().map(|d| Decorator {
            operation: format!("{}/*", self.operation_host(&d.destination)),
            ..Decorator::default()
        });
        let timeout = rule
            .timeout
            .map(|t| duration(t.as_std()))
            .unwrap_or_else(|| seconds(0));
        action.timeout = Some(timeout);
        // As istiod: a gRPC request's own deadline, capped by the timeout
        // (the deprecated field, which istiod keeps for sidecars).
        #[allow(deprecated)]
        {
            action.max_grpc_timeout = Some(timeout);
        }
        let policies: Vec<Policy> = destinations
            .iter()
            .map(|d| self.destination_policy(&d.destination))
            .collect();
        action.hash_policy = agreed_hash_policy(&policies);
        let other_hosts = policies.iter().all(policy::retry_other_hosts);
        action.retry_policy = retry(rule.retries.as_ref(), other_hosts);
        action.request_mirror_policies = self.mirrors();
        if let Some(rewrite) = &rule.rewrite {
            action.prefix_rewrite = rewrite.uri.clone();
            if let Some(regex) = &rewrite.uri_regex_rewrite {
                action.regex_rewrite = Some(RegexMatchAndSubstitute {
                    pattern: Some(regex_matcher(&regex.r#match)),
                    substitution: regex.rewrite.clone(),
                });
            }
            if !rewrite.authority.is_empty() {
                action.host_rewrite_specifier =
                    Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(
                        rewrite.authority.clone(),
                    ));
            }
        }
        action
    }

    fn operation_host(&self, destination: &Destination) -> String {
        let cluster: ClusterName = self
            .cluster(destination)
            .parse()
            .expect("cluster names built here parse");
        format!("{}:{}", cluster.host, cluster.port)
    }

    fn mirrors(&self) -> Vec<route_action::RequestMirrorPolicy> {
        let rule = self.rule;
        let single = rule.mirror.as_ref().map(|m| {
            let percent = rule
                .mirror_percentage
                .map(|p| p.value)
                .or(rule.mirror_percent.map(f64::from));
            (m, percent)
        });
        let listed = rule
            .mirrors
            .iter()
            .map(|m| (&m.destination, m.percentage.map(|p| p.value)));
        single
            .into_iter()
            .chain(listed)
            .filter(|(_, percent)| percent.is_none_or(|p| p > 0.0))
            .map(|(destination, percent)| route_action::RequestMirrorPolicy {
                cluster: self.cluster(destination),
                runtime_fraction: Some(RuntimeFractionalPercent {
                    default_value: Some(million(percent.unwrap_or(100.0))),
                    ..RuntimeFractionalPercent::default()
                }),
                trace_sampled: boolv(false),
                disable_shadow_host_suffix_append: true,
                ..route_action::RequestMirrorPolicy::default()
            })
            .collect()
    }

    fn redirect(&self, redirect: &HttpRedirect) -> RedirectAction {
        use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
        let code = match redirect.redirect_code.unwrap_or(301) {
            302 => RedirectResponseCode::Found,
            303 => RedirectResponseCode::SeeOther,
            307 => RedirectResponseCode::TemporaryRedirect,
            308 => RedirectResponseCode::PermanentRedirect,
            _ => RedirectResponseCode::MovedPermanently,
        };
        let port = match (redirect.port, redirect.derive_port) {
            (Some(port), _) => port,
            (None, Some(RedirectPortSelection::FromRequestPort)) => u32::from(self.port),
            _ => 0,
        };
        RedirectAction {
            host_redirect: redirect.authority.clone(),
            port_redirect: port,
            response_code: code as i32,
            scheme_rewrite_specifier: Some(redirect.scheme.clone())
                .filter(|s| !s.is_empty())
                .map(SchemeRewriteSpecifier::SchemeRedirect),
            path_rewrite_specifier: if !redirect.uri.is_empty() {
                Some(PathRewriteSpecifier::PathRedirect(redirect.uri.clone()))
            } else if !redirect.prefix_rewrite.is_empty() {
                Some(PathRewriteSpecifier::PrefixRewrite(
                    redirect.prefix_rewrite.clone(),
                ))
            } else {
                None
            },
            ..RedirectAction::default()
        }
    }
}

/// The DestinationRule policy for `subset` of `host` on `port`, merged as
/// for its cluster; the default policy for hosts the proxy does not see.
pub fn destination_policy(ctx: &Context, host: &str, subset: &str, port: u16) -> Policy {
    let Some(service) = ctx.service(host) else {
        return Policy::default();
    };
    let Some(rule) = ctx.destination_rule(service) else {
        return Policy::default();
    };
    let top = Policy::merge(&Policy::default(), rule.spec.traffic_policy.as_ref(), port);
    match rule.spec.subset(subset) {
        Some(s) if !subset.is_empty() => Policy::merge(&top, s.traffic_policy.as_ref(), port),
        _ => top,
    }
}

/// The hash policy of a route's destinations, when those that hash agree
/// on the key (istiod drops it when they conflict).
pub fn agreed_hash_policy(policies: &[Policy]) -> Vec<route_action::HashPolicy> {
    let mut hashes = policies
        .iter()
        .filter_map(Policy::consistent_hash)
        .filter_map(policy::hash_policy);
    let Some(first) = hashes.next() else {
        return Vec::new();
    };
    if hashes.all(|h| h == first) {
        vec![first]
    } else {
        Vec::new()
    }
}

/// A route's retry policy: Istio's default when the rule sets none, none
/// when it sets zero attempts.
pub fn retry(retries: Option<&HttpRetry>, other_hosts: bool) -> Option<RetryPolicy> {
    let mut policy = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.into(),
        num_retries: u32v(DEFAULT_RETRIES),
        host_selection_retry_max_attempts: HOST_SELECTION_ATTEMPTS,
        ..RetryPolicy::default()
    };
    let mut avoid_previous = other_hosts;
    if let Some(retries) = retries {
        let attempts = retries.attempts.unwrap_or(0);
        if attempts <= 0 {
            return None;
        }
        policy.num_retries = u32v(attempts as u32);
        if !retries.retry_on.is_empty() {
            let (conditions, codes) = retry_on(&retries.retry_on);
            policy.retry_on = conditions;
            policy.retriable_status_codes = codes;
        }
        policy.per_try_timeout = retries.per_try_timeout.map(|d| duration(d.as_std()));
        policy.retry_back_off = retries.backoff.map(|d| retry_policy::RetryBackOff {
            base_interval: Some(duration(d.as_std())),
            ..retry_policy::RetryBackOff::default()
        });
        if retries.retry_ignore_previous_hosts == Some(false) {
            avoid_previous = false;
        }
    }
    if avoid_previous {
        policy.retry_host_predicate = vec![retry_policy::RetryHostPredicate {
            name: PREVIOUS_HOSTS.into(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                any(&PreviousHostsPredicate::default()),
            )),
        }];
    }
    Some(policy)
}

/// Splits Istio's `retryOn` into Envoy's conditions and status codes: a bare
/// number is a status code, and asks for `retriable-status-codes`.
pub fn retry_on(text: &str) -> (String, Vec<u32>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u32>() {
            Ok(code) => codes.push(code),
            Err(_) if !conditions.contains(&item) => conditions.push(item),
            Err(_) => {}
        }
    }
    if !codes.is_empty() && !conditions.contains(&"retriable-status-codes") {
        conditions.push("retriable-status-codes");
    }
    (conditions.join(","), codes)
}

fn catch_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..RouteMatch::default()
    }
}

fn regex_matcher(regex: &str) -> RegexMatcher {
    RegexMatcher {
        regex: regex.to_owned(),
        ..RegexMatcher::default()
    }
}

fn string_matcher(m: &StringMatch) -> Option<StringMatcher> {
    use string_matcher::MatchPattern;
    let pattern = match m.kind()? {
        StringMatchKind::Exact(v) => MatchPattern::Exact(v.to_owned()),
        StringMatchKind::Prefix(v) => MatchPattern::Prefix(v.to_owned()),
        StringMatchKind::Regex(v) => MatchPattern::SafeRegex(regex_matcher(v)),
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

/// A header condition; an empty match asks only that the header be present.
fn header(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier;
    // `withoutHeaders` writes presence as `regex: "*"`.
    let presence = m.kind().is_none() || (invert && m.regex.as_deref() == Some("*"));
    let specifier = if presence {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(m).expect("a kind is set"))
    };
    HeaderMatcher {
        name: name.to_ascii_lowercase(),
        invert_match: invert,
        header_match_specifier: Some(specifier),
        ..HeaderMatcher::default()
    }
}

pub fn route_match(m: &HttpMatchRequest) -> RouteMatch {
    use route_match::PathSpecifier;
    let path = match m.uri.as_ref().and_then(StringMatch::kind) {
        Some(StringMatchKind::Exact(p)) => PathSpecifier::Path(p.to_owned()),
        Some(StringMatchKind::Prefix(p)) => PathSpecifier::Prefix(p.to_owned()),
        Some(StringMatchKind::Regex(r)) => PathSpecifier::SafeRegex(regex_matcher(r)),
        None => PathSpecifier::Prefix("/".into()),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (name, value) in [
        (":authority", &m.authority),
        (":method", &m.method),
        (":scheme", &m.scheme),
    ] {
        if let Some(value) = value {
            headers.push(header(name, value, false));
        }
    }
    headers.extend(
        m.headers
            .iter()
            .filter(|(name, _)| !name.starts_with("@request.auth.claims"))
            .map(|(name, value)| header(name, value, false)),
    );
    headers.extend(
        m.without_headers
            .iter()
            .map(|(name, value)| header(name, value, true)),
    );
    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, value)| {
            use query_parameter_matcher::QueryParameterMatchSpecifier;
            let specifier = match string_matcher(value) {
                Some(matcher) => QueryParameterMatchSpecifier::StringMatch(matcher),
                None => QueryParameterMatchSpecifier::PresentMatch(true),
            };
            QueryParameterMatcher {
                name: name.clone(),
                query_parameter_match_specifier: Some(specifier),
            }
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then(|| boolv(false)).flatten(),
        headers,
        query_parameters,
        ..RouteMatch::default()
    }
}

fn header_options(
    values: &std::collections::BTreeMap<String, String>,
    action: HeaderAppendAction,
) -> impl Iterator<Item = HeaderValueOption> + '_ {
    values.iter().map(move |(key, value)| HeaderValueOption {
        header: Some(HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..HeaderValue::default()
        }),
        append_action: action as i32,
        ..HeaderValueOption::default()
    })
}

/// Header lists to add: `set` overwrites, `add` appends. A request `set`
/// or `add` of `host`/`:authority` is returned instead, as the host to
/// rewrite to (istiod turns it into `host_rewrite_literal`).
fn header_lists(
    ops: &HeaderOperations,
    request: bool,
) -> (Vec<HeaderValueOption>, Vec<String>, Option<String>) {
    let is_host = |k: &str| request && (k.eq_ignore_ascii_case("host") || k == ":authority");
    let host = ops
        .set
        .iter()
        .chain(&ops.add)
        .find(|(k, _)| is_host(k))
        .map(|(_, v)| v.clone());
    let set = ops
        .set
        .iter()
        .filter(|(k, _)| !is_host(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let add = ops
        .add
        .iter()
        .filter(|(k, _)| !is_host(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut options: Vec<HeaderValueOption> =
        header_options(&set, HeaderAppendAction::OverwriteIfExistsOrAdd).collect();
    options.extend(header_options(
        &add,
        HeaderAppendAction::AppendIfExistsOrAdd,
    ));
    (options, ops.remove.clone(), host)
}

/// Adds a rule's (or a lone destination's) header changes to the route;
/// returns a host to rewrite to, if any.
fn apply_headers(route: &mut Route, headers: &Headers) -> Option<String> {
    let mut host = None;
    if let Some(request) = &headers.request {
        let (add, remove, rewrite) = header_lists(request, true);
        route.request_headers_to_add.extend(add);
        route.request_headers_to_remove.extend(remove);
        host = rewrite;
    }
    if let Some(response) = &headers.response {
        let (add, remove, _) = header_lists(response, false);
        route.response_headers_to_add.extend(add);
        route.response_headers_to_remove.extend(remove);
    }
    host
}

fn weighted_headers(cluster: &mut ClusterWeight, headers: &Headers) {
    if let Some(request) = &headers.request {
        let (add, remove, host) = header_lists(request, true);
        cluster.request_headers_to_add = add;
        cluster.request_headers_to_remove = remove;
        if let Some(host) = host {
            cluster.host_rewrite_specifier =
                Some(envoy_types::pb::envoy::config::route::v3::weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral(host));
        }
    }
    if let Some(response) = &headers.response {
        let (add, remove, _) = header_lists(response, false);
        cluster.response_headers_to_add = add;
        cluster.response_headers_to_remove = remove;
    }
}

fn body(text: Option<&str>, bytes: Option<&str>) -> Option<DataSource> {
    let specifier = match (text, bytes) {
        (Some(text), _) => data_source::Specifier::InlineString(text.to_owned()),
        (None, Some(encoded)) => data_source::Specifier::InlineBytes(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default(),
        ),
        (None, None) => return None,
    };
    Some(DataSource {
        specifier: Some(specifier),
        ..DataSource::default()
    })
}

/// A percentage (0-100, with fractions) in millionths, as istiod writes it.
pub fn million(percent: f64) -> FractionalPercent {
    FractionalPercent {
        numerator: (percent * 10_000.0).round() as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// A fault's share: `percentage` in millionths, else the deprecated whole
/// `percent` in hundredths (0 when neither is set: no request is affected).
fn fault_share(percentage: Option<Percent>, percent: Option<i32>) -> Option<FractionalPercent> {
    Some(match percentage {
        Some(p) => million(p.value),
        None => FractionalPercent {
            numerator: percent.unwrap_or(0).max(0) as u32,
            denominator: DenominatorType::Hundred as i32,
        },
    })
}

pub fn http_fault(fault: &HttpFaultInjection) -> HttpFault {
    let delay = fault.delay.as_ref().and_then(|d| {
        Some(FaultDelay {
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(
                d.fixed_delay?.as_std(),
            ))),
            percentage: fault_share(d.percentage, d.percent),
        })
    });
    let abort = fault.abort.as_ref().and_then(|a| {
        let error = if let Some(status) = a.http_status {
            fault_abort::ErrorType::HttpStatus(status as u32)
        } else {
            let name = a.grpc_status.as_deref()?;
            let code = mesh_api::networking::virtual_service::GRPC_STATUSES
                .iter()
                .position(|s| s.eq_ignore_ascii_case(name))
                .or_else(|| name.parse().ok())?;
            fault_abort::ErrorType::GrpcStatus(code as u32)
        };
        Some(FaultAbort {
            error_type: Some(error),
            percentage: fault_share(a.percentage, None),
            ..FaultAbort::default()
        })
    });
    HttpFault {
        delay,
        abort,
        ..HttpFault::default()
    }
}

pub fn cors_policy(cors: &CorsPolicy) -> EnvoyCors {
    let exact_origins = cors.allow_origin.iter().map(|o| StringMatch {
        exact: Some(o.clone()),
        ..StringMatch::default()
    });
    let origins: Vec<StringMatcher> = cors
        .allow_origins
        .iter()
        .cloned()
        .chain(exact_origins)
        .filter_map(|m| string_matcher(&m))
        .collect();
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: cors.allow_methods.join(","),
        allow_headers: cors.allow_headers.join(","),
        expose_headers: cors.expose_headers.join(","),
        max_age: cors
            .max_age
            .map(|d| d.as_std().as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: cors.allow_credentials.and_then(boolv),
        forward_not_matching_preflights: boolv(
            cors.unmatched_preflights != Some(UnmatchedPreflights::Ignore),
        ),
        ..EnvoyCors::default()
    }
}
