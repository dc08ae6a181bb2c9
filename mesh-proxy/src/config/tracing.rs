//! The connection manager's `tracing`: which requests get a span, what the
//! span carries, and where it is exported.

use envoy_types::pb::envoy::config::trace::v3::OpenTelemetryConfig;
use envoy_types::pb::envoy::config::trace::v3::tracing::http::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing as EnvoyTracing;
use envoy_types::pb::envoy::r#type::tracing::v3::{CustomTag as EnvoyCustomTag, custom_tag};
use envoy_types::pb::envoy::r#type::v3::Percent;
use http::HeaderName;

use super::listener::{decode, type_name};
use super::{At, ConfigError};

const OPENTELEMETRY: &str = "envoy.tracers.opentelemetry";
const OPENTELEMETRY_CONFIG: &str = "envoy.config.trace.v3.OpenTelemetryConfig";
/// Envoy's default for `max_path_tag_length`.
const DEFAULT_MAX_PATH_TAG_LENGTH: usize = 256;

/// Tracing of one connection manager, with the OpenTelemetry tracer.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracing {
    /// The cluster spans are exported to over OTLP/gRPC (see
    /// [`super::grpc_service`]).
    pub collector_cluster: String,
    /// `service.name` of the spans' resource.
    pub service_name: String,
    /// Percentages, 0 to 100.
    pub client_sampling: f64,
    pub random_sampling: f64,
    pub overall_sampling: f64,
    pub custom_tags: Vec<CustomTag>,
    /// The router starts a child span for the upstream request.
    pub spawn_upstream_span: bool,
    /// `http.url` is cut to this many bytes.
    pub max_path_tag_length: usize,
}

/// A tag added to every span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomTag {
    pub tag: String,
    pub value: TagValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValue {
    /// A fixed value; environment tags are read once, when compiled.
    Literal(String),
    /// A request header; the default when absent, and no tag without one.
    RequestHeader { name: HeaderName, default: String },
    /// Dynamic metadata, which tags do not read: only the default is ever
    /// written, and no tag without one.
    Missing { default: String },
}

/// `tracing` of a connection manager; `None` without a provider, since
/// then Envoy has no tracer to create spans with either.
pub(super) fn compile(
    tracing: &EnvoyTracing,
    env: &dyn Fn(&str) -> Option<String>,
    at: &At,
) -> Result<Option<Tracing>, ConfigError> {
    if !tracing.operation.is_empty() || !tracing.upstream_operation.is_empty() {
        return Err(at.field("operation").unsupported("span operation formats"));
    }
    let Some(provider) = &tracing.provider else {
        return Ok(None);
    };
    let at_provider = at.field("provider");
    if provider.name != OPENTELEMETRY {
        return Err(at_provider
            .field("name")
            .unsupported(format_args!("tracer {:?}", provider.name)));
    }
    let Some(ConfigType::TypedConfig(any)) = &provider.config_type else {
        return Err(at_provider
            .field("typed_config")
            .error("typed_config is required"));
    };
    let at_config = at_provider.field("typed_config");
    if type_name(any) != OPENTELEMETRY_CONFIG {
        return Err(at_config
            .field("@type")
            .unsupported(format_args!("tracer config {}", any.type_url)));
    }
    let config = decode::<OpenTelemetryConfig>(any, &at_config)?;
    Ok(Some(Tracing {
        collector_cluster: collector(&config, &at_config)?,
        service_name: config.service_name,
        client_sampling: percent(
            tracing.client_sampling.as_ref(),
            &at.field("client_sampling"),
        )?,
        random_sampling: percent(
            tracing.random_sampling.as_ref(),
            &at.field("random_sampling"),
        )?,
        overall_sampling: percent(
            tracing.overall_sampling.as_ref(),
            &at.field("overall_sampling"),
        )?,
        custom_tags: tracing
            .custom_tags
            .iter()
            .enumerate()
            .map(|(i, tag)| custom_tag(tag, env, &at.field("custom_tags").index(i)))
            .collect::<Result<_, _>>()?,
        spawn_upstream_span: tracing
            .spawn_upstream_span
            .as_ref()
            .is_some_and(|b| b.value),
        max_path_tag_length: tracing
            .max_path_tag_length
            .as_ref()
            .map_or(DEFAULT_MAX_PATH_TAG_LENGTH, |l| l.value as usize),
    }))
}

/// The cluster of `grpc_service.envoy_grpc`, the only exporter this proxy has.
fn collector(config: &OpenTelemetryConfig, at: &At) -> Result<String, ConfigError> {
    let refused = [
        ("http_service", config.http_service.is_some()),
        ("exporter", config.exporter.is_some()),
        ("resource_detectors", !config.resource_detectors.is_empty()),
        ("sampler", config.sampler.is_some()),
    ];
    at.refuse(&refused)?;
    let at = at.field("grpc_service");
    let Some(service) = &config.grpc_service else {
        return Err(at.error("a grpc_service is required"));
    };
    Ok(super::grpc_service::compile(service, &at)?.cluster)
}

