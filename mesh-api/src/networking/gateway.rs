//! Gateway: the ports, hosts and TLS settings of a load balancer at the edge
//! of the mesh (an ingress or egress gateway), picked by workload labels.
//!
//! Also home of [`Protocol`], the port protocol names Istio understands,
//! shared by every kind that declares a port.
//!
//! # Validation rules
//!
//! - `servers` must hold at least one server.
//! - `selector` labels must be valid Kubernetes labels, with no wildcards.
//! - Port names must be unique across the servers of a gateway.
//! - Server names, when set, must be unique across the servers of a gateway.
//! - A server needs at least one host.
//! - Each host is `[namespace/]dnsName`: both parts non-empty; the namespace is
//!   `*`, `.` or a lower-case DNS label; the dnsName is `*`, a fully qualified
//!   name (short names are refused) or an IP address, with a wildcard only as
//!   the whole left-most label (`*.example.com`).
//! - `port.number` is between 1 and 65535; it may be 0 only when `bind` is a
//!   `unix://` socket.
//! - `port.protocol` is one of Istio's protocol names (case-insensitive).
//! - `port.name` must be set.
//! - `port.targetPort` must not be set: it has no effect on gateways.
//! - `bind` is an IP address or `unix://` followed by an absolute path or an
//!   `@abstract` socket name; with a `unix://` bind the port number must be 0.
//! - HTTPS and TLS servers need `tls`.
//! - Servers with neither an HTTP nor a TLS protocol (TCP, MONGO...) may not
//!   have `tls`.
//! - HTTP servers may only use `tls` for `httpsRedirect`: the mode must stay a
//!   passthrough mode (the default).
//! - `ISTIO_MUTUAL` servers may not name certificates, keys, CA bundles or
//!   credentials: Istio supplies them.
//! - At most one certificate source: `serverCertificate`/`privateKey`,
//!   `credentialName`, `credentialNames` or `tlsCertificates`.
//! - `credentialNames` and `tlsCertificates` hold at most two entries.
//! - `SIMPLE`, `MUTUAL` and `OPTIONAL_MUTUAL` without `credentialName(s)` need
//!   `serverCertificate` and `privateKey` (in every `tlsCertificates` entry
//!   when that list is used).
//! - `MUTUAL` and `OPTIONAL_MUTUAL` without `credentialName(s)` need
//!   `caCertificates`.
//! - `caCrl` is not allowed with `credentialName` (put the CRL in the secret)
//!   nor with `SIMPLE` mode (no client certificate to check).
//! - `minProtocolVersion` may not be above `maxProtocolVersion` (`TLS_AUTO`
//!   on either side is not compared).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::IstioStatus;
use crate::selector::validate_labels;
use crate::validate::{self, Errors, Path, Validate};

const UNIX_PREFIX: &str = "unix://";
const MAX_CERTIFICATES: usize = 2;

#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    plural = "gateways",
    shortname = "gw",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    /// The ports the gateway listens on, with the hosts and TLS settings of each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels of the gateway pods or VMs this configuration applies to; empty means all.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// One listening port of the gateway and what it serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    /// The port to listen on.
    pub port: Port,
    /// The IP address or `unix://` socket to bind to instead of every address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// Hosts served, as `[namespace/]dnsName`; `*` serves every host.
    pub hosts: Vec<String>,
    /// TLS termination, passthrough or HTTP-to-HTTPS redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Loopback `ip:port` or `unix://` socket to forward to by default (not implemented by Istio).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_endpoint: String,
    /// Optional name, unique within the gateway, used in stats.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A port number with the protocol it speaks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// The port number.
    pub number: u32,
    /// HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, MYSQL, REDIS, TCP, TLS or UDP.
    pub protocol: String,
    /// A label for the port.
    pub name: String,
    /// Deprecated; has no effect on gateways and must not be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl Port {
    /// The protocol, if it is one Istio knows.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::parse(&self.protocol)
    }
}

/// How a server handles TLS.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// Answer plain HTTP requests with a 301 redirect to HTTPS.
    #[serde(default, skip_serializing_if = "is_default")]
    pub https_redirect: bool,
    /// Whether and how TLS is terminated.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: TlsMode,
    /// Path to the server certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Path to the server private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// Path to the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    /// Path to a certificate revocation list for client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
    /// Kubernetes secret holding the certificate, key and optionally the CA bundle.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    /// Up to two secrets, e.g. an RSA and an ECDSA certificate for the same server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// Secret or ConfigMap holding the CA bundle for client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_cert_credential_name: String,
    /// Up to two certificate/key file pairs, e.g. RSA and ECDSA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Subject alternative names accepted in client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64 SHA-256 hashes of the SPKIs of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex SHA-256 hashes of accepted client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Lowest TLS version accepted (TLS 1.2 when automatic).
    #[serde(default, skip_serializing_if = "is_default")]
    pub min_protocol_version: TlsProtocol,
    /// Highest TLS version accepted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_protocol_version: TlsProtocol,
    /// Cipher suites to offer instead of the proxy's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Verify client certificates but let connections through when verification fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

