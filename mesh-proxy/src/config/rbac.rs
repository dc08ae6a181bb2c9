//! Role-based access control, as Envoy's RBAC filters
//! (`envoy.filters.http.rbac`, `envoy.filters.network.rbac`) and Istio's
//! AuthorizationPolicy translated into them.
//!
//! A filter holds policies and an action: with ALLOW a request passes when
//! some policy matches it, with DENY when none does, and with LOG always
//! (a match sets `access_log_hint: true` under `envoy.common` in the
//! dynamic metadata, no match `false`: Istio's AUDIT). A policy matches
//! when one of its permissions (what is asked: path, method, host, port,
//! SNI) and one of its principals (who asks: the client certificate's URI
//! SAN, addresses, headers) match; policies are tried in name order and
//! the first match is the effective one. Several filters apply in their
//! order; a request must pass each. A denied HTTP request gets 403 `RBAC:
//! access denied`; a denied TCP connection is closed.
//!
//! `shadow_rules` are evaluated and never enforced: the filter writes
//! `<shadow_rules_stat_prefix>shadow_effective_policy_id` (the first
//! matching policy, when one matches) and
//! `<shadow_rules_stat_prefix>shadow_engine_result` (`allowed` or
//! `denied`) into its metadata namespace (`envoy.filters.http.rbac` or
//! `envoy.filters.network.rbac`), where Istio's CUSTOM action has
//! `ext_authz` look for them. A filter without `rules` enforces nothing.
//!
//! Supported: `and_rules`/`or_rules`/`not_rule`/`any`, `header`,
//! `url_path`, `destination_port`, `destination_port_range`,
//! `destination_ip`, `requested_server_name`; principals `and_ids`/`or_ids`/
//! `not_id`/`any`, `authenticated` (the URI SAN), `direct_remote_ip`,
//! `source_ip`, `remote_ip` (the same address: the proxy does not read
//! `x-forwarded-for` for it), `header`, `url_path`; `metadata` in both
//! (the request's dynamic metadata, see [`super::metadata`]: what
//! `jwt_authn` verified, for Istio's request principals and claims).
//! Matchers (`matcher`, `shadow_matcher`), CEL conditions, per-rule stats,
//! `delay_deny` and `CONTINUOUS` enforcement are refused by field. A
//! network filter with HTTP-only rules (headers, paths, metadata) refuses
//! them, as Envoy does.

use std::borrow::Cow;
use std::net::IpAddr;

use envoy_types::pb::envoy::config::rbac::v3::{
    Permission as EnvoyPermission, Policy as EnvoyPolicy, Principal as EnvoyPrincipal,
    Rbac as EnvoyRbac, permission, principal, rbac,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::rbac::EnforcementType;
use envoy_types::pb::envoy::r#type::matcher::v3::{PathMatcher, path_matcher};
use http::request::Parts;
use serde_json::Value;

use super::metadata::{DynamicMetadata, MetadataMatch};
use super::route::{header_matcher, string_matcher};
use super::{At, CidrRange, ConfigError, HeaderMatch, ValueMatch};

pub(super) const HTTP_FILTER_TYPE: &str = "envoy.extensions.filters.http.rbac.v3.RBAC";
pub(super) const NETWORK_FILTER_TYPE: &str = "envoy.extensions.filters.network.rbac.v3.RBAC";
/// The metadata namespaces the filters write to.
pub const HTTP_METADATA: &str = "envoy.filters.http.rbac";
pub const NETWORK_METADATA: &str = "envoy.filters.network.rbac";
/// Where a LOG action says whether the request is to be logged.
pub const COMMON_METADATA: &str = "envoy.common";
pub const ACCESS_LOG_HINT: &str = "access_log_hint";

/// One RBAC filter: rules that decide, shadow rules that only report.
#[derive(Debug)]
pub struct Rbac {
    /// The metadata namespace of the filter.
    namespace: &'static str,
    rules: Option<Engine>,
    shadow: Option<Shadow>,
}

/// A set of policies and what a match means.
#[derive(Debug)]
struct Engine {
    action: RbacAction,
    /// By name, in name order.
    policies: Vec<(String, Policy)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RbacAction {
    Allow,
    Deny,
    Log,
}

/// Shadow rules, with the metadata keys their result goes under.
#[derive(Debug)]
struct Shadow {
    engine: Engine,
    policy_key: String,
    result_key: String,
}

#[derive(Debug)]
struct Policy {
    permissions: Vec<Permission>,
    principals: Vec<Principal>,
}

#[derive(Debug)]
enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(HeaderMatch),
    Path(ValueMatch),
    DestinationPort(u16),
    /// `[start, end)`, as Envoy's `Int32Range`.
    DestinationPortRange(i64, i64),
    DestinationIp(CidrRange),
    ServerName(ValueMatch),
    Metadata(MetadataMatch),
}

#[derive(Debug)]
enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    /// `None`: any client with a certificate.
    Authenticated(Option<ValueMatch>),
    RemoteIp(CidrRange),
    Header(HeaderMatch),
    Path(ValueMatch),
    Metadata(MetadataMatch),
}

