use super::*;

fn lines(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

const ENTRY: &str = "\
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata:
  name: details-vm
  namespace: bookinfo
spec:
  address: 10.0.0.7
  ports:
    http: 9080
  labels:
    app: details
";

#[test]
fn reads_a_resource_with_its_source() {
    let report = load_str("we.yaml", ENTRY);
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    let loaded = &report.resources[0];
    assert_eq!(
        loaded.source,
        Source {
            file: "we.yaml".into(),
            line: 1
        }
    );
    assert_eq!(loaded.resource.kind(), "WorkloadEntry");
    assert_eq!(loaded.resource.namespace(), "bookinfo");
    let Resource::WorkloadEntry(entry) = &loaded.resource else {
        panic!()
    };
    assert_eq!(entry.spec.ports["http"], 9080);
    assert!(loaded.validate().is_empty());
}

#[test]
fn passes_over_kinds_it_does_not_own() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1}]}\n---\n\
        apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {gatewayClassName: istio}\n";
    let report = load_str("mixed.yaml", text);
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    assert!(report.resources.is_empty());
    assert_eq!(report.skipped.len(), 2);
    assert_eq!(report.skipped[1].source.line, 6);
}

#[test]
fn names_unknown_fields_with_their_line_and_a_suggestion() {
    let text = ENTRY.replace("  labels:", "  labls:");
    let report = load_str("we.yaml", &text);
    assert_eq!(
        lines(&report),
        [
            "we.yaml:10: WorkloadEntry bookinfo/details-vm: spec.labls: unknown field \"labls\"; did you mean \"labels\"?"
        ]
    );
}

#[test]
fn names_wrong_types() {
    let text = ENTRY.replace("http: 9080", "http: nine");
    let report = load_str("we.yaml", &text);
    let problems = lines(&report);
    assert_eq!(problems.len(), 1);
    assert!(problems[0].starts_with("we.yaml:9: WorkloadEntry bookinfo/details-vm: spec.ports.http: invalid type: string \"nine\""), "{problems:?}");
}

#[test]
fn refuses_unserved_versions_and_unknown_top_level_fields() {
    let report = load_str("a.yaml", &ENTRY.replace("v1beta1", "v2"));
    assert_eq!(
        lines(&report),
        [
            "a.yaml:1: WorkloadEntry: apiVersion: apiVersion networking.istio.io/v2 is not served; use networking.istio.io/ with one of v1, v1beta1, v1alpha3"
        ]
    );
    let report = load_str("b.yaml", &format!("{ENTRY}specs: {{}}\n"));
    assert_eq!(
        lines(&report),
        ["b.yaml:12: WorkloadEntry: specs: unknown field \"specs\""]
    );
}

#[test]
fn reports_semantic_problems_at_the_field_line() {
    let mut report = load_str("we.yaml", &ENTRY.replace("9080", "70000"));
    report.validate();
    assert_eq!(
        lines(&report),
        [
            "we.yaml:9: WorkloadEntry bookinfo/details-vm: spec.ports.http: port number 70000 must be between 1 and 65535"
        ]
    );
}

#[test]
fn reports_every_document_and_survives_broken_yaml() {
    let text = format!(
        "{ENTRY}---\nkind: WorkloadEntry\n---\n{}---\nfoo: [\n",
        ENTRY.replace("details-vm", "Bad_Name")
    );
    let mut report = load_str("m.yaml", &text);
    report.validate();
    let problems = lines(&report);
    assert_eq!(report.resources.len(), 2);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(
        problems[0],
        "m.yaml:13: not a Kubernetes object: apiVersion and kind are required"
    );
    assert!(
        problems[1].starts_with("m.yaml:18: WorkloadEntry bookinfo/Bad_Name: metadata.name: "),
        "{problems:?}"
    );
    assert!(
        problems[2].starts_with("m.yaml:28: invalid YAML"),
        "{problems:?}"
    );
}

#[test]
fn expands_lists() {
    let indented: String = ENTRY.lines().map(|l| format!("  {l}\n")).collect();
    let text = format!("apiVersion: v1\nkind: List\nitems:\n-\n{indented}");
    let report = load_str("list.yaml", &text);
    assert!(report.problems.is_empty(), "{:?}", lines(&report));
    assert_eq!(report.resources[0].source.line, 5);
}

#[test]
fn reports_every_parse_error_of_a_document() {
    let text = ENTRY
        .replace("address: 10.0.0.7", "adress: 10.0.0.7")
        .replace("http: 9080", "http: nine")
        .replace("  labels:\n    app: details\n", "  weight: heavy\n");
    let report = load_str("we.yaml", &text);
    let problems = lines(&report);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("we.yaml:7: WorkloadEntry bookinfo/details-vm: spec.adress: unknown field \"adress\"; did you mean \"address\"?"), "{problems:?}");
    assert!(
        problems[1].starts_with(
            "we.yaml:9: WorkloadEntry bookinfo/details-vm: spec.ports.http: invalid type"
        ),
        "{problems:?}"
    );
    assert!(
        problems[2].starts_with(
            "we.yaml:10: WorkloadEntry bookinfo/details-vm: spec.weight: invalid type"
        ),
        "{problems:?}"
    );
}

#[test]
fn a_missing_required_field_is_reported_once() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  subsets: [{name: v1}]\n";
    let report = load_str("dr.yaml", text);
    assert_eq!(
        lines(&report),
        ["dr.yaml:4: DestinationRule default/r: spec.host: required field \"host\" is missing"]
    );
}

#[test]
fn a_resource_reads_back_from_its_json() {
    let report = load_str("we.yaml", ENTRY);
    let value = report.resources[0].resource.to_value();
    assert_eq!(value["apiVersion"], "networking.istio.io/v1");
    assert_eq!(value["kind"], "WorkloadEntry");
    assert_eq!(value["metadata"]["namespace"], "bookinfo");
    let text = crate::emit::to_yaml(&value);
    let again = load_str("again.yaml", &text);
    assert!(again.problems.is_empty(), "{text}");
    assert_eq!(again.resources[0].resource.to_value(), value);
}