/// One server certificate given as files.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// Path to the server certificate file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_certificate: String,
    /// Path to the server private key file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// Path to the CA bundle that verifies client certificates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
}

/// What a server does with TLS connections.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Do not terminate; route on the SNI name through a VirtualService.
    #[default]
    Passthrough,
    /// Terminate TLS without asking for a client certificate.
    Simple,
    /// Terminate TLS and require a valid client certificate.
    Mutual,
    /// Do not terminate; route on the SNI name alone (east-west gateways).
    AutoPassthrough,
    /// Terminate mutual TLS with the mesh's own certificates.
    IstioMutual,
    /// Terminate TLS and verify a client certificate if one is sent.
    OptionalMutual,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Passthrough => "PASSTHROUGH",
            TlsMode::Simple => "SIMPLE",
            TlsMode::Mutual => "MUTUAL",
            TlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
            TlsMode::IstioMutual => "ISTIO_MUTUAL",
            TlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        })
    }
}

impl TlsMode {
    /// The modes that forward TLS untouched.
    pub fn is_passthrough(self) -> bool {
        matches!(self, TlsMode::Passthrough | TlsMode::AutoPassthrough)
    }

    /// The modes that ask for a client certificate.
    pub fn is_mutual(self) -> bool {
        matches!(self, TlsMode::Mutual | TlsMode::OptionalMutual)
    }
}

/// A TLS protocol version; ordered from automatic to newest.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    JsonSchema,
)]
pub enum TlsProtocol {
    /// Let the proxy choose.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_0")]
    Tlsv1_0,
    #[serde(rename = "TLSV1_1")]
    Tlsv1_1,
    #[serde(rename = "TLSV1_2")]
    Tlsv1_2,
    #[serde(rename = "TLSV1_3")]
    Tlsv1_3,
}

impl fmt::Display for TlsProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsProtocol::TlsAuto => "TLS_AUTO",
            TlsProtocol::Tlsv1_0 => "TLSV1_0",
            TlsProtocol::Tlsv1_1 => "TLSV1_1",
            TlsProtocol::Tlsv1_2 => "TLSV1_2",
            TlsProtocol::Tlsv1_3 => "TLSV1_3",
        })
    }
}

/// A port protocol as Istio names it. Config keeps the string the user wrote
/// (Istio reads it case-insensitively); this is what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Https,
    Grpc,
    GrpcWeb,
    Http2,
    /// A generic outbound HTTP proxy port (Sidecar egress listeners only).
    HttpProxy,
    Mongo,
    Mysql,
    Redis,
    Tcp,
    Tls,
    Udp,
}

impl Protocol {
    /// The names Istio accepts, in their usual spelling.
    pub const NAMES: &'static str =
        "HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, HTTP_PROXY, MONGO, MYSQL, REDIS, TCP, TLS, UDP";

    /// Reads a protocol name, ignoring case; `None` when Istio does not know it.
    pub fn parse(name: &str) -> Option<Protocol> {
        let protocol = match name.to_ascii_uppercase().as_str() {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "GRPC" => Protocol::Grpc,
            "GRPC-WEB" => Protocol::GrpcWeb,
            "HTTP2" => Protocol::Http2,
            "HTTP_PROXY" => Protocol::HttpProxy,
            "MONGO" => Protocol::Mongo,
            "MYSQL" => Protocol::Mysql,
            "REDIS" => Protocol::Redis,
            "TCP" => Protocol::Tcp,
            "TLS" => Protocol::Tls,
            "UDP" => Protocol::Udp,
            _ => return None,
        };
        Some(protocol)
    }