/// What an RBAC decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The request; `None` for a TCP connection.
    pub request: Option<&'a Parts>,
    /// The client certificate's URI SAN, when the client showed one.
    pub peer: Option<&'a str>,
    pub remote: IpAddr,
    pub destination_ip: IpAddr,
    pub destination_port: u16,
    pub server_name: Option<&'a str>,
}

impl<'a> Facts<'a> {
    /// What a connection shows, with its request when there is one; the
    /// SNI of the TLS session, else the one a ClientHello inspector read.
    pub fn new(
        request: Option<&'a Parts>,
        downstream: crate::lb::Downstream,
        tls: Option<&'a crate::tls::DownstreamTls>,
        sniffed_server_name: Option<&'a str>,
    ) -> Facts<'a> {
        Facts {
            request,
            peer: tls.and_then(|t| t.peer_uri_san.as_deref()),
            remote: downstream.remote.ip(),
            destination_ip: downstream.local.ip(),
            destination_port: downstream.local.port(),
            server_name: tls
                .and_then(|t| t.server_name.as_deref())
                .or(sniffed_server_name),
        }
    }
}

/// What one RBAC filter made of a request or connection.
#[derive(Debug, Default)]
pub struct Decision {
    pub allowed: bool,
    /// What the filter emits, to be merged into the dynamic metadata.
    pub metadata: DynamicMetadata,
}

impl Rbac {
    /// Evaluates the shadow rules, then the rules.
    pub fn decide(&self, facts: &Facts<'_>) -> Decision {
        let mut metadata = DynamicMetadata::default();
        if let Some(shadow) = &self.shadow {
            let (effective, allowed) = shadow.engine.evaluate(facts);
            if let Some(name) = effective {
                metadata.set(self.namespace, &shadow.policy_key, Value::from(name));
            }
            let result = if allowed { "allowed" } else { "denied" };
            metadata.set(self.namespace, &shadow.result_key, Value::from(result));
        }
        let allowed = match &self.rules {
            None => true,
            Some(engine) => {
                let (effective, allowed) = engine.evaluate(facts);
                if engine.action == RbacAction::Log {
                    let hint = Value::Bool(effective.is_some());
                    metadata.set(COMMON_METADATA, ACCESS_LOG_HINT, hint);
                }
                allowed
            }
        };
        Decision { allowed, metadata }
    }
}

impl Engine {
    /// The first policy that matches, and whether the action lets the
    /// request through.
    fn evaluate(&self, facts: &Facts<'_>) -> (Option<&str>, bool) {
        let effective = self
            .policies
            .iter()
            .find(|(_, p)| p.matches(facts))
            .map(|(name, _)| name.as_str());
        let allowed = match self.action {
            RbacAction::Allow => effective.is_some(),
            RbacAction::Deny => effective.is_none(),
            RbacAction::Log => true,
        };
        (effective, allowed)
    }
}

impl Policy {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        self.permissions.iter().any(|p| p.matches(facts))
            && self.principals.iter().any(|p| p.matches(facts))
    }
}

