//! TLS with rustls and its `ring` provider, configured as Envoy's
//! `envoy.transport_sockets.tls` is: client configs for clusters (upstream
//! TLS and mTLS), server configs for listener filter chains (termination,
//! client certificates), peer checks by trusted CA and subject alternative
//! names, and the ClientHello parser behind the TLS inspector.
//!
//! The provider is passed to every config builder, so nothing depends on a
//! process-wide default.

pub mod client_hello;
mod connect;
mod verify;

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CipherSuite, ClientConfig, RootCertStore, ServerConfig, SupportedCipherSuite,
    SupportedProtocolVersion,
};

pub use connect::{ConnectError, Connector, HandshakeError, TlsStats, UpstreamIo, connect};
pub use verify::{SanKind, SanMatcher, uri_sans};

use crate::config::ValueMatch;

/// Why a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("{0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("none of the cipher suites is supported")]
    NoCipherSuite,
    #[error("no certificate in the PEM data")]
    NoCertificate,
    #[error("the PEM data is not valid: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
}

/// The certificate a TLS context presents.
#[derive(Debug)]
pub enum Identity {
    /// A certificate chain (leaf first) and its private key, fixed by config.
    Fixed {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    },
    /// One replaced while in use (the workload certificate, rotated).
    Rotating(Arc<RotatingIdentity>),
}

impl Identity {
    /// Reads PEM: every certificate of `chain`, and the first private key of `key`.
    pub fn from_pem(chain: &[u8], key: &[u8]) -> Result<Identity, TlsError> {
        Ok(Identity::Fixed {
            chain: certificates(chain)?,
            key: private_key(key)?,
        })
    }
}

/// A certificate and key that can be replaced while TLS contexts use them:
/// each handshake takes the one current when it starts, so a replacement
/// reaches new connections at once and leaves established ones alone.
#[derive(Debug)]
pub struct RotatingIdentity {
    current: ArcSwap<CertifiedKey>,
}

impl RotatingIdentity {
    pub fn new(first: Arc<CertifiedKey>) -> RotatingIdentity {
        RotatingIdentity {
            current: ArcSwap::new(first),
        }
    }

    /// Replaces the certificate for the handshakes that start from now on.
    pub fn replace(&self, next: Arc<CertifiedKey>) {
        self.current.store(next);
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for RotatingIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for RotatingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Every certificate in PEM data; at least one.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(certs)
}

pub fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    Ok(PrivateKeyDer::from_pem_slice(pem)?)
}

/// How a peer's certificate is checked (Envoy's `CertificateValidationContext`).
#[derive(Debug)]
pub struct Validation {
    pub roots: Arc<RootCertStore>,
    /// Any one must match; none means the chain alone is checked.
    pub sans: Vec<SanMatcher>,
}

impl Validation {
    /// Trusts the CA certificates of `pem`.
    pub fn new(pem: &[u8], sans: Vec<SanMatcher>) -> Result<Validation, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in certificates(pem)? {
            roots.add(cert)?;
        }
        Ok(Validation {
            roots: Arc::new(roots),
            sans,
        })
    }
}

/// TLS versions and TLS 1.2 cipher suites a context allows (`tls_params`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols {
    pub tls12: bool,
    pub tls13: bool,
    /// OpenSSL names, with BoringSSL's `[a|b]` groups; empty for the defaults.
    /// TLS 1.3 suites are not configurable, as in Envoy.
    pub cipher_suites: Vec<String>,
}

impl Default for Protocols {
    fn default() -> Self {
        Protocols {
            tls12: true,
            tls13: true,
            cipher_suites: Vec::new(),
        }
    }
}

/// OpenSSL's names for the TLS 1.2 suites rustls has.
const TLS12_SUITES: [(&str, CipherSuite); 6] = [
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

impl Protocols {
    fn versions(&self) -> Vec<&'static SupportedProtocolVersion> {
        let mut list = Vec::new();
        if self.tls13 {
            list.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            list.push(&rustls::version::TLS12);
        }
        list
    }

    /// The ring provider with only the wanted TLS 1.2 suites; names rustls
    /// does not have are skipped, as BoringSSL skips unknown ones.
    fn provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if self.cipher_suites.is_empty() {
            return Ok(Arc::new(provider));
        }
        let wanted: Vec<CipherSuite> = self
            .cipher_suites
            .iter()
            .flat_map(|s| s.trim_matches(['[', ']']).split('|'))
            .filter_map(|name| TLS12_SUITES.iter().find(|(n, _)| *n == name))
            .map(|(_, suite)| *suite)
            .collect();
        provider.cipher_suites.retain(|s| match s {
            SupportedCipherSuite::Tls13(_) => true,
            SupportedCipherSuite::Tls12(_) => wanted.contains(&s.suite()),
        });
        if wanted.is_empty() && !self.tls13 {
            return Err(TlsError::NoCipherSuite);
        }
        Ok(Arc::new(provider))
    }
}

