//! Transport sockets: `envoy.transport_sockets.tls` on clusters
//! (`UpstreamTlsContext`, chosen per endpoint by `transport_socket_matches`)
//! and on listener filter chains (`DownstreamTlsContext`), with certificates
//! and validation contexts inline or from secrets: static, over SDS, or the
//! workload certificate from the CA.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster as EnvoyCluster;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, Metadata, TransportSocket, data_source, transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    TlsCertificate, TlsParameters, UpstreamTlsContext, common_tls_context, secret,
    subject_alt_name_matcher::SanType, tls_parameters::TlsProtocol,
};
use prost::Message;

use super::listener::{decode, type_name};
use super::route::string_matcher;
use super::{At, Cluster, ConfigError, Endpoint};
use crate::identity::{DEFAULT_SECRET, Provided, ROOT_SECRET};
use crate::tls::{
    ClientSettings, ClientTls, Identity, Protocols, RotatingIdentity, SanKind, SanMatcher,
    ServerSettings, ServerTls, Validation,
};

const UPSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext";
const DOWNSTREAM: &str = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext";
const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";
/// Where an endpoint's metadata says which transport socket match it takes.
const MATCH_METADATA: &str = "envoy.transport_socket_match";

/// The secrets TLS contexts refer to by name: the bootstrap's
/// `static_resources.secrets`, with xDS also those received over SDS, and
/// last the workload certificate's `default` and `ROOTCA` from the CA (see
/// [`crate::identity`]), for the names nothing else defines.
#[derive(Debug, Default)]
pub(super) struct Secrets {
    table: BTreeMap<String, secret::Type>,
    provided: Provided,
    /// Names may still arrive over SDS, so a missing one is awaited, not wrong.
    dynamic: bool,
    /// Every name looked up, found or not, for the SDS subscription.
    requested: RefCell<BTreeSet<String>>,
    /// The error of the last lookup of a secret not received yet.
    awaited: RefCell<Option<ConfigError>>,
}

impl Secrets {
    pub(super) fn compile(secrets: &[Secret]) -> Result<Secrets, ConfigError> {
        let mut table = Secrets::default();
        table.add(secrets)?;
        Ok(table)
    }

