//! The TLS a gateway server terminates: a DownstreamTlsContext whose
//! certificates come over SDS under istiod's names.
//!
//! - `credentialName`: `kubernetes://<name>`, and for MUTUAL and
//!   OPTIONAL_MUTUAL the client CA `kubernetes://<name>-cacert`.
//! - Files (`serverCertificate`, `privateKey`, `caCertificates`):
//!   `file-cert:<cert>~<key>` and `file-root:<ca>`. istiod leaves these to
//!   the gateway's agent, which reads the files; here the control plane
//!   serves them itself as Secrets that name the files (`filename` data
//!   sources), so translation stays free of I/O and the proxy reads the
//!   files where it runs, as Istio's agent does in the gateway pod.
//! - ISTIO_MUTUAL: the mesh's `default` and `ROOTCA`.
//!
//! ALPN is `h2, http/1.1`, as istiod offers on every gateway server.
//! `verifyCertificateSpki`, `verifyCertificateHash`, `caCrl`,
//! `caCertCredentialName` and `tlsCertificates` are not translated.

use envoy_types::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    TlsCertificate, TlsParameters, common_tls_context::CombinedCertificateValidationContext,
    common_tls_context::ValidationContextType, secret, tls_parameters,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use mesh_api::networking::gateway::{ServerTlsSettings, TlsMode, TlsProtocol};

use super::super::proto::{ads, any, boolv};
use super::super::tls::{CERTIFICATE, ROOT_CA};

const ALPN: [&str; 2] = ["h2", "http/1.1"];

/// A server's TLS transport, and the secrets it names that the control
/// plane serves (the file ones).
pub struct Terminated {
    pub socket: TransportSocket,
    pub secrets: Vec<Secret>,
}

pub fn terminate(settings: &ServerTlsSettings) -> Terminated {
    let mut secrets = Vec::new();
    let mut common = CommonTlsContext {
        alpn_protocols: ALPN.iter().map(|s| (*s).to_owned()).collect(),
        tls_params: tls_params(settings),
        ..CommonTlsContext::default()
    };
    let mutual = settings.mode.is_mutual() || settings.mode == TlsMode::IstioMutual;
    let default_validation = client_names(&settings.subject_alt_names);
    let (certificate, root) = if settings.mode == TlsMode::IstioMutual {
        (CERTIFICATE.to_owned(), Some(ROOT_CA.to_owned()))
    } else if let Some(credential) = credential(settings) {
        let root = settings
            .mode
            .is_mutual()
            .then(|| format!("kubernetes://{credential}-cacert"));
        (format!("kubernetes://{credential}"), root)
    } else {
        let name = format!(
            "file-cert:{}~{}",
            settings.server_certificate, settings.private_key
        );
        secrets.push(Secret {
            name: name.clone(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: file(&settings.server_certificate),
                private_key: file(&settings.private_key),
                ..TlsCertificate::default()
            })),
        });
        let root = (!settings.ca_certificates.is_empty()).then(|| {
            let name = format!("file-root:{}", settings.ca_certificates);
            secrets.push(Secret {
                name: name.clone(),
                r#type: Some(secret::Type::ValidationContext(
                    CertificateValidationContext {
                        trusted_ca: file(&settings.ca_certificates),
                        ..CertificateValidationContext::default()
                    },
                )),
            });
            name
        });
        (name, root)
    };
    common.tls_certificate_sds_secret_configs = vec![sds(&certificate)];
    common.validation_context_type = match root {
        Some(root) => Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(default_validation),
                validation_context_sds_secret_config: Some(sds(&root)),
                ..Default::default()
            },
        )),
        None if !settings.subject_alt_names.is_empty() => {
            Some(ValidationContextType::ValidationContext(default_validation))
        }
        None => None,
    };
    let context = DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: boolv(mutual && settings.mode != TlsMode::OptionalMutual),
        ..DownstreamTlsContext::default()
    };
    Terminated {
        socket: TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(any(&context))),
        },
        secrets,
    }
}

/// The secret holding the certificate: `credentialName`, else the first
/// of `credentialNames`.
fn credential(settings: &ServerTlsSettings) -> Option<&str> {
    Some(settings.credential_name.as_str())
        .filter(|c| !c.is_empty())
        .or_else(|| settings.credential_names.first().map(String::as_str))
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads()),
    }
}

fn file(path: &str) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_owned())),
        ..DataSource::default()
    })
}

/// The client certificate names accepted, of any SAN type, as istiod
/// writes them (the deprecated untyped matchers).
#[allow(deprecated)]
fn client_names(names: &[String]) -> CertificateValidationContext {
    CertificateValidationContext {
        match_subject_alt_names: names
            .iter()
            .map(|n| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(n.clone())),
                ignore_case: false,
            })
            .collect(),
        ..CertificateValidationContext::default()
    }
}

/// Versions and ciphers, only when the server sets them (istiod leaves
/// the proxy's defaults otherwise).
fn tls_params(settings: &ServerTlsSettings) -> Option<TlsParameters> {
    use tls_parameters::TlsProtocol as Envoy;
    let version = |v: TlsProtocol| match v {
        TlsProtocol::TlsAuto => Envoy::TlsAuto,
        TlsProtocol::Tlsv1_0 => Envoy::TlSv10,
        TlsProtocol::Tlsv1_1 => Envoy::TlSv11,
        TlsProtocol::Tlsv1_2 => Envoy::TlSv12,
        TlsProtocol::Tlsv1_3 => Envoy::TlSv13,
    } as i32;
    let params = TlsParameters {
        tls_minimum_protocol_version: version(settings.min_protocol_version),
        tls_maximum_protocol_version: version(settings.max_protocol_version),
        cipher_suites: settings.cipher_suites.clone(),
        ..TlsParameters::default()
    };
    (params != TlsParameters::default()).then_some(params)
}
