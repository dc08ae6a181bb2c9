//! Envoy bootstrap files (`static_resources`, `admin`), YAML or JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;

use super::tls::Secrets;
use super::{At, Config, ConfigError, cluster, listener};

/// Reads a bootstrap file; errors name the file and, where known, the line.
pub fn read_bootstrap(path: &Path) -> anyhow::Result<Bootstrap> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read bootstrap {}: {err}", path.display()))?;
    let (documents, error) = mesh_api::load::parse_documents(&text);
    if let Some(error) = error {
        anyhow::bail!("{}:{}: {}", path.display(), error.line, error.reason);
    }
    let [document] = documents.as_slice() else {
        anyhow::bail!(
            "{}: a bootstrap file holds exactly one document",
            path.display()
        );
    };
    mesh_api::envoy::from_json(&document.value)
        .map_err(|err| anyhow::anyhow!("{}: bootstrap: {err}", path.display()))
}

impl Config {
    /// Compiles the static resources of a bootstrap.
    pub fn from_bootstrap(bootstrap: &Bootstrap) -> Result<Config, ConfigError> {
        let resources = bootstrap.static_resources.clone().unwrap_or_default();
        let secrets = Secrets::compile(&resources.secrets)?;
        let mut clusters = BTreeMap::new();
        for cluster in &resources.clusters {
            let compiled = cluster::compile(cluster, &secrets)?;
            let at = At::resource("cluster", &cluster.name);
            if clusters
                .insert(compiled.name.clone(), Arc::new(compiled))
                .is_some()
            {
                return Err(at.field("name").error("another cluster has the same name"));
            }
        }
        let mut listeners = Vec::with_capacity(resources.listeners.len());
        for listener in &resources.listeners {
            let compiled = listener::compile(listener, &secrets)?;
            listener::check_clusters(&compiled, &clusters)?;
            listeners.push(compiled);
        }
        let admin = match bootstrap.admin.as_ref().and_then(|a| a.address.as_ref()) {
            Some(address) => Some(listener::socket_address(
                address,
                &At::resource("admin", "admin").field("address"),
            )?),
            None => None,
        };
        Ok(Config {
            listeners,
            clusters,
            admin,
            node: Arc::new(super::istio::node(bootstrap.node.as_ref())),
        })
    }
}
