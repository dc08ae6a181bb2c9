//! One HTTP client for everything the dashboard reads (proxies' metrics,
//! the control plane's config), with bounded time and size: one proxy that
//! hangs or floods must not stall the refresh of all the others.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one request may take, connecting and reading included.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The largest body read; a busy proxy's metrics are a few hundred kB.
const MAX_BODY: usize = 32 << 20;

/// A pooled client; clones share connections.
#[derive(Clone, Debug)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Fetcher {
    pub fn new() -> Fetcher {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        connector.set_nodelay(true);
        Fetcher {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// GETs `url` and reads the body as text; any status but 2xx is an error.
    pub async fn get(&self, url: &str) -> anyhow::Result<String> {
        match tokio::time::timeout(TIMEOUT, self.get_unbounded(url)).await {
            Ok(result) => result,
            Err(_) => anyhow::bail!("GET {url}: no answer within {TIMEOUT:?}"),
        }
    }

    async fn get_unbounded(&self, url: &str) -> anyhow::Result<String> {
        let request = Request::get(url).body(Empty::new())?;
        let response = self
            .client
            .request(request)
            .await
            // The cause (connection refused, ...) is in the error's sources.
            .map_err(|err| anyhow::Error::new(err).context(format!("GET {url}")))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|err| anyhow::anyhow!("GET {url}: reading the body: {err}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            anyhow::bail!("GET {url}: {status}: {}", text.trim());
        }
        Ok(text)
    }
}
