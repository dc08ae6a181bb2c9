//! Sidecar: trims and tunes what a workload's proxy listens to — the inbound
//! ports it accepts, the services it can reach, how unknown outbound traffic is
//! treated and how many inbound connections it takes.
//!
//! Inbound connection pools reuse DestinationRule's [`ConnectionPoolSettings`]
//! and its rules; ingress TLS reuses the Gateway's [`ServerTlsSettings`].
//!
//! # Validation rules
//!
//! - A Sidecar sets at least one of `ingress`, `egress`, `outboundTrafficPolicy` or `inboundConnectionPool`.
//! - `workloadSelector.labels` are valid labels without wildcards, at most 256 of them.
//! - Ingress: `port.number` is 1-65535 and unique among the ingress listeners.
//! - Ports (ingress and egress): `protocol`, when set, is one of Istio's protocol names; `name`, when set,
//!   is a lower-case DNS label; the deprecated `targetPort` is not set (it has no effect).
//! - Ingress `bind`, when set, is an IP address (no unix sockets).
//! - Ingress `defaultEndpoint`, when set, is `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`
//!   (or Istio's legacy `:PORT`) with a port of 1-65535, or `unix://` and an absolute path or `@abstract` name.
//! - Ingress `tls` is only on HTTPS/TLS ports; it may not use `ISTIO_MUTUAL` or `AUTO_PASSTHROUGH`, nor set
//!   `subjectAltNames`, `httpsRedirect`, `credentialName`, `credentialNames` or `tlsCertificates`; otherwise it
//!   follows the Gateway's server TLS rules.
//! - `inboundConnectionPool` and ingress `connectionPool` follow DestinationRule's connection pool rules.
//! - Egress: at most one listener has no `port`, and it is the last one (a portless listener anywhere else is refused).
//! - Egress with port number 0 binds a `unix://` socket (absolute path or `@abstract`), with capture mode
//!   `DEFAULT` or `NONE`, and no two listeners bind the same socket.
//! - Egress with a port: the number is 1-65535 and unique among IP-bound egress listeners; `bind`, when set,
//!   is an IP address.
//! - Each egress listener has at least one host, each written `namespace/dnsName`: the namespace is `*`, `.`,
//!   `~`, a namespace name or `~name` (excluded); the dnsName is `*` or a fully qualified name, with a wildcard
//!   only as the whole first label.
//! - `outboundTrafficPolicy.egressProxy` is only set with mode `ALLOW_ANY`; its `host` is a fully qualified name
//!   without wildcards, its `port` is set and valid, and its `subset`, when set, is a DNS label.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::destination_rule::ConnectionPoolSettings;
use super::gateway::{Protocol, ServerTlsSettings, TlsMode};
use crate::IstioStatus;
use crate::selector::{LabelSelector, PortSelector};
use crate::validate::{self, Errors, Path, Validate};

const UNIX_PREFIX: &str = "unix://";
const MAX_SELECTOR_LABELS: usize = 256;

#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "Sidecar",
    plural = "sidecars",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarSpec {
    /// The workloads this Sidecar applies to; all of the namespace when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Inbound listeners; derived from the workload's services when omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Outbound listeners and the services they can reach; inherited when omitted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Default limits on connections the proxy accepts for the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What happens to outbound traffic to destinations the mesh does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// An inbound listener on the workload's proxy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    /// The port the listener accepts traffic on.
    pub port: SidecarPort,
    /// IP address to bind; chosen automatically when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "is_default")]
    pub capture_mode: CaptureMode,
    /// Where the proxy forwards the traffic: a loopback or instance `IP:PORT`, or a `unix://` socket.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default_endpoint: String,
    /// Terminates TLS from clients outside the mesh (SIMPLE or MUTUAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Limits on connections accepted on this port; overrides `inboundConnectionPool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// An outbound listener and the services reachable through it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    /// The listener's port (0 for a unix socket); ports come from the hosts when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// IP address or `unix://` socket to bind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// How traffic reaches the listener.
    #[serde(default, skip_serializing_if = "is_default")]
    pub capture_mode: CaptureMode,
    /// Reachable services as `namespace/dnsName`, e.g. `./*` or `istio-system/*`.
    pub hosts: Vec<String>,
}

/// What the proxy does with outbound traffic to unknown destinations.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// Allow or block unknown destinations.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: OutboundTrafficPolicyMode,
    /// Egress proxy that unknown traffic goes through (only with `ALLOW_ANY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<EgressProxy>,
}

/// Handling of outbound traffic to unknown destinations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    /// Only destinations in the service registry are reachable.
    #[default]
    RegistryOnly,
    /// Unknown destinations are passed through.
    AllowAny,
}

/// The service unknown outbound traffic is forwarded to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressProxy {
    /// Fully qualified name of the egress proxy's service.
    pub host: String,
    /// Subset of that service.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subset: String,
    /// Port of that service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// How traffic to a listener is captured.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// Whatever the environment sets up.
    #[default]
    Default,
    /// Redirected by iptables.
    Iptables,
    /// Not captured: the application connects to the listener itself.
    None,
}