/// A sampling percentage; unset is 100%, as in Envoy.
fn percent(value: Option<&Percent>, at: &At) -> Result<f64, ConfigError> {
    let value = value.map_or(100.0, |p| p.value);
    if !(0.0..=100.0).contains(&value) {
        return Err(at.error(format_args!("{value} is not between 0 and 100")));
    }
    Ok(value)
}

fn custom_tag(
    tag: &EnvoyCustomTag,
    env: &dyn Fn(&str) -> Option<String>,
    at: &At,
) -> Result<CustomTag, ConfigError> {
    use custom_tag::Type;
    let value = match &tag.r#type {
        Some(Type::Literal(literal)) => TagValue::Literal(literal.value.clone()),
        Some(Type::Environment(variable)) => {
            TagValue::Literal(env(&variable.name).unwrap_or_else(|| variable.default_value.clone()))
        }
        Some(Type::RequestHeader(header)) => TagValue::RequestHeader {
            name: HeaderName::try_from(header.name.as_str()).map_err(|_| {
                at.field("request_header")
                    .field("name")
                    .error(format_args!("{:?} is not a header name", header.name))
            })?,
            default: header.default_value.clone(),
        },
        Some(Type::Metadata(metadata)) => TagValue::Missing {
            default: metadata.default_value.clone(),
        },
        Some(Type::Value(_)) => return Err(at.field("value").unsupported("formatted tag values")),
        None => return Err(at.error("a tag value is required")),
    };
    Ok(CustomTag {
        tag: tag.tag.clone(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::GrpcService;
    use envoy_types::pb::envoy::config::core::v3::grpc_service::{EnvoyGrpc, TargetSpecifier};
    use envoy_types::pb::envoy::config::trace::v3::tracing::Http;
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

    use super::*;

    fn otel(config: OpenTelemetryConfig) -> EnvoyTracing {
        EnvoyTracing {
            provider: Some(Http {
                name: OPENTELEMETRY.into(),
                config_type: Some(ConfigType::TypedConfig(Any {
                    type_url: format!("type.googleapis.com/{OPENTELEMETRY_CONFIG}"),
                    value: config.encode_to_vec(),
                })),
            }),
            ..EnvoyTracing::default()
        }
    }

    fn grpc(cluster: &str) -> OpenTelemetryConfig {
        OpenTelemetryConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                    cluster_name: cluster.into(),
                    ..EnvoyGrpc::default()
                })),
                ..GrpcService::default()
            }),
            service_name: "reviews.default".into(),
            ..OpenTelemetryConfig::default()
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn at() -> At {
        At::resource("listener", "l").field("tracing")
    }

    #[test]
    fn compiles_what_istiod_writes() {
        let mut tracing = otel(grpc("outbound|4317||otel.observability.svc.cluster.local"));
        tracing.random_sampling = Some(Percent { value: 1.0 });
        tracing.custom_tags = vec![
            EnvoyCustomTag {
                tag: "istio.namespace".into(),
                r#type: Some(custom_tag::Type::Literal(custom_tag::Literal {
                    value: "default".into(),
                })),
            },
            EnvoyCustomTag {
                tag: "pod".into(),
                r#type: Some(custom_tag::Type::Environment(custom_tag::Environment {
                    name: "POD_NAME".into(),
                    default_value: "unknown".into(),
                })),
            },
        ];
        let env = |name: &str| (name == "POD_NAME").then(|| "reviews-1".to_owned());
        let compiled = compile(&tracing, &env, &at()).unwrap().unwrap();
        assert_eq!(
            compiled.collector_cluster,
            "outbound|4317||otel.observability.svc.cluster.local"
        );
        assert_eq!(compiled.service_name, "reviews.default");
        assert_eq!(
            (compiled.random_sampling, compiled.client_sampling),
            (1.0, 100.0)
        );
        assert_eq!(
            compiled.custom_tags[1].value,
            TagValue::Literal("reviews-1".into())
        );
        assert_eq!(compiled.max_path_tag_length, 256);
    }

    #[test]
    fn without_a_provider_there_is_no_tracer() {
        let compiled = compile(&EnvoyTracing::default(), &no_env, &at()).unwrap();
        assert_eq!(compiled, None);
    }

    #[test]
    fn other_tracers_are_refused_by_field() {
        let mut tracing = otel(grpc("c"));
        tracing.provider.as_mut().unwrap().name = "envoy.tracers.zipkin".into();
        let err = compile(&tracing, &no_env, &at()).unwrap_err();
        assert_eq!(err.field, "tracing.provider.name");
        assert!(err.reason.contains("envoy.tracers.zipkin"), "{err}");

        let mut http = grpc("c");
        http.http_service = Some(Default::default());
        let err = compile(&otel(http), &no_env, &at()).unwrap_err();
        assert_eq!(err.field, "tracing.provider.typed_config.http_service");

        let err = compile(&otel(grpc("")), &no_env, &at()).unwrap_err();
        assert_eq!(
            err.field,
            "tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name"
        );
    }

    #[test]
    fn sampling_out_of_range_is_refused() {
        let mut tracing = otel(grpc("c"));
        tracing.overall_sampling = Some(Percent { value: 150.0 });
        let err = compile(&tracing, &no_env, &at()).unwrap_err();
        assert_eq!(err.field, "tracing.overall_sampling");
    }
}
