//! Helpers shared by meshctl's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The meshctl binary cargo built for these tests.
pub fn meshctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshctl"))
}

/// `shared/testdata/istio-bookinfo` beside the repository (MESH_TESTDATA overrides).
pub fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESH_TESTDATA") {
        return PathBuf::from(dir);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = repo.join("../shared/testdata/istio-bookinfo");
    assert!(dir.is_dir(), "test data not found at {}", dir.display());
    dir.canonicalize().unwrap()
}