impl Permission {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::And(all) => all.iter().all(|p| p.matches(facts)),
            Permission::Or(any) => any.iter().any(|p| p.matches(facts)),
            Permission::Not(inner) => !inner.matches(facts),
            Permission::Header(m) => header(m, facts),
            Permission::Path(m) => path(m, facts),
            Permission::DestinationPort(port) => facts.destination_port == *port,
            Permission::DestinationPortRange(start, end) => {
                (*start..*end).contains(&i64::from(facts.destination_port))
            }
            Permission::DestinationIp(range) => range.contains(facts.destination_ip),
            Permission::ServerName(m) => {
                crate::http::route::value_matches(m, facts.server_name.unwrap_or_default())
            }
            Permission::Metadata(m) => m.matches(metadata(facts)),
        }
    }
}

impl Principal {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::And(all) => all.iter().all(|p| p.matches(facts)),
            Principal::Or(any) => any.iter().any(|p| p.matches(facts)),
            Principal::Not(inner) => !inner.matches(facts),
            Principal::Authenticated(None) => facts.peer.is_some(),
            Principal::Authenticated(Some(m)) => facts
                .peer
                .is_some_and(|peer| crate::http::route::value_matches(m, peer)),
            Principal::RemoteIp(range) => range.contains(facts.remote),
            Principal::Header(m) => header(m, facts),
            Principal::Path(m) => path(m, facts),
            Principal::Metadata(m) => m.matches(metadata(facts)),
        }
    }
}

/// A header rule; a TCP connection has no headers and matches none (the
/// network filter refuses such rules, this is for safety only).
fn header(m: &HeaderMatch, facts: &Facts<'_>) -> bool {
    facts
        .request
        .is_some_and(|request| crate::http::route::header_matches(m, request))
}

/// What earlier HTTP filters left on the request.
fn metadata<'a>(facts: &Facts<'a>) -> Option<&'a DynamicMetadata> {
    facts.request?.extensions.get::<DynamicMetadata>()
}

/// The path without its query, as Envoy's `url_path` matches it.
fn path(m: &ValueMatch, facts: &Facts<'_>) -> bool {
    facts.request.is_some_and(|request| {
        let path: Cow<'_, str> = Cow::Borrowed(request.uri.path());
        crate::http::route::value_matches(m, &path)
    })
}

/// An HTTP RBAC filter's config; `None` when it has no rules of either kind.
pub(super) fn http_filter(config: &HttpRbac, at: &At) -> Result<Option<Rbac>, ConfigError> {
    let refused = [
        ("matcher", config.matcher.is_some()),
        ("shadow_matcher", config.shadow_matcher.is_some()),
        ("track_per_rule_stats", config.track_per_rule_stats),
    ];
    at.refuse(&refused)?;
    compile(
        HTTP_METADATA,
        config.rules.as_ref(),
        config.shadow_rules.as_ref(),
        &config.shadow_rules_stat_prefix,
        at,
    )
}

/// A network RBAC filter's config; `None` when it has no rules of either kind.
pub(super) fn network_filter(config: &NetworkRbac, at: &At) -> Result<Option<Rbac>, ConfigError> {
    let refused = [
        ("matcher", config.matcher.is_some()),
        ("shadow_matcher", config.shadow_matcher.is_some()),
        ("delay_deny", config.delay_deny.is_some()),
        (
            "enforcement_type",
            config.enforcement_type == EnforcementType::Continuous as i32,
        ),
    ];
    at.refuse(&refused)?;
    compile(
        NETWORK_METADATA,
        config.rules.as_ref(),
        config.shadow_rules.as_ref(),
        &config.shadow_rules_stat_prefix,
        at,
    )
}

