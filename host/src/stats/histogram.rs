//! Latency histograms cheap enough to be always on: a fixed array of counters per worker, one
//! relaxed add to record a value (no lock, no allocation, no cache line another worker writes),
//! merged into a [`Snapshot`] when someone reads them.
//!
//! Values are microseconds. Up to 16 each value has its own bucket; above, every power of two
//! is cut into eight buckets, so a reported quantile is at most 12.5% above the true one (it is
//! the upper edge of the bucket the quantile falls in). Every power of two is a bucket's upper
//! edge, which is what a Prometheus histogram's `le` bounds are made of
//! ([`Snapshot::cumulative_octaves`]). The range ends at 2^40 µs (twelve days); anything
//! longer is counted in the last bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Exact buckets for the smallest values (after bucket 0, which holds 0).
const LINEAR: usize = 16;
/// Buckets per power of two above them.
const PER_OCTAVE: usize = 8;
/// Powers of two from 2^4 up to 2^40.
const OCTAVES: usize = 36;
/// Buckets in all.
pub const BUCKETS: usize = 1 + LINEAR + OCTAVES * PER_OCTAVE;

/// One worker's histogram.
#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64; BUCKETS]>,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: Box::new([const { AtomicU64::new(0) }; BUCKETS]),
            sum: AtomicU64::new(0),
        }
    }
}

/// The bucket of `us` microseconds: 0 for 0, else one past the bucket of `us - 1` in a scheme
/// whose upper edges are one below each power of two, so that here they fall on them.
fn bucket(us: u64) -> usize {
    let Some(v) = us.checked_sub(1) else {
        return 0;
    };
    if v < LINEAR as u64 {
        return 1 + v as usize;
    }
    let octave = 63 - v.leading_zeros() as usize; // 4 and up
    let step = (v >> (octave - 3)) as usize & (PER_OCTAVE - 1);
    (1 + LINEAR + (octave - 4) * PER_OCTAVE + step).min(BUCKETS - 1)
}

/// The largest value bucket `i` holds, microseconds.
pub fn upper_edge(i: usize) -> u64 {
    let Some(i) = i.checked_sub(1) else {
        return 0;
    };
    if i < LINEAR {
        return i as u64 + 1;
    }
    let octave = (i - LINEAR) / PER_OCTAVE + 4;
    let step = ((i - LINEAR) % PER_OCTAVE) as u64;
    (PER_OCTAVE as u64 + step + 1) << (octave - 3)
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        self.record_us(us);
    }

    /// Records one value in microseconds.
    pub fn record_us(&self, us: u64) {
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
    }

    /// Adds this histogram's counts to `into`.
    pub fn add_to(&self, into: &mut Snapshot) {
        for (total, b) in into.buckets.iter_mut().zip(self.buckets.iter()) {
            *total += b.load(Ordering::Relaxed);
        }
        into.sum += self.sum.load(Ordering::Relaxed);
    }
}

/// Histograms merged for reading.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Count per bucket.
    pub buckets: Vec<u64>,
    /// Sum of the values recorded, microseconds.
    pub sum: u64,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot {
            buckets: vec![0; BUCKETS],
            sum: 0,
        }
    }
}

impl Snapshot {
    /// The merge of `histograms`.
    pub fn of<'a>(histograms: impl IntoIterator<Item = &'a Histogram>) -> Snapshot {
        let mut s = Snapshot::default();
        for h in histograms {
            h.add_to(&mut s);
        }
        s
    }

    /// What was recorded since `earlier`, a snapshot of the same histograms.
    pub fn minus(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&0)))
                .map(|(now, then)| now.saturating_sub(*then))
                .collect(),
            sum: self.sum.saturating_sub(earlier.sum),
        }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The mean, microseconds (0 when empty).
    pub fn mean_us(&self) -> u64 {
        self.sum.checked_div(self.count()).unwrap_or(0)
    }

    /// The `q` quantile (0.5, 0.99), microseconds: the upper edge of its bucket (0 when empty).
    pub fn quantile_us(&self, q: f64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_edge(i);
            }
        }
        upper_edge(BUCKETS - 1)
    }

    /// Cumulative counts at each power of two of microseconds (1 µs, 2, 4, ... 2^40), each a
    /// bucket's upper edge: what a Prometheus histogram's `le` buckets hold. Pairs of (bound in
    /// microseconds, values at or below it).
    pub fn cumulative_octaves(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::with_capacity(OCTAVES + 5);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            let edge = upper_edge(i);
            if edge.is_power_of_two() {
                out.push((edge, seen));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_edges_hold_it() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend((0..40).flat_map(|s| [1u64 << s, (1u64 << s) + 1, (3u64 << s) / 2]));
        for v in values {
            let i = bucket(v);
            let low = if i == 0 { 0 } else { upper_edge(i - 1) + 1 };
            assert!(
                low <= v && v <= upper_edge(i),
                "{v} in bucket {i} [{low}, {}]",
                upper_edge(i)
            );
            if v > LINEAR as u64 {
                assert!(
                    (upper_edge(i) - v) * 8 <= v,
                    "{v}: edge {} is more than 12.5% above",
                    upper_edge(i)
                );
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_and_mean_of_known_values() {
        let h = Histogram::default();
        for us in 1..=100 {
            h.record_us(us);
        }
        let s = Snapshot::of([&h]);
        assert_eq!(s.count(), 100);
        assert_eq!(s.mean_us(), 50);
        let p50 = s.quantile_us(0.5);
        assert!((50..=56).contains(&p50), "p50 {p50}");
        let p99 = s.quantile_us(0.99);
        assert!((99..=111).contains(&p99), "p99 {p99}");
        assert_eq!(Snapshot::default().quantile_us(0.99), 0);
    }

    #[test]
    fn octave_bounds_count_everything_at_or_below_them() {
        let h = Histogram::default();
        for us in [0, 1, 2, 3, 5, 40, 1000, 1000] {
            h.record_us(us);
        }
        let s = Snapshot::of([&h]);
        let at = |bound: u64| {
            s.cumulative_octaves()
                .iter()
                .find(|(b, _)| *b == bound)
                .map(|(_, n)| *n)
        };
        assert_eq!(at(1), Some(2));
        assert_eq!(at(2), Some(3));
        assert_eq!(at(4), Some(4));
        assert_eq!(at(64), Some(6));
        assert_eq!(at(1024), Some(8));
        let last = s.cumulative_octaves().last().copied();
        assert_eq!(last.map(|(_, n)| n), Some(8));
    }
}
