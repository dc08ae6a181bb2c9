//! `envoy.filters.http.fault`: the filter in an HCM's `http_filters`, and its
//! per-route override under a route's `typed_per_filter_config`, as Istio
//! writes them for a VirtualService's `fault`.
//!
//! Semantics are Envoy's:
//! - The filter-level config is the fault for every request of the HCM,
//!   including those no route matches; a route's override replaces it whole
//!   (an empty override turns faults off for that route). Without the filter
//!   in `http_filters`, route overrides are ignored, as Envoy ignores them.
//! - A `delay` or `abort` without `percentage` is never injected: Envoy reads
//!   an unset `FractionalPercent`, which is 0/100. A numerator above the
//!   denominator is 100%.
//! - The delay comes first; whether to abort is decided after it.
//! - The `*_runtime` keys only name runtime overrides, and this proxy has no
//!   runtime, so the configured values always apply; `filter_metadata` and
//!   `disable_downstream_cluster_stats` only affect access logs and stats this
//!   proxy does not have. They are accepted and have no effect.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay as EnvoyDelay, fault_delay,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort as EnvoyAbort, HttpFault, fault_abort,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::Any;
use http::StatusCode;

use super::listener::{decode, type_name};
use super::{At, ConfigError, duration};

/// The filter's name, and the `typed_per_filter_config` key of its overrides.
pub const FILTER_NAME: &str = "envoy.filters.http.fault";
const HTTP_FAULT: &str = "envoy.extensions.filters.http.fault.v3.HTTPFault";

/// The body of an abort when the config names none.
const DEFAULT_ABORT_BODY: &str = "fault filter abort";

/// The faults injected into a request; empty means none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

/// Wait this long before forwarding, for this share of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultDelay {
    pub delay: Duration,
    /// The share of requests delayed, in parts per million (at most 1,000,000).
    pub per_million: u32,
}

/// Answer with this status instead of forwarding, for this share of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultAbort {
    pub status: AbortStatus,
    /// The body of an HTTP abort; the `grpc-message` of a gRPC one.
    pub body: Bytes,
    /// The share of requests aborted, in parts per million (at most 1,000,000).
    pub per_million: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortStatus {
    Http(StatusCode),
    /// A gRPC status code, sent as a trailers-only gRPC response.
    Grpc(u32),
}

/// The fault config of an HCM HTTP filter, or `None` when the filter is not
/// the fault filter.
pub(super) fn http_filter(filter: &HttpFilter, at: &At) -> Result<Option<Fault>, ConfigError> {
    let config = match &filter.config_type {
        Some(http_filter::ConfigType::TypedConfig(any)) if type_name(any) == HTTP_FAULT => compile(
            &decode(any, &at.field("typed_config"))?,
            &at.field("typed_config"),
        )?,
        None if filter.name == FILTER_NAME => Fault::default(),
        _ => return Ok(None),
    };
    if filter.disabled {
        return Err(at.field("disabled").unsupported("a disabled fault filter"));
    }
    Ok(Some(config))
}

/// A route's override of the filter-level fault, from its
/// `typed_per_filter_config`; other filters' entries are refused. `at` is
/// the route.
pub(super) fn per_route(
    configs: &HashMap<String, Any>,
    at: &At,
) -> Result<Option<Fault>, ConfigError> {
    let mut keys: Vec<&String> = configs.keys().collect();
    keys.sort();
    let mut fault = None;
    for key in keys {
        let at = at.field(&format!("typed_per_filter_config[{key:?}]"));
        if key == super::cors::FILTER_NAME {
            // Read by the CORS filter's own config.
            continue;
        }
        if key != FILTER_NAME {
            return Err(at.unsupported(format_args!(
                "per-route config for {key:?} (only {FILTER_NAME:?})"
            )));
        }
        let any = &configs[key];
        if type_name(any) != HTTP_FAULT {
            return Err(at.field("@type").unsupported(format_args!(
                "{} for the fault filter (only {HTTP_FAULT})",
                any.type_url
            )));
        }
        fault = Some(compile(&decode(any, &at)?, &at)?);
    }
    Ok(fault)
}

