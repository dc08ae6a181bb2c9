//! Scrapes every proxy's Istio metrics at once.

use std::time::Instant;

use tokio::task::JoinSet;

use super::fetch::Fetcher;
use super::prometheus::{self, Sample};
use super::targets::Target;

/// What one round of scraping found.
#[derive(Debug)]
pub struct Scrape {
    pub at: Instant,
    pub proxies: Vec<Scraped>,
}

/// One proxy's metrics, or why they could not be read.
#[derive(Debug)]
pub struct Scraped {
    pub target: Target,
    pub samples: Result<Vec<Sample>, String>,
}

/// Scrapes `targets` concurrently; the result lists them in the same order.
pub async fn scrape(fetcher: &Fetcher, targets: Vec<Target>) -> Scrape {
    let at = Instant::now();
    let mut tasks = JoinSet::new();
    for (index, target) in targets.into_iter().enumerate() {
        let fetcher = fetcher.clone();
        tasks.spawn(async move {
            let url = format!("http://{}/stats/prometheus", target.admin);
            let samples = match fetcher.get(&url).await {
                Ok(text) => prometheus::parse(&text)
                    .map(only_istio)
                    .map_err(|err| format!("{url}: {err}")),
                Err(err) => Err(format!("{err:#}")),
            };
            (index, Scraped { target, samples })
        });
    }
    let mut proxies: Vec<(usize, Scraped)> = tasks.join_all().await;
    proxies.sort_by_key(|(index, _)| *index);
    Scrape {
        at,
        proxies: proxies.into_iter().map(|(_, scraped)| scraped).collect(),
    }
}

/// The graph reads Istio's standard metrics alone; scrapes are kept for a
/// while, and the proxies' own counters would only take room.
fn only_istio(mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.retain(|s| s.name.starts_with("istio_"));
    samples
}
