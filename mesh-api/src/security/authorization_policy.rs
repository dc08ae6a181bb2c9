//! AuthorizationPolicy: which requests a workload accepts, denies, audits or
//! hands to an external authorizer.
//!
//! # Validation rules
//!
//! - At most one of `selector`, `targetRef` and `targetRefs` is set.
//! - `selector.matchLabels`: valid Kubernetes labels, with no wildcards.
//! - `targetRef`/`targetRefs`: kind and name are set, namespace is empty, and the target is a
//!   `Gateway` or `GatewayClass` (gateway.networking.k8s.io), a `Service` (core) or a
//!   `ServiceEntry` (networking.istio.io); at most 16 `targetRefs`.
//! - `action: CUSTOM` needs `provider` with a non-empty `name`; `provider` is only allowed with CUSTOM.
//! - `action: DENY`, `AUDIT` and `CUSTOM` need at least one rule (they would never match
//!   otherwise; `rules: [{}]` matches every request).
//! - At most 512 `rules`, and at most 512 `from` entries in a rule.
//! - With CUSTOM, sources may not use principals, requestPrincipals, namespaces or
//!   serviceAccounts (nor their `not*` forms), and `when` may not use `source.namespace`,
//!   `source.serviceAccount`, `source.principal` or `request.auth.*`.
//! - Every `from` entry has a `source` that sets at least one field; every `to` entry has an
//!   `operation` that sets at least one field.
//! - `serviceAccounts`/`notServiceAccounts` are not combined with principals or namespaces
//!   (nor their `not*` forms) in one source.
//! - No list value is empty.
//! - principals, requestPrincipals, namespaces, trustDomains, hosts, methods (and their `not*`
//!   forms) match exactly, by `prefix*`, by `*suffix`, or are `*`: any other `*` is rejected.
//! - principals and notPrincipals do not start with `spiffe://`.
//! - serviceAccounts and notServiceAccounts are `namespace/name` or `name`, with no wildcard,
//!   a DNS-label namespace, a DNS-subdomain name, at most 320 characters; at most 16 of each.
//! - ipBlocks, notIpBlocks, remoteIpBlocks and notRemoteIpBlocks are IP addresses or CIDRs.
//! - ports and notPorts are port numbers 1-65535 written as strings.
//! - methods and notMethods are upper-case HTTP method names (`GET`, `POST`, ...).
//! - paths and notPaths start with `/` (or are `*` or `*suffix`); a path using the `{*}` or
//!   `{**}` template operators starts with `/`, has no `*`, `{` or `}` outside whole-segment
//!   operators, has only URI path characters elsewhere, and no operator after `{**}`.
//! - `when`: `key` is set and is a known attribute (`request.headers[name]`, `source.ip`,
//!   `remote.ip`, `source.namespace`, `source.principal`, `source.serviceAccount`,
//!   `source.trustDomain`, `request.auth.principal`, `request.auth.audiences`,
//!   `request.auth.presenter`, `request.auth.claims[name]`, `destination.ip`,
//!   `destination.port`, `connection.sni`, `experimental.envoy.filters.*[name]`).
//! - `when` sets `values` or `notValues`; values are valid for the key: IPs or CIDRs for
//!   `source.ip`, `remote.ip` and `destination.ip`, ports for `destination.port`, service
//!   accounts for `source.serviceAccount`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::IstioStatus;
use crate::selector::{PolicyTargetReference, WorkloadSelector};
use crate::validate::{self, Check, Errors, Path, Validate};

const MAX_RULES: usize = 512;
const MAX_FROM: usize = 512;
const MAX_TARGET_REFS: usize = 16;
const MAX_SERVICE_ACCOUNTS: usize = 16;
const MAX_SERVICE_ACCOUNT_LEN: usize = 320;