    /// Secrets that come over SDS: looking up one not (yet) received is
    /// remembered as missing.
    pub(super) fn with_dynamic<'a>(
        statics: &[Secret],
        dynamic: impl IntoIterator<Item = &'a Secret>,
    ) -> Result<Secrets, ConfigError> {
        let mut table = Secrets::compile(statics)?;
        table.dynamic = true;
        table.add(dynamic)?;
        Ok(table)
    }

    /// Falls back on the certificate provider for `default` and `ROOTCA`.
    pub(super) fn with_provided(mut self, provided: Provided) -> Secrets {
        self.provided = provided;
        self
    }

    fn add<'a>(
        &mut self,
        secrets: impl IntoIterator<Item = &'a Secret>,
    ) -> Result<(), ConfigError> {
        for s in secrets {
            let at = At::resource("secret", &s.name);
            let Some(kind) = &s.r#type else {
                return Err(at.error("tls_certificate or validation_context is required"));
            };
            if self.table.insert(s.name.clone(), kind.clone()).is_some() {
                return Err(at.field("name").error("another secret has the same name"));
            }
        }
        Ok(())
    }

    /// Feeds every secret into `hasher`, for the fingerprints of what uses them.
    pub(super) fn hash(&self, hasher: &mut impl std::hash::Hasher) {
        for (name, kind) in &self.table {
            let secret = Secret {
                name: name.clone(),
                r#type: Some(kind.clone()),
            };
            hasher.write(&secret.encode_to_vec());
        }
        // The workload certificate is renewed in place: what changes the
        // contexts that use it is a new root, not a new leaf.
        if let Provided::Ready(mesh) = &self.provided {
            hasher.write_usize(Arc::as_ptr(&mesh.identity) as usize);
            let root = Secret {
                name: ROOT_SECRET.into(),
                r#type: Some(mesh.root.clone()),
            };
            hasher.write(&root.encode_to_vec());
        }
    }

    /// The names looked up so far.
    pub(super) fn requested(&self) -> BTreeSet<String> {
        self.requested.borrow().clone()
    }

    /// The names looked up but not found.
    pub(super) fn missing(&self) -> impl Iterator<Item = String> + '_ {
        self.requested()
            .into_iter()
            .filter(|name| !self.table.contains_key(name) && self.provided_secret(name).is_none())
    }

    fn get(&self, config: &SdsSecretConfig, at: &At) -> Result<Found<'_>, ConfigError> {
        let name = &config.name;
        self.requested.borrow_mut().insert(name.clone());
        if let Some(kind) = self.table.get(name) {
            return Ok(Found::Secret(kind));
        }
        if let Some(found) = self.provided_secret(name) {
            return Ok(found);
        }
        let provider_pending = self.provided == Provided::Pending
            && [DEFAULT_SECRET, ROOT_SECRET].contains(&name.as_str());
        let reason = if provider_pending {
            format!("secret {name:?} waits for the workload certificate from the CA")
        } else if self.dynamic {
            format!("secret {name:?} has not been received over SDS")
        } else {
            format!("secret {name:?} is not among static_resources.secrets")
        };
        let err = at.field("name").error(reason);
        if self.dynamic || provider_pending {
            *self.awaited.borrow_mut() = Some(err.clone());
        }
        Err(err)
    }

    /// `default` or `ROOTCA` from the certificate provider, once it has one.
    fn provided_secret(&self, name: &str) -> Option<Found<'_>> {
        let Provided::Ready(mesh) = &self.provided else {
            return None;
        };
        match name {
            DEFAULT_SECRET => Some(Found::Rotating(&mesh.identity)),
            ROOT_SECRET => Some(Found::Secret(&mesh.root)),
            _ => None,
        }
    }

    /// Whether `err` is only that a secret has not been received yet (over
    /// SDS or from the CA).
    pub(super) fn is_awaited(&self, err: &ConfigError) -> bool {
        self.awaited.borrow().as_ref() == Some(err)
    }
}

/// A secret found by name.
enum Found<'a> {
    Secret(&'a secret::Type),
    /// The workload certificate, renewed in place.
    Rotating(&'a Arc<RotatingIdentity>),
}

/// One of a cluster's `transport_socket_matches`.
#[derive(Debug)]
pub struct TransportSocketMatch {
    pub name: String,
    /// Every field must equal the endpoint's `envoy.transport_socket_match` metadata.
    pub criteria: BTreeMap<String, serde_json::Value>,
    /// `None`: plain TCP.
    pub tls: Option<Arc<ClientTls>>,
}

impl Cluster {
    /// The TLS config for connections to `endpoint`: the first transport
    /// socket match its metadata satisfies, else the cluster's own.
    pub fn tls_for(&self, endpoint: &Endpoint) -> Option<&Arc<ClientTls>> {
        let found = self.transport_socket_matches.iter().find(|m| {
            m.criteria
                .iter()
                .all(|(key, value)| endpoint.transport_socket_match.get(key) == Some(value))
        });
        match found {
            Some(m) => m.tls.as_ref(),
            None => self.tls.as_ref(),
        }
    }
}

/// A cluster's `transport_socket`; `None` for plain TCP.
pub(super) fn cluster_transport(
    c: &EnvoyCluster,
    secrets: &Secrets,
    at: &At,
) -> Result<Option<Arc<ClientTls>>, ConfigError> {
    match &c.transport_socket {
        Some(socket) => upstream(socket, secrets, &at.field("transport_socket")),
        None => Ok(None),
    }
}

pub(super) fn socket_matches(
    c: &EnvoyCluster,
    secrets: &Secrets,
    at: &At,
) -> Result<Vec<TransportSocketMatch>, ConfigError> {
    let at = at.field("transport_socket_matches");
    c.transport_socket_matches
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = at.index(i);
            let tls = match &m.transport_socket {
                Some(socket) => upstream(socket, secrets, &at.field("transport_socket"))?,
                None => None,
            };
            let criteria = m.r#match.as_ref().map(struct_json).unwrap_or_default();
            Ok(TransportSocketMatch {
                name: m.name.clone(),
                criteria,
                tls,
            })
        })
        .collect()
}

