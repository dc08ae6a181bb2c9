//! Talks to the control plane's config API (`/api/v1/config`, served on its
//! monitoring port).

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the control plane is.
#[derive(Debug, Clone, clap::Args)]
pub struct Address {
    /// The control plane's monitoring address, which serves the config API.
    #[arg(
        long = "control-plane",
        env = "MESH_CONTROL_ADDRESS",
        default_value = "http://127.0.0.1:15014"
    )]
    pub url: String,
}

/// The control plane's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

impl Address {
    /// Sends one request and waits for the whole answer.
    pub fn send(&self, method: Method, path: &str, body: String) -> anyhow::Result<Reply> {
        let base = self.url.trim_end_matches('/');
        let url = if base.contains("://") {
            format!("{base}{path}")
        } else {
            format!("http://{base}{path}")
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime
            .block_on(request(method, &url, body))
            .with_context(|| format!("cannot reach the control plane at {}", self.url))
    }
}

async fn request(method: Method, url: &str, body: String) -> anyhow::Result<Reply> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = Request::builder().method(method).uri(url);
    if !body.is_empty() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/yaml");
    }
    let request = builder.body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Escapes a query value or path segment (RFC 3986 unreserved characters
/// stay as they are).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_file_names() {
        assert_eq!(escape("/tmp/a b+c.yaml"), "%2Ftmp%2Fa%20b%2Bc.yaml");
        assert_eq!(escape("<stdin>"), "%3Cstdin%3E");
    }
}
