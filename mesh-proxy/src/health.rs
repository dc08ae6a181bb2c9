//! Active health checking, as a cluster's `health_checks` configures it.
//!
//! One background task per checked cluster ([`start`]) probes each of its
//! endpoints on its own timer, until the drain starts. A probe is an HTTP
//! request (passing when the status is in `expected_statuses`) or a TCP
//! connect, within `timeout`. As in Envoy:
//!
//! - The first result decides at once; afterwards `unhealthy_threshold`
//!   failures in a row make a healthy endpoint unhealthy and
//!   `healthy_threshold` passes in a row make an unhealthy one healthy. An
//!   HTTP status that is neither expected nor in `retriable_statuses` makes
//!   the endpoint unhealthy at once; connect failures, resets and timeouts
//!   count towards the threshold.
//! - The wait before the next probe is `interval`, or `unhealthy_interval`
//!   while unhealthy, or an edge interval while a change is under way, plus
//!   the jitters.
//!
//! Unlike Envoy, which keeps new endpoints out until their first check
//! passes (and holds start-up until then), endpoints here count as healthy
//! until their first result, flagged `/pending_active_hc` meanwhile: start-up
//! never waits for probes. `no_traffic_interval` is not used.
//!
//! An unhealthy endpoint is skipped by load balancing just like an ejected
//! one (see [`crate::lb`]).

use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::config::{Cluster, HealthCheck, HealthCheckKind, HttpHealthCheck};
use crate::drain::Drain;
use crate::upstream::Upstream;

/// The active health check flags of a cluster's endpoints, read by load
/// balancing and written by the checker.
#[derive(Debug)]
pub struct HostHealth {
    hosts: Vec<Flags>,
    /// Bumped whenever an endpoint fails or passes, so that balancers know
    /// to rebuild their view of the endpoints.
    generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Flags {
    /// Envoy's `/failed_active_hc`.
    failed: AtomicBool,
    /// Envoy's `/pending_active_hc`: no result yet (counted healthy here).
    pending: AtomicBool,
}

impl HostHealth {
    /// Every endpoint healthy; those that will be checked are pending.
    pub fn new(cluster: &Cluster) -> HostHealth {
        let checked = cluster.health_check.is_some();
        HostHealth {
            hosts: cluster
                .endpoints
                .iter()
                .map(|e| Flags {
                    failed: AtomicBool::new(false),
                    pending: AtomicBool::new(checked && !e.health_check.disabled),
                })
                .collect(),
            generation: AtomicU64::new(0),
        }
    }

    pub fn failed_active_hc(&self, index: usize) -> bool {
        self.hosts[index].failed.load(Ordering::SeqCst)
    }