/// An endpoint's `envoy.transport_socket_match` filter metadata.
pub(super) fn endpoint_match(metadata: Option<&Metadata>) -> BTreeMap<String, serde_json::Value> {
    metadata
        .and_then(|m| m.filter_metadata.get(MATCH_METADATA))
        .map(struct_json)
        .unwrap_or_default()
}

fn struct_json(
    s: &envoy_types::pb::google::protobuf::Struct,
) -> BTreeMap<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(key, value)| (key.clone(), value_json(value)))
        .collect()
}

fn value_json(value: &envoy_types::pb::google::protobuf::Value) -> serde_json::Value {
    use envoy_types::pb::google::protobuf::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, Into::into)
        }
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::StructValue(s)) => {
            serde_json::Value::Object(struct_json(s).into_iter().collect())
        }
        Some(Kind::ListValue(l)) => l.values.iter().map(value_json).collect(),
    }
}

fn upstream(
    socket: &TransportSocket,
    secrets: &Secrets,
    at: &At,
) -> Result<Option<Arc<ClientTls>>, ConfigError> {
    let Some(any) = typed_config(socket, at)? else {
        return Ok(None);
    };
    let at = at.field("typed_config");
    let ctx: UpstreamTlsContext = match type_name(any) {
        UPSTREAM => decode(any, &at)?,
        RAW_BUFFER => return Ok(None),
        other => {
            return Err(at
                .field("@type")
                .unsupported(format_args!("transport socket {other}")));
        }
    };
    for (field, set) in [
        ("auto_host_sni", ctx.auto_host_sni),
        ("auto_sni_san_validation", ctx.auto_sni_san_validation),
        ("allow_renegotiation", ctx.allow_renegotiation),
    ] {
        if set {
            return Err(at.field(field).unsupported(field));
        }
    }
    let common = common(
        ctx.common_tls_context.as_ref(),
        secrets,
        &at.field("common_tls_context"),
    )?;
    let settings = ClientSettings {
        sni: Some(ctx.sni).filter(|s| !s.is_empty()),
        alpn: common.alpn,
        identity: common.identity,
        validation: common.validation,
        protocols: common.protocols,
    };
    ClientTls::new(settings)
        .map(|tls| Some(Arc::new(tls)))
        .map_err(|err| at.error(err))
}

/// A filter chain's `transport_socket`; `None` for plain TCP.
pub(super) fn downstream(
    socket: &TransportSocket,
    secrets: &Secrets,
    at: &At,
) -> Result<Option<ServerTls>, ConfigError> {
    let Some(any) = typed_config(socket, at)? else {
        return Ok(None);
    };
    let at = at.field("typed_config");
    let ctx: DownstreamTlsContext = match type_name(any) {
        DOWNSTREAM => decode(any, &at)?,
        RAW_BUFFER => return Ok(None),
        other => {
            return Err(at
                .field("@type")
                .unsupported(format_args!("transport socket {other}")));
        }
    };
    if ctx.require_sni.as_ref().is_some_and(|b| b.value) {
        return Err(at.field("require_sni").unsupported("require_sni"));
    }
    if ctx.ocsp_staple_policy != 0 {
        return Err(at.field("ocsp_staple_policy").unsupported("OCSP stapling"));
    }
    if ctx.session_ticket_keys_type.is_some() {
        return Err(at
            .field("session_ticket_keys")
            .unsupported("session ticket keys"));
    }
    let require_client_certificate = ctx
        .require_client_certificate
        .as_ref()
        .is_some_and(|b| b.value);
    let at_common = at.field("common_tls_context");
    let common = common(ctx.common_tls_context.as_ref(), secrets, &at_common)?;
    if require_client_certificate && common.validation.is_none() {
        return Err(at.field("require_client_certificate").error(
            "a validation context with trusted_ca is required to check client certificates",
        ));
    }
    let identity = common.identity.ok_or_else(|| {
        at_common
            .field("tls_certificates")
            .error("a server certificate is required")
    })?;
    let settings = ServerSettings {
        identity,
        alpn: common.alpn,
        validation: common.validation,
        require_client_certificate,
        protocols: common.protocols,
    };
    ServerTls::new(settings)
        .map(Some)
        .map_err(|err| at.error(err))
}

