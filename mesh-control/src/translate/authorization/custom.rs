//! AuthorizationPolicy's CUSTOM action, as istiod writes it: an RBAC
//! filter whose shadow rules (DENY, named
//! `istio-ext-authz-<provider>-ns[<ns>]-policy[<name>]-rule[<i>]`, stat
//! prefix `istio_ext_authz_`) mark the requests the policies match, then
//! the provider's `ext_authz` filter, which asks the authorizer only about
//! requests so marked (`filter_enabled_metadata` on
//! `istio_ext_authz_shadow_effective_policy_id` starting with
//! `istio-ext-authz-<provider>`). On TCP chains the same with the network
//! filters, for gRPC providers only: an HTTP authorizer cannot judge a
//! TCP connection, and such connections are not checked, as in istiod.
//!
//! A provider the MeshConfig does not define as `envoyExtAuthzHttp` or
//! `envoyExtAuthzGrpc`, or whose service is not in the registry, cannot
//! be asked: the requests its policies match are denied instead (a DENY
//! filter with their rules, each named with `-deny-due-to-bad-CUSTOM-action`),
//! and [`problems`] reports it. istiod supports one provider per workload
//! (unless a feature flag says otherwise): with several, the requests
//! every CUSTOM policy matches are denied, and reported too.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::core::v3::{
    ApiVersion, GrpcService, HeaderValue, HttpUri, http_uri,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{Rbac, rbac};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationRequest, AuthorizationResponse, BufferSettings, ExtAuthz, HttpService, ext_authz,
};
use envoy_types::pb::envoy::extensions::filters::network::ext_authz::v3::ExtAuthz as NetworkExtAuthz;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListStringMatcher, MetadataMatcher, StringMatcher, ValueMatcher, metadata_matcher,
    string_matcher, value_matcher,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use mesh_api::security::authorization_policy::Action;

use super::super::proto::{any, duration, seconds};
use super::super::provider::{self, ProviderService};
use super::{
    Applying, Authorization, applying, http_rbac, network_rbac, rule_policies, string, translated,
    with_action,
};
use crate::model::{ExtAuthzKind, ExtAuthzProvider, HttpAuthorizer, MeshSnapshot, Proxy};

/// Where the shadow rules' results go in the dynamic metadata.
const SHADOW_PREFIX: &str = "istio_ext_authz_";
const POLICY_PREFIX: &str = "istio-ext-authz";
const BAD_SUFFIX: &str = "-deny-due-to-bad-CUSTOM-action";
/// istiod's timeout for an authorizer that sets none.
const DEFAULT_TIMEOUT_SECONDS: u64 = 600;

/// A CUSTOM policy that cannot be honoured, and why: its matching
/// requests are denied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PolicyProblem {
    pub namespace: String,
    pub name: String,
    /// The field at fault, from the resource's root (`spec.provider.name`).
    pub field: String,
    pub reason: String,
}

/// A provider ready to be written into filters.
struct Authorizer<'a> {
    name: &'a str,
    provider: &'a ExtAuthzProvider,
    service: ProviderService,
}

/// The CUSTOM filters of the policies applying to a workload, ahead of
/// everything else.
pub(super) fn filters(snapshot: &MeshSnapshot, policies: &[Applying<'_>], out: &mut Authorization) {
    let custom = with_action(policies, Action::Custom);
    let by_provider = by_provider(&custom);
    let several = by_provider.len() > 1;
    for (name, chosen) in &by_provider {
        match (!several).then(|| resolve(snapshot, name).ok()).flatten() {
            Some(authorizer) => ask(&authorizer, chosen, out),
            None => deny(name, chosen, out),
        }
    }
}

fn by_provider<'a>(custom: &[Applying<'a>]) -> BTreeMap<&'a str, Vec<Applying<'a>>> {
    let mut by_provider: BTreeMap<&str, Vec<Applying>> = BTreeMap::new();
    for policy in custom {
        by_provider
            .entry(provider_name(policy))
            .or_default()
            .push(*policy);
    }
    by_provider
}

fn provider_name<'a>(policy: &Applying<'a>) -> &'a str {
    policy
        .spec
        .provider
        .as_ref()
        .map_or("", |p| p.name.as_str())
}

