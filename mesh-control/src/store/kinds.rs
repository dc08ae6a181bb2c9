//! The names a kind answers to, as kubectl and istioctl accept them: the kind
//! (`VirtualService`), its plural and singular (`virtualservices`,
//! `virtualservice`), its short names (`vs`), any of them followed by the
//! group (`virtualservices.networking.istio.io`), in any case.

use std::sync::LazyLock;

use mesh_api::load::Resource;

/// The names of one kind, read from its CRD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindName {
    pub kind: String,
    pub group: String,
    pub plural: String,
    pub singular: String,
    pub short_names: Vec<String>,
}

impl KindName {
    /// The kind `name` stands for, if any.
    pub fn find(name: &str) -> Option<&'static KindName> {
        KINDS.iter().find(|k| k.answers_to(name))
    }

    /// The names of a kind as spelled by [`Resource::kind`].
    pub fn of(kind: &str) -> &'static KindName {
        KINDS
            .iter()
            .find(|k| k.kind == kind)
            .expect("every resource kind has a CRD")
    }

    /// Whether `name` names this kind.
    pub fn answers_to(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let (base, group) = match name.split_once('.') {
            Some((base, group)) => (base, Some(group)),
            None => (name.as_str(), None),
        };
        if group.is_some_and(|g| g != self.group) {
            return false;
        }
        base == self.kind.to_ascii_lowercase()
            || base == self.plural
            || base == self.singular
            || self.short_names.iter().any(|s| s == base)
    }

    /// `virtualservice.networking.istio.io`, as kubectl names objects in its output.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.singular, self.group)
    }
}

static KINDS: LazyLock<Vec<KindName>> = LazyLock::new(|| {
    Resource::base_crds()
        .into_iter()
        .map(|crd| {
            let names = crd.spec.names;
            KindName {
                singular: names
                    .singular
                    .unwrap_or_else(|| names.kind.to_ascii_lowercase()),
                kind: names.kind,
                group: crd.spec.group,
                plural: names.plural,
                short_names: names.short_names.unwrap_or_default(),
            }
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_names_and_short_names_resolve() {
        for (name, kind) in [
            ("vs", "VirtualService"),
            ("VirtualService", "VirtualService"),
            ("virtualservices", "VirtualService"),
            ("virtualservices.networking.istio.io", "VirtualService"),
            ("dr", "DestinationRule"),
            ("gw", "Gateway"),
            ("se", "ServiceEntry"),
            ("we", "WorkloadEntry"),
            ("pa", "PeerAuthentication"),
            ("ap", "AuthorizationPolicy"),
            ("ra", "RequestAuthentication"),
            ("sidecars", "Sidecar"),
        ] {
            assert_eq!(
                KindName::find(name).map(|k| k.kind.as_str()),
                Some(kind),
                "{name}"
            );
        }
        assert!(KindName::find("pods").is_none());
        assert!(KindName::find("vs.security.istio.io").is_none());
        assert_eq!(
            KindName::of("DestinationRule").qualified(),
            "destinationrule.networking.istio.io"
        );
    }
}
