//! Host names of DNS clusters (`STRICT_DNS`, `LOGICAL_DNS`), resolved with
//! the system's resolver and again at each cluster's `dns_refresh_rate`.
//!
//! The answers form a [`DnsTable`] that the config is compiled with, as it
//! is with EDS assignments: a cluster's endpoints are its host names'
//! addresses. A compile names the hosts it looked up; the resolver follows
//! that set, and a changed answer compiles the config again, which replaces
//! the clusters whose addresses changed. A name not looked up yet leaves the
//! config incomplete (not served), as Envoy warms a DNS cluster until its
//! first resolution; a failed lookup counts as looked up: no addresses the
//! first time, the last ones after that.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;

/// How long one lookup may take before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The addresses of every host name looked up so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsTable {
    answers: BTreeMap<String, Vec<IpAddr>>,
}

impl DnsTable {
    /// The addresses of `host`, sorted; `None` before its first lookup ends.
    pub fn get(&self, host: &str) -> Option<&[IpAddr]> {
        self.answers.get(host).map(Vec::as_slice)
    }

    /// A table with these answers (for tests and static setups).
    pub fn with(answers: impl IntoIterator<Item = (String, Vec<IpAddr>)>) -> DnsTable {
        DnsTable {
            answers: answers.into_iter().collect(),
        }
    }
}

/// Looks up the host names the config wants, each on its own task.
#[derive(Debug)]
pub struct Resolver {
    table: watch::Sender<Arc<DnsTable>>,
    /// The running lookups: their refresh rate and how to stop them.
    lookups: Mutex<BTreeMap<String, (Duration, AbortHandle)>>,
}

impl Resolver {
    pub fn new() -> Arc<Resolver> {
        Arc::new(Resolver {
            table: watch::Sender::new(Arc::default()),
            lookups: Mutex::default(),
        })
    }

    /// The answers as of now.
    pub fn table(&self) -> Arc<DnsTable> {
        Arc::clone(&self.table.borrow())
    }

    /// Tells when an answer changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<DnsTable>> {
        self.table.subscribe()
    }

    /// Looks up these hosts from now on, each every `rate`. With `whole`
    /// (a compile that saw every host), the others stop and their answers
    /// are forgotten; else (a compile that stopped early) hosts are only
    /// added. Needs a Tokio runtime when there is a host to look up.
    pub fn follow(self: &Arc<Self>, hosts: &BTreeMap<String, Duration>, whole: bool) {
        let mut lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if whole {
            lookups.retain(|host, (rate, lookup)| {
                let keep = hosts.get(host) == Some(rate);
                if !keep {
                    lookup.abort();
                }
                keep
            });
            // Nobody reads a forgotten answer: no need to wake anyone.
            self.table.send_if_modified(|table| {
                if table.answers.keys().any(|host| !hosts.contains_key(host)) {
                    Arc::make_mut(table)
                        .answers
                        .retain(|host, _| hosts.contains_key(host));
                }
                false
            });
        }
        for (host, &rate) in hosts {
            if !lookups.contains_key(host) {
                let task = tokio::spawn(follow(Arc::downgrade(self), host.clone(), rate));
                lookups.insert(host.clone(), (rate, task.abort_handle()));
            }
        }
    }

    /// Records `host`'s answer, waking the watchers when it changed. A
    /// failed lookup (`None`) keeps the last addresses, or records none.
    /// A host no longer followed is not recorded (its lookup was stopped
    /// while it ran).
    fn record(&self, host: &str, found: Option<Vec<IpAddr>>) {
        let lookups = self.lookups.lock().unwrap_or_else(PoisonError::into_inner);
        if !lookups.contains_key(host) {
            return;
        }
        self.table.send_if_modified(|table| {
            let known = table.answers.get(host);
            let addresses = match (found, known) {
                (Some(found), _) => found,
                (None, Some(_)) => return false,
                (None, None) => Vec::new(),
            };
            if known == Some(&addresses) {
                return false;
            }
            Arc::make_mut(table)
                .answers
                .insert(host.to_owned(), addresses);
            true
        });
    }
}

#[cfg(test)]
impl Resolver {
    /// Sets `host`'s answer as a lookup would, for tests elsewhere.
    pub(crate) fn answer(&self, host: &str, addresses: Vec<IpAddr>) {
        self.table.send_modify(|table| {
            Arc::make_mut(table)
                .answers
                .insert(host.to_owned(), addresses);
        });
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let lookups = self
            .lookups
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, lookup) in lookups.values() {
            lookup.abort();
        }
    }
}

/// Looks `host` up every `rate` while the resolver lives.
async fn follow(resolver: Weak<Resolver>, host: String, rate: Duration) {
    loop {
        let found = lookup(&host).await;
        match resolver.upgrade() {
            Some(resolver) => resolver.record(&host, found),
            None => return,
        }
        tokio::time::sleep(rate).await;
    }
}

/// The host's addresses, sorted and without repeats; `None` on a failure.
async fn lookup(host: &str) -> Option<Vec<IpAddr>> {
    let found = tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await;
    match found {
        Ok(Ok(addresses)) => {
            let mut addresses: Vec<IpAddr> = addresses.map(|a| a.ip()).collect();
            addresses.sort();
            addresses.dedup();
            Some(addresses)
        }
        Ok(Err(err)) => {
            tracing::warn!(%host, error = %err, "DNS lookup failed");
            None
        }
        Err(_) => {
            tracing::warn!(%host, "DNS lookup timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests;
