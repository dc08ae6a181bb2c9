//! A cluster's `lb_policy`, with `ring_hash_lb_config` and `maglev_lb_config`.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster as EnvoyCluster, cluster};

use super::{At, ConfigError, LbPolicy};

/// `RING_HASH`: a ketama ring of points per endpoint, as many as its weight asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingHash {
    pub minimum_ring_size: u64,
    pub maximum_ring_size: u64,
}

impl Default for RingHash {
    /// Envoy's defaults.
    fn default() -> Self {
        RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: MAX_RING_SIZE,
        }
    }
}

/// `MAGLEV`: a lookup table filled by the endpoints' permutations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Maglev {
    /// A prime.
    pub table_size: u64,
}

impl Default for Maglev {
    /// Envoy's default.
    fn default() -> Self {
        Maglev { table_size: 65537 }
    }
}

/// The largest ring and table Envoy accepts.
const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
const MAX_TABLE_SIZE: u64 = 5_000_011;

pub(super) fn compile(c: &EnvoyCluster, at: &At) -> Result<LbPolicy, ConfigError> {
    let lb_config = c.lb_config.as_ref();
    Ok(match cluster::LbPolicy::try_from(c.lb_policy) {
        Ok(cluster::LbPolicy::RoundRobin) => LbPolicy::RoundRobin,
        Ok(cluster::LbPolicy::LeastRequest) => LbPolicy::LeastRequest,
        Ok(cluster::LbPolicy::Random) => LbPolicy::Random,
        Ok(cluster::LbPolicy::RingHash) => {
            let mut ring = RingHash::default();
            if let Some(cluster::LbConfig::RingHashLbConfig(config)) = lb_config {
                let at = at.field("ring_hash_lb_config");
                use cluster::ring_hash_lb_config::HashFunction;
                if config.hash_function != HashFunction::XxHash as i32 {
                    return Err(at
                        .field("hash_function")
                        .unsupported("hash functions other than XX_HASH"));
                }
                if let Some(size) = config.minimum_ring_size {
                    ring.minimum_ring_size = size.value;
                }
                if let Some(size) = config.maximum_ring_size {
                    ring.maximum_ring_size = size.value;
                }
                for (field, size) in [
                    ("minimum_ring_size", ring.minimum_ring_size),
                    ("maximum_ring_size", ring.maximum_ring_size),
                ] {
                    if size == 0 || size > MAX_RING_SIZE {
                        return Err(at
                            .field(field)
                            .error(format_args!("{size} is not between 1 and {MAX_RING_SIZE}")));
                    }
                }
                if ring.minimum_ring_size > ring.maximum_ring_size {
                    return Err(at.field("minimum_ring_size").error(format_args!(
                        "{} is larger than maximum_ring_size {}",
                        ring.minimum_ring_size, ring.maximum_ring_size
                    )));
                }
            }
            LbPolicy::RingHash(ring)
        }
        Ok(cluster::LbPolicy::Maglev) => {
            let mut maglev = Maglev::default();
            if let Some(cluster::LbConfig::MaglevLbConfig(config)) = lb_config
                && let Some(size) = config.table_size
            {
                let at = at.field("maglev_lb_config").field("table_size");
                if size.value > MAX_TABLE_SIZE || !is_prime(size.value) {
                    return Err(at.error(format_args!(
                        "{} is not a prime up to {MAX_TABLE_SIZE}",
                        size.value
                    )));
                }
                maglev.table_size = size.value;
            }
            LbPolicy::Maglev(maglev)
        }
        _ => {
            return Err(at
                .field("lb_policy")
                .unsupported("this load-balancing policy"));
        }
    })
}

/// Whether `common_lb_config` asks for locality weighted balancing. Zone
/// aware routing is refused: it needs the local cluster's membership.
pub(super) fn locality_weighted(c: &EnvoyCluster, at: &At) -> Result<bool, ConfigError> {
    let Some(common) = &c.common_lb_config else {
        return Ok(false);
    };
    use cluster::common_lb_config::LocalityConfigSpecifier;
    match &common.locality_config_specifier {
        None => Ok(false),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_)) => Ok(true),
        Some(LocalityConfigSpecifier::ZoneAwareLbConfig(_)) => Err(at
            .field("common_lb_config")
            .field("zone_aware_lb_config")
            .unsupported("zone aware routing (it needs the local cluster)")),
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{compile as compile_bootstrap, http_bootstrap};

    fn policy(lb: serde_json::Value) -> Result<LbPolicy, ConfigError> {
        let route = json!({"match": {"prefix": "/"}, "route": {"cluster": "a"}});
        let mut bootstrap = http_bootstrap(
            json!([{"name": "all", "domains": ["*"], "routes": [route]}]),
            &["a"],
        );
        let cluster = &mut bootstrap["static_resources"]["clusters"][0];
        for (key, value) in lb.as_object().unwrap() {
            cluster[key] = value.clone();
        }
        Ok(compile_bootstrap(&bootstrap)?.clusters["a"].lb)
    }

    #[test]
    fn ring_hash_and_maglev_with_their_defaults() {
        assert_eq!(
            policy(json!({"lb_policy": "RING_HASH"})).unwrap(),
            LbPolicy::RingHash(RingHash {
                minimum_ring_size: 1024,
                maximum_ring_size: 8388608
            })
        );
        assert_eq!(
            policy(json!({"lb_policy": "RING_HASH", "ring_hash_lb_config": {
                "minimum_ring_size": 64, "maximum_ring_size": 128, "hash_function": "XX_HASH"}}))
            .unwrap(),
            LbPolicy::RingHash(RingHash {
                minimum_ring_size: 64,
                maximum_ring_size: 128
            })
        );
        assert_eq!(
            policy(json!({"lb_policy": "MAGLEV"})).unwrap(),
            LbPolicy::Maglev(Maglev { table_size: 65537 })
        );
        assert_eq!(
            policy(json!({"lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 251}}))
                .unwrap(),
            LbPolicy::Maglev(Maglev { table_size: 251 })
        );
    }

    #[test]
    fn refuses_bad_sizes() {
        assert_eq!(
            policy(json!({"lb_policy": "RING_HASH", "ring_hash_lb_config": {
                "minimum_ring_size": 256, "maximum_ring_size": 128}}))
            .unwrap_err()
            .to_string(),
            "cluster \"a\": ring_hash_lb_config.minimum_ring_size: 256 is larger than maximum_ring_size 128"
        );
        assert_eq!(
            policy(json!({"lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 65536}}))
                .unwrap_err()
                .to_string(),
            "cluster \"a\": maglev_lb_config.table_size: 65536 is not a prime up to 5000011"
        );
        assert_eq!(
            policy(json!({"lb_policy": "RING_HASH", "ring_hash_lb_config": {"hash_function": "MURMUR_HASH_2"}}))
                .unwrap_err()
                .to_string(),
            "cluster \"a\": ring_hash_lb_config.hash_function: hash functions other than XX_HASH is not supported by this proxy"
        );
    }

    #[test]
    fn primes() {
        let primes: Vec<u64> = (0..30).filter(|n| is_prime(*n)).collect();
        assert_eq!(primes, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65537) && is_prime(5_000_011) && !is_prime(65535));
    }
}