    /// Checks a protocol name, with a reason naming the accepted ones.
    pub fn check(name: &str) -> Result<Protocol, String> {
        Protocol::parse(name).ok_or_else(|| {
            format!(
                "unsupported protocol {name:?}; use one of {}",
                Protocol::NAMES
            )
        })
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::Http2 => "HTTP2",
            Protocol::HttpProxy => "HTTP_PROXY",
            Protocol::Mongo => "MONGO",
            Protocol::Mysql => "MYSQL",
            Protocol::Redis => "REDIS",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Udp => "UDP",
        }
    }

    /// Plain-text HTTP of any version, gRPC included.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// HTTP/2 framing (HTTP2 and gRPC).
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb)
    }

    /// TLS on the wire (HTTPS, TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Carried over TCP and proxied as opaque or TLS streams.
    pub fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Validate for GatewaySpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let servers = at.field("servers");
        if self.servers.is_empty() {
            errs.add(&servers, "a gateway needs at least one server");
        }
        validate::each(&self.servers, &servers, errs);

        let mut port_names = BTreeSet::new();
        let mut server_names = BTreeSet::new();
        for (i, server) in self.servers.iter().enumerate() {
            let name = &server.port.name;
            if !name.is_empty() && !port_names.insert(name) {
                errs.add(
                    &servers.index(i).field("port").field("name"),
                    format!("port name {name:?} is already used by another server; port names must be unique"),
                );
            }
            let name = &server.name;
            if !name.is_empty() && !server_names.insert(name) {
                errs.add(
                    &servers.index(i).field("name"),
                    format!("server name {name:?} is already used by another server; server names must be unique"),
                );
            }
        }
        validate_labels(&self.selector, &at.field("selector"), errs);
    }
}

impl Validate for Server {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let hosts = at.field("hosts");
        if self.hosts.is_empty() {
            errs.add(&hosts, "a server needs at least one host");
        }
        for (i, host) in self.hosts.iter().enumerate() {
            errs.check(&hosts.index(i), gateway_host(host));
        }

        let port = at.field("port");
        let unix_bind = self.bind.strip_prefix(UNIX_PREFIX);
        if self.port.number > 0 || unix_bind.is_none() {
            errs.check(&port.field("number"), validate::port(self.port.number));
        }
        let protocol = Protocol::parse(&self.port.protocol);
        if protocol.is_none() {
            errs.check(
                &port.field("protocol"),
                Protocol::check(&self.port.protocol).map(|_| ()),
            );
        }
        if self.port.name.is_empty() {
            errs.add(&port.field("name"), "port name must be set");
        }
        if let Some(target) = self.port.target_port.filter(|&t| t > 0) {
            errs.add(
                &port.field("targetPort"),
                format!("targetPort ({target}) has no effect on gateways; remove it"),
            );
        }

        let bind = at.field("bind");
        match unix_bind {
            Some(socket) => {
                errs.check(&bind, unix_socket(socket));
                if self.port.number != 0 {
                    errs.add(
                        &bind,
                        format!(
                            "a unix:// bind needs port number 0, not {}",
                            self.port.number
                        ),
                    );
                }
            }
            None if !self.bind.is_empty() && self.bind.parse::<IpAddr>().is_err() => {
                errs.add(
                    &bind,
                    format!(
                        "bind {:?} must be an IP address or a unix:// socket",
                        self.bind
                    ),
                );
            }
            None => {}
        }

        let tls_at = at.field("tls");
        self.tls.validate(&tls_at, errs);
        if let Some(protocol) = protocol {
            match &self.tls {
                None if protocol.is_tls() => errs.add(
                    &tls_at,
                    format!("a {protocol} server needs tls settings"),
                ),
                Some(tls) if protocol.is_http() && !tls.mode.is_passthrough() => errs.add(
                    &tls_at.field("mode"),
                    format!(
                        "a plain-text {protocol} server can only use tls for httpsRedirect; \
                         to terminate TLS ({}) use protocol HTTPS",
                        tls.mode
                    ),
                ),
                Some(_) if !protocol.is_http() && !protocol.is_tls() => errs.add(
                    &tls_at,
                    format!("a {protocol} server cannot have tls settings; only HTTP, HTTPS and TLS servers can"),
                ),
                _ => {}
            }
        }
    }
}

impl Validate for ServerTlsSettings {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let mode = self.mode;
        if mode.is_passthrough() {
            // Istio only warns about certificates on a passthrough server:
            // they are unused, and existing configs carry them.
            self.check_versions(at, errs);
            return;
        }
        if mode == TlsMode::IstioMutual {
            let why = "uses the mesh's own certificates";
            let certificate_fields = [
                ("serverCertificate", !self.server_certificate.is_empty()),
                ("privateKey", !self.private_key.is_empty()),
                ("caCertificates", !self.ca_certificates.is_empty()),
                ("credentialName", !self.credential_name.is_empty()),
                ("credentialNames", !self.credential_names.is_empty()),
                ("tlsCertificates", !self.tls_certificates.is_empty()),
            ];
            for (field, _) in certificate_fields.iter().filter(|(_, set)| *set) {
                errs.add(
                    &at.field(field),
                    format!("{mode} mode {why}; {field} must not be set"),
                );
            }
            self.check_versions(at, errs);
            return;
        }