/// The provider named `name`, with its service found.
fn resolve<'a>(snapshot: &'a MeshSnapshot, name: &'a str) -> Result<Authorizer<'a>, String> {
    let provider = snapshot.mesh.ext_authz.get(name).ok_or_else(|| {
        let known: Vec<&str> = snapshot.mesh.ext_authz.keys().map(String::as_str).collect();
        format!(
            "the mesh config has no envoyExtAuthzHttp or envoyExtAuthzGrpc provider {name:?} \
             (it has {known:?})"
        )
    })?;
    let service = provider::lookup(&provider.service, provider.port, snapshot)
        .map_err(|reason| format!("provider {name:?}: {reason}"))?;
    Ok(Authorizer {
        name,
        provider,
        service,
    })
}

/// Shadow rules marking what the policies match, and the authorizer.
fn ask(authorizer: &Authorizer<'_>, policies: &[Applying<'_>], out: &mut Authorization) {
    let prefix = format!("{POLICY_PREFIX}-{}-", authorizer.name);
    let shadow = |http| Rbac {
        action: rbac::Action::Deny as i32,
        policies: rule_policies(policies, http, &prefix),
        ..Rbac::default()
    };
    out.http
        .push(http_rbac(None, Some(shadow(true)), SHADOW_PREFIX));
    out.http.push(HttpFilter {
        name: "envoy.filters.http.ext_authz".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(any(&http_ext_authz(
            authorizer,
        )))),
        ..HttpFilter::default()
    });
    if matches!(authorizer.provider.kind, ExtAuthzKind::Grpc) {
        out.tcp
            .push(network_rbac(None, Some(shadow(false)), SHADOW_PREFIX));
        out.tcp.push(Filter {
            name: "envoy.filters.network.ext_authz".into(),
            config_type: Some(filter::ConfigType::TypedConfig(any(&NetworkExtAuthz {
                stat_prefix: "tcp.".into(),
                grpc_service: Some(grpc_service(authorizer)),
                failure_mode_allow: authorizer.provider.fail_open,
                transport_api_version: ApiVersion::V3 as i32,
                filter_enabled_metadata: Some(enabled_when(
                    "envoy.filters.network.rbac",
                    authorizer.name,
                )),
                ..NetworkExtAuthz::default()
            }))),
        });
    }
}

/// What cannot be asked is denied: the requests the policies match.
fn deny(provider: &str, policies: &[Applying<'_>], out: &mut Authorization) {
    let prefix = format!("{POLICY_PREFIX}-{provider}-");
    let rules = |http| Rbac {
        action: rbac::Action::Deny as i32,
        policies: rule_policies(policies, http, &prefix)
            .into_iter()
            .map(|(name, policy)| (format!("{name}{BAD_SUFFIX}"), policy))
            .collect(),
        ..Rbac::default()
    };
    out.http.push(http_rbac(Some(rules(true)), None, ""));
    out.tcp.push(network_rbac(Some(rules(false)), None, ""));
}

fn http_ext_authz(authorizer: &Authorizer<'_>) -> ExtAuthz {
    let provider = authorizer.provider;
    let mut config = ExtAuthz {
        failure_mode_allow: provider.fail_open,
        status_on_error: provider.status_on_error.map(|code| HttpStatus {
            code: i32::from(code),
        }),
        transport_api_version: ApiVersion::V3 as i32,
        filter_enabled_metadata: Some(enabled_when("envoy.filters.http.rbac", authorizer.name)),
        with_request_body: provider.include_request_body.map(|body| BufferSettings {
            max_request_bytes: body.max_request_bytes,
            allow_partial_message: body.allow_partial_message,
            pack_as_bytes: body.pack_as_bytes,
        }),
        ..ExtAuthz::default()
    };
    config.services = Some(match &provider.kind {
        ExtAuthzKind::Grpc => ext_authz::Services::GrpcService(grpc_service(authorizer)),
        ExtAuthzKind::Http(http) => {
            config.allowed_headers = headers(&http.include_request_headers);
            ext_authz::Services::HttpService(http_service(authorizer, http))
        }
    });
    config
}

fn http_service(authorizer: &Authorizer<'_>, http: &HttpAuthorizer) -> HttpService {
    let headers_to_add: Vec<HeaderValue> = http
        .include_additional_headers
        .iter()
        .map(|(key, value)| HeaderValue {
            key: key.clone(),
            value: value.clone(),
            ..HeaderValue::default()
        })
        .collect();
    let response_headers = [
        &http.headers_to_upstream_on_allow,
        &http.headers_to_downstream_on_deny,
        &http.headers_to_downstream_on_allow,
    ];
    HttpService {
        path_prefix: http.path_prefix.clone(),
        server_uri: Some(HttpUri {
            // Required, and not used: the cluster is.
            uri: format!("http://{}", authorizer.service.hostname),
            timeout: Some(timeout(authorizer.provider)),
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(
                authorizer.service.cluster.clone(),
            )),
        }),
        authorization_request: (!headers_to_add.is_empty()).then(|| AuthorizationRequest {
            headers_to_add,
            ..AuthorizationRequest::default()
        }),
        authorization_response: response_headers.iter().any(|h| !h.is_empty()).then(|| {
            AuthorizationResponse {
                allowed_upstream_headers: headers(&http.headers_to_upstream_on_allow),
                allowed_client_headers: headers(&http.headers_to_downstream_on_deny),
                allowed_client_headers_on_success: headers(&http.headers_to_downstream_on_allow),
                ..AuthorizationResponse::default()
            }
        }),
        ..HttpService::default()
    }
}

