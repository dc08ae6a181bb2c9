//! Writing access log lines when responses finish.
//!
//! Each logger owns a writer thread, so a slow disk never stalls the data
//! path; the line is rendered when the response body ends (or is dropped,
//! when the client goes away), so that `BYTES_SENT` and `DURATION` are final.

use std::io::Write;
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime};

use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode, Version};

use super::info::ResponseInfo;
use super::{Body, observe};
use crate::config::{AccessLogConfig, LogFormat, LogSink, Operator, Token};
use crate::lb::Downstream;
use crate::tls::DownstreamTls;

/// One configured access log.
#[derive(Debug)]
pub struct AccessLogger {
    format: LogFormat,
    lines: mpsc::Sender<String>,
}

impl AccessLogger {
    /// Opens the sink and starts its writer thread.
    pub fn open(config: &AccessLogConfig) -> std::io::Result<AccessLogger> {
        let mut out: Box<dyn Write + Send> = match &config.sink {
            LogSink::Stdout => Box::new(std::io::stdout()),
            LogSink::Stderr => Box::new(std::io::stderr()),
            LogSink::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (lines, received) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut buffered = std::io::BufWriter::new(&mut out);
                // Ends when every sender (the proxy's state) is gone.
                while let Ok(line) = received.recv() {
                    let _ = buffered.write_all(line.as_bytes());
                    while let Ok(more) = received.try_recv() {
                        let _ = buffered.write_all(more.as_bytes());
                    }
                    let _ = buffered.flush();
                }
            })?;
        Ok(AccessLogger {
            format: config.format.clone(),
            lines,
        })
    }
}

/// What is known about a request when it arrives.
#[derive(Debug)]
pub struct Record {
    start: SystemTime,
    started: Instant,
    method: Method,
    path: String,
    version: Version,
    headers: HeaderMap,
    downstream: Option<Downstream>,
    tls: Option<DownstreamTls>,
    bytes_received: u64,
}

impl Record {
    pub fn start(parts: &Parts) -> Record {
        let bytes_received = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        Record {
            start: SystemTime::now(),
            started: Instant::now(),
            method: parts.method.clone(),
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".into(), |p| p.as_str().to_owned()),
            version: parts.version,
            headers: parts.headers.clone(),
            downstream: parts.extensions.get::<Downstream>().copied(),
            tls: parts.extensions.get::<DownstreamTls>().cloned(),
            bytes_received,
        }
    }
}

/// The response side, captured when the headers go out.
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    headers: HeaderMap,
    info: ResponseInfo,
}

/// Returns `response` with a body that logs the request when it ends.
pub fn log_when_done(
    record: Record,
    response: Response<Body>,
    loggers: Arc<[AccessLogger]>,
) -> Response<Body> {
    let outcome = Outcome {
        status: response.status(),
        headers: response.headers().clone(),
        info: response
            .extensions()
            .get::<ResponseInfo>()
            .cloned()
            .unwrap_or_default(),
    };
    let hook = move |done: observe::Done| {
        for logger in loggers.iter() {
            let line = render(&logger.format, &record, &outcome, done.body_bytes);
            let _ = logger.lines.send(line);
        }
    };
    observe::when_done(response, hook)
}

fn render(format: &LogFormat, record: &Record, outcome: &Outcome, sent: u64) -> String {
    match format {
        LogFormat::Text(tokens) => tokens
            .iter()
            .map(|t| text(t, record, outcome, sent))
            .collect(),
        LogFormat::Json(fields) => {
            let object: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(key, tokens)| (key.clone(), json_value(tokens, record, outcome, sent)))
                .collect();
            let mut line = serde_json::Value::Object(object).to_string();
            line.push('\n');
            line
        }
    }
}

/// A lone numeric operator stays a number; a missing value is null.
fn json_value(
    tokens: &[Token],
    record: &Record,
    outcome: &Outcome,
    sent: u64,
) -> serde_json::Value {
    let rendered: String = tokens
        .iter()
        .map(|t| text(t, record, outcome, sent))
        .collect();
    match tokens {
        [
            Token::Op(
                Operator::ResponseCode
                | Operator::BytesReceived
                | Operator::BytesSent
                | Operator::Duration,
            ),
        ] => rendered
            .parse::<u64>()
            .map_or(serde_json::Value::Null, serde_json::Value::from),
        [Token::Op(Operator::DynamicMetadata { namespace, path })] => {
            metadata_value(outcome, namespace, path).unwrap_or(serde_json::Value::Null)
        }
        // Envoy prints "-" for no response flags, and null for other missing values.
        [Token::Op(op)] if rendered == "-" && *op != Operator::ResponseFlags => {
            serde_json::Value::Null
        }
        _ => serde_json::Value::String(rendered),
    }
}

fn text(token: &Token, record: &Record, outcome: &Outcome, sent: u64) -> String {
    let op = match token {
        Token::Literal(text) => return text.clone(),
        Token::Op(op) => op,
    };
    let or_dash = |value: Option<String>| {
        value
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "-".into())
    };
    match op {
        Operator::StartTime => mesh_api::time::rfc3339_millis(record.start),
        Operator::Request(names) => {
            or_dash(names.iter().find_map(|name| request_header(record, name)))
        }
        Operator::Response(name) => or_dash(
            outcome
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        ),
        Operator::Protocol => format!("{:?}", record.version),
        Operator::ResponseCode => outcome.status.as_u16().to_string(),
        Operator::ResponseFlags => outcome.info.flags.to_string(),
        Operator::BytesReceived => record.bytes_received.to_string(),
        Operator::BytesSent => sent.to_string(),
        Operator::Duration => record.started.elapsed().as_millis().to_string(),
        Operator::UpstreamHost => or_dash(outcome.info.upstream_host.map(|h| h.to_string())),
        Operator::UpstreamCluster => or_dash(outcome.info.cluster.as_deref().map(str::to_owned)),
        Operator::DownstreamLocalAddress => or_dash(record.downstream.map(|d| d.local.to_string())),
        Operator::DownstreamRemoteAddress => {
            or_dash(record.downstream.map(|d| d.remote.to_string()))
        }
        Operator::DownstreamPeerUriSan => or_dash(
            record
                .tls
                .as_ref()
                .and_then(|t| t.peer_uri_san.as_deref().map(str::to_owned)),
        ),
        Operator::RequestedServerName => or_dash(
            record
                .tls
                .as_ref()
                .and_then(|t| t.server_name.as_deref().map(str::to_owned)),
        ),
        Operator::UpstreamTransportFailureReason => {
            or_dash(outcome.info.transport_failure.as_deref().map(str::to_owned))
        }
        Operator::DynamicMetadata { namespace, path } => or_dash(
            metadata_value(outcome, namespace, path).map(|value| match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            }),
        ),
        Operator::Unknown => "-".into(),
    }
}

/// A value of the request's dynamic metadata, or its whole namespace.
fn metadata_value(
    outcome: &Outcome,
    namespace: &str,
    path: &[String],
) -> Option<serde_json::Value> {
    let metadata = outcome.info.metadata.as_deref()?;
    if path.is_empty() {
        let keys = metadata.0.get(namespace)?;
        return Some(serde_json::Value::Object(keys.clone()));
    }
    metadata.get(namespace, path).cloned()
}

fn request_header(record: &Record, name: &str) -> Option<String> {
    match name {
        ":method" => Some(record.method.to_string()),
        ":path" => Some(record.path.clone()),
        ":authority" => record
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        other => record
            .headers
            .get(other)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}
