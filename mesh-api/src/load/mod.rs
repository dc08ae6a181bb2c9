//! Reads Istio YAML (files, directories, stdin) into typed resources.
//!
//! Every problem is reported, one per line, as
//! `file:line: Kind namespace/name: field.path: reason`. Kinds this mesh does
//! not own (Service, Deployment, ...) are passed over without error.

mod errors;
mod resource;
mod yaml;

use std::fmt;
use std::io::Read;
use std::path::Path as FsPath;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use resource::{NETWORKING, Resource, SECURITY, group_of};
pub use yaml::{
    LineIndex, YamlDocument, YamlError, parse_documents, resolve_plain as resolve_plain_scalar,
};

use crate::validate::{self, Errors, Path, Segment};

/// Where a resource was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub file: String,
    pub line: usize,
}

/// A resource read from YAML, with where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub resource: Resource,
    pub source: Source,
    lines: LineIndex,
}

impl Loaded {
    /// Checks metadata and the spec's semantic rules; each problem points at
    /// the line of the offending field.
    pub fn validate(&self) -> Vec<Problem> {
        let mut errs = Errors::default();
        validate_metadata(self.resource.metadata(), &mut errs);
        self.resource.validate_spec(&mut errs);
        let subject = subject(self.resource.kind(), self.resource.metadata());
        errs.into_vec()
            .into_iter()
            .map(|err| Problem {
                file: self.source.file.clone(),
                line: self.lines.line_of(&err.path).unwrap_or(self.source.line),
                subject: Some(subject.clone()),
                path: Some(err.path),
                reason: err.reason,
            })
            .collect()
    }
}

/// One problem, with everything an operator needs to find and fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: usize,
    /// `Kind namespace/name`, when the document got that far.
    pub subject: Option<String>,
    pub path: Option<Path>,
    pub reason: String,
}

impl Problem {
    /// A file that cannot be read at all.
    pub fn unreadable(file: &str, err: &std::io::Error) -> Problem {
        Problem {
            file: file.to_owned(),
            line: 0,
            subject: None,
            path: None,
            reason: format!("cannot read: {err}"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        if let Some(path) = self.path.as_ref().filter(|p| !p.segments().is_empty()) {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.reason)
    }
}

/// A document passed over because this mesh does not own its kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub source: Source,
    pub api_version: String,
    pub kind: String,
}

/// Everything read from one or more inputs.
#[derive(Debug, Default)]
pub struct Report {
    pub resources: Vec<Loaded>,
    pub problems: Vec<Problem>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Adds the semantic problems of every resource read so far.
    pub fn validate(&mut self) {
        let found: Vec<Problem> = self.resources.iter().flat_map(Loaded::validate).collect();
        self.problems.extend(found);
        self.problems
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    }

    /// Adds what another read found.
    pub fn extend(&mut self, other: Report) {
        self.resources.extend(other.resources);
        self.problems.extend(other.problems);
        self.skipped.extend(other.skipped);
    }
}

/// Reads YAML text; `file` names it in problems.
pub fn load_str(file: &str, text: &str) -> Report {
    let mut report = Report::default();
    let (docs, error) = parse_documents(text);
    for doc in docs {
        read_document(file, doc, &mut report);
    }
    if let Some(error) = error {
        report.problems.push(Problem {
            file: file.to_owned(),
            line: error.line,
            subject: None,
            path: None,
            reason: error.reason,
        });
    }
    report
}

/// Reads from a reader such as stdin.
pub fn load_reader(name: &str, mut reader: impl Read) -> Report {
    let mut text = String::new();
    match reader.read_to_string(&mut text) {
        Ok(_) => load_str(name, &text),
        Err(err) => io_problem(name, &err),
    }
}

/// Reads a file, or every `.yaml`, `.yml` and `.json` file below a directory
/// (in name order, so that output is stable).
pub fn load_path(path: &FsPath) -> Report {
    let name = path.display().to_string();
    if path.is_dir() {
        let mut report = Report::default();
        match config_files(path) {
            Ok(files) => files.iter().for_each(|f| report.extend(load_path(f))),
            Err(err) => report.extend(io_problem(&name, &err)),
        }
        return report;
    }
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&name, &text),
        Err(err) => io_problem(&name, &err),
    }
}

