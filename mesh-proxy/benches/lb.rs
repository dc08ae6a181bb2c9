//! Picks from a cluster of 1000 endpoints under each load-balancing policy,
//! and with priority levels and weighted localities; the cluster is compiled
//! from Envoy JSON the way the proxy compiles its bootstrap.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use mesh_proxy::config::Config;
use mesh_proxy::lb::Balancer;
use serde_json::{Value, json};

const ENDPOINTS: usize = 1000;

fn endpoint(i: usize) -> Value {
    json!({"endpoint": {"address": {"socket_address": {
        "address": format!("10.0.{}.{}", i / 250, i % 250 + 1), "port_value": 8080}}},
        "load_balancing_weight": 1 + i % 3})
}

/// The balancer of a cluster with these `load_assignment.endpoints` and
/// other fields.
fn balancer(localities: Value, fields: Value) -> Arc<Balancer> {
    let mut cluster = json!({"name": "bench",
        "load_assignment": {"cluster_name": "bench", "endpoints": localities}});
    for (key, value) in fields.as_object().unwrap() {
        cluster[key] = value.clone();
    }
    let bootstrap: Bootstrap =
        mesh_api::envoy::from_json(&json!({"static_resources": {"clusters": [cluster]}}))
            .expect("valid Envoy JSON");
    let config = Config::from_bootstrap(&bootstrap).expect("a valid bootstrap");
    Arc::new(Balancer::new(&config.clusters["bench"]))
}

fn one_locality() -> Value {
    json!([{"lb_endpoints": (0..ENDPOINTS).map(endpoint).collect::<Vec<_>>()}])
}

/// Two priority levels of ten zones each, zones weighted 1 to 10.
fn zones() -> Value {
    let zone = |z: usize| {
        let members: Vec<Value> = (0..ENDPOINTS / 20)
            .map(|n| endpoint(z * ENDPOINTS / 20 + n))
            .collect();
        json!({"locality": {"region": "eu", "zone": format!("zone-{}", z % 10)},
            "priority": z / 10, "load_balancing_weight": 1 + z % 10, "lb_endpoints": members})
    };
    Value::Array((0..20).map(zone).collect())
}

/// Spreads consecutive numbers over the whole 64-bit range, as hash keys are.
fn key(n: u64) -> u64 {
    n.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
}

fn policies(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick of 1000 endpoints");
    for (name, policy) in [
        ("round_robin", "ROUND_ROBIN"),
        ("least_request", "LEAST_REQUEST"),
        ("random", "RANDOM"),
        ("ring_hash", "RING_HASH"),
        ("maglev", "MAGLEV"),
    ] {
        let balancer = balancer(one_locality(), json!({"lb_policy": policy}));
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                black_box(balancer.pick_hashed(Some(key(n)), 0))
            })
        });
    }
    group.finish();
}

fn priorities_and_localities(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick of 1000 endpoints in 2 priorities x 10 zones");
    for (name, policy) in [
        ("round_robin", "ROUND_ROBIN"),
        ("least_request", "LEAST_REQUEST"),
        ("ring_hash", "RING_HASH"),
        ("maglev", "MAGLEV"),
    ] {
        let balancer = balancer(
            zones(),
            json!({"lb_policy": policy,
                "common_lb_config": {"locality_weighted_lb_config": {}}}),
        );
        // Two thirds of priority 0 failing: it keeps 46% of the load
        // (1/3 x 1.4) and the rest spills to priority 1.
        for i in (0..ENDPOINTS / 2).filter(|i| i % 3 != 0) {
            balancer.health().set_failed(i, true);
        }
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                black_box(balancer.pick_hashed(Some(key(n)), 0))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, policies, priorities_and_localities);
criterion_main!(benches);
