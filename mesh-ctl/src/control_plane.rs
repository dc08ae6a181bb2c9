//! Talks to the control plane's monitoring port: the config API
//! (`/api/v1/config`) that `apply`, `delete` and `get` use, and the debug pages
//! (`/debug/syncz`, `/debug/config_dump`) that `proxy-status` and
//! `proxy-config` read.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the control plane is.
#[derive(Debug, Clone, clap::Args)]
pub struct Address {
    /// The control plane's monitoring address, which serves the config API
    /// (default: the local mesh's, when one runs, else http://127.0.0.1:15014).
    #[arg(long = "control-plane", env = "MESH_CONTROL_ADDRESS")]
    pub url: Option<String>,
}

/// The control plane's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
}

/// istiod's monitoring port on this host.
const DEFAULT_URL: &str = "http://127.0.0.1:15014";

impl Address {
    /// The base URL: the flag, else the running local mesh's control
    /// plane, else the default port on this host.
    pub fn base(&self) -> String {
        let url = self
            .url
            .clone()
            .or_else(local_mesh)
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        let url = url.trim_end_matches('/');
        if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        }
    }

    /// Sends one request and waits for the whole answer.
    pub fn send(&self, method: Method, path: &str, body: String) -> anyhow::Result<Reply> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(self.send_async(method, path, body))
    }

    /// [`Address::send`], inside a runtime.
    pub async fn send_async(
        &self,
        method: Method,
        path: &str,
        body: String,
    ) -> anyhow::Result<Reply> {
        let base = self.base();
        request(method, &format!("{base}{path}"), body)
            .await
            .with_context(|| format!("cannot reach the control plane at {base}"))
    }

    /// GETs `path_and_query` and reads the body as JSON.
    pub fn get_json(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let reply = self.send(Method::GET, path_and_query, String::new())?;
        if !reply.status.is_success() {
            anyhow::bail!(
                "{}{path_and_query}: {}: {}",
                self.base(),
                reply.status,
                reply.body.trim()
            );
        }
        serde_json::from_str(&reply.body)
            .with_context(|| format!("{path_and_query} did not answer JSON"))
    }
}

/// One request to `url`, with the whole answer.
pub async fn request(method: Method, url: &str, body: String) -> anyhow::Result<Reply> {
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

/// The monitoring address of the local mesh running from the default
/// directory, if one runs.
fn local_mesh() -> Option<String> {
    Some(format!(
        "http://{}",
        crate::local::running()?.control_plane?.monitoring
    ))
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

/// Prints rows as columns separated by at least `gap` spaces, as istioctl's
/// tables; the last column is not padded.
pub fn table(
    out: &mut impl std::io::Write,
    header: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    const GAP: usize = 5;
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] + GAP - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
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
