//! `meshctl apply`, `delete` and `get` end to end: the real binary against
//! the control plane's config API on loopback.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use mesh_control::store::ConfigSource;

use crate::common;

use common::ControlPlane;

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn bookinfo_is_applied_listed_and_deleted() {
    let control = ControlPlane::start();
    let testdata = common::testdata();
    let (code, stdout, stderr) = run(control.meshctl().args(["apply", "-f"]).arg(&testdata));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("virtualservice.networking.istio.io/bookinfo created\n"),
        "{stdout}"
    );
    assert!(stdout.contains("v1 Service passed over"), "{stdout}");
    // Some files name the same resources: later files replace earlier ones.
    assert!(stdout.contains("virtualservice.networking.istio.io/reviews configured\n"));

    let (code, stdout, _) = run(control.meshctl().args(["get", "vs"]));
    assert_eq!(code, 0);
    assert_eq!(
        stdout,
        "NAME\nbookinfo\ndetails\nproductpage\nratings\nreviews\n"
    );
    let (code, stdout, _) = run(control.meshctl().args(["get", "gw", "-A"]));
    assert_eq!(code, 0);
    assert_eq!(stdout, "NAMESPACE   NAME\ndefault     bookinfo-gateway\n");
    let (code, _, stderr) = run(control
        .meshctl()
        .args(["get", "destinationrules", "-n", "other"]));
    assert_eq!(code, 0);
    assert_eq!(stderr, "No resources found in other namespace.\n");

    let (code, yaml, _) = run(control.meshctl().args(["get", "dr", "-o", "yaml"]));
    assert_eq!(code, 0);
    let report = mesh_api::load::load_str("list.yaml", &yaml);
    assert!(report.problems.is_empty(), "{yaml}");
    assert_eq!(report.resources.len(), 4);
    let (code, json, _) =
        run(control
            .meshctl()
            .args(["get", "VirtualService", "reviews", "-o", "json"]));
    assert_eq!(code, 0);
    let reviews: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(reviews["metadata"]["name"], "reviews");

    let (code, _, stderr) = run(control.meshctl().args(["get", "pods"]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("doesn't have a resource type \"pods\""),
        "{stderr}"
    );

    let gateway = testdata.join("bookinfo-gateway.yaml");
    let (code, stdout, _) = run(control.meshctl().args(["delete", "-f"]).arg(&gateway));
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        stdout,
        "gateway.networking.istio.io/bookinfo-gateway deleted\nvirtualservice.networking.istio.io/bookinfo deleted\n"
    );
    let (code, stdout, _) = run(control.meshctl().args(["delete", "-f"]).arg(&gateway));
    assert_eq!(code, 1);
    assert!(
        stdout.contains("gateway.networking.istio.io/bookinfo-gateway not found"),
        "{stdout}"
    );
}

#[test]
fn invalid_input_is_refused_locally_with_the_validate_messages() {
    let control = ControlPlane::start();
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo/networking");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let weights = dir.path().join("virtual-service-reviews-50-v3.yaml");
    let text = std::fs::read_to_string(&weights).unwrap();
    std::fs::write(&weights, text.replacen("weight: 50", "weight: 40", 1)).unwrap();

    let (code, stdout, _) = run(control.meshctl().args(["apply", "-f"]).arg(dir.path()));
    assert_eq!(code, 1, "{stdout}");
    let (_, validated, _) = run(common::meshctl().args(["validate", "-f"]).arg(dir.path()));
    assert_eq!(stdout, validated);
    assert!(
        stdout.contains("VirtualService default/reviews: spec.http[0].route: "),
        "{stdout}"
    );
    assert!(
        control.store.current().entries.is_empty(),
        "nothing reached the store"
    );
}

#[test]
fn standard_input_is_applied_and_an_absent_control_plane_is_an_error() {
    let control = ControlPlane::start();
    let mut child = control
        .meshctl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let doc = "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: api, namespace: shop}\nspec:\n  hosts: [api.example.com]\n  ports: [{number: 443, name: https, protocol: TLS}]\n  resolution: DNS\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert_eq!(stdout, "serviceentry.networking.istio.io/api created\n");
    let (code, stdout, _) = run(control.meshctl().args(["get", "se", "-n", "shop"]));
    assert_eq!((code, stdout.as_str()), (0, "NAME\napi\n"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, stderr) = run(common::meshctl().args(["get", "vs", "--control-plane", &url]));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot reach the control plane at"),
        "{stderr}"
    );
}
