//! AuthorizationPolicy, translated as istiod does into Envoy filters on a
//! workload's inbound chains, in istiod's order: CUSTOM (see [`custom`]),
//! then `jwt_authn` (when a RequestAuthentication applies), then one RBAC
//! filter per action: AUDIT (`action: LOG`, which only marks requests for
//! the access log), DENY, ALLOW. Each holds a policy per rule
//! (`ns[<ns>]-policy[<name>]-rule[<i>]`).
//!
//! - Which policies apply: those of the root namespace (mesh-wide; with a
//!   selector, to the workloads it selects in every namespace), those of
//!   the workload's namespace without a selector, and those whose selector
//!   matches its labels.
//! - A rule matches when one of its `from`, one of its `to` and all of its
//!   `when` match; inside a source or operation all fields must match, and
//!   one of a field's values. No ALLOW policy: everything is allowed; some
//!   ALLOW policy: a request must match one of its rules. `spec: {}`
//!   (ALLOW, no rules) allows nothing; `rules: [{}]` allows everything.
//! - Values: principals `cluster.local/ns/default/sa/x` (the SPIFFE id
//!   without `spiffe://`), namespaces, IP blocks, hosts, ports, methods and
//!   paths, each exact or with one `*` at the start or end, or `*` alone.
//! - JWT fields (`requestPrincipals`, `request.auth.principal`,
//!   `request.auth.audiences`, `request.auth.presenter`,
//!   `request.auth.claims[...]`) match what `jwt_authn` verified (see
//!   [`jwt`]); a request without a token has no principal or claims.
//! - What cannot be checked on the connection (HTTP fields, JWT fields
//!   included, on a TCP port) never widens access: an ALLOW rule using it
//!   is dropped (it matches nothing), a DENY, AUDIT or CUSTOM rule loses
//!   the field (it matches more), as istiod does for TCP.
//!
//! A policy annotated `istio.io/dry-run: "true"` decides nothing: as
//! istiod does, its rules go into the shadow rules of its action's RBAC
//! filter (stats and metadata prefixed `istio_dry_run_allow_` or
//! `istio_dry_run_deny_`), next to the enforced policies' rules. With only
//! dry-run policies for an action the filter has no rules, and lets
//! everything through.
//!
//! Left out: `targetRef(s)`, `trustDomains`, dry-run on CUSTOM policies
//! (they are enforced); `destination.ip` is matched as written.

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    Permission, Policy, Principal, Rbac, permission, principal, rbac,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    PathMatcher, RegexMatcher, StringMatcher, path_matcher, string_matcher,
};
use mesh_api::load::Resource;
use mesh_api::security::authorization_policy::{
    Action, AuthorizationPolicySpec, Condition, Operation, Rule, Source,
};

use super::context::Context;
use super::proto::{any, u32v};
use crate::model::{MeshSnapshot, Proxy};

mod custom;
mod jwt;

pub use custom::{PolicyProblem, problems};

/// The filters that decide what reaches a workload: RBAC on its inbound
/// chains, external authorization, and the `jwt_authn` filter whose
/// verified tokens they read.
#[derive(Debug, Default)]
pub struct Authorization {
    /// For HTTP connection managers, ahead of the router, in order.
    pub http: Vec<HttpFilter>,
    /// For TCP chains, ahead of `tcp_proxy`.
    pub tcp: Vec<Filter>,
}

/// An AuthorizationPolicy that applies.
#[derive(Debug, Clone, Copy)]
struct Applying<'a> {
    namespace: &'a str,
    name: &'a str,
    spec: &'a AuthorizationPolicySpec,
    /// `istio.io/dry-run` is `true`: the policy's rules are shadow rules.
    dry_run: bool,
}

/// The annotation that makes a policy a dry run.
const DRY_RUN: &str = "istio.io/dry-run";

/// The filters the policies applying to the proxy's workload make.
pub fn inbound(ctx: &Context) -> Authorization {
    let policies = applying(ctx.proxy, ctx.snapshot);
    let mut out = Authorization::default();
    custom::filters(ctx.snapshot, &policies, &mut out);
    out.http.extend(super::request_authentication::filter(ctx));
    for (action, rbac_action) in [
        (Action::Audit, rbac::Action::Log),
        (Action::Deny, rbac::Action::Deny),
        (Action::Allow, rbac::Action::Allow),
    ] {
        let chosen = with_action(&policies, action);
        if chosen.is_empty() {
            continue;
        }
        let (dry_run, enforced): (Vec<_>, Vec<_>) = chosen.into_iter().partition(|p| p.dry_run);
        let rules = |policies: &[Applying<'_>], http| {
            (!policies.is_empty()).then(|| Rbac {
                action: rbac_action as i32,
                policies: rule_policies(policies, http, ""),
                ..Rbac::default()
            })
        };
        let prefix = dry_run_prefix(action);
        out.http.push(http_rbac(
            rules(&enforced, true),
            rules(&dry_run, true),
            prefix,
        ));
        out.tcp.push(network_rbac(
            rules(&enforced, false),
            rules(&dry_run, false),
            prefix,
        ));
    }
    out
}