/// The typed config of a transport socket; `None` for `raw_buffer` without one.
fn typed_config<'a>(
    socket: &'a TransportSocket,
    at: &At,
) -> Result<Option<&'a envoy_types::pb::google::protobuf::Any>, ConfigError> {
    match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => Ok(Some(any)),
        None if socket.name == "envoy.transport_sockets.raw_buffer" => Ok(None),
        None => Err(at.field("typed_config").error("typed_config is required")),
    }
}

/// What both sides take from `CommonTlsContext`.
struct Common {
    identity: Option<Identity>,
    validation: Option<Validation>,
    alpn: Vec<String>,
    protocols: Protocols,
}

fn common(
    ctx: Option<&CommonTlsContext>,
    secrets: &Secrets,
    at: &At,
) -> Result<Common, ConfigError> {
    let Some(ctx) = ctx else {
        return Ok(Common {
            identity: None,
            validation: None,
            alpn: Vec::new(),
            protocols: Protocols::default(),
        });
    };
    #[allow(deprecated)]
    let refused = [
        (
            "tls_certificate_provider_instance",
            ctx.tls_certificate_provider_instance.is_some(),
        ),
        (
            "custom_tls_certificate_selector",
            ctx.custom_tls_certificate_selector.is_some(),
        ),
        (
            "tls_certificate_certificate_provider",
            ctx.tls_certificate_certificate_provider.is_some(),
        ),
        (
            "tls_certificate_certificate_provider_instance",
            ctx.tls_certificate_certificate_provider_instance.is_some(),
        ),
        ("custom_handshaker", ctx.custom_handshaker.is_some()),
        ("key_log", ctx.key_log.is_some()),
    ];
    at.refuse(&refused)?;
    let mut certificates = Vec::new();
    for (i, cert) in ctx.tls_certificates.iter().enumerate() {
        certificates.push(identity(cert, &at.field("tls_certificates").index(i))?);
    }
    for (i, sds) in ctx.tls_certificate_sds_secret_configs.iter().enumerate() {
        let at = at.field("tls_certificate_sds_secret_configs").index(i);
        match secrets.get(sds, &at)? {
            Found::Secret(secret::Type::TlsCertificate(cert)) => certificates.push(identity(
                cert,
                &at.field(&format!("secret {:?}", sds.name)),
            )?),
            Found::Rotating(rotating) => {
                certificates.push(Identity::Rotating(Arc::clone(rotating)));
            }
            _ => {
                return Err(at.field("name").error(format_args!(
                    "secret {:?} is not a tls_certificate",
                    sds.name
                )));
            }
        }
    }
    if certificates.len() > 1 {
        return Err(at
            .field("tls_certificates")
            .unsupported("more than one certificate"));
    }
    Ok(Common {
        identity: certificates.pop(),
        validation: validation_context(ctx, secrets, at)?,
        alpn: ctx.alpn_protocols.clone(),
        protocols: protocols(ctx.tls_params.as_ref(), &at.field("tls_params"))?,
    })
}

