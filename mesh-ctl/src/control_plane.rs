//! Reading the control plane's monitoring port (`/debug/syncz`,
//! `/debug/config_dump`), where `proxy-status` and `proxy-config` get their data.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

/// Where the control plane's monitoring server is.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The control plane's monitoring address (port 15014).
    #[arg(
        long,
        env = "MESH_CONTROL_ADDRESS",
        default_value = "http://127.0.0.1:15014"
    )]
    pub control_plane: String,
}

impl Remote {
    /// GETs `path_and_query` and reads the body as JSON.
    pub fn get_json(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let authority = self
            .control_plane
            .strip_prefix("http://")
            .unwrap_or(&self.control_plane)
            .trim_end_matches('/')
            .to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (status, body) = runtime
            .block_on(get(&authority, path_and_query))
            .with_context(|| format!("cannot reach the control plane at {}", self.control_plane))?;
        if !status.is_success() {
            bail!(
                "{}{path_and_query}: {status}: {}",
                self.control_plane,
                body.trim()
            );
        }
        serde_json::from_str(&body).with_context(|| format!("{path_and_query} did not answer JSON"))
    }
}

async fn get(authority: &str, path_and_query: &str) -> anyhow::Result<(http::StatusCode, String)> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::get(path_and_query)
        .header(http::header::HOST, authority)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Escapes a query value (node ids carry `~` and `|`, which stay readable).
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
