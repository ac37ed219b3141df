//! Counters: one set per worker, written only by that worker (relaxed atomics on its own cache
//! lines), summed when a client asks for `stats`.

pub mod histogram;
pub mod hotkeys;
pub mod registry;
pub mod tally;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use switchyard_protocol::{Command, ReplyStatus};

use crate::error::FaultKind;
pub use histogram::{Histogram, Snapshot};
use registry::{StatDef, declare_counters};

/// A counter written by one thread and read by any.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds one; returns the count after.
    pub fn inc_get(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts one (for gauges).
    pub fn dec(&self) {
        self.sub(1);
    }

    /// Subtracts `n` (for gauges).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

declare_counters! {
    /// One worker's counters.
    #[derive(Debug, Default)]
    #[repr(align(128))]
    pub struct WorkerStats in "" {
        /// Client connections open now.
        curr_connections: Gauge, Count;
        /// Client connections accepted.
        total_connections: Counter, Count;
        /// Client connections refused at a listener's `max_connections` or the router's
        /// open-file budget (answered `ERROR Too many open connections`; memcached's name).
        rejected_connections: Counter, Count;
        /// TLS handshakes completed on TLS listeners.
        tls_connections: Counter, Count;
        /// TLS handshakes that failed (no or an untrusted or expired client certificate, a
        /// plaintext client on a TLS listener, garbage, a timeout); each is logged with its
        /// reason.
        tls_handshake_errors: Counter, Count;
        /// Connections whose first bytes were a TLS handshake on a plaintext listener: closed.
        tls_on_plain_listener: Counter, Count;
        /// Bytes read from clients (after TLS, if any).
        bytes_read: Counter, Bytes;
        /// Bytes written to clients (before TLS, if any).
        bytes_written: Counter, Bytes;
        /// Keys looked up by retrieval commands (`get a b c` is three).
        get_keys: Counter, Count;
        /// Keys retrieval commands (`get gets gat gats`) found, counted as their replies go
        /// out.
        get_hits: Counter, Count;
        /// Keys retrieval commands looked up and did not find; a failed retrieval's keys are
        /// neither hits nor misses.
        get_misses: Counter, Count;
        /// Requests failed on a backend's side: down, unreachable, timed out, reset, or
        /// answering with something that is not a reply (`error::Side::Backend`).
        backend_errors: Counter, Count;
        /// Requests failed on a plugin's side: traps, timeouts, invalid plans, a plugin that
        /// cannot be instantiated, plans that make no sense for the request
        /// (`error::Side::Plugin`).
        plugin_faults: Counter, Count;
        /// Of those, requests a node's `on_fault` sent on to a child (`pass`, `fallback:`)
        /// instead of failing them.
        plugin_fallbacks: Counter, Count;
        /// Times a node's circuit breaker opened on a worker.
        plugin_breaker_opens: Counter, Count;
        /// Malformed client requests, requests whose key a rewrite cannot fit, and requests
        /// whose own reply outlasted its timeout or size bound (`error::Side::Client`).
        client_errors: Counter, Count;
        /// Requests failed by the router itself: an invariant broke, a local shortage
        /// (`error::Side::Internal`).
        internal_errors: Counter, Count;
        /// Background requests sent (shadow copies, refills, asynchronous replication).
        background_sent: Counter, Count;
        /// Background requests in flight now (bounded by `server.max_background`).
        background_outstanding: Gauge, Count;
        /// Bytes of background requests in flight now (bounded by
        /// `server.max_background_bytes`).
        background_bytes: Gauge, Bytes;
        /// Background requests not sent because the worker had `server.max_background` of
        /// them, or `server.max_background_bytes` of their bytes, in flight.
        background_dropped: Counter, Count;
        /// Background stores not sent because there was no value at hand (ABI.md,
        /// `background`).
        background_skipped: Counter, Count;
        /// Background requests whose reply was an error (including the router's own).
        background_failed: Counter, Count;
        /// Compared background replies (shadowing) that differed from the client's reply.
        shadow_mismatches: Counter, Count;
        /// Long values a client stored that passed through to their server as they arrived.
        streamed_stores: Counter, Count;
        /// Long values a server returned that passed through to their client as they arrived.
        streamed_values: Counter, Count;
        /// Streams cut short by a failure after part of the value had passed (the client's
        /// connection is then closed, as a partial value cannot be taken back).
        streams_broken: Counter, Count;
    }
    also {
        /// Requests of each command, by `Command::index` (`cmd_<command>`).
        commands: [Counter; Command::ALL.len()],
        /// Error replies to each command, by `Command::index` (`cmd_<command>_errors`).
        command_errors: [Counter; Command::ALL.len()],
    }
}

impl WorkerStats {
    /// Counts one request of `command`.
    pub fn command(&self, command: Command) {
        self.commands[command.index()].inc();
    }
}

/// One plugin node's counters, a slot per worker: written by that worker around each call
/// into the node's plugin, merged when `stats plugins` is read. They run as long as a reload
/// leaves the node as it was (`Node::carry`).
#[derive(Debug)]
pub struct NodeStats {
    slots: Box<[NodeSlot]>,
}

#[derive(Debug, Default)]
#[repr(align(128))]
struct NodeSlot {
    calls: Counter,
    faults: [Counter; FaultKind::ALL.len()],
    /// The worker's instance's linear memory after its last call.
    memory: Counter,
    time: Histogram,
    /// Client requests whose route reached the node (`stats routes`).
    requests: Counter,
    /// Their replies as they went out, by `ReplyStatus::code`.
    replies: [Counter; ReplyStatus::NAMES.len()],
    /// From their dispatch to their reply going out.
    latency: Histogram,
}

impl NodeStats {
    /// Counters for `workers` workers.
    pub fn new(workers: usize) -> NodeStats {
        NodeStats {
            slots: (0..workers.max(1)).map(|_| NodeSlot::default()).collect(),
        }
    }

    fn slot(&self, worker: usize) -> &NodeSlot {
        &self.slots[worker % self.slots.len()]
    }

    /// A call on `worker` took `time` (`None`: not timed); its instance now has `memory`
    /// bytes.
    pub fn call(&self, worker: usize, time: Option<Duration>, memory: Option<u64>) {
        let slot = self.slot(worker);
        slot.calls.inc();
        if let Some(time) = time {
            slot.time.record(time);
        }
        if let Some(memory) = memory
            && memory != slot.memory.get()
        {
            slot.memory.0.store(memory, Ordering::Relaxed);
        }
    }

    /// A client's request on `worker` reached the node.
    pub fn request(&self, worker: usize) {
        self.slot(worker).requests.inc();
    }

    /// The reply to a client's request that reached the node went out on `worker` with
    /// `status`, `latency_us` after the request was dispatched (`None`: not timed).
    pub fn replied(&self, worker: usize, status: ReplyStatus, latency_us: Option<u64>) {
        let slot = self.slot(worker);
        if let Some(counter) = slot.replies.get(status.code() as usize) {
            counter.inc();
        }
        if let Some(us) = latency_us {
            slot.latency.record_us(us);
        }
    }

    /// The node's route stats summed over workers.
    pub fn route_totals(&self) -> RouteTotals {
        let mut replies = [0u64; ReplyStatus::NAMES.len()];
        for slot in self.slots.iter() {
            for (total, counter) in replies.iter_mut().zip(&slot.replies) {
                *total += counter.get();
            }
        }
        RouteTotals {
            requests: self.slots.iter().map(|s| s.requests.get()).sum(),
            replies,
            latency: Snapshot::of(self.slots.iter().map(|s| &s.latency)),
        }
    }

    /// `stats routes` lines of the node labelled `label`.
    fn render_routes(&self, label: &str, out: &mut String) {
        route_lines(&self.route_totals(), ROUTE_DEFS, &[("<node>", label)], out);
    }

    /// Requests that failed on the node's plugin, of every kind, on every worker.
    pub fn faults(&self) -> u64 {
        self.slots
            .iter()
            .flat_map(|s| s.faults.iter())
            .map(Counter::get)
            .sum()
    }

    /// A request on `worker` failed on the node's plugin with `kind`.
    pub fn fault(&self, worker: usize, kind: FaultKind) {
        self.slot(worker).faults[kind.index()].inc();
    }

    /// The node's counters and gauge summed over workers, each with its declaration, in
    /// `stats plugins` order, and its call times merged: what `stats plugins` and `/metrics`
    /// report.
    pub fn totals(&self) -> NodeTotals {
        let sum = |f: &dyn Fn(&NodeSlot) -> u64| self.slots.iter().map(f).sum::<u64>();
        let fault = |kind: FaultKind| sum(&|s| s.faults[kind.index()].get());
        let invalid = fault(FaultKind::InvalidPlan)
            + fault(FaultKind::PassFromRoute)
            + fault(FaultKind::TooManyCalls);
        NodeTotals {
            counters: [
                (&registry::PLUGIN_CALLS, sum(&|s| s.calls.get())),
                (&registry::PLUGIN_TRAPS, fault(FaultKind::Trap)),
                (&registry::PLUGIN_TIMEOUTS, fault(FaultKind::Timeout)),
                (&registry::PLUGIN_BAD_PLANS, invalid),
                (
                    &registry::PLUGIN_OUT_OF_MEMORY,
                    fault(FaultKind::OutOfMemory),
                ),
                (&registry::PLUGIN_UNAVAILABLE, fault(FaultKind::Unavailable)),
            ],
            memory: (&registry::PLUGIN_MEMORY, sum(&|s| s.memory.get())),
            time: Snapshot::of(self.slots.iter().map(|s| &s.time)),
        }
    }

    /// `stats plugins` lines of the node labelled `label`, running `module`.
    fn render(&self, label: &str, module: &crate::plugin::PluginModule, out: &mut String) {
        let NodeTotals {
            counters,
            memory,
            time,
        } = self.totals();
        let mut line = |def: &StatDef, value: &dyn std::fmt::Display| {
            let name = def.name.replacen("<node>", label, 1);
            let _ = write!(out, "STAT {name} {value}\r\n");
        };
        for (def, value) in counters {
            line(def, &value);
        }
        line(&registry::PLUGIN_CALL_MEAN, &time.mean_us());
        line(&registry::PLUGIN_CALL_P99, &time.quantile_us(0.99));
        line(memory.0, &memory.1);
        line(
            &registry::PLUGIN_MODULE,
            &format_args!("{} {}", module.name(), module.hash()),
        );
    }
}

/// One plugin node's stats summed over workers ([`NodeStats::totals`]).
#[derive(Debug)]
pub struct NodeTotals {
    /// Calls and faults by kind, with their declarations.
    pub counters: [(&'static StatDef, u64); 6],
    /// The instances' memory now, with its declaration.
    pub memory: (&'static StatDef, u64),
    /// Call times.
    pub time: Snapshot,
}

/// One node's route stats summed over workers ([`NodeStats::route_totals`]).
#[derive(Debug)]
pub struct RouteTotals {
    /// Client requests whose route reached the node.
    pub requests: u64,
    /// Their replies, by `ReplyStatus::code`.
    pub replies: [u64; ReplyStatus::NAMES.len()],
    /// Their latency, dispatch to reply.
    pub latency: Snapshot,
}

/// `stats routes`: every node of `generation`, as a route: the client requests that reached
/// it, their replies by status and their latency.
/// Each tenant's share of a node follows the node's lines, for the tenants whose requests
/// reached it.
pub fn render_routes(generation: &crate::generation::Generation) -> String {
    let mut out = String::with_capacity(1024 * generation.nodes.len() + 8);
    for (i, node) in generation.nodes.iter().enumerate() {
        let label = &node.context.label;
        node.stats.render_routes(label, &mut out);
        for tenant in &generation.tenants {
            if let Some(share) = tenant.node(i).filter(|s| s.reached()) {
                let subject = [("<node>", label.as_str()), ("<tenant>", &tenant.name)];
                route_lines(&share.totals(), ROUTE_TENANT_DEFS, &subject, &mut out);
            }
        }
    }
    out.push_str("END\r\n");
    out
}

/// A node's `stats routes` stats: requests, replies by status, latency mean, p50 and p99.
const ROUTE_DEFS: [&StatDef; 5] = [
    &registry::ROUTE_REQUESTS,
    &registry::ROUTE_REPLIES,
    &registry::ROUTE_LATENCY_MEAN,
    &registry::ROUTE_LATENCY_P50,
    &registry::ROUTE_LATENCY_P99,
];

/// The same for one tenant's requests at a node.
const ROUTE_TENANT_DEFS: [&StatDef; 5] = [
    &registry::ROUTE_TENANT_REQUESTS,
    &registry::ROUTE_TENANT_REPLIES,
    &registry::ROUTE_TENANT_LATENCY_MEAN,
    &registry::ROUTE_TENANT_LATENCY_P50,
    &registry::ROUTE_TENANT_LATENCY_P99,
];

/// The `stats routes` lines of `totals`, named by `defs` ([`ROUTE_DEFS`]' order) with each
/// placeholder of `subject` filled in.
fn route_lines(
    totals: &RouteTotals,
    defs: [&StatDef; 5],
    subject: &[(&str, &str)],
    out: &mut String,
) {
    let [requests, replies, mean, p50, p99] = defs;
    let mut line = |def: &StatDef, status: &str, value: &dyn std::fmt::Display| {
        let mut name = def.name.replacen("<status>", status, 1);
        for (placeholder, with) in subject {
            name = name.replacen(placeholder, with, 1);
        }
        let _ = write!(out, "STAT {name} {value}\r\n");
    };
    line(requests, "", &totals.requests);
    for (status, n) in ReplyStatus::NAMES.iter().zip(totals.replies) {
        line(replies, status, &n);
    }
    let latency = &totals.latency;
    line(mean, "", &latency.mean_us());
    line(p50, "", &latency.quantile_us(0.5));
    line(p99, "", &latency.quantile_us(0.99));
}

/// `stats plugins`: every node of `generation`.
pub fn render_plugins(generation: &crate::generation::Generation) -> String {
    let mut out = String::with_capacity(512 * generation.nodes.len() + 8);
    for node in &generation.nodes {
        node.stats
            .render(&node.context.label, &node.module, &mut out);
        if let Some(tenant) = &node.context.tenant {
            let name = registry::PLUGIN_TENANT
                .name
                .replacen("<node>", &node.context.label, 1);
            let _ = write!(out, "STAT {name} {tenant}\r\n");
        }
        let metrics = node.context.metrics.snapshot();
        render_plugin_metrics(&node.context.label, &metrics, &PLUGIN_METRICS, &mut out);
    }
    for (i, node) in generation.nodes.iter().enumerate() {
        for tenant in &generation.tenants {
            let Some(share) = tenant.node(i) else {
                continue;
            };
            if share.called() {
                let totals = share.plugin_totals();
                let mut line = |def: &StatDef, value: &dyn std::fmt::Display| {
                    let name = def
                        .name
                        .replacen("<node>", &node.context.label, 1)
                        .replacen("<tenant>", &tenant.name, 1);
                    let _ = write!(out, "STAT {name} {value}\r\n");
                };
                line(&registry::PLUGIN_TENANT_CALLS, &totals.calls);
                for (def, n) in PLUGIN_TENANT_FAULTS.iter().zip(totals.faults) {
                    line(def, &n);
                }
                line(&registry::PLUGIN_TENANT_CALL_MEAN, &totals.time.mean_us());
                line(
                    &registry::PLUGIN_TENANT_CALL_P99,
                    &totals.time.quantile_us(0.99),
                );
            }
            if share.measured() {
                let label = format!("{}:tenant:{}", node.context.label, tenant.name);
                let metrics = share.metrics(&node.context.metrics);
                render_plugin_metrics(&label, &metrics, &PLUGIN_TENANT_METRICS, &mut out);
            }
        }
    }
    out.push_str("END\r\n");
    out
}

/// A tenant's faults at a node, in [`crate::tenant::nodes::PluginTotals::faults`]' order.
pub const PLUGIN_TENANT_FAULTS: [&StatDef; 5] = [
    &registry::PLUGIN_TENANT_TRAPS,
    &registry::PLUGIN_TENANT_TIMEOUTS,
    &registry::PLUGIN_TENANT_BAD_PLANS,
    &registry::PLUGIN_TENANT_OUT_OF_MEMORY,
    &registry::PLUGIN_TENANT_UNAVAILABLE,
];

/// The stats of a plugin's own metrics: a counter, then a histogram's count, sum, mean, p50
/// and p99.
type PluginMetricDefs = [&'static StatDef; 6];

/// A node's own.
const PLUGIN_METRICS: PluginMetricDefs = [
    &registry::PLUGIN_COUNTER,
    &registry::PLUGIN_HISTOGRAM_COUNT,
    &registry::PLUGIN_HISTOGRAM_SUM,
    &registry::PLUGIN_HISTOGRAM_MEAN,
    &registry::PLUGIN_HISTOGRAM_P50,
    &registry::PLUGIN_HISTOGRAM_P99,
];

/// A tenant's share of a node's.
const PLUGIN_TENANT_METRICS: PluginMetricDefs = [
    &registry::PLUGIN_TENANT_COUNTER,
    &registry::PLUGIN_TENANT_HISTOGRAM_COUNT,
    &registry::PLUGIN_TENANT_HISTOGRAM_SUM,
    &registry::PLUGIN_TENANT_HISTOGRAM_MEAN,
    &registry::PLUGIN_TENANT_HISTOGRAM_P50,
    &registry::PLUGIN_TENANT_HISTOGRAM_P99,
];

/// The `stats plugins` lines of `metrics`, a plugin's own metrics, as `defs` name them: the
/// node's (`label` is the node's) or a tenant's share of them (`label` is
/// `<node>:tenant:<tenant>`, what stands for `<node>:tenant:<tenant>` in `defs`).
fn render_plugin_metrics(
    label: &str,
    metrics: &crate::plugin::MetricsSnapshot,
    defs: &PluginMetricDefs,
    out: &mut String,
) {
    let [counter, count, sum, mean, p50, p99] = defs;
    let mut line = |def: &StatDef, name: &str, value: &dyn std::fmt::Display| {
        let stat = def
            .name
            .replacen("<node>:tenant:<tenant>", label, 1)
            .replacen("<node>", label, 1)
            .replacen("<counter>", name, 1)
            .replacen("<histogram>", name, 1);
        let _ = write!(out, "STAT {stat} {value}\r\n");
    };
    for (name, value) in &metrics.counters {
        line(counter, name, value);
    }
    for (name, h) in &metrics.histograms {
        line(count, name, &h.count());
        line(sum, name, &h.sum);
        line(mean, name, &h.mean_us());
        line(p50, name, &h.quantile_us(0.5));
        line(p99, name, &h.quantile_us(0.99));
    }
}

/// `stats tenants`: every tenant of `generation`, its connections, requests in flight,
/// counters and traffic, as `STAT <tenant>:<name> <value>`.
pub fn render_tenants(generation: &crate::generation::Generation) -> String {
    let mut out = String::with_capacity(2048 * generation.tenants.len() + 8);
    for tenant in &generation.tenants {
        let state = &tenant.state;
        let traffic = state.traffic_totals();
        let mut line = |name: &str, command: &str, value: &dyn std::fmt::Display| {
            let name = name
                .replacen("<tenant>", &tenant.name, 1)
                .replacen("<command>", command, 1);
            let _ = write!(out, "STAT {name} {value}\r\n");
        };
        let relaxed = Ordering::Relaxed;
        line(
            registry::TENANT_CURR_CONNECTIONS.name,
            "",
            &state.connections.load(relaxed),
        );
        line(registry::TENANT_OUTSTANDING.name, "", &state.outstanding());
        for (def, counter) in crate::tenant::TenantCounters::DEFS
            .iter()
            .zip(state.counters.counters())
        {
            line(&format!("<tenant>:{}", def.name), "", &counter.get());
        }
        for (command, n) in &traffic.commands {
            line(registry::TENANT_CMD.name, command, n);
        }
        for (command, n) in &traffic.command_errors {
            line(registry::TENANT_CMD_ERRORS.name, command, n);
        }
        line(registry::TENANT_GET_HITS.name, "", &traffic.get_hits);
        line(registry::TENANT_GET_MISSES.name, "", &traffic.get_misses);
        line(registry::TENANT_BYTES_READ.name, "", &traffic.bytes_read);
        line(
            registry::TENANT_BYTES_WRITTEN.name,
            "",
            &traffic.bytes_written,
        );
        line(
            registry::TENANT_CLIENT_ERRORS.name,
            "",
            &traffic.client_errors,
        );
        let latency = &traffic.latency;
        line(registry::TENANT_LATENCY_MEAN.name, "", &latency.mean_us());
        line(
            registry::TENANT_LATENCY_P50.name,
            "",
            &latency.quantile_us(0.5),
        );
        line(
            registry::TENANT_LATENCY_P99.name,
            "",
            &latency.quantile_us(0.99),
        );
    }
    out.push_str("END\r\n");
    out
}

/// `stats backends`: state, counters and latency of every server, as
/// `STAT <address>:<name> <value>`.
pub fn render_backends(generation: &crate::generation::Generation) -> String {
    let destinations = &generation.destinations;
    let mut out = String::with_capacity(1024 * destinations.len() + 8);
    for (i, d) in destinations.iter().enumerate() {
        let h = &d.health;
        let latency = h.latency();
        let state = if h.is_up() { "up" } else { "down" };
        let (outstanding, outstanding_bytes) = h.outstanding();
        let lines: [(&StatDef, &dyn std::fmt::Display); 9] = [
            (&registry::BACKEND_STATE, &state),
            (&registry::BACKEND_STATE_SINCE, &h.changed_at_ms()),
            (&registry::BACKEND_CONSECUTIVE_FAILURES, &h.failures()),
            (&registry::BACKEND_REPLIES, &h.replies()),
            (&registry::BACKEND_LATENCY_MEAN, &latency.mean_us()),
            (&registry::BACKEND_LATENCY_P50, &latency.quantile_us(0.5)),
            (&registry::BACKEND_LATENCY_P99, &latency.quantile_us(0.99)),
            (&registry::BACKEND_OUTSTANDING, &outstanding),
            (&registry::BACKEND_OUTSTANDING_BYTES, &outstanding_bytes),
        ];
        let address = d.address.to_string();
        for (def, value) in lines {
            let name = def.name.replacen("<server>", &address, 1);
            let _ = write!(out, "STAT {name} {value}\r\n");
        }
        for (def, counter) in crate::backend::HealthCounters::DEFS
            .iter()
            .zip(h.counters.counters())
        {
            let _ = write!(out, "STAT {address}:{} {}\r\n", def.name, counter.get());
        }
        for tenant in &generation.tenants {
            let Some(t) = tenant.server(i).filter(|s| s.active()).map(|s| s.totals()) else {
                continue;
            };
            let lines: [(&StatDef, u64); 9] = [
                (&registry::BACKEND_TENANT_REPLIES, t.replies),
                (&registry::BACKEND_TENANT_FAILED, t.failed),
                (&registry::BACKEND_TENANT_TIMEOUTS, t.timeouts),
                (&registry::BACKEND_TENANT_FAST_FAILED, t.fast_failed),
                (&registry::BACKEND_TENANT_LATENCY_MEAN, t.latency.mean_us()),
                (
                    &registry::BACKEND_TENANT_LATENCY_P50,
                    t.latency.quantile_us(0.5),
                ),
                (
                    &registry::BACKEND_TENANT_LATENCY_P99,
                    t.latency.quantile_us(0.99),
                ),
                (&registry::BACKEND_TENANT_OUTSTANDING, t.outstanding),
                (
                    &registry::BACKEND_TENANT_OUTSTANDING_BYTES,
                    t.outstanding_bytes,
                ),
            ];
            for (def, value) in lines {
                let name = def.name.replacen("<server>", &address, 1).replacen(
                    "<tenant>",
                    &tenant.name,
                    1,
                );
                let _ = write!(out, "STAT {name} {value}\r\n");
            }
        }
    }
    out.push_str("END\r\n");
    out
}

/// Everything `stats` reports.
#[derive(Debug)]
pub struct RouterStats {
    /// When the router started.
    pub started: SystemTime,
    /// Per-worker counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Generations and reloads.
    pub control: Arc<crate::reload::Control>,
    /// TLS client connections by identity (`stats tls`).
    pub identities: Identities,
    /// The hottest keys, sampled (`stats hotkeys`).
    pub hotkeys: hotkeys::HotKeys,
    /// The traffic capture (`tap` on the admin listener), when one runs.
    pub tap: crate::tap::Tap,
}

/// Most identities `stats tls` keeps: past it, one that has no connection open is forgotten to
/// make room, so a stream of clients with distinct certificates cannot grow it without bound.
const MAX_IDENTITIES: usize = 4096;

/// Client connections by the identity their certificate gave them: touched when a TLS client
/// connects and when it leaves, never per request.
#[derive(Debug, Default)]
pub struct Identities(std::sync::Mutex<std::collections::HashMap<String, IdentityCount>>);

/// Connections of one identity.
#[derive(Debug, Default, Clone, Copy)]
struct IdentityCount {
    curr: u64,
    total: u64,
}

impl Identities {
    /// A client with `identity` connected; the returned guard says when it leaves.
    pub fn connected(&self, identity: &str) -> IdentityGuard<'_> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(identity) && map.len() >= MAX_IDENTITIES {
            let idle = map
                .iter()
                .find(|(_, c)| c.curr == 0)
                .map(|(name, _)| name.clone());
            if let Some(idle) = idle {
                map.remove(&idle);
            }
        }
        let count = map.entry(identity.to_string()).or_default();
        count.curr += 1;
        count.total += 1;
        IdentityGuard {
            identities: self,
            identity: identity.to_string(),
        }
    }

    /// Each identity's connections open now and made so far, by name: `(identity, curr,
    /// total)`.
    pub fn counts(&self) -> Vec<(String, u64, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts: Vec<(String, u64, u64)> = map
            .iter()
            .map(|(name, c)| (name.clone(), c.curr, c.total))
            .collect();
        counts.sort();
        counts
    }

    /// `stats tls`: `STAT identity:<name>:curr_connections` and `:total_connections` per
    /// identity, then `END`.
    pub fn render(&self) -> String {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<(&String, &IdentityCount)> = map.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = String::with_capacity(64 * names.len() + 8);
        for (name, count) in names {
            out.push_str(&format!(
                "STAT identity:{name}:curr_connections {}\r\nSTAT identity:{name}:total_connections {}\r\n",
                count.curr, count.total
            ));
        }
        out.push_str("END\r\n");
        out
    }
}

/// Counts a TLS client's connection as closed when dropped.
#[derive(Debug)]
pub struct IdentityGuard<'a> {
    identities: &'a Identities,
    identity: String,
}

impl Drop for IdentityGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.identities.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = map.get_mut(&self.identity) {
            count.curr = count.curr.saturating_sub(1);
        }
    }
}

