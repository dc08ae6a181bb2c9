//! Fetching the JSON Web Key Sets that RequestAuthentication rules name
//! by `jwksUri` (or by their issuer's OpenID discovery document), so that
//! translation can inline them, as istiod does by default
//! (`PILOT_JWT_ENABLE_REMOTE_JWKS=false`): proxies never fetch keys.
//!
//! Follows the snapshots: a URL seen for the first time is fetched at
//! once, within its rule's `timeout` (5 s by default); every fetched set
//! is fetched again every [`REFRESH`], and a failed one every
//! [`RETRY`]. A failure is logged with the policy and keeps the last good
//! set; without one the URL stays out of [`FetchedJwks`], and translation
//! then inlines a key set that no token verifies against.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use mesh_api::load::Resource;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::model::{FetchedJwks, MeshSnapshot, OPENID_DISCOVERY, jwks_url};

/// How often a fetched key set is fetched again (istiod's default).
pub const REFRESH: Duration = Duration::from_secs(20 * 60);
/// How soon a failed fetch is tried again.
pub const RETRY: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Key sets are small; anything bigger is not one.
const MAX_BODY: usize = 1 << 20;

/// Why a key set could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0:?} is not an http:// or https:// URL with a host")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(#[from] std::io::Error),
    #[error("HTTP failed: {0}")]
    Http(String),
    #[error("answered {0}")]
    Status(http::StatusCode),
    #[error("the answer is not a key set: {0}")]
    NotJwks(String),
}

/// Where a URL's keys stand.
#[derive(Debug)]
struct Entry {
    keys: Option<Arc<str>>,
    /// When to fetch next.
    due: Instant,
}

/// Fetches the key sets `snapshots` name into `keys`, until either side
/// is gone.
pub async fn follow(
    mut snapshots: watch::Receiver<Arc<MeshSnapshot>>,
    keys: watch::Sender<Arc<FetchedJwks>>,
) {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    loop {
        let wanted = wanted(&snapshots.borrow_and_update());
        entries.retain(|url, _| wanted.contains_key(url));
        let now = Instant::now();
        // Every due key set at once: an issuer that does not answer holds
        // up only its own keys.
        let mut fetches = tokio::task::JoinSet::new();
        for (url, (timeout, policy)) in &wanted {
            let entry = entries.entry(url.clone()).or_insert(Entry {
                keys: None,
                due: now,
            });
            if entry.due <= now {
                let (url, timeout, policy) = (url.clone(), *timeout, policy.clone());
                fetches.spawn(async move {
                    let result = fetch(&url, timeout).await;
                    (url, policy, result)
                });
            }
        }
        while let Some(done) = fetches.join_next().await {
            let Ok((url, policy, result)) = done else {
                continue;
            };
            if let Some(entry) = entries.get_mut(&url) {
                refresh(entry, &url, &policy, result);
            }
        }
        let fetched = FetchedJwks(
            entries
                .iter()
                .filter_map(|(url, e)| Some((url.clone(), e.keys.clone()?)))
                .collect(),
        );
        keys.send_if_modified(|current| {
            let changed = **current != fetched;
            if changed {
                *current = Arc::new(fetched);
            }
            changed
        });
        let next = entries.values().map(|e| e.due).min();
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = sleep_until(next) => {}
            () = keys.closed() => return,
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Keeps what one fetch of `url` brought, and says when to fetch again.
fn refresh(entry: &mut Entry, url: &str, policy: &str, result: Result<String, FetchError>) {
    match result {
        Ok(keys) => {
            tracing::info!(%url, %policy, "fetched JWKS");
            entry.keys = Some(keys.into());
            entry.due = Instant::now() + REFRESH;
        }
        Err(err) => {
            tracing::warn!(
                %url, %policy, error = %err,
                "cannot fetch JWKS; tokens of this issuer are refused until it can be fetched"
            );
            entry.due = Instant::now() + RETRY;
        }
    }
}

/// The URLs to fetch, with the shortest timeout asked for each and the
/// first policy (`namespace/name`) that names it.
pub fn wanted(snapshot: &MeshSnapshot) -> BTreeMap<String, (Duration, String)> {
    let mut wanted: BTreeMap<String, (Duration, String)> = BTreeMap::new();
    for resource in &snapshot.config {
        let Resource::RequestAuthentication(policy) = resource.as_ref() else {
            continue;
        };
        let name = format!("{}/{}", resource.namespace(), resource.name());
        for rule in &policy.spec.jwt_rules {
            let Some(url) = jwks_url(rule) else { continue };
            let timeout = rule
                .timeout
                .as_ref()
                .map_or(DEFAULT_TIMEOUT, |t| t.as_std());
            let entry = wanted.entry(url).or_insert((timeout, name.clone()));
            entry.0 = entry.0.min(timeout);
        }
    }
    wanted
}

/// The key set at `url`, or named by the discovery document at `url`.
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, FetchError> {
    let body = get(url, timeout).await?;
    let body = if url.ends_with(OPENID_DISCOVERY) {
        let document: serde_json::Value =
            serde_json::from_slice(&body).map_err(|err| FetchError::NotJwks(err.to_string()))?;
        let jwks_uri = document["jwks_uri"]
            .as_str()
            .ok_or_else(|| FetchError::NotJwks("the discovery document has no jwks_uri".into()))?;
        get(jwks_uri, timeout).await?
    } else {
        body
    };
    let text =
        String::from_utf8(body.to_vec()).map_err(|err| FetchError::NotJwks(err.to_string()))?;
    let document: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| FetchError::NotJwks(err.to_string()))?;
    if !document["keys"].is_array() {
        return Err(FetchError::NotJwks("no \"keys\" list".into()));
    }
    Ok(text)
}

/// One GET over HTTP/1.1, plain or TLS, within `timeout`.
async fn get(url: &str, timeout: Duration) -> Result<Bytes, FetchError> {
    tokio::time::timeout(timeout, get_now(url))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

async fn get_now(url: &str) -> Result<Bytes, FetchError> {
    let uri: Uri = url.parse().map_err(|_| FetchError::Url(url.into()))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(FetchError::Url(url.into())),
    };
    let host = uri.host().ok_or_else(|| FetchError::Url(url.into()))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|err| FetchError::Http(err.to_string()))?;
    if tls {
        let stream = tls_connector().connect(server_name(host)?, tcp).await?;
        exchange(TokioIo::new(stream), request).await
    } else {
        exchange(TokioIo::new(tcp), request).await
    }
}

async fn exchange<S>(io: S, request: Request<Empty<Bytes>>) -> Result<Bytes, FetchError>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |err: hyper::Error| FetchError::Http(err.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(http)?;
    if !response.status().is_success() {
        return Err(FetchError::Status(response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|err| FetchError::Http(err.to_string()))?;
    Ok(body.to_bytes())
}

fn server_name(host: &str) -> Result<rustls_pki_types::ServerName<'static>, FetchError> {
    rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
        .map_err(|_| FetchError::Url(host.into()))
}

/// TLS to issuers, trusting the system's certificate authorities.
/// The connector for https fetches, made once: reading the system's
/// certificate authorities is blocking file work.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONNECTOR: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    CONNECTOR.get_or_init(new_tls_connector).clone()
}

fn new_tls_connector() -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "cannot read some system certificate authorities");
    }
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::warn!("no system certificate authorities: https JWKS fetches will fail");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[cfg(test)]
mod tests;
