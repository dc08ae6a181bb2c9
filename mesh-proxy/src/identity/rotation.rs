//! Getting the workload certificate and renewing it: a new key and
//! certificate at half the current one's lifetime, as Istio's agent does.
//! A failed attempt is retried with jittered exponential backoff (capped at
//! 10 s) while the current certificate stays in use.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mesh_api::names::SpiffeId;

use super::CertificateProvider;
use super::ca_client::CaClient;
use super::chain::{self, Details, Issued, Trusted};
use super::csr::Request;
use super::x509::rfc3339;
use crate::drain::Drain;
use crate::xds::backoff::Backoff;

/// Renewals never come closer together than this, even for a certificate
/// issued with its start backdated past half its lifetime.
const MIN_RENEWAL_DELAY: Duration = Duration::from_secs(1);

/// What asking for a certificate needs.
#[derive(Debug)]
pub(super) struct Issuer {
    pub client: CaClient,
    pub id: SpiffeId,
    pub ttl: Duration,
    pub trusted: Trusted,
}

impl Issuer {
    /// A new key, its CSR, the CA's answer, checked.
    async fn issue(&self) -> anyhow::Result<Issued> {
        let request = Request::new(&self.id)?;
        let chain = self.client.sign(request.csr.clone(), self.ttl).await?;
        chain::check(&chain, &request, &self.id, &self.trusted)
            .map_err(|err| anyhow::anyhow!("the CA's certificate is not used: {err}"))
    }
}

/// Keeps a current certificate in `provider` until the drain starts.
pub(super) async fn run(issuer: Issuer, provider: Arc<CertificateProvider>, drain: Drain) {
    let mut backoff = Backoff::default();
    let mut drained = std::pin::pin!(drain.started());
    // When the renewal under way began: its first attempt, retries included.
    let mut started = None;
    loop {
        let began = *started.get_or_insert_with(Instant::now);
        let delay = tokio::select! {
            result = issuer.issue() => match result {
                Ok(issued) => {
                    backoff.reset();
                    let renewal = renewal_delay(issued.leaf.fields.not_before, issued.leaf.fields.not_after);
                    let rotated = provider.has_certificate();
                    let leaf = issued.leaf.clone();
                    provider.publish(issued);
                    // From here on, new handshakes present the new certificate.
                    let took = began.elapsed();
                    started = None;
                    if rotated {
                        provider.rotations.record(took);
                    }
                    log_issued(&leaf, rotated, took);
                    renewal
                }
                Err(err) => {
                    let delay = backoff.next_delay();
                    log_failure(&err, &provider, delay);
                    delay
                }
            },
            () = drained.as_mut() => return,
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = drained.as_mut() => return,
        }
    }
}

/// `took_ms`: from the first attempt to the certificate in use.
fn log_issued(leaf: &Details, rotated: bool, took: Duration) {
    let san = leaf.uri_sans.join(",");
    let serial = &leaf.fields.serial;
    let expires = rfc3339(leaf.fields.not_after);
    let took_ms = took.as_secs_f64() * 1000.0;
    if rotated {
        tracing::info!(%san, %serial, %expires, took_ms, "workload certificate rotated");
    } else {
        tracing::info!(%san, %serial, %expires, took_ms, "workload certificate obtained");
    }
}

fn log_failure(err: &anyhow::Error, provider: &CertificateProvider, retry: Duration) {
    let retry_ms = retry.as_millis() as u64;
    match provider.current() {
        Some(current) if current.leaf.fields.not_after > now() => tracing::warn!(
            error = %err,
            retry_ms,
            expires = %rfc3339(current.leaf.fields.not_after),
            "cannot renew the workload certificate; the current one stays in use"
        ),
        Some(_) => tracing::error!(
            error = %err,
            retry_ms,
            "cannot renew the workload certificate, and the current one has expired"
        ),
        None => tracing::warn!(error = %err, retry_ms, "cannot get the workload certificate"),
    }
}

/// From now to half-way through `[not_before, not_after]` (Unix seconds).
fn renewal_delay(not_before: i64, not_after: i64) -> Duration {
    let half = not_before + (not_after - not_before) / 2;
    let seconds = u64::try_from(half - now()).unwrap_or(0);
    Duration::from_secs(seconds).max(MIN_RENEWAL_DELAY)
}

pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renews_at_half_life_and_not_in_a_loop() {
        let start = now();
        let delay = renewal_delay(start, start + 24 * 3600);
        assert!(
            (11 * 3600..=12 * 3600).contains(&delay.as_secs()),
            "{delay:?}"
        );
        assert_eq!(renewal_delay(start - 3600, start + 60), MIN_RENEWAL_DELAY);
    }
}
