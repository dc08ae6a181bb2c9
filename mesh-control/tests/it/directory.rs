//! The config directory, watched: files added, changed, broken and removed
//! while it runs, each change seen on the source's channel.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mesh_api::load::Resource;
use mesh_control::store::{ConfigSet, ConfigSource, DirectorySource, Key};
use tokio::sync::watch;

use crate::support;

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn keys(set: &ConfigSet) -> Vec<String> {
    set.entries
        .iter()
        .map(|e| Key::of(&e.resource).to_string())
        .collect()
}

/// Waits (bounded) for a published set that satisfies `ready`.
async fn wait_for(
    receiver: &mut watch::Receiver<Arc<ConfigSet>>,
    what: &str,
    ready: impl Fn(&ConfigSet) -> bool,
) -> Arc<ConfigSet> {
    let found = receiver.wait_for(|set| ready(set));
    match tokio::time::timeout(Duration::from_secs(10), found).await {
        Ok(set) => set.expect("the source is running").clone(),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

fn reviews_rules(set: &ConfigSet) -> Vec<String> {
    set.entries
        .iter()
        .find_map(|e| match e.resource.as_ref() {
            Resource::VirtualService(vs) if vs.metadata.name.as_deref() == Some("reviews") => {
                Some(vs.spec.http.len().to_string())
            }
            _ => None,
        })
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_added_changed_broken_and_removed_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    // Bookinfo's gateway and destination rules, in a nested directory.
    let nested = dir.path().join("bookinfo");
    fs::create_dir_all(&nested).unwrap();
    for name in ["bookinfo-gateway.yaml", "destination-rule-all.yaml"] {
        fs::copy(support::config::testdata().join(name), nested.join(name)).unwrap();
    }
    let source = DirectorySource::start(dir.path()).unwrap();
    assert!(source.name().starts_with("dir:"));
    let first = source.current();
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    assert_eq!(
        keys(&first),
        [
            "DestinationRule default/details",
            "DestinationRule default/productpage",
            "DestinationRule default/ratings",
            "DestinationRule default/reviews",
            "Gateway default/bookinfo-gateway",
            "VirtualService default/bookinfo",
        ]
    );
    let mut changes = source.subscribe();

    // Added.
    let routes = dir.path().join("reviews.yaml");
    let all_v1 = support::config::testdata().join("virtual-service-reviews-test-v2.yaml");
    fs::copy(&all_v1, &routes).unwrap();
    let added = wait_for(&mut changes, "the added file", |s| s.entries.len() == 7).await;
    assert_eq!(
        reviews_rules(&added),
        ["2"],
        "jason's route and the default"
    );

    // Changed.
    fs::copy(
        support::config::testdata().join("virtual-service-reviews-v3.yaml"),
        &routes,
    )
    .unwrap();
    let changed = wait_for(&mut changes, "the changed file", |s| {
        reviews_rules(s) == ["1"]
    })
    .await;
    assert_eq!(changed.entries.len(), 7);

    // Broken: reported with file:line, left out; the others keep serving.
    let text = fs::read_to_string(&routes).unwrap();
    fs::write(
        &routes,
        text.replace("subset: v3", "subset: v3\n      weight: -5"),
    )
    .unwrap();
    let broken = wait_for(&mut changes, "the broken file", |s| !s.problems.is_empty()).await;
    assert_eq!(broken.entries.len(), 6);
    let problem = broken.problems[0].to_string();
    assert!(
        problem.starts_with(&format!("{}:", routes.display()))
            && problem.contains("VirtualService default/reviews: spec.http[0].route[0].weight"),
        "{problem}"
    );

    // Fixed, then removed.
    fs::copy(&all_v1, &routes).unwrap();
    wait_for(&mut changes, "the fixed file", |s| {
        s.problems.is_empty() && s.entries.len() == 7
    })
    .await;
    fs::remove_file(&routes).unwrap();
    wait_for(&mut changes, "the removed file", |s| s.entries.len() == 6).await;

    // A new subdirectory with the whole example set, where some resources
    // repeat those already read: reported, the first file in path order wins.
    copy_dir(&support::config::examples(), &dir.path().join("examples"));
    let both = wait_for(&mut changes, "the example directory", |s| {
        s.entries.len() > 6
    })
    .await;
    assert!(
        both.problems
            .iter()
            .all(|p| p.reason.contains("already defined at")),
        "{:?}",
        both.problems
    );
    let gateway = both
        .entries
        .iter()
        .find(|e| e.resource.kind() == "Gateway")
        .unwrap();
    assert!(
        gateway.source.file.contains("/bookinfo/"),
        "{}",
        gateway.source.file
    );
}

#[tokio::test]
async fn a_directory_that_does_not_exist_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    assert!(DirectorySource::start(&dir.path().join("missing")).is_err());
}
