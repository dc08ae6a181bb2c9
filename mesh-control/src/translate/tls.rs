//! TLS towards upstreams (DestinationRule `tls`, and auto mTLS when no rule
//! sets it) and the mTLS servers of inbound filter chains.
//!
//! Mesh certificates come over SDS under istiod's names, `default` (the
//! workload's certificate and key) and `ROOTCA` (the trust bundle), from the
//! ADS stream: the control plane serves SDS itself, where istiod leaves it
//! to the agent's `sds-grpc` socket.
//!
//! ALPN: istiod sends `istio-peer-exchange, istio` and lets an `istio.alpn`
//! HTTP filter swap in `istio-http/1.1, istio, http/1.1` (or `istio-h2`)
//! per request. The result is written straight into HTTP clusters here,
//! so the same bytes reach the server without that filter.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::TransportSocketMatch};
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
    SubjectAltNameMatcher, TlsCertificate, TlsParameters, UpstreamTlsContext,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    subject_alt_name_matcher::SanType,
    tls_parameters::TlsProtocol,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use mesh_api::names::SpiffeId;
use mesh_api::networking::destination_rule::{ClientTlsSettings, TlsMode};
use mesh_api::networking::service_entry::Location;

use super::context::{Context, PortKind};
use super::proto::{ads, any, boolv, structure};
use crate::model::Service;

/// SDS name of the workload certificate.
pub const CERTIFICATE: &str = "default";
/// SDS name of the mesh trust bundle.
pub const ROOT_CA: &str = "ROOTCA";
const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// Sets the cluster's transport: the DestinationRule's TLS mode, or auto
/// mTLS (mTLS to endpoints labelled `tlsMode: istio`, plain text to the
/// rest) for in-mesh services when no rule sets one.
pub fn apply(
    c: &mut Cluster,
    ctx: &Context,
    service: &Service,
    port: u16,
    subset: &str,
    kind: PortKind,
    settings: Option<&ClientTlsSettings>,
) {
    let mesh_tls = || {
        let sni = format!("outbound_.{port}_.{subset}_.{}", service.hostname);
        let sans = match settings {
            Some(s) if !s.subject_alt_names.is_empty() => s.subject_alt_names.clone(),
            _ => service_identities(ctx, service),
        };
        istio_mutual(sni, &sans, kind)
    };
    match settings.map(|s| s.mode) {
        None if service.location == Location::MeshInternal => {
            c.transport_socket_matches = vec![
                TransportSocketMatch {
                    name: "tlsMode-istio".into(),
                    r#match: Some(structure(serde_json::json!({"tlsMode": "istio"}))),
                    transport_socket: Some(socket(any(&mesh_tls()))),
                },
                TransportSocketMatch {
                    name: "tlsMode-disabled".into(),
                    r#match: Some(Default::default()),
                    transport_socket: Some(TransportSocket {
                        name: "envoy.transport_sockets.raw_buffer".into(),
                        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
                            &RawBuffer {},
                        ))),
                    }),
                },
            ];
        }
        None | Some(TlsMode::Disable) => {}
        Some(TlsMode::IstioMutual) => c.transport_socket = Some(socket(any(&mesh_tls()))),
        Some(TlsMode::Simple | TlsMode::Mutual) => {
            let settings = settings.expect("a mode was read from the settings");
            c.transport_socket = Some(socket(any(&originate(settings, service))));
        }
    }
}

fn socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: TLS_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

/// The SPIFFE ids the service's servers present: the ServiceEntry's
/// `subjectAltNames`, else the service accounts of its endpoints.
pub fn service_identities(ctx: &Context, service: &Service) -> Vec<String> {
    if !service.subject_alt_names.is_empty() {
        return service.subject_alt_names.clone();
    }
    let trust_domain = &ctx.snapshot.mesh.trust_domain;
    let mut ids: Vec<String> = ctx
        .endpoints(service)
        .filter(|e| !e.service_account.is_empty())
        .map(|e| SpiffeId::new(trust_domain, &e.namespace, &e.service_account).to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads()),
    }
}

fn tls_params() -> Option<TlsParameters> {
    Some(TlsParameters {
        tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
        tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
        ..TlsParameters::default()
    })
}

