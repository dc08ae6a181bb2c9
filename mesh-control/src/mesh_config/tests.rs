use super::*;

const TRACED: &str = r#"
trustDomain: example.org
rootNamespace: istio-system
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
enableTracing: true
accessLogFile: /dev/stdout
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  tracing:
    sampling: 50
    custom_tags:
      team:
        literal:
          value: books
      user:
        header:
          name: end-user
          defaultValue: anonymous
extensionProviders:
- name: prometheus
  prometheus: {}
- name: otel
  opentelemetry:
    service: opentelemetry-collector.observability.svc.cluster.local
    port: 4317
defaultProviders:
  tracing:
  - otel
"#;

#[test]
fn reads_the_fields_that_matter_and_ignores_the_rest() {
    let mesh = parse("mesh.yaml", TRACED).unwrap();
    assert_eq!(mesh.trust_domain, "example.org");
    assert_eq!(mesh.root_namespace, "istio-system");
    assert_eq!(
        mesh.outbound_traffic_policy,
        OutboundTrafficPolicy::RegistryOnly
    );
    let tracing = mesh.tracing.unwrap();
    assert_eq!(tracing.name, "otel");
    assert_eq!(
        tracing.service,
        "opentelemetry-collector.observability.svc.cluster.local"
    );
    assert_eq!((tracing.port, tracing.sampling), (4317, 50.0));
    assert_eq!(
        tracing.custom_tags,
        vec![
            CustomTag {
                tag: "team".into(),
                value: TagValue::Literal("books".into())
            },
            CustomTag {
                tag: "user".into(),
                value: TagValue::Header {
                    name: "end-user".into(),
                    default: "anonymous".into()
                }
            },
        ]
    );
}

#[test]
fn defaults_are_istios() {
    let empty = parse("mesh.yaml", "").unwrap();
    assert_eq!(empty, MeshConfig::default());
    let unsampled = TRACED.replace("sampling: 50", "sampling: 0");
    let mesh = parse("mesh.yaml", &unsampled).unwrap();
    assert_eq!(mesh.tracing.unwrap().sampling, DEFAULT_TRACE_SAMPLING);
    let disabled = TRACED.replace("enableTracing: true", "enableTracing: false");
    assert_eq!(parse("mesh.yaml", &disabled).unwrap().tracing, None);
}

#[test]
fn errors_name_the_file_and_the_field() {
    let unknown = TRACED.replace("  - otel", "  - zipkin");
    let err = parse("mesh.yaml", &unknown).unwrap_err().to_string();
    assert_eq!(
        err,
        "mesh config mesh.yaml: defaultProviders.tracing[0]: no extensionProviders entry is named \"zipkin\""
    );
    let not_otel = TRACED.replace("  - otel", "  - prometheus");
    let err = parse("mesh.yaml", &not_otel).unwrap_err().to_string();
    assert!(err.contains("extensionProviders[0]"), "{err}");
    let bad_port = TRACED.replace("port: 4317", "port: many");
    let err = parse("mesh.yaml", &bad_port).unwrap_err().to_string();
    assert!(
        err.starts_with("mesh config mesh.yaml: extensionProviders[1].opentelemetry.port:"),
        "{err}"
    );
    let bad_mode = TRACED.replace("REGISTRY_ONLY", "SOMETIMES");
    let err = parse("mesh.yaml", &bad_mode).unwrap_err().to_string();
    assert!(err.contains("outboundTrafficPolicy.mode"), "{err}");
}
