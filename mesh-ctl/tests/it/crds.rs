//! The generated CRDs checked by third-party validators (Python's
//! kubernetes-validate and jsonschema), and the real Istio samples against them.

use std::path::PathBuf;
use std::process::Command;

use crate::common;

#[test]
fn crds_are_valid_kubernetes_and_accept_the_istio_samples() {
    let dir = tempfile::tempdir().unwrap();
    let crds = dir.path().join("crds.yaml");
    let status = common::meshctl()
        .args(["manifest", "generate", "--component", "crds", "-o"])
        .arg(&crds)
        .status()
        .unwrap();
    assert!(status.success());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/check_crds.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&crds)
        .arg(common::testdata())
        .output()
        .expect("python3 is needed: see requirements-dev.txt");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "install the Python test tools first: pip install -r requirements-dev.txt\n{stderr}"
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("0 problems"), "{stdout}");
}
