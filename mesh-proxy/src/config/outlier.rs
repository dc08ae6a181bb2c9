//! A cluster's `outlier_detection`: passive health checking by consecutive
//! errors, as Istio's DestinationRule `outlierDetection` configures it.
//!
//! Supported: `consecutive_5xx`, `consecutive_gateway_failure`, their
//! `enforcing_*` percentages, `interval`, `base_ejection_time`,
//! `max_ejection_time`, `max_ejection_time_jitter`, `max_ejection_percent`
//! and `always_eject_one_host`, with Envoy's defaults (note that Envoy's
//! `enforcing_consecutive_gateway_failure` defaults to 0: gateway failures
//! are only counted unless it is set, as Istio does).
//!
//! Success-rate and failure-percentage ejection are not implemented: their
//! tuning fields are accepted and unused, and a non-zero `enforcing_success_rate`
//! or `enforcing_failure_percentage*` is refused. Unset, Envoy would run
//! success-rate ejection for clusters of five hosts or more; Istio sets
//! `enforcing_success_rate: 0`. `split_external_local_origin_errors`,
//! `monitors` and `detect_degraded_hosts` are refused.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection as EnvoyOutlierDetection;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::{At, ConfigError, duration};

/// When to eject an endpoint, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    /// Consecutive 5xx (or connect failures, resets, timeouts) before an
    /// ejection; 0 turns it off.
    pub consecutive_5xx: u32,
    /// Consecutive 502, 503 or 504 before an ejection; 0 turns it off.
    pub consecutive_gateway_failure: u32,
    /// Percent chance that a detected outlier is really ejected.
    pub enforcing_consecutive_5xx: u32,
    pub enforcing_consecutive_gateway_failure: u32,
    /// How often ejections are reviewed.
    pub interval: Duration,
    /// Ejection time is this times the number of ejections, up to `max_ejection_time`.
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_time_jitter: Duration,
    /// No ejection may leave more than this percent of the endpoints ejected.
    pub max_ejection_percent: u32,
    /// Eject one endpoint even when that is above `max_ejection_percent`.
    pub always_eject_one_host: bool,
}

impl Default for OutlierDetection {
    /// Envoy's defaults.
    fn default() -> Self {
        OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_5xx: 100,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: DEFAULT_MAX_EJECTION_TIME,
            max_ejection_time_jitter: Duration::ZERO,
            max_ejection_percent: 10,
            always_eject_one_host: false,
        }
    }
}

const DEFAULT_MAX_EJECTION_TIME: Duration = Duration::from_secs(300);

pub(super) fn compile(o: &EnvoyOutlierDetection, at: &At) -> Result<OutlierDetection, ConfigError> {
    let mut out = OutlierDetection::default();
    let count = |v: &Option<UInt32Value>, default: u32| v.as_ref().map_or(default, |v| v.value);
    let percent = |v: &Option<UInt32Value>, default: u32, field: &str| {
        let value = count(v, default);
        if value > 100 {
            return Err(at
                .field(field)
                .error(format_args!("{value} is not a percentage")));
        }
        Ok(value)
    };
    for (field, value) in [
        ("enforcing_success_rate", &o.enforcing_success_rate),
        (
            "enforcing_failure_percentage",
            &o.enforcing_failure_percentage,
        ),
        (
            "enforcing_failure_percentage_local_origin",
            &o.enforcing_failure_percentage_local_origin,
        ),
    ] {
        if value.is_some_and(|v| v.value > 0) {
            return Err(at
                .field(field)
                .unsupported("success-rate and failure-percentage ejection"));
        }
    }
    if o.split_external_local_origin_errors {
        return Err(at
            .field("split_external_local_origin_errors")
            .unsupported("split_external_local_origin_errors"));
    }
    if !o.monitors.is_empty() {
        return Err(at.field("monitors").unsupported("outlier monitors"));
    }
    if o.detect_degraded_hosts.is_some_and(|v| v.value) {
        return Err(at
            .field("detect_degraded_hosts")
            .unsupported("detect_degraded_hosts"));
    }
    out.consecutive_5xx = count(&o.consecutive_5xx, out.consecutive_5xx);
    out.consecutive_gateway_failure = count(
        &o.consecutive_gateway_failure,
        out.consecutive_gateway_failure,
    );
    out.enforcing_consecutive_5xx = percent(
        &o.enforcing_consecutive_5xx,
        out.enforcing_consecutive_5xx,
        "enforcing_consecutive_5xx",
    )?;
    out.enforcing_consecutive_gateway_failure = percent(
        &o.enforcing_consecutive_gateway_failure,
        out.enforcing_consecutive_gateway_failure,
        "enforcing_consecutive_gateway_failure",
    )?;
    out.max_ejection_percent = percent(
        &o.max_ejection_percent,
        out.max_ejection_percent,
        "max_ejection_percent",
    )?;
    out.always_eject_one_host = o.always_eject_one_host.is_some_and(|v| v.value);
    if let Some(d) = &o.interval {
        out.interval = positive(duration(d, &at.field("interval"))?, &at.field("interval"))?;
    }
    if let Some(d) = &o.base_ejection_time {
        let at = at.field("base_ejection_time");
        out.base_ejection_time = positive(duration(d, &at)?, &at)?;
    }
    out.max_ejection_time = match &o.max_ejection_time {
        Some(d) => {
            let at = at.field("max_ejection_time");
            let max = duration(d, &at)?;
            if max < out.base_ejection_time {
                return Err(at.error("max_ejection_time cannot be smaller than base_ejection_time"));
            }
            max
        }
        None => DEFAULT_MAX_EJECTION_TIME.max(out.base_ejection_time),
    };
    if let Some(d) = &o.max_ejection_time_jitter {
        out.max_ejection_time_jitter = duration(d, &at.field("max_ejection_time_jitter"))?;
    }
    Ok(out)
}

