//! Consistent hashing: Envoy's ketama ring (`RING_HASH`) and Maglev table.
//!
//! # The hash function
//! Envoy's `XX_HASH` is xxHash64. This proxy uses 64-bit FNV-1a followed by
//! the MurmurHash3 `fmix64` finalizer instead: it is a few lines, has no
//! dependency, is stable across builds and platforms (std's `DefaultHasher`
//! is not promised to be), and the finalizer gives FNV the avalanche that
//! ring points of similar keys (`10.0.0.1:80_0`, `10.0.0.1:80_1`, ...) need to
//! spread evenly. The values differ from Envoy's, so a key may land on another
//! endpoint than an Envoy sidecar would pick; it is consistent among these
//! proxies, which is what matters.

use std::net::SocketAddr;

use crate::config::RingHash;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The 64-bit hash of `bytes`.
pub fn hash(bytes: &[u8]) -> u64 {
    hash_seeded(bytes, 0)
}

/// The 64-bit hash of `bytes`, varied by `seed` (for chaining and Maglev's skip).
pub fn hash_seeded(bytes: &[u8], seed: u64) -> u64 {
    let mut h = FNV_OFFSET ^ fmix64(seed);
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

/// MurmurHash3's finalizer: every input bit flips each output bit with ~50%.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// An endpoint as the tables see it.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// The endpoint's index in its cluster.
    pub index: usize,
    pub address: SocketAddr,
    pub weight: u32,
}

/// How many ring points a unit of weight gets, as Envoy sizes the ring: the
/// lightest endpoint gets a whole number of points, at least
/// `minimum_ring_size` in all and at most `maximum_ring_size`.
///
/// Computed once per cluster from all its endpoints, so that a ring without
/// the ejected endpoints keeps everyone else's points where they were: an
/// ejection moves only the ejected endpoint's keys. (Envoy sizes the ring for
/// the healthy endpoints, which moves a few more.)
pub fn points_per_weight(hosts: &[Host], config: RingHash) -> f64 {
    let total: f64 = hosts.iter().map(|h| f64::from(h.weight)).sum();
    let Some(lightest) = hosts.iter().map(|h| h.weight).min() else {
        return 0.0;
    };
    let min_share = f64::from(lightest) / total;
    let ring = ((min_share * config.minimum_ring_size as f64).ceil() / min_share)
        .min(config.maximum_ring_size as f64);
    ring / total
}

