//! The balancer's policies, health, ejections, priorities and localities.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::config::{HttpConnections, Maglev, OutlierDetection, RingHash};

const HASHING: [LbPolicy; 2] = [
    LbPolicy::RingHash(RingHash {
        minimum_ring_size: 1024,
        maximum_ring_size: 8 * 1024 * 1024,
    }),
    LbPolicy::Maglev(Maglev { table_size: 65537 }),
];

const ALL: [LbPolicy; 5] = [
    LbPolicy::RoundRobin,
    LbPolicy::LeastRequest,
    LbPolicy::Random,
    HASHING[0],
    HASHING[1],
];

/// Three failures eject for a minute; half the endpoints may go.
fn strict() -> Option<OutlierDetection> {
    Some(OutlierDetection {
        consecutive_5xx: 3,
        base_ejection_time: Duration::from_secs(60),
        max_ejection_percent: 50,
        ..OutlierDetection::default()
    })
}

fn port_of(balancer: &Arc<Balancer>, key: Option<u64>) -> u16 {
    balancer
        .pick_hashed(key, 0)
        .unwrap()
        .endpoint()
        .address
        .port()
}

fn eject(balancer: &Arc<Balancer>, port: u16) {
    let index = balancer
        .endpoints
        .iter()
        .position(|e| e.address.port() == port)
        .unwrap();
    let pick = Pick(Picked::Balanced {
        balancer: Arc::clone(balancer),
        index,
    });
    balancer.active[index].fetch_add(1, Ordering::Relaxed);
    for _ in 0..3 {
        pick.report(500);
    }
}

#[test]
fn hashing_keeps_a_key_on_one_endpoint_and_follows_weights() {
    for policy in HASHING {
        let balancer = cluster(policy, &[1, 1, 2]);
        let mut counts = BTreeMap::<u16, usize>::new();
        for user in 0..3000u64 {
            let key = Some(hash::hash(&user.to_be_bytes()));
            let first = port_of(&balancer, key);
            for _ in 0..3 {
                assert_eq!(port_of(&balancer, key), first, "{policy:?}");
            }
            *counts.entry(first).or_default() += 1;
        }
        let heavy = counts[&9002] as f64 / 3000.0;
        assert!((0.4..0.6).contains(&heavy), "{policy:?}: {counts:?}");
    }
}

#[test]
fn hashing_without_a_key_is_random_and_other_policies_ignore_keys() {
    for policy in HASHING {
        let balancer = cluster(policy, &[1, 1, 1]);
        let seen: BTreeSet<u16> = (0..200).map(|_| port_of(&balancer, None)).collect();
        assert_eq!(seen.len(), 3, "{policy:?}");
    }
    let balancer = cluster(LbPolicy::RoundRobin, &[1, 1, 1]);
    let key = Some(42);
    let ports: Vec<u16> = (0..6).map(|_| port_of(&balancer, key)).collect();
    assert_eq!(ports, [9000, 9001, 9002, 9000, 9001, 9002]);
}

#[test]
fn every_policy_skips_ejected_endpoints() {
    for policy in ALL {
        let balancer = with_outlier(policy, &[1, 1, 1, 1], strict());
        eject(&balancer, 9001);
        for n in 0..400u64 {
            let key = Some(hash::hash(&n.to_be_bytes()));
            assert_ne!(port_of(&balancer, key), 9001, "{policy:?}");
        }
        let stats = balancer.outlier_stats().unwrap();
        assert_eq!(stats.ejections_active.load(Ordering::Relaxed), 1);
        assert_eq!(stats.ejections_enforced_total.load(Ordering::Relaxed), 1);
    }
}

#[test]
fn ejecting_moves_only_the_ejected_endpoints_keys() {
    for policy in HASHING {
        let balancer = with_outlier(policy, &[1, 1, 1, 1], strict());
        let keys: Vec<Option<u64>> = (0..2000u64)
            .map(|n| Some(hash::hash(&n.to_be_bytes())))
            .collect();
        let before: Vec<u16> = keys.iter().map(|k| port_of(&balancer, *k)).collect();
        eject(&balancer, 9003);
        for (key, was) in keys.iter().zip(&before) {
            let now = port_of(&balancer, *key);
            if *was != 9003 {
                // Maglev may move a few more, as its paper says.
                if matches!(policy, LbPolicy::RingHash(_)) {
                    assert_eq!(now, *was, "{policy:?}");
                }
            } else {
                assert_ne!(now, 9003);
            }
        }
    }
}