/// Access control for the workloads a policy selects.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    plural = "authorizationpolicies",
    shortname = "ap",
    category = "istio-io",
    category = "security-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.action"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// Workloads the policy applies to; without it (and without targetRefs), the whole namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// A single resource the policy attaches to (older form of targetRefs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Gateways, GatewayClasses, Services or ServiceEntries the policy attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// The policy matches a request when any rule does; with no rules it never matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// What to do with matching requests; ALLOW when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The external authorizer (from MeshConfig extensionProviders) for the CUSTOM action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

/// What a policy does with the requests its rules match.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow matching requests; once any ALLOW policy applies, the others are denied.
    #[default]
    Allow,
    /// Deny matching requests.
    Deny,
    /// Mark matching requests for auditing; never changes the decision.
    Audit,
    /// Ask the external authorizer named by `provider` about matching requests.
    Custom,
}

/// An external authorizer declared in MeshConfig.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    /// Name of a MeshConfig extension provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Matches a request when one of its sources, one of its operations and all of
/// its conditions match; an empty rule matches every request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Who sends the request; any source when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// What the request does; any operation when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    /// Further conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// One source a rule accepts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    /// The peer or end user sending the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One operation a rule accepts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    /// The host, port, method and path of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// Who sent a request. All fields set must match; within a field, any value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Peer identities from the mTLS certificate, `<trust-domain>/ns/<namespace>/sa/<account>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Peer identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// End-user identities from a validated JWT, `<issuer>/<subject>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// End-user identities that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Namespaces of the peer, from its mTLS certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Peer namespaces that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Kubernetes service accounts of the peer, `<namespace>/<name>` or `<name>` (policy's namespace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Peer service accounts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// Source IP addresses or CIDRs of the connection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Source IP addresses or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs, from X-Forwarded-For or the PROXY protocol.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Original client IPs or CIDRs that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
    /// Trust domains of the peer, from its mTLS certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domains: Vec<String>,
    /// Peer trust domains that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_trust_domains: Vec<String>,
}

/// What a request does. All fields set must match; within a field, any value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// HTTP hosts (Host/:authority), matched case-insensitively. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// HTTP hosts that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Destination ports of the connection, as strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Destination ports that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// HTTP methods (always POST for gRPC). HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// HTTP methods that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Normalised request paths; `{*}` and `{**}` segments are URI templates. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Request paths that must not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// A condition on one request attribute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The attribute, e.g. `request.headers[x-user]`, `source.ip` or `request.auth.claims[iss]`.
    pub key: String,
    /// The attribute must match one of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// The attribute must match none of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

impl AuthorizationPolicySpec {
    /// The action the policy takes: `action`, or ALLOW when it is unset.
    pub fn effective_action(&self) -> Action {
        self.action.unwrap_or_default()
    }
}

impl Source {
    /// Each list with its field name, in the order Istio documents them.
    fn lists(&self) -> [(&'static str, &[String]); 14] {
        [
            ("principals", &self.principals),
            ("notPrincipals", &self.not_principals),
            ("requestPrincipals", &self.request_principals),
            ("notRequestPrincipals", &self.not_request_principals),
            ("namespaces", &self.namespaces),
            ("notNamespaces", &self.not_namespaces),
            ("serviceAccounts", &self.service_accounts),
            ("notServiceAccounts", &self.not_service_accounts),
            ("ipBlocks", &self.ip_blocks),
            ("notIpBlocks", &self.not_ip_blocks),
            ("remoteIpBlocks", &self.remote_ip_blocks),
            ("notRemoteIpBlocks", &self.not_remote_ip_blocks),
            ("trustDomains", &self.trust_domains),
            ("notTrustDomains", &self.not_trust_domains),
        ]
    }
}

impl Operation {
    fn lists(&self) -> [(&'static str, &[String]); 8] {
        [
            ("hosts", &self.hosts),
            ("notHosts", &self.not_hosts),
            ("ports", &self.ports),
            ("notPorts", &self.not_ports),
            ("methods", &self.methods),
            ("notMethods", &self.not_methods),
            ("paths", &self.paths),
            ("notPaths", &self.not_paths),
        ]
    }
}

impl Validate for AuthorizationPolicySpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        validate_policy_scope(
            self.selector.as_ref(),
            self.target_ref.as_ref(),
            &self.target_refs,
            at,
            errs,
        );
        let action = self.effective_action();
        match (&self.provider, action) {
            (None, Action::Custom) => errs.add(
                &at.field("provider"),
                "the CUSTOM action needs a provider naming a MeshConfig extension provider",
            ),
            (Some(provider), Action::Custom) if provider.name.is_empty() => errs.add(
                &at.field("provider").field("name"),
                "provider.name must name a MeshConfig extension provider",
            ),
            (Some(_), Action::Allow | Action::Deny | Action::Audit) => errs.add(
                &at.field("provider"),
                format!("provider is only allowed with the CUSTOM action, not {action:?}"),
            ),
            _ => {}
        }
        let rules = at.field("rules");
        if self.rules.is_empty() && action != Action::Allow {
            errs.add(
                &rules,
                format!(
                    "a policy with action {} and no rules never matches anything; \
                     add rules, or `rules: [{{}}]` to match every request",
                    action_name(action)
                ),
            );
        }
        if self.rules.len() > MAX_RULES {
            errs.add(
                &rules,
                format!(
                    "at most {MAX_RULES} rules are allowed, found {}",
                    self.rules.len()
                ),
            );
        }
        validate::each(&self.rules, &rules, errs);
        if action == Action::Custom {
            for (i, rule) in self.rules.iter().enumerate() {
                custom_restrictions(rule, &rules.index(i), errs);
            }
        }
    }
}

