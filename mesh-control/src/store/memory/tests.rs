use super::*;
use crate::store::tests::vs;

fn outcomes(changes: &Changes) -> Vec<String> {
    changes.applied.iter().map(ToString::to_string).collect()
}

#[test]
fn apply_creates_replaces_and_leaves_unchanged_as_kubectl_says() {
    let store = MemoryStore::new();
    let mut changes = store.subscribe();
    let applied = store
        .apply_yaml("a.yaml", &vs("default", "reviews", "reviews"))
        .unwrap();
    assert_eq!(
        outcomes(&applied),
        ["virtualservice.networking.istio.io/reviews created"]
    );
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();

    let again = store
        .apply_yaml("a.yaml", &vs("default", "reviews", "reviews"))
        .unwrap();
    assert_eq!(
        outcomes(&again),
        ["virtualservice.networking.istio.io/reviews unchanged"]
    );
    assert!(
        !changes.has_changed().unwrap(),
        "nothing changed, nothing published"
    );

    let other = store
        .apply_yaml("b.yaml", &vs("default", "reviews", "ratings"))
        .unwrap();
    assert_eq!(
        outcomes(&other),
        ["virtualservice.networking.istio.io/reviews configured"]
    );
    let current = store.current();
    assert_eq!(current.entries.len(), 1);
    assert_eq!(current.entries[0].source.file, "b.yaml");
}

#[test]
fn one_invalid_document_refuses_the_whole_request_with_validate_messages() {
    let store = MemoryStore::new();
    let bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec:\n  hosts: [reviews]\n  htp: []\n";
    let text = [vs("default", "good", "reviews").as_str(), bad].join("---\n");
    let refused = store.apply_yaml("<stdin>", &text).unwrap_err();
    let mut report = mesh_api::load::load_str("<stdin>", &text);
    report.validate();
    assert_eq!(refused.problems, report.problems);
    assert_eq!(
        refused.to_string(),
        "<stdin>:17: VirtualService default/bad: spec.htp: unknown field \"htp\"; did you mean \"http\"?"
    );
    assert!(
        store.current().entries.is_empty(),
        "nothing of the request was kept"
    );
    let empty = store.apply_yaml("x", "# nothing\n").unwrap_err();
    assert!(empty.to_string().contains("no objects passed"), "{empty}");
}

#[test]
fn get_list_and_delete() {
    let store = MemoryStore::new();
    let service = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n";
    let text = [
        vs("default", "reviews", "reviews"),
        vs("test", "ratings", "ratings"),
        vs("default", "details", "details"),
        service.into(),
    ]
    .join("---\n");
    let applied = store.apply_yaml("all.yaml", &text).unwrap();
    assert_eq!(applied.applied.len(), 3);
    assert_eq!(applied.passed_over.len(), 1);
    assert_eq!(applied.passed_over[0].kind, "Service");

    let names = |ns| -> Vec<String> {
        store
            .list("VirtualService", ns)
            .iter()
            .map(|r| format!("{}/{}", r.namespace(), r.name()))
            .collect()
    };
    assert_eq!(
        names(None),
        ["default/details", "default/reviews", "test/ratings"]
    );
    assert_eq!(names(Some("test")), ["test/ratings"]);
    assert!(store.list("DestinationRule", None).is_empty());
    let key = Key {
        kind: "VirtualService".into(),
        namespace: "test".into(),
        name: "ratings".into(),
    };
    assert_eq!(store.get(&key).unwrap().name(), "ratings");

    assert_eq!(store.delete(&key).outcome, Outcome::Deleted);
    assert_eq!(store.delete(&key).outcome, Outcome::NotFound);
    let deleted = store
        .delete_yaml(
            "d.yaml",
            &[vs("default", "reviews", "x"), vs("default", "gone", "x")].join("---\n"),
        )
        .unwrap();
    assert_eq!(
        outcomes(&deleted),
        [
            "virtualservice.networking.istio.io/reviews deleted",
            "virtualservice.networking.istio.io/gone not found"
        ]
    );
    assert_eq!(names(None), ["default/details"]);
    assert!(store.delete_yaml("d.yaml", "kind: [").is_err());
}
