//! The Kubernetes manifests, checked by `tests/check_kube.py` against the
//! real Kubernetes OpenAPI schema and against what the walkthrough needs.

use std::path::Path;
use std::process::Command;

fn check(manifest: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_kube.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(manifest)
        .output()
        .expect("python3 is needed: see requirements-dev.txt");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn manifest() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("platform/kube/bookinfo.yaml")
}

#[test]
fn the_kubernetes_manifests_are_valid_and_complete() {
    let (ok, text) = check(&manifest());
    assert!(ok, "{text}");
}

#[test]
fn a_broken_manifest_is_caught() {
    let text = std::fs::read_to_string(manifest()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        text.replacen("containerPort: 9080", "containerPorts: 9080", 1),
    )
    .unwrap();
    let (ok, text) = check(&broken);
    assert!(!ok);
    assert!(text.contains("Deployment details-v1"), "{text}");
}
