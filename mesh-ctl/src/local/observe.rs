//! What lets users watch the local mesh: a trace collector every proxy
//! exports its spans to (sampling everything, as Istio's demo profile
//! does), and the dashboard's service graph.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::state::AddressFile;

/// The collector's registered name: mesh-control points the proxies'
/// OpenTelemetry tracer at `outbound|4317||<this host>`.
pub const COLLECTOR_HOST: &str = "otel-collector.istio-system.svc.cluster.local";
const COLLECTOR_PORT: u16 = 4317;

/// Where the trace collector listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collector {
    pub otlp: SocketAddr,
    pub http: SocketAddr,
}

impl Collector {
    /// Reads the collector's address file.
    pub fn read(file: &std::path::Path) -> Option<Collector> {
        let addresses = AddressFile::read(file)?;
        Some(Collector {
            otlp: addresses.get("otlp")?,
            http: addresses.get("http")?,
        })
    }

    /// The collector as a service of the mesh, plain gRPC to its real port.
    pub fn service_entry(&self) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "ServiceEntry",
            "metadata": {"name": "otel-collector", "namespace": "istio-system"},
            "spec": {
                "hosts": [COLLECTOR_HOST],
                "location": "MESH_INTERNAL",
                "resolution": "STATIC",
                "ports": [{"number": COLLECTOR_PORT, "name": "grpc-otlp", "protocol": "GRPC"}],
                "endpoints": [{
                    "address": self.otlp.ip().to_string(),
                    "ports": {"grpc-otlp": self.otlp.port()},
                }],
            },
        })
    }
}

/// Istio's MeshConfig for mesh-control: every request traced, to the
/// collector.
pub fn mesh_config() -> String {
    format!(
        "# Written by meshctl local up: trace everything to the local collector.
enableTracing: true
defaultConfig:
  tracing:
    sampling: 100
extensionProviders:
- name: otel
  opentelemetry:
    service: {COLLECTOR_HOST}
    port: {COLLECTOR_PORT}
defaultProviders:
  tracing: [otel]
"
    )
}
