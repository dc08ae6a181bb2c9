//! The applied Istio config, as the control plane's config API lists it
//! (`GET /api/v1/config/KIND`, a Kubernetes `List`), with the problems its
//! config sources report (`GET /debug/config_problems`): files left out as
//! invalid, resources defined twice.

use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinSet;

use super::fetch::Fetcher;

/// What `/api/config` answers.
#[derive(Debug, Default, Serialize)]
pub struct ConfigView {
    pub control_plane: String,
    /// Why the config could not be read, when it could not.
    pub error: Option<String>,
    /// By kind, namespace and name.
    pub resources: Vec<Resource>,
    /// Every problem the control plane reports.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Serialize)]
pub struct Resource {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The hosts it applies to, from `spec.hosts`, `spec.host` or the
    /// servers of a Gateway.
    pub hosts: Vec<String>,
    /// The problems that name this resource.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// `file:line: Kind ns/name: field: reason`.
    pub message: String,
    /// `Kind ns/name`, when known.
    pub subject: Option<String>,
}

/// Reads the config of one control plane.
#[derive(Debug)]
pub struct Reader {
    base: String,
    fetcher: Fetcher,
    kinds: Vec<String>,
}

impl Reader {
    /// `control_plane` as `--control-plane` takes it: a URL, or `host:port`.
    pub fn new(control_plane: &str, fetcher: Fetcher) -> Reader {
        let base = control_plane.trim_end_matches('/');
        let base = match base.contains("://") {
            true => base.to_owned(),
            false => format!("http://{base}"),
        };
        let kinds = mesh_api::load::Resource::base_crds()
            .into_iter()
            .map(|crd| crd.spec.names.kind)
            .collect();
        Reader {
            base,
            fetcher,
            kinds,
        }
    }

    pub async fn read(&self) -> ConfigView {
        let mut view = ConfigView {
            control_plane: self.base.clone(),
            ..ConfigView::default()
        };
        let mut lists = JoinSet::new();
        for kind in &self.kinds {
            let url = format!("{}/api/v1/config/{kind}?output=json", self.base);
            let fetcher = self.fetcher.clone();
            lists.spawn(async move { fetcher.get(&url).await.and_then(|body| items(&body)) });
        }
        let problems_url = format!("{}/debug/config_problems", self.base);
        match self.fetcher.get(&problems_url).await {
            Ok(body) => view.problems = problems(&body),
            Err(err) => view.error = Some(format!("{err:#}")),
        }
        for list in lists.join_all().await {
            match list {
                Ok(items) => view.resources.extend(items),
                Err(err) => view.error = Some(format!("{err:#}")),
            }
        }
        view.resources.sort_by(|a, b| {
            (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name))
        });
        for resource in &mut view.resources {
            let subject = format!("{} {}/{}", resource.kind, resource.namespace, resource.name);
            resource.problems = view
                .problems
                .iter()
                .filter(|p| p.subject.as_deref() == Some(subject.as_str()))
                .map(|p| p.message.clone())
                .collect();
        }
        view
    }
}

/// The resources of a Kubernetes `List`.
fn items(body: &str) -> anyhow::Result<Vec<Resource>> {
    let list: Value = serde_json::from_str(body)
        .map_err(|err| anyhow::anyhow!("the config API answered with bad JSON: {err}"))?;
    let items = list["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(items.iter().map(resource).collect())
}

fn resource(object: &Value) -> Resource {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let spec = &object["spec"];
    let servers = spec["servers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let hosts = std::iter::once(&spec["hosts"])
        .chain(servers.iter().map(|server| &server["hosts"]))
        .filter_map(Value::as_array)
        .flatten()
        .chain(std::iter::once(&spec["host"]))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    Resource {
        kind: text(&object["kind"]),
        namespace: text(&object["metadata"]["namespace"]),
        name: text(&object["metadata"]["name"]),
        hosts,
        problems: Vec::new(),
    }
}

/// The problems `/debug/config_problems` lists.
fn problems(body: &str) -> Vec<Problem> {
    let list: Vec<Value> = serde_json::from_str(body).unwrap_or_default();
    list.iter()
        .map(|problem| Problem {
            message: problem["message"].as_str().unwrap_or_default().to_owned(),
            subject: problem["subject"].as_str().map(str::to_owned),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_become_resources_with_their_hosts() {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {"kind": "VirtualService", "metadata": {"name": "reviews", "namespace": "default"},
             "spec": {"hosts": ["reviews"], "http": []}},
            {"kind": "DestinationRule", "metadata": {"name": "reviews", "namespace": "default"},
             "spec": {"host": "reviews", "subsets": []}},
            {"kind": "Gateway", "metadata": {"name": "bookinfo-gateway", "namespace": "default"},
             "spec": {"servers": [{"hosts": ["*"]}, {"hosts": ["bookinfo.example.com"]}]}},
        ]});
        let resources = items(&list.to_string()).unwrap();
        let hosts: Vec<(&str, Vec<String>)> = resources
            .iter()
            .map(|r| (r.kind.as_str(), r.hosts.clone()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("VirtualService", vec!["reviews".to_owned()]),
                ("DestinationRule", vec!["reviews".to_owned()]),
                (
                    "Gateway",
                    vec!["*".to_owned(), "bookinfo.example.com".to_owned()]
                ),
            ]
        );
        assert_eq!(resources[2].name, "bookinfo-gateway");
        assert!(items("not json").is_err());
    }

    #[test]
    fn problems_keep_message_and_subject() {
        let body = r#"[{"file": "a.yaml", "line": 3, "subject": "VirtualService default/reviews",
                        "path": "spec.http[0]", "reason": "bad", "message": "a.yaml:3: VirtualService default/reviews: spec.http[0]: bad"},
                       {"file": "b.yaml", "line": 0, "subject": null, "path": null, "reason": "cannot read", "message": "b.yaml:0: cannot read"}]"#;
        let problems = problems(body);
        assert_eq!(problems.len(), 2);
        assert_eq!(
            problems[0].subject.as_deref(),
            Some("VirtualService default/reviews")
        );
        assert_eq!(problems[1].subject, None);
        assert_eq!(problems[1].message, "b.yaml:0: cannot read");
    }
}
