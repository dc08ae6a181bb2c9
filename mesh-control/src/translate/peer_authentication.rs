//! PeerAuthentication: how a workload's port accepts connections — mTLS
//! only (STRICT), mTLS or plain text told apart by TLS inspection
//! (PERMISSIVE, the default), or plain text only (DISABLE).
//!
//! Precedence, as Istio's: a policy selecting the workload (in its
//! namespace; `portLevelMtls` first, then its `mtls`), then the namespace's
//! policy without a selector, then the mesh's (the root namespace's without
//! a selector); `UNSET` passes to the next level. When several policies
//! stand at one level, the first in config order (namespace, name) wins;
//! Istio takes the oldest, which the local mesh does not record.
//!
//! The mode shapes both ends: a server's inbound chains (see
//! [`super::listener`]), and a client's choice of mTLS, since an endpoint
//! whose port is DISABLE is not marked `tlsMode: istio` (see
//! [`super::endpoint`]), so auto mTLS sends it plain text.

use std::collections::BTreeMap;

use mesh_api::security::peer_authentication::{MtlsMode, PeerAuthenticationSpec};

use super::context::Config;

/// The policies of a snapshot, in config order.
#[derive(Debug, Default, Clone)]
pub struct PeerAuthentications<'a> {
    policies: Vec<Config<'a, PeerAuthenticationSpec>>,
    root_namespace: &'a str,
}

impl<'a> PeerAuthentications<'a> {
    pub fn new(root_namespace: &'a str) -> PeerAuthentications<'a> {
        PeerAuthentications {
            policies: Vec::new(),
            root_namespace,
        }
    }

    pub fn push(&mut self, policy: Config<'a, PeerAuthenticationSpec>) {
        self.policies.push(policy);
    }

    /// The mode of `port` of a workload in `namespace` with `labels`:
    /// STRICT, PERMISSIVE or DISABLE, never UNSET.
    pub fn mode(&self, namespace: &str, labels: &BTreeMap<String, String>, port: u16) -> MtlsMode {
        let workload = self.policies.iter().find(|p| {
            p.namespace == namespace
                && p.spec
                    .selector
                    .as_ref()
                    .is_some_and(|selector| selector.matches(labels))
        });
        let wide = |ns: &str| {
            self.policies
                .iter()
                .find(|p| p.namespace == ns && p.spec.selector.is_none())
        };
        workload
            .and_then(|p| p.spec.port_mode(u32::from(port)))
            .or_else(|| wide(namespace).and_then(|p| whole(p.spec)))
            .or_else(|| wide(self.root_namespace).and_then(|p| whole(p.spec)))
            .unwrap_or(MtlsMode::Permissive)
    }
}

/// A policy's mode for every port (`portLevelMtls` needs a selector).
fn whole(spec: &PeerAuthenticationSpec) -> Option<MtlsMode> {
    spec.mtls
        .as_ref()
        .and_then(|m| m.mode)
        .filter(|mode| *mode != MtlsMode::Unset)
}

#[cfg(test)]
mod tests {
    use mesh_api::security::peer_authentication::MutualTls;
    use mesh_api::selector::WorkloadSelector;

    use super::*;

    fn spec(
        mode: Option<MtlsMode>,
        selector: Option<&str>,
        ports: &[(u32, MtlsMode)],
    ) -> PeerAuthenticationSpec {
        PeerAuthenticationSpec {
            selector: selector.map(|app| WorkloadSelector {
                match_labels: [("app".to_owned(), app.to_owned())].into(),
            }),
            mtls: mode.map(|mode| MutualTls { mode: Some(mode) }),
            port_level_mtls: ports
                .iter()
                .map(|(port, mode)| (*port, MutualTls { mode: Some(*mode) }))
                .collect(),
        }
    }

    fn labels(app: &str) -> BTreeMap<String, String> {
        [("app".to_owned(), app.to_owned())].into()
    }

    #[test]
    fn workload_then_namespace_then_mesh_with_unset_inheriting() {
        let mesh = spec(Some(MtlsMode::Strict), None, &[]);
        let namespace = spec(Some(MtlsMode::Permissive), None, &[]);
        let workload = spec(
            Some(MtlsMode::Unset),
            Some("reviews"),
            &[(9080, MtlsMode::Disable)],
        );
        let foreign_selector = spec(Some(MtlsMode::Disable), Some("reviews"), &[]);
        let mut policies = PeerAuthentications::new("mesh-system");
        assert_eq!(
            policies.mode("default", &labels("reviews"), 9080),
            MtlsMode::Permissive,
            "the default"
        );
        policies.push(Config {
            namespace: "mesh-system",
            name: "default",
            spec: &mesh,
        });
        assert_eq!(
            policies.mode("default", &labels("reviews"), 9080),
            MtlsMode::Strict
        );
        policies.push(Config {
            namespace: "default",
            name: "default",
            spec: &namespace,
        });
        policies.push(Config {
            namespace: "default",
            name: "reviews",
            spec: &workload,
        });
        policies.push(Config {
            namespace: "other",
            name: "reviews",
            spec: &foreign_selector,
        });
        // The workload's port-level DISABLE beats the namespace's PERMISSIVE.
        assert_eq!(
            policies.mode("default", &labels("reviews"), 9080),
            MtlsMode::Disable
        );
        // Its other ports inherit (UNSET) from the namespace.
        assert_eq!(
            policies.mode("default", &labels("reviews"), 9443),
            MtlsMode::Permissive
        );
        // Another workload of the namespace: the namespace's.
        assert_eq!(
            policies.mode("default", &labels("ratings"), 9080),
            MtlsMode::Permissive
        );
        // Another namespace without a policy: the mesh's; a selector
        // elsewhere does not reach it.
        assert_eq!(
            policies.mode("shop", &labels("reviews"), 9080),
            MtlsMode::Strict
        );
        assert_eq!(
            policies.mode("other", &labels("ratings"), 9080),
            MtlsMode::Strict
        );
        assert_eq!(
            policies.mode("other", &labels("reviews"), 9080),
            MtlsMode::Disable
        );
    }

    #[test]
    fn port_level_modes_need_a_selector() {
        let namespace = spec(None, None, &[(9080, MtlsMode::Strict)]);
        let mut policies = PeerAuthentications::new("mesh-system");
        policies.push(Config {
            namespace: "default",
            name: "default",
            spec: &namespace,
        });
        assert_eq!(
            policies.mode("default", &labels("reviews"), 9080),
            MtlsMode::Permissive
        );
    }
}