/// Refuses per-filter config where this proxy does not read it (virtual
/// hosts, route configurations): it would otherwise be silently ignored.
pub(super) fn refuse_per_filter_config(
    configs: &HashMap<String, Any>,
    at: &At,
) -> Result<(), ConfigError> {
    if configs.is_empty() {
        return Ok(());
    }
    Err(at.unsupported("typed_per_filter_config anywhere but on routes"))
}

/// An `HTTPFault` as the faults to inject.
pub(super) fn compile(fault: &HttpFault, at: &At) -> Result<Fault, ConfigError> {
    if !fault.headers.is_empty() {
        return Err(at.field("headers").unsupported("headers"));
    }
    if !fault.upstream_cluster.is_empty() {
        return Err(at.field("upstream_cluster").unsupported("upstream_cluster"));
    }
    if !fault.downstream_nodes.is_empty() {
        return Err(at.field("downstream_nodes").unsupported("downstream_nodes"));
    }
    if fault.max_active_faults.is_some() {
        return Err(at
            .field("max_active_faults")
            .unsupported("max_active_faults"));
    }
    if fault.response_rate_limit.is_some() {
        return Err(at
            .field("response_rate_limit")
            .unsupported("response_rate_limit"));
    }
    let delay = match &fault.delay {
        Some(d) => Some(delay(d, &at.field("delay"))?),
        None => None,
    };
    let abort = match &fault.abort {
        Some(a) => Some(abort(a, &at.field("abort"))?),
        None => None,
    };
    Ok(Fault { delay, abort })
}

fn delay(d: &EnvoyDelay, at: &At) -> Result<FaultDelay, ConfigError> {
    let delay = match &d.fault_delay_secifier {
        Some(fault_delay::FaultDelaySecifier::FixedDelay(fixed)) => {
            let at = at.field("fixed_delay");
            let fixed = duration(fixed, &at)?;
            if fixed.is_zero() {
                return Err(at.error("the delay must be greater than zero"));
            }
            fixed
        }
        Some(fault_delay::FaultDelaySecifier::HeaderDelay(_)) => {
            return Err(at.field("header_delay").unsupported("header_delay"));
        }
        None => return Err(at.field("fixed_delay").error("fixed_delay is required")),
    };
    Ok(FaultDelay {
        delay,
        per_million: per_million(d.percentage.as_ref(), &at.field("percentage"))?,
    })
}

fn abort(a: &EnvoyAbort, at: &At) -> Result<FaultAbort, ConfigError> {
    let status = match a.error_type {
        Some(fault_abort::ErrorType::HttpStatus(code)) => {
            // Envoy's proto allows [200, 600).
            let status = u16::try_from(code)
                .ok()
                .filter(|c| (200..600).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| {
                    at.field("http_status")
                        .error(format_args!("{code} is not an HTTP status in [200, 600)"))
                })?;
            AbortStatus::Http(status)
        }
        Some(fault_abort::ErrorType::GrpcStatus(code)) => AbortStatus::Grpc(code),
        Some(fault_abort::ErrorType::HeaderAbort(_)) => {
            return Err(at.field("header_abort").unsupported("header_abort"));
        }
        None => {
            return Err(at
                .field("http_status")
                .error("http_status or grpc_status is required"));
        }
    };
    let body = if a.response_body.is_empty() {
        Bytes::from_static(DEFAULT_ABORT_BODY.as_bytes())
    } else {
        Bytes::from(a.response_body.clone())
    };
    Ok(FaultAbort {
        status,
        body,
        per_million: per_million(a.percentage.as_ref(), &at.field("percentage"))?,
    })
}

/// A `FractionalPercent` in parts per million; unset is 0, as in Envoy.
pub(super) fn per_million(
    percent: Option<&FractionalPercent>,
    at: &At,
) -> Result<u32, ConfigError> {
    let Some(percent) = percent else {
        return Ok(0);
    };
    use fractional_percent::DenominatorType as D;
    let scale: u64 = match D::try_from(percent.denominator) {
        Ok(D::Hundred) => 10_000,
        Ok(D::TenThousand) => 100,
        Ok(D::Million) => 1,
        Err(_) => {
            return Err(at
                .field("denominator")
                .error(format_args!("unknown denominator {}", percent.denominator)));
        }
    };
    let parts = (u64::from(percent.numerator) * scale).min(1_000_000);
    Ok(u32::try_from(parts).expect("at most a million"))
}

#[cfg(test)]
mod tests;
