//! A certificate authority speaking Istio's `IstioCertificateService` over
//! TLS, as the proxy's CA client expects: it checks the bearer token,
//! certifies the CSR's public key for the CSR's SANs for the lifetime
//! asked, counts requests, and can be told to misbehave.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_api::ca::{IstioCertificateRequest, IstioCertificateResponse};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

use super::Ca;

/// What the CA answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sign,
    /// An internal error, as a CA that cannot sign now.
    Fail,
    /// A certificate whose validity ended an hour ago.
    Expired,
    /// A certificate from a CA the proxy does not trust.
    Foreign,
}

pub struct TestCa {
    /// `https://127.0.0.1:<port>`.
    pub address: String,
    /// The root's PEM, in a file for `--ca-root-cert`.
    pub root_file: PathBuf,
    state: Arc<State>,
    _dir: tempfile::TempDir,
}

struct State {
    root: Arc<Ca>,
    foreign: Ca,
    token: String,
    mode: Mutex<Mode>,
    requests: AtomicU64,
    refused: AtomicU64,
}

impl TestCa {
    /// A CA accepting `token`, with a TLS certificate for 127.0.0.1 from its root.
    pub async fn start(token: &str) -> TestCa {
        let root = Arc::new(Ca::new("mesh root"));
        let serving = root.issue(&["127.0.0.1"], &[]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("https://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            root: Arc::clone(&root),
            foreign: Ca::new("foreign root"),
            token: token.to_owned(),
            mode: Mutex::new(Mode::Sign),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(serving.server_config(None, &["h2"]));
        let serving_state = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, state) = (acceptor.clone(), Arc::clone(&serving_state));
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move {
                            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<
                                IstioCertificateResponse,
                                IstioCertificateRequest,
                            >::default(
                            ));
                            Ok::<_, Infallible>(grpc.unary(Signer(state), request).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let root_file = dir.path().join("root.pem");
        std::fs::write(&root_file, &root.pem).unwrap();
        TestCa {
            address,
            root_file,
            state,
            _dir: dir,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Certificate requests received, answered or not.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Requests refused for their token.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// The proxy's flags for this CA, with the token in `token_file`.
    pub fn flags(&self, token_file: &std::path::Path, ttl: &str) -> Vec<String> {
        vec![
            "--ca-address".into(),
            self.address.clone(),
            "--ca-root-cert".into(),
            self.root_file.display().to_string(),
            "--ca-token-file".into(),
            token_file.display().to_string(),
            "--cert-ttl".into(),
            ttl.into(),
        ]
    }
}

struct Signer(Arc<State>);

impl tonic::server::UnaryService<IstioCertificateRequest> for Signer {
    type Response = IstioCertificateResponse;
    type Future = std::future::Ready<Result<Response<IstioCertificateResponse>, Status>>;

    fn call(&mut self, request: Request<IstioCertificateRequest>) -> Self::Future {
        std::future::ready(self.0.answer(request).map(Response::new))
    }
}

impl State {
    fn answer(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<IstioCertificateResponse, Status> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let expected = format!("Bearer {}", self.token);
        let presented = request
            .metadata()
            .get(mesh_api::ca::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if presented != Some(expected.as_str()) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Status::unauthenticated("the bearer token is not valid"));
        }
        let mode = *self.mode.lock().unwrap();
        let request = request.into_inner();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let lifetime = Duration::from_secs(u64::try_from(request.validity_duration).unwrap());
        let (from, until, issuer) = match mode {
            Mode::Fail => return Err(Status::internal("the CA was told to fail")),
            Mode::Sign => (now, now + lifetime, &*self.root),
            Mode::Expired => (
                now - Duration::from_secs(7200),
                now - Duration::from_secs(3600),
                &*self.root,
            ),
            Mode::Foreign => (now, now + lifetime, &self.foreign),
        };
        let leaf = issuer
            .sign_request(&request.csr, from, until)
            .map_err(|err| Status::invalid_argument(format!("the CSR cannot be signed: {err}")))?;
        Ok(IstioCertificateResponse {
            cert_chain: vec![leaf, issuer.pem.clone()],
        })
    }
}

impl Ca {
    /// Certifies a CSR's key for its SANs from `from` to `until` (since
    /// the Unix epoch), for server and client use.
    pub fn sign_request(
        &self,
        csr: &str,
        from: Duration,
        until: Duration,
    ) -> Result<String, rcgen::Error> {
        let mut request = rcgen::CertificateSigningRequestParams::from_pem(csr)?;
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        request.params.not_before = epoch + Duration::from_secs(from.as_secs());
        request.params.not_after = epoch + Duration::from_secs(until.as_secs());
        request.params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        Ok(request.signed_by(&self.issuer)?.pem())
    }
}
