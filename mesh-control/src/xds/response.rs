//! A `DiscoveryResponse` as gRPC sends it, without encoding the resources
//! again: the length prefix and the small fields are written per response,
//! and the resources follow as the shared bytes of their layers.
//! Protobuf fields may come in any order, so the bytes are a valid
//! `DiscoveryResponse` whatever order the fields are written in.

use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::string;

use super::XdsType;
use super::resources::Set;

const VERSION_INFO: u32 = 1;
const TYPE_URL: u32 = 4;
const NONCE: u32 = 5;

/// One response to one proxy.
#[derive(Debug, Clone)]
pub struct Response {
    pub xds_type: XdsType,
    pub version: String,
    pub nonce: String,
    pub resources: Set,
}

impl Response {
    /// The response as one gRPC message (compression flag, length,
    /// message) in pieces: the head, then the resources as they are.
    pub fn frames(&self) -> Vec<Bytes> {
        let type_url = self.xds_type.type_url().to_owned();
        let small = string::encoded_len(VERSION_INFO, &self.version)
            + string::encoded_len(TYPE_URL, &type_url)
            + string::encoded_len(NONCE, &self.nonce);
        let length = small + self.resources.fields_len();
        let mut head = BytesMut::with_capacity(5 + small);
        head.put_u8(0);
        // Config of gigabytes is not served by any xDS client either.
        head.put_u32(u32::try_from(length).unwrap_or(u32::MAX));
        string::encode(VERSION_INFO, &self.version, &mut head);
        string::encode(TYPE_URL, &type_url, &mut head);
        string::encode(NONCE, &self.nonce, &mut head);
        std::iter::once(head.freeze())
            .chain(self.resources.fields().cloned())
            .collect()
    }

    /// The bytes of [`Response::frames`], read back as a `DiscoveryResponse`.
    #[cfg(test)]
    pub fn decode(&self) -> envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
        use prost::Message;
        let bytes: Vec<u8> = self.frames().concat();
        let length = u32::from_be_bytes(bytes[1..5].try_into().unwrap()) as usize;
        assert_eq!(
            length,
            bytes.len() - 5,
            "the length prefix counts the message"
        );
        Message::decode(&bytes[5..]).unwrap()
    }
}
