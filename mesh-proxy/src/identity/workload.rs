//! Whose certificate the proxy asks for: the SPIFFE id of its workload, as
//! Istio derives it from the bootstrap node.

use mesh_api::names::{NodeId, SpiffeId};

use crate::config::NodeInfo;

const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// `spiffe://<TRUST_DOMAIN>/ns/<namespace>/sa/<SERVICE_ACCOUNT>`: the
/// namespace from the node id (else the `NAMESPACE` metadata), the trust
/// domain and service account from the node metadata, with Istio's defaults.
pub fn spiffe_id(node: &NodeInfo) -> anyhow::Result<SpiffeId> {
    let namespace = match node.id.parse::<NodeId>() {
        Ok(id) => id.namespace,
        Err(err) => match metadata(node, "NAMESPACE") {
            Some(namespace) => namespace.to_owned(),
            None => anyhow::bail!(
                "the workload certificate needs the workload's namespace: {err}, \
                 and the node metadata has no NAMESPACE"
            ),
        },
    };
    let account = metadata(node, "SERVICE_ACCOUNT").unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    let domain = metadata(node, "TRUST_DOMAIN").unwrap_or(DEFAULT_TRUST_DOMAIN);
    Ok(SpiffeId::new(domain, &namespace, account))
}

fn metadata<'a>(node: &'a NodeInfo, key: &str) -> Option<&'a str> {
    node.metadata
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, metadata: &[(&str, &str)]) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..NodeInfo::default()
        }
    }

    #[test]
    fn namespace_from_the_node_id_and_defaults() {
        let id = spiffe_id(&node(
            "sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local",
            &[],
        ))
        .unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/default");
    }

    #[test]
    fn account_and_trust_domain_from_the_metadata() {
        let id = spiffe_id(&node(
            "sidecar~10.1.2.3~reviews-v1-abc.shop~shop.svc.cluster.local",
            &[
                ("SERVICE_ACCOUNT", "reviews"),
                ("TRUST_DOMAIN", "example.org"),
            ],
        ))
        .unwrap();
        assert_eq!(id.to_string(), "spiffe://example.org/ns/shop/sa/reviews");
    }

    #[test]
    fn without_a_namespace_there_is_no_identity() {
        assert_eq!(
            spiffe_id(&node("proxy", &[("NAMESPACE", "web")]))
                .unwrap()
                .to_string(),
            "spiffe://cluster.local/ns/web/sa/default"
        );
        let err = spiffe_id(&node("proxy", &[])).unwrap_err().to_string();
        assert!(err.contains("NAMESPACE"), "{err}");
    }
}
