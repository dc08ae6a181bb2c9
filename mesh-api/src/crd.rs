//! CustomResourceDefinitions for every kind, generated from the Rust types.
//!
//! Each CRD serves every apiVersion Istio serves for its group, all with the
//! same schema (the versions differ only in maturity), and stores `v1`.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

use crate::load::{Resource, group_of};

/// The label every object the mesh installs carries.
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "mesh");

/// The CRDs of every kind this mesh understands, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds: Vec<_> = Resource::base_crds()
        .into_iter()
        .map(serve_all_versions)
        .collect();
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

fn serve_all_versions(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let (_, versions) =
        group_of(&crd.spec.names.kind).expect("every generated CRD is a known kind");
    let stored = crd.spec.versions[0].clone();
    crd.spec.versions = versions
        .iter()
        .map(|name| {
            let mut version = stored.clone();
            version.name = (*name).to_owned();
            version.storage = version.name == stored.name;
            version.served = true;
            version
        })
        .collect();
    let labels = crd.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(PART_OF.0.to_owned(), PART_OF.1.to_owned());
    crd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_serves_all_versions_and_stores_v1() {
        let crds = crds();
        assert_eq!(crds.len(), Resource::base_crds().len());
        for crd in &crds {
            let stored: Vec<_> = crd
                .spec
                .versions
                .iter()
                .filter(|v| v.storage)
                .map(|v| v.name.as_str())
                .collect();
            assert_eq!(stored, ["v1"], "{:?}", crd.metadata.name);
            assert!(crd.spec.versions.len() >= 2);
            assert!(
                crd.spec
                    .versions
                    .iter()
                    .all(|v| v.served && v.schema.is_some())
            );
        }
    }
}