impl Validate for Rule {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let from = at.field("from");
        if self.from.len() > MAX_FROM {
            errs.add(
                &from,
                format!(
                    "at most {MAX_FROM} from entries are allowed, found {}",
                    self.from.len()
                ),
            );
        }
        for (i, entry) in self.from.iter().enumerate() {
            let here = from.index(i).field("source");
            match &entry.source {
                Some(source) => source.validate(&here, errs),
                None => errs.add(&here, "each from entry needs a source"),
            }
        }
        let to = at.field("to");
        for (i, entry) in self.to.iter().enumerate() {
            let here = to.index(i).field("operation");
            match &entry.operation {
                Some(operation) => operation.validate(&here, errs),
                None => errs.add(&here, "each to entry needs an operation"),
            }
        }
        validate::each(&self.when, &at.field("when"), errs);
    }
}

impl Validate for Source {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let lists = self.lists();
        if lists.iter().all(|(_, values)| values.is_empty()) {
            errs.add(
                at,
                "source must set at least one field (principals, requestPrincipals, namespaces, \
                 serviceAccounts, ipBlocks, remoteIpBlocks, trustDomains or a not* form)",
            );
        }
        let has_accounts =
            !self.service_accounts.is_empty() || !self.not_service_accounts.is_empty();
        let has_identity = !(self.principals.is_empty()
            && self.not_principals.is_empty()
            && self.namespaces.is_empty()
            && self.not_namespaces.is_empty());
        if has_accounts && has_identity {
            let field = if self.service_accounts.is_empty() {
                "notServiceAccounts"
            } else {
                "serviceAccounts"
            };
            errs.add(
                &at.field(field),
                "serviceAccounts cannot be combined with principals or namespaces (or their not* forms) in one source",
            );
        }
        for (name, values) in lists {
            let here = at.field(name);
            let check: fn(&str) -> Check = match name {
                "principals" | "notPrincipals" => principal,
                "serviceAccounts" | "notServiceAccounts" => service_account,
                "ipBlocks" | "notIpBlocks" | "remoteIpBlocks" | "notRemoteIpBlocks" => {
                    validate::ip_or_cidr
                }
                _ => string_match,
            };
            if matches!(name, "serviceAccounts" | "notServiceAccounts")
                && values.len() > MAX_SERVICE_ACCOUNTS
            {
                errs.add(
                    &here,
                    format!(
                        "at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed, found {}",
                        values.len()
                    ),
                );
            }
            for (i, value) in values.iter().enumerate() {
                errs.check(&here.index(i), check(value));
            }
        }
    }
}

