//! One worker thread's view of the router: its own plugin instances and backend connections
//! for the current generation, and its counters.
//!
//! Nothing here is shared with other workers except through `Arc`s of immutable data and the
//! atomic counters in [`crate::stats`]; a worker never takes a lock on the request path.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;

use crate::backend::{Destination, DestinationSpec};
use crate::connection::READ_CHUNK;
use crate::dispatch::Caller;
use crate::drain::Connections;
use crate::generation::Generation;
use crate::reply::Settled;
use crate::route::Slot;
use crate::stats::tally::Tally;
use crate::stats::{RouterStats, WorkerStats};

/// Read buffers a worker keeps for its quiet connections: 1 MiB at most, more than the clients
/// sending at one instant need.
const MAX_KEPT_READ_BUFFERS: usize = (1 << 20) / READ_CHUNK;

/// State a worker's sessions share.
#[derive(Debug)]
pub struct Worker {
    /// Index of this worker (seeds plugin random generators, names the thread).
    pub id: usize,
    /// The published generation, shared by every worker.
    current: Arc<ArcSwap<Generation>>,
    /// This worker's instantiation of the generation it last saw.
    local: RefCell<Option<Rc<LocalGeneration>>>,
    /// This worker's backend connections by address, whichever generations use them: a new
    /// generation reuses a connection whose settings did not change, and a connection nobody
    /// uses any more drains and closes.
    destinations: RefCell<HashMap<SocketAddr, Weak<Destination>>>,
    /// This worker's counters.
    pub stats: Arc<WorkerStats>,
    /// Every worker's counters, for `stats`.
    pub router_stats: Arc<RouterStats>,
    /// Long values this worker's sessions are streaming to servers now, each over a
    /// connection of its own (`session/upload.rs`).
    pub uploads: std::cell::Cell<usize>,
    /// Read buffers of connections that are quiet now, lent again to whichever client sends
    /// next: an idle connection holds none (`session`).
    read_buffers: RefCell<Vec<BytesMut>>,
    /// This worker's open client connections, for a drain.
    pub(crate) connections: Connections,
    /// Keys routed since the last one `stats hotkeys` sampled.
    hot_tick: std::cell::Cell<u32>,
    /// The clock requests are timed by for `stats routes`.
    born: std::time::Instant,
}

impl Worker {
    /// Whether this key routed is one `stats hotkeys` samples: one in
    /// `hotkeys::SAMPLE_EVERY`. The caller then passes it to [`Worker::sample_hot_key`].
    pub fn hot_key_due(&self) -> bool {
        let tick = self.hot_tick.get() + 1;
        let due = tick >= crate::stats::hotkeys::SAMPLE_EVERY;
        self.hot_tick.set(if due { 0 } else { tick });
        due
    }

    /// Counts a sampled request for `key` of the tenant named `tenant` (empty: of none), which
    /// stores `value_bytes`.
    pub fn sample_hot_key(&self, tenant: &str, key: &[u8], value_bytes: usize) {
        self.router_stats
            .hotkeys
            .sample(self.id, tenant, key, value_bytes as u64);
    }

    /// A worker reading generations from `current`.
    pub fn new(
        id: usize,
        current: Arc<ArcSwap<Generation>>,
        router_stats: Arc<RouterStats>,
    ) -> Worker {
        let stats = router_stats.workers[id].clone();
        Worker {
            id,
            current,
            local: RefCell::new(None),
            destinations: RefCell::new(HashMap::new()),
            stats,
            router_stats,
            uploads: std::cell::Cell::new(0),
            read_buffers: RefCell::new(Vec::new()),
            connections: Connections::default(),
            hot_tick: std::cell::Cell::new(0),
            born: std::time::Instant::now(),
        }
    }

    /// Now on the worker's clock: microseconds since it started, wrapping every 71 minutes
    /// (a request's latency is a wrapping difference of two of these). Never 0, which means
    /// "not timed".
    pub fn now_us(&self) -> u32 {
        (self.born.elapsed().as_micros() as u32).max(1)
    }

