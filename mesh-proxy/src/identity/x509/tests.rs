use super::*;

fn certificate(not_before: (i32, u8, u8), not_after: (i32, u8, u8), serial: &[u8]) -> Vec<u8> {
    let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn reads_serial_and_validity() {
    // 2049 is still a UTCTime, 2050 is a GeneralizedTime.
    let der = certificate((2024, 2, 29), (2050, 1, 1), &[0x01, 0xab, 0xcd]);
    let fields = fields(&der).unwrap();
    assert_eq!(fields.serial, "01abcd");
    assert_eq!(fields.not_before, 1_709_164_800);
    assert_eq!(fields.not_after, 2_524_608_000);
    assert_eq!(rfc3339(fields.not_before), "2024-02-29T00:00:00Z");
    assert_eq!(rfc3339(fields.not_after), "2050-01-01T00:00:00Z");
    assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
}

#[test]
fn refuses_what_is_not_a_certificate() {
    assert_eq!(fields(b""), None);
    assert_eq!(fields(&[0x30, 0x03, 0x02, 0x01]), None);
    let der = certificate((2024, 1, 1), (2025, 1, 1), &[7]);
    assert_eq!(fields(&der[..der.len() / 2]), None);
}

/// The subject of a certificate with these attributes, in order.
fn subject(attributes: Vec<(rcgen::DnType, rcgen::DnValue)>) -> String {
    let mut params = rcgen::CertificateParams::new(vec!["a.example".into()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in attributes {
        params.distinguished_name.push(kind, value);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let parsed = webpki::EndEntityCert::try_from(cert.der()).unwrap();
    rfc2253(parsed.subject()).unwrap()
}

#[test]
fn names_read_last_attribute_first_with_short_names() {
    use rcgen::DnType::*;
    let name = subject(vec![
        (CountryName, "US".into()),
        (OrganizationName, "Example".into()),
        (CommonName, "client".into()),
    ]);
    assert_eq!(name, "CN=client,O=Example,C=US");
    assert_eq!(subject(vec![]), "");
}

#[test]
fn name_values_are_escaped_as_rfc_2253_asks() {
    use rcgen::DnType::*;
    let name = subject(vec![
        (OrganizationName, "a,b+c\"d\\e<f>g;h".into()),
        (OrganizationalUnitName, "#lead and trail ".into()),
        (CommonName, "caf\u{e9}\u{7}".into()),
    ]);
    assert_eq!(
        name,
        "CN=caf\\C3\\A9\\07,OU=\\#lead and trail\\ ,O=a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h"
    );
}

#[test]
fn unknown_attribute_types_show_their_oid_and_der() {
    let custom = rcgen::DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 311, 60]);
    let name = subject(vec![(
        custom,
        rcgen::DnValue::PrintableString("ab".try_into().unwrap()),
    )]);
    assert_eq!(name, "1.3.6.1.4.1.311.60=#13026162");
    assert_eq!(rfc2253(&[0x31, 0x05]), None);
}
