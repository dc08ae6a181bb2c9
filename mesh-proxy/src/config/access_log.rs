//! Access logs of the HTTP connection manager (`access_log`): where to write
//! and in which format, with Envoy's `%COMMAND%` operators.

use std::path::PathBuf;

use envoy_types::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use envoy_types::pb::envoy::config::core::v3::{
    SubstitutionFormatString, data_source, substitution_format_string,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    StderrAccessLog, StdoutAccessLog, stderr_access_log, stdout_access_log,
};
use envoy_types::pb::google::protobuf::value::Kind;
use prost::Message;

use super::{At, ConfigError};

/// Envoy's format when none is given.
pub const DEFAULT_FORMAT: &str = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" \
%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \
\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub sink: LogSink,
    pub format: LogFormat,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogSink {
    Stdout,
    Stderr,
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    /// A line made of literal text and operators (it carries its own newline).
    Text(Vec<Token>),
    /// One JSON object per line: each key's value from its tokens.
    Json(Vec<(String, Vec<Token>)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Literal(String),
    Op(Operator),
}

/// The command operators this proxy fills in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    StartTime,
    /// A request header, with fallbacks (`REQ(X-ENVOY-ORIGINAL-PATH?:PATH)`).
    Request(Vec<String>),
    Response(String),
    Protocol,
    ResponseCode,
    ResponseFlags,
    BytesReceived,
    BytesSent,
    Duration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamLocalAddress,
    DownstreamRemoteAddress,
    /// The first URI SAN of the client's TLS certificate.
    DownstreamPeerUriSan,
    /// The SNI of a TLS connection the listener terminated.
    RequestedServerName,
    /// Why the TLS handshake with the upstream failed.
    UpstreamTransportFailureReason,
    /// A value of the request's dynamic metadata: a namespace, and keys
    /// into it (none: the whole namespace).
    DynamicMetadata {
        namespace: String,
        path: Vec<String>,
    },
    /// Known to Envoy, not tracked here: printed as `-`.
    Unknown,
}

/// Operators Envoy knows that print `-` here until the proxy tracks them.
const NOT_TRACKED: &[&str] = &[
    "RESPONSE_CODE_DETAILS",
    "CONNECTION_TERMINATION_DETAILS",
    "UPSTREAM_LOCAL_ADDRESS",
    "ROUTE_NAME",
    "UPSTREAM_SERVICE_TIME",
];

const FILE: &str = "envoy.extensions.access_loggers.file.v3.FileAccessLog";
const STDOUT: &str = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog";
const STDERR: &str = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog";

pub(super) fn compile(log: &AccessLog, at: &At) -> Result<AccessLogConfig, ConfigError> {
    if log.filter.is_some() {
        return Err(at.field("filter").unsupported("access log filters"));
    }
    let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
        return Err(at.field("typed_config").error("typed_config is required"));
    };
    let at = at.field("typed_config");
    let decode_error =
        |err: prost::DecodeError| at.error(format_args!("cannot decode {}: {err}", any.type_url));
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let (sink, format) = match type_name {
        FILE => {
            let file = FileAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
            let sink = match file.path.as_str() {
                "" => return Err(at.field("path").error("a path is required")),
                "/dev/stdout" => LogSink::Stdout,
                "/dev/stderr" => LogSink::Stderr,
                path => LogSink::File(PathBuf::from(path)),
            };
            #[allow(deprecated)]
            let format = match file.access_log_format {
                None => None,
                Some(file_access_log::AccessLogFormat::LogFormat(format)) => {
                    Some(log_format(&format, &at.field("log_format"))?)
                }
                Some(file_access_log::AccessLogFormat::Format(text)) => {
                    Some(LogFormat::Text(parse(&text, &at.field("format"))?))
                }
                Some(_) => {
                    return Err(at.unsupported("json_format/typed_json_format (use log_format)"));
                }
            };
            (sink, format)
        }
        STDOUT => {
            let stdout = StdoutAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
            let format = match stdout.access_log_format {
                Some(stdout_access_log::AccessLogFormat::LogFormat(f)) => {
                    Some(log_format(&f, &at.field("log_format"))?)
                }
                None => None,
            };
            (LogSink::Stdout, format)
        }
        STDERR => {
            let stderr = StderrAccessLog::decode(any.value.as_slice()).map_err(decode_error)?;
            let format = match stderr.access_log_format {
                Some(stderr_access_log::AccessLogFormat::LogFormat(f)) => {
                    Some(log_format(&f, &at.field("log_format"))?)
                }
                None => None,
            };
            (LogSink::Stderr, format)
        }
        other => {
            return Err(at
                .field("@type")
                .unsupported(format_args!("access logger {other}")));
        }
    };
    let format = match format {
        Some(format) => format,
        None => LogFormat::Text(parse(DEFAULT_FORMAT, &at)?),
    };
    Ok(AccessLogConfig { sink, format })
}