    pub fn pending_active_hc(&self, index: usize) -> bool {
        self.hosts[index].pending.load(Ordering::SeqCst)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Marks endpoint `index` failed or not; true if that changed it.
    pub fn set_failed(&self, index: usize, failed: bool) -> bool {
        let changed = self.hosts[index].failed.swap(failed, Ordering::SeqCst) != failed;
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        changed
    }

    fn checked(&self, index: usize) {
        self.hosts[index].pending.store(false, Ordering::SeqCst);
    }
}

/// Health check counters of one cluster, with Envoy's names.
#[derive(Debug, Default)]
pub struct HealthStats {
    pub attempt: AtomicU64,
    pub success: AtomicU64,
    /// Every failed check, network failures included.
    pub failure: AtomicU64,
    /// Checks that could not connect, were reset or timed out.
    pub network_failure: AtomicU64,
    /// Endpoints passing their checks (a gauge).
    pub healthy: AtomicU64,
}

impl HealthStats {
    pub fn render(&self, label: &str, out: &mut String) {
        let series = [
            ("attempt", &self.attempt),
            ("success", &self.success),
            ("failure", &self.failure),
            ("network_failure", &self.network_failure),
            ("healthy", &self.healthy),
        ];
        for (name, value) in series {
            let _ = writeln!(
                out,
                "envoy_cluster_health_check_{name}{{{label}}} {}",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Pass,
    /// Counts towards `unhealthy_threshold`.
    Fail,
    /// Makes a healthy endpoint unhealthy at once (an unexpected HTTP status).
    FailNow,
}

/// Whether a check changed the endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Unchanged,
    /// A change is under way: the threshold is not reached yet.
    Pending,
    Changed,
}

/// The run of results of one endpoint.
#[derive(Debug)]
pub struct Session {
    first: bool,
    passes: u32,
    failures: u32,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            first: true,
            passes: 0,
            failures: 0,
        }
    }
}

impl Session {
    /// Applies one result to `failed`, the endpoint's state, as Envoy does.
    pub fn record(&mut self, check: Check, failed: &mut bool, config: &HealthCheck) -> Transition {
        let first = std::mem::replace(&mut self.first, false);
        match check {
            Check::Pass => {
                self.failures = 0;
                if !*failed {
                    return Transition::Unchanged;
                }
                self.passes += 1;
                if first || self.passes >= config.healthy_threshold {
                    *failed = false;
                    self.passes = 0;
                    return Transition::Changed;
                }
                Transition::Pending
            }
            Check::Fail | Check::FailNow => {
                self.passes = 0;
                if *failed {
                    return Transition::Unchanged;
                }
                self.failures += 1;
                if first || check == Check::FailNow || self.failures >= config.unhealthy_threshold {
                    *failed = true;
                    self.failures = 0;
                    return Transition::Changed;
                }
                Transition::Pending
            }
        }
    }
}

/// The wait before the next check, before jitter.
pub fn next_interval(config: &HealthCheck, failed: bool, transition: Transition) -> Duration {
    match (failed, transition) {
        (true, Transition::Pending) => config.healthy_edge_interval,
        (true, _) => config.unhealthy_interval,
        (false, Transition::Pending) => config.unhealthy_edge_interval,
        (false, _) => config.interval,
    }
}

/// `base` plus up to `interval_jitter_percent` of it and up to
/// `interval_jitter`, at random; at least a millisecond.
fn jittered(base: Duration, config: &HealthCheck) -> Duration {
    let percent = base.saturating_mul(config.interval_jitter_percent) / 100;
    (base + random_up_to(percent) + random_up_to(config.interval_jitter))
        .max(Duration::from_millis(1))
}

fn random_up_to(limit: Duration) -> Duration {
    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(fastrand::u64(..nanos))
}

/// Starts the health checker of one cluster, if it has one, until `drain` starts.
pub fn start_cluster(upstream: &Upstream, drain: &Drain) {
    if let Some(checker) = Checker::new(upstream) {
        tokio::spawn(Arc::new(checker).run(drain.clone()));
    }
}

/// The health checker of one cluster.
#[derive(Debug)]
struct Checker {
    cluster: String,
    config: HealthCheck,
    targets: Vec<Target>,
    client: Client<HttpConnector, Empty<Bytes>>,
    health: Arc<HostHealth>,
    stats: Arc<HealthStats>,
}

/// Where the checks of one endpoint go.
#[derive(Debug)]
struct Target {
    /// The endpoint's index in its cluster.
    index: usize,
    address: SocketAddr,
    host: HeaderValue,
}

/// How one probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Connected,
    Status(u16),
    /// No connection, a reset or a timeout.
    NetworkFailure,
}

impl Checker {
    fn new(upstream: &Upstream) -> Option<Checker> {
        let cluster = &upstream.cluster;
        let config = cluster.health_check.clone()?;
        let stats = Arc::clone(upstream.stats.health.as_ref()?);
        let http = match &config.kind {
            HealthCheckKind::Http(http) => Some(http),
            HealthCheckKind::Tcp => None,
        };
        let targets: Vec<Target> = cluster
            .endpoints
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.health_check.disabled)
            .map(|(index, e)| {
                let mut address = e.address;
                if let Some(port) = e.health_check.port {
                    address.set_port(port);
                }
                let host = match (&e.health_check.hostname, http) {
                    (name, _) if !name.is_empty() => name.as_str(),
                    (_, Some(http)) => http.host.as_str(),
                    (_, None) => cluster.name.as_str(),
                };
                Target {
                    index,
                    address,
                    host: HeaderValue::from_str(host)
                        .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
                }
            })
            .collect();
        stats.healthy.store(targets.len() as u64, Ordering::Relaxed);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let mut client = Client::builder(TokioExecutor::new());
        client.http2_only(http.is_some_and(|h| h.http2));
        if !config.reuse_connection {
            client.pool_max_idle_per_host(0);
        }
        Some(Checker {
            cluster: cluster.name.clone(),
            targets,
            client: client.build(connector),
            health: Arc::clone(upstream.balancer.health()),
            stats,
            config,
        })
    }

