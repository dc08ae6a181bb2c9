//! Envoy bootstrap files (`static_resources`, `admin`), YAML or JSON.

use std::path::Path;

use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;

use super::resources::{self, Sources};
use super::tls::Secrets;
use super::{Config, ConfigError};

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
        let sources = Sources::bootstrap(Secrets::compile(&resources.secrets)?);
        let clusters: Vec<_> = resources.clusters.iter().collect();
        let listeners: Vec<_> = resources.listeners.iter().collect();
        resources::compile(bootstrap, &clusters, &listeners, &sources)
    }
}
