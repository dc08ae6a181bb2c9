//! The kinds this mesh understands, as one enum.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde_json::{Map, Value};

use crate::IstioStatus;
use crate::validate::{Errors, Path, Validate};

/// API groups and the versions each serves. Every version reads into the same
/// types: Istio's versions differ only in maturity, not in shape.
pub const NETWORKING: (&str, &[&str]) = ("networking.istio.io", &["v1", "v1beta1", "v1alpha3"]);
pub const SECURITY: (&str, &[&str]) = ("security.istio.io", &["v1", "v1beta1"]);

/// Declares every kind once: the enum, its accessors, parsing and CRDs.
macro_rules! kinds {
    ($($kind:ident => $module:ident, $group:ident;)*) => {
        /// One Istio resource of a kind this mesh understands (boxed: the
        /// kinds differ a lot in size).
        #[derive(Clone, Debug)]
        pub enum Resource {
            $($kind(Box<crate::$module::$kind>),)*
        }

        impl Resource {
            /// The kind, as Kubernetes spells it.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Resource::$kind(_) => stringify!($kind),)*
                }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Resource::$kind(r) => &r.metadata,)*
                }
            }

            /// The semantic problems of the spec, with paths from the document root.
            pub fn validate_spec(&self, errs: &mut Errors) {
                match self {
                    $(Resource::$kind(r) => r.spec.validate(&Path::spec(), errs),)*
                }
            }

            /// The resource as a Kubernetes object (`apiVersion` is the
            /// group's first version, whichever version it was read from).
            pub fn to_value(&self) -> Value {
                let value = match self {
                    $(Resource::$kind(r) => serde_json::to_value(r),)*
                };
                value.expect("resources always serialize to JSON")
            }

            /// The CRD of every kind, as generated from the types (one version).
            pub fn base_crds() -> Vec<CustomResourceDefinition> {
                vec![$(crate::$module::$kind::crd(),)*]
            }
        }

        /// The group a kind belongs to, or `None` for a kind this mesh does not own.
        pub fn group_of(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
            match kind {
                $(stringify!($kind) => Some($group),)*
                _ => None,
            }
        }

        /// Builds a typed resource of `kind` from its parts. Errors carry the
        /// field path (from the document root) and the reason.
        pub(crate) fn build(
            kind: &str,
            metadata: ObjectMeta,
            spec: Value,
            status: Option<IstioStatus>,
        ) -> Result<Resource, Vec<(Path, String)>> {
            match kind {
                $(stringify!($kind) => {
                    let spec = super::typed(spec, Path::spec())?;
                    let mut resource = crate::$module::$kind::new("", spec);
                    resource.metadata = metadata;
                    resource.status = status;
                    Ok(Resource::$kind(Box::new(resource)))
                })*
                other => Err(vec![(Path::root().field("kind"), format!("unsupported kind {other:?}"))]),
            }
        }
    };
}

kinds! {
    DestinationRule => networking, NETWORKING;
    Gateway => networking, NETWORKING;
    ServiceEntry => networking, NETWORKING;
    Sidecar => networking, NETWORKING;
    VirtualService => networking, NETWORKING;
    WorkloadEntry => networking, NETWORKING;
    AuthorizationPolicy => security, SECURITY;
    PeerAuthentication => security, SECURITY;
    RequestAuthentication => security, SECURITY;
}

impl Resource {
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The namespace, `default` when the document names none (as `kubectl
    /// apply` does with the default context).
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or("default")
    }
}

/// Top-level fields of a Kubernetes object; anything else is a mistake.
pub(crate) const OBJECT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// Splits an object into its parts, refusing unknown top-level fields.
pub(crate) fn split_object(
    object: &Map<String, Value>,
) -> Result<(Value, Value, Option<Value>), (Path, String)> {
    if let Some(unknown) = object.keys().find(|k| !OBJECT_FIELDS.contains(&k.as_str())) {
        return Err((
            Path::root().field(unknown),
            format!("unknown field {unknown:?}"),
        ));
    }
    let metadata = object
        .get("metadata")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let spec = match object.get("spec") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(spec) => spec.clone(),
    };
    Ok((metadata, spec, object.get("status").cloned()))
}
