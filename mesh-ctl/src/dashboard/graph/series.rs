//! What one sample of Istio's standard metrics says about traffic: who
//! called whom, who reported it, and what was counted.

use crate::dashboard::prometheus::{self, Sample};

/// The proxy that counted: the caller's, or the callee's (a waypoint counts
/// on the server side too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    Source,
    Destination,
}

/// One end of a call, as the labels name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Workload {
        name: String,
        namespace: String,
        app: String,
        version: String,
    },
    /// A destination known only by its service: no proxy answered for it.
    Service {
        name: String,
        namespace: String,
    },
    Unknown,
}

impl Peer {
    /// A stable identifier: `namespace/workload`, `service:namespace/name`
    /// or `unknown`.
    pub fn id(&self) -> String {
        match self {
            Peer::Workload {
                name, namespace, ..
            } => workload_id(namespace, name),
            Peer::Service { name, namespace } => format!("service:{namespace}/{name}"),
            Peer::Unknown => "unknown".into(),
        }
    }
}

pub fn workload_id(namespace: &str, workload: &str) -> String {
    format!("{namespace}/{workload}")
}

/// `connection_security_policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    MutualTls,
    Plaintext,
    /// The caller's proxy cannot tell: Istio reports `unknown` on that side.
    Unknown,
}

/// What a sample counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Measure {
    /// Requests; `error` when the response was a 5xx.
    Requests { error: bool },
    /// Requests that took at most `le` milliseconds (cumulative bucket).
    DurationBucket { le: f64 },
    /// Connections opened; `failed` when a response flag says so (Istio
    /// labels TCP metrics with `response_flags`, e.g. `UF`).
    Connections { failed: bool },
    /// Bytes either way.
    Bytes,
}

/// One series of the standard metrics, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub reporter: Reporter,
    pub source: Peer,
    pub destination: Peer,
    /// `http`, `grpc` or `tcp`.
    pub protocol: String,
    pub security: Security,
    pub measure: Measure,
}

/// The flow a sample belongs to; `None` for anything but the standard
/// request and TCP metrics.
pub fn flow(sample: &Sample) -> Option<Flow> {
    let label = |name| sample.label(name).unwrap_or("unknown");
    let measure = match sample.name.as_str() {
        "istio_requests_total" => Measure::Requests {
            error: label("response_code").starts_with('5'),
        },
        "istio_request_duration_milliseconds_bucket" => Measure::DurationBucket {
            le: prometheus::number(sample.label("le")?).ok()?,
        },
        "istio_tcp_connections_opened_total" => Measure::Connections {
            failed: sample
                .label("response_flags")
                .is_some_and(|flags| !flags.is_empty() && flags != "-"),
        },
        "istio_tcp_sent_bytes_total" | "istio_tcp_received_bytes_total" => Measure::Bytes,
        _ => return None,
    };
    let reporter = match label("reporter") {
        "source" => Reporter::Source,
        _ => Reporter::Destination,
    };
    let protocol = match measure {
        Measure::Connections { .. } | Measure::Bytes => "tcp",
        _ => label("request_protocol"),
    };
    let security = match label("connection_security_policy") {
        "mutual_tls" => Security::MutualTls,
        "none" => Security::Plaintext,
        _ => Security::Unknown,
    };
    Some(Flow {
        reporter,
        source: workload(
            label("source_workload"),
            label("source_workload_namespace"),
            label("source_app"),
            label("source_version"),
        )
        .unwrap_or(Peer::Unknown),
        destination: destination(&label),
        protocol: protocol.to_owned(),
        security,
        measure,
    })
}

fn workload(name: &str, namespace: &str, app: &str, version: &str) -> Option<Peer> {
    (name != "unknown").then(|| Peer::Workload {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
        app: app.to_owned(),
        version: version.to_owned(),
    })
}

/// The destination workload when its proxy answered, else its service.
fn destination<'a>(label: &impl Fn(&'static str) -> &'a str) -> Peer {
    if let Some(peer) = workload(
        label("destination_workload"),
        label("destination_workload_namespace"),
        label("destination_app"),
        label("destination_version"),
    ) {
        return peer;
    }
    let name = label("destination_service_name");
    if name == "unknown" {
        return Peer::Unknown;
    }
    let namespace = match label("destination_service_namespace") {
        "unknown" => label("destination_workload_namespace"),
        namespace => namespace,
    };
    Peer::Service {
        name: name.to_owned(),
        namespace: namespace.to_owned(),
    }
}
