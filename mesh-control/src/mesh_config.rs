//! Istio's MeshConfig from a YAML file (what istiod reads from the `mesh`
//! key of its `istio` ConfigMap): the fields the control plane uses, with
//! Istio's defaults. Unknown fields are ignored, as other MeshConfig
//! settings are not implemented, except inside the external authorizers
//! of `extensionProviders` ([`ext_authz`]), whose every field is read;
//! errors name the file and the field, and the provider when in one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::{
    CustomTag, ExtAuthzProvider, MeshConfig, OutboundTrafficPolicy, TagValue, TracingProvider,
};

mod ext_authz;

/// Istio's `PILOT_TRACE_SAMPLING` default: 1% of requests.
pub const DEFAULT_TRACE_SAMPLING: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum MeshConfigError {
    #[error("cannot read the mesh config {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("mesh config {file}: line {line}: {reason}")]
    Yaml {
        file: String,
        line: usize,
        reason: String,
    },
    #[error("mesh config {file}: {field}: {reason}")]
    Field {
        file: String,
        field: String,
        reason: String,
    },
}

/// Reads the MeshConfig at `path`.
pub fn read(path: &Path) -> Result<MeshConfig, MeshConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MeshConfigError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Reads MeshConfig YAML; `file` names it in errors. An empty file is the default.
pub fn parse(file: &str, text: &str) -> Result<MeshConfig, MeshConfigError> {
    let (documents, error) = mesh_api::load::parse_documents(text);
    if let Some(error) = error {
        return Err(MeshConfigError::Yaml {
            file: file.into(),
            line: error.line,
            reason: error.reason,
        });
    }
    let value = documents
        .into_iter()
        .next()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .unwrap_or_else(|| serde_json::json!({}));
    let raw: RawMeshConfig =
        serde_path_to_error::deserialize(&value).map_err(|err| MeshConfigError::Field {
            file: file.into(),
            field: err.path().to_string(),
            reason: with_provider(&value, err.path(), err.inner().to_string()),
        })?;
    raw.into_model()
        .map_err(|(field, reason)| MeshConfigError::Field {
            file: file.into(),
            field,
            reason,
        })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMeshConfig {
    trust_domain: Option<String>,
    root_namespace: Option<String>,
    #[serde(default)]
    outbound_traffic_policy: RawOutboundTrafficPolicy,
    /// Istio's default is true.
    enable_tracing: Option<bool>,
    #[serde(default)]
    default_config: RawProxyConfig,
    #[serde(default)]
    extension_providers: Vec<RawExtensionProvider>,
    #[serde(default)]
    default_providers: RawDefaultProviders,
}

#[derive(Debug, Default, Deserialize)]
struct RawOutboundTrafficPolicy {
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawProxyConfig {
    #[serde(default)]
    tracing: RawTracing,
}

#[derive(Debug, Default, Deserialize)]
struct RawTracing {
    sampling: Option<f64>,
    #[serde(default, alias = "customTags")]
    custom_tags: BTreeMap<String, RawCustomTag>,
    #[serde(alias = "maxPathTagLength")]
    max_path_tag_length: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCustomTag {
    literal: Option<RawLiteral>,
    environment: Option<RawFromName>,
    header: Option<RawFromName>,
}

#[derive(Debug, Deserialize)]
struct RawLiteral {
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFromName {
    name: String,
    #[serde(default)]
    default_value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtensionProvider {
    #[serde(default)]
    name: String,
    opentelemetry: Option<RawOpenTelemetry>,
    envoy_ext_authz_http: Option<ext_authz::RawExtAuthz>,
    envoy_ext_authz_grpc: Option<ext_authz::RawExtAuthz>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOpenTelemetry {
    service: String,
    port: u16,
    max_tag_length: Option<u32>,
    http: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDefaultProviders {
    #[serde(default)]
    tracing: Vec<String>,
}

/// A field path and why its value is refused.
type FieldError = (String, String);

impl RawMeshConfig {
    fn into_model(self) -> Result<MeshConfig, FieldError> {
        let defaults = MeshConfig::default();
        let outbound_traffic_policy = match self.outbound_traffic_policy.mode.as_deref() {
            None | Some("ALLOW_ANY") => OutboundTrafficPolicy::AllowAny,
            Some("REGISTRY_ONLY") => OutboundTrafficPolicy::RegistryOnly,
            Some(other) => {
                return Err((
                    "outboundTrafficPolicy.mode".into(),
                    format!("{other:?} is neither ALLOW_ANY nor REGISTRY_ONLY"),
                ));
            }
        };
        let tracing = match self.enable_tracing {
            Some(false) => None,
            _ => self.tracing_provider()?,
        };
        let ext_authz = self.ext_authz_providers()?;
        Ok(MeshConfig {
            trust_domain: self.trust_domain.unwrap_or(defaults.trust_domain),
            root_namespace: self.root_namespace.unwrap_or(defaults.root_namespace),
            outbound_traffic_policy,
            tracing,
            ext_authz,
            ..defaults
        })
    }

    /// The `envoyExtAuthzHttp` and `envoyExtAuthzGrpc` providers by name.
    fn ext_authz_providers(&self) -> Result<BTreeMap<String, ExtAuthzProvider>, FieldError> {
        let mut providers = BTreeMap::new();
        for (index, provider) in self.extension_providers.iter().enumerate() {
            let at = ext_authz::At {
                path: format!("extensionProviders[{index}]"),
                name: &provider.name,
            };
            let parsed = match (
                &provider.envoy_ext_authz_http,
                &provider.envoy_ext_authz_grpc,
            ) {
                (None, None) => continue,
                (Some(http), None) => ext_authz::http(http, &at)?,
                (None, Some(grpc)) => ext_authz::grpc(grpc, &at)?,
                (Some(_), Some(_)) => {
                    return Err((
                        at.path,
                        format!(
                            "provider {:?}: envoyExtAuthzHttp and envoyExtAuthzGrpc are exclusive",
                            provider.name
                        ),
                    ));
                }
            };
            ext_authz::name(&provider.name, &at)?;
            let first = self.extension_providers[..index]
                .iter()
                .position(|p| p.name == provider.name);
            if let Some(first) = first {
                return Err((
                    format!("{}.name", at.path),
                    format!(
                        "{:?} already names extensionProviders[{first}]",
                        provider.name
                    ),
                ));
            }
            providers.insert(provider.name.clone(), parsed);
        }
        Ok(providers)
    }

    /// The first of `defaultProviders.tracing`, which must be an
    /// OpenTelemetry provider of `extensionProviders`.
    fn tracing_provider(&self) -> Result<Option<TracingProvider>, FieldError> {
        let Some(name) = self.default_providers.tracing.first() else {
            return Ok(None);
        };
        let field = "defaultProviders.tracing[0]";
        let (index, provider) = self
            .extension_providers
            .iter()
            .enumerate()
            .find(|(_, p)| &p.name == name)
            .ok_or_else(|| {
                (
                    field.to_owned(),
                    format!("no extensionProviders entry is named {name:?}"),
                )
            })?;
        let Some(otel) = &provider.opentelemetry else {
            return Err((
                format!("extensionProviders[{index}]"),
                format!(
                    "provider {name:?} is not opentelemetry, the only tracing provider supported"
                ),
            ));
        };
        if otel.http.is_some() {
            return Err((
                format!("extensionProviders[{index}].opentelemetry.http"),
                "OTLP over HTTP is not supported; leave it out to export over gRPC".into(),
            ));
        }
        let tracing = &self.default_config.tracing;
        Ok(Some(TracingProvider {
            name: name.clone(),
            service: otel.service.clone(),
            port: otel.port,
            sampling: sampling(tracing.sampling),
            max_path_tag_length: otel.max_tag_length.or(tracing.max_path_tag_length),
            custom_tags: tracing
                .custom_tags
                .iter()
                .map(|(tag, raw)| custom_tag(tag, raw))
                .collect::<Result<_, _>>()?,
        }))
    }
}

/// A reason, with the name of the extension provider `path` is in.
fn with_provider(
    value: &serde_json::Value,
    path: &serde_path_to_error::Path,
    reason: String,
) -> String {
    use serde_path_to_error::Segment;
    let mut segments = path.iter();
    let index = match (segments.next(), segments.next()) {
        (Some(Segment::Map { key }), Some(Segment::Seq { index }))
            if key == "extensionProviders" =>
        {
            *index
        }
        _ => return reason,
    };
    match value["extensionProviders"][index]["name"].as_str() {
        Some(name) => format!("provider {name:?}: {reason}"),
        None => reason,
    }
}

/// `defaultConfig.tracing.sampling` as istiod reads it: unset or 0 is the
/// default, and above 100 falls back to 1%.
fn sampling(configured: Option<f64>) -> f64 {
    match configured {
        None => DEFAULT_TRACE_SAMPLING,
        Some(s) if s == 0.0 || s > 100.0 => DEFAULT_TRACE_SAMPLING,
        Some(s) => s.max(0.0),
    }
}

fn custom_tag(tag: &str, raw: &RawCustomTag) -> Result<CustomTag, FieldError> {
    let value = match (&raw.literal, &raw.environment, &raw.header) {
        (Some(literal), None, None) => TagValue::Literal(literal.value.clone()),
        (None, Some(env), None) => TagValue::Environment {
            name: env.name.clone(),
            default: env.default_value.clone(),
        },
        (None, None, Some(header)) => TagValue::Header {
            name: header.name.clone(),
            default: header.default_value.clone(),
        },
        _ => {
            return Err((
                format!("defaultConfig.tracing.custom_tags.{tag}"),
                "exactly one of literal, environment or header is required".into(),
            ));
        }
    };
    Ok(CustomTag {
        tag: tag.to_owned(),
        value,
    })
}

#[cfg(test)]
pub(crate) mod tests;
