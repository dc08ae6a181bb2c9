//! The service of a MeshConfig extension provider (a tracing collector,
//! an external authorizer), found in the registry as istiod's
//! `LookupCluster` finds it: `namespace/hostname` picks the service of
//! that namespace; a bare host name must be in one namespace only. Calls
//! go to its outbound cluster, `outbound|<port>||<hostname>`.

use mesh_api::names::ClusterName;

use crate::model::MeshSnapshot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderService {
    pub hostname: String,
    pub cluster: String,
}

/// The provider's service and cluster, or why there is none.
pub fn lookup(
    service: &str,
    port: u16,
    snapshot: &MeshSnapshot,
) -> Result<ProviderService, String> {
    let (namespace, host) = match service.split_once('/') {
        Some((namespace, host)) => (Some(namespace), host),
        None => (None, service),
    };
    let mut matching = snapshot
        .services
        .iter()
        .filter(|s| s.hostname == host && namespace.is_none_or(|ns| s.namespace == ns));
    let Some(found) = matching.next() else {
        return Err(format!("service {service:?} is not in the registry"));
    };
    if matching.next().is_some() {
        return Err(format!(
            "service {service:?} is in several namespaces: write it as <namespace>/<hostname>"
        ));
    }
    Ok(ProviderService {
        hostname: found.hostname.clone(),
        cluster: ClusterName::outbound(port, "", &found.hostname).to_string(),
    })
}
