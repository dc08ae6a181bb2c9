//! Route retry policies (`RouteAction.retry_policy`).

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RetryPolicy as EnvoyRetryPolicy;

use super::{At, ConfigError, duration};

/// When and how often to try a request again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    pub base_interval: Duration,
    pub max_interval: Duration,
    /// Try a host other than the ones already tried (`previous_hosts`).
    pub other_hosts: bool,
    /// How many picks may be spent looking for another host.
    pub host_selection_attempts: u32,
}

/// The conditions of `retry_on`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    pub server_error: bool,
    pub gateway_error: bool,
    pub connect_failure: bool,
    pub reset: bool,
    pub retriable_4xx: bool,
    pub retriable_status_codes: bool,
    /// gRPC statuses from `grpc-status`: cancelled, deadline-exceeded,
    /// internal, resource-exhausted, unavailable.
    pub grpc_statuses: [bool; 5],
}

/// gRPC status codes in the order of [`RetryOn::grpc_statuses`].
pub const GRPC_RETRY_STATUSES: [(&str, u32); 5] = [
    ("cancelled", 1),
    ("deadline-exceeded", 4),
    ("resource-exhausted", 8),
    ("internal", 13),
    ("unavailable", 14),
];

/// Envoy's default base interval between retries.
const DEFAULT_BASE_INTERVAL: Duration = Duration::from_millis(25);

pub(super) fn compile(policy: &EnvoyRetryPolicy, at: &At) -> Result<RetryPolicy, ConfigError> {
    let mut on = RetryOn::default();
    for condition in policy
        .retry_on
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        match condition {
            "5xx" => on.server_error = true,
            "gateway-error" => on.gateway_error = true,
            "connect-failure" => on.connect_failure = true,
            // Before or after the request went out: neither replays a streamed body.
            "reset" | "reset-before-request" | "refused-stream" => on.reset = true,
            "retriable-4xx" => on.retriable_4xx = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            grpc => match GRPC_RETRY_STATUSES
                .iter()
                .position(|(name, _)| *name == grpc)
            {
                Some(i) => on.grpc_statuses[i] = true,
                None => {
                    return Err(at
                        .field("retry_on")
                        .error(format_args!("unknown retry condition {grpc:?}")));
                }
            },
        }
    }
    let retriable_status_codes = policy
        .retriable_status_codes
        .iter()
        .map(|code| {
            u16::try_from(*code)
                .ok()
                .filter(|c| (100..600).contains(c))
                .ok_or_else(|| {
                    at.field("retriable_status_codes")
                        .error(format_args!("{code} is not an HTTP status"))
                })
        })
        .collect::<Result<_, _>>()?;
    let per_try_timeout = super::timeout(
        policy.per_try_timeout.as_ref(),
        None,
        &at.field("per_try_timeout"),
    )?;
    let (base_interval, max_interval) = match &policy.retry_back_off {
        Some(back_off) => {
            let at = at.field("retry_back_off");
            let base = match &back_off.base_interval {
                Some(d) => duration(d, &at.field("base_interval"))?,
                None => return Err(at.field("base_interval").error("base_interval is required")),
            };
            let max = match &back_off.max_interval {
                Some(d) => duration(d, &at.field("max_interval"))?,
                None => base * 10,
            };
            if max < base {
                return Err(at
                    .field("max_interval")
                    .error("max_interval must not be below base_interval"));
            }
            (base, max)
        }
        None => (DEFAULT_BASE_INTERVAL, DEFAULT_BASE_INTERVAL * 10),
    };
    let mut other_hosts = false;
    for (i, predicate) in policy.retry_host_predicate.iter().enumerate() {
        match predicate.name.as_str() {
            "envoy.retry_host_predicates.previous_hosts" => other_hosts = true,
            name => {
                return Err(at
                    .field("retry_host_predicate")
                    .index(i)
                    .unsupported(format_args!("host predicate {name:?}")));
            }
        }
    }
    Ok(RetryPolicy {
        on,
        num_retries: policy.num_retries.map_or(1, |n| n.value),
        per_try_timeout,
        retriable_status_codes,
        base_interval,
        max_interval,
        other_hosts,
        host_selection_attempts: u32::try_from(policy.host_selection_retry_max_attempts.max(1))
            .unwrap_or(1),
    })
}

impl RetryPolicy {
    /// Whether an upstream answer with this status (and gRPC status) is worth another try.
    pub fn retries_status(&self, status: u16, grpc_status: Option<u32>) -> bool {
        let on = &self.on;
        (on.server_error && status >= 500)
            || (on.gateway_error && matches!(status, 502..=504))
            || (on.retriable_4xx && status == 409)
            || (on.retriable_status_codes && self.retriable_status_codes.contains(&status))
            || grpc_status.is_some_and(|code| {
                GRPC_RETRY_STATUSES
                    .iter()
                    .zip(on.grpc_statuses)
                    .any(|((_, grpc), enabled)| enabled && *grpc == code)
            })
    }

    /// The wait before retry number `retry` (1-based): exponential, jittered, capped.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self
            .base_interval
            .saturating_mul(1 << retry.saturating_sub(1).min(16))
            .min(self.max_interval);
        ceiling.mul_f64(fastrand::f64())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn policy(value: serde_json::Value) -> Result<RetryPolicy, ConfigError> {
        let parsed: EnvoyRetryPolicy = mesh_api::envoy::from_json(&value).unwrap();
        compile(&parsed, &At::resource("route", "r"))
    }

    #[test]
    fn reads_istio_defaults() {
        let p = policy(json!({
            "retry_on": "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
            "num_retries": 2,
            "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}],
            "host_selection_retry_max_attempts": 5
        }))
        .unwrap();
        assert!(p.on.connect_failure && p.on.reset && p.on.retriable_status_codes);
        assert_eq!(p.num_retries, 2);
        assert!(p.other_hosts);
        assert_eq!(p.host_selection_attempts, 5);
        assert!(p.retries_status(200, Some(14)), "unavailable");
        assert!(p.retries_status(200, Some(1)), "cancelled");
        assert!(!p.retries_status(503, None), "5xx is not asked for");
    }

    #[test]
    fn status_conditions() {
        let p = policy(json!({"retry_on": "gateway-error,retriable-status-codes", "retriable_status_codes": [418]})).unwrap();
        assert!(
            p.retries_status(502, None)
                && p.retries_status(504, None)
                && p.retries_status(418, None)
        );
        assert!(!p.retries_status(500, None));
        let p = policy(json!({"retry_on": "5xx"})).unwrap();
        assert!(
            p.retries_status(500, None)
                && p.retries_status(503, None)
                && !p.retries_status(404, None)
        );
        assert_eq!(p.num_retries, 1, "Envoy's default");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = policy(json!({"retry_on": "5xx", "retry_back_off": {"base_interval": "0.1s", "max_interval": "0.3s"}})).unwrap();
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(100));
            assert!(p.backoff(5) <= Duration::from_millis(300));
        }
    }

    #[test]
    fn refuses_unknown_conditions() {
        let err = policy(json!({"retry_on": "5xx,sometimes"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "route \"r\": retry_on: unknown retry condition \"sometimes\""
        );
    }
}