/// Where a dry run's results go, as Envoy prefixes the shadow rules' stats
/// and metadata; istiod names none for AUDIT.
fn dry_run_prefix(action: Action) -> &'static str {
    match action {
        Action::Allow => "istio_dry_run_allow_",
        Action::Deny => "istio_dry_run_deny_",
        _ => "",
    }
}

/// The policies with this action.
fn with_action<'a>(policies: &[Applying<'a>], action: Action) -> Vec<Applying<'a>> {
    policies
        .iter()
        .filter(|p| p.spec.action.unwrap_or_default() == action)
        .copied()
        .collect()
}

/// A policy per rule of `policies` that can be checked here, named
/// `<prefix>ns[<ns>]-policy[<name>]-rule[<i>]`.
fn rule_policies(
    policies: &[Applying<'_>],
    http: bool,
    prefix: &str,
) -> std::collections::HashMap<String, Policy> {
    policies
        .iter()
        .flat_map(|p| {
            let action = p.spec.action.unwrap_or_default();
            p.spec
                .rules
                .iter()
                .enumerate()
                .filter_map(move |(i, rule)| {
                    let policy = translate_rule(rule, action, http)?;
                    let name = format!("{prefix}ns[{}]-policy[{}]-rule[{i}]", p.namespace, p.name);
                    Some((name, policy))
                })
        })
        .collect()
}

/// `envoy.filters.http.rbac` with these rules and shadow rules.
fn http_rbac(rules: Option<Rbac>, shadow: Option<Rbac>, shadow_prefix: &str) -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.rbac".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&HttpRbac {
            rules,
            shadow_rules: shadow,
            shadow_rules_stat_prefix: shadow_prefix.into(),
            ..HttpRbac::default()
        }))),
        ..HttpFilter::default()
    }
}

/// `envoy.filters.network.rbac` with these rules and shadow rules.
fn network_rbac(rules: Option<Rbac>, shadow: Option<Rbac>, shadow_prefix: &str) -> Filter {
    Filter {
        name: "envoy.filters.network.rbac".into(),
        config_type: Some(filter::ConfigType::TypedConfig(any(&NetworkRbac {
            rules,
            shadow_rules: shadow,
            shadow_rules_stat_prefix: shadow_prefix.into(),
            stat_prefix: "tcp.".into(),
            ..NetworkRbac::default()
        }))),
    }
}

/// The policies that apply to the proxy, in config order.
fn applying<'a>(proxy: &Proxy, snapshot: &'a MeshSnapshot) -> Vec<Applying<'a>> {
    let root = snapshot.mesh.root_namespace.as_str();
    translated(snapshot)
        .filter(|p| {
            let selected = p
                .spec
                .selector
                .as_ref()
                .is_none_or(|s| s.matches(&proxy.labels));
            (p.namespace == root || p.namespace == proxy.namespace) && selected
        })
        .collect()
}

/// Every policy this translation reads: those without `targetRef(s)`.
fn translated(snapshot: &MeshSnapshot) -> impl Iterator<Item = Applying<'_>> {
    snapshot
        .config
        .iter()
        .filter_map(|resource| match resource.as_ref() {
            Resource::AuthorizationPolicy(policy) => Some(Applying {
                namespace: resource.namespace(),
                name: resource.name(),
                spec: &policy.spec,
                dry_run: dry_run(resource.metadata().annotations.as_ref()),
            }),
            _ => None,
        })
        .filter(|p| p.spec.target_ref.is_none() && p.spec.target_refs.is_empty())
}

/// Whether `istio.io/dry-run` is true, read as istiod reads it (Go's
/// `strconv.ParseBool`); any other value leaves the policy enforced.
fn dry_run(annotations: Option<&std::collections::BTreeMap<String, String>>) -> bool {
    let value = annotations.and_then(|a| a.get(DRY_RUN)).map(String::as_str);
    matches!(value, Some("1" | "t" | "T" | "true" | "TRUE" | "True"))
}

/// Whether a field can be checked here, and what to do when it cannot.
struct Scope {
    http: bool,
    action: Action,
}