#[test]
fn when_all_are_ejected_all_serve() {
    let mut config = strict().unwrap();
    config.max_ejection_percent = 100;
    for policy in ALL {
        let balancer = with_outlier(policy, &[1, 1], Some(config));
        eject(&balancer, 9000);
        let seen: BTreeSet<u16> = (0..50).map(|_| port_of(&balancer, None)).collect();
        assert_eq!(seen, BTreeSet::from([9001]), "{policy:?}");
        eject(&balancer, 9001);
        let seen: BTreeSet<u16> = (0..200).map(|_| port_of(&balancer, None)).collect();
        assert_eq!(seen, BTreeSet::from([9000, 9001]), "{policy:?}: panic mode");
    }
}

fn cluster(policy: LbPolicy, weights: &[u32]) -> Arc<Balancer> {
    with_outlier(policy, weights, None)
}

fn with_outlier(
    policy: LbPolicy,
    weights: &[u32],
    outlier: Option<OutlierDetection>,
) -> Arc<Balancer> {
    let endpoints = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Endpoint {
            weight: *w,
            ..endpoint(i)
        })
        .collect();
    balancer(Cluster {
        outlier,
        ..cluster_of(policy, endpoints)
    })
}

/// Endpoint `i` on port 9000 + `i`, of weight 1, at priority 0.
fn endpoint(i: usize) -> Endpoint {
    Endpoint {
        address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
        weight: 1,
        health_status: crate::config::HealthStatus::Unknown,
        locality: Arc::default(),
        priority: 0,
        locality_weight: None,
        health_check: crate::config::EndpointHealthCheck::default(),
        transport_socket_match: Default::default(),
    }
}

fn cluster_of(policy: LbPolicy, endpoints: Vec<Endpoint>) -> Cluster {
    Cluster {
        name: "c".into(),
        connect_timeout: Duration::from_secs(1),
        lb: policy,
        endpoints,
        overprovisioning_factor: crate::config::DEFAULT_OVERPROVISIONING_FACTOR,
        locality_weighted: false,
        http2: false,
        connections: HttpConnections::default(),
        limits: crate::config::Limits::default(),
        outlier: None,
        health_check: None,
        healthy_panic_threshold: crate::config::DEFAULT_PANIC_THRESHOLD,
        services: Vec::new(),
        tls: None,
        transport_socket_matches: Vec::new(),
        original_dst: None,
        bind: None,
    }
}

fn balancer(cluster: Cluster) -> Arc<Balancer> {
    Arc::new(Balancer::new(&cluster))
}

#[test]
fn every_policy_skips_endpoints_failing_health_checks_until_they_pass() {
    for policy in ALL {
        let balancer = cluster(policy, &[1, 1, 1]);
        assert!(balancer.health().set_failed(1, true));
        for n in 0..300u64 {
            let key = Some(hash::hash(&n.to_be_bytes()));
            assert_ne!(port_of(&balancer, key), 9001, "{policy:?}");
        }
        let statuses = balancer.host_statuses();
        assert_eq!(statuses[1].health_flags(), "/failed_active_hc");
        assert_eq!(statuses[0].health_flags(), "healthy");
        assert_eq!(
            balancer.membership(),
            Membership {
                total: 3,
                healthy: 2,
                degraded: 0
            }
        );
        balancer.health().set_failed(1, false);
        let seen: BTreeSet<u16> = (0..300).map(|_| port_of(&balancer, None)).collect();
        assert!(seen.contains(&9001), "{policy:?}: back in service");
    }
}

