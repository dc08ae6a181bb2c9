//! What happened to a request, for access logs: Envoy's response flags and
//! the upstream that answered. Carried in the response's extensions.

use std::net::SocketAddr;
use std::sync::Arc;

/// Envoy's response flags, as its access logs print them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    pub const NONE: ResponseFlags = ResponseFlags(0);
    /// No healthy upstream.
    pub const UH: ResponseFlags = ResponseFlags(1);
    /// Upstream connection failure.
    pub const UF: ResponseFlags = ResponseFlags(1 << 1);
    /// Upstream overflow (circuit breaker).
    pub const UO: ResponseFlags = ResponseFlags(1 << 2);
    /// No route.
    pub const NR: ResponseFlags = ResponseFlags(1 << 3);
    /// Upstream request timeout.
    pub const UT: ResponseFlags = ResponseFlags(1 << 4);
    /// Upstream connection termination (reset).
    pub const UC: ResponseFlags = ResponseFlags(1 << 5);
    /// Fault injected: abort.
    pub const FI: ResponseFlags = ResponseFlags(1 << 6);
    /// Fault injected: delay.
    pub const DI: ResponseFlags = ResponseFlags(1 << 7);
    /// No cluster found.
    pub const NC: ResponseFlags = ResponseFlags(1 << 8);
    /// Upstream retry limit exceeded.
    pub const URX: ResponseFlags = ResponseFlags(1 << 9);
    /// Denied by an RBAC filter.
    pub const RBAC: ResponseFlags = ResponseFlags(1 << 10);
    /// Denied by an external authorizer, or refused because it could not be asked.
    pub const UAEX: ResponseFlags = ResponseFlags(1 << 11);

    const NAMES: [(ResponseFlags, &'static str); 12] = [
        (Self::DI, "DI"),
        (Self::FI, "FI"),
        (Self::NC, "NC"),
        (Self::NR, "NR"),
        (Self::RBAC, "RBAC"),
        (Self::UAEX, "UAEX"),
        (Self::UC, "UC"),
        (Self::UF, "UF"),
        (Self::UH, "UH"),
        (Self::UO, "UO"),
        (Self::URX, "URX"),
        (Self::UT, "UT"),
    ];

    pub fn with(self, other: ResponseFlags) -> ResponseFlags {
        ResponseFlags(self.0 | other.0)
    }

    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

impl std::fmt::Display for ResponseFlags {
    /// Comma-separated short names, or `-` when there are none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, n)| *n)
            .collect();
        if names.is_empty() {
            f.write_str("-")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// Attached to each response the proxy sends.
#[derive(Debug, Clone, Default)]
pub struct ResponseInfo {
    pub flags: ResponseFlags,
    pub cluster: Option<Arc<str>>,
    pub upstream_host: Option<SocketAddr>,
    /// The service the cluster stands for, from its Istio metadata.
    pub service: Option<Arc<crate::config::ServiceRef>>,
    /// The upstream workload, from its peer metadata headers.
    pub upstream_peer: Option<Arc<crate::telemetry::peer::Workload>>,
    /// Why the TLS handshake with the upstream failed.
    pub transport_failure: Option<Arc<str>>,
    /// The route's `decorator.operation`, which names the request's span.
    pub operation: Option<Arc<str>>,
    /// What the filters left in the request's dynamic metadata, when an
    /// access log may print it.
    pub metadata: Option<Arc<crate::config::DynamicMetadata>>,
    /// The text of a reply the proxy made itself (a refusal, an error);
    /// a gRPC client gets it in `grpc-message` instead, see [`super::grpc`].
    pub local_reply: Option<bytes::Bytes>,
    /// The gRPC status of that reply, when not the one its HTTP status maps to.
    pub local_grpc_status: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_envoy() {
        assert_eq!(ResponseFlags::NONE.to_string(), "-");
        assert_eq!(ResponseFlags::UO.to_string(), "UO");
        assert_eq!(
            ResponseFlags::UT.with(ResponseFlags::DI).to_string(),
            "DI,UT"
        );
    }
}