impl Scope {
    /// `Some(rule)` to use, `None` when the field cannot be checked: for
    /// ALLOW the whole rule is dropped (`Err`), for the other actions the
    /// field (`Ok(None)`).
    fn checkable<T>(&self, can: bool, build: impl FnOnce() -> T) -> Result<Option<T>, Dropped> {
        match (can, self.action) {
            (true, _) => Ok(Some(build())),
            (false, Action::Allow) => Err(Dropped),
            (false, _) => Ok(None),
        }
    }
}

/// An ALLOW rule that cannot be checked here and so matches nothing.
struct Dropped;

fn translate_rule(rule: &Rule, action: Action, http: bool) -> Option<Policy> {
    let scope = Scope { http, action };
    let mut permissions = Vec::new();
    let mut principals = Vec::new();
    let to: Vec<Permission> = rule
        .to
        .iter()
        .filter_map(|to| to.operation.as_ref())
        .map(|op| operation(op, &scope))
        .collect::<Result<_, _>>()
        .ok()?;
    if !to.is_empty() {
        permissions.push(or_rules(to));
    }
    let from: Vec<Principal> = rule
        .from
        .iter()
        .filter_map(|from| from.source.as_ref())
        .map(|source| self::source(source, &scope))
        .collect::<Result<_, _>>()
        .ok()?;
    if !from.is_empty() {
        principals.push(or_ids(from));
    }
    for condition in &rule.when {
        match when(condition, &scope).ok()? {
            Some(Either::Permission(p)) => permissions.push(p),
            Some(Either::Principal(p)) => principals.push(p),
            None => {}
        }
    }
    Some(Policy {
        permissions: vec![and_rules(permissions)],
        principals: vec![and_ids(principals)],
        ..Policy::default()
    })
}

fn operation(op: &Operation, scope: &Scope) -> Result<Permission, Dropped> {
    let mut all = Vec::new();
    let mut field = |values: &[String],
                     negate: bool,
                     http_only: bool,
                     each: &dyn Fn(&str) -> Permission|
     -> Result<(), Dropped> {
        if values.is_empty() {
            return Ok(());
        }
        if let Some(p) = scope.checkable(!http_only || scope.http, || {
            or_rules(values.iter().map(|v| each(v)).collect())
        })? {
            all.push(if negate { not_rule(p) } else { p });
        }
        Ok(())
    };
    field(&op.hosts, false, true, &|v| {
        header_permission(":authority", v)
    })?;
    field(&op.not_hosts, true, true, &|v| {
        header_permission(":authority", v)
    })?;
    field(&op.methods, false, true, &|v| {
        header_permission(":method", v)
    })?;
    field(&op.not_methods, true, true, &|v| {
        header_permission(":method", v)
    })?;
    field(&op.paths, false, true, &path_permission)?;
    field(&op.not_paths, true, true, &path_permission)?;
    field(&op.ports, false, false, &port_permission)?;
    field(&op.not_ports, true, false, &port_permission)?;
    Ok(and_rules(all))
}

fn source(source: &Source, scope: &Scope) -> Result<Principal, Dropped> {
    let mut all = Vec::new();
    let mut field = |values: &[String],
                     negate: bool,
                     can: bool,
                     each: &dyn Fn(&str) -> Principal|
     -> Result<(), Dropped> {
        if values.is_empty() {
            return Ok(());
        }
        if let Some(p) =
            scope.checkable(can, || or_ids(values.iter().map(|v| each(v)).collect()))?
        {
            all.push(if negate { not_id(p) } else { p });
        }
        Ok(())
    };
    field(&source.principals, false, true, &principal_name)?;
    field(&source.not_principals, true, true, &principal_name)?;
    field(&source.namespaces, false, true, &namespace)?;
    field(&source.not_namespaces, true, true, &namespace)?;
    field(&source.service_accounts, false, true, &service_account)?;
    field(&source.not_service_accounts, true, true, &service_account)?;
    field(&source.ip_blocks, false, true, &|v| ip(v, false))?;
    field(&source.not_ip_blocks, true, true, &|v| ip(v, false))?;
    field(&source.remote_ip_blocks, false, true, &|v| ip(v, true))?;
    field(&source.not_remote_ip_blocks, true, true, &|v| ip(v, true))?;
    field(
        &source.request_principals,
        false,
        scope.http,
        &jwt::request_principal,
    )?;
    field(
        &source.not_request_principals,
        true,
        scope.http,
        &jwt::request_principal,
    )?;
    field(&source.trust_domains, false, false, &|_| any_principal())?;
    field(&source.not_trust_domains, true, false, &|_| any_principal())?;
    Ok(and_ids(all))
}