    async fn run(self: Arc<Self>, drain: Drain) {
        let mut probes = JoinSet::new();
        for target in 0..self.targets.len() {
            probes.spawn(Arc::clone(&self).watch(target));
        }
        drain.started().await;
        probes.shutdown().await;
    }

    /// Checks one endpoint forever.
    async fn watch(self: Arc<Self>, target: usize) {
        let target = &self.targets[target];
        let mut session = Session::default();
        tokio::time::sleep(random_up_to(self.config.initial_jitter)).await;
        loop {
            self.stats.attempt.fetch_add(1, Ordering::Relaxed);
            let check = match self.probe(target).await {
                Outcome::Connected => Check::Pass,
                Outcome::Status(status) => match &self.config.kind {
                    HealthCheckKind::Http(http) => judge(http, status),
                    HealthCheckKind::Tcp => Check::Pass,
                },
                Outcome::NetworkFailure => {
                    self.stats.network_failure.fetch_add(1, Ordering::Relaxed);
                    Check::Fail
                }
            };
            if check == Check::Pass {
                self.stats.success.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.failure.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(cluster = %self.cluster, endpoint = %target.address, ?check, "health check failed");
            }
            let mut failed = self.health.failed_active_hc(target.index);
            let transition = session.record(check, &mut failed, &self.config);
            if self.health.set_failed(target.index, failed) {
                if failed {
                    self.stats.healthy.fetch_sub(1, Ordering::Relaxed);
                    tracing::info!(cluster = %self.cluster, endpoint = %target.address, "endpoint failed its health checks");
                } else {
                    self.stats.healthy.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(cluster = %self.cluster, endpoint = %target.address, "endpoint passes its health checks again");
                }
            }
            self.health.checked(target.index);
            let wait = next_interval(&self.config, failed, transition);
            tokio::time::sleep(jittered(wait, &self.config)).await;
        }
    }

    async fn probe(&self, target: &Target) -> Outcome {
        match &self.config.kind {
            HealthCheckKind::Tcp => {
                match tokio::time::timeout(self.config.timeout, TcpStream::connect(target.address))
                    .await
                {
                    Ok(Ok(_)) => Outcome::Connected,
                    _ => Outcome::NetworkFailure,
                }
            }
            HealthCheckKind::Http(http) => {
                let Some(request) = request(http, target) else {
                    return Outcome::NetworkFailure;
                };
                let exchange = async {
                    let response = self.client.request(request).await.ok()?;
                    let status = response.status().as_u16();
                    // Read the body, so that the connection can be used again.
                    response.into_body().collect().await.ok()?;
                    Some(status)
                };
                match tokio::time::timeout(self.config.timeout, exchange).await {
                    Ok(Some(status)) => Outcome::Status(status),
                    _ => Outcome::NetworkFailure,
                }
            }
        }
    }
}

fn request(http: &HttpHealthCheck, target: &Target) -> Option<Request<Empty<Bytes>>> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(target.address.to_string())
        .path_and_query(http.path.clone())
        .build()
        .ok()?;
    let mut request = Request::new(Empty::new());
    *request.method_mut() = http.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = if http.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let headers = request.headers_mut();
    headers.insert(header::HOST, target.host.clone());
    headers.insert(header::USER_AGENT, HeaderValue::from_static("Envoy/HC"));
    http.headers.apply_request(headers);
    Some(request)
}

