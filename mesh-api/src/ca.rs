//! The certificate service between proxies and the mesh's CA: the messages
//! of `proto/istio/v1/auth/ca.proto` (Istio's, field for field) and the
//! names a gRPC client or server needs.

/// The gRPC path of `CreateCertificate`.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// The header carrying the caller's credential, as `Bearer <token>`.
pub const AUTHORIZATION: &str = "authorization";

/// A request for a workload certificate.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// A PKCS#10 certificate signing request, PEM.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// The lifetime asked for, in seconds; 0 for the CA's default.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Options of the request; none are read.
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<envoy_types::pb::google::protobuf::Struct>,
}

/// The certificate: the workload's, then each issuer up to the root, PEM.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_reflect::{DescriptorPool, DynamicMessage};

    use super::*;

    /// The Rust messages and the `.proto` agree on every field number.
    #[test]
    fn messages_read_as_the_proto_says() {
        let descriptors = crate::envoy::Descriptors::get();
        let pool: &DescriptorPool = descriptors.pool();
        let descriptor = pool
            .get_message_by_name("istio.v1.auth.IstioCertificateRequest")
            .unwrap();
        let request = IstioCertificateRequest {
            csr: "-----BEGIN CERTIFICATE REQUEST-----".into(),
            validity_duration: 3600,
            metadata: None,
        };
        let dynamic =
            DynamicMessage::decode(descriptor, request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            dynamic.get_field_by_name("csr").unwrap().as_str(),
            Some("-----BEGIN CERTIFICATE REQUEST-----")
        );
        assert_eq!(
            dynamic
                .get_field_by_name("validity_duration")
                .unwrap()
                .as_i64(),
            Some(3600)
        );
        let descriptor = pool
            .get_message_by_name("istio.v1.auth.IstioCertificateResponse")
            .unwrap();
        let response = IstioCertificateResponse {
            cert_chain: vec!["leaf".into(), "root".into()],
        };
        let dynamic =
            DynamicMessage::decode(descriptor, response.encode_to_vec().as_slice()).unwrap();
        assert_eq!(
            dynamic
                .get_field_by_name("cert_chain")
                .unwrap()
                .as_list()
                .unwrap()
                .len(),
            2
        );
    }
}
