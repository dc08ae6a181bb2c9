//! # The validation rules
//!
//! Every rule records the field's path and an operator-readable reason; the
//! loader turns that into `file:line: Kind namespace/name: field.path: reason`.
//!
//! ## When parsing (every kind)
//! - A field the kind does not have is an error (`unknown field "timout"; did
//!   you mean "timeout"?`), at any depth, as Istio's structural schema says.
//! - Values must have the field's type; enum values must be spelled as Istio
//!   spells them (`ROUND_ROBIN`, `ISTIO_MUTUAL`); required fields must be there.
//! - Durations are `1.5s`, `200ms`, `1m30s` (protobuf or Go form), never negative.
//! - `apiVersion` must be one the group serves: `networking.istio.io/{v1,
//!   v1beta1, v1alpha3}`, `security.istio.io/{v1, v1beta1}`. All of them read
//!   into the same types.
//! - The only top-level fields are `apiVersion`, `kind`, `metadata`, `spec`
//!   and `status`.
//! - Kinds of other groups (Service, Deployment, Gateway API's Gateway, ...)
//!   are passed over without error.
//!
//! ## Metadata (every kind)
//! - `metadata.name` is required and must be a lower-case DNS subdomain.
//! - `metadata.namespace`, when given, must be a lower-case DNS label.
//!
//! ## Shared checks (the functions of [`crate::validate`])
//! - Hosts: DNS names whose first label alone may carry a leading `*`.
//! - Regular expressions: valid RE2 (the `regex` crate speaks the same dialect).
//! - Ports 1–65535; percentages 0–100; timeouts at least 1ms with millisecond
//!   precision; header names RFC 7230 tokens; label keys and values as
//!   Kubernetes defines them; a protobuf `oneof` has at most one field set.
//!
//! ## Per kind
//! Each kind's module opens with the full list of its rules:
//! - [`VirtualService`](crate::networking::virtual_service)
//! - [`DestinationRule`](crate::networking::destination_rule)
//! - [`Gateway`](crate::networking::gateway)
//! - [`ServiceEntry`](crate::networking::service_entry)
//! - [`WorkloadEntry`](crate::networking::workload_entry)
//! - [`Sidecar`](crate::networking::sidecar)
//! - [`PeerAuthentication`](crate::security::peer_authentication)
//! - [`AuthorizationPolicy`](crate::security::authorization_policy)
//! - [`RequestAuthentication`](crate::security::request_authentication)
//!
//! ## Where the mesh is stricter than Istio
//! - VirtualService route weights: with more than one destination every
//!   weight is written and they add up to 100 (a lone destination may omit its
//!   weight). Current Istio accepts any positive total and normalises it.
//! - VirtualService `redirectCode` is one of 301, 302, 303, 307, 308 (Istio
//!   accepts any 3xx and then drops the route); an abort needs a status.
//! - Gateway `minProtocolVersion` may not be above `maxProtocolVersion`.
//! - AuthorizationPolicy `methods` are upper-case and `paths` start with `/`
//!   (or are `*`/`*suffix`): Istio accepts other strings, which never match a
//!   real request.
//! - Istio's warnings (as opposed to errors) are not reported.
