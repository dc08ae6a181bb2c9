//! Keeps what the page shows up to date: the graph from recent scrapes and
//! the control plane's config, each refreshed by its own loop, published
//! as JSON ready to serve.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::config;
use super::fetch::Fetcher;
use super::graph::{self, Graph, Proxy, ProxyState};
use super::scrape::{self, Scrape};
use super::targets::{self, Target};

/// How often the proxies are scraped.
const GRAPH_REFRESH: Duration = Duration::from_secs(2);
/// How often the control plane's config is read.
const CONFIG_REFRESH: Duration = Duration::from_secs(3);
/// Rates are averaged over about this long: long enough that a request
/// now and then does not make an edge blink, short enough to follow a
/// change of routing within seconds.
const WINDOW: Duration = Duration::from_secs(10);

/// The latest JSON of `/api/graph` and `/api/config`.
#[derive(Clone, Debug)]
pub struct Published {
    pub graph: watch::Receiver<Bytes>,
    pub config: watch::Receiver<Bytes>,
}

/// `/api/graph`: the graph, and what is wrong with the targets file.
#[derive(Debug, Serialize)]
struct GraphPage<'a> {
    #[serde(flatten)]
    graph: &'a Graph,
    targets_error: Option<String>,
    updated_unix_ms: u128,
}

/// Starts both loops on the current runtime.
pub fn start(targets: PathBuf, control_plane: String) -> Published {
    let fetcher = Fetcher::new();
    let (graph_sender, graph) = watch::channel(Bytes::from_static(b"{}"));
    let (config_sender, config) = watch::channel(Bytes::from_static(b"{}"));
    tokio::spawn(follow_proxies(targets, fetcher.clone(), graph_sender));
    tokio::spawn(follow_config(control_plane, fetcher, config_sender));
    Published { graph, config }
}

async fn follow_proxies(path: PathBuf, fetcher: Fetcher, sender: watch::Sender<Bytes>) {
    let mut history = History::default();
    let mut last_targets: Vec<Target> = Vec::new();
    let mut ticks = tokio::time::interval(GRAPH_REFRESH);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // A file written by hand may be broken for a while: keep the last
        // good list and say what is wrong.
        let targets_error = match targets::read(&path) {
            Ok(targets) => {
                last_targets = targets;
                None
            }
            Err(err) => Some(format!("{err:#}")),
        };
        history.push(scrape::scrape(&fetcher, last_targets.clone()).await);
        let page = GraphPage {
            graph: &history.graph(),
            targets_error,
            updated_unix_ms: now_ms(),
        };
        let json = serde_json::to_vec(&page).expect("the graph serializes");
        sender.send_replace(Bytes::from(json));
    }
}

async fn follow_config(control_plane: String, fetcher: Fetcher, sender: watch::Sender<Bytes>) {
    let reader = config::Reader::new(&control_plane, fetcher);
    let mut ticks = tokio::time::interval(CONFIG_REFRESH);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let view = reader.read().await;
        let json = serde_json::to_vec(&view).expect("the config serializes");
        sender.send_replace(Bytes::from(json));
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// The scrapes of the last [`WINDOW`], oldest first.
#[derive(Debug, Default)]
struct History(VecDeque<Scrape>);

impl History {
    fn push(&mut self, scrape: Scrape) {
        let newest = scrape.at;
        self.0.push_back(scrape);
        while self
            .0
            .front()
            .is_some_and(|oldest| newest.duration_since(oldest.at) > WINDOW)
        {
            self.0.pop_front();
        }
    }

    /// The graph of the newest scrape against, for each proxy, the oldest
    /// scrape that read it within the window: a proxy that just appeared
    /// is measured as soon as it was read twice.
    fn graph(&self) -> Graph {
        let Some(newest) = self.0.back() else {
            return Graph::default();
        };
        let earlier = || self.0.range(..self.0.len() - 1);
        let proxies: Vec<Proxy> = newest
            .proxies
            .iter()
            .map(|scraped| {
                let state = match &scraped.samples {
                    Err(error) => ProxyState::Failed(error),
                    Ok(now) => earlier()
                        .find_map(|old| {
                            let before = old.proxies.iter().find(|p| p.target == scraped.target)?;
                            Some(ProxyState::Measured {
                                seconds: newest.at.duration_since(old.at).as_secs_f64(),
                                before: before.samples.as_deref().ok()?,
                                now,
                            })
                        })
                        .unwrap_or(ProxyState::Waiting),
                };
                Proxy {
                    target: &scraped.target,
                    state,
                }
            })
            .collect();
        graph::build(&proxies)
    }
}
