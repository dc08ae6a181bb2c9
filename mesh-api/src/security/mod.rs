//! `security.istio.io`: mTLS, authorization and end-user authentication.

pub mod authorization_policy;
pub mod peer_authentication;
pub mod request_authentication;