/// A ketama ring: points sorted by hash, each owned by an endpoint.
#[derive(Debug)]
pub struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Endpoint `h` gets `weight * points_per_weight` points (at least one),
    /// hashed from `"<address>_<n>"` as Envoy names them.
    pub fn build(hosts: &[Host], points_per_weight: f64) -> Ring {
        let mut points = Vec::new();
        for host in hosts {
            let count = ((f64::from(host.weight) * points_per_weight).round() as u64).max(1);
            let index = u32::try_from(host.index).expect("fewer than 2^32 endpoints");
            let prefix = format!("{}_", host.address);
            let mut key = prefix.clone();
            for n in 0..count {
                key.truncate(prefix.len());
                key.push_str(&n.to_string());
                points.push((hash(key.as_bytes()), index));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The owner of the first point at or after `hash`, wrapping around. A
    /// retry looking for another host (`attempt` > 0) moves on that many
    /// points, as Envoy does.
    pub fn get(&self, hash: u64, attempt: u32) -> usize {
        let at = self.points.partition_point(|(h, _)| *h < hash);
        let at = (at + attempt as usize) % self.points.len();
        self.points[at].1 as usize
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points.len()
    }
}

/// A Maglev lookup table: slot `hash % size` names the endpoint.
#[derive(Debug)]
pub struct Maglev {
    table: Vec<u32>,
}

impl Maglev {
    /// Fills a table of `size` (a prime) slots from each endpoint's
    /// permutation, heavier endpoints taking turns more often.
    pub fn build(hosts: &[Host], size: u64) -> Maglev {
        struct Build {
            index: u32,
            offset: u64,
            skip: u64,
            weight: u128,
            target: u128,
            next: u64,
        }
        let mut builds: Vec<Build> = hosts
            .iter()
            .map(|h| {
                let key = h.address.to_string();
                Build {
                    index: u32::try_from(h.index).expect("fewer than 2^32 endpoints"),
                    offset: hash(key.as_bytes()) % size,
                    skip: hash_seeded(key.as_bytes(), 1) % (size - 1).max(1) + 1,
                    weight: u128::from(h.weight),
                    target: 0,
                    next: 0,
                }
            })
            .collect();
        let heaviest = builds.iter().map(|b| b.weight).max().unwrap_or(1);
        let size_usize = usize::try_from(size).expect("the table fits in memory");
        let mut table = vec![u32::MAX; size_usize];
        let mut filled = 0;
        let mut iteration: u128 = 1;
        while filled < size_usize && !builds.is_empty() {
            for build in &mut builds {
                if filled == size_usize {
                    break;
                }
                // An endpoint of the heaviest weight takes a slot every
                // iteration; one of a third of it every third iteration.
                if iteration * build.weight < build.target {
                    continue;
                }
                build.target += heaviest;
                let mut slot = ((build.offset + build.skip * build.next) % size) as usize;
                while table[slot] != u32::MAX {
                    build.next += 1;
                    slot = ((build.offset + build.skip * build.next) % size) as usize;
                }
                table[slot] = build.index;
                build.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Maglev { table }
    }

    /// The endpoint of `hash`'s slot. A retry looking for another host
    /// (`attempt` > 0) flips most bits of the hash, as Envoy does.
    pub fn get(&self, hash: u64, attempt: u32) -> usize {
        let hash = if attempt > 0 {
            hash ^ (u64::MAX - u64::from(attempt) + 1)
        } else {
            hash
        };
        self.table[(hash % self.table.len() as u64) as usize] as usize
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn hosts(weights: &[u32]) -> Vec<Host> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| Host {
                index: i,
                address: format!("10.0.{}.{}:8080", i / 250, i % 250 + 1)
                    .parse()
                    .unwrap(),
                weight: *w,
            })
            .collect()
    }

    fn keys(n: usize) -> impl Iterator<Item = u64> {
        (0..n).map(|k| hash(format!("user-{k}").as_bytes()))
    }

    fn shares(get: impl Fn(u64) -> usize, n: usize) -> BTreeMap<usize, f64> {
        let mut counts = BTreeMap::new();
        for key in keys(n) {
            *counts.entry(get(key)).or_insert(0.0) += 1.0;
        }
        counts.values_mut().for_each(|c| *c /= n as f64);
        counts
    }

    fn assert_shares(shares: &BTreeMap<usize, f64>, weights: &[u32], tolerance: f64) {
        let total: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let want = f64::from(*w) / f64::from(total);
            let got = shares.get(&i).copied().unwrap_or(0.0);
            assert!(
                (got - want).abs() <= want * tolerance,
                "endpoint {i}: share {got:.3}, want {want:.3} ± {:.0}%: {shares:?}",
                tolerance * 100.0
            );
        }
    }

    #[test]
    fn the_hash_is_stable_and_spreads() {
        assert_eq!(hash(b""), hash(b""));
        assert_ne!(hash(b"a"), hash(b"b"));
        assert_ne!(hash_seeded(b"a", 1), hash(b"a"));
        // Similar keys land all over the range.
        let tops: std::collections::BTreeSet<u64> = (0..64)
            .map(|i| hash(format!("k_{i}").as_bytes()) >> 60)
            .collect();
        assert!(tops.len() >= 12, "{tops:?}");
    }

    #[test]
    fn ring_size_follows_the_config() {
        let ring = RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 8 * 1024 * 1024,
        };
        let equal = hosts(&[1, 1, 1, 1]);
        let built = Ring::build(&equal, points_per_weight(&equal, ring));
        assert_eq!(built.len(), 1024);
        let three = hosts(&[1, 1, 1]);
        assert_eq!(
            Ring::build(&three, points_per_weight(&three, ring)).len(),
            3 * 342
        );
        let capped = RingHash {
            minimum_ring_size: 1024,
            maximum_ring_size: 100,
        };
        let weighted = hosts(&[1, 1000]);
        let built = Ring::build(&weighted, points_per_weight(&weighted, capped));
        assert!(built.len() <= 101, "{}", built.len());
    }

    #[test]
    fn a_key_stays_on_one_endpoint() {
        let hosts = hosts(&[1, 1, 1]);
        let ring = Ring::build(&hosts, points_per_weight(&hosts, RingHash::default()));
        let maglev = Maglev::build(&hosts, 65537);
        for key in keys(100) {
            let (on_ring, on_table) = (ring.get(key, 0), maglev.get(key, 0));
            for _ in 0..10 {
                assert_eq!(ring.get(key, 0), on_ring);
                assert_eq!(maglev.get(key, 0), on_table);
            }
        }
        // The same endpoints in another order make the same choices.
        let mut reversed = hosts.clone();
        reversed.reverse();
        let ring2 = Ring::build(&reversed, points_per_weight(&reversed, RingHash::default()));
        let maglev2 = Maglev::build(&reversed, 65537);
        let ring_same = keys(1000).filter(|k| ring.get(*k, 0) == ring2.get(*k, 0));
        assert_eq!(ring_same.count(), 1000);
        let maglev_same = keys(1000).filter(|k| maglev.get(*k, 0) == maglev2.get(*k, 0));
        assert!(maglev_same.count() > 900);
    }

    #[test]
    fn distribution_follows_weights() {
        let weights = [1, 2, 3, 4];
        let hosts = hosts(&weights);
        let ring = Ring::build(&hosts, points_per_weight(&hosts, RingHash::default()));
        assert_shares(&shares(|k| ring.get(k, 0), 50_000), &weights, 0.25);
        let maglev = Maglev::build(&hosts, 65537);
        assert_shares(&shares(|k| maglev.get(k, 0), 50_000), &weights, 0.05);
        let equal = [1; 7];
        let hosts = super::tests::hosts(&equal);
        let ring = Ring::build(&hosts, points_per_weight(&hosts, RingHash::default()));
        assert_shares(&shares(|k| ring.get(k, 0), 50_000), &equal, 0.25);
        let maglev = Maglev::build(&hosts, 65537);
        assert_shares(&shares(|k| maglev.get(k, 0), 50_000), &equal, 0.05);
    }

    #[test]
    fn removing_one_endpoint_moves_only_its_keys() {
        let n = 5;
        let all = hosts(&vec![1; n]);
        let scale = points_per_weight(&all, RingHash::default());
        let ring = Ring::build(&all, scale);
        let without: Vec<Host> = all.iter().copied().filter(|h| h.index != 2).collect();
        let smaller = Ring::build(&without, scale);
        let total = 20_000;
        let mut moved = 0;
        for key in keys(total) {
            let (before, after) = (ring.get(key, 0), smaller.get(key, 0));
            assert_ne!(after, 2);
            if before != after {
                assert_eq!(before, 2, "only the removed endpoint's keys move");
                moved += 1;
            }
        }
        let share = moved as f64 / total as f64;
        assert!((share - 0.2).abs() < 0.06, "moved {share:.3}, ~1/{n}");

        // Maglev moves a little more than 1/n, as its paper says.
        let table = Maglev::build(&all, 65537);
        let smaller = Maglev::build(&without, 65537);
        let moved = keys(total)
            .filter(|k| table.get(*k, 0) != smaller.get(*k, 0))
            .count();
        let share = moved as f64 / total as f64;
        assert!((0.15..0.3).contains(&share), "moved {share:.3}, ~1/{n}");
    }

    #[test]
    fn retries_look_elsewhere() {
        let hosts = hosts(&[1, 1, 1]);
        let ring = Ring::build(&hosts, points_per_weight(&hosts, RingHash::default()));
        let maglev = Maglev::build(&hosts, 251);
        let ring_moves = keys(1000).filter(|k| ring.get(*k, 1) != ring.get(*k, 0));
        assert!(ring_moves.count() > 400);
        let maglev_moves = keys(1000).filter(|k| maglev.get(*k, 1) != maglev.get(*k, 0));
        assert!(maglev_moves.count() > 400);
    }

    #[test]
    fn a_small_table_still_serves_everyone() {
        let hosts = hosts(&[1, 1, 1]);
        let maglev = Maglev::build(&hosts, 7);
        let mut seen: Vec<usize> = (0..7).map(|slot| maglev.table[slot] as usize).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, [0, 1, 2]);
        let one = Maglev::build(&hosts[..1], 2);
        assert_eq!(one.table, [0, 0]);
    }
}
