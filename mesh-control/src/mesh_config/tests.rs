use super::*;
use crate::model::{ExtAuthzKind, RequestBodyInCheck};

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

/// Two external authorizers, and a tracing provider.
pub(crate) const AUTHORIZERS: &str = r#"
extensionProviders:
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: ext-authz.foo.svc.cluster.local
    port: 8000
    pathPrefix: /check
    timeout: 10s
    failOpen: true
    statusOnError: "503"
    includeRequestHeadersInCheck: [x-ext-authz, "x-prefix-*"]
    includeAdditionalHeadersInCheck: {x-added: "yes"}
    includeRequestBodyInCheck: {maxRequestBytes: 4096, allowPartialMessage: true}
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [x-reason]
    headersToDownstreamOnAllow: ["*-seen"]
- name: ext-authz-grpc
  envoyExtAuthzGrpc:
    service: foo/ext-authz.foo.svc.cluster.local
    port: 9000
"#;

#[test]
fn reads_external_authorizers() {
    let mesh = parse("mesh.yaml", AUTHORIZERS).unwrap();
    assert_eq!(
        mesh.ext_authz.keys().collect::<Vec<_>>(),
        ["ext-authz-grpc", "ext-authz-http"]
    );
    let http = &mesh.ext_authz["ext-authz-http"];
    assert_eq!(
        (http.service.as_str(), http.port),
        ("ext-authz.foo.svc.cluster.local", 8000)
    );
    assert_eq!(http.timeout, Some(std::time::Duration::from_secs(10)));
    assert!(http.fail_open);
    assert_eq!(http.status_on_error, Some(503));
    assert_eq!(
        http.include_request_body,
        Some(RequestBodyInCheck {
            max_request_bytes: 4096,
            allow_partial_message: true,
            pack_as_bytes: false
        })
    );
    let ExtAuthzKind::Http(authorizer) = &http.kind else {
        panic!("an HTTP authorizer");
    };
    assert_eq!(authorizer.path_prefix, "/check");
    assert_eq!(
        authorizer.include_request_headers,
        ["x-ext-authz", "x-prefix-*"]
    );
    assert_eq!(authorizer.include_additional_headers["x-added"], "yes");
    assert_eq!(authorizer.headers_to_downstream_on_allow, ["*-seen"]);
    let grpc = &mesh.ext_authz["ext-authz-grpc"];
    assert_eq!(grpc.kind, ExtAuthzKind::Grpc);
    assert_eq!((grpc.timeout, grpc.status_on_error), (None, None));
}

#[test]
fn bad_authorizer_values_name_the_provider_and_the_field() {
    let error = |from: &str, to: &str| {
        parse("mesh.yaml", &AUTHORIZERS.replace(from, to))
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("port: 8000", "port: 70000"),
        "mesh config mesh.yaml: extensionProviders[1].envoyExtAuthzHttp.port: \
         provider \"ext-authz-http\": 70000 is not between 1 and 65535"
    );
    let err = error("statusOnError: \"503\"", "statusOnError: \"999\"");
    assert!(
        err.contains("envoyExtAuthzHttp.statusOnError: provider \"ext-authz-http\": \"999\""),
        "{err}"
    );
    let err = error("pathPrefix: /check", "pathPrefix: check");
    assert!(err.contains("pathPrefix"), "{err}");
    assert!(err.contains("does not begin with /"), "{err}");
    let err = error("[x-user]", "[\"*\"]");
    assert!(
        err.contains("headersToUpstreamOnAllow[0]: provider \"ext-authz-http\": a lone"),
        "{err}"
    );
    let err = error("timeout: 10s", "timeout: soon");
    assert!(
        err.contains(
            "extensionProviders[1].envoyExtAuthzHttp.timeout: provider \"ext-authz-http\""
        ),
        "{err}"
    );
    let err = error("    pathPrefix: /check", "    pathprefix: /check");
    assert!(err.contains("unknown field `pathprefix`"), "{err}");
    let err = error("port: 9000", "port: 0");
    assert!(
        err.contains("envoyExtAuthzGrpc.port: provider \"ext-authz-grpc\""),
        "{err}"
    );
    let err = error("    port: 9000", "    port: 9000\n    pathPrefix: /check");
    assert!(
        err.contains(
            "envoyExtAuthzGrpc.pathPrefix: provider \"ext-authz-grpc\": only envoyExtAuthzHttp"
        ),
        "{err}"
    );
    let err = error("name: ext-authz-grpc", "name: ext-authz-http");
    assert!(
        err.contains("extensionProviders[2].name: \"ext-authz-http\" already names"),
        "{err}"
    );
    let err = error("name: ext-authz-grpc", "name: Ext_Authz");
    assert!(err.contains("is not a DNS label"), "{err}");
    let err = error("maxRequestBytes: 4096", "maxRequestBytes: 0");
    assert!(
        err.contains("includeRequestBodyInCheck.maxRequestBytes"),
        "{err}"
    );
}
