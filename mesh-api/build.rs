//! Compiles the Envoy `.proto` files that the `envoy-types` crate ships into
//! one descriptor set, so that Envoy config written as JSON or YAML (bootstrap
//! files, config dumps, golden files) can be read with `Any` resolved by its
//! `@type` (see `src/envoy.rs`). Istio's own extension configs, which
//! envoy-types lacks, come from `proto/` in this crate.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::env;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};

/// The include roots inside `<envoy-types>/proto`, as envoy-types builds them.
const INCLUDE_ROOTS: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec/proto",
    "client_model",
    "ratelimit/api",
    "opentelemetry-proto",
];

/// Per file: text to replace, and its replacement.
type Rewrites = Rc<RefCell<BTreeMap<String, BTreeMap<String, String>>>>;

/// Envoy's protos need this many qualified references at most (231 today).
const MAX_REWRITES: usize = 2000;

fn main() {
    let proto_root = envoy_types_proto_dir();
    let mut includes: Vec<PathBuf> = INCLUDE_ROOTS.iter().map(|r| proto_root.join(r)).collect();
    // Istio's extension configs that envoy-types does not ship (see proto/README.md).
    let own =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("proto");
    includes.push(own);
    let mut files = Vec::new();
    for root in &includes {
        collect_protos(root, root, &mut files);
    }
    files.sort();

    let rewrites: Rewrites = Rc::default();
    let mut chain = ChainFileResolver::new();
    for root in &includes {
        chain.add(IncludeFileResolver::new(root.clone()));
    }
    // google/protobuf/*.proto are not shipped with envoy-types.
    chain.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(Rewriting {
        inner: chain,
        rewrites: Rc::clone(&rewrites),
    });
    compiler.include_imports(true).include_source_info(false);
    for file in &files {
        while let Err(err) = compiler.open_file(file) {
            qualify_reference(&err, &rewrites);
            let count: usize = rewrites.borrow().values().map(BTreeMap::len).sum();
            assert!(
                count <= MAX_REWRITES,
                "too many rewrites; last error: {err}"
            );
        }
    }
    let bytes = prost::Message::encode_to_vec(&compiler.file_descriptor_set());
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("envoy_descriptors.bin");
    std::fs::write(&out, bytes).expect("write descriptor set");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=../Cargo.lock");
}

/// Where cargo unpacked the envoy-types crate, and its `proto` folder.
fn envoy_types_proto_dir() -> PathBuf {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target = env::var("TARGET").expect("TARGET");
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path(manifest.join("Cargo.toml"))
        // Only this platform's packages, so that no other platform's crates must be downloaded.
        .other_options(vec!["--filter-platform".into(), target])
        .exec()
        .expect("cargo metadata");
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "envoy-types")
        .expect("envoy-types is a dependency");
    let dir = package
        .manifest_path
        .parent()
        .expect("crate dir")
        .join("proto");
    dir.into_std_path_buf()
}

fn collect_protos(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read proto dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_protos(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            let relative = path.strip_prefix(root).expect("under root");
            out.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// protox resolves a partial type name such as `config.core.v3.HttpUri`
/// against every package it has loaded, where protoc looks only at a file's
/// imports; Envoy's protos rely on protoc's rule. When protox picks a scope
/// that does not define the type, the reference is rewritten to the fully
/// qualified name one scope further out, which is what protoc resolves.
fn qualify_reference(err: &protox::Error, rewrites: &Rewrites) {
    let message = err.to_string();
    // "'common.a.v3.T' resolves to 'envoy.x.common.a.v3.T', which is not defined"
    let quoted: Vec<&str> = message.split('\'').collect();
    let (Some(file), true, true) = (
        err.file(),
        quoted.len() >= 4,
        message.contains("which is not defined"),
    ) else {
        panic!("compiling Envoy's protos failed: {err:?}");
    };
    let (relative, resolved) = (quoted[1], quoted[3]);
    let scope = resolved
        .strip_suffix(relative)
        .unwrap_or_else(|| panic!("unexpected resolution in {file}: {message}"))
        .trim_end_matches('.');
    let outer = scope.rsplit_once('.').map_or("", |(outer, _)| outer);
    let qualified = if outer.is_empty() {
        format!(" .{relative}")
    } else {
        format!(" .{outer}.{relative}")
    };
    let mut rewrites = rewrites.borrow_mut();
    let for_file = rewrites.entry(file.to_owned()).or_default();
    let from = format!(" {relative}");
    assert!(
        for_file.get(&from) != Some(&qualified),
        "rewriting {relative} in {file} did not help: {message}"
    );
    for_file.insert(from, qualified);
}

/// A file resolver that applies the rewrites of [`qualify_reference`].
struct Rewriting {
    inner: ChainFileResolver,
    rewrites: Rewrites,
}

impl FileResolver for Rewriting {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.inner.resolve_path(path)
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        let file = self.inner.open_file(name)?;
        let rewrites = self.rewrites.borrow();
        let (Some(list), Some(source)) = (rewrites.get(name), file.source()) else {
            return Ok(file);
        };
        let mut source = source.to_owned();
        for (from, to) in list {
            source = source.replace(from.as_str(), to.as_str());
        }
        File::from_source(name, &source)
    }
}
