//! The counters and histograms a node's plugin defines (`metric_define`) and moves
//! (`counter_add`, `histogram_record`): ABI.md, "Plugin metrics".
//!
//! Names are kept once per node, under a lock taken only by `metric_define`, which runs only
//! during `init`. Values are kept per worker, in memory allocated when a worker's instance
//! first touches a metric: a bump is a bounds check and one relaxed add on a line no other
//! worker writes, and `stats plugins` sums the workers when it is read. On a node tenants
//! share, a bump for a tenant's request also moves the tenant's share of the node's metrics
//! (a second add, in the tenant's [`Values`] for that worker, kept in its `NodeTraffic`), read
//! with the node's names ([`PluginMetrics::snapshot_of`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use switchyard_sdk::abi::{metric_define as result, metric_kind};

use crate::stats::histogram::{Histogram, Snapshot};

/// One node's plugin metrics.
#[derive(Debug)]
pub struct PluginMetrics {
    names: Mutex<Names>,
    /// How many counters are defined: an id below is valid.
    counters: AtomicUsize,
    /// How many histograms are defined.
    histograms: AtomicUsize,
    slots: Box<[Slot]>,
}

/// One worker's slot of a node's values, on a line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot(Values);

#[derive(Debug, Default)]
struct Names {
    counters: Vec<String>,
    histograms: Vec<String>,
}

/// One worker's values of a node's metrics, or of a tenant's share of them: the counters
/// made at the first bump, each histogram at its first value.
#[derive(Debug, Default)]
pub struct Values {
    counters: OnceLock<Box<[AtomicU64; result::MAX_COUNTERS]>>,
    histograms: [OnceLock<Histogram>; result::MAX_HISTOGRAMS],
}

