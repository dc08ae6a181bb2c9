//! Checking what the CA returned before using it: the chain must lead from
//! the leaf to a root the proxy trusts (`--ca-root-cert`), be valid now for
//! both TLS server and client use, name the workload's SPIFFE id, and
//! certify the key the request was made with.

use std::sync::Arc;

use mesh_api::names::SpiffeId;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::sign::CertifiedKey;
use webpki::{EndEntityCert, KeyUsage};

use super::csr::Request;
use super::x509::{self, Fields};
use crate::tls;

/// The roots the CA's certificates must chain to.
#[derive(Debug)]
pub(super) struct Trusted {
    pub roots: Vec<CertificateDer<'static>>,
    /// The `--ca-root-cert` file, `ROOTCA` when the chain holds only the leaf.
    pub pem: Vec<u8>,
}

/// One certificate as `/certs` and the logs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub fields: Fields,
    pub uri_sans: Vec<String>,
}

impl Details {
    fn of(der: &CertificateDer<'_>) -> anyhow::Result<Details> {
        let fields = x509::fields(der)
            .ok_or_else(|| anyhow::anyhow!("a certificate of the chain cannot be read"))?;
        Ok(Details {
            fields,
            uri_sans: tls::uri_sans(der),
        })
    }
}

/// A checked certificate with its key, and the root for `ROOTCA`.
#[derive(Debug)]
pub(super) struct Issued {
    pub key: Arc<CertifiedKey>,
    pub leaf: Details,
    pub root: Details,
    pub root_pem: Vec<u8>,
}

/// Checks the CA's answer to `request` (leaf first, PEM each).
pub(super) fn check(
    chain: &[String],
    request: &Request,
    id: &SpiffeId,
    trusted: &Trusted,
) -> anyhow::Result<Issued> {
    let mut certs = Vec::new();
    for pem in chain {
        certs.extend(tls::certificates(pem.as_bytes())?);
    }
    let Some(leaf) = certs.first() else {
        anyhow::bail!("the CA returned no certificate");
    };
    verify_path(leaf, &certs[1..], trusted)?;
    let parsed = EndEntityCert::try_from(leaf)?;
    let expected = id.to_string();
    let names: Vec<&str> = parsed.valid_uri_names().collect();
    if !names.contains(&expected.as_str()) {
        anyhow::bail!("the certificate names {names:?}, not {expected}");
    }
    let provider = rustls::crypto::ring::default_provider();
    let key = CertifiedKey::from_der(certs.clone(), request.private_key(), &provider)
        .map_err(|err| anyhow::anyhow!("the certificate is not for the key requested: {err}"))?;
    let (root, root_pem) = match certs.last() {
        Some(root) if certs.len() > 1 => (root, pem(root)),
        _ => (&trusted.roots[0], trusted.pem.clone()),
    };
    Ok(Issued {
        key: Arc::new(key),
        leaf: Details::of(leaf)?,
        root: Details::of(root)?,
        root_pem,
    })
}

/// The leaf chains to a trusted root through the rest of the chain, and is
/// valid now for both ends of mTLS.
fn verify_path(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    trusted: &Trusted,
) -> anyhow::Result<()> {
    let anchors = trusted
        .roots
        .iter()
        .map(|root| webpki::anchor_from_trusted_cert(root).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let parsed = EndEntityCert::try_from(leaf)?;
    for usage in [KeyUsage::server_auth(), KeyUsage::client_auth()] {
        parsed
            .verify_for_usage(
                algorithms.all,
                &anchors,
                intermediates,
                UnixTime::now(),
                usage,
                None,
                None,
            )
            .map_err(|err| {
                anyhow::anyhow!("the certificate does not verify against the trusted root: {err}")
            })?;
    }
    Ok(())
}

/// A certificate as PEM.
pub(crate) fn pem(der: &CertificateDer<'_>) -> Vec<u8> {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_reads_back_as_the_same_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        assert_eq!(tls::certificates(&pem(&der)).unwrap(), vec![der]);
    }
}
