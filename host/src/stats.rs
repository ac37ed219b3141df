//! Counters: one set per worker, written only by that worker (relaxed atomics on its own cache
//! lines), summed when a client asks for `stats`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

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

/// One worker's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct WorkerStats {
    /// Client connections open now.
    pub curr_connections: Counter,
    /// Client connections accepted.
    pub total_connections: Counter,
    /// Client connections refused at a listener's `max_connections` or the router's
    /// open-file budget (answered `ERROR Too many open connections`; memcached's name).
    pub rejected_connections: Counter,
    /// TLS handshakes completed on TLS listeners.
    pub tls_connections: Counter,
    /// TLS handshakes that failed (no or an untrusted or expired client certificate, a
    /// plaintext client on a TLS listener, garbage, a timeout); each is logged with its reason.
    pub tls_handshake_errors: Counter,
    /// Connections whose first bytes were a TLS handshake on a plaintext listener: closed.
    pub tls_on_plain_listener: Counter,
    /// Retrieval commands (one per command, not per key).
    pub cmd_get: Counter,
    /// Keys looked up by retrieval commands.
    pub get_keys: Counter,
    /// Storage commands.
    pub cmd_set: Counter,
    /// Deletes, arithmetic and touches.
    pub cmd_other: Counter,
    /// Requests failed on a backend's side: down, unreachable, timed out, reset, or answering
    /// with something that is not a reply (`error::Side::Backend`).
    pub backend_errors: Counter,
    /// Requests failed on a plugin's side: traps, timeouts, invalid plans, a plugin that cannot
    /// be instantiated, plans that make no sense for the request (`error::Side::Plugin`).
    pub plugin_faults: Counter,
    /// Of those, requests a node's `on_fault` sent on to a child (`pass`, `fallback:`)
    /// instead of failing them.
    pub plugin_fallbacks: Counter,
    /// Times a node's circuit breaker opened on a worker.
    pub plugin_breaker_opens: Counter,
    /// Malformed client requests, and requests whose key a rewrite cannot fit
    /// (`error::Side::Client`).
    pub client_errors: Counter,
    /// Requests failed by the router itself: an invariant broke (`error::Side::Internal`).
    pub internal_errors: Counter,
    /// Background requests sent (shadow copies, refills, asynchronous replication).
    pub background_sent: Counter,
    /// Background requests in flight now (a gauge, bounded by `server.max_background`).
    pub background_outstanding: Counter,
    /// Bytes of background requests in flight now (a gauge, bounded by
    /// `server.max_background_bytes`).
    pub background_bytes: Counter,
    /// Background requests not sent because the worker had `server.max_background` of them, or
    /// `server.max_background_bytes` of their bytes, in flight.
    pub background_dropped: Counter,
    /// Background stores not sent because there was no value at hand (ABI.md, `background`).
    pub background_skipped: Counter,
    /// Background requests whose reply was an error (including the router's own).
    pub background_failed: Counter,
    /// Compared background replies (shadowing) that differed from the client's reply.
    pub shadow_mismatches: Counter,
    /// Long values a client stored that passed through to their server as they arrived.
    pub streamed_stores: Counter,
    /// Long values a server returned that passed through to their client as they arrived.
    pub streamed_values: Counter,
    /// Streams cut short by a failure after part of the value had passed (the client's
    /// connection is then closed, as a partial value cannot be taken back).
    pub streams_broken: Counter,
}