/// A listener port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    /// Port number; 0 for an egress listener bound to a unix socket.
    #[serde(default)]
    pub number: u32,
    /// HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS...; sniffed when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Name of the port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Deprecated and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Validate for SidecarSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.ingress.is_empty()
            && self.egress.is_empty()
            && self.outbound_traffic_policy.is_none()
            && self.inbound_connection_pool.is_none()
        {
            errs.add(
                at,
                "a Sidecar must set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool",
            );
        }
        if let Some(selector) = &self.workload_selector {
            let here = at.field("workloadSelector");
            selector.validate(&here, errs);
            if selector.labels.len() > MAX_SELECTOR_LABELS {
                errs.add(
                    &here.field("labels"),
                    format!(
                        "{} labels are selected; at most {MAX_SELECTOR_LABELS} are allowed",
                        selector.labels.len()
                    ),
                );
            }
        }

        let mut ports = BTreeSet::new();
        for (i, listener) in self.ingress.iter().enumerate() {
            let here = at.field("ingress").index(i);
            if !ports.insert(listener.port.number) {
                errs.add(
                    &here.field("port").field("number"),
                    format!(
                        "ingress port {} is used by another ingress listener; ports must be unique",
                        listener.port.number
                    ),
                );
            }
            listener.validate(&here, errs);
        }
        self.inbound_connection_pool
            .validate(&at.field("inboundConnectionPool"), errs);
        validate_egress(&self.egress, &at.field("egress"), errs);
        self.outbound_traffic_policy
            .validate(&at.field("outboundTrafficPolicy"), errs);
    }
}

impl SidecarPort {
    /// Name, protocol and the deprecated target port; the number is checked by the caller.
    fn validate_common(&self, at: &Path, errs: &mut Errors) {
        if !self.name.is_empty() {
            errs.check(
                &at.field("name"),
                validate::dns_label(&self.name).map_err(|e| format!("port name {e}")),
            );
        }
        if !self.protocol.is_empty() {
            errs.check(
                &at.field("protocol"),
                Protocol::check(&self.protocol).map(|_| ()),
            );
        }
        if self.target_port.is_some_and(|port| port > 0) {
            errs.add(
                &at.field("targetPort"),
                "targetPort has no effect on a Sidecar; remove it",
            );
        }
    }
}

impl Validate for IstioIngressListener {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let port = at.field("port");
        self.port.validate_common(&port, errs);
        errs.check(&port.field("number"), validate::port(self.port.number));
        if !self.bind.is_empty() {
            errs.check(&at.field("bind"), ip_address(&self.bind));
        }
        if !self.default_endpoint.is_empty() {
            errs.check(
                &at.field("defaultEndpoint"),
                default_endpoint(&self.default_endpoint),
            );
        }
        if let Some(tls) = &self.tls {
            validate_ingress_tls(tls, &self.port, &at.field("tls"), errs);
        }
        self.connection_pool
            .validate(&at.field("connectionPool"), errs);
    }
}

/// TLS on a sidecar's inbound port: the Gateway's rules minus what a sidecar cannot do.
fn validate_ingress_tls(tls: &ServerTlsSettings, port: &SidecarPort, at: &Path, errs: &mut Errors) {
    if !Protocol::parse(&port.protocol).is_some_and(Protocol::is_tls) {
        errs.add(
            at,
            format!(
                "tls needs an HTTPS or TLS port, not protocol {:?}",
                port.protocol
            ),
        );
    }
    if matches!(tls.mode, TlsMode::IstioMutual | TlsMode::AutoPassthrough) {
        errs.add(
            &at.field("mode"),
            format!(
                "{} mode is not allowed on a sidecar ingress listener",
                tls.mode
            ),
        );
    }
    for (field, set) in [
        ("subjectAltNames", !tls.subject_alt_names.is_empty()),
        ("httpsRedirect", tls.https_redirect),
        ("credentialName", !tls.credential_name.is_empty()),
        ("credentialNames", !tls.credential_names.is_empty()),
        ("tlsCertificates", !tls.tls_certificates.is_empty()),
    ] {
        if set {
            errs.add(
                &at.field(field),
                format!("{field} is not supported in sidecar ingress tls"),
            );
        }
    }
    tls.validate(at, errs);
}

fn validate_egress(listeners: &[IstioEgressListener], at: &Path, errs: &mut Errors) {
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    for (i, listener) in listeners.iter().enumerate() {
        let here = at.index(i);
        let clash = match &listener.port {
            None => {
                if i + 1 != listeners.len() {
                    errs.add(
                        &here,
                        "only the last egress listener may omit the port (at most one catch-all listener, placed last)",
                    );
                }
                None
            }
            Some(port) if port.number == 0 => {
                let bind = listener.bind.as_str();
                (bind.starts_with(UNIX_PREFIX) && !sockets.insert(bind)).then(|| {
                    (
                        here.field("bind"),
                        format!("unix socket {bind:?} is bound by another egress listener"),
                    )
                })
            }
            Some(port) => (!ports.insert(port.number)).then(|| {
                (
                    here.field("port").field("number"),
                    format!(
                        "egress port {} is used by another egress listener; ports must be unique",
                        port.number
                    ),
                )
            }),
        };
        if let Some((path, reason)) = clash {
            errs.add(&path, reason);
        }
        listener.validate(&here, errs);
    }
}

