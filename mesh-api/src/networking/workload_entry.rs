//! WorkloadEntry: a workload outside Kubernetes (a VM, a bare-metal host or,
//! in the local mesh, a process), which ServiceEntries select by label.
//!
//! # Validation rules
//! - `address` is required unless `network` is set; it is an IP address, a
//!   host name with no wildcard, or `unix://` with an absolute path or an
//!   `@abstract` name (a unix address has no ports).
//! - Port names are alphanumeric with inner dashes; port numbers 1–65535.
//! - Labels are valid Kubernetes labels with no wildcard.
//! - `weight`, when set, is greater than 0.
//! - `locality` is `region[/zone[/subzone]]` with no empty part.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::IstioStatus;
use crate::selector::validate_labels;
use crate::validate::{self, Errors, Path, Validate};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "networking.istio.io",
    version = "v1",
    kind = "WorkloadEntry",
    plural = "workloadentries",
    shortname = "we",
    category = "istio-io",
    category = "networking-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Address","type":"string","jsonPath":".spec.address"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntrySpec {
    /// IP address, DNS name or `unix://` socket path of the workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Service port name to the port the workload listens on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The network the workload is on, for multi-network meshes.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// `region/zone/subzone`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
    /// Load-balancing weight relative to the other endpoints of the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
}

impl Validate for WorkloadEntrySpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        validate_endpoint(self, at, errs);
    }
}

/// The rules for one endpoint; ServiceEntry's inline `endpoints` share them.
pub fn validate_endpoint(entry: &WorkloadEntrySpec, at: &Path, errs: &mut Errors) {
    let address = at.field("address");
    if entry.address.is_empty() && entry.network.is_empty() {
        errs.add(&address, "address is required unless network is set");
    } else if let Some(socket) = entry.address.strip_prefix("unix://") {
        if !(socket.starts_with('/') || socket.starts_with('@')) || socket.ends_with('/') {
            errs.add(
                &address,
                "a unix:// address must be an absolute socket path or an abstract socket",
            );
        }
        if !entry.ports.is_empty() {
            errs.add(&at.field("ports"), "a unix:// address may not have ports");
        }
    } else if !entry.address.is_empty() && entry.address.parse::<std::net::IpAddr>().is_err() {
        errs.check(&address, validate::exact_host(&entry.address));
    }
    for (name, number) in &entry.ports {
        let here = at.field("ports").field(name);
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || name.is_empty() {
            errs.add(
                &here,
                format!("port name {name:?} must be alphanumeric with inner dashes"),
            );
        }
        errs.check(&here, validate::port(*number));
    }
    validate_labels(&entry.labels, &at.field("labels"), errs);
    if entry.weight == Some(0) {
        errs.add(
            &at.field("weight"),
            "weight must be greater than 0 when set",
        );
    }
    if !entry.locality.is_empty() && entry.locality.split('/').any(str::is_empty) {
        errs.add(
            &at.field("locality"),
            "locality must be region[/zone[/subzone]] with no empty part",
        );
    }
}