impl RouterStats {
    /// Counters for `workers` workers.
    pub fn new(workers: usize, control: Arc<crate::reload::Control>) -> RouterStats {
        RouterStats {
            started: SystemTime::now(),
            workers: (0..workers)
                .map(|_| Arc::new(WorkerStats::default()))
                .collect(),
            control,
            identities: Identities::default(),
            hotkeys: hotkeys::HotKeys::new(workers),
            tap: crate::tap::Tap::default(),
        }
    }

    /// Sum of one counter over all workers.
    pub fn sum(&self, f: impl Fn(&WorkerStats) -> &Counter) -> u64 {
        self.workers.iter().map(|w| f(w).get()).sum()
    }

    /// The `STAT name value` lines of a `stats` reply, ending with `END`: process, requests,
    /// errors and the configuration's state.
    pub fn render(&self) -> String {
        let now = SystemTime::now();
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let uptime = now.duration_since(self.started).map_or(0, |d| d.as_secs());
        let mut out = String::with_capacity(4096);
        let mut stat = |def: &StatDef, value: &dyn std::fmt::Display| {
            let _ = write!(out, "STAT {} {value}\r\n", def.name);
        };
        stat(&registry::PID, &std::process::id());
        stat(&registry::UPTIME, &uptime);
        stat(&registry::TIME, &unix);
        stat(&registry::VERSION, &crate::VERSION_STRING);
        stat(&registry::THREADS, &self.workers.len());
        let mut totals = vec![0u64; WorkerStats::DEFS.len()];
        let mut commands = [0u64; Command::ALL.len()];
        for w in &self.workers {
            for (total, counter) in totals.iter_mut().zip(w.counters()) {
                *total += counter.get();
            }
            for (total, counter) in commands.iter_mut().zip(&w.commands) {
                *total += counter.get();
            }
        }
        for (def, total) in WorkerStats::DEFS.iter().zip(&totals) {
            let _ = write!(out, "STAT {} {total}\r\n", def.name);
        }
        for (command, total) in Command::ALL.iter().zip(commands) {
            let _ = write!(out, "STAT cmd_{} {total}\r\n", command.name());
        }
        let mut errors = [0u64; Command::ALL.len()];
        for w in &self.workers {
            for (total, counter) in errors.iter_mut().zip(&w.command_errors) {
                *total += counter.get();
            }
        }
        for (command, total) in Command::ALL.iter().zip(errors) {
            let _ = write!(out, "STAT cmd_{}_errors {total}\r\n", command.name());
        }
        let spools = self.control.spools().stats();
        let mut stat = |def: &StatDef, value: &dyn std::fmt::Display| {
            let _ = write!(out, "STAT {} {value}\r\n", def.name);
        };
        stat(&registry::DELETE_SPOOLED, &spools.spooled.get());
        stat(&registry::DELETE_REPLAYED, &spools.replayed.get());
        stat(&registry::DELETE_SPOOL_DROPPED, &spools.dropped.get());
        stat(&registry::DELETE_SPOOL_BYTES, &spools.bytes());
        if let Some(allocations) = ALLOCATIONS.get() {
            stat(&registry::ALLOCATIONS, &allocations());
        }
        self.render_config_into(&mut out);
        out.push_str("END\r\n");
        out
    }