impl Validate for IstioEgressListener {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if let Some(port) = &self.port {
            let here = at.field("port");
            port.validate_common(&here, errs);
            if port.number == 0 {
                match self.bind.strip_prefix(UNIX_PREFIX) {
                    Some(socket) => errs.check(&at.field("bind"), unix_socket(socket)),
                    None => errs.add(
                        &at.field("bind"),
                        "an egress listener with port 0 must bind a unix:// socket",
                    ),
                }
                if !matches!(self.capture_mode, CaptureMode::Default | CaptureMode::None) {
                    errs.add(
                        &at.field("captureMode"),
                        "a unix socket listener needs captureMode DEFAULT or NONE",
                    );
                }
            } else {
                errs.check(&here.field("number"), validate::port(port.number));
                if !self.bind.is_empty() {
                    errs.check(&at.field("bind"), ip_address(&self.bind));
                }
            }
        }
        if self.hosts.is_empty() {
            errs.add(
                &at.field("hosts"),
                "an egress listener needs at least one host, e.g. \"./*\" or \"istio-system/*\"",
            );
        }
        for (i, host) in self.hosts.iter().enumerate() {
            errs.check(&at.field("hosts").index(i), egress_host(host));
        }
    }
}

impl Validate for OutboundTrafficPolicy {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        let Some(proxy) = &self.egress_proxy else {
            return;
        };
        let here = at.field("egressProxy");
        if self.mode != OutboundTrafficPolicyMode::AllowAny {
            errs.add(&here, "egressProxy can only be set when mode is ALLOW_ANY");
            return;
        }
        errs.check(&here.field("host"), validate::exact_host(&proxy.host));
        if !proxy.subset.is_empty() {
            errs.check(
                &here.field("subset"),
                validate::dns_label(&proxy.subset).map_err(|e| format!("subset name {e}")),
            );
        }
        match &proxy.port {
            Some(port) => port.validate(&here.field("port"), errs),
            None => errs.add(&here.field("port"), "egressProxy needs a port"),
        }
    }
}

/// An egress host: `namespace/dnsName`, where the namespace may carry a `~` to exclude it.
fn egress_host(value: &str) -> Result<(), String> {
    let Some((namespace, host)) = value.split_once('/') else {
        return Err(format!(
            "egress host {value:?} must be written namespace/dnsName, e.g. \"./*\" or \"istio-system/*\""
        ));
    };
    // `~name` excludes a namespace; a bare `~` is its own (wildcard) form.
    let plain = match namespace.strip_prefix('~') {
        Some("") | None => namespace,
        Some(name) => name,
    };
    validate::namespaced_host(&format!("{plain}/{host}"))
        .map_err(|e| format!("egress host {value:?}: {e}"))?;
    if host != "*" && !host.contains('.') {
        return Err(format!(
            "egress host {value:?} uses a short name; use a fully qualified name or *"
        ));
    }
    if host.contains('*') && host != "*" && !host.starts_with("*.") {
        return Err(format!(
            "egress host {value:?} has a partial wildcard; a wildcard must be the whole first label (*.example.com)"
        ));
    }
    Ok(())
}

fn ip_address(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| format!("{value:?} is not a valid IP address"))
}

/// The part of a `unix://` address after the prefix.
fn unix_socket(socket: &str) -> Result<(), String> {
    if socket.starts_with('@') && socket.len() > 1 {
        return Ok(());
    }
    if !socket.starts_with('/') || socket.ends_with('/') {
        return Err(format!(
            "unix://{socket} must name an absolute socket file path or an @abstract socket"
        ));
    }
    Ok(())
}

/// Where an ingress listener forwards to: a loopback or wildcard `IP:PORT`, or a unix socket.
fn default_endpoint(value: &str) -> Result<(), String> {
    const FORMS: &str = "127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path";
    if let Some(socket) = value.strip_prefix(UNIX_PREFIX) {
        return unix_socket(socket);
    }
    let split = match value.strip_prefix('[') {
        Some(rest) => rest.split_once("]:"),
        None => value
            .split_once(':')
            .filter(|(host, port)| !host.contains(':') && !port.contains(':')),
    };
    let Some((host, port)) = split else {
        return Err(format!("defaultEndpoint {value:?} must be {FORMS}"));
    };
    // Istio also takes a bare `:PORT`.
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        return Err(format!(
            "defaultEndpoint {value:?} must be {FORMS}; other addresses are not supported"
        ));
    }
    let number: u32 = port.parse().map_err(|_| {
        format!("defaultEndpoint {value:?} has a port {port:?} that is not a number")
    })?;
    validate::port(number)
}

#[cfg(test)]
mod tests;