#[test]
fn reported_health_status_and_the_panic_threshold() {
    use crate::config::HealthStatus;
    let with_statuses = |statuses: &[HealthStatus], threshold: f64| {
        let endpoints = statuses
            .iter()
            .enumerate()
            .map(|(i, status)| Endpoint {
                health_status: *status,
                ..endpoint(i)
            })
            .collect();
        balancer(Cluster {
            healthy_panic_threshold: threshold,
            services: Vec::new(),
            tls: None,
            transport_socket_matches: Vec::new(),
            ..cluster_of(LbPolicy::RoundRobin, endpoints)
        })
    };
    let seen = |balancer: &Arc<Balancer>| -> BTreeSet<u16> {
        (0..100).map(|_| port_of(balancer, None)).collect()
    };
    use HealthStatus::{Degraded, Draining, Healthy, Unhealthy, Unknown};
    // Two healthy of four are 70% available: the degraded one takes the
    // other 30%, as in Envoy.
    let balancer = with_statuses(&[Healthy, Unhealthy, Unknown, Degraded], 50.0);
    assert_eq!(seen(&balancer), BTreeSet::from([9000, 9002, 9003]));
    assert_eq!(
        balancer.host_statuses()[1].health_flags(),
        "/failed_eds_health"
    );
    assert_eq!(
        balancer.host_statuses()[3].health_flags(),
        "/degraded_eds_health"
    );
    // Three of four healthy are fully available: none for the degraded one.
    let balancer = with_statuses(&[Healthy, Healthy, Unknown, Degraded], 50.0);
    assert_eq!(seen(&balancer), BTreeSet::from([9000, 9001, 9002]));
    let balancer = with_statuses(&[Degraded, Draining], 50.0);
    assert_eq!(seen(&balancer), BTreeSet::from([9000]), "degraded, last");
    let balancer = with_statuses(&[Healthy, Unhealthy, Unhealthy], 50.0);
    assert_eq!(seen(&balancer), BTreeSet::from([9000, 9001, 9002]), "panic");
    let balancer = with_statuses(&[Healthy, Unhealthy, Unhealthy], 30.0);
    assert_eq!(seen(&balancer), BTreeSet::from([9000]));
    let balancer = with_statuses(&[Unhealthy, Unhealthy], 0.0);
    assert!(balancer.pick().is_none(), "no panic mode, nothing usable");
}

fn counts(balancer: &Arc<Balancer>, n: usize) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let pick = balancer.pick().unwrap();
        *counts.entry(pick.endpoint().address.port()).or_default() += 1;
    }
    counts
}

#[test]
fn round_robin_follows_weights_exactly() {
    let balancer = cluster(LbPolicy::RoundRobin, &[1, 3]);
    assert_eq!(
        counts(&balancer, 400),
        BTreeMap::from([(9000, 100), (9001, 300)])
    );
}

#[test]
fn random_follows_weights_roughly() {
    fastrand::seed(7);
    let balancer = cluster(LbPolicy::Random, &[1, 1]);
    let counts = counts(&balancer, 2000);
    assert!(
        counts.values().all(|c| (900..=1100).contains(c)),
        "{counts:?}"
    );
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    let balancer = cluster(LbPolicy::LeastRequest, &[1, 1]);
    let held: Vec<Pick> = (0..50)
        .filter_map(|_| balancer.pick())
        .filter(|p| p.endpoint().address.port() == 9000)
        .collect();
    assert!(!held.is_empty());
    let counts = counts(&balancer, 200);
    assert!(
        counts.get(&9001).copied().unwrap_or(0) > counts.get(&9000).copied().unwrap_or(0),
        "{counts:?}"
    );
    drop(held);
    assert!(
        balancer
            .active
            .iter()
            .all(|a| a.load(Ordering::Relaxed) == 0)
    );
}

#[test]
fn an_empty_cluster_has_nothing_to_pick() {
    assert!(cluster(LbPolicy::RoundRobin, &[]).pick().is_none());
}

/// Endpoints `(priority, zone, locality weight)`, in that order from port 9000.
fn placed(placement: &[(u32, &str, Option<u32>)]) -> Vec<Endpoint> {
    placement
        .iter()
        .enumerate()
        .map(|(i, (priority, zone, weight))| Endpoint {
            priority: *priority,
            locality: Arc::new(crate::config::Locality {
                zone: (*zone).to_owned(),
                ..Default::default()
            }),
            locality_weight: *weight,
            ..endpoint(i)
        })
        .collect()
}