impl Values {
    /// Adds `delta` to counter `id`, below [`result::MAX_COUNTERS`].
    fn add(&self, id: usize, delta: u64) {
        let values = self
            .counters
            .get_or_init(|| Box::new([const { AtomicU64::new(0) }; result::MAX_COUNTERS]));
        if let Some(counter) = values.get(id) {
            counter.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// Records `value` in histogram `id`, below [`result::MAX_HISTOGRAMS`].
    fn record(&self, id: usize, value: u64) {
        if let Some(histogram) = self.histograms.get(id) {
            histogram.get_or_init(Histogram::default).record_us(value);
        }
    }
}

/// The metrics summed over workers, in definition order.
#[derive(Debug, Default)]
pub struct MetricsSnapshot {
    /// Each counter's name and value.
    pub counters: Vec<(String, u64)>,
    /// Each histogram's name and merged buckets.
    pub histograms: Vec<(String, Snapshot)>,
}

/// `counter_add` or `histogram_record` with an id `metric_define` did not return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchMetric;

impl PluginMetrics {
    /// No metrics yet, with room for `workers` workers' values.
    pub fn new(workers: usize) -> PluginMetrics {
        PluginMetrics {
            names: Mutex::default(),
            counters: AtomicUsize::new(0),
            histograms: AtomicUsize::new(0),
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    fn slot(&self, worker: usize) -> &Slot {
        &self.slots[worker % self.slots.len()]
    }

    /// `metric_define`: the id of the metric of `kind` named `name`, defined now unless it was
    /// already; or a negative [`switchyard_sdk::abi::metric_define`] error.
    pub fn define(&self, kind: u32, name: &[u8]) -> i32 {
        if kind != metric_kind::COUNTER && kind != metric_kind::HISTOGRAM {
            return result::BAD_KIND;
        }
        if !result::valid_name(name) {
            return result::BAD_NAME;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            return result::BAD_NAME;
        };
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let Names {
            counters,
            histograms,
        } = &mut *names;
        let (mine, other, max, defined) = if kind == metric_kind::COUNTER {
            (counters, &*histograms, result::MAX_COUNTERS, &self.counters)
        } else {
            (
                histograms,
                &*counters,
                result::MAX_HISTOGRAMS,
                &self.histograms,
            )
        };
        if let Some(id) = mine.iter().position(|n| n == name) {
            return id as i32;
        }
        if other.iter().any(|n| n == name) {
            return result::OTHER_KIND;
        }
        if mine.len() >= max {
            return result::TOO_MANY;
        }
        mine.push(name.to_owned());
        defined.store(mine.len(), Ordering::Release);
        mine.len() as i32 - 1
    }

    /// `counter_add` on `worker`, for a request whose tenant's share of the node's values on
    /// that worker is `share`, if it has one.
    pub fn add(
        &self,
        worker: usize,
        share: Option<&Values>,
        id: u32,
        delta: u64,
    ) -> Result<(), NoSuchMetric> {
        let id = id as usize;
        if id >= self.counters.load(Ordering::Acquire) {
            return Err(NoSuchMetric);
        }
        self.slot(worker).0.add(id, delta);
        if let Some(share) = share {
            share.add(id, delta);
        }
        Ok(())
    }

    /// `histogram_record` on `worker`, and in the tenant's `share` as for [`Self::add`].
    pub fn record(
        &self,
        worker: usize,
        share: Option<&Values>,
        id: u32,
        value: u64,
    ) -> Result<(), NoSuchMetric> {
        let id = id as usize;
        if id >= self.histograms.load(Ordering::Acquire) {
            return Err(NoSuchMetric);
        }
        self.slot(worker).0.record(id, value);
        if let Some(share) = share {
            share.record(id, value);
        }
        Ok(())
    }

    /// Whether the plugin defined any metric.
    pub fn is_empty(&self) -> bool {
        self.counters.load(Ordering::Acquire) == 0 && self.histograms.load(Ordering::Acquire) == 0
    }

    /// Every metric summed over workers.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.snapshot_of(self.slots.iter().map(|s| &s.0))
    }

    /// Every metric, by the node's names, summed over `values`: the node's own workers', or a
    /// tenant's share of them.
    pub fn snapshot_of<'a, I>(&self, values: I) -> MetricsSnapshot
    where
        I: Iterator<Item = &'a Values> + Clone,
    {
        if self.is_empty() {
            return MetricsSnapshot::default();
        }
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let counters = names
            .counters
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let value = values
                    .clone()
                    .filter_map(|v| v.counters.get()?.get(id))
                    .map(|counter| counter.load(Ordering::Relaxed))
                    .fold(0u64, u64::wrapping_add);
                (name.clone(), value)
            })
            .collect();
        let histograms = names
            .histograms
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let merged =
                    Snapshot::of(values.clone().filter_map(|v| v.histograms.get(id)?.get()));
                (name.clone(), merged)
            })
            .collect();
        MetricsSnapshot {
            counters,
            histograms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_defined_once_and_shared_by_workers() {
        let m = PluginMetrics::new(2);
        assert_eq!(m.define(metric_kind::COUNTER, b"hits"), 0);
        assert_eq!(m.define(metric_kind::COUNTER, b"misses"), 1);
        assert_eq!(m.define(metric_kind::COUNTER, b"hits"), 0);
        assert_eq!(m.define(metric_kind::HISTOGRAM, b"sizes"), 0);
        assert_eq!(
            m.define(metric_kind::HISTOGRAM, b"hits"),
            result::OTHER_KIND
        );
        assert_eq!(m.define(3, b"x"), result::BAD_KIND);
        assert_eq!(m.define(metric_kind::COUNTER, b"Bad"), result::BAD_NAME);
        assert_eq!(m.define(metric_kind::COUNTER, b"\xff"), result::BAD_NAME);

        m.add(0, None, 0, 3).expect("defined");
        m.add(1, None, 0, 4).expect("defined");
        m.add(5, None, 1, 1).expect("defined");
        assert_eq!(m.add(0, None, 2, 1), Err(NoSuchMetric));
        for v in [1, 2, 3, 100] {
            m.record(v as usize, None, 0, v).expect("defined");
        }
        assert_eq!(m.record(0, None, 1, 1), Err(NoSuchMetric));

        let s = m.snapshot();
        assert_eq!(
            s.counters,
            [("hits".to_string(), 7), ("misses".to_string(), 1)]
        );
        let (name, sizes) = &s.histograms[0];
        assert_eq!(name, "sizes");
        assert_eq!((sizes.count(), sizes.sum), (4, 106));
        assert_eq!(sizes.quantile_us(0.5), 2);
    }

    #[test]
    fn a_tenants_share_moves_with_the_node_and_reads_by_its_names() {
        let m = PluginMetrics::new(2);
        assert_eq!(m.define(metric_kind::COUNTER, b"hits"), 0);
        assert_eq!(m.define(metric_kind::HISTOGRAM, b"sizes"), 0);
        let share = [Values::default(), Values::default()];
        m.add(0, Some(&share[0]), 0, 2).expect("defined");
        m.add(1, Some(&share[1]), 0, 3).expect("defined");
        m.add(1, None, 0, 10).expect("defined");
        m.record(1, Some(&share[1]), 0, 7).expect("defined");
        // An id the plugin did not define moves neither.
        assert_eq!(m.add(0, Some(&share[0]), 1, 1), Err(NoSuchMetric));
        assert_eq!(m.snapshot().counters, [("hits".to_string(), 15)]);
        let mine = m.snapshot_of(share.iter());
        assert_eq!(mine.counters, [("hits".to_string(), 5)]);
        let (name, sizes) = &mine.histograms[0];
        assert_eq!((name.as_str(), sizes.count(), sizes.sum), ("sizes", 1, 7));
    }

    #[test]
    fn a_node_has_room_for_so_many() {
        let m = PluginMetrics::new(1);
        for i in 0..result::MAX_COUNTERS {
            assert_eq!(
                m.define(metric_kind::COUNTER, format!("c{i}").as_bytes()),
                i as i32
            );
        }
        assert_eq!(
            m.define(metric_kind::COUNTER, b"one_more"),
            result::TOO_MANY
        );
        for i in 0..result::MAX_HISTOGRAMS {
            assert_eq!(
                m.define(metric_kind::HISTOGRAM, format!("h{i}").as_bytes()),
                i as i32
            );
        }
        assert_eq!(
            m.define(metric_kind::HISTOGRAM, b"one_more"),
            result::TOO_MANY
        );
        m.add(0, None, result::MAX_COUNTERS as u32 - 1, 1)
            .expect("defined");
        m.record(0, None, result::MAX_HISTOGRAMS as u32 - 1, 1)
            .expect("defined");
    }
}