enum Either {
    Permission(Permission),
    Principal(Principal),
}

fn when(condition: &Condition, scope: &Scope) -> Result<Option<Either>, Dropped> {
    let key = condition.key.as_str();
    let header = key
        .strip_prefix("request.headers[")
        .and_then(|rest| rest.strip_suffix(']'));
    let build = |each: &dyn Fn(&str) -> Either| -> (Vec<Either>, Vec<Either>) {
        (
            condition.values.iter().map(|v| each(v)).collect(),
            condition.not_values.iter().map(|v| each(v)).collect(),
        )
    };
    let claims = match key {
        "request.auth.audiences" => Some(vec!["aud"]),
        "request.auth.presenter" => Some(vec!["azp"]),
        _ => key
            .strip_prefix("request.auth.claims")
            .and_then(jwt::claim_path),
    };
    let (values, not_values, can) = match (key, header) {
        (_, Some(name)) => {
            let (v, n) = build(&|v| Either::Principal(header_principal(name, v)));
            (v, n, scope.http)
        }
        ("request.auth.principal", _) => {
            let (v, n) = build(&|v| Either::Principal(jwt::request_principal(v)));
            (v, n, scope.http)
        }
        (_, None) if claims.is_some() => {
            let path = claims.as_deref().unwrap_or_default();
            let (v, n) = build(&|v| Either::Principal(jwt::claim(path, v)));
            (v, n, scope.http)
        }
        ("source.ip", _) => {
            let (v, n) = build(&|v| Either::Principal(ip(v, false)));
            (v, n, true)
        }
        ("remote.ip", _) => {
            let (v, n) = build(&|v| Either::Principal(ip(v, true)));
            (v, n, true)
        }
        ("source.namespace", _) => {
            let (v, n) = build(&|v| Either::Principal(namespace(v)));
            (v, n, true)
        }
        ("source.principal", _) => {
            let (v, n) = build(&|v| Either::Principal(principal_name(v)));
            (v, n, true)
        }
        ("destination.port", _) => {
            let (v, n) = build(&|v| Either::Permission(port_permission(v)));
            (v, n, true)
        }
        ("connection.sni", _) => {
            let (v, n) = build(&|v| {
                Either::Permission(Permission {
                    rule: Some(permission::Rule::RequestedServerName(string(v))),
                })
            });
            (v, n, true)
        }
        ("destination.ip", _) => {
            let (v, n) = build(&|v| {
                Either::Permission(Permission {
                    rule: Some(permission::Rule::DestinationIp(cidr(v))),
                })
            });
            (v, n, true)
        }
        // source.serviceAccount, experimental keys: not checked.
        _ => (Vec::new(), Vec::new(), false),
    };
    if !can {
        return scope.checkable(false, || ()).map(|_| None);
    }
    let permissions = values.iter().all(|e| matches!(e, Either::Permission(_)))
        && not_values
            .iter()
            .all(|e| matches!(e, Either::Permission(_)));
    let mut parts = Vec::new();
    if !values.is_empty() {
        parts.push((values, false));
    }
    if !not_values.is_empty() {
        parts.push((not_values, true));
    }
    Ok(Some(if permissions {
        Either::Permission(and_rules(
            parts
                .into_iter()
                .map(|(v, negate)| {
                    let p = or_rules(v.into_iter().filter_map(as_permission).collect());
                    if negate { not_rule(p) } else { p }
                })
                .collect(),
        ))
    } else {
        Either::Principal(and_ids(
            parts
                .into_iter()
                .map(|(v, negate)| {
                    let p = or_ids(v.into_iter().filter_map(as_principal).collect());
                    if negate { not_id(p) } else { p }
                })
                .collect(),
        ))
    }))
}

fn as_permission(e: Either) -> Option<Permission> {
    match e {
        Either::Permission(p) => Some(p),
        Either::Principal(_) => None,
    }
}

fn as_principal(e: Either) -> Option<Principal> {
    match e {
        Either::Principal(p) => Some(p),
        Either::Permission(_) => None,
    }
}

// --- building blocks ---------------------------------------------------------

fn and_rules(rules: Vec<Permission>) -> Permission {
    if rules.is_empty() {
        return Permission {
            rule: Some(permission::Rule::Any(true)),
        };
    }
    Permission {
        rule: Some(permission::Rule::AndRules(permission::Set { rules })),
    }
}