/// The share of `n` picks that each port got.
fn shares(balancer: &Arc<Balancer>, n: usize) -> BTreeMap<u16, f64> {
    counts(balancer, n)
        .into_iter()
        .map(|(port, count)| (port, count as f64 / n as f64))
        .collect()
}

/// Only these ports got picks.
fn assert_only(shares: &BTreeMap<u16, f64>, ports: &[u16], context: impl std::fmt::Debug) {
    assert!(
        shares.keys().all(|p| ports.contains(p)),
        "{context:?}: {shares:?}"
    );
}

fn share_of(shares: &BTreeMap<u16, f64>, ports: &[u16]) -> f64 {
    ports.iter().filter_map(|p| shares.get(p)).sum()
}

#[test]
fn a_priority_with_half_its_endpoints_takes_70_percent() {
    for policy in ALL {
        let endpoints = placed(&[0, 0, 0, 0, 1, 1].map(|p| (p, "a", None)));
        let balancer = balancer(cluster_of(policy, endpoints));
        let shares = shares(&balancer, 20_000);
        assert_only(&shares, &[9000, 9001, 9002, 9003], policy);
        balancer.health().set_failed(0, true);
        balancer.health().set_failed(1, true);
        let shares = self::shares(&balancer, 20_000);
        let p0 = share_of(&shares, &[9002, 9003]);
        let p1 = share_of(&shares, &[9004, 9005]);
        assert!((0.67..0.73).contains(&p0), "{policy:?}: {shares:?}");
        assert!((0.27..0.33).contains(&p1), "{policy:?}: {shares:?}");
        assert!((p0 + p1 - 1.0).abs() < 1e-9);
        // All of P0 down: P1 takes everything.
        balancer.health().set_failed(2, true);
        balancer.health().set_failed(3, true);
        let shares = self::shares(&balancer, 1000);
        assert_only(&shares, &[9004, 9005], policy);
        // And back.
        (0..4).for_each(|i| _ = balancer.health().set_failed(i, false));
        let shares = self::shares(&balancer, 1000);
        assert_only(&shares, &[9000, 9001, 9002, 9003], policy);
    }
}

#[test]
fn the_overprovisioning_factor_changes_the_spill() {
    let endpoints = placed(&[(0, "a", None), (0, "a", None), (1, "b", None)]);
    let balancer = balancer(Cluster {
        overprovisioning_factor: 100,
        ..cluster_of(LbPolicy::Random, endpoints)
    });
    balancer.health().set_failed(0, true);
    let p1 = share_of(&shares(&balancer, 20_000), &[9002]);
    assert!(
        (0.47..0.53).contains(&p1),
        "half of P0 is 50% available: {p1}"
    );
}

#[test]
fn panic_across_priorities() {
    // P0 one of four healthy (35%), P1 one of four (35%): 70% in all, and
    // each below half: total panic, each level serves all its endpoints.
    let endpoints = placed(&[0, 0, 0, 0, 1, 1, 1, 1].map(|p| (p, "a", None)));
    let balancer = balancer(cluster_of(LbPolicy::RoundRobin, endpoints));
    for i in [1, 2, 3, 5, 6, 7] {
        balancer.health().set_failed(i, true);
    }
    let shares = shares(&balancer, 8000);
    assert_eq!(shares.len(), 8, "every endpoint serves: {shares:?}");
    let p0 = share_of(&shares, &[9000, 9001, 9002, 9003]);
    assert!(
        (0.46..0.54).contains(&p0),
        "shared by endpoint count: {shares:?}"
    );

    // P1 back to full health: 35% + 100%, no panic, P0 only its healthy one.
    for i in [5, 6, 7] {
        balancer.health().set_failed(i, false);
    }
    let shares = self::shares(&balancer, 8000);
    assert!(!shares.contains_key(&9001), "{shares:?}");
    let p0 = shares[&9000];
    assert!((0.32..0.38).contains(&p0), "{shares:?}");
}

