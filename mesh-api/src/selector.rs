//! Selectors shared by many kinds (Istio's `istio.type.v1beta1`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validate::{self, Errors, Path, Validate};

/// Picks the workloads (pods, VMs) a policy applies to, by their labels.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

impl WorkloadSelector {
    /// Whether a workload with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

impl Validate for WorkloadSelector {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        validate_labels(&self.match_labels, &at.field("matchLabels"), errs);
    }
}

/// Picks workloads by their labels (the `labels` form that ServiceEntry and
/// Sidecar use; policies use [`WorkloadSelector`]'s `matchLabels`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels a workload must all carry to be selected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Whether a workload with `labels` is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

impl Validate for LabelSelector {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        validate_labels(&self.labels, &at.field("labels"), errs);
    }
}

/// Checks a label map: valid keys and values, and no wildcards.
pub fn validate_labels(labels: &BTreeMap<String, String>, at: &Path, errs: &mut Errors) {
    for (key, value) in labels {
        let here = at.field(key);
        if key.contains('*') || value.contains('*') {
            errs.add(&here, "wildcards are not allowed in label selectors");
            continue;
        }
        errs.check(&here, validate::label_key(key));
        errs.check(&here, validate::label_value(value));
    }
}

/// A port chosen by number.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    pub number: u32,
}

impl Validate for PortSelector {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        errs.check(&at.field("number"), validate::port(self.number));
    }
}

/// A reference to the resource a policy attaches to (a Gateway API gateway or a Service).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Validate for PolicyTargetReference {
    fn validate(&self, at: &Path, errs: &mut Errors) {
        if self.kind.is_empty() {
            errs.add(&at.field("kind"), "kind must not be empty");
        }
        if self.name.is_empty() {
            errs.add(&at.field("name"), "name must not be empty");
        }
        if !self.namespace.is_empty() {
            errs.add(
                &at.field("namespace"),
                "cross-namespace references are not supported; leave namespace empty",
            );
        }
    }
}
