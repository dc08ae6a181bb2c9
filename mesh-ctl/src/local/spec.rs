//! What a local mesh file says: Istio config, and `LocalWorkload`s, the
//! small kind of ours that says which command runs a WorkloadEntry.
//!
//! ```yaml
//! apiVersion: local.mesh.dev/v1alpha1
//! kind: LocalWorkload
//! metadata: {name: reviews-v2, namespace: default}
//! spec:
//!   workloadEntry: reviews-v2        # default: the LocalWorkload's name
//!   command: [meshctl, bookinfo, reviews, --port, $(PORT)]
//!   env:
//!   - {name: SERVICE_VERSION, value: v2}
//!   httpProxyPort: 9080              # HTTP_PROXY points at this egress port
//! ```
//!
//! `meshctl` as the command's first word is the running `meshctl` itself;
//! anything else is looked up on `PATH`. `$(NAME)` in the command and in
//! env values expands as Kubernetes expands it, from the variables the
//! local mesh sets (see [`super::plan`]) and the env entries before it.

use std::collections::BTreeMap;

use mesh_api::load::{Loaded, Problem, Report, Resource, YamlDocument, parse_documents, typed};
use mesh_api::validate::Path;
use serde::Deserialize;

use crate::inputs::Input;

/// The group and kind of [`LocalWorkload`].
pub const API_GROUP: &str = "local.mesh.dev";
pub const KIND: &str = "LocalWorkload";

/// One process of the local mesh: a WorkloadEntry's application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWorkload {
    pub name: String,
    pub namespace: String,
    pub spec: LocalWorkloadSpec,
    /// `file:line` of the document, for problems found later.
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalWorkloadSpec {
    #[serde(default)]
    pub workload_entry: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub http_proxy_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// Everything the inputs hold.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Istio resources, by input, with the input's text to apply as is.
    pub istio: Vec<Loaded>,
    pub workloads: Vec<LocalWorkload>,
    pub problems: Vec<Problem>,
}

impl Inputs {
    /// Reads every input: Istio kinds as `meshctl apply` reads them (and
    /// validated), `LocalWorkload`s here.
    pub fn read(inputs: &[Input]) -> Inputs {
        let mut read = Inputs::default();
        for input in inputs {
            let mut report: Report = input.load();
            report.validate();
            read.problems.append(&mut report.problems);
            read.istio.append(&mut report.resources);
            let (documents, _) = parse_documents(&input.text);
            for document in documents {
                read.local_workload(&input.name, document);
            }
        }
        read.check_names();
        read
    }

    fn local_workload(&mut self, file: &str, document: YamlDocument) {
        let value = &document.value;
        let group = value["apiVersion"].as_str().unwrap_or_default();
        if value["kind"].as_str() != Some(KIND) || group.split('/').next() != Some(API_GROUP) {
            return;
        }
        let problem = |subject: Option<String>, path: Path, reason: String| Problem {
            file: file.to_owned(),
            line: document.lines.line_of(&path).unwrap_or(document.line),
            subject,
            path: Some(path),
            reason,
        };
        let metadata: Metadata =
            match typed(value["metadata"].clone(), Path::root().field("metadata")) {
                Ok(metadata) => metadata,
                Err(errors) => {
                    for (path, reason) in errors {
                        self.problems.push(problem(None, path, reason));
                    }
                    return;
                }
            };
        let namespace = if metadata.namespace.is_empty() {
            "default".to_owned()
        } else {
            metadata.namespace
        };
        let subject = Some(format!("{KIND} {namespace}/{}", metadata.name));
        if metadata.name.is_empty() {
            self.problems.push(problem(
                subject,
                Path::root().field("metadata").field("name"),
                "a name is required".into(),
            ));
            return;
        }
        let mut spec: LocalWorkloadSpec = match typed(value["spec"].clone(), Path::spec()) {
            Ok(spec) => spec,
            Err(errors) => {
                for (path, reason) in errors {
                    self.problems.push(problem(subject.clone(), path, reason));
                }
                return;
            }
        };
        if spec.command.is_empty() {
            self.problems.push(problem(
                subject,
                Path::spec().field("command"),
                "a command to run is required".into(),
            ));
            return;
        }
        if spec.workload_entry.is_empty() {
            spec.workload_entry.clone_from(&metadata.name);
        }
        self.workloads.push(LocalWorkload {
            name: metadata.name,
            namespace,
            spec,
            file: file.to_owned(),
            line: document.line,
        });
    }

    /// Two LocalWorkloads of one name, or of one WorkloadEntry, cannot both run.
    fn check_names(&mut self) {
        let mut seen: BTreeMap<(String, String), &LocalWorkload> = BTreeMap::new();
        for workload in &self.workloads {
            let key = (
                workload.namespace.clone(),
                workload.spec.workload_entry.clone(),
            );
            if let Some(first) = seen.insert(key, workload) {
                self.problems.push(workload.problem(
                    Path::spec().field("workloadEntry"),
                    format!(
                        "WorkloadEntry {}/{} is already run by LocalWorkload {} ({}:{})",
                        workload.namespace,
                        workload.spec.workload_entry,
                        first.name,
                        first.file,
                        first.line
                    ),
                ));
            }
        }
    }

    /// The WorkloadEntries, ServiceEntries and the rest, by kind.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.istio.iter().map(|loaded| &loaded.resource)
    }
}

impl LocalWorkload {
    /// A problem with this LocalWorkload's `path`.
    pub fn problem(&self, path: Path, reason: String) -> Problem {
        Problem {
            file: self.file.clone(),
            line: self.line,
            subject: Some(format!("{KIND} {}/{}", self.namespace, self.name)),
            path: Some(path),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Inputs {
        Inputs::read(&[Input {
            name: "local.yaml".into(),
            text: text.into(),
        }])
    }

    #[test]
    fn reads_local_workloads_beside_istio_kinds() {
        let inputs = read(
            "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v1, namespace: default}
spec: {address: 127.0.10.1, labels: {app: details}}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: details-v1}
spec:
  command: [meshctl, bookinfo, details, --port, $(PORT)]
  env: [{name: A, value: b}]
",
        );
        assert!(inputs.problems.is_empty(), "{:?}", inputs.problems);
        assert_eq!(inputs.istio.len(), 1);
        let workload = &inputs.workloads[0];
        assert_eq!(workload.namespace, "default");
        assert_eq!(workload.spec.workload_entry, "details-v1");
        assert_eq!(workload.spec.command[1], "bookinfo");
        assert_eq!(workload.line, 6);
    }

    #[test]
    fn a_bad_local_workload_names_the_file_line_and_field() {
        let inputs = read(
            "apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: a}
spec: {command: [x], httpProxyPort: nine}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: b}
spec: {command: []}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: c}
spec: {command: [x], workloadEntry: d}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: d}
spec: {command: [x]}
",
        );
        let problems: Vec<String> = inputs.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("local.yaml:4: LocalWorkload default/a: spec.httpProxyPort: "),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            "local.yaml:9: LocalWorkload default/b: spec.command: a command to run is required"
        );
        assert_eq!(
            problems[2],
            "local.yaml:16: LocalWorkload default/d: spec.workloadEntry: WorkloadEntry default/d is already run by LocalWorkload c (local.yaml:11)"
        );
    }
}
