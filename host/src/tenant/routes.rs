//! A tenant's requests at each route node: what `stats routes` counts for a node, counted for
//! the tenant's requests alone (`<node>:tenant:<tenant>:requests`, `replies_<status>`,
//! latency; on `/metrics`, `switchyard_route_tenant_*{node,tenant}`), so that a node several
//! tenants share can be told apart by team. Counted where the node's own are: its requests when
//! the request is dispatched (`dispatch::finish`), its replies as they go out
//! (`Worker::count_reply`).

use std::sync::OnceLock;

use switchyard_protocol::ReplyStatus;

use crate::stats::{Counter, Histogram, RouteTotals, Snapshot};

/// One tenant's requests at one node, a slot per worker; kept across a reload that keeps the
/// node as it was (`Node::carry`), as the node's own counts are.
#[derive(Debug)]
pub struct RouteTraffic {
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
}

impl RouteTraffic {
    /// A tenant's requests at a node, on a router of `workers` workers.
    pub fn new(workers: usize) -> RouteTraffic {
        RouteTraffic {
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

    /// Every worker's share, summed.
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
        let traffic = RouteTraffic::new(2);
        traffic.request(0);
        traffic.request(3);
        traffic.replied(0, ReplyStatus::Hit, Some(40));
        traffic.replied(1, ReplyStatus::Miss, None);
        let t = traffic.totals();
        assert_eq!(t.requests, 2);
        assert_eq!(t.replies[ReplyStatus::Hit.code() as usize], 1);
        assert_eq!(t.replies[ReplyStatus::Miss.code() as usize], 1);
        assert_eq!(t.latency.count(), 1);
    }
}