impl Validate for Operation {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let lists = self.lists();
        if lists.iter().all(|(_, values)| values.is_empty()) {
            errs.add(
                at,
                "operation must set at least one field (hosts, ports, methods, paths or a not* form)",
            );
        }
        for (name, values) in lists {
            let check: fn(&str) -> Check = match name {
                "ports" | "notPorts" => port_string,
                "methods" | "notMethods" => method,
                "paths" | "notPaths" => request_path,
                _ => string_match,
            };
            for (i, value) in values.iter().enumerate() {
                errs.check(&at.field(name).index(i), check(value));
            }
        }
    }
}

impl Validate for Condition {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.key.is_empty() {
            errs.add(
                &at.field("key"),
                "key must name an attribute, such as request.headers[x-user] or source.ip",
            );
            return;
        }
        let kind = match condition_key(&self.key) {
            Ok(kind) => kind,
            Err(reason) => {
                errs.add(&at.field("key"), reason);
                return;
            }
        };
        if self.values.is_empty() && self.not_values.is_empty() {
            errs.add(
                &at.field("values"),
                format!(
                    "at least one of values or notValues must be set for key {}",
                    self.key
                ),
            );
        }
        let check: fn(&str) -> Check = match kind {
            KeyKind::Ip => validate::ip_or_cidr,
            KeyKind::Port => port_string,
            KeyKind::ServiceAccount => service_account,
            KeyKind::Plain => non_empty,
        };
        for (name, values) in [("values", &self.values), ("notValues", &self.not_values)] {
            for (i, value) in values.iter().enumerate() {
                errs.check(&at.field(name).index(i), check(value));
            }
        }
    }
}

/// The checks shared with RequestAuthentication: which workloads a policy
/// applies to, chosen by selector or by target references, never both.
pub(crate) fn validate_policy_scope(
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
    at: &Path,
    errs: &mut Errors,
) {
    let set = [
        ("selector", selector.is_some()),
        ("targetRef", target_ref.is_some()),
        ("targetRefs", !target_refs.is_empty()),
    ];
    if let Err(reason) = validate::one_of(&set) {
        let last = set
            .iter()
            .rev()
            .find(|(_, on)| *on)
            .map_or("selector", |(name, _)| *name);
        errs.add(&at.field(last), reason);
    }
    selector.validate(&at.field("selector"), errs);
    if let Some(target) = target_ref {
        validate_target(target, &at.field("targetRef"), errs);
    }
    let refs = at.field("targetRefs");
    if target_refs.len() > MAX_TARGET_REFS {
        errs.add(
            &refs,
            format!(
                "at most {MAX_TARGET_REFS} targetRefs are allowed, found {}",
                target_refs.len()
            ),
        );
    }
    for (i, target) in target_refs.iter().enumerate() {
        validate_target(target, &refs.index(i), errs);
    }
}

fn validate_target(target: &PolicyTargetReference, at: &Path, errs: &mut Errors) {
    target.validate(at, errs);
    if target.kind.is_empty() {
        return;
    }
    let group = if target.group.is_empty() {
        "core"
    } else {
        target.group.as_str()
    };
    let allowed = matches!(
        (group, target.kind.as_str()),
        ("core", "Service")
            | ("networking.istio.io", "ServiceEntry")
            | ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
    );
    if !allowed {
        errs.add(
            &at.field("kind"),
            format!(
                "a policy can target a Gateway or GatewayClass (group gateway.networking.k8s.io), \
                 a Service (group \"\" or core) or a ServiceEntry (group networking.istio.io), not {}/{}",
                target.group, target.kind
            ),
        );
    }
}