fn grpc_service(authorizer: &Authorizer<'_>) -> GrpcService {
    GrpcService {
        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
            cluster_name: authorizer.service.cluster.clone(),
            authority: authorizer.service.hostname.clone(),
            ..EnvoyGrpc::default()
        })),
        timeout: Some(timeout(authorizer.provider)),
        ..GrpcService::default()
    }
}

fn timeout(provider: &ExtAuthzProvider) -> envoy_types::pb::google::protobuf::Duration {
    provider
        .timeout
        .map_or_else(|| seconds(DEFAULT_TIMEOUT_SECONDS), duration)
}

/// Run only for what the shadow rules of `provider` matched.
fn enabled_when(filter: &str, provider: &str) -> MetadataMatcher {
    MetadataMatcher {
        filter: filter.into(),
        path: vec![metadata_matcher::PathSegment {
            segment: Some(metadata_matcher::path_segment::Segment::Key(format!(
                "{SHADOW_PREFIX}shadow_effective_policy_id"
            ))),
        }],
        value: Some(ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Prefix(format!(
                    "{POLICY_PREFIX}-{provider}"
                ))),
                ..StringMatcher::default()
            })),
        }),
        invert: false,
    }
}

/// Header names, `prefix*` or `*suffix`, matched ignoring case; none
/// without any.
fn headers(names: &[String]) -> Option<ListStringMatcher> {
    if names.is_empty() {
        return None;
    }
    let patterns = names
        .iter()
        .map(|name| StringMatcher {
            ignore_case: true,
            ..string(name)
        })
        .collect();
    Some(ListStringMatcher { patterns })
}

/// The CUSTOM policies that cannot be honoured: for every such policy,
/// a provider the mesh config lacks or whose service the registry lacks;
/// and for each of `proxies`, policies naming several providers for its
/// workload. Sorted, without repeats.
pub fn problems(snapshot: &MeshSnapshot, proxies: &[Proxy]) -> Vec<PolicyProblem> {
    let field = "spec.provider.name";
    let problem = |policy: &Applying<'_>, reason: String| PolicyProblem {
        namespace: policy.namespace.to_owned(),
        name: policy.name.to_owned(),
        field: field.into(),
        reason,
    };
    let mut found = BTreeSet::new();
    let everywhere: Vec<Applying> = translated(snapshot).collect();
    for policy in &with_action(&everywhere, Action::Custom) {
        if let Err(reason) = resolve(snapshot, provider_name(policy)) {
            found.insert(problem(
                policy,
                format!("{reason}; the requests its rules match are denied"),
            ));
        }
    }
    for proxy in proxies {
        let applying = applying(proxy, snapshot);
        let by_provider = by_provider(&with_action(&applying, Action::Custom));
        if by_provider.len() < 2 {
            continue;
        }
        let names: Vec<&str> = by_provider.keys().copied().collect();
        for policy in by_provider.values().flatten() {
            found.insert(problem(
                policy,
                format!(
                    "workload {}/{} has CUSTOM policies for several providers {names:?}, \
                     and one per workload is supported; the requests their rules match are denied",
                    proxy.namespace, proxy.workload_name
                ),
            ));
        }
    }
    found.into_iter().collect()
}
