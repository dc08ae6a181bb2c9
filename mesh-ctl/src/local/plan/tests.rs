use super::*;
use crate::inputs::Input;

fn inputs(text: &str) -> Inputs {
    Inputs::read(&[Input {
        name: "local.yaml".into(),
        text: text.into(),
    }])
}

const REVIEWS: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}, {number: 9443, name: grpc, protocol: GRPC, targetPort: 9444}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v2, namespace: default}
spec: {address: 127.0.10.4, labels: {app: reviews, version: v2}, serviceAccount: bookinfo-reviews}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: reviews-v2}
spec:
  command: [meshctl, bookinfo, reviews, --port, $(PORT), --grpc, $(PORT_9444), $(NOPE), $$(PORT)]
  env: [{name: UPSTREAM, value: 'http://$(MESH_EGRESS_ADDRESS):9080'}]
  httpProxyPort: 9080
";

#[test]
fn a_workload_gets_its_entry_ports_and_a_place() {
    let read = inputs(REVIEWS);
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    let workloads = resolve(&read).unwrap();
    let workload = &workloads[0];
    assert_eq!(workload.address.to_string(), "127.0.10.4");
    assert_eq!(workload.service_account, "bookinfo-reviews");
    let ports: Vec<u16> = workload.ports.iter().map(|p| p.number).collect();
    assert_eq!(
        ports,
        [9080, 9444],
        "the target port is where the workload listens"
    );

    let placed = place(&read, workloads).unwrap().remove(0);
    assert!(placed.egress.is_loopback());
    assert_ne!(placed.egress, placed.workload.address);
    let (command, env) = placed.command();
    let port = placed.app_ports[0].1.to_string();
    let grpc = placed.app_ports[1].1.to_string();
    assert_eq!(
        command,
        [
            "meshctl", "bookinfo", "reviews", "--port", &port, "--grpc", &grpc, "$(NOPE)",
            "$(PORT)"
        ]
    );
    let value = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(
        value("HTTP_PROXY"),
        Some(format!("http://{}:9080", placed.egress))
    );
    assert_eq!(
        value("UPSTREAM"),
        Some(format!("http://{}:9080", placed.egress))
    );
    assert_eq!(value("HOSTNAME").as_deref(), Some("reviews-v2"));

    let sidecar = placed.sidecar();
    assert_eq!(
        sidecar["spec"]["workloadSelector"]["labels"]["version"],
        "v2"
    );
    assert_eq!(
        sidecar["spec"]["ingress"][0]["defaultEndpoint"],
        format!("127.0.0.1:{port}")
    );
    assert_eq!(sidecar["spec"]["ingress"][1]["port"]["number"], 9444);
    assert_eq!(
        sidecar["spec"]["egress"][0]["bind"],
        placed.egress.to_string()
    );
    assert_eq!(
        sidecar["spec"]["egress"][0]["hosts"],
        json!([
            "default/*",
            "istio-system/otel-collector.istio-system.svc.cluster.local"
        ])
    );
    // What the control plane gets is valid Sidecar config.
    let report = mesh_api::load::load_str("sidecar.json", &sidecar.to_string());
    assert_eq!(report.resources.len(), 1);
    assert!(report.resources[0].validate().is_empty());

    let config = istio_config(&read.istio, &[placed]);
    let entry = &config[0].1[1];
    assert_eq!(entry["kind"], "WorkloadEntry");
    assert_eq!(entry["spec"]["labels"][TLS_MODE_LABEL], "istio");
}

#[test]
fn workloads_that_cannot_run_here_are_refused_with_the_reason() {
    let read = inputs(
        "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: remote, namespace: default}
spec: {address: 10.0.0.7, labels: {app: a}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: one, namespace: default}
spec: {address: 127.0.10.1, labels: {app: b}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: two, namespace: default}
spec: {address: 127.0.10.1, labels: {app: c}}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: remote}
spec: {command: [a]}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: missing}
spec: {command: [a]}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: one}
spec: {command: [a]}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: two}
spec: {command: [a]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: wider, namespace: default}
spec: {address: 127.0.10.9, labels: {app: b, version: v2}}
---
apiVersion: local.mesh.dev/v1alpha1
kind: LocalWorkload
metadata: {name: wider}
spec: {command: [a]}
",
    );
    let problems: Vec<String> = resolve(&read)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        [
            "local.yaml:16: LocalWorkload default/remote: spec.workloadEntry: WorkloadEntry default/remote has address 10.0.0.7, which is not a loopback address (127.0.0.0/8 or ::1)",
            "local.yaml:21: LocalWorkload default/missing: spec.workloadEntry: no WorkloadEntry default/missing in the inputs",
            "local.yaml:31: LocalWorkload default/two: spec.workloadEntry: address 127.0.10.1 is also LocalWorkload default/one's: each workload needs its own",
            "local.yaml:41: LocalWorkload default/wider: spec.workloadEntry: its WorkloadEntry's labels and LocalWorkload one's are one within the other, so the Sidecar of one would select both: give each a label the other lacks",
        ]
    );
}

#[test]
fn expansion_follows_kubernetes() {
    let vars = [
        ("A".to_owned(), "1".to_owned()),
        ("A".to_owned(), "2".to_owned()),
    ];
    assert_eq!(expand("x$(A)y", &vars), "x2y");
    assert_eq!(expand("$$(A) $(B) $ $(", &vars), "$(A) $(B) $ $(");
}
