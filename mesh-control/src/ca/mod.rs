//! The mesh's certificate authority: it signs workload certificates whose
//! only name is the caller's SPIFFE id.
//!
//! - [`store`] holds the signing certificate and key, from a directory laid out
//!   as Istio's `cacerts` (`ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
//!   `cert-chain.pem`): a plugged-in intermediate when the files are there,
//!   else a self-signed root made on first start and kept (the key file
//!   mode 0600).
//! - [`token`] makes and checks bootstrap tokens, how a workload of the
//!   local mesh proves who it is.
//! - [`service`] answers `istio.v1.auth.IstioCertificateService/CreateCertificate`
//!   on the secure port, over TLS, where ADS is also served to proxies that
//!   present a mesh certificate.
//!
//! A certificate is issued for the identity the caller proved, never for a
//! name the CSR asks for: a CSR naming another identity is refused. Only the
//! CSR's public key is used; its signature must verify (proof that the
//! caller holds the key). The key of the CA never leaves this process.

pub mod service;
pub mod store;
pub mod token;

use std::time::{Duration, SystemTime};

use mesh_api::names::SpiffeId;
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, KeyUsagePurpose, SanType,
};

pub use store::{CaFiles, LoadError};

/// Istio's default lifetime of a workload certificate.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Istio's default cap on a requested lifetime (`MAX_WORKLOAD_CERT_TTL`).
pub const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Certificates start up to this long before they are signed, for clocks
/// that run a little behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// How far a certificate of lifetime `ttl` is backdated: at most a quarter
/// of it, so that a short-lived certificate is not mostly in the past
/// (proxies renew at half of notBefore..notAfter).
fn backdate(ttl: Duration) -> Duration {
    BACKDATE.min(ttl / 4)
}

/// Signs workload certificates.
#[derive(Debug)]
pub struct CertificateAuthority {
    files: CaFiles,
    default_ttl: Duration,
    max_ttl: Duration,
}

/// Why a certificate was not issued; each says what was wrong with the request.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("the CSR does not read: {0}")]
    MalformedCsr(String),
    #[error("the CSR asks for {asked}, but the caller is {caller}")]
    OtherIdentity { asked: String, caller: String },
    #[error("the certificate could not be signed: {0}")]
    Signing(String),
}

impl CertificateAuthority {
    pub fn new(files: CaFiles, default_ttl: Duration, max_ttl: Duration) -> CertificateAuthority {
        CertificateAuthority {
            files,
            default_ttl,
            max_ttl: max_ttl.max(Duration::from_secs(1)),
        }
    }

    /// The root certificate proxies trust (`ROOTCA`), PEM.
    pub fn root_pem(&self) -> &str {
        &self.files.root_pem
    }

    /// The lifetime a request gets: what it asks (0 for the default),
    /// capped at the maximum.
    pub fn ttl(&self, asked_secs: i64) -> Duration {
        let asked = u64::try_from(asked_secs)
            .ok()
            .filter(|s| *s > 0)
            .map_or(self.default_ttl, Duration::from_secs);
        asked.min(self.max_ttl)
    }

    /// A certificate for `identity` with the public key of `csr_pem`, valid
    /// for `ttl`: the chain from it to the root, PEM, leaf first.
    pub fn sign(
        &self,
        csr_pem: &str,
        identity: &SpiffeId,
        ttl: Duration,
    ) -> Result<Vec<String>, SignError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|err| SignError::MalformedCsr(err.to_string()))?;
        let caller = identity.to_string();
        for san in &csr.params.subject_alt_names {
            let asked = match san {
                SanType::URI(uri) => uri.as_str().to_owned(),
                SanType::DnsName(name) => name.as_str().to_owned(),
                other => format!("{other:?}"),
            };
            if asked != caller {
                return Err(SignError::OtherIdentity { asked, caller });
            }
        }
        let leaf = workload_params(identity, ttl)?
            .signed_by(&csr.public_key, &self.files.issuer)
            .map_err(|err| SignError::Signing(err.to_string()))?;
        let mut chain = vec![leaf.pem()];
        chain.extend(self.files.chain_pem.iter().cloned());
        Ok(chain)
    }

    /// A server certificate for the CA's own TLS port, with its key.
    pub fn serving_certificate(
        &self,
        names: &[String],
    ) -> Result<(Vec<String>, rcgen::KeyPair), SignError> {
        let key = rcgen::KeyPair::generate().map_err(|err| SignError::Signing(err.to_string()))?;
        let mut params = CertificateParams::new(names.to_vec())
            .map_err(|err| SignError::Signing(err.to_string()))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "mesh-control");
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + self.max_ttl).into();
        let cert = params
            .signed_by(&key, &self.files.issuer)
            .map_err(|err| SignError::Signing(err.to_string()))?;
        let mut chain = vec![cert.pem()];
        chain.extend(self.files.chain_pem.iter().cloned());
        Ok((chain, key))
    }
}

/// What a workload certificate says: no subject, the SPIFFE id as its only
/// name, for TLS clients and servers alike (as Istio's).
fn workload_params(identity: &SpiffeId, ttl: Duration) -> Result<CertificateParams, SignError> {
    let mut params = CertificateParams::default();
    // As Istio's CA: no subject (the SAN, then critical, names the
    // workload), which is what applications see of the caller in
    // x-forwarded-client-cert (`Subject=""`).
    params.distinguished_name = DistinguishedName::new();
    let uri = identity
        .to_string()
        .try_into()
        .map_err(|err: rcgen::Error| SignError::Signing(err.to_string()))?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = SystemTime::now();
    params.not_before = (now - backdate(ttl)).into();
    params.not_after = (now + ttl).into();
    Ok(params)
}

#[cfg(test)]
mod tests;