fn validation_context(
    ctx: &CommonTlsContext,
    secrets: &Secrets,
    at: &At,
) -> Result<Option<Validation>, ConfigError> {
    use common_tls_context::ValidationContextType as V;
    let sds_context = |sds: &SdsSecretConfig, at: &At| match secrets.get(sds, at)? {
        Found::Secret(secret::Type::ValidationContext(v)) => Ok(v.clone()),
        _ => Err(at.field("name").error(format_args!(
            "secret {:?} is not a validation_context",
            sds.name
        ))),
    };
    let (context, at) = match &ctx.validation_context_type {
        None => return Ok(None),
        Some(V::ValidationContext(v)) => (v.clone(), at.field("validation_context")),
        Some(V::ValidationContextSdsSecretConfig(sds)) => {
            let at = at.field("validation_context_sds_secret_config");
            (sds_context(sds, &at)?, at)
        }
        Some(V::CombinedValidationContext(combined)) => {
            let at = at.field("combined_validation_context");
            let mut merged = combined
                .default_validation_context
                .clone()
                .unwrap_or_default();
            if let Some(sds) = &combined.validation_context_sds_secret_config {
                // Envoy merges the secret into the default (protobuf MergeFrom).
                let dynamic = sds_context(sds, &at.field("validation_context_sds_secret_config"))?;
                merged
                    .merge(dynamic.encode_to_vec().as_slice())
                    .map_err(|err| at.error(err))?;
            }
            (merged, at)
        }
        Some(_) => {
            return Err(at
                .field("validation_context_certificate_provider")
                .unsupported("certificate providers"));
        }
    };
    validation(&context, &at)
}

fn validation(
    v: &CertificateValidationContext,
    at: &At,
) -> Result<Option<Validation>, ConfigError> {
    #[allow(deprecated)]
    let refused = [
        (
            "ca_certificate_provider_instance",
            v.ca_certificate_provider_instance.is_some(),
        ),
        ("system_root_certs", v.system_root_certs.is_some()),
        ("watched_directory", v.watched_directory.is_some()),
        (
            "verify_certificate_spki",
            !v.verify_certificate_spki.is_empty(),
        ),
        (
            "verify_certificate_hash",
            !v.verify_certificate_hash.is_empty(),
        ),
        (
            "require_signed_certificate_timestamp",
            v.require_signed_certificate_timestamp
                .as_ref()
                .is_some_and(|b| b.value),
        ),
        ("crl", v.crl.is_some()),
        ("allow_expired_certificate", v.allow_expired_certificate),
        ("trust_chain_verification", v.trust_chain_verification != 0),
        (
            "custom_validator_config",
            v.custom_validator_config.is_some(),
        ),
        ("max_verify_depth", v.max_verify_depth.is_some()),
    ];
    at.refuse(&refused)?;
    let mut sans = Vec::new();
    for (i, m) in v.match_typed_subject_alt_names.iter().enumerate() {
        let at = at.field("match_typed_subject_alt_names").index(i);
        let kind = match SanType::try_from(m.san_type) {
            Ok(SanType::Dns) => SanKind::Dns,
            Ok(SanType::Uri) => SanKind::Uri,
            _ => {
                return Err(at
                    .field("san_type")
                    .unsupported("SAN types other than DNS and URI"));
            }
        };
        let matcher = m
            .matcher
            .as_ref()
            .ok_or_else(|| at.field("matcher").error("a matcher is required"))?;
        sans.push(SanMatcher {
            kind,
            value: string_matcher(matcher, &at.field("matcher"))?,
        });
    }
    #[allow(deprecated)]
    for (i, m) in v.match_subject_alt_names.iter().enumerate() {
        let at = at.field("match_subject_alt_names").index(i);
        sans.push(SanMatcher {
            kind: SanKind::Any,
            value: string_matcher(m, &at)?,
        });
    }
    let Some(ca) = &v.trusted_ca else {
        if sans.is_empty() {
            return Ok(None);
        }
        return Err(at
            .field("trusted_ca")
            .error("matching subject alt names needs a trusted_ca"));
    };
    let at = at.field("trusted_ca");
    let pem = data_source(ca, &at)?;
    Validation::new(&pem, sans)
        .map(Some)
        .map_err(|err| at.error(err))
}

