//! A tenant's requests at each node: what `stats routes` and `stats plugins` count for a
//! node, counted for the tenant's requests alone (`<node>:tenant:<tenant>:requests`,
//! `replies_<status>`, latency; `calls`, `faults_<kind>`, call time; on `/metrics`,
//! `switchyard_route_tenant_*` and `switchyard_plugin_tenant_*`, labelled `node` and
//! `tenant`), so that a node several tenants share can be told apart by team. Counted where
//! the node's own are: its requests when the request is dispatched (`dispatch::finish`), its
//! replies as they go out (`Worker::count_reply`), its plugin calls and faults as they happen
//! (`route.rs`, for the tenant the worker is serving then: `LocalGeneration::serving`), and
//! the metrics the node's plugin defined as its calls for the tenant's requests move them
//! (`<node>:tenant:<tenant>:counter:<counter>`; the instance is handed the worker's slot of
//! the share for the call, `PluginInstance::serve`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switchyard_protocol::ReplyStatus;

use crate::error::FaultKind;
use crate::plugin::{MetricValues, MetricsSnapshot, PluginMetrics};
use crate::stats::{Counter, Histogram, RouteTotals, Snapshot};

/// One tenant's requests at one node, a slot per worker; kept across a reload that keeps the
/// node as it was (`Node::carry`), as the node's own counts are.
#[derive(Debug)]
pub struct NodeTraffic {
    slots: Box<[Slot]>,
}

/// One worker's share: written by that worker only.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    requests: Counter,
    replies: [Counter; ReplyStatus::NAMES.len()],
    /// Made at the first timed reply: a tenant whose requests never reach the node, or a
    /// worker that never serves them, costs no histogram.
    latency: OnceLock<Histogram>,
    /// Calls into the node's plugin for the tenant's requests.
    calls: Counter,
    /// Of those, the faults, by `FaultKind::index`.
    faults: [Counter; FaultKind::ALL.len()],
    /// Their times, made at the first timed call.
    time: OnceLock<Histogram>,
    /// The tenant's share of the metrics the node's plugin defined, made at its first call
    /// of a plugin that defines any. Shared with the worker's instance of the node during a
    /// call for one of its requests: only this worker moves its count.
    metrics: OnceLock<Arc<MetricValues>>,
}

/// A tenant's calls into a node's plugin, summed over workers ([`NodeTraffic::plugin_totals`]).
#[derive(Debug, Clone)]
pub struct PluginTotals {
    /// Calls.
    pub calls: u64,
    /// Faults, in `stats plugins` order: trap, timeout, bad plan, out of memory, unavailable.
    pub faults: [u64; 5],
    /// Call times.
    pub time: Snapshot,
}