fn or_rules(rules: Vec<Permission>) -> Permission {
    Permission {
        rule: Some(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn not_rule(rule: Permission) -> Permission {
    Permission {
        rule: Some(permission::Rule::NotRule(Box::new(rule))),
    }
}

fn and_ids(ids: Vec<Principal>) -> Principal {
    if ids.is_empty() {
        return any_principal();
    }
    Principal {
        identifier: Some(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn or_ids(ids: Vec<Principal>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn not_id(id: Principal) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::NotId(Box::new(id))),
    }
}

fn any_principal() -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Any(true)),
    }
}

/// A value with Istio's wildcards: `*`, `prefix*`, `*suffix`, or exact.
fn string(value: &str) -> StringMatcher {
    use string_matcher::MatchPattern as P;
    let pattern = if value == "*" {
        P::SafeRegex(RegexMatcher {
            regex: ".+".into(),
            ..RegexMatcher::default()
        })
    } else if let Some(prefix) = value.strip_suffix('*') {
        P::Prefix(prefix.into())
    } else if let Some(suffix) = value.strip_prefix('*') {
        P::Suffix(suffix.into())
    } else {
        P::Exact(value.into())
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ..StringMatcher::default()
    }
}

fn header_permission(name: &str, value: &str) -> Permission {
    Permission {
        rule: Some(permission::Rule::Header(header(name, value))),
    }
}

fn header_principal(name: &str, value: &str) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Header(header(name, value))),
    }
}

fn header(name: &str, value: &str) -> HeaderMatcher {
    HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(string(
            value,
        ))),
        ..HeaderMatcher::default()
    }
}

/// A path: `*` is any path, `/a/*` a prefix, `*.html` a suffix.
fn path_permission(value: &str) -> Permission {
    Permission {
        rule: Some(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string(value))),
        })),
    }
}

fn port_permission(value: &str) -> Permission {
    match value.parse::<u32>() {
        Ok(port) => Permission {
            rule: Some(permission::Rule::DestinationPort(port)),
        },
        // Validation refuses such ports; here it simply matches nothing.
        Err(_) => not_rule(Permission {
            rule: Some(permission::Rule::Any(true)),
        }),
    }
}

/// A principal as AuthorizationPolicy writes it, matched against the
/// client certificate's SPIFFE id; `*` is any authenticated client.
fn principal_name(value: &str) -> Principal {
    let matcher = if value == "*" {
        None
    } else if let Some(suffix) = value.strip_prefix('*') {
        Some(string(&format!("*{suffix}")))
    } else {
        Some(string(&format!("spiffe://{value}")))
    };
    authenticated(matcher)
}

fn authenticated(principal_name: Option<StringMatcher>) -> Principal {
    Principal {
        identifier: Some(principal::Identifier::Authenticated(
            principal::Authenticated { principal_name },
        )),
    }
}

fn regex(pattern: String) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(RegexMatcher {
            regex: pattern,
            ..RegexMatcher::default()
        })),
        ..StringMatcher::default()
    }
}

/// The SPIFFE ids of a namespace: `.*/ns/<namespace>/.*`, with Istio's
/// wildcards inside the namespace segment.
fn namespace(value: &str) -> Principal {
    authenticated(Some(regex(format!(".*/ns/{}/.*", segment(value)))))
}

/// `namespace/service-account`.
fn service_account(value: &str) -> Principal {
    let (ns, sa) = value.split_once('/').unwrap_or(("", value));
    authenticated(Some(regex(format!(
        ".*/ns/{}/sa/{}",
        segment(ns),
        segment(sa)
    ))))
}

fn segment(value: &str) -> String {
    if value == "*" {
        return "[^/]+".into();
    }
    match (value.strip_prefix('*'), value.strip_suffix('*')) {
        (Some(suffix), _) => format!("[^/]*{}", regex_escape(suffix)),
        (_, Some(prefix)) => format!("{}[^/]*", regex_escape(prefix)),
        _ => regex_escape(value),
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// An address or CIDR block; `remote` reads the client as forwarded.
fn ip(value: &str, remote: bool) -> Principal {
    let range = cidr(value);
    Principal {
        identifier: Some(if remote {
            principal::Identifier::RemoteIp(range)
        } else {
            principal::Identifier::DirectRemoteIp(range)
        }),
    }
}

fn cidr(value: &str) -> CidrRange {
    let (address, len) = match value.split_once('/') {
        Some((address, len)) => (address, len.parse().ok()),
        None => (value, None),
    };
    let max = if address.contains(':') { 128 } else { 32 };
    CidrRange {
        address_prefix: address.into(),
        prefix_len: u32v(len.unwrap_or(max)),
    }
}

#[cfg(test)]
mod tests;
