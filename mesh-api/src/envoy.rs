//! Envoy configuration as JSON or YAML, in protobuf's JSON mapping, read into
//! and written from the `envoy-types` structs.
//!
//! `Any` fields (`typed_config`) are resolved by their `@type` with a
//! descriptor pool of every Envoy proto, compiled at build time (`build.rs`).
//! Field names may be written `snake_case` or `lowerCamelCase`, as Envoy
//! accepts; unknown fields are errors that name the field.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use prost::Message;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use serde_json::Value;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The decoded pool, while anyone holds it: a proxy needs it only while it
/// reads config, so it is not kept for good. Callers that convert often hold
/// a [`Descriptors`] to keep it decoded.
static POOL: Mutex<Weak<DescriptorPool>> = Mutex::new(Weak::new());

/// Keeps the descriptor pool decoded while it lives.
#[derive(Debug, Clone)]
pub struct Descriptors(Arc<DescriptorPool>);

impl Descriptors {
    /// The pool of every Envoy message, decoded now unless someone holds it.
    pub fn get() -> Descriptors {
        let mut cached = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = cached.upgrade() {
            return Descriptors(pool);
        }
        let pool = Arc::new(
            DescriptorPool::decode(DESCRIPTORS).expect("the embedded descriptor set is valid"),
        );
        *cached = Arc::downgrade(&pool);
        Descriptors(pool)
    }

    pub fn pool(&self) -> &DescriptorPool {
        &self.0
    }
}

/// Why Envoy JSON could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyJsonError {
    #[error("unknown message type {0}")]
    UnknownType(String),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Decode(#[from] prost::DecodeError),
}

/// Reads `value` (protobuf JSON) as the Envoy message `M`.
pub fn from_json<M: Message + Default + prost::Name>(value: &Value) -> Result<M, EnvoyJsonError> {
    let dynamic = dynamic_from_json(&M::full_name(), value)?;
    Ok(M::decode(dynamic.encode_to_vec().as_slice())?)
}

/// Writes the Envoy message `M` as protobuf JSON (`Any` expanded, proto field names).
pub fn to_json<M: Message + prost::Name>(message: &M) -> Result<Value, EnvoyJsonError> {
    let descriptor = message_descriptor(&M::full_name())?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    Ok(dynamic.serialize_with_options(serde_json::value::Serializer, &options)?)
}

fn dynamic_from_json(type_name: &str, value: &Value) -> Result<DynamicMessage, EnvoyJsonError> {
    let descriptor = message_descriptor(type_name)?;
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    Ok(DynamicMessage::deserialize_with_options(
        descriptor, value, &options,
    )?)
}

fn message_descriptor(type_name: &str) -> Result<prost_reflect::MessageDescriptor, EnvoyJsonError> {
    Descriptors::get()
        .pool()
        .get_message_by_name(type_name)
        .ok_or_else(|| EnvoyJsonError::UnknownType(type_name.to_owned()))
}

#[cfg(test)]
mod tests;
