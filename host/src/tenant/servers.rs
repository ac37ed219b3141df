//! A tenant's requests to each server: what `stats backends` counts for a server, counted for
//! the tenant's requests alone (`<server>:tenant:<tenant>:replies`, ...; on `/metrics`,
//! `switchyard_backend_tenant_*{server,tenant}`), so that a shared pool's load, latency and
//! failures can be told apart by team.
//!
//! A request sent for a tenant carries its worker's [`Tap`] on that server in its job
//! (`backend/jobs.rs`), and the tap is told what the server's own counts are told, where they
//! are: refused at once, queued, answered (with the same latency), failed. A request of no
//! tenant carries none and costs nothing more. What happens to a connection rather than to a
//! request (a server marked down, a probe, a failed handshake) is the server's alone.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::backend::BackendError;
use crate::stats::{Counter, Histogram, Snapshot};

/// One tenant's requests to one server, a slot per worker; kept by the tenant's
/// [`TenantState`](super::TenantState) across reloads while the server stays in the config.
#[derive(Debug)]
pub struct ServerTraffic {
    /// The server, as `stats backends` names it.
    pub address: SocketAddr,
    slots: Box<[Slot]>,
}

/// One worker's share: written by that worker only.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Slot {
    replies: Counter,
    failed: Counter,
    timeouts: Counter,
    fast_failed: Counter,
    outstanding: Counter,
    outstanding_bytes: Counter,
    /// Made at the first timed reply: a tenant that never sends to a server, or a worker that
    /// never serves it, costs no histogram.
    latency: OnceLock<Histogram>,
}

/// [`ServerTraffic`] summed over workers.
#[derive(Debug, Default, Clone)]
pub struct ServerTotals {
    /// Replies the server sent to the tenant's requests.
    pub replies: u64,
    /// The tenant's requests sent to the server that got no reply.
    pub failed: u64,
    /// Of those, the ones that timed out.
    pub timeouts: u64,
    /// The tenant's requests refused at once (the server down or over its limit).
    pub fast_failed: u64,
    /// The tenant's requests queued or in flight there now.
    pub outstanding: u64,
    /// Their bytes, as `max_outstanding_bytes` counts them.
    pub outstanding_bytes: u64,
    /// Time from queueing to reply.
    pub latency: Snapshot,
}

impl ServerTraffic {
    /// A tenant's traffic to the server at `address`, on a router of `workers` workers.
    pub fn new(address: SocketAddr, workers: usize) -> ServerTraffic {
        ServerTraffic {
            address,
            slots: (0..workers.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    /// Whether the tenant has sent the server anything: read before [`ServerTraffic::totals`],
    /// which merges histograms, so that idle pairs cost a report nothing.
    pub fn active(&self) -> bool {
        self.slots.iter().any(|s| {
            s.replies.get() + s.failed.get() + s.fast_failed.get() + s.outstanding.get() != 0
        })
    }

    /// Every worker's share, summed.
    pub fn totals(&self) -> ServerTotals {
        let sum = |f: &dyn Fn(&Slot) -> &Counter| self.slots.iter().map(|s| f(s).get()).sum();
        ServerTotals {
            replies: sum(&|s| &s.replies),
            failed: sum(&|s| &s.failed),
            timeouts: sum(&|s| &s.timeouts),
            fast_failed: sum(&|s| &s.fast_failed),
            outstanding: sum(&|s| &s.outstanding),
            outstanding_bytes: sum(&|s| &s.outstanding_bytes),
            latency: Snapshot::of(self.slots.iter().filter_map(|s| s.latency.get())),
        }
    }

    /// Worker `worker`'s handle on it.
    pub fn tap(self: &Arc<Self>, worker: usize) -> Tap {
        Tap {
            traffic: self.clone(),
            worker: worker % self.slots.len(),
        }
    }
}

/// One worker's handle on a tenant's traffic to one server: what a request sent there for the
/// tenant tells of itself.
#[derive(Debug)]
pub struct Tap {
    traffic: Arc<ServerTraffic>,
    worker: usize,
}

impl Tap {
    fn slot(&self) -> &Slot {
        &self.traffic.slots[self.worker]
    }

    /// A request was refused at once: the server down or over its outstanding bound.
    pub fn fast_failed(&self) {
        self.slot().fast_failed.inc();
    }

    /// A request of `cost` bytes (as the outstanding bound counts them) was queued.
    pub fn queued(&self, cost: usize) {
        let slot = self.slot();
        slot.outstanding.inc();
        slot.outstanding_bytes.add(cost as u64);
    }

    /// A request [`Tap::queued`] counted is done, answered or not.
    pub fn done(&self, cost: usize) {
        let slot = self.slot();
        slot.outstanding.dec();
        slot.outstanding_bytes.sub(cost as u64);
    }

    /// The server replied after `latency` (`None`: not timed).
    pub fn replied(&self, latency: Option<Duration>) {
        let slot = self.slot();
        slot.replies.inc();
        if let Some(latency) = latency {
            slot.latency.get_or_init(Histogram::default).record(latency);
        }
    }

    /// A request sent failed with `error` and has no reply. The router stopping is no
    /// failure of the request.
    pub fn failed(&self, error: &BackendError) {
        let slot = self.slot();
        match error {
            BackendError::Shutdown => {}
            BackendError::Timeout => {
                slot.failed.inc();
                slot.timeouts.inc();
            }
            _ => slot.failed.inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_counts_in_its_workers_slot_and_the_totals_add_every_worker() {
        let traffic = Arc::new(ServerTraffic::new(([127, 0, 0, 1], 11211).into(), 2));
        assert!(!traffic.active());
        let (a, b) = (traffic.tap(0), traffic.tap(3));
        a.queued(200);
        b.queued(300);
        let t = traffic.totals();
        assert_eq!((t.outstanding, t.outstanding_bytes), (2, 500));
        assert!(traffic.active());
        a.replied(Some(Duration::from_micros(100)));
        a.done(200);
        b.failed(&BackendError::Timeout);
        b.done(300);
        a.failed(&BackendError::Shutdown);
        a.fast_failed();
        let t = traffic.totals();
        assert_eq!((t.outstanding, t.outstanding_bytes), (0, 0));
        assert_eq!(
            (t.replies, t.failed, t.timeouts, t.fast_failed),
            (1, 1, 1, 1)
        );
        assert_eq!(t.latency.count(), 1);
        // Worker 3 of 2 counts in slot 1: only that slot's histogram was never made.
        assert!(traffic.slots[1].latency.get().is_none());
        assert!(traffic.slots[0].latency.get().is_some());
    }
}
