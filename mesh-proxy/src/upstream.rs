//! The clusters as the data path uses them: endpoints to pick, a connection
//! pool, and counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::{Cluster, Config};
use crate::lb::Balancer;
use crate::stats::ClusterStats;

#[derive(Debug)]
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    pub balancer: Arc<Balancer>,
    /// Pooled HTTP/1.1 connections to the cluster's endpoints.
    pub client: Client<HttpConnector, Incoming>,
    pub stats: ClusterStats,
}

/// Every cluster by name.
pub type Upstreams = BTreeMap<String, Arc<Upstream>>;

pub fn build(config: &Config) -> Upstreams {
    config
        .clusters
        .iter()
        .map(|(name, cluster)| (name.clone(), Arc::new(Upstream::new(Arc::clone(cluster)))))
        .collect()
}

impl Upstream {
    fn new(cluster: Arc<Cluster>) -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cluster.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Upstream {
            balancer: Arc::new(Balancer::new(&cluster)),
            cluster,
            client,
            stats: ClusterStats::default(),
        }
    }
}