/// Fields Istio's external authorizer filter cannot evaluate.
fn custom_restrictions(rule: &Rule, at: &Path, errs: &mut Errors) {
    const IDENTITY: &[&str] = &[
        "principals",
        "notPrincipals",
        "requestPrincipals",
        "notRequestPrincipals",
        "namespaces",
        "notNamespaces",
        "serviceAccounts",
        "notServiceAccounts",
    ];
    for (i, entry) in rule.from.iter().enumerate() {
        let Some(source) = &entry.source else {
            continue;
        };
        for (name, values) in source.lists() {
            if IDENTITY.contains(&name) && !values.is_empty() {
                errs.add(
                    &at.field("from").index(i).field("source").field(name),
                    format!("{name} is not supported with the CUSTOM action"),
                );
            }
        }
    }
    for (i, condition) in rule.when.iter().enumerate() {
        let key = condition.key.as_str();
        if matches!(
            key,
            "source.namespace" | "source.serviceAccount" | "source.principal"
        ) || key.starts_with("request.auth.")
        {
            errs.add(
                &at.field("when").index(i).field("key"),
                format!("when key {key} is not supported with the CUSTOM action"),
            );
        }
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "ALLOW",
        Action::Deny => "DENY",
        Action::Audit => "AUDIT",
        Action::Custom => "CUSTOM",
    }
}

/// How the values of a `when` condition are checked.
enum KeyKind {
    Plain,
    Ip,
    Port,
    ServiceAccount,
}

fn condition_key(key: &str) -> Result<KeyKind, String> {
    const BRACKETED: &[&str] = &[
        "request.headers",
        "request.experimental.inline.headers",
        "request.auth.claims",
    ];
    match key {
        "source.ip" | "remote.ip" | "destination.ip" => return Ok(KeyKind::Ip),
        "destination.port" => return Ok(KeyKind::Port),
        "source.serviceAccount" => return Ok(KeyKind::ServiceAccount),
        "source.namespace"
        | "source.principal"
        | "source.trustDomain"
        | "request.auth.principal"
        | "request.auth.audiences"
        | "request.auth.presenter"
        | "connection.sni" => return Ok(KeyKind::Plain),
        "destination.namespace" => {
            return Err("attribute destination.namespace is not supported; \
                        the policy's own namespace (metadata.namespace) decides it"
                .into());
        }
        "destination.name" | "destination.user" => {
            return Err(format!(
                "attribute {key} was only supported by the removed v1alpha1 API"
            ));
        }
        _ => {}
    }
    if key.starts_with("destination.labels") {
        return Err(format!(
            "attribute {key} is not supported; use the policy's selector instead"
        ));
    }
    if let Some(prefix) = BRACKETED.iter().find(|prefix| key.starts_with(**prefix)) {
        let name = key[prefix.len()..]
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .filter(|name| !name.is_empty());
        return match name {
            None => Err(format!("key {key:?} must be written {prefix}[name]")),
            // Pseudo-headers such as `:method` are headers to Envoy too.
            Some(name) if prefix.ends_with("headers") => {
                validate::header_name(name.strip_prefix(':').unwrap_or(name))
                    .map(|()| KeyKind::Plain)
                    .map_err(|reason| format!("key {key:?}: {reason}"))
            }
            Some(_) => Ok(KeyKind::Plain),
        };
    }
    if key.starts_with("experimental.envoy.filters.") {
        let open = key.find('[').unwrap_or(0);
        return if open > 0 && key.ends_with(']') && open + 2 < key.len() {
            Ok(KeyKind::Plain)
        } else {
            Err(format!(
                "key {key:?} must be written experimental.envoy.filters.<filter>[name]"
            ))
        };
    }
    Err(format!(
        "unknown attribute {key:?}; use one of request.headers[name], source.ip, remote.ip, \
         source.namespace, source.principal, source.serviceAccount, source.trustDomain, \
         request.auth.principal, request.auth.audiences, request.auth.presenter, \
         request.auth.claims[name], destination.ip, destination.port, connection.sni or \
         experimental.envoy.filters.*[name]"
    ))
}

fn non_empty(value: &str) -> Check {
    if value.is_empty() {
        Err("empty values are not allowed".into())
    } else {
        Ok(())
    }
}

