//! `/certs`: the workload certificate and the mesh root in the JSON shape
//! of Envoy's `envoy.admin.v3.Certificates` (with every field printed, as
//! Envoy prints them). Serial numbers, SANs and validity only: no key
//! material.

use serde_json::{Value, json};

use crate::identity::{self, CertificateProvider, Details};

/// The certificates; none without a CA or before the first one.
pub fn json(provider: Option<&CertificateProvider>) -> Value {
    let certificates: Vec<Value> = provider
        .and_then(CertificateProvider::current)
        .iter()
        .map(|current| {
            json!({
                "ca_cert": [details(identity::ROOT_SECRET, &current.root)],
                "cert_chain": [details(identity::DEFAULT_SECRET, &current.leaf)],
            })
        })
        .collect();
    json!({ "certificates": certificates })
}

/// Envoy shows the file a certificate came from; these come from the CA, so
/// the path names the secret instead.
fn details(secret: &str, details: &Details) -> Value {
    let fields = &details.fields;
    let sans: Vec<Value> = details
        .uri_sans
        .iter()
        .map(|uri| json!({"uri": uri}))
        .collect();
    json!({
        "path": format!("<sds:{secret}>"),
        "serial_number": fields.serial,
        "subject_alt_names": sans,
        // A uint64, which protobuf's JSON writes as a string.
        "days_until_expiration": identity::days_until(fields.not_after).to_string(),
        "valid_from": identity::rfc3339(fields.not_before),
        "expiration_time": identity::rfc3339(fields.not_after),
    })
}
