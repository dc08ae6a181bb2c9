//! The secure port end to end: a proxy-like client with a bootstrap token
//! gets its certificate over TLS; refusals say why and change nothing; ADS
//! there needs the certificate the CA issued.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_api::ca::{CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse};
use mesh_api::names::SpiffeId;
use mesh_control::app::Options;
use mesh_control::ca::service::CaService;
use mesh_control::ca::token::TokenKey;
use mesh_control::ca::{CaFiles, CertificateAuthority};
use prost::Message;
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use support::{ControlPlane, PATIENCE, node_id, snapshot};

const ADS: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

struct Mesh {
    cp: ControlPlane,
    ca: Arc<CaService>,
    _dir: tempfile::TempDir,
}

async fn start() -> Mesh {
    let dir = tempfile::tempdir().unwrap();
    let files = CaFiles::load_or_create(dir.path(), "cluster.local").unwrap();
    let ca = Arc::new(CaService {
        ca: Arc::new(CertificateAuthority::new(
            files,
            Duration::from_secs(3600),
            Duration::from_secs(7200),
        )),
        tokens: Arc::new(TokenKey::load_or_create(dir.path()).unwrap()),
    });
    let options = Options {
        ca: Some(Arc::clone(&ca)),
        secure_port: 0,
        ..Options::default()
    };
    let cp = ControlPlane::start_with(
        snapshot(1, &["reviews.default.svc.cluster.local"], &[]),
        options,
    )
    .await;
    Mesh { cp, ca, _dir: dir }
}

fn me() -> SpiffeId {
    SpiffeId::new("cluster.local", "default", "productpage")
}

/// An HTTP/2 connection to the secure port over TLS, with a client
/// certificate when given one.
async fn connect(mesh: &Mesh, client: Option<(Vec<String>, &KeyPair)>) -> SendRequest<Full<Bytes>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(mesh.ca.ca.root_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(
                chain
                    .iter()
                    .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(mesh.cp.running.secure.unwrap())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the secure port's certificate verifies against the root, for localhost");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

fn framed(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(encoded.len() as u32);
    out.put_slice(&encoded);
    out.freeze()
}

/// A gRPC call with one request message: the status code, its message,
/// and the first response message.
async fn call(
    sender: &mut SendRequest<Full<Bytes>>,
    path: &str,
    token: Option<&str>,
    body: Bytes,
) -> (i32, String, Option<Bytes>) {
    let mut request = hyper::Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = tokio::time::timeout(
        PATIENCE,
        sender.send_request(request.body(Full::new(body)).unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let headers = response.headers().clone();
    let collected = tokio::time::timeout(PATIENCE, response.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let mut data = collected.to_bytes();
    let status_of = |name: &str| {
        trailers
            .get(name)
            .or_else(|| headers.get(name))
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let code = status_of("grpc-status")
        .expect("a grpc-status")
        .parse()
        .unwrap();
    // gRPC percent-encodes the message.
    let message =
        percent_encoding::percent_decode_str(&status_of("grpc-message").unwrap_or_default())
            .decode_utf8_lossy()
            .into_owned();
    let first = (data.len() >= 5).then(|| {
        data.advance(1);
        let len = data.get_u32() as usize;
        data.split_to(len)
    });
    (code, message, first)
}

fn csr(key: &KeyPair, sans: &[SanType]) -> String {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans.to_vec();
    params.serialize_request(key).unwrap().pem().unwrap()
}

fn certificate_request(csr: String, seconds: i64) -> Bytes {
    framed(&IstioCertificateRequest {
        csr,
        validity_duration: seconds,
        metadata: None,
    })
}

#[tokio::test]
async fn a_token_gets_its_identitys_certificate_and_nothing_else() {
    let mesh = start().await;
    let token = mesh.ca.tokens.issue(&me());
    let key = KeyPair::generate().unwrap();
    let mut sender = connect(&mesh, None).await;

    let uri = SanType::URI(me().to_string().try_into().unwrap());
    let (code, message, body) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        Some(&token),
        certificate_request(csr(&key, &[uri]), 600),
    )
    .await;
    assert_eq!(code, 0, "{message}");
    let response = IstioCertificateResponse::decode(body.unwrap()).unwrap();
    assert_eq!(response.cert_chain.len(), 2);
    assert_eq!(response.cert_chain[1], mesh.ca.ca.root_pem());

    // Another identity in the CSR: refused, and said why.
    let other = SanType::URI(
        "spiffe://cluster.local/ns/default/sa/admin"
            .try_into()
            .unwrap(),
    );
    let (code, message, _) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        Some(&token),
        certificate_request(csr(&key, &[other]), 600),
    )
    .await;
    assert_eq!(code, tonic::Code::PermissionDenied as i32);
    assert!(message.contains("ns/default/sa/admin"), "{message}");

    // A malformed CSR, no token, a forged token.
    let (code, message, _) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        Some(&token),
        certificate_request("garbage".into(), 600),
    )
    .await;
    assert_eq!(code, tonic::Code::InvalidArgument as i32, "{message}");
    assert!(message.contains("CSR"), "{message}");
    let (code, _, _) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        None,
        certificate_request(csr(&key, &[]), 600),
    )
    .await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (code, message, _) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        Some(&forged),
        certificate_request(csr(&key, &[]), 600),
    )
    .await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    assert!(
        !message.contains(&forged),
        "the token is not repeated: {message}"
    );

    // Nothing broke: the same connection still gets certificates.
    let (code, message, _) = call(
        &mut sender,
        CREATE_CERTIFICATE_PATH,
        Some(&token),
        certificate_request(csr(&key, &[]), 0),
    )
    .await;
    assert_eq!(code, 0, "{message}");
}

#[tokio::test]
async fn xds_on_the_secure_port_needs_a_mesh_certificate() {
    let mesh = start().await;
    let request = framed(&DiscoveryRequest {
        node: Some(Node {
            id: node_id("productpage-v1"),
            ..Node::default()
        }),
        type_url: CDS.into(),
        ..DiscoveryRequest::default()
    });

    let mut anonymous = connect(&mesh, None).await;
    let (code, message, _) = call(&mut anonymous, ADS, None, request.clone()).await;
    assert_eq!(code, tonic::Code::Unauthenticated as i32);
    assert!(message.contains("client certificate"), "{message}");

    let key = KeyPair::generate().unwrap();
    let chain = mesh
        .ca
        .ca
        .sign(&csr(&key, &[]), &me(), Duration::from_secs(600))
        .unwrap();
    let mut proxy = connect(&mesh, Some((chain, &key))).await;
    let (code, message, body) = call(&mut proxy, ADS, None, request).await;
    assert_eq!(code, 0, "{message}");
    let response = DiscoveryResponse::decode(body.expect("a CDS response")).unwrap();
    assert_eq!(response.type_url, CDS);
    assert_eq!(
        response.resources.len(),
        1,
        "the fake generator's one cluster"
    );

    // The same certificate for a node of another namespace: refused.
    let elsewhere = framed(&DiscoveryRequest {
        node: Some(Node {
            id: "sidecar~10.0.0.9~cart.shop~shop.svc.cluster.local".into(),
            ..Node::default()
        }),
        type_url: CDS.into(),
        ..DiscoveryRequest::default()
    });
    let (code, message, _) = call(&mut proxy, ADS, None, elsewhere).await;
    assert_eq!(code, tonic::Code::PermissionDenied as i32, "{message}");
    assert!(message.contains("\"shop\""), "{message}");
}
