// INSTRUCTIONS FOR THE ENGINEER WRITING THIS FILE (delete this comment block when you write the file):
// ## Context (read this first)
// We are building a service mesh in Rust that reads users' existing Istio YAML. The repo is /work/main
// (a Cargo workspace). The crate `mesh-api` (/work/main/mesh-api) holds Istio's config types; you are
// writing some of them. Read these files first, they are the pattern to follow exactly:
// - mesh-api/src/networking/workload_entry.rs  (a finished kind: CustomResource derive, serde attrs, Validate impl)
// - mesh-api/src/validate/mod.rs, validate/path.rs, validate/checks.rs (Path, Errors, Validate trait, shared checks
//   like wildcard_host, exact_host, namespaced_host, dns_label, re2, port, percent, duration_ms, header_name,
//   label_key/label_value, one_of)
// - mesh-api/src/selector.rs (WorkloadSelector, PortSelector, PolicyTargetReference, validate_labels)
// - mesh-api/src/duration.rs (the Duration type to use for every google.protobuf.Duration field)
// - /work/shared/reference/istio-facts.md (facts about Istio's behaviour)
// The Istio proto definitions (the source of truth for field names, types, enums, REQUIRED markers and
// kubebuilder validation comments) are in /tmp/istio-proto/*.proto. Read them to learn; write your own code and doc comments.
// 
// ## Conventions (follow exactly)
// - Every field of Istio's v1 API for your kinds, not only what Bookinfo uses. Skip nothing except fields
//   marked deprecated-and-removed; keep deprecated-but-accepted ones (e.g. `mirror`, `mirrorPercent`).
// - Struct derive: `#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]`
//   (add Eq where possible), `#[serde(rename_all = "camelCase", deny_unknown_fields)]`.
//   The top-level spec also derives `CustomResource` with `#[kube(group, version = "v1", kind, plural, shortname
//   (as Istio's cue-gen tags say), category = "istio-io", category = "networking-istio-io" (or "security-istio-io"),
//   namespaced, status = "IstioStatus", printcolumn = ...as in the proto's cue-gen printerColumn tags)]`.
// - Optional scalars and messages: `Option<T>` with `#[serde(default, skip_serializing_if = "Option::is_none")]`.
//   Lists: `Vec<T>` with `#[serde(default, skip_serializing_if = "Vec::is_empty")]`. Maps: `BTreeMap` likewise.
//   Optional strings that proto3 leaves as "" may be `String` with `skip_serializing_if = "String::is_empty"`.
//   Fields the proto marks REQUIRED are plain (no default) so that a missing one is a parse error.
// - protobuf wrapper types (UInt32Value, BoolValue, DoubleValue...) are plain values (`Option<u32>`, `Option<bool>`).
//   google.protobuf.Duration -> `crate::Duration`. int64/uint64 -> i64/u64.
// - Protobuf `oneof`: separate `Option` fields on the struct (as Istio's JSON has them), plus a validation rule
//   using `validate::one_of` that at most one is set (and "one of X, Y must be set" where the proto requires one).
// - Enums: unit variants spelled exactly as the proto spells them in YAML, e.g.
//   `#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]`
//   `#[serde(rename_all = "SCREAMING_SNAKE_CASE")]` or per-variant `#[serde(rename = "TLSV1_2")]` where needed;
//   `#[default]` on the zero value.
// - Doc comments: one line per type/field saying what it means for a user (schemars puts them in the CRD).
//   Keep them short and in your own words.
// - Validation: `impl Validate for XSpec` (and for nested types), recording every problem with `errs.add(&path, reason)`
//   or `errs.check(&path, validate::xxx(..))`, with the path of the exact field (`at.field("http").index(i)...`).
//   Reasons are for operators: say what is wrong and what is allowed, include the bad value.
//   Implement the semantic rules of Istio's validating webhook (pilot/pkg/config/validation in Istio) and the
//   kubebuilder XValidation rules from the proto comments that a serde type cannot express.
//   Put a `//! # Validation rules` section at the top of each of your files listing every rule in one bullet each.
// - Tests: in a sibling file, e.g. `mesh-api/src/networking/virtual_service/tests.rs`, included from the kind's
//   file with `#[cfg(test)] mod tests;` at the end. Build specs with `serde_json::from_value(serde_json::json!({...}))`
//   (camelCase keys, as YAML would have them) and call `crate::validate::check(&spec)` which returns
//   `Vec<FieldError { path: Path, reason: String }>` with paths rooted at `spec` (so `e.path.to_string()` is like
//   `spec.http[0].route[1].weight`). Write: one test that a valid, rich document (using most fields) parses and
//   validates clean, and round-trips through serde_json (serialize then deserialize gives an equal value);
//   tests that an unknown field and a misspelled enum value fail to parse; and one test per rule — each breaking
//   exactly one rule and asserting BOTH the exact path string and a distinctive part of the reason, and that it is
//   the only error. Aim for the number of invalid-document tests named in your task.
// - Scope: touch ONLY the files named in your task (create the sibling tests.rs files). Do not edit mod.rs, lib.rs,
//   Cargo.toml or other people's files; other engineers are editing those right now. If you need a new shared
//   check, write it as a private fn in your own file. Do not commit, do not run `cargo clean` or `cargo fmt --all`;
//   run `rustfmt --edition 2024 <your files>` on your own files.
// - Build with `cd /work/main && cargo check -p mesh-api` and test with `cargo test -p mesh-api --lib <your module name>`.
//   Other engineers build at the same time, so cargo may wait for a lock; that is normal. Fix all warnings in your
//   files; `cargo clippy -p mesh-api --lib --tests` must be clean for your files.
// - When done, reply with: the files you wrote, the public types (names of the CustomResource kinds and spec types),
//   the list of validation rules, and the test count. Keep the reply short.
