//! Tracing on every connection manager of sidecars and gateways, as istiod
//! sets it from the mesh's default tracing provider: the OpenTelemetry
//! tracer exporting over gRPC to `outbound|<port>||<collector host>`,
//! `random_sampling` from `defaultConfig.tracing.sampling` (client and
//! overall sampling 100%), Istio's tags, and for gateways a span of their
//! own for the upstream request.
//!
//! As in istiod, a provider whose service is not in the registry (or whose
//! host name is ambiguous across namespaces) configures no tracing. The
//! tags istiod adds for dry-run AuthorizationPolicies
//! (`istio.authorization.dry_run.*`, read from the RBAC filter's dynamic
//! metadata) are left out: mesh-proxy does not tag spans from dynamic
//! metadata.

use envoy_types::pb::envoy::config::core::v3::GrpcService;
use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;
use envoy_types::pb::envoy::config::trace::v3::tracing::{Http, http};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::UInt32Value;
use mesh_api::names::ProxyKind;
use prost::{Message, Name};

use super::proto::{any, boolv};
use crate::model::{MeshSnapshot, Proxy, TagValue, TracingProvider};

const OPENTELEMETRY: &str = "envoy.tracers.opentelemetry";

/// What of a proxy its outbound connection managers' tracing depends on,
/// beyond the namespace: proxies that share outbound resources must agree
/// on it. `None` without tracing.
pub(super) fn scope(proxy: &Proxy, snapshot: &MeshSnapshot) -> Option<Vec<String>> {
    snapshot.mesh.tracing.as_ref()?;
    let identity = Identity::of(proxy);
    Some(vec![
        identity.service,
        identity.revision,
        identity.mesh_id,
        identity.cluster_id,
    ])
}

/// Sets `tracing` on every HTTP connection manager of `listeners`.
pub(super) fn apply(listeners: &mut [Listener], proxy: &Proxy, snapshot: &MeshSnapshot) {
    let Some(tracing) = connection_manager_tracing(proxy, snapshot) else {
        return;
    };
    let chains = listeners.iter_mut().flat_map(|l| {
        l.filter_chains
            .iter_mut()
            .chain(l.default_filter_chain.as_mut())
    });
    for filter in chains.flat_map(|chain| chain.filters.iter_mut()) {
        let Some(filter::ConfigType::TypedConfig(config)) = &mut filter.config_type else {
            continue;
        };
        if !config
            .type_url
            .ends_with(&HttpConnectionManager::full_name())
        {
            continue;
        }
        // Built by this crate a moment ago, so it decodes.
        if let Ok(mut hcm) = HttpConnectionManager::decode(config.value.as_slice()) {
            hcm.tracing = Some(tracing.clone());
            *config = any(&hcm);
        }
    }
}

fn connection_manager_tracing(proxy: &Proxy, snapshot: &MeshSnapshot) -> Option<Tracing> {
    let provider = snapshot.mesh.tracing.as_ref()?;
    let (hostname, cluster) = collector(provider, snapshot)?;
    let identity = Identity::of(proxy);
    let config = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                cluster_name: cluster,
                authority: hostname,
                ..EnvoyGrpc::default()
            })),
            ..GrpcService::default()
        }),
        service_name: format!("{}.{}", identity.service, identity.namespace),
        ..OpenTelemetryConfig::default()
    };
    let percent = |value| Some(Percent { value });
    Some(Tracing {
        client_sampling: percent(100.0),
        random_sampling: percent(provider.sampling),
        overall_sampling: percent(100.0),
        custom_tags: custom_tags(&identity, provider),
        max_path_tag_length: provider
            .max_path_tag_length
            .map(|value| UInt32Value { value }),
        provider: Some(Http {
            name: OPENTELEMETRY.into(),
            config_type: Some(http::ConfigType::TypedConfig(any(&config))),
        }),
        spawn_upstream_span: if proxy.kind == ProxyKind::Router {
            boolv(true)
        } else {
            None
        },
        ..Tracing::default()
    })
}

/// The collector's host name and cluster (see [`super::provider`]).
fn collector(provider: &TracingProvider, snapshot: &MeshSnapshot) -> Option<(String, String)> {
    let found = super::provider::lookup(&provider.service, provider.port, snapshot).ok()?;
    Some((found.hostname, found.cluster))
}

/// The workload as Istio's tags name it, from its labels the way the
/// injector derives `service.istio.io/canonical-*`.
struct Identity {
    service: String,
    revision: String,
    namespace: String,
    mesh_id: String,
    cluster_id: String,
}

impl Identity {
    fn of(proxy: &Proxy) -> Identity {
        let label = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| proxy.labels.get(*k).filter(|v| !v.is_empty()))
                .cloned()
        };
        let metadata = |key: &str| {
            proxy
                .metadata
                .get(key)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .unwrap_or("unknown")
                .to_owned()
        };
        let service = label(&[
            "service.istio.io/canonical-name",
            "app.kubernetes.io/name",
            "app",
        ])
        .or_else(|| Some(proxy.workload_name.clone()).filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "unknown".into());
        Identity {
            service,
            revision: label(&[
                "service.istio.io/canonical-revision",
                "app.kubernetes.io/version",
                "version",
            ])
            .unwrap_or_else(|| "latest".into()),
            namespace: Some(proxy.namespace.clone())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            mesh_id: metadata("MESH_ID"),
            cluster_id: metadata("CLUSTER_ID"),
        }
    }
}

/// Istio's service tags and the mesh's `custom_tags`, sorted by tag.
fn custom_tags(identity: &Identity, provider: &TracingProvider) -> Vec<CustomTag> {
    let literal = |tag: &str, value: &str| CustomTag {
        tag: tag.into(),
        r#type: Some(custom_tag::Type::Literal(custom_tag::Literal {
            value: value.into(),
        })),
    };
    let mut tags = vec![
        literal("istio.canonical_revision", &identity.revision),
        literal("istio.canonical_service", &identity.service),
        literal("istio.cluster_id", &identity.cluster_id),
        literal("istio.mesh_id", &identity.mesh_id),
        literal("istio.namespace", &identity.namespace),
    ];
    tags.extend(provider.custom_tags.iter().map(|tag| match &tag.value {
        TagValue::Literal(value) => literal(&tag.tag, value),
        TagValue::Environment { name, default } => CustomTag {
            tag: tag.tag.clone(),
            r#type: Some(custom_tag::Type::Environment(custom_tag::Environment {
                name: name.clone(),
                default_value: default.clone(),
            })),
        },
        TagValue::Header { name, default } => CustomTag {
            tag: tag.tag.clone(),
            r#type: Some(custom_tag::Type::RequestHeader(custom_tag::Header {
                name: name.clone(),
                default_value: default.clone(),
            })),
        },
    }));
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    tags
}