    /// `stats config`: the serving generation and the reloads.
    pub fn render_config(&self) -> String {
        let mut out = String::with_capacity(1024);
        self.render_config_into(&mut out);
        out.push_str("END\r\n");
        out
    }

    fn render_config_into(&self, out: &mut String) {
        let mut stat = |def: &StatDef, value: &dyn std::fmt::Display| {
            let _ = write!(out, "STAT {} {value}\r\n", def.name);
        };
        let c = &self.control;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let generation = c.current().load();
        stat(&registry::GENERATION, &generation.number);
        stat(
            &registry::GENERATION_LOADED_AT,
            &c.stats.loaded_at.load(relaxed),
        );
        stat(&registry::GENERATION_FAULTS, &generation.faults.get());
        stat(&registry::GENERATIONS_ALIVE, &c.generations_alive());
        stat(&registry::PLUGIN_MODULES, &c.modules_cached());
        let file = generation.config.origin.display().to_string();
        stat(
            &registry::CONFIG_FILE,
            &file.replace(['\r', '\n', ' '], "_"),
        );
        stat(&registry::RELOADS, &c.stats.reloads.get());
        stat(&registry::RELOAD_FAILURES, &c.stats.failures.get());
        stat(&registry::ROLLBACKS, &c.stats.rollbacks.get());
        stat(
            &registry::ROLLED_BACK_FROM,
            &c.stats.rolled_back_from.load(relaxed),
        );
        stat(
            &registry::LAST_RELOAD_SUCCESS,
            &c.stats.last_success.load(relaxed),
        );
        let last_error = c.stats.last_error().replace(['\r', '\n'], " ");
        if !last_error.is_empty() {
            stat(&registry::LAST_RELOAD_ERROR, &last_error);
        }
        let failed_at = c.stats.last_failure.load(relaxed);
        if failed_at != 0 {
            stat(&registry::LAST_RELOAD_FAILURE, &failed_at);
        }
        let cleared_at = c.stats.error_cleared.load(relaxed);
        if cleared_at != 0 {
            stat(&registry::LAST_RELOAD_ERROR_CLEARED, &cleared_at);
        }
    }
}

/// `switchyard --describe-stats`.
pub fn describe() -> String {
    registry::describe(
        &[WorkerStats::DEFS],
        &[
            ("<server>", crate::backend::HealthCounters::DEFS),
            ("<tenant>", crate::tenant::TenantCounters::DEFS),
        ],
    )
}

/// Heap allocations made so far, in a build whose global allocator counts them (bench/run's
/// `switchyard-count-allocs`); `stats` shows `allocations` only there.
static ALLOCATIONS: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// Heap allocations so far, in a build that counts them (`None` otherwise).
pub fn allocations() -> Option<u64> {
    ALLOCATIONS.get().map(|count| count())
}

/// Makes `stats` report `allocations` as `count` reads them. Only the first call counts.
pub fn report_allocations(count: fn() -> u64) {
    let _first = ALLOCATIONS.set(count);
}
