//! The `status` every Istio resource may carry. Istio writes conditions and
//! validation messages there; the mesh keeps it as opaque JSON.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct IstioStatus(pub serde_json::Map<String, serde_json::Value>);

impl JsonSchema for IstioStatus {
    fn schema_name() -> Cow<'static, str> {
        "IstioStatus".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}