#[test]
fn a_hash_key_stays_on_its_level_and_moves_when_it_fails() {
    for policy in HASHING {
        let endpoints = placed(&[(0, "a", None), (0, "a", None), (1, "b", None)]);
        let balancer = balancer(cluster_of(policy, endpoints));
        let keys: Vec<Option<u64>> = (0..500u64)
            .map(|n| Some(hash::hash(&n.to_be_bytes())))
            .collect();
        for key in &keys {
            assert!(port_of(&balancer, *key) < 9002, "{policy:?}: P0 takes all");
        }
        // One of two at P0: 70% of the keys stay there, each where it was.
        balancer.health().set_failed(1, true);
        let mut on_p1 = 0;
        for key in &keys {
            let first = port_of(&balancer, *key);
            assert_ne!(first, 9001);
            for _ in 0..3 {
                assert_eq!(port_of(&balancer, *key), first, "{policy:?}");
            }
            on_p1 += usize::from(first == 9002);
        }
        let share = on_p1 as f64 / keys.len() as f64;
        assert!((0.22..0.38).contains(&share), "{policy:?}: {share}");
    }
}

#[test]
fn localities_share_a_level_by_weight_and_availability() {
    for policy in [
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::Random,
    ] {
        // Zone a (weight 1) has two endpoints, zone b (weight 3) two with
        // weights 1 and 3, zone c has no weight.
        let mut endpoints = placed(&[
            (0, "a", Some(1)),
            (0, "a", Some(1)),
            (0, "b", Some(3)),
            (0, "b", Some(3)),
            (0, "c", None),
        ]);
        endpoints[3].weight = 3;
        let balancer = balancer(Cluster {
            locality_weighted: true,
            ..cluster_of(policy, endpoints)
        });
        let shares = shares(&balancer, 40_000);
        let near = |got: f64, want: f64| (got - want).abs() < 0.05 * want;
        let a = share_of(&shares, &[9000, 9001]);
        assert!(near(a, 0.25), "{policy:?}: {shares:?}");
        assert!(near(shares[&9002], 0.75 / 4.0), "{policy:?}: {shares:?}");
        assert!(
            near(shares[&9003], 0.75 * 3.0 / 4.0),
            "{policy:?}: {shares:?}"
        );
        assert!(!shares.contains_key(&9004), "no weight, no traffic");

        // Half of zone b down: available 1.4 x 50% = 70%, effective weight
        // 3 x 0.7 = 2.1 against zone a's 1.
        balancer.health().set_failed(3, true);
        let shares = self::shares(&balancer, 40_000);
        let b = shares[&9002];
        assert!(near(b, 2.1 / 3.1), "{policy:?}: {shares:?}");
    }
}

#[test]
fn without_locality_weighting_a_level_is_balanced_as_one() {
    let endpoints = placed(&[(0, "a", Some(1)), (0, "b", Some(9)), (0, "b", Some(9))]);
    let balancer = balancer(cluster_of(LbPolicy::RoundRobin, endpoints));
    assert_eq!(
        counts(&balancer, 300),
        BTreeMap::from([(9000, 100), (9001, 100), (9002, 100)])
    );
}

#[test]
fn effective_locality_weight() {
    assert_eq!(view::effective_weight(10, 2, 2, 140), 10.0);
    assert_eq!(view::effective_weight(10, 1, 2, 140), 7.0);
    assert_eq!(view::effective_weight(10, 1, 2, 100), 5.0);
    assert_eq!(view::effective_weight(10, 0, 2, 140), 0.0);
    assert_eq!(view::effective_weight(0, 2, 2, 140), 0.0);
}

#[test]
fn weighted_choice_never_picks_a_zero_weight_and_follows_the_weights() {
    let choices = vec![("a", 0), ("b", 5)];
    assert!((0..1000).all(|_| *by_weight(&choices) == "b"));
    let choices = vec![("a", 1), ("b", 3)];
    let b = (0..4000).filter(|_| *by_weight(&choices) == "b").count();
    assert!(
        (2700..=3300).contains(&b),
        "{b} of 4000 for a weight of 3 in 4"
    );
}
