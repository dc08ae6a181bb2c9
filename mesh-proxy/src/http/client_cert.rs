//! `x-forwarded-client-cert` (XFCC), as Envoy's connection manager writes
//! it: who called over mTLS, told to the application. The element this
//! proxy adds is made once per connection ([`element`]); each request only
//! keeps, removes, appends or sets the header ([`forward`]).

use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rustls::pki_types::CertificateDer;

use crate::config::{ClientCertDetails, ClientCertHeader, ForwardClientCert};
use crate::tls::DownstreamTls;

static HEADER: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// What URL encoding leaves alone: RFC 3986's unreserved characters.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The request's `x-forwarded-client-cert`, as the connection manager
/// says: a header a client without a certificate sent is not believed.
pub(crate) fn forward(mode: ForwardClientCert, parts: &mut Parts) {
    let tls = parts.extensions.get::<DownstreamTls>();
    let mtls = tls.is_some_and(|tls| tls.peer_certificate);
    let element = tls.and_then(|tls| tls.client_cert_element.clone());
    match (mode, element) {
        (ForwardClientCert::AlwaysForwardOnly, _) => {}
        (ForwardClientCert::ForwardOnly, _) if mtls => {}
        (ForwardClientCert::AppendForward, Some(element)) if mtls => {
            let joined = appended(&parts.headers, element);
            parts.headers.insert(HEADER.clone(), joined);
        }
        (ForwardClientCert::SanitizeSet, Some(element)) if mtls => {
            parts.headers.insert(HEADER.clone(), element);
        }
        _ => {
            parts.headers.remove(&HEADER);
        }
    }
}

/// The header's values so far, then `element`, separated by commas.
fn appended(headers: &http::HeaderMap, element: HeaderValue) -> HeaderValue {
    let mut values = headers.get_all(&HEADER).iter().peekable();
    if values.peek().is_none() {
        return element;
    }
    let mut bytes = Vec::new();
    for value in values.chain(std::iter::once(&element)) {
        if !bytes.is_empty() {
            bytes.push(b',');
        }
        bytes.extend_from_slice(value.as_bytes());
    }
    HeaderValue::from_bytes(&bytes).unwrap_or(element)
}

/// This proxy's element for a connection whose client sent `chain` (leaf
/// first; `parsed` is the leaf, read once for the whole handshake), on a
/// filter chain presenting a certificate with `local_uri_sans`: `By`,
/// `Hash`, then the details asked for in Envoy's order. `None` when the
/// connection manager writes no element.
pub(crate) fn element(
    header: &ClientCertHeader,
    local_uri_sans: &[String],
    chain: &[CertificateDer<'_>],
    parsed: &webpki::EndEntityCert<'_>,
) -> Option<HeaderValue> {
    let leaf = chain.first().filter(|_| header.writes_element())?;
    let ClientCertDetails {
        subject,
        cert,
        chain: whole_chain,
        dns,
        uri,
    } = header.details;
    let mut pairs: Vec<String> = local_uri_sans.iter().map(|by| pair("By", by)).collect();
    pairs.push(format!("Hash={}", sha256_hex(leaf)));
    if cert {
        pairs.push(format!(
            "Cert=\"{}\"",
            url_encoded_pem(std::slice::from_ref(leaf))
        ));
    }
    if whole_chain {
        pairs.push(format!("Chain=\"{}\"", url_encoded_pem(chain)));
    }
    if subject {
        let text = crate::identity::rfc2253(parsed.subject()).unwrap_or_default();
        pairs.push(format!("Subject=\"{text}\""));
    }
    if uri {
        let uris: Vec<String> = parsed.valid_uri_names().map(|u| pair("URI", u)).collect();
        if uris.is_empty() {
            pairs.push("URI=".to_owned());
        }
        pairs.extend(uris);
    }
    if dns {
        pairs.extend(parsed.valid_dns_names().map(|d| pair("DNS", d)));
    }
    HeaderValue::from_bytes(pairs.join(";").as_bytes()).ok()
}

/// `key=value`, the value quoted when it holds the header's separators.
fn pair(key: &str, value: &str) -> String {
    if value.contains([',', ';', '=', '"']) {
        format!("{key}=\"{}\"", value.replace('"', "\\\""))
    } else {
        format!("{key}={value}")
    }
}

fn sha256_hex(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Certificates as PEM, one after the other, URL-encoded.
fn url_encoded_pem(certs: &[CertificateDer<'_>]) -> String {
    let pem: Vec<u8> = certs.iter().flat_map(crate::identity::chain::pem).collect();
    percent_encoding::percent_encode(&pem, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests;