fn identity(cert: &TlsCertificate, at: &At) -> Result<Identity, ConfigError> {
    let refused = [
        ("watched_directory", cert.watched_directory.is_some()),
        ("private_key_provider", cert.private_key_provider.is_some()),
        ("password", cert.password.is_some()),
        ("pkcs12", cert.pkcs12.is_some()),
        ("ocsp_staple", cert.ocsp_staple.is_some()),
    ];
    at.refuse(&refused)?;
    let chain_at = at.field("certificate_chain");
    let chain = cert
        .certificate_chain
        .as_ref()
        .ok_or_else(|| chain_at.error("certificate_chain is required"))?;
    let chain = crate::tls::certificates(&data_source(chain, &chain_at)?)
        .map_err(|err| chain_at.error(err))?;
    let key_at = at.field("private_key");
    let key = cert
        .private_key
        .as_ref()
        .ok_or_else(|| key_at.error("private_key is required"))?;
    let key =
        crate::tls::private_key(&data_source(key, &key_at)?).map_err(|err| key_at.error(err))?;
    Ok(Identity::Fixed { chain, key })
}

/// The bytes of a `DataSource`: a file, inline, or an environment variable.
pub(super) fn data_source(source: &DataSource, at: &At) -> Result<Vec<u8>, ConfigError> {
    use data_source::Specifier;
    match &source.specifier {
        Some(Specifier::Filename(path)) => std::fs::read(path).map_err(|err| {
            at.field("filename")
                .error(format_args!("cannot read {path:?}: {err}"))
        }),
        Some(Specifier::InlineBytes(bytes)) => Ok(bytes.clone()),
        Some(Specifier::InlineString(text)) => Ok(text.clone().into_bytes()),
        Some(Specifier::EnvironmentVariable(name)) => {
            std::env::var(name).map(String::into_bytes).map_err(|_| {
                at.field("environment_variable")
                    .error(format_args!("{name} is not set"))
            })
        }
        None => Err(at.error("filename, inline_bytes or inline_string is required")),
    }
}

/// `tls_params`: versions (rustls has TLS 1.2 and 1.3 only) and TLS 1.2
/// cipher suites by their OpenSSL names.
fn protocols(params: Option<&TlsParameters>, at: &At) -> Result<Protocols, ConfigError> {
    let Some(params) = params else {
        return Ok(Protocols::default());
    };
    for (field, set) in [
        ("ecdh_curves", !params.ecdh_curves.is_empty()),
        (
            "signature_algorithms",
            !params.signature_algorithms.is_empty(),
        ),
        (
            "compliance_policies",
            !params.compliance_policies.is_empty(),
        ),
    ] {
        if set {
            return Err(at.field(field).unsupported(field));
        }
    }
    let version = |v: i32| TlsProtocol::try_from(v).unwrap_or(TlsProtocol::TlsAuto);
    let (min, max) = (
        version(params.tls_minimum_protocol_version),
        version(params.tls_maximum_protocol_version),
    );
    if matches!(max, TlsProtocol::TlSv10 | TlsProtocol::TlSv11) {
        return Err(at
            .field("tls_maximum_protocol_version")
            .unsupported("TLS versions before 1.2"));
    }
    Ok(Protocols {
        tls12: min != TlsProtocol::TlSv13,
        tls13: max != TlsProtocol::TlSv12,
        cipher_suites: params.cipher_suites.clone(),
    })
}

#[cfg(test)]
mod tests;
