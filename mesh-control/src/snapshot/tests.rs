use std::time::Duration;

use mesh_api::load::Resource;

use super::*;
use crate::registry::ServiceEntryRegistry;
use crate::store::MemoryStore;
use crate::store::tests::vs;

const ENTRY: &str = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 9080, name: http, protocol: HTTP}]\n  endpoints: [{address: 10.0.0.1}]\n";

/// Waits (bounded) until the snapshot satisfies `ready`.
async fn wait_for(
    receiver: &mut watch::Receiver<Arc<MeshSnapshot>>,
    ready: impl Fn(&MeshSnapshot) -> bool,
) -> Arc<MeshSnapshot> {
    let found = receiver.wait_for(|s| ready(s));
    let snapshot = tokio::time::timeout(Duration::from_secs(10), found)
        .await
        .expect("the snapshot changes in time")
        .expect("the publisher is running");
    snapshot.clone()
}

#[tokio::test]
async fn every_change_publishes_a_new_version_with_config_and_services() {
    let api = Arc::new(MemoryStore::new());
    let other = Arc::new(MemoryStore::new());
    other
        .apply_yaml("other", &vs("default", "reviews", "shadowed"))
        .unwrap();
    let inputs = Inputs {
        mesh: MeshConfig::default(),
        sources: vec![api.clone(), other.clone()],
        registries: vec![Arc::new(ServiceEntryRegistry)],
        jwks: None,
    };
    let sender = watch::Sender::new(Arc::new(MeshSnapshot::default()));
    let mut snapshots = sender.subscribe();
    let publisher = tokio::spawn(publish(inputs, sender));

    let first = wait_for(&mut snapshots, |s| s.version == 1).await;
    assert_eq!(first.config.len(), 1);

    api.apply_yaml(
        "a",
        &[vs("default", "reviews", "reviews"), ENTRY.into()].join("---\n"),
    )
    .unwrap();
    let second = wait_for(&mut snapshots, |s| s.config.len() == 2).await;
    assert!(second.version > first.version);
    let Resource::VirtualService(reviews) = second.config[1].as_ref() else {
        panic!("ServiceEntry sorts before VirtualService")
    };
    assert_eq!(reviews.spec.hosts, ["reviews"], "the first source wins");
    assert_eq!(
        second.services[0].hostname,
        "reviews.default.svc.cluster.local"
    );
    assert_eq!(second.endpoints[0].address.to_string(), "10.0.0.1");

    api.apply_yaml("a", "kind: [").unwrap_err();
    other
        .apply_yaml("other", ENTRY.replace("10.0.0.1", "10.0.0.2").as_str())
        .unwrap();
    let third = wait_for(&mut snapshots, |s| s.version > second.version).await;
    assert_eq!(third.endpoints.len(), 1, "the API's ServiceEntry wins");

    drop(snapshots);
    tokio::time::timeout(Duration::from_secs(10), publisher)
        .await
        .expect("the publisher stops when no one listens")
        .unwrap();
}
