//! ServiceEntry: adds a service to the mesh's registry, either outside the
//! mesh (an external API) or inside it (VMs, processes), with its hosts,
//! ports and how its endpoints are found.
//!
//! # Validation rules
//!
//! - `hosts` holds between 1 and 256 hosts.
//! - A host may not be `*` alone.
//! - Each host is a valid domain name, with a wildcard only in its first label.
//! - `addresses` holds at most 256 entries, each an IP address or a CIDR block.
//! - CIDR addresses are only allowed with resolution `NONE` or `STATIC`.
//! - `ports` holds at most 256 ports.
//! - `ports[].number` and `ports[].targetPort` (when set) are between 1 and 65535.
//! - `ports[].name` is a lower-case DNS label (so it is never empty) and unique.
//! - `ports[].number` is unique.
//! - `ports[].protocol`, when set, is one of Istio's protocol names.
//! - `endpoints` and `workloadSelector` are exclusive.
//! - `workloadSelector.labels` are valid Kubernetes labels, with no wildcards.
//! - `endpoints` holds at most 4096 entries, each checked with the
//!   WorkloadEntry rules ([`validate_endpoint`]).
//! - Endpoint `ports` keys must name ports declared in `ports`.
//! - Resolution `NONE` takes no endpoints.
//! - Resolution `STATIC`: endpoint addresses are IP addresses or `unix://`
//!   sockets; a `unix://` endpoint needs exactly one declared port.
//! - Resolution `DNS` and `DNS_ROUND_ROBIN`: endpoint addresses are IP
//!   addresses or host names, never `unix://` sockets; without endpoints every
//!   host must be a fully qualified name with no wildcard (it is resolved).
//! - Resolution `DNS_ROUND_ROBIN` takes at most one endpoint.
//! - Resolution `DYNAMIC_DNS`: every host is a wildcard, and there are no
//!   addresses and no endpoints; ports speak HTTP, HTTP2, GRPC or TLS.
//! - With more than one host and a resolution other than `NONE`, every port
//!   speaks an HTTP or TLS protocol (plain TCP cannot tell the hosts apart).
//! - `exportTo` entries are `.`, `*`, `~` or a lower-case namespace name, with
//!   no duplicates; `*` and `~` must stand alone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::gateway::Protocol;
use crate::IstioStatus;
use crate::networking::workload_entry::{WorkloadEntrySpec, validate_endpoint};
use crate::selector::LabelSelector;
use crate::validate::{self, Errors, ExportToNone, Path, Validate};

const MAX_HOSTS: usize = 256;
const MAX_ADDRESSES: usize = 256;
const MAX_PORTS: usize = 256;
const MAX_ENDPOINTS: usize = 4096;
const UNIX_PREFIX: &str = "unix://";

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "ServiceEntry",
    plural = "serviceentries",
    shortname = "se",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Location","type":"string","jsonPath":".spec.location"}"#,
    printcolumn = r#"{"name":"Resolution","type":"string","jsonPath":".spec.resolution"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntrySpec {
    /// Host names of the service, matched against HTTP Host, SNI and route hosts.
    pub hosts: Vec<String>,
    /// Virtual IPs or CIDR blocks that identify traffic to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Ports the service listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Whether the service is outside the mesh (the default) or part of it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub location: Location,
    /// How the proxy finds the addresses of the service's endpoints.
    #[serde(default, skip_serializing_if = "is_default")]
    pub resolution: Resolution,
    /// The service's endpoints, written inline; exclusive with workloadSelector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Labels of the pods and WorkloadEntries backing the service; exclusive with endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<LabelSelector>,
    /// Namespaces that can see the service: `.` (own), `*` (all), `~` (none) or names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Subject alternative names the service's server certificates must carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A port of the service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// The port number clients connect to.
    pub number: u32,
    /// HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS...; empty means detect it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// A label for the port, which endpoints use to map their own port numbers.
    pub name: String,
    /// The port endpoints receive traffic on; defaults to `number`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

impl ServicePort {
    /// The protocol, if set and known to Istio.
    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::parse(&self.protocol)
    }
}

/// Whether a service is part of the mesh.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh: no mesh mTLS, consumed through its API.
    #[default]
    MeshExternal,
    /// Part of the mesh, e.g. VMs joined to it.
    MeshInternal,
}