/// Without rules or shadow rules, Envoy's filter does nothing.
fn compile(
    namespace: &'static str,
    rules: Option<&EnvoyRbac>,
    shadow: Option<&EnvoyRbac>,
    shadow_prefix: &str,
    at: &At,
) -> Result<Option<Rbac>, ConfigError> {
    let http = namespace == HTTP_METADATA;
    let rules = rules
        .map(|r| engine(r, http, &at.field("rules")))
        .transpose()?;
    let shadow = shadow
        .map(|r| -> Result<Shadow, ConfigError> {
            Ok(Shadow {
                engine: engine(r, http, &at.field("shadow_rules"))?,
                policy_key: format!("{shadow_prefix}shadow_effective_policy_id"),
                result_key: format!("{shadow_prefix}shadow_engine_result"),
            })
        })
        .transpose()?;
    if rules.is_none() && shadow.is_none() {
        return Ok(None);
    }
    Ok(Some(Rbac {
        namespace,
        rules,
        shadow,
    }))
}

/// One set of rules; `http` says whether HTTP rules may be used (an HTTP
/// filter) or not (a network filter).
fn engine(rules: &EnvoyRbac, http: bool, at: &At) -> Result<Engine, ConfigError> {
    let action = match rbac::Action::try_from(rules.action) {
        Ok(rbac::Action::Allow) => RbacAction::Allow,
        Ok(rbac::Action::Deny) => RbacAction::Deny,
        Ok(rbac::Action::Log) => RbacAction::Log,
        Err(_) => return Err(at.field("action").error("an unknown action")),
    };
    if rules.audit_logging_options.is_some() {
        return Err(at
            .field("audit_logging_options")
            .unsupported("audit_logging_options"));
    }
    let mut policies: Vec<(String, Policy)> = rules
        .policies
        .iter()
        .map(|(name, policy)| {
            let at = at.field(&format!("policies[{name:?}]"));
            Ok((name.clone(), self::policy(policy, http, &at)?))
        })
        .collect::<Result<_, ConfigError>>()?;
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Engine { action, policies })
}

fn policy(policy: &EnvoyPolicy, http: bool, at: &At) -> Result<Policy, ConfigError> {
    if policy.condition.is_some() || policy.checked_condition.is_some() {
        return Err(at.field("condition").unsupported("CEL conditions"));
    }
    let permissions = policy
        .permissions
        .iter()
        .enumerate()
        .map(|(i, p)| permission(p, http, &at.field("permissions").index(i)))
        .collect::<Result<_, _>>()?;
    let principals = policy
        .principals
        .iter()
        .enumerate()
        .map(|(i, p)| principal(p, http, &at.field("principals").index(i)))
        .collect::<Result<_, _>>()?;
    Ok(Policy {
        permissions,
        principals,
    })
}

fn http_only(http: bool, at: &At, what: &str) -> Result<(), ConfigError> {
    if http {
        Ok(())
    } else {
        Err(at.unsupported(format_args!("{what} in a network RBAC filter")))
    }
}

fn permission(p: &EnvoyPermission, http: bool, at: &At) -> Result<Permission, ConfigError> {
    use permission::Rule as R;
    let set = |rules: &[EnvoyPermission], field: &str| -> Result<Vec<Permission>, ConfigError> {
        rules
            .iter()
            .enumerate()
            .map(|(i, p)| permission(p, http, &at.field(field).field("rules").index(i)))
            .collect()
    };
    #[allow(deprecated)]
    Ok(match &p.rule {
        Some(R::Any(true)) => Permission::Any,
        Some(R::AndRules(s)) => Permission::And(set(&s.rules, "and_rules")?),
        Some(R::OrRules(s)) => Permission::Or(set(&s.rules, "or_rules")?),
        Some(R::NotRule(inner)) => {
            Permission::Not(Box::new(permission(inner, http, &at.field("not_rule"))?))
        }
        Some(R::Header(h)) => {
            let at = at.field("header");
            http_only(http, &at, "header")?;
            Permission::Header(header_matcher(h, &at)?)
        }
        Some(R::UrlPath(m)) => {
            let at = at.field("url_path");
            http_only(http, &at, "url_path")?;
            Permission::Path(path_matcher(m, &at)?)
        }
        Some(R::DestinationPort(port)) => {
            Permission::DestinationPort(u16::try_from(*port).map_err(|_| {
                at.field("destination_port")
                    .error(format_args!("{port} is not a port"))
            })?)
        }
        Some(R::DestinationPortRange(range)) => {
            Permission::DestinationPortRange(i64::from(range.start), i64::from(range.end))
        }
        Some(R::DestinationIp(range)) => {
            Permission::DestinationIp(super::listener::cidr(range, &at.field("destination_ip"))?)
        }
        Some(R::RequestedServerName(m)) => {
            Permission::ServerName(string_matcher(m, &at.field("requested_server_name"))?)
        }
        Some(R::Metadata(m)) => {
            let at = at.field("metadata");
            http_only(http, &at, "metadata")?;
            Permission::Metadata(super::metadata::compile(m, &at)?)
        }
        Some(R::Any(false)) | None => return Err(at.error("a permission rule is required")),
        Some(other) => return Err(at.unsupported(format_args!("permission {}", rule_name(other)))),
    })
}

