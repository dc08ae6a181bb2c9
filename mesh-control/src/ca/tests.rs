use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use mesh_api::names::SpiffeId;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequest, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::token::{TokenError, TokenKey};
use super::*;

fn identity(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "default", sa)
}

fn csr(sans: &[SanType]) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans.to_vec();
    let request: CertificateSigningRequest = params.serialize_request(&key).unwrap();
    request.pem().unwrap()
}

fn uri(id: &SpiffeId) -> SanType {
    SanType::URI(id.to_string().try_into().unwrap())
}

fn ca(dir: &std::path::Path) -> CertificateAuthority {
    let files = CaFiles::load_or_create(dir, "cluster.local").unwrap();
    CertificateAuthority::new(files, DEFAULT_TTL, Duration::from_secs(3600))
}

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The leaf's URI SANs, lifetime, and whether `issuer_pem` signed it.
fn inspect(leaf_pem: &str, issuer_pem: &str) -> (Vec<String>, i64, bool) {
    let (leaf_der, issuer_der) = (der(leaf_pem), der(issuer_pem));
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    let (_, issuer) = X509Certificate::from_der(&issuer_der).unwrap();
    let sans = leaf
        .subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some((*u).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let validity = leaf.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    let signed = leaf.verify_signature(Some(issuer.public_key())).is_ok();
    (sans, lifetime, signed)
}

#[test]
fn a_new_root_is_made_once_and_kept_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let first = ca(dir.path());
    let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = ca(dir.path());
    assert_eq!(
        first.root_pem(),
        again.root_pem(),
        "a restart keeps the root"
    );
    let (_, _, self_signed) = inspect(first.root_pem(), first.root_pem());
    assert!(self_signed);
    assert!(
        !format!("{first:?}").contains("PRIVATE"),
        "Debug never shows the key"
    );

    std::fs::remove_file(dir.path().join("ca-key.pem")).unwrap();
    let err = CaFiles::load_or_create(dir.path(), "cluster.local").unwrap_err();
    assert!(
        err.to_string()
            .contains("ca-cert.pem is there but ca-key.pem is not"),
        "{err}"
    );
}

#[test]
fn certificates_carry_the_callers_identity_only_and_chain_to_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let me = identity("reviews");
    for request in [csr(&[uri(&me)]), csr(&[])] {
        let chain = ca.sign(&request, &me, Duration::from_secs(600)).unwrap();
        assert_eq!(chain.len(), 2, "leaf and root");
        assert_eq!(chain[1], ca.root_pem());
        let (sans, lifetime, signed) = inspect(&chain[0], ca.root_pem());
        assert_eq!(sans, vec![me.to_string()]);
        assert!(signed);
        let leaf_der = der(&chain[0]);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        assert_eq!(leaf.subject().iter().count(), 0, "no subject, as Istio's");
        assert!(leaf.subject_alternative_name().unwrap().unwrap().critical);
        assert_eq!(lifetime, 600 + BACKDATE.as_secs() as i64);
    }
    // A short lifetime is backdated by a quarter of it only.
    let short = ca.sign(&csr(&[]), &me, Duration::from_secs(4)).unwrap();
    assert_eq!(inspect(&short[0], ca.root_pem()).1, 5);
    let other = ca
        .sign(&csr(&[uri(&identity("ratings"))]), &me, DEFAULT_TTL)
        .unwrap_err();
    assert_eq!(
        other,
        SignError::OtherIdentity {
            asked: identity("ratings").to_string(),
            caller: me.to_string()
        }
    );
    let dns = ca
        .sign(
            &csr(&[SanType::DnsName("evil.example".try_into().unwrap())]),
            &me,
            DEFAULT_TTL,
        )
        .unwrap_err();
    assert!(matches!(dns, SignError::OtherIdentity { .. }), "{dns}");
    for garbage in [
        "",
        "not a csr",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ] {
        let err = ca.sign(garbage, &me, DEFAULT_TTL).unwrap_err();
        assert!(matches!(err, SignError::MalformedCsr(_)), "{err}");
    }
}

#[test]
fn a_csr_whose_signature_does_not_verify_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    let good = csr(&[]);
    let mut bytes = der_csr(&good);
    // Flip a bit of the signature, the last bytes of the DER.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = pem_csr(&bytes);
    let err = ca.sign(&tampered, &identity("a"), DEFAULT_TTL).unwrap_err();
    assert!(matches!(err, SignError::MalformedCsr(_)), "{err}");
}

fn der_csr(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn pem_csr(der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
        lines.join("\n")
    )
}

#[test]
fn lifetimes_default_and_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path());
    assert_eq!(ca.ttl(0), Duration::from_secs(3600), "the default, capped");
    assert_eq!(ca.ttl(-5), Duration::from_secs(3600));
    assert_eq!(ca.ttl(60), Duration::from_secs(60));
    assert_eq!(ca.ttl(10 * 3600), Duration::from_secs(3600));
}

#[test]
fn a_plugged_in_intermediate_signs_and_the_chain_reaches_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let intermediate = params.signed_by(&key, &root_issuer).unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("ca-cert.pem", &intermediate.pem());
    write("ca-key.pem", &key.serialize_pem());
    write("root-cert.pem", &root.pem());
    write(
        "cert-chain.pem",
        &format!("{}{}", intermediate.pem(), root.pem()),
    );

    let ca = ca(dir.path());
    assert_eq!(ca.root_pem(), root.pem());
    let chain = ca.sign(&csr(&[]), &identity("a"), DEFAULT_TTL).unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    let (_, _, signed) = inspect(&chain[0], &intermediate.pem());
    assert!(signed, "the intermediate signs");
    let (_, _, signed) = inspect(&chain[1], &chain[2]);
    assert!(signed, "the root signed the intermediate");
}

#[test]
fn tokens_prove_one_identity_under_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = TokenKey::load_or_create(dir.path()).unwrap();
    let mode = std::fs::metadata(dir.path().join("token-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let me = identity("reviews");
    let token = key.issue(&me);
    assert_eq!(key.verify(&token), Ok(me.clone()));
    let reloaded = TokenKey::load_or_create(dir.path()).unwrap();
    assert_eq!(
        reloaded.verify(&token),
        Ok(me.clone()),
        "kept across restarts"
    );

    // Another identity with the same tag, or another key: refused.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(identity("admin").to_string())
    };
    assert_eq!(key.verify(&parts.join(".")), Err(TokenError::BadSignature));
    let other = TokenKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
    assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
    for garbage in ["", "mesh1", "mesh1.a.b.c", "Bearer x", "mesh1.!!.??"] {
        assert_eq!(
            key.verify(garbage),
            Err(TokenError::Malformed),
            "{garbage:?}"
        );
    }
    assert!(!format!("{key:?}").contains(&token));
}