/// How the proxy finds the addresses to send the service's traffic to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Forward to the address the connection was already going to.
    #[default]
    None,
    /// Use the IP addresses of the endpoints.
    Static,
    /// Resolve the endpoints' (or else the hosts') names with DNS, using every address.
    Dns,
    /// Resolve with DNS and connect to the first address returned.
    DnsRoundRobin,
    /// Resolve the Host header or SNI name of each request (wildcard hosts only).
    DynamicDns,
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resolution::None => "NONE",
            Resolution::Static => "STATIC",
            Resolution::Dns => "DNS",
            Resolution::DnsRoundRobin => "DNS_ROUND_ROBIN",
            Resolution::DynamicDns => "DYNAMIC_DNS",
        })
    }
}

impl Validate for ServiceEntrySpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        self.validate_hosts(at, errs);
        self.validate_addresses(at, errs);
        let declared = self.validate_ports(at, errs);
        self.validate_endpoints(&declared, at, errs);
        self.validate_resolution(at, errs);
        validate::export_to(
            &self.export_to,
            ExportToNone::Allowed,
            &at.field("exportTo"),
            errs,
        );
    }
}

impl ServiceEntrySpec {
    fn validate_hosts(&self, at: &Path, errs: &mut Errors) {
        let hosts = at.field("hosts");
        if self.hosts.is_empty() {
            errs.add(&hosts, "a service entry needs at least one host");
        }
        too_many(&hosts, self.hosts.len(), MAX_HOSTS, errs);
        for (i, host) in self.hosts.iter().enumerate() {
            if host == "*" {
                errs.add(
                    &hosts.index(i),
                    "host \"*\" is not allowed in a service entry; name the hosts, or use a wildcard such as *.example.com",
                );
            } else {
                errs.check(&hosts.index(i), validate::wildcard_host(host));
            }
        }
    }

    fn validate_addresses(&self, at: &Path, errs: &mut Errors) {
        let addresses = at.field("addresses");
        too_many(&addresses, self.addresses.len(), MAX_ADDRESSES, errs);
        for (i, address) in self.addresses.iter().enumerate() {
            let here = addresses.index(i);
            let is_cidr = address.contains('/');
            if let Err(reason) = validate::ip_or_cidr(address) {
                errs.add(&here, reason);
            } else if is_cidr && !matches!(self.resolution, Resolution::None | Resolution::Static) {
                errs.add(
                    &here,
                    format!(
                        "CIDR address {address:?} is only allowed with resolution NONE or STATIC, not {}",
                        self.resolution
                    ),
                );
            }
        }
    }

