//! The clusters as the data path uses them: endpoints to pick, a connection
//! pool, and counters.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::{Cluster, Config, Endpoint, ServiceRef};
use crate::lb::{Balancer, Downstream, Pick};
use crate::stats::{ClusterStats, ConnectionStats};
use crate::tls::{Connector, TlsStats};

mod pool;

pub use pool::{ConnectFailure, Pool, PooledBody, SendError};

#[derive(Debug)]
pub struct Upstream {
    pub cluster: Arc<Cluster>,
    /// The cluster's name, shared with every response's [`ResponseInfo`](crate::http::info::ResponseInfo).
    pub name: Arc<str>,
    pub balancer: Arc<Balancer>,
    /// Pooled connections to the cluster's endpoints (HTTP/1.1, or HTTP/2 when asked).
    pub pool: Pool,
    /// TCP, then TLS for the endpoints that have it.
    pub connector: Connector,
    /// HTTP/2 connections for the proxy's own gRPC calls, made when first needed.
    grpc: OnceLock<Pool>,
    pub stats: ClusterStats,
    /// The service the cluster stands for, for Istio's metrics.
    pub service: Option<Arc<ServiceRef>>,
    active_requests: AtomicU32,
    active_retries: AtomicU32,
}

/// A request admitted by the circuit breakers; dropping it frees the slot.
#[derive(Debug)]
pub struct Admitted<'a>(&'a AtomicU32);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
    /// A cluster's endpoints, pool and counters, fresh; outlier detection
    /// sweeps run while it lives.
    pub fn new(cluster: Arc<Cluster>) -> Upstream {
        let tls: Arc<HashMap<_, _>> = Arc::new(
            cluster
                .endpoints
                .iter()
                .filter_map(|e| Some((e.address, Arc::clone(cluster.tls_for(e)?))))
                .collect(),
        );
        let tls_stats = Arc::new(TlsStats::default());
        // An ORIGINAL_DST cluster's endpoints come with requests: they get
        // the TLS an endpoint without metadata would.
        let others = cluster
            .original_dst
            .as_ref()
            .and_then(|_| cluster.tls_for(&Endpoint::at(SocketAddr::from(([0, 0, 0, 0], 0)))))
            .cloned();
        let tls_used = !tls.is_empty() || others.is_some();
        let connector = Connector::new(tls, cluster.connect_timeout, Arc::clone(&tls_stats))
            .bound_to(cluster.bind)
            .others_with(others);
        let connections = Arc::new(ConnectionStats::default());
        let pool = Pool::new(
            connector.clone(),
            cluster.http2,
            cluster.connections,
            Arc::clone(&connections),
        );
        let balancer = Arc::new(Balancer::new(&cluster));
        balancer.start_outlier_sweeps();
        Upstream {
            name: Arc::from(cluster.name.as_str()),
            stats: ClusterStats {
                outlier: balancer.outlier_stats(),
                health: cluster.health_check.as_ref().map(|_| Arc::default()),
                tls: tls_used.then_some(tls_stats),
                connections,
                ..ClusterStats::default()
            },
            balancer,
            service: cluster.services.first().cloned().map(Arc::new),
            cluster,
            pool,
            connector,
            grpc: OnceLock::new(),
            active_requests: AtomicU32::new(0),
            active_retries: AtomicU32::new(0),
        }
    }

    /// The endpoint for `request`: where its client meant to connect for an
    /// ORIGINAL_DST cluster, else the balancer's pick for the hash `key`
    /// (see [`Balancer::pick_hashed`]). Only ORIGINAL_DST reads the
    /// request's connection addresses.
    pub fn pick_hashed(
        &self,
        request: &http::request::Parts,
        key: Option<u64>,
        attempt: u32,
    ) -> Option<Pick> {
        match &self.cluster.original_dst {
            Some(original) => {
                let downstream = request.extensions.get::<Downstream>().copied();
                original
                    .target(downstream, Some(&request.headers))
                    .map(Pick::direct)
            }
            None => self.balancer.pick_hashed(key, attempt),
        }
    }

    /// The endpoint for a request that does not hash (an upgrade, a
    /// mirrored copy).
    pub fn pick_for(&self, request: &http::request::Parts) -> Option<Pick> {
        self.pick_hashed(request, None, 0)
    }

    /// The endpoint for a TCP connection from `downstream`.
    pub fn pick_for_connection(&self, downstream: Option<Downstream>) -> Option<Pick> {
        match &self.cluster.original_dst {
            Some(original) => original.target(downstream, None).map(Pick::direct),
            None => self.balancer.pick(),
        }
    }

    /// Connections speaking HTTP/2 to the endpoints, as gRPC needs, for
    /// calls the proxy itself makes (span export): the cluster's own pool
    /// when the cluster is HTTP/2 already.
    pub fn grpc_pool(&self) -> &Pool {
        if self.cluster.http2 {
            return &self.pool;
        }
        self.grpc.get_or_init(|| {
            let stats = Arc::clone(&self.stats.connections);
            Pool::new(
                self.connector.clone(),
                true,
                self.cluster.connections,
                stats,
            )
        })
    }

    /// Admits a request unless the circuit breakers are open. Over HTTP/1.1
    /// each request needs a connection, so at most `max_connections` run and
    /// `max_pending_requests` wait; over HTTP/2 `max_requests` bounds them.
    pub fn admit(&self) -> Option<Admitted<'_>> {
        let limits = self.cluster.limits;
        let mut ceiling = limits.max_requests;
        if !self.cluster.http2 {
            ceiling = ceiling.min(
                limits
                    .max_connections
                    .saturating_add(limits.max_pending_requests),
            );
        }
        take_slot(&self.active_requests, ceiling).or_else(|| {
            self.stats
                .rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            None
        })
    }

    /// Allows one more retry unless `max_retries` are already under way.
    pub fn admit_retry(&self) -> Option<Admitted<'_>> {
        take_slot(&self.active_retries, self.cluster.limits.max_retries).or_else(|| {
            self.stats.rq_retry_overflow.fetch_add(1, Ordering::Relaxed);
            None
        })
    }
}

fn take_slot(counter: &AtomicU32, ceiling: u32) -> Option<Admitted<'_>> {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < ceiling).then_some(n + 1)
        })
        .ok()
        .map(|_| Admitted(counter))
}