fn log_format(format: &SubstitutionFormatString, at: &At) -> Result<LogFormat, ConfigError> {
    use substitution_format_string::Format;
    // `text_format` is deprecated in favour of `text_format_source`, but configs still use it.
    #[allow(deprecated)]
    match &format.format {
        Some(Format::TextFormat(text)) => {
            Ok(LogFormat::Text(parse(text, &at.field("text_format"))?))
        }
        Some(Format::TextFormatSource(source)) => match &source.specifier {
            Some(data_source::Specifier::InlineString(text)) => Ok(LogFormat::Text(parse(
                text,
                &at.field("text_format_source"),
            )?)),
            _ => Err(at
                .field("text_format_source")
                .unsupported("format sources other than inline_string")),
        },
        Some(Format::JsonFormat(fields)) => {
            let at = at.field("json_format");
            let mut keys: Vec<&String> = fields.fields.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|key| match &fields.fields[key].kind {
                    Some(Kind::StringValue(text)) => {
                        Ok((key.clone(), parse(text, &at.field(key))?))
                    }
                    _ => Err(at.field(key).unsupported("values other than strings")),
                })
                .collect::<Result<_, _>>()
                .map(LogFormat::Json)
        }
        None => Ok(LogFormat::Text(parse(DEFAULT_FORMAT, at)?)),
    }
}

/// Splits a format string into literal text and `%OPERATOR%`s (`%%` is a `%`).
pub(super) fn parse(text: &str, at: &At) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        let end = after
            .find('%')
            .ok_or_else(|| at.error(format_args!("unterminated operator in {text:?}")))?;
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        tokens.push(Token::Op(operator(&after[..end], at)?));
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(tokens)
}

fn operator(command: &str, at: &At) -> Result<Operator, ConfigError> {
    // `%REQ(X):10%` truncates; the length is accepted and not applied.
    let command = match command.rsplit_once("):") {
        Some((head, length)) if length.bytes().all(|b| b.is_ascii_digit()) => {
            &command[..head.len() + 1]
        }
        _ => command,
    };
    let argument = |name: &str| {
        command
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.strip_suffix(')'))
            .map(str::to_ascii_lowercase)
    };
    if let Some(headers) = argument("REQ") {
        return Ok(Operator::Request(
            headers.split('?').map(str::to_owned).collect(),
        ));
    }
    if let Some(header) = argument("RESP") {
        return Ok(Operator::Response(header));
    }
    // Metadata keys keep their case, unlike header names.
    if let Some(inner) = command
        .strip_prefix("DYNAMIC_METADATA(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let mut parts = inner.split(':').map(str::to_owned);
        let namespace = parts
            .next()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| at.error(format_args!("%{command}% names no metadata namespace")))?;
        return Ok(Operator::DynamicMetadata {
            namespace,
            path: parts.collect(),
        });
    }
    Ok(match command {
        "START_TIME" => Operator::StartTime,
        "PROTOCOL" => Operator::Protocol,
        "RESPONSE_CODE" => Operator::ResponseCode,
        "RESPONSE_FLAGS" => Operator::ResponseFlags,
        "BYTES_RECEIVED" => Operator::BytesReceived,
        "BYTES_SENT" => Operator::BytesSent,
        "DURATION" => Operator::Duration,
        "UPSTREAM_HOST" => Operator::UpstreamHost,
        "UPSTREAM_CLUSTER" | "UPSTREAM_CLUSTER_RAW" => Operator::UpstreamCluster,
        "DOWNSTREAM_LOCAL_ADDRESS" => Operator::DownstreamLocalAddress,
        "DOWNSTREAM_REMOTE_ADDRESS" => Operator::DownstreamRemoteAddress,
        "DOWNSTREAM_PEER_URI_SAN" => Operator::DownstreamPeerUriSan,
        "REQUESTED_SERVER_NAME" => Operator::RequestedServerName,
        "UPSTREAM_TRANSPORT_FAILURE_REASON" => Operator::UpstreamTransportFailureReason,
        known if NOT_TRACKED.contains(&known) => Operator::Unknown,
        other => return Err(at.unsupported(format_args!("access log operator %{other}%"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> At {
        At::resource("listener", "l")
    }

    #[test]
    fn parses_envoy_and_istio_formats() {
        let tokens = parse(DEFAULT_FORMAT, &at()).unwrap();
        assert_eq!(tokens[0], Token::Literal("[".into()));
        assert_eq!(tokens[1], Token::Op(Operator::StartTime));
        assert!(tokens.contains(&Token::Op(Operator::Request(vec![
            "x-envoy-original-path".into(),
            ":path".into()
        ]))));
        let metadata = parse("%DYNAMIC_METADATA(envoy.common:access_log_hint)%", &at()).unwrap();
        assert_eq!(
            metadata,
            [Token::Op(Operator::DynamicMetadata {
                namespace: "envoy.common".into(),
                path: vec!["access_log_hint".into()]
            })]
        );
        let istio = "%RESPONSE_CODE_DETAILS% %ROUTE_NAME% %UPSTREAM_CLUSTER_RAW% 100%% %REQ(USER-AGENT):20%";
        let tokens = parse(istio, &at()).unwrap();
        assert_eq!(tokens[0], Token::Op(Operator::Unknown));
        assert!(tokens.contains(&Token::Literal(" 100% ".into())));
        assert_eq!(
            tokens.last(),
            Some(&Token::Op(Operator::Request(vec!["user-agent".into()])))
        );
    }

    #[test]
    fn refuses_unknown_and_unterminated_operators() {
        assert_eq!(
            parse("%NOPE%", &at()).unwrap_err().to_string(),
            "listener \"l\": -: access log operator %NOPE% is not supported by this proxy"
        );
        assert!(
            parse("%START_TIME", &at())
                .unwrap_err()
                .to_string()
                .contains("unterminated")
        );
    }
}