fn principal(p: &EnvoyPrincipal, http: bool, at: &At) -> Result<Principal, ConfigError> {
    use principal::Identifier as I;
    let set = |ids: &[EnvoyPrincipal], field: &str| -> Result<Vec<Principal>, ConfigError> {
        ids.iter()
            .enumerate()
            .map(|(i, p)| principal(p, http, &at.field(field).field("ids").index(i)))
            .collect()
    };
    #[allow(deprecated)]
    Ok(match &p.identifier {
        Some(I::Any(true)) => Principal::Any,
        Some(I::AndIds(s)) => Principal::And(set(&s.ids, "and_ids")?),
        Some(I::OrIds(s)) => Principal::Or(set(&s.ids, "or_ids")?),
        Some(I::NotId(inner)) => {
            Principal::Not(Box::new(principal(inner, http, &at.field("not_id"))?))
        }
        Some(I::Authenticated(a)) => Principal::Authenticated(
            a.principal_name
                .as_ref()
                .map(|m| string_matcher(m, &at.field("authenticated").field("principal_name")))
                .transpose()?,
        ),
        Some(I::SourceIp(range)) => {
            Principal::RemoteIp(super::listener::cidr(range, &at.field("source_ip"))?)
        }
        Some(I::DirectRemoteIp(range)) => {
            Principal::RemoteIp(super::listener::cidr(range, &at.field("direct_remote_ip"))?)
        }
        Some(I::RemoteIp(range)) => {
            Principal::RemoteIp(super::listener::cidr(range, &at.field("remote_ip"))?)
        }
        Some(I::Header(h)) => {
            let at = at.field("header");
            http_only(http, &at, "header")?;
            Principal::Header(header_matcher(h, &at)?)
        }
        Some(I::UrlPath(m)) => {
            let at = at.field("url_path");
            http_only(http, &at, "url_path")?;
            Principal::Path(path_matcher(m, &at)?)
        }
        Some(I::Metadata(m)) => {
            let at = at.field("metadata");
            http_only(http, &at, "metadata")?;
            Principal::Metadata(super::metadata::compile(m, &at)?)
        }
        Some(I::Any(false)) | None => return Err(at.error("a principal identifier is required")),
        Some(other) => return Err(at.unsupported(format_args!("principal {}", id_name(other)))),
    })
}

fn path_matcher(m: &PathMatcher, at: &At) -> Result<ValueMatch, ConfigError> {
    match &m.rule {
        Some(path_matcher::Rule::Path(s)) => string_matcher(s, &at.field("path")),
        None => Err(at.field("path").error("path is required")),
    }
}

fn rule_name(rule: &permission::Rule) -> &'static str {
    use permission::Rule as R;
    #[allow(deprecated)]
    match rule {
        R::Matcher(_) => "matcher",
        R::UriTemplate(_) => "uri_template",
        R::SourcedMetadata(_) => "sourced_metadata",
        _ => "rule",
    }
}

fn id_name(id: &principal::Identifier) -> &'static str {
    use principal::Identifier as I;
    #[allow(deprecated)]
    match id {
        I::FilterState(_) => "filter_state",
        I::Custom(_) => "custom",
        I::SourcedMetadata(_) => "sourced_metadata",
        _ => "identifier",
    }
}

#[cfg(test)]
mod tests;