/// Istio's string match: exact, `prefix*`, `*suffix` or `*`.
fn string_match(value: &str) -> Check {
    non_empty(value)?;
    let rest = value
        .strip_prefix('*')
        .or_else(|| value.strip_suffix('*'))
        .unwrap_or(value);
    if rest.contains('*') {
        return Err(format!(
            "{value:?} has a `*` in an unsupported place; a value is exact, `prefix*`, `*suffix` or `*`"
        ));
    }
    Ok(())
}

fn principal(value: &str) -> Check {
    string_match(value)?;
    if value.to_ascii_lowercase().starts_with("spiffe://") {
        return Err(format!(
            "principal {value:?} must not start with spiffe://; \
             write <trust-domain>/ns/<namespace>/sa/<service-account>"
        ));
    }
    Ok(())
}

fn service_account(value: &str) -> Check {
    non_empty(value)?;
    if value.contains('*') {
        return Err(format!(
            "service account {value:?} must not contain a wildcard"
        ));
    }
    if value.len() > MAX_SERVICE_ACCOUNT_LEN {
        return Err(format!(
            "service account {value:?} is longer than {MAX_SERVICE_ACCOUNT_LEN} characters"
        ));
    }
    let (namespace, name) = match value.split_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, value),
    };
    let shape = format!("service account {value:?} must be written namespace/name or name");
    if name.is_empty() || name.contains('/') || namespace == Some("") {
        return Err(shape);
    }
    if let Some(namespace) = namespace {
        validate::dns_label(namespace).map_err(|reason| format!("{shape}: namespace {reason}"))?;
    }
    validate::dns_subdomain(name).map_err(|reason| format!("{shape}: name {reason}"))
}

fn port_string(value: &str) -> Check {
    match value.parse::<u32>() {
        Ok(number) if value.bytes().all(|b| b.is_ascii_digit()) => validate::port(number),
        _ => Err(format!(
            "port {value:?} must be a number between 1 and 65535"
        )),
    }
}

fn method(value: &str) -> Check {
    string_match(value)?;
    let name = value.trim_matches('*');
    if name
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        Ok(())
    } else {
        Err(format!(
            "method {value:?} must be an upper-case HTTP method such as GET or POST"
        ))
    }
}

const MATCH_ONE: &str = "{*}";
const MATCH_ANY: &str = "{**}";

fn request_path(value: &str) -> Check {
    non_empty(value)?;
    if value.contains(MATCH_ONE) || value.contains(MATCH_ANY) {
        return path_template(value);
    }
    if value.contains(['{', '}']) {
        return Err(format!(
            "path {value:?} has `{{` or `}}` outside a `{{*}}` or `{{**}}` template segment"
        ));
    }
    string_match(value)?;
    if !value.starts_with('/') && !value.starts_with('*') {
        return Err(format!(
            "path {value:?} must start with / (or be `*` or `*suffix`)"
        ));
    }
    Ok(())
}

/// Istio's (and Envoy's URI template) rules for paths with `{*}` and `{**}`.
fn path_template(value: &str) -> Check {
    if !value.starts_with('/') {
        return Err(format!("path template {value:?} must start with /"));
    }
    let mut seen_any = false;
    for segment in value.trim_matches('/').split('/') {
        if segment == MATCH_ONE || segment == MATCH_ANY {
            if seen_any {
                return Err(format!(
                    "path template {value:?} has an operator after `{{**}}`, which must be the last"
                ));
            }
            seen_any = segment == MATCH_ANY;
            continue;
        }
        if segment.contains(['{', '}']) {
            return Err(format!(
                "path template {value:?} has `{{` or `}}` outside a whole `{{*}}` or `{{**}}` segment"
            ));
        }
        if !is_path_literal(segment) {
            return Err(format!(
                "path template {value:?} has segment {segment:?} with characters not allowed \
                 (no `*` outside `{{*}}`/`{{**}}`, no empty segments)"
            ));
        }
    }
    Ok(())
}

/// A non-empty run of RFC 3986 path characters (`pchar`), as Envoy accepts in templates.
fn is_path_literal(segment: &str) -> bool {
    const EXTRA: &[u8] = b"-._~%!$&'()+,;:@=";
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b))
}

#[cfg(test)]
mod tests;