impl NodeTraffic {
    /// A tenant's requests at a node, on a router of `workers` workers.
    pub fn new(workers: usize) -> NodeTraffic {
        NodeTraffic {
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    fn slot(&self, worker: usize) -> &Slot {
        &self.slots[worker % self.slots.len()]
    }

    /// A request of the tenant's on `worker` reached the node.
    pub fn request(&self, worker: usize) {
        self.slot(worker).requests.inc();
    }

    /// Its reply went out on `worker` with `status`, `latency_us` after its dispatch (`None`:
    /// not timed).
    pub fn replied(&self, worker: usize, status: ReplyStatus, latency_us: Option<u64>) {
        let slot = self.slot(worker);
        if let Some(counter) = slot.replies.get(status.code() as usize) {
            counter.inc();
        }
        if let Some(us) = latency_us {
            slot.latency.get_or_init(Histogram::default).record_us(us);
        }
    }

    /// A call into the node's plugin for one of the tenant's requests, on `worker`, took
    /// `time` (`None`: not timed).
    pub fn call(&self, worker: usize, time: Option<Duration>) {
        let slot = self.slot(worker);
        slot.calls.inc();
        if let Some(time) = time {
            slot.time.get_or_init(Histogram::default).record(time);
        }
    }

    /// One of the tenant's requests on `worker` failed on the node's plugin with `kind`.
    pub fn fault(&self, worker: usize, kind: FaultKind) {
        self.slot(worker).faults[kind.index()].inc();
    }

    /// Whether the tenant's requests reached the node: read before [`NodeTraffic::totals`],
    /// which merges histograms, so that idle pairs cost a report nothing.
    pub fn reached(&self) -> bool {
        self.slots.iter().any(|s| s.requests.get() != 0)
    }

    /// Whether its requests called the node's plugin (or found it unavailable).
    pub fn called(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.calls.get() != 0 || s.faults.iter().any(|f| f.get() != 0))
    }

    /// The tenant's share on `worker` of the metrics the node's plugin defined: what its
    /// instance there moves, besides the node's own, in a call for one of the tenant's
    /// requests (`PluginInstance::serve`).
    pub fn metric_values(&self, worker: usize) -> &Arc<MetricValues> {
        self.slot(worker).metrics.get_or_init(Arc::default)
    }

    /// Whether the tenant's requests called the node's plugin, which defines metrics: read
    /// before [`NodeTraffic::metrics`].
    pub fn measured(&self) -> bool {
        self.slots.iter().any(|s| s.metrics.get().is_some())
    }

    /// The tenant's share of the node's plugin metrics, named as the node's `metrics` names
    /// them, summed over workers.
    pub fn metrics(&self, of: &PluginMetrics) -> MetricsSnapshot {
        of.snapshot_of(
            self.slots
                .iter()
                .filter_map(|s| s.metrics.get().map(|v| &**v)),
        )
    }

    /// The tenant's calls into the node's plugin, every worker's.
    pub fn plugin_totals(&self) -> PluginTotals {
        let sum = |f: &dyn Fn(&Slot) -> u64| self.slots.iter().map(f).sum::<u64>();
        let fault = |kind: FaultKind| sum(&|s| s.faults[kind.index()].get());
        PluginTotals {
            calls: sum(&|s| s.calls.get()),
            faults: [
                fault(FaultKind::Trap),
                fault(FaultKind::Timeout),
                fault(FaultKind::InvalidPlan)
                    + fault(FaultKind::PassFromRoute)
                    + fault(FaultKind::TooManyCalls),
                fault(FaultKind::OutOfMemory),
                fault(FaultKind::Unavailable),
            ],
            time: Snapshot::of(self.slots.iter().filter_map(|s| s.time.get())),
        }
    }

    /// Every worker's share of its route stats, summed.
    pub fn totals(&self) -> RouteTotals {
        let mut replies = [0u64; ReplyStatus::NAMES.len()];
        for slot in self.slots.iter() {
            for (total, counter) in replies.iter_mut().zip(&slot.replies) {
                *total += counter.get();
            }
        }
        RouteTotals {
            requests: self.slots.iter().map(|s| s.requests.get()).sum(),
            replies,
            latency: Snapshot::of(self.slots.iter().filter_map(|s| s.latency.get())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_add_up_over_workers() {
        let traffic = NodeTraffic::new(2);
        traffic.request(0);
        traffic.request(3);
        traffic.replied(0, ReplyStatus::Hit, Some(40));
        traffic.replied(1, ReplyStatus::Miss, None);
        let t = traffic.totals();
        assert_eq!(t.requests, 2);
        assert_eq!(t.replies[ReplyStatus::Hit.code() as usize], 1);
        assert_eq!(t.replies[ReplyStatus::Miss.code() as usize], 1);
        assert_eq!(t.latency.count(), 1);
        traffic.call(1, Some(Duration::from_micros(3)));
        traffic.call(0, None);
        traffic.fault(0, FaultKind::TooManyCalls);
        traffic.fault(1, FaultKind::Timeout);
        let p = traffic.plugin_totals();
        assert_eq!((p.calls, p.faults), (2, [0, 1, 1, 0, 0]));
        assert_eq!(p.time.count(), 1);
    }
}
