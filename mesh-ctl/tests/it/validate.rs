//! `meshctl validate` end to end: real files, the real binary, exit codes.

use std::fs;

use crate::common;

fn run(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let output = common::meshctl().args(args).arg(dir).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (output.status.code().unwrap(), stdout)
}

#[test]
fn the_bookinfo_samples_are_valid() {
    let (code, stdout) = run(&["validate", "-f"], &common::testdata());
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(" Istio resource(s) valid"), "{stdout}");
    assert!(stdout.contains("of other kinds passed over"), "{stdout}");
}

#[test]
fn our_own_bookinfo_configs_are_valid() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bookinfo/networking");
    let (code, stdout) = run(&["validate", "-f"], &dir);
    assert_eq!(code, 0, "{stdout}");
}

#[test]
fn a_broken_weight_and_a_bad_regex_are_both_reported_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(common::testdata()).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let weights = dir.path().join("virtual-service-reviews-50-v3.yaml");
    let text = fs::read_to_string(&weights).unwrap();
    let route_line = 1 + text.lines().position(|l| l.contains("- route:")).unwrap();
    fs::write(&weights, text.replacen("weight: 50", "weight: 40", 1)).unwrap();
    let regex = dir.path().join("virtual-service-reviews-test-v2.yaml");
    let text = fs::read_to_string(&regex).unwrap();
    let regex_line = 1 + text
        .lines()
        .position(|l| l.contains("exact: jason"))
        .unwrap();
    fs::write(&regex, text.replace("exact: jason", "regex: \"jas(on\"")).unwrap();

    let (code, stdout) = run(&["validate", "-f"], dir.path());
    assert_eq!(code, 1, "{stdout}");
    let problems: Vec<&str> = stdout.lines().filter(|l| l.contains(".yaml:")).collect();
    assert_eq!(problems.len(), 2, "{stdout}");
    let weight = format!(
        "virtual-service-reviews-50-v3.yaml:{route_line}: VirtualService default/reviews: spec.http[0].route: "
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&weight) && p.contains("add up to 90")),
        "{weight}\n{stdout}"
    );
    let bad = format!(
        "virtual-service-reviews-test-v2.yaml:{regex_line}: VirtualService default/reviews: spec.http[0].match[0].headers.end-user.regex: "
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&bad) && p.contains("RE2")),
        "{bad}\n{stdout}"
    );
}

#[test]
fn reads_standard_input_and_fails_on_unreadable_paths() {
    let mut child = common::meshctl()
        .args(["validate", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let doc = "apiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  htp: []\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("<stdin>:6: VirtualService default/r: spec.htp: unknown field \"htp\"; did you mean \"http\"?"), "{stdout}");

    let (code, stdout) = run(
        &["validate", "-f"],
        std::path::Path::new("/nonexistent/mesh.yaml"),
    );
    assert_eq!(code, 1);
    assert!(
        stdout.contains("/nonexistent/mesh.yaml:0: cannot read"),
        "{stdout}"
    );
}
