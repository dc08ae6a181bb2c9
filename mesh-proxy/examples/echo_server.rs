//! A small, fast HTTP/1.1 and h2c (prior knowledge) echo upstream for the
//! data-path benchmark (`bench/proxy-overhead.sh`).
//!
//! Every request is answered with its own body; a request without a body
//! (such as a GET) gets a fixed 1 KiB body instead.
//!
//! ```sh
//! cargo run --release -p mesh-proxy --example echo_server -- \
//!     --listen 127.0.0.1:0 --address-file /tmp/echo.addr
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The body for requests that send none.
static FIXED_BODY: [u8; 1024] = [b'x'; 1024];

/// An HTTP/1.1 and h2c echo server.
#[derive(Debug, Parser)]
#[command(name = "echo_server")]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    address_file: Option<PathBuf>,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads);
    }
    runtime.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen).await?;
    let address = listener.local_addr()?;
    if let Some(path) = &args.address_file {
        // Write then rename, so that a reader never sees half an address.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, address.to_string())?;
        std::fs::rename(&partial, path)?;
    }
    eprintln!("echo_server listening on {address}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept failed: {err}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(echo))
                .await;
        });
    }
}

async fn echo(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let body = if body.is_empty() {
        Bytes::from_static(&FIXED_BODY)
    } else {
        body
    };
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}