fn san_matchers(sans: &[String]) -> Vec<SubjectAltNameMatcher> {
    sans.iter()
        .map(|san| SubjectAltNameMatcher {
            san_type: if san.starts_with("spiffe://") {
                SanType::Uri
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(san.clone())),
                ignore_case: false,
            }),
            oid: String::new(),
        })
        .collect()
}

/// The ALPN a client offers to another sidecar, as `istio.alpn` sets it.
fn mesh_alpn(kind: PortKind) -> Vec<String> {
    let alpn: &[&str] = match kind {
        PortKind::Http { http2: false } => &["istio-http/1.1", "istio", "http/1.1"],
        PortKind::Http { http2: true } => &["istio-h2", "istio", "h2"],
        PortKind::Tcp => &["istio-peer-exchange", "istio"],
    };
    alpn.iter().map(|s| (*s).to_owned()).collect()
}

/// Mesh mTLS to another sidecar: SDS certificates, the peer's SPIFFE ids.
pub fn istio_mutual(sni: String, sans: &[String], kind: PortKind) -> UpstreamTlsContext {
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: tls_params(),
            alpn_protocols: mesh_alpn(kind),
            tls_certificate_sds_secret_configs: vec![sds(CERTIFICATE)],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: san_matchers(sans),
                        ..CertificateValidationContext::default()
                    }),
                    validation_context_sds_secret_config: Some(sds(ROOT_CA)),
                    ..Default::default()
                },
            )),
            ..CommonTlsContext::default()
        }),
        sni,
        ..UpstreamTlsContext::default()
    }
}

fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..DataSource::default()
    })
}

/// SIMPLE or MUTUAL TLS origination. Files are referenced inline (the proxy
/// reads them); a `credentialName` is fetched over SDS as
/// `kubernetes://<name>` and `kubernetes://<name>-cacert`.
fn originate(settings: &ClientTlsSettings, service: &Service) -> UpstreamTlsContext {
    let mut common = CommonTlsContext::default();
    let credential = &settings.credential_name;
    if settings.mode == TlsMode::Mutual {
        if credential.is_empty() {
            common.tls_certificates = vec![TlsCertificate {
                certificate_chain: file(&settings.client_certificate),
                private_key: file(&settings.private_key),
                ..TlsCertificate::default()
            }];
        } else {
            common.tls_certificate_sds_secret_configs =
                vec![sds(&format!("kubernetes://{credential}"))];
        }
    }
    if settings.insecure_skip_verify != Some(true) {
        let default = CertificateValidationContext {
            trusted_ca: Some(&settings.ca_certificates)
                .filter(|ca| !ca.is_empty())
                .and_then(|ca| file(ca)),
            match_typed_subject_alt_names: san_matchers(&settings.subject_alt_names),
            ..CertificateValidationContext::default()
        };
        common.validation_context_type = if !credential.is_empty() {
            Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(default),
                    validation_context_sds_secret_config: Some(sds(&format!(
                        "kubernetes://{credential}-cacert"
                    ))),
                    ..Default::default()
                },
            ))
        } else if default != CertificateValidationContext::default() {
            Some(ValidationContextType::ValidationContext(default))
        } else {
            None
        };
    }
    let sni = if !settings.sni.is_empty() {
        settings.sni.clone()
    } else if !service.hostname.starts_with('*') {
        service.hostname.clone()
    } else {
        String::new()
    };
    UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..UpstreamTlsContext::default()
    }
}

/// The server side of mesh mTLS on an inbound chain: the workload
/// certificate, and a client certificate from the mesh required.
pub fn inbound(kind: PortKind) -> TransportSocket {
    let alpn: &[&str] = match kind {
        PortKind::Http { .. } => &["h2", "http/1.1"],
        PortKind::Tcp => &["istio-peer-exchange", "istio"],
    };
    let context = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_params: tls_params(),
            alpn_protocols: alpn.iter().map(|s| (*s).to_owned()).collect(),
            tls_certificate_sds_secret_configs: vec![sds(CERTIFICATE)],
            validation_context_type: Some(ValidationContextType::CombinedValidationContext(
                CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext::default()),
                    validation_context_sds_secret_config: Some(sds(ROOT_CA)),
                    ..Default::default()
                },
            )),
            ..CommonTlsContext::default()
        }),
        require_client_certificate: boolv(true),
        ..DownstreamTlsContext::default()
    };
    socket(any(&context))
}
