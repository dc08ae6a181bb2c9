use super::*;

/// The entries of `text`, read as file `file`.
pub(crate) fn entries(file: &str, text: &str) -> Vec<Entry> {
    let report = mesh_api::load::load_str(file, text);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    report
        .resources
        .into_iter()
        .map(|loaded| Entry {
            resource: Arc::new(loaded.resource),
            source: loaded.source,
        })
        .collect()
}

pub(crate) fn vs(namespace: &str, name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  hosts: [{host}]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n"
    )
}

fn keys(set: &ConfigSet) -> Vec<String> {
    set.entries
        .iter()
        .map(|e| Key::of(&e.resource).to_string())
        .collect()
}

#[test]
fn entries_are_ordered_by_kind_namespace_and_name_and_the_first_duplicate_wins() {
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n";
    let text = [
        vs("b", "x", "one"),
        vs("a", "y", "two"),
        dr.into(),
        vs("b", "x", "three"),
    ]
    .join("---\n");
    let set = ConfigSet::from_entries(entries("all.yaml", &text));
    assert_eq!(
        keys(&set),
        [
            "DestinationRule default/reviews",
            "VirtualService a/y",
            "VirtualService b/x"
        ]
    );
    let Resource::VirtualService(kept) = set.entries[2].resource.as_ref() else {
        panic!()
    };
    assert_eq!(kept.spec.hosts, ["one"]);
    assert_eq!(set.problems.len(), 1);
    let lines: Vec<&str> = text.lines().collect();
    let line = 1 + lines
        .iter()
        .rposition(|l| l.starts_with("apiVersion"))
        .unwrap();
    assert_eq!(
        set.problems[0].to_string(),
        format!(
            "all.yaml:{line}: VirtualService b/x: already defined at all.yaml:1; this definition is ignored"
        )
    );
}

#[test]
fn merged_sets_keep_their_problems_and_earlier_sets_win() {
    let mut first = ConfigSet::from_entries(entries("dir.yaml", &vs("default", "r", "one")));
    first.problems.push(Problem {
        file: "bad.yaml".into(),
        line: 3,
        subject: None,
        path: None,
        reason: "broken".into(),
    });
    let second = ConfigSet::from_entries(entries(
        "request",
        &[vs("default", "r", "two"), vs("default", "s", "three")].join("---\n"),
    ));
    let merged = ConfigSet::merge([&first, &second]);
    assert_eq!(
        keys(&merged),
        ["VirtualService default/r", "VirtualService default/s"]
    );
    assert_eq!(merged.entries[0].source.file, "dir.yaml");
    let problems: Vec<String> = merged.problems.iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(problems[0], "bad.yaml:3: broken");
    assert!(
        problems[1]
            .starts_with("request:1: VirtualService default/r: already defined at dir.yaml:1")
    );
    assert_eq!(merged.resources().len(), 2);
}
