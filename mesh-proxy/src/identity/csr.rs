//! The workload's key and its certificate signing request. The key is made
//! in memory for each certificate and never leaves the process: it is not
//! written anywhere, and its `Debug` shows no key material.

use mesh_api::names::SpiffeId;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A fresh key, and a request to certify it for one SPIFFE id.
#[derive(Debug)]
pub(super) struct Request {
    key: KeyPair,
    /// PKCS#10, PEM.
    pub csr: String,
}

impl Request {
    /// An ECDSA P-256 key, and a CSR with the id as its only SAN (a URI)
    /// and an empty subject, as Istio's agent asks.
    pub fn new(id: &SpiffeId) -> anyhow::Result<Request> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        let csr = params.serialize_request(&key)?.pem()?;
        Ok(Request { key, csr })
    }

    /// The key, for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_names_the_id_and_hides_the_key() {
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/cart".parse().unwrap();
        let request = Request::new(&id).unwrap();
        assert!(
            request
                .csr
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
        let secret = request.key.serialize_pem();
        let shown = format!("{request:?}");
        assert!(!shown.contains(secret.lines().nth(1).unwrap()), "{shown}");
        assert!(matches!(request.private_key(), PrivateKeyDer::Pkcs8(_)));
    }
}