/// What a cluster's `UpstreamTlsContext` asks for.
#[derive(Debug, Default)]
pub struct ClientSettings {
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    pub identity: Option<Identity>,
    pub validation: Option<Validation>,
    pub protocols: Protocols,
}

/// A client config ready for connections to a cluster's endpoints.
#[derive(Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    /// Sent as SNI; without it no SNI is sent (rustls never sends addresses).
    sni: Option<ServerName<'static>>,
}

impl ClientTls {
    pub fn new(settings: ClientSettings) -> Result<ClientTls, TlsError> {
        let sni = match settings.sni {
            Some(name) => Some(ServerName::try_from(name).map_err(|err| {
                TlsError::Rustls(rustls::Error::General(format!("invalid SNI: {err}")))
            })?),
            None => None,
        };
        let verifier = Arc::new(verify::ServerVerifier::new(settings.validation));
        let builder = ClientConfig::builder_with_provider(settings.protocols.provider()?)
            .with_protocol_versions(&settings.protocols.versions())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match settings.identity {
            Some(Identity::Fixed { chain, key }) => builder.with_client_auth_cert(chain, key)?,
            Some(Identity::Rotating(identity)) => builder.with_client_cert_resolver(identity),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = settings.alpn.into_iter().map(String::into_bytes).collect();
        Ok(ClientTls {
            config: Arc::new(config),
            sni,
        })
    }

    /// The name to present to `endpoint`: the configured SNI, else its address.
    fn server_name(&self, endpoint: SocketAddr) -> ServerName<'static> {
        self.sni
            .clone()
            .unwrap_or_else(|| ServerName::IpAddress(endpoint.ip().into()))
    }
}

/// What a filter chain's `DownstreamTlsContext` asks for.
#[derive(Debug)]
pub struct ServerSettings {
    pub identity: Identity,
    pub alpn: Vec<String>,
    pub validation: Option<Validation>,
    pub require_client_certificate: bool,
    pub protocols: Protocols,
}

/// A server config for a filter chain that terminates TLS.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// The URI SANs of the certificate presented (`By` in
    /// `x-forwarded-client-cert`). Read once: a rotated workload
    /// certificate names the same identity as the one it replaces.
    pub local_uri_sans: Arc<[String]>,
}

impl ServerTls {
    pub fn new(settings: ServerSettings) -> Result<ServerTls, TlsError> {
        let builder = ServerConfig::builder_with_provider(settings.protocols.provider()?)
            .with_protocol_versions(&settings.protocols.versions())?;
        let builder = match settings.validation {
            Some(validation) => builder.with_client_cert_verifier(verify::client_verifier(
                validation,
                settings.require_client_certificate,
            )?),
            None => builder.with_no_client_auth(),
        };
        let (mut config, leaf) = match settings.identity {
            Identity::Fixed { chain, key } => {
                let leaf = chain.first().cloned();
                (builder.with_single_cert(chain, key)?, leaf)
            }
            Identity::Rotating(identity) => {
                let leaf = identity.current().cert.first().cloned();
                (builder.with_cert_resolver(identity), leaf)
            }
        };
        config.alpn_protocols = settings.alpn.into_iter().map(String::into_bytes).collect();
        Ok(ServerTls {
            config: Arc::new(config),
            local_uri_sans: leaf.as_ref().map(uri_sans).unwrap_or_default().into(),
        })
    }
}

/// What the HTTP layer knows of a connection's TLS; in each request's extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownstreamTls {
    /// The SNI the client sent.
    pub server_name: Option<Arc<str>>,
    /// The first URI SAN of the client's certificate (a SPIFFE id in a mesh).
    pub peer_uri_san: Option<Arc<str>>,
    /// The client presented a certificate: the connection is mutual TLS.
    pub peer_certificate: bool,
    /// What this proxy says of the client's certificate in
    /// `x-forwarded-client-cert`, when its connection manager writes that:
    /// made once per connection rather than at each of its requests.
    pub client_cert_element: Option<http::HeaderValue>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Whether `value` satisfies an Envoy string matcher.
fn matches(expected: &ValueMatch, value: &str) -> bool {
    crate::http::route::value_matches(expected, value)
}
