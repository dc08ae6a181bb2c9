//! PeerAuthentication: whether a workload's inbound traffic must, may or must
//! not be mutual TLS, for the whole workload and per port.
//!
//! # Validation rules
//!
//! - `selector.matchLabels`: keys and values are valid Kubernetes labels, with no wildcards.
//! - `portLevelMtls` is only allowed with a selector that has at least one label
//!   (a mesh- or namespace-wide policy cannot set per-port modes).
//! - `portLevelMtls` keys are port numbers between 1 and 65535.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::IstioStatus;
use crate::selector::WorkloadSelector;
use crate::validate::{self, Errors, Path, Validate};

/// Mutual TLS requirements for the workloads a policy selects.
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    group = "security.istio.io",
    version = "v1",
    kind = "PeerAuthentication",
    plural = "peerauthentications",
    shortname = "pa",
    category = "istio-io",
    category = "security-istio-io",
    namespaced,
    status = "IstioStatus",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mtls.mode"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    /// Workloads the policy applies to; without it, the whole namespace (or mesh, in the root namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Mutual TLS mode for the workload; when unset it is inherited from the parent level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Mutual TLS mode per workload port number (the container port, not the Service port).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "port_level_mtls_schema")]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// Mutual TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// Whether peers must, may or must not use mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
}

/// How a workload accepts inbound connections.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from the parent level; PERMISSIVE when there is none.
    #[default]
    Unset,
    /// Plaintext only; no mutual TLS tunnel.
    Disable,
    /// Both plaintext and mutual TLS are accepted.
    Permissive,
    /// Mutual TLS only: clients must present a certificate.
    Strict,
}

impl PeerAuthenticationSpec {
    /// The mode this policy sets for `port`: the port's own entry if it has a
    /// mode, else the workload-wide mode. `None` means the policy says nothing
    /// about the port (no mode, or `UNSET`), so the parent level decides.
    pub fn port_mode(&self, port: u32) -> Option<MtlsMode> {
        let set = |mtls: &MutualTls| mtls.mode.filter(|mode| *mode != MtlsMode::Unset);
        self.port_level_mtls
            .get(&port)
            .and_then(set)
            .or_else(|| self.mtls.as_ref().and_then(set))
    }
}

impl Validate for PeerAuthenticationSpec {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        self.selector.validate(&at.field("selector"), errs);
        let ports = at.field("portLevelMtls");
        let has_labels = self
            .selector
            .as_ref()
            .is_some_and(|selector| !selector.match_labels.is_empty());
        if !self.port_level_mtls.is_empty() && !has_labels {
            errs.add(
                &ports,
                "portLevelMtls requires a selector with at least one label; \
                 a mesh- or namespace-wide policy cannot set per-port modes",
            );
        }
        for port in self.port_level_mtls.keys() {
            errs.check(&ports.field(&port.to_string()), validate::port(*port));
        }
    }
}

/// Map keys are port numbers, which YAML and JSON write as strings; the CRD
/// schema is an object of MutualTLS values, with the key range as a CEL rule.
fn port_level_mtls_schema(generator: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": generator.subschema_for::<MutualTls>(),
        "x-kubernetes-validations": [{
            "message": "port must be between 1-65535",
            "rule": "self.all(key, 0 < int(key) && int(key) <= 65535)",
        }],
    })
}

#[cfg(test)]
mod tests;