/// Whether an HTTP status passes, fails, or fails at once.
fn judge(http: &HttpHealthCheck, status: u16) -> Check {
    if http.expected_statuses.iter().any(|r| r.contains(&status)) {
        Check::Pass
    } else if http.retriable_statuses.iter().any(|r| r.contains(&status)) {
        Check::Fail
    } else {
        Check::FailNow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheckKind;

    fn config(unhealthy: u32, healthy: u32) -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_secs(10),
            initial_jitter: Duration::ZERO,
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            unhealthy_interval: Duration::from_secs(20),
            unhealthy_edge_interval: Duration::from_secs(3),
            healthy_edge_interval: Duration::from_secs(4),
            reuse_connection: true,
            kind: HealthCheckKind::Tcp,
        }
    }

    /// Feeds `checks` to a fresh session; the state and transition after each.
    fn run(config: &HealthCheck, checks: &[Check]) -> Vec<(bool, Transition)> {
        let mut session = Session::default();
        let mut failed = false;
        checks
            .iter()
            .map(|check| {
                let t = session.record(*check, &mut failed, config);
                (failed, t)
            })
            .collect()
    }

    use Check::{Fail, FailNow, Pass};
    use Transition::{Changed, Pending, Unchanged};

    #[test]
    fn the_first_result_decides_at_once() {
        let config = config(3, 3);
        assert_eq!(run(&config, &[Pass]), [(false, Unchanged)]);
        assert_eq!(run(&config, &[Fail]), [(true, Changed)]);
        // After a failed first check, the healthy threshold applies.
        assert_eq!(
            run(&config, &[Fail, Pass, Pass, Pass]),
            [
                (true, Changed),
                (true, Pending),
                (true, Pending),
                (false, Changed)
            ]
        );
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let config = config(2, 3);
        assert_eq!(
            run(&config, &[Pass, Fail, Pass, Fail, Fail, Fail]),
            [
                (false, Unchanged),
                (false, Pending),
                (false, Unchanged),
                (false, Pending),
                (true, Changed),
                (true, Unchanged),
            ],
            "a pass breaks a run of failures"
        );
        assert_eq!(
            run(
                &config,
                &[Pass, Fail, Fail, Pass, Pass, Fail, Pass, Pass, Pass]
            ),
            [
                (false, Unchanged),
                (false, Pending),
                (true, Changed),
                (true, Pending),
                (true, Pending),
                (true, Unchanged),
                (true, Pending),
                (true, Pending),
                (false, Changed),
            ],
            "a failure breaks a run of passes"
        );
    }

    #[test]
    fn an_unexpected_status_fails_at_once() {
        let config = config(5, 1);
        assert_eq!(
            run(&config, &[Pass, Fail, FailNow, Pass]),
            [
                (false, Unchanged),
                (false, Pending),
                (true, Changed),
                (false, Changed)
            ]
        );
    }

    #[test]
    fn intervals_follow_the_state_and_edges() {
        let config = config(2, 2);
        assert_eq!(
            next_interval(&config, false, Unchanged),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_interval(&config, false, Pending),
            Duration::from_secs(3)
        );
        assert_eq!(
            next_interval(&config, true, Changed),
            Duration::from_secs(20)
        );
        assert_eq!(
            next_interval(&config, true, Pending),
            Duration::from_secs(4)
        );
        assert_eq!(
            next_interval(&config, false, Changed),
            Duration::from_secs(10)
        );
        let mut jittery = config.clone();
        jittery.interval_jitter = Duration::from_millis(100);
        jittery.interval_jitter_percent = 10;
        for _ in 0..100 {
            let wait = jittered(Duration::from_secs(1), &jittery);
            assert!(
                (Duration::from_secs(1)..Duration::from_millis(1200)).contains(&wait),
                "{wait:?}"
            );
        }
    }

    #[test]
    fn statuses_pass_count_or_fail_at_once() {
        let http = HttpHealthCheck {
            path: "/healthz".parse().unwrap(),
            host: "c".into(),
            method: http::Method::GET,
            expected_statuses: vec![200..201, 204..205],
            retriable_statuses: std::iter::once(500..600).collect(),
            http2: false,
            headers: crate::config::HeaderMutations::default(),
        };
        assert_eq!(judge(&http, 200), Pass);
        assert_eq!(judge(&http, 204), Pass);
        assert_eq!(judge(&http, 503), Fail);
        assert_eq!(judge(&http, 404), FailNow);
        assert_eq!(judge(&http, 201), FailNow);
    }
}
