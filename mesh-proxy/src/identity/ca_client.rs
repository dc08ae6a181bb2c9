//! The CA's gRPC service (`istio.v1.auth.IstioCertificateService`), over TLS
//! verified against `--ca-root-cert`, with the bootstrap token as a bearer
//! credential. The token file is read for each request, so that a rotated
//! token is used from the next request on.

use std::path::PathBuf;
use std::time::Duration;

use http::uri::PathAndQuery;
use mesh_api::ca::{
    AUTHORIZATION, CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse,
};
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct CaClient {
    address: String,
    channel: Channel,
    token_file: Option<PathBuf>,
}

impl CaClient {
    /// A client of `address` (`https://host:port`); it connects on first use,
    /// and again after a failure. The server's certificate must chain to
    /// `root_pem` and name the host (a DNS name or an IP address).
    pub fn new(
        address: &str,
        root_pem: &[u8],
        token_file: Option<PathBuf>,
    ) -> anyhow::Result<CaClient> {
        let uri: http::Uri = address
            .parse()
            .map_err(|err| anyhow::anyhow!("--ca-address {address:?}: {err}"))?;
        if uri.scheme_str() != Some("https") {
            anyhow::bail!(
                "--ca-address {address:?}: the CA is reached over TLS, as https://host:port"
            );
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("--ca-address {address:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(root_pem))
            .domain_name(host);
        let channel = Endpoint::from_shared(address.to_owned())?
            .tls_config(tls)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(CaClient {
            address: address.to_owned(),
            channel,
            token_file,
        })
    }

    /// Asks for `csr` to be signed for `ttl`; the chain, leaf first.
    pub async fn sign(&self, csr: String, ttl: Duration) -> anyhow::Result<Vec<String>> {
        let mut request = tonic::Request::new(IstioCertificateRequest {
            csr,
            validity_duration: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX),
            metadata: None,
        });
        if let Some(token) = self.token().await? {
            request.metadata_mut().insert(AUTHORIZATION, token);
        }
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready().await.map_err(|err| {
            anyhow::anyhow!("the CA at {} cannot be reached: {err}", self.address)
        })?;
        let codec =
            tonic_prost::ProstCodec::<IstioCertificateRequest, IstioCertificateResponse>::default();
        let path = PathAndQuery::from_static(CREATE_CERTIFICATE_PATH);
        match grpc.unary(request, path, codec).await {
            Ok(response) => Ok(response.into_inner().cert_chain),
            Err(status) => Err(anyhow::anyhow!(
                "the CA at {} refused the certificate request: {}",
                self.address,
                describe(&status)
            )),
        }
    }

    /// `Bearer <token>` from the token file, read now.
    async fn token(&self) -> anyhow::Result<Option<MetadataValue<tonic::metadata::Ascii>>> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let token = tokio::fs::read_to_string(path)
            .await
            .map_err(|err| anyhow::anyhow!("cannot read the CA token {}: {err}", path.display()))?;
        let value = format!("Bearer {}", token.trim()).parse().map_err(|_| {
            anyhow::anyhow!("the CA token in {} is not printable ASCII", path.display())
        })?;
        Ok(Some(value))
    }
}

/// A gRPC status with its code and the causes under it (a TLS failure
/// shows as a transport error caused by, say, an unknown issuer).
fn describe(status: &tonic::Status) -> String {
    let mut text = format!("{:?}", status.code());
    if !status.message().is_empty() {
        text.push_str(": ");
        text.push_str(status.message());
    }
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