fn positive(d: Duration, at: &At) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        return Err(at.error("must be greater than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{compile as compile_bootstrap, http_bootstrap};

    fn outlier(config: serde_json::Value) -> Result<Option<OutlierDetection>, ConfigError> {
        let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
        let mut bootstrap = http_bootstrap(
            json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
            &["a"],
        );
        if !config.is_null() {
            bootstrap["static_resources"]["clusters"][0]["outlier_detection"] = config;
        }
        Ok(compile_bootstrap(&bootstrap)?.clusters["a"].outlier)
    }

    #[test]
    fn envoy_defaults_and_istio_settings() {
        assert_eq!(outlier(serde_json::Value::Null).unwrap(), None);
        assert_eq!(
            outlier(json!({})).unwrap(),
            Some(OutlierDetection::default())
        );
        // What Istio writes for `consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 1m,
        // maxEjectionPercent: 100`.
        let istio = outlier(json!({
            "consecutive_5xx": 3, "enforcing_consecutive_5xx": 100,
            "enforcing_success_rate": 0, "interval": "1s", "base_ejection_time": "60s",
            "max_ejection_percent": 100
        }))
        .unwrap()
        .unwrap();
        assert_eq!(
            istio,
            OutlierDetection {
                consecutive_5xx: 3,
                interval: Duration::from_secs(1),
                base_ejection_time: Duration::from_secs(60),
                max_ejection_percent: 100,
                ..OutlierDetection::default()
            }
        );
        let long = outlier(json!({"base_ejection_time": "600s"}))
            .unwrap()
            .unwrap();
        assert_eq!(long.max_ejection_time, Duration::from_secs(600));
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        let error = |config| outlier(config).unwrap_err().to_string();
        assert_eq!(
            error(json!({"enforcing_success_rate": 100})),
            "cluster \"a\": outlier_detection.enforcing_success_rate: success-rate and failure-percentage ejection is not supported by this proxy"
        );
        assert_eq!(
            error(json!({"max_ejection_percent": 101})),
            "cluster \"a\": outlier_detection.max_ejection_percent: 101 is not a percentage"
        );
        assert_eq!(
            error(json!({"interval": "0s"})),
            "cluster \"a\": outlier_detection.interval: must be greater than zero"
        );
        assert_eq!(
            error(json!({"base_ejection_time": "10s", "max_ejection_time": "5s"})),
            "cluster \"a\": outlier_detection.max_ejection_time: max_ejection_time cannot be smaller than base_ejection_time"
        );
        assert_eq!(
            error(json!({"split_external_local_origin_errors": true})),
            "cluster \"a\": outlier_detection.split_external_local_origin_errors: split_external_local_origin_errors is not supported by this proxy"
        );
    }
}
