use std::sync::Arc;

use super::*;

/// The element for `chain`, its leaf read as the handshake reads it.
fn element(
    header: &ClientCertHeader,
    local_uri_sans: &[String],
    chain: &[CertificateDer<'_>],
) -> Option<HeaderValue> {
    let leaf = webpki::EndEntityCert::try_from(chain.first()?).ok()?;
    super::element(header, local_uri_sans, chain, &leaf)
}

const SERVER: &str = "spiffe://cluster.local/ns/default/sa/server";
const CLIENT: &str = "spiffe://cluster.local/ns/default/sa/client";

/// A client's chain (leaf, then its CA) with this common name and SANs,
/// as DER and as PEM.
fn client_chain(
    common_name: &str,
    dns: &[&str],
    uris: &[&str],
) -> (Vec<CertificateDer<'static>>, Vec<String>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let mut params =
        rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Example, Inc.");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    for uri in uris {
        params
            .subject_alt_names
            .push(rcgen::SanType::URI((*uri).try_into().unwrap()));
    }
    let leaf = params
        .signed_by(&rcgen::KeyPair::generate().unwrap(), &ca)
        .unwrap();
    (
        vec![leaf.der().clone(), ca.der().clone()],
        vec![leaf.pem(), ca.pem()],
    )
}

fn header(mode: ForwardClientCert, details: ClientCertDetails) -> ClientCertHeader {
    ClientCertHeader { mode, details }
}

/// Istio's sidecar inbound details.
const SIDECAR: ClientCertDetails = ClientCertDetails {
    subject: true,
    cert: false,
    chain: false,
    dns: true,
    uri: true,
};

fn hash(chain: &[CertificateDer<'_>]) -> String {
    sha256_hex(&chain[0])
}

#[test]
fn the_hash_is_sha256_in_lower_case_hex() {
    // FIPS 180-2's example, so that the element tests' `hash` is itself checked.
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn the_element_says_who_checked_and_who_called_in_envoys_order() {
    let (chain, _) = client_chain("client", &["a.example", "b.example"], &[CLIENT]);
    let element = element(
        &header(ForwardClientCert::AppendForward, SIDECAR),
        &[SERVER.to_owned()],
        &chain,
    )
    .unwrap();
    let expected = format!(
        "By={SERVER};Hash={};Subject=\"CN=client,O=Example\\, Inc.\";URI={CLIENT};DNS=a.example;DNS=b.example",
        hash(&chain)
    );
    assert_eq!(element, expected.as_str());
}

#[test]
fn certificates_are_url_encoded_pem_and_absent_sans_say_so() {
    let (chain, pems) = client_chain("client", &[], &[]);
    let all = ClientCertDetails {
        cert: true,
        chain: true,
        ..SIDECAR
    };
    let element = element(&header(ForwardClientCert::SanitizeSet, all), &[], &chain).unwrap();
    let pairs: Vec<&str> = element.to_str().unwrap().split(';').collect();
    assert_eq!(pairs.len(), 5, "{pairs:?}");
    assert_eq!(pairs[0], format!("Hash={}", hash(&chain)));
    // Quoted URL-encoded PEM: only unreserved characters and escapes.
    let pem = |pair: &str, key: &str| {
        let quoted = pair.strip_prefix(key).unwrap();
        let encoded = quoted.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        assert!(
            encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "{encoded}"
        );
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    assert_eq!(pem(pairs[1], "Cert="), pems[0]);
    assert_eq!(pem(pairs[2], "Chain="), pems.concat());
    assert_eq!(
        &pairs[3..],
        ["Subject=\"CN=client,O=Example\\, Inc.\"", "URI="]
    );
}

#[test]
fn values_with_separators_are_quoted_and_modes_that_keep_write_nothing() {
    let (chain, _) = client_chain("client", &[], &["urn:a=b;c"]);
    let uri_only = ClientCertDetails {
        uri: true,
        ..ClientCertDetails::default()
    };
    let element = element(
        &header(ForwardClientCert::SanitizeSet, uri_only),
        &["spiffe://x/a,b".to_owned()],
        &chain,
    )
    .unwrap();
    assert_eq!(
        element,
        format!(
            "By=\"spiffe://x/a,b\";Hash={};URI=\"urn:a=b;c\"",
            hash(&chain)
        )
        .as_str()
    );
    for mode in [
        ForwardClientCert::Sanitize,
        ForwardClientCert::ForwardOnly,
        ForwardClientCert::AlwaysForwardOnly,
    ] {
        assert_eq!(self::element(&header(mode, SIDECAR), &[], &chain), None);
    }
}

/// What the upstream gets for a request that came with `sent`, on a
/// connection with `tls`.
fn forwarded(mode: ForwardClientCert, tls: Option<DownstreamTls>, sent: &[&str]) -> Vec<String> {
    let mut request = http::Request::new(());
    for value in sent {
        request
            .headers_mut()
            .append(&HEADER, HeaderValue::from_str(value).unwrap());
    }
    if let Some(tls) = tls {
        request.extensions_mut().insert(tls);
    }
    let (mut parts, ()) = request.into_parts();
    forward(mode, &mut parts);
    parts
        .headers
        .get_all(&HEADER)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_mode_treats_the_incoming_header_as_envoy_does() {
    let mtls = DownstreamTls {
        peer_uri_san: Some(Arc::from(CLIENT)),
        peer_certificate: true,
        client_cert_element: Some(HeaderValue::from_static("By=b;Hash=h")),
        ..DownstreamTls::default()
    };
    let server_only = DownstreamTls::default();
    let sent = ["By=x;URI=y", "By=z"];
    let cases: [(ForwardClientCert, &[&str], &[&str]); 5] = [
        (ForwardClientCert::Sanitize, &[], &[]),
        (ForwardClientCert::ForwardOnly, &sent, &[]),
        (
            ForwardClientCert::AppendForward,
            &["By=x;URI=y,By=z,By=b;Hash=h"],
            &[],
        ),
        (ForwardClientCert::SanitizeSet, &["By=b;Hash=h"], &[]),
        (ForwardClientCert::AlwaysForwardOnly, &sent, &sent),
    ];
    for (mode, over_mtls, otherwise) in cases {
        assert_eq!(
            forwarded(mode, Some(mtls.clone()), &sent),
            over_mtls,
            "{mode:?}"
        );
        assert_eq!(
            forwarded(mode, Some(server_only.clone()), &sent),
            otherwise,
            "{mode:?} without a client certificate"
        );
        assert_eq!(
            forwarded(mode, None, &sent),
            otherwise,
            "{mode:?} in plain text"
        );
    }
    assert_eq!(
        forwarded(ForwardClientCert::AppendForward, Some(mtls), &[]),
        ["By=b;Hash=h"]
    );
}