    /// Counts a reply going out to its client: bytes, its command's hits, misses and errors
    /// (`WorkerStats::settled`), the same for its tenant's traffic if `caller` has one, and
    /// the replies and latency of the route nodes it passed (`stats routes`) while their
    /// generation is still the one published.
    pub(crate) fn count_reply(&self, settled: &Settled, tally: &Tally, caller: &Caller) {
        let body = match settled {
            Settled::Streaming(_, body) => body.len,
            _ => 0,
        };
        let written = (settled.len() + body) as u64;
        self.stats.bytes_written.add(written);
        let counted = crate::stats::tally::count(tally, settled);
        self.stats.settled(tally, &counted);
        let latency = || {
            (tally.started_us() != 0)
                .then(|| u64::from(self.now_us().wrapping_sub(tally.started_us())))
        };
        caller.answered(tally, |tenant| {
            tenant
                .traffic(self.id)
                .replied(tally, &counted, written, latency());
        });
        let nodes = tally.nodes();
        if nodes.is_empty() {
            return;
        }
        let published = self.current.load();
        if !tally.of_generation(published.number) {
            return;
        }
        let (status, latency) = (settled.status(), latency());
        let tenant = caller
            .tenant_in(published.number)
            .and_then(|t| published.tenants.get(t));
        for &n in nodes {
            let n = usize::from(n);
            if let Some(node) = published.nodes.get(n) {
                node.stats.replied(self.id, status, latency);
            }
            if let Some(route) = tenant.and_then(|t| t.node(n)) {
                route.replied(self.id, status, latency);
            }
        }
    }

    /// A read buffer for a client that has sent something, with room for a read.
    pub fn read_buffer(&self) -> BytesMut {
        let mut buf = self.read_buffers.borrow_mut().pop().unwrap_or_default();
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        buf
    }

    /// Takes back an empty read buffer to lend again, unless the worker keeps enough already
    /// or the buffer grew past the usual size while lent (`grew`: a long value passed through
    /// it). Its allocation may still be shared with requests in flight, which is why one that
    /// grew is not kept: it would pin that larger allocation.
    pub fn return_read_buffer(&self, mut buf: BytesMut, grew: bool) {
        buf.clear();
        let mut kept = self.read_buffers.borrow_mut();
        if !grew && buf.capacity() <= 2 * READ_CHUNK && kept.len() < MAX_KEPT_READ_BUFFERS {
            kept.push(buf);
        }
    }

    /// The generation a new request starts on, instantiated for this worker. The request keeps
    /// the returned `Rc` until it is answered, so a swap never changes a request midway.
    pub fn generation(&self) -> Rc<LocalGeneration> {
        let published = self.current.load();
        if let Some(local) = self.local.borrow().as_ref()
            && Arc::ptr_eq(&local.shared, &published)
        {
            return local.clone();
        }
        let destinations = published
            .destinations
            .iter()
            .map(|spec| self.destination(spec))
            .collect();
        let previous = self.local.borrow().clone();
        let local = Rc::new(LocalGeneration::new(
            Arc::clone(&published),
            destinations,
            self.id,
            self.stats.clone(),
            previous.as_deref(),
        ));
        *self.local.borrow_mut() = Some(local.clone());
        local
    }
}

impl Worker {
    /// The connection driver for `spec`: the live one if its settings are the same, else a new
    /// one (the old one, if any, drains with the generations still using it).
    fn destination(&self, spec: &DestinationSpec) -> Rc<Destination> {
        let mut known = self.destinations.borrow_mut();
        if let Some(live) = known.get(&spec.address).and_then(Weak::upgrade)
            && live.serves(spec)
        {
            return live;
        }
        known.retain(|_, d| d.strong_count() > 0);
        let fresh = Destination::spawn(spec.clone(), self.id, self.stats.clone());
        known.insert(spec.address, Rc::downgrade(&fresh));
        fresh
    }
}

