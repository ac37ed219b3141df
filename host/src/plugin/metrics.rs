//! The counters and histograms a node's plugin defines (`metric_define`) and moves
//! (`counter_add`, `histogram_record`): ABI.md, "Plugin metrics".
//!
//! Names are kept once per node, under a lock taken only by `metric_define`, which runs only
//! during `init`. Values are kept per worker, in memory allocated when a worker's instance
//! first touches a metric: a bump is a bounds check and one relaxed add on a line no other
//! worker writes, and `stats plugins` sums the workers when it is read.

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

#[derive(Debug, Default)]
struct Names {
    counters: Vec<String>,
    histograms: Vec<String>,
}

/// One worker's values.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    counters: OnceLock<Box<[AtomicU64; result::MAX_COUNTERS]>>,
    histograms: [OnceLock<Histogram>; result::MAX_HISTOGRAMS],
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

    /// `counter_add` on `worker`.
    pub fn add(&self, worker: usize, id: u32, delta: u64) -> Result<(), NoSuchMetric> {
        let id = id as usize;
        if id >= self.counters.load(Ordering::Acquire) {
            return Err(NoSuchMetric);
        }
        let values = self
            .slot(worker)
            .counters
            .get_or_init(|| Box::new([const { AtomicU64::new(0) }; result::MAX_COUNTERS]));
        values[id].fetch_add(delta, Ordering::Relaxed);
        Ok(())
    }

    /// `histogram_record` on `worker`.
    pub fn record(&self, worker: usize, id: u32, value: u64) -> Result<(), NoSuchMetric> {
        let id = id as usize;
        if id >= self.histograms.load(Ordering::Acquire) {
            return Err(NoSuchMetric);
        }
        self.slot(worker).histograms[id]
            .get_or_init(Histogram::default)
            .record_us(value);
        Ok(())
    }

    /// Whether the plugin defined any metric.
    pub fn is_empty(&self) -> bool {
        self.counters.load(Ordering::Acquire) == 0 && self.histograms.load(Ordering::Acquire) == 0
    }

    /// Every metric summed over workers.
    pub fn snapshot(&self) -> MetricsSnapshot {
        if self.is_empty() {
            return MetricsSnapshot::default();
        }
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let counters = names
            .counters
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let value = self
                    .slots
                    .iter()
                    .filter_map(|s| s.counters.get())
                    .map(|values| values[id].load(Ordering::Relaxed))
                    .fold(0u64, u64::wrapping_add);
                (name.clone(), value)
            })
            .collect();
        let histograms = names
            .histograms
            .iter()
            .enumerate()
            .map(|(id, name)| {
                let merged = Snapshot::of(self.slots.iter().filter_map(|s| s.histograms[id].get()));
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

        m.add(0, 0, 3).expect("defined");
        m.add(1, 0, 4).expect("defined");
        m.add(5, 1, 1).expect("defined");
        assert_eq!(m.add(0, 2, 1), Err(NoSuchMetric));
        for v in [1, 2, 3, 100] {
            m.record(v as usize, 0, v).expect("defined");
        }
        assert_eq!(m.record(0, 1, 1), Err(NoSuchMetric));

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
        m.add(0, result::MAX_COUNTERS as u32 - 1, 1)
            .expect("defined");
        m.record(0, result::MAX_HISTOGRAMS as u32 - 1, 1)
            .expect("defined");
    }
}
