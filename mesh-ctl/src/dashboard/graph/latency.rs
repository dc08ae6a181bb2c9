//! Quantiles from histogram buckets, as Prometheus' `histogram_quantile`
//! computes them: find the bucket the rank falls in and interpolate
//! linearly inside it, assuming requests spread evenly across the bucket.

/// Cumulative bucket counts by upper bound, summed across series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// Adds `count` to the bucket of upper bound `le`.
    pub fn add(&mut self, le: f64, count: f64) {
        match self.0.iter_mut().find(|(bound, _)| *bound == le) {
            Some((_, total)) => *total += count,
            None => self.0.push((le, count)),
        }
    }

    /// The `q` quantile (0..=1), or `None` without observations. A rank in
    /// the `+Inf` bucket gives the highest finite bound: all that is known.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut buckets = self.0.clone();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last().filter(|(le, _)| le.is_infinite())?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let index = buckets.iter().position(|(_, count)| *count >= rank)?;
        let (upper, count) = buckets[index];
        let (lower, below) = match index {
            0 => (0.0, 0.0),
            _ => buckets[index - 1],
        };
        if upper.is_infinite() {
            return Some(lower);
        }
        if count <= below {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / (count - below))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Buckets {
        let mut buckets = Buckets::default();
        for (le, count) in pairs {
            buckets.add(*le, *count);
        }
        buckets
    }

    #[test]
    fn interpolates_inside_the_bucket_of_the_rank() {
        // 100 requests: 50 up to 10 ms, 40 in (10, 25], 10 in (25, 50].
        let b = buckets(&[
            (50.0, 100.0),
            (10.0, 50.0),
            (25.0, 90.0),
            (f64::INFINITY, 100.0),
        ]);
        assert_eq!(b.quantile(0.5), Some(10.0));
        assert_eq!(b.quantile(0.99), Some(25.0 + 25.0 * 9.0 / 10.0));
        // In the first bucket, from zero.
        assert_eq!(b.quantile(0.25), Some(5.0));
    }

    #[test]
    fn series_add_up_and_the_inf_bucket_gives_the_last_bound() {
        let mut b = buckets(&[(100.0, 1.0), (f64::INFINITY, 1.0)]);
        b.add(100.0, 1.0);
        b.add(f64::INFINITY, 4.0);
        assert_eq!(b.quantile(0.99), Some(100.0), "98% of 5 lies past 100 ms");
        assert_eq!(buckets(&[(f64::INFINITY, 0.0)]).quantile(0.99), None);
        assert_eq!(buckets(&[(10.0, 3.0)]).quantile(0.99), None, "no +Inf");
    }
}