/// A generation as instantiated on one worker.
#[derive(Debug)]
pub struct LocalGeneration {
    /// The shared, immutable generation.
    pub shared: Arc<Generation>,
    /// One plugin slot per node, holding the instance made for this worker when the generation
    /// was built (`route` replaces it after a fault). A node the reload left as it was
    /// (`Node::carry`) shares the slot it had in the generation before: its instance, with
    /// whatever the plugin keeps in its memory, and its breaker carry on.
    pub(crate) slots: Vec<Rc<RefCell<Slot>>>,
    /// One connection driver per destination.
    pub destinations: Vec<Rc<Destination>>,
    /// This worker's taps on each tenant's traffic to each server, by tenant index and
    /// destination index: what a tenant's request sent there counts in.
    pub(crate) tenant_taps: Vec<Box<[Option<Rc<crate::tenant::servers::Tap>>]>>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) worker: usize,
    /// The route nodes the request being dispatched reaches (`stats routes`).
    pub(crate) trail: crate::stats::tally::Trail,
    /// A dry run is walking the tree: its plugin calls start no experiment.
    pub(crate) dry: std::cell::Cell<bool>,
    /// The experiments the request being routed met (`execute/experiments.rs`).
    pub(crate) marks: std::cell::Cell<crate::execute::Marks>,
    /// The tenant (its index) whose request the plugins are being called for, while one is
    /// (`LocalGeneration::serving`): its share of each node's calls and faults.
    pub(crate) serving: std::cell::Cell<Option<usize>>,
}

impl LocalGeneration {
    /// `shared` as worker 0 would hold it, but with no backend connections and counters of its
    /// own: for dry runs outside a running router (`switchyard route`), which call the plugins
    /// and send nothing.
    pub(crate) fn offline(shared: Arc<Generation>) -> LocalGeneration {
        LocalGeneration::new(shared, Vec::new(), 0, Arc::default(), None)
    }

    /// A running router's `shared` for a dry run off the workers (the admin listener's
    /// `/route`): no backend connections, and plugin instances of its own, made as the dry
    /// run needs them (the workers' are theirs).
    pub(crate) fn beside(shared: Arc<Generation>) -> LocalGeneration {
        let slots = shared
            .nodes
            .iter()
            .map(|_| Rc::new(RefCell::new(Slot::new(None))))
            .collect();
        LocalGeneration {
            shared,
            slots,
            destinations: Vec::new(),
            tenant_taps: Vec::new(),
            stats: Arc::default(),
            worker: 0,
            trail: Default::default(),
            dry: std::cell::Cell::new(false),
            marks: Default::default(),
            serving: Default::default(),
        }
    }

    /// `shared` on `worker`, after `previous` (the generation the worker served before, if
    /// any), whose slots it shares for the nodes it carried over.
    fn new(
        shared: Arc<Generation>,
        destinations: Vec<Rc<Destination>>,
        worker: usize,
        stats: Arc<WorkerStats>,
        previous: Option<&LocalGeneration>,
    ) -> LocalGeneration {
        let mut prepared = shared.take_instances(worker).into_iter();
        let slots = shared
            .nodes
            .iter()
            .map(|node| {
                let made = prepared.next();
                let kept = previous.and_then(|old| {
                    let j = old
                        .shared
                        .nodes
                        .iter()
                        .position(|o| Arc::ptr_eq(&o.context, &node.context))?;
                    old.slots.get(j).cloned()
                });
                // The carried slot's instance serves; the one made for it is dropped.
                kept.unwrap_or_else(|| Rc::new(RefCell::new(Slot::new(made))))
            })
            .collect();
        let tenant_taps = shared
            .tenants
            .iter()
            .map(|t| {
                let tap = |s: &Arc<crate::tenant::servers::ServerTraffic>| Rc::new(s.tap(worker));
                t.servers.iter().map(|s| s.as_ref().map(tap)).collect()
            })
            .collect();
        LocalGeneration {
            shared,
            slots,
            destinations,
            tenant_taps,
            stats,
            worker,
            trail: Default::default(),
            dry: std::cell::Cell::new(false),
            marks: Default::default(),
            serving: Default::default(),
        }
    }
}