fn config_files(dir: &FsPath) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let is_config = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if path.is_dir() {
            files.extend(config_files(&path)?);
        } else if is_config {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn io_problem(name: &str, err: &std::io::Error) -> Report {
    Report {
        problems: vec![Problem::unreadable(name, err)],
        ..Report::default()
    }
}

fn read_document(file: &str, doc: YamlDocument, report: &mut Report) {
    let problem = |line, subject, path: Option<Path>, reason: String| Problem {
        file: file.to_owned(),
        line,
        subject,
        path,
        reason,
    };
    let YamlDocument { value, line, lines } = doc;
    let object = match value {
        Value::Null => return,
        Value::Object(object) => object,
        _ => {
            let reason = "a document must be a Kubernetes object (a mapping)".to_owned();
            report.problems.push(problem(line, None, None, reason));
            return;
        }
    };
    let at = |path: &Path| lines.line_of(path).unwrap_or(line);
    let api_version = string_field(&object, "apiVersion");
    let kind = string_field(&object, "kind");
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let reason = "not a Kubernetes object: apiVersion and kind are required".to_owned();
        report.problems.push(problem(line, None, None, reason));
        return;
    };
    let source = Source {
        file: file.to_owned(),
        line,
    };
    if kind == "List" {
        read_list(file, &object, &lines, line, report);
        return;
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let owned = group_of(kind).filter(|(owner, _)| *owner == group);
    let Some((_, versions)) = owned else {
        report.skipped.push(Skipped {
            source,
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
        return;
    };
    if !versions.contains(&version) {
        let path = Path::root().field("apiVersion");
        let reason = format!(
            "apiVersion {api_version} is not served; use {group}/ with one of {}",
            versions.join(", ")
        );
        report.problems.push(problem(
            at(&path),
            Some(kind.to_owned()),
            Some(path),
            reason,
        ));
        return;
    }
    match parse_object(kind, &object) {
        Ok(resource) => report.resources.push(Loaded {
            resource,
            source,
            lines,
        }),
        Err((subject, errors)) => {
            for (path, reason) in errors {
                let line = at(&path);
                report
                    .problems
                    .push(problem(line, Some(subject.clone()), Some(path), reason));
            }
        }
    }
}

/// Parses an owned kind's object; errors name the subject as far as known.
fn parse_object(
    kind: &str,
    object: &Map<String, Value>,
) -> Result<Resource, (String, Vec<(Path, String)>)> {
    let (metadata, spec, status) =
        resource::split_object(object).map_err(|err| (kind.to_owned(), vec![err]))?;
    let metadata: ObjectMeta =
        typed(metadata, Path::root().field("metadata")).map_err(|err| (kind.to_owned(), err))?;
    let subject = subject(kind, &metadata);
    let status = status
        .map(|s| typed(s, Path::root().field("status")))
        .transpose()
        .map_err(|err| (subject.clone(), err))?;
    resource::build(kind, metadata, spec, status).map_err(|err| (subject, err))
}

/// Reads the items of a `kind: List`, each with its own path and lines.
fn read_list(
    file: &str,
    object: &Map<String, Value>,
    lines: &LineIndex,
    line: usize,
    report: &mut Report,
) {
    let Some(Value::Array(items)) = object.get("items") else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let prefix = Path::root().field("items").index(i);
        let item_doc = YamlDocument {
            value: item.clone(),
            line: lines.line_of(&prefix).unwrap_or(line),
            lines: lines.under(&prefix),
        };
        read_document(file, item_doc, report);
    }
}

fn string_field<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// `Kind namespace/name`, as problems name a resource.
fn subject(kind: &str, metadata: &ObjectMeta) -> String {
    let namespace = metadata.namespace.as_deref().unwrap_or("default");
    let name = metadata.name.as_deref().unwrap_or("<unnamed>");
    format!("{kind} {namespace}/{name}")
}

/// Kubernetes' own rules for the metadata this mesh relies on.
fn validate_metadata(metadata: &ObjectMeta, errs: &mut Errors) {
    let at = Path::root().field("metadata");
    match metadata.name.as_deref() {
        None | Some("") => errs.add(&at.field("name"), "name is required"),
        Some(name) => errs.check(&at.field("name"), validate::dns_subdomain(name)),
    }
    if let Some(namespace) = metadata.namespace.as_deref() {
        errs.check(&at.field("namespace"), validate::dns_label(namespace));
    }
}

/// How many parse errors one document reports before giving up.
const MAX_PARSE_ERRORS: usize = 20;

/// Deserializes `value` (which sits at `base`) into `T`, turning serde's
/// errors into field paths and operator-readable reasons.
///
/// serde stops at the first error; to report every problem at once, the
/// offending field is removed and parsing retried, until the document parses
/// or an error cannot be stepped over (a missing field, a bad list item).
pub fn typed<T: DeserializeOwned>(mut value: Value, base: Path) -> Result<T, Vec<(Path, String)>> {
    let mut found: Vec<(Path, String)> = Vec::new();
    loop {
        let err = match serde_path_to_error::deserialize(&value) {
            Ok(parsed) if found.is_empty() => return Ok(parsed),
            Ok(_) => return Err(found),
            Err(err) => err,
        };
        let (path, reason) = errors::describe(base.clone(), &err);
        // Removing a required field leads to "missing" at the same path: not news.
        if found.iter().any(|(seen, _)| *seen == path) {
            return Err(found);
        }
        let relative = &path.segments()[base.segments().len()..];
        let stepped_over = remove_field(&mut value, relative);
        found.push((path, reason));
        if !stepped_over || found.len() >= MAX_PARSE_ERRORS {
            return Err(found);
        }
    }
}

/// Removes the object field at `path`; false when there is none to remove.
fn remove_field(value: &mut Value, path: &[Segment]) -> bool {
    let Some((Segment::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut here = value;
    for segment in parents {
        let next = match (segment, here) {
            (Segment::Key(key), Value::Object(map)) => map.get_mut(key),
            (Segment::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else { return false };
        here = next;
    }
    match here {
        Value::Object(map) => map.remove(last).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
