//! Checking peer certificates as Envoy does: the chain against the trusted
//! CA, then the subject alternative names against the matchers, which
//! replace the usual hostname check. Without a validation context nothing
//! is checked beyond the handshake's own signatures.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::{TlsError, Validation, matches, provider};
use crate::config::ValueMatch;

/// Which subject alternative names a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Uri,
    /// The deprecated `match_subject_alt_names`: DNS and URI names alike.
    Any,
}

/// One of `match_typed_subject_alt_names`.
#[derive(Debug)]
pub struct SanMatcher {
    pub kind: SanKind,
    pub value: ValueMatch,
}

/// The URI SANs of a certificate; none when it cannot be parsed.
pub fn uri_sans(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(parsed) => parsed.valid_uri_names().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Whether some SAN of `cert` satisfies some matcher (true without matchers).
fn sans_match(cert: &CertificateDer<'_>, matchers: &[SanMatcher]) -> Result<(), Error> {
    if matchers.is_empty() {
        return Ok(());
    }
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let dns: Vec<&str> = parsed.valid_dns_names().collect();
    let uri: Vec<&str> = parsed.valid_uri_names().collect();
    let found = matchers.iter().any(|m| {
        let names: Box<dyn Iterator<Item = &&str>> = match m.kind {
            SanKind::Dns => Box::new(dns.iter()),
            SanKind::Uri => Box::new(uri.iter()),
            SanKind::Any => Box::new(dns.iter().chain(&uri)),
        };
        names.into_iter().any(|name| matches(&m.value, name))
    });
    if found {
        Ok(())
    } else {
        Err(Error::InvalidCertificate(CertificateError::NotValidForName))
    }
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// Checks a server's certificate for a cluster.
#[derive(Debug)]
pub(super) struct ServerVerifier {
    validation: Option<Validation>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerVerifier {
    pub(super) fn new(validation: Option<Validation>) -> ServerVerifier {
        ServerVerifier {
            validation,
            algorithms: algorithms(),
        }
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(validation) = &self.validation else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &validation.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        sans_match(end_entity, &validation.sans)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Checks clients' certificates on a listener: the chain by webpki, then the SANs.
pub(super) fn client_verifier(
    validation: Validation,
    required: bool,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let builder =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&validation.roots), provider());
    let chain = if required {
        builder.build()?
    } else {
        builder.allow_unauthenticated().build()?
    };
    Ok(Arc::new(ClientVerifier {
        chain,
        sans: validation.sans,
    }))
}

#[derive(Debug)]
struct ClientVerifier {
    chain: Arc<dyn ClientCertVerifier>,
    sans: Vec<SanMatcher>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.chain.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.chain.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .chain
            .verify_client_cert(end_entity, intermediates, now)?;
        sans_match(end_entity, &self.sans)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}