        let sources = [
            (
                "serverCertificate/privateKey",
                !self.server_certificate.is_empty() && !self.private_key.is_empty(),
            ),
            ("credentialName", !self.credential_name.is_empty()),
            ("credentialNames", !self.credential_names.is_empty()),
            ("tlsCertificates", !self.tls_certificates.is_empty()),
        ];
        errs.check(
            at,
            validate::one_of(&sources)
                .map_err(|reason| format!("{reason} (pick one certificate source)")),
        );
        for (field, len) in [
            ("credentialNames", self.credential_names.len()),
            ("tlsCertificates", self.tls_certificates.len()),
        ] {
            if len > MAX_CERTIFICATES {
                errs.add(
                    &at.field(field),
                    format!("{field} holds {len} entries; at most {MAX_CERTIFICATES} are allowed"),
                );
            }
        }

        let from_secret = !self.credential_name.is_empty() || !self.credential_names.is_empty();
        let terminates = matches!(mode, TlsMode::Simple) || mode.is_mutual();
        if terminates && !from_secret {
            if mode.is_mutual() && self.ca_certificates.is_empty() {
                errs.add(
                    &at.field("caCertificates"),
                    format!(
                        "{mode} mode needs caCertificates to verify clients, or a credentialName"
                    ),
                );
            }
            if self.tls_certificates.is_empty() {
                self.require_pair(&self.server_certificate, &self.private_key, at, errs);
            } else {
                for (i, cert) in self.tls_certificates.iter().enumerate() {
                    let here = at.field("tlsCertificates").index(i);
                    self.require_pair(&cert.server_certificate, &cert.private_key, &here, errs);
                }
            }
        }

        if !self.ca_crl.is_empty() {
            if !self.credential_name.is_empty() {
                errs.add(
                    &at.field("caCrl"),
                    "caCrl cannot be used with credentialName; put the CRL in the secret",
                );
            }
            if mode == TlsMode::Simple {
                errs.add(
                    &at.field("caCrl"),
                    "caCrl needs a mode that checks client certificates (MUTUAL or OPTIONAL_MUTUAL), not SIMPLE",
                );
            }
        }
        self.check_versions(at, errs);
    }
}

impl ServerTlsSettings {
    fn require_pair(&self, certificate: &str, key: &str, at: &Path, errs: &mut Errors) {
        let mode = self.mode;
        if certificate.is_empty() {
            errs.add(
                &at.field("serverCertificate"),
                format!("{mode} mode needs serverCertificate, or a credentialName"),
            );
        }
        if key.is_empty() {
            errs.add(
                &at.field("privateKey"),
                format!("{mode} mode needs privateKey, or a credentialName"),
            );
        }
    }

    fn check_versions(&self, at: &Path, errs: &mut Errors) {
        let (min, max) = (self.min_protocol_version, self.max_protocol_version);
        if min != TlsProtocol::TlsAuto && max != TlsProtocol::TlsAuto && min > max {
            errs.add(
                &at.field("minProtocolVersion"),
                format!("minProtocolVersion {min} is above maxProtocolVersion {max}"),
            );
        }
    }
}

/// A gateway host: `[namespace/]dnsName`.
fn gateway_host(value: &str) -> Result<(), String> {
    let host = match value.split_once('/') {
        Some((namespace, host)) => {
            if namespace.is_empty() || host.is_empty() {
                return Err(format!(
                    "host {value:?} must be namespace/dnsName with neither part empty"
                ));
            }
            if !matches!(namespace, "*" | ".") && validate::dns_label(namespace).is_err() {
                return Err(format!(
                    "host {value:?} has an invalid namespace {namespace:?} (use *, . or a namespace name)"
                ));
            }
            host
        }
        None => value,
    };
    if host == "*" {
        return Ok(());
    }
    if !host.contains('.') {
        return Err(format!(
            "host {value:?} is a short name; use a fully qualified name or *"
        ));
    }
    if host.contains('*') && !host.starts_with("*.") {
        return Err(format!(
            "host {value:?} has a partial wildcard; a wildcard must be the whole first label (*.example.com)"
        ));
    }
    match validate::wildcard_host(host) {
        Err(_) if host.parse::<IpAddr>().is_ok() => Ok(()),
        result => result,
    }
}

/// The part of a `unix://` address after the prefix.
fn unix_socket(socket: &str) -> Result<(), String> {
    if socket.starts_with('@') {
        return Ok(());
    }
    if !socket.starts_with('/') || socket.ends_with('/') {
        return Err(format!(
            "unix://{socket} must name an absolute socket file path or an @abstract socket"
        ));
    }
    Ok(())
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests;
