use std::fs;

use super::*;
use crate::store::Key;
use crate::store::tests::vs;

fn keys(set: &ConfigSet) -> Vec<String> {
    set.entries
        .iter()
        .map(|e| Key::of(&e.resource).to_string())
        .collect()
}

#[test]
fn reads_recursively_and_rereads_only_on_change() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("team/.git")).unwrap();
    fs::write(dir.path().join("a.yaml"), vs("default", "a", "a")).unwrap();
    fs::write(dir.path().join("team/b.yml"), vs("team", "b", "b")).unwrap();
    fs::write(dir.path().join("team/.git/c.yaml"), vs("x", "hidden", "c")).unwrap();
    fs::write(dir.path().join(".a.yaml.swp"), "garbage: [").unwrap();
    fs::write(dir.path().join("notes.txt"), "not config").unwrap();

    let mut scanner = Scanner::new(dir.path());
    let set = scanner.scan().unwrap().unwrap();
    assert_eq!(
        keys(&set),
        ["VirtualService default/a", "VirtualService team/b"]
    );
    assert!(set.problems.is_empty(), "{:?}", set.problems);
    assert!(scanner.scan().unwrap().is_none(), "nothing changed");

    // Same content written again: a new stamp, but nothing to publish.
    fs::write(dir.path().join("a.yaml"), vs("default", "a", "a") + "\n").unwrap();
    fs::write(dir.path().join("a.yaml"), vs("default", "a", "a")).unwrap();
    assert!(scanner.scan().unwrap().is_none());

    fs::remove_file(dir.path().join("team/b.yml")).unwrap();
    let set = scanner.scan().unwrap().unwrap();
    assert_eq!(keys(&set), ["VirtualService default/a"]);
}

#[test]
fn a_bad_file_is_left_out_whole_and_duplicates_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    fs::write(&good, vs("default", "reviews", "reviews")).unwrap();
    let broken = [vs("default", "ratings", "ratings"), "kind: [\n".into()].join("---\n");
    fs::write(&bad, &broken).unwrap();
    let dup = dir.path().join("zz-dup.yaml");
    fs::write(&dup, vs("default", "reviews", "other")).unwrap();

    let mut scanner = Scanner::new(dir.path());
    let set = scanner.scan().unwrap().unwrap();
    assert_eq!(keys(&set), ["VirtualService default/reviews"]);
    assert_eq!(set.entries[0].source.file, good.display().to_string());
    let problems: Vec<String> = set.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!("{}:13: invalid YAML", bad.display())),
        "{problems:?}"
    );
    assert_eq!(
        problems[1],
        format!(
            "{}:1: VirtualService default/reviews: already defined at {}:1; this definition is ignored",
            dup.display(),
            good.display()
        )
    );
    // The same messages as `meshctl validate`.
    let mut report = mesh_api::load::load_path(&bad);
    report.validate();
    assert_eq!(set.problems[0], report.problems[0]);

    // A good file that turns bad loses its config.
    fs::write(
        &good,
        vs("default", "reviews", "reviews").replace("hosts", "hostz"),
    )
    .unwrap();
    let set = scanner.scan().unwrap().unwrap();
    assert_eq!(keys(&set), ["VirtualService default/reviews"]);
    assert_eq!(set.entries[0].source.file, dup.display().to_string());
}

#[test]
fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut scanner = Scanner::new(&dir.path().join("nope"));
    assert!(scanner.scan().is_err());
}
