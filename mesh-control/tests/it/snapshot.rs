//! The snapshot from a watched directory and the API store together, with a
//! ServiceEntry registry: every change publishes a higher version, and
//! invalid input leaves the running snapshot as it was.

use std::fs;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use mesh_control::model::{MeshConfig, MeshSnapshot};
use mesh_control::registry::ServiceEntryRegistry;
use mesh_control::snapshot::{Inputs, publish};
use mesh_control::store::{DirectorySource, MemoryStore};
use tokio::sync::watch;

use crate::support;

const DETAILS_VM: &str = "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector:
    labels: {app: details}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: details-v1}
spec:
  address: 10.0.0.7
  labels: {app: details, version: v1}
  serviceAccount: bookinfo-details
";

async fn wait_for(
    receiver: &mut watch::Receiver<Arc<MeshSnapshot>>,
    what: &str,
    ready: impl Fn(&MeshSnapshot) -> bool,
) -> Arc<MeshSnapshot> {
    let found = receiver.wait_for(|s| ready(s));
    match tokio::time::timeout(Duration::from_secs(10), found).await {
        Ok(snapshot) => snapshot.expect("the publisher runs").clone(),
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_and_api_feed_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    fs::copy(
        support::config::testdata().join("destination-rule-all.yaml"),
        dir.path().join("rules.yaml"),
    )
    .unwrap();
    let directory = Arc::new(DirectorySource::start(dir.path()).unwrap());
    let api = support::config::ApiServer::start(Arc::new(MemoryStore::new())).await;
    let inputs = Inputs {
        mesh: MeshConfig::default(),
        sources: vec![directory.clone(), api.store.clone()],
        registries: vec![Arc::new(ServiceEntryRegistry)],
        jwks: None,
    };
    let sender = watch::Sender::new(Arc::new(MeshSnapshot::default()));
    let mut snapshots = sender.subscribe();
    tokio::spawn(publish(inputs, sender));
    let first = wait_for(&mut snapshots, "the first snapshot", |s| s.version >= 1).await;
    assert_eq!(first.config.len(), 4);

    // A file with a service and its workload: the registry follows.
    fs::write(dir.path().join("details-vm.yaml"), DETAILS_VM).unwrap();
    let with_vm = wait_for(&mut snapshots, "the VM's service", |s| {
        !s.endpoints.is_empty()
    })
    .await;
    assert!(with_vm.version > first.version);
    assert_eq!(
        with_vm.services[0].hostname,
        "details.default.svc.cluster.local"
    );
    assert_eq!(
        with_vm.services[0].subject_alt_names,
        ["spiffe://cluster.local/ns/default/sa/bookinfo-details"]
    );
    assert_eq!(with_vm.endpoints[0].address.to_string(), "10.0.0.7");

    // Routes through the API.
    let routes =
        fs::read_to_string(support::config::testdata().join("virtual-service-all-v1.yaml"))
            .unwrap();
    let (status, body) = api.send(Method::POST, "/api/v1/config", &routes).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let routed = wait_for(&mut snapshots, "the routes", |s| s.config.len() == 10).await;
    assert!(routed.version > with_vm.version);

    // Invalid through the API: refused, the snapshot stays.
    let (status, _) = api
        .send(
            Method::POST,
            "/api/v1/config",
            &routes.replace("subset: v1", "subset: V_1"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Broken in the directory: the file is left out, the rest keeps serving.
    fs::write(
        dir.path().join("details-vm.yaml"),
        DETAILS_VM.replace("10.0.0.7", "10.0.0.7\n  weight: 0"),
    )
    .unwrap();
    let broken = wait_for(&mut snapshots, "the broken file left out", |s| {
        s.endpoints.is_empty()
    })
    .await;
    assert_eq!(
        broken.config.len(),
        8,
        "the rules and the routes still serve"
    );
    let problems = directory_problems(&directory);
    assert!(
        problems.iter().any(|p| p.contains("details-vm.yaml:")
            && p.contains("WorkloadEntry default/details-v1: spec.weight")),
        "{problems:?}"
    );
}

fn directory_problems(directory: &DirectorySource) -> Vec<String> {
    use mesh_control::store::ConfigSource;
    directory
        .current()
        .problems
        .iter()
        .map(ToString::to_string)
        .collect()
}