    /// Checks the ports and returns the names declared.
    fn validate_ports(&self, at: &Path, errs: &mut Errors) -> BTreeSet<&str> {
        let ports = at.field("ports");
        too_many(&ports, self.ports.len(), MAX_PORTS, errs);
        let mut names = BTreeSet::new();
        let mut numbers = BTreeSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            let here = ports.index(i);
            errs.check(&here.field("number"), validate::port(port.number));
            if let Some(target) = port.target_port {
                errs.check(&here.field("targetPort"), validate::port(target));
            }
            let name = port.name.as_str();
            match validate::dns_label(name) {
                Err(reason) => {
                    errs.add(&here.field("name"), format!("invalid port name: {reason}"))
                }
                Ok(()) if !names.insert(name) => errs.add(
                    &here.field("name"),
                    format!("port name {name:?} is already declared; port names must be unique"),
                ),
                Ok(()) => {}
            }
            if port.number != 0 && !numbers.insert(port.number) {
                errs.add(
                    &here.field("number"),
                    format!(
                        "port number {} is already declared; port numbers must be unique",
                        port.number
                    ),
                );
            }
            if !port.protocol.is_empty() {
                errs.check(
                    &here.field("protocol"),
                    Protocol::check(&port.protocol).map(|_| ()),
                );
            }
        }
        names
    }

    fn validate_endpoints(&self, declared: &BTreeSet<&str>, at: &Path, errs: &mut Errors) {
        let endpoints = at.field("endpoints");
        if self.workload_selector.is_some() && !self.endpoints.is_empty() {
            errs.add(
                &at.field("workloadSelector"),
                "only one of workloadSelector or endpoints may be set",
            );
        }
        self.workload_selector
            .validate(&at.field("workloadSelector"), errs);
        too_many(&endpoints, self.endpoints.len(), MAX_ENDPOINTS, errs);
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            let here = endpoints.index(i);
            validate_endpoint(endpoint, &here, errs);
            for name in endpoint.ports.keys() {
                if !declared.contains(name.as_str()) {
                    errs.add(
                        &here.field("ports").field(name),
                        format!("endpoint port {name:?} does not name a port declared in ports"),
                    );
                }
            }
            self.validate_endpoint_address(endpoint, &here.field("address"), errs);
        }
    }

    /// The address rules that depend on the resolution mode.
    fn validate_endpoint_address(
        &self,
        endpoint: &WorkloadEntrySpec,
        at: &Path,
        errs: &mut Errors,
    ) {
        let address = endpoint.address.as_str();
        let is_unix = address.starts_with(UNIX_PREFIX);
        // A host name that validate_endpoint accepted: not an IP, not a socket.
        let is_name = !address.is_empty()
            && !is_unix
            && address.parse::<IpAddr>().is_err()
            && validate::exact_host(address).is_ok();
        match self.resolution {
            Resolution::Static if is_name => errs.add(
                at,
                format!("endpoint address {address:?} must be an IP address or a unix:// socket with resolution STATIC"),
            ),
            Resolution::Static if is_unix && self.ports.len() != 1 => errs.add(
                at,
                format!(
                    "a unix:// endpoint needs exactly one declared port, the service entry declares {}",
                    self.ports.len()
                ),
            ),
            Resolution::Dns | Resolution::DnsRoundRobin if is_unix => errs.add(
                at,
                format!(
                    "endpoint address {address:?} is a unix:// socket, which resolution {} cannot use",
                    self.resolution
                ),
            ),
            _ => {}
        }
    }

    fn validate_resolution(&self, at: &Path, errs: &mut Errors) {
        let resolution = self.resolution;
        let endpoints = at.field("endpoints");
        match resolution {
            Resolution::None if !self.endpoints.is_empty() => {
                errs.add(&endpoints, "resolution NONE takes no endpoints");
            }
            Resolution::Dns | Resolution::DnsRoundRobin => {
                if self.endpoints.is_empty() {
                    for (i, host) in self.hosts.iter().enumerate() {
                        if host != "*"
                            && validate::wildcard_host(host).is_ok()
                            && host.contains('*')
                        {
                            errs.add(
                                &at.field("hosts").index(i),
                                format!(
                                    "host {host:?} has a wildcard, so resolution {resolution} without endpoints has no name to resolve; list endpoints or use a fully qualified host"
                                ),
                            );
                        }
                    }
                }
                if resolution == Resolution::DnsRoundRobin && self.endpoints.len() > 1 {
                    errs.add(
                        &endpoints,
                        format!(
                            "resolution DNS_ROUND_ROBIN takes at most one endpoint, found {}",
                            self.endpoints.len()
                        ),
                    );
                }
            }
            Resolution::DynamicDns => {
                for (i, host) in self.hosts.iter().enumerate() {
                    if !host.starts_with('*') {
                        errs.add(
                            &at.field("hosts").index(i),
                            format!("host {host:?} must be a wildcard such as *.example.com with resolution DYNAMIC_DNS"),
                        );
                    }
                }
                if !self.addresses.is_empty() {
                    errs.add(
                        &at.field("addresses"),
                        "addresses cannot be set with resolution DYNAMIC_DNS; traffic is matched by host",
                    );
                }
                if !self.endpoints.is_empty() {
                    errs.add(
                        &endpoints,
                        "endpoints cannot be set with resolution DYNAMIC_DNS; each request's host is resolved",
                    );
                }
                for (i, port) in self.ports.iter().enumerate() {
                    let ok = matches!(
                        port.protocol(),
                        Some(Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Tls)
                    );
                    if !ok {
                        errs.add(
                            &at.field("ports").index(i).field("protocol"),
                            format!(
                                "protocol {:?} cannot be used with resolution DYNAMIC_DNS; use HTTP, HTTP2, GRPC or TLS",
                                port.protocol
                            ),
                        );
                    }
                }
            }
            _ => {}
        }

        if resolution != Resolution::None && self.hosts.len() > 1 {
            for (i, port) in self.ports.iter().enumerate() {
                let tells_hosts_apart = port.protocol().is_some_and(|p| p.is_http() || p.is_tls());
                let already_refused = resolution == Resolution::DynamicDns;
                if !tells_hosts_apart && !already_refused {
                    errs.add(
                        &at.field("ports").index(i).field("protocol"),
                        format!(
                            "protocol {:?} cannot tell {} hosts apart; with resolution {resolution} use an HTTP or TLS protocol, or one host per service entry",
                            port.protocol,
                            self.hosts.len()
                        ),
                    );
                }
            }
        }
    }
}

fn too_many(at: &Path, len: usize, max: usize, errs: &mut Errors) {
    if len > max {
        errs.add(
            at,
            format!("{len} entries is too many; at most {max} are allowed"),
        );
    }
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests;
