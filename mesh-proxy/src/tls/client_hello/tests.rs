use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::*;

/// The first flight of a real rustls client.
fn hello_bytes(sni: &str, alpn: &[&str]) -> Vec<u8> {
    let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    client.write_tls(&mut out).unwrap();
    out
}

#[test]
fn reads_sni_and_alpn_of_a_real_client_hello() {
    let bytes = hello_bytes("Reviews.Default.svc", &["h2", "http/1.1"]);
    assert_eq!(
        parse(&bytes),
        Parsed::Hello(ClientHello {
            server_name: Some("reviews.default.svc".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
        })
    );
}

#[test]
fn an_address_sends_no_sni() {
    let bytes = hello_bytes("10.0.0.1", &[]);
    assert_eq!(parse(&bytes), Parsed::Hello(ClientHello::default()));
}

#[test]
fn every_truncation_is_incomplete() {
    let bytes = hello_bytes("a.example.com", &["h2"]);
    for end in 0..bytes.len() {
        assert_eq!(parse(&bytes[..end]), Parsed::Incomplete, "cut at {end}");
    }
}

#[test]
fn a_hello_split_across_records_is_joined() {
    let bytes = hello_bytes("split.example.com", &["h2"]);
    let fragment = &bytes[5..];
    let (first, second) = fragment.split_at(10);
    let mut split = Vec::new();
    for part in [first, second] {
        split.extend_from_slice(&[0x16, 3, 1]);
        split.extend_from_slice(&(part.len() as u16).to_be_bytes());
        split.extend_from_slice(part);
    }
    let Parsed::Hello(hello) = parse(&split) else {
        panic!("not parsed: {:?}", parse(&split));
    };
    assert_eq!(hello.server_name.as_deref(), Some("split.example.com"));
}

#[test]
fn plain_text_and_other_records_are_not_tls() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parsed::NotTls);
    assert_eq!(parse(&[0x16, 3, 9, 0, 1, 1]), Parsed::NotTls);
    assert_eq!(parse(&[0x16, 3, 1, 0, 0]), Parsed::NotTls);
    // A ServerHello (type 2) is not what a client sends first.
    assert_eq!(parse(&[0x16, 3, 3, 0, 4, 2, 0, 0, 0]), Parsed::NotTls);
}

#[test]
fn oversized_hellos_are_refused() {
    let mut bytes = vec![0x16, 3, 1, 0, 4, CLIENT_HELLO];
    bytes.extend_from_slice(&[0x01, 0, 0]); // 64 KiB
    assert_eq!(parse(&bytes), Parsed::TooLarge);
}

#[test]
fn corrupt_lengths_and_garbage_never_panic() {
    let bytes = hello_bytes("fuzz.example.com", &["h2", "http/1.1"]);
    // Flipping any byte after the record header gives some answer, not a panic.
    for i in 5..bytes.len() {
        for flip in [0x01, 0x80, 0xff] {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= flip;
            let _ = parse(&corrupt);
        }
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..2000 {
        let mut garbage = vec![0x16, 3, 1];
        for _ in 0..(seed % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            garbage.push(seed as u8);
        }
        let _ = parse(&garbage);
    }
}