/// `stats backends`: state and counters of every server, as `STAT <address>:<name> <value>`.
pub fn render_backends(destinations: &[crate::backend::DestinationSpec]) -> String {
    let mut out = String::with_capacity(256 * destinations.len() + 8);
    for d in destinations {
        let h = &d.health;
        let replies = h.replies();
        let avg_us = h.latency_us().checked_div(replies).unwrap_or(0);
        let state = if h.is_up() { "up" } else { "down" };
        let lines: [(&str, &dyn std::fmt::Display); 15] = [
            ("state", &state),
            ("state_since_ms", &h.changed_at_ms()),
            ("consecutive_failures", &h.failures()),
            ("failures", &h.failed.get()),
            ("timeouts", &h.timeouts.get()),
            ("replies_cut", &h.replies_cut.get()),
            ("resent", &h.resent.get()),
            ("cut_behind", &h.cut_behind.get()),
            ("local_errors", &h.local_errors.get()),
            ("tls_handshake_errors", &h.tls_errors.get()),
            ("fast_failed", &h.fast_failed.get()),
            ("marked_down", &h.marked_down.get()),
            ("probes_ok", &h.probes_ok.get()),
            ("probes_failed", &h.probes_failed.get()),
            ("avg_latency_us", &avg_us),
        ];
        for (name, value) in lines {
            out.push_str(&format!("STAT {}:{name} {value}\r\n", d.address));
        }
        out.push_str(&format!("STAT {}:replies {replies}\r\n", d.address));
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
        }
    }

    /// Sum of one counter over all workers.
    pub fn sum(&self, f: impl Fn(&WorkerStats) -> &Counter) -> u64 {
        self.workers.iter().map(|w| f(w).get()).sum()
    }

    /// The `STAT name value` lines of a `stats` reply, ending with `END`.
    pub fn render(&self) -> String {
        let now = SystemTime::now();
        let unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let uptime = now.duration_since(self.started).map_or(0, |d| d.as_secs());
        let mut out = String::with_capacity(512);
        let mut stat = |name: &str, value: &dyn std::fmt::Display| {
            out.push_str("STAT ");
            out.push_str(name);
            out.push(' ');
            out.push_str(&value.to_string());
            out.push_str("\r\n");
        };
        stat("pid", &std::process::id());
        stat("uptime", &uptime);
        stat("time", &unix);
        stat("version", &crate::VERSION_STRING);
        stat("threads", &self.workers.len());
        stat("curr_connections", &self.sum(|w| &w.curr_connections));
        stat("total_connections", &self.sum(|w| &w.total_connections));
        stat(
            "rejected_connections",
            &self.sum(|w| &w.rejected_connections),
        );
        stat("tls_connections", &self.sum(|w| &w.tls_connections));
        stat(
            "tls_handshake_errors",
            &self.sum(|w| &w.tls_handshake_errors),
        );
        stat(
            "tls_on_plain_listener",
            &self.sum(|w| &w.tls_on_plain_listener),
        );
        stat("cmd_get", &self.sum(|w| &w.cmd_get));
        stat("get_keys", &self.sum(|w| &w.get_keys));
        stat("cmd_set", &self.sum(|w| &w.cmd_set));
        stat("cmd_other", &self.sum(|w| &w.cmd_other));
        stat("backend_errors", &self.sum(|w| &w.backend_errors));
        stat("plugin_faults", &self.sum(|w| &w.plugin_faults));
        stat("plugin_fallbacks", &self.sum(|w| &w.plugin_fallbacks));
        stat(
            "plugin_breaker_opens",
            &self.sum(|w| &w.plugin_breaker_opens),
        );
        stat("client_errors", &self.sum(|w| &w.client_errors));
        stat("internal_errors", &self.sum(|w| &w.internal_errors));
        stat("background_sent", &self.sum(|w| &w.background_sent));
        stat(
            "background_outstanding",
            &self.sum(|w| &w.background_outstanding),
        );
        stat("background_bytes", &self.sum(|w| &w.background_bytes));
        stat("background_dropped", &self.sum(|w| &w.background_dropped));
        stat("background_skipped", &self.sum(|w| &w.background_skipped));
        stat("background_failed", &self.sum(|w| &w.background_failed));
        stat("shadow_mismatches", &self.sum(|w| &w.shadow_mismatches));
        stat("streamed_stores", &self.sum(|w| &w.streamed_stores));
        stat("streamed_values", &self.sum(|w| &w.streamed_values));
        stat("streams_broken", &self.sum(|w| &w.streams_broken));
        let spools = self.control.spools().stats();
        stat("delete_spooled", &spools.spooled.get());
        stat("delete_replayed", &spools.replayed.get());
        stat("delete_spool_dropped", &spools.dropped.get());
        stat("delete_spool_bytes", &spools.bytes());
        if let Some(allocations) = ALLOCATIONS.get() {
            stat("allocations", &allocations());
        }
        let c = &self.control;
        let generation = c.current().load();
        let loaded_at = c.stats.loaded_at.load(std::sync::atomic::Ordering::Relaxed);
        stat("generation", &generation.number);
        stat("generation_loaded_at", &loaded_at);
        stat("generation_faults", &generation.faults.get());
        stat("generations_alive", &c.generations_alive());
        stat("plugin_modules", &c.modules_cached());
        stat("reloads", &c.stats.reloads.get());
        stat("reload_failures", &c.stats.failures.get());
        stat("rollbacks", &c.stats.rollbacks.get());
        stat(
            "rolled_back_from",
            &c.stats
                .rolled_back_from
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        stat(
            "last_reload_success",
            &c.stats
                .last_success
                .load(std::sync::atomic::Ordering::Relaxed),
        );
        let last_error = c.stats.last_error().replace(['\r', '\n'], " ");
        if !last_error.is_empty() {
            stat("last_reload_error", &last_error);
        }
        out.push_str("END\r\n");
        out
    }
}

/// Heap allocations made so far, in a build whose global allocator counts them (bench/run's
/// `switchyard-count-allocs`); `stats` shows `allocations` only there.
static ALLOCATIONS: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// Makes `stats` report `allocations` as `count` reads them. Only the first call counts.
pub fn report_allocations(count: fn() -> u64) {
    let _first = ALLOCATIONS.set(count);
}
