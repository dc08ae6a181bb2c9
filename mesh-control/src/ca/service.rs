//! The secure port (15012): TLS, HTTP/2, and two gRPC services.
//!
//! - `istio.v1.auth.IstioCertificateService/CreateCertificate`: the caller
//!   shows a bootstrap token (`authorization: Bearer <token>`) and gets a
//!   certificate for the identity the token names. Refusals are logged with
//!   the reason and the identity, never the token.
//! - ADS, as on the plaintext port, for proxies whose TLS client
//!   certificate the mesh's CA issued (a connection without one may only
//!   ask for a certificate), and only for a node of the certificate's
//!   namespace.
//!
//! The port's own certificate is issued by the CA at start for the names
//! clients dial (`istiod.mesh-system.svc`, `localhost`, the bound IP), and
//! lives as long as the longest workload certificate; proxies verify it
//! against the root they trust.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::http::{HeaderMap, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_api::ca::{
    AUTHORIZATION, CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse,
};
use mesh_api::names::SpiffeId;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tonic::Status;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::token::TokenKey;
use super::{CertificateAuthority, SignError};
use crate::grpc::{Body, Messages, unary};
use crate::xds::{Ads, PeerIdentity};

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Signs certificates for callers with a valid token.
#[derive(Debug)]
pub struct CaService {
    pub ca: Arc<CertificateAuthority>,
    pub tokens: Arc<TokenKey>,
}

impl CaService {
    /// Answers one `CreateCertificate` call.
    pub async fn create_certificate(&self, request: Request<Incoming>) -> Response<Body> {
        unary(self.issue(request).await)
    }

    async fn issue(&self, request: Request<Incoming>) -> Result<IstioCertificateResponse, Status> {
        let identity = self.caller(request.headers())?;
        let mut messages = Messages::<IstioCertificateRequest>::new(request.into_body());
        let asked = messages
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("no IstioCertificateRequest was sent"))?;
        let ttl = self.ca.ttl(asked.validity_duration);
        match self.ca.sign(&asked.csr, &identity, ttl) {
            Ok(cert_chain) => {
                tracing::info!(%identity, ttl_secs = ttl.as_secs(), "issued a workload certificate");
                Ok(IstioCertificateResponse { cert_chain })
            }
            Err(err) => {
                tracing::warn!(%identity, "refused a certificate: {err}");
                Err(match err {
                    SignError::MalformedCsr(_) => Status::invalid_argument(err.to_string()),
                    SignError::OtherIdentity { .. } => Status::permission_denied(err.to_string()),
                    SignError::Signing(_) => Status::internal(err.to_string()),
                })
            }
        }
    }

    /// The identity the request's bearer token proves.
    fn caller(&self, headers: &HeaderMap) -> Result<SpiffeId, Status> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let verified = match token {
            Some(token) => self.tokens.verify(token),
            None => Err(super::token::TokenError::Missing),
        };
        verified.map_err(|err| {
            tracing::warn!("refused a certificate request: {err}");
            Status::unauthenticated(err.to_string())
        })
    }
}

/// The TLS server config of the secure port: the CA's serving certificate,
/// client certificates asked for and checked against the root, not required.
pub fn tls_config(
    ca: &CertificateAuthority,
    names: &[String],
) -> Result<rustls::ServerConfig, Box<dyn std::error::Error + Send + Sync>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (chain, key) = ca.serving_certificate(names)?;
    let chain: Vec<CertificateDer<'static>> = chain
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?;
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.root_pem().as_bytes())?)?;
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Serves the secure port until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ca: Arc<CaService>,
    ads: Ads,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "secure port accept failed");
                    continue;
                }
            },
            () = crate::xds::stopped(&mut shutdown) => return,
        };
        let _ = stream.set_nodelay(true);
        let (acceptor, ca, ads, mut stop) = (
            acceptor.clone(),
            Arc::clone(&ca),
            ads.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed on the secure port");
                    return;
                }
                Err(_) => return,
            };
            let identity = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|leaf| spiffe_id(leaf));
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (ca, ads, identity) = (Arc::clone(&ca), ads.clone(), identity.clone());
                async move { Ok::<_, Infallible>(route(&ca, &ads, identity.as_ref(), request).await) }
            });
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = crate::xds::stopped(&mut stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
}

async fn route(
    ca: &CaService,
    ads: &Ads,
    identity: Option<&SpiffeId>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path();
    if path == CREATE_CERTIFICATE_PATH {
        return ca.create_certificate(request).await;
    }
    if path.starts_with(crate::xds::ADS_SERVICE_PREFIX) {
        return match identity {
            Some(identity) => {
                let mut request = request;
                request
                    .extensions_mut()
                    .insert(PeerIdentity(identity.clone()));
                ads.handle(request)
            }
            None => Status::unauthenticated(
                "xDS on the secure port needs a client certificate from the mesh's CA",
            )
            .into_http(),
        };
    }
    Status::unimplemented(format!("no method {path}")).into_http()
}

/// The SPIFFE id in a certificate's URI SANs.
fn spiffe_id(der: &CertificateDer<'_>) -> Option<SpiffeId> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => uri.parse().ok(),
        _ => None,
    })
}
