//! Health of one backend server, shared by every worker.
//!
//! ```text
//!                 N consecutive failures,
//!                 or one refused connect
//!        ┌──────┐ ─────────────────────────▶ ┌──────┐
//!        │  Up  │                            │ Down │ ◀─┐ probe failed:
//!        └──────┘ ◀───────────────────────── └──────┘ ──┘ wait ×2 (≤ ceiling)
//!                   a `version` probe answered
//! ```
//! - **Up**: requests are sent. Every failure on the server's side (a connect refused or
//!   timed out, a request timed out in silence, a reset, a protocol error) counts; any
//!   successful reply clears the count. What is not the server's doing counts for nothing: a
//!   request whose own reply was still arriving when its timeout passed (the server was busy
//!   sending it), requests cut off behind such a reply, and a connect the router could not
//!   even attempt for want of a local resource (file descriptors, memory, local ports).
//! - **Down**: requests fail at once with `SERVER_ERROR backend <addr> is down`, without
//!   touching the network, so failover policies act without paying a timeout. Exactly one
//!   prober (whichever worker marked the server down) sends `version` on a fresh connection
//!   (`exchange.rs`, which reads the reply with the same parser as every other reader),
//!   first after the probe floor, then doubling up to the ceiling, and marks the server up when
//!   it answers.
//!
//! State changes are logged once each, never per request; local shortages once per
//! [`LOCAL_LOG_INTERVAL`] per server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use switchyard_protocol::{ReplyKind, ReplyStatus};

use super::LocalShortage;
use crate::stats::Counter;

/// Shortest time between two log lines about a local shortage for one server: a router out of
/// file descriptors fails every connect, and must not log each one.
pub const LOCAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Settings that decide when a server is down and how it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failures that mark a server down.
    pub failure_limit: u32,
    /// First wait before probing a down server.
    pub probe_floor: Duration,
    /// Longest wait between probes.
    pub probe_ceiling: Duration,
    /// Connect and answer budget of one probe.
    pub probe_timeout: Duration,
}

/// A server's health and counters. Written by whichever worker sees an event; read on every
/// request (one relaxed load).
#[derive(Debug)]
pub struct Health {
    address: SocketAddr,
    down: AtomicBool,
    failures: AtomicU32,
    probing: AtomicBool,
    changed_at_ms: AtomicU64,
    /// The clock of the local-shortage log.
    born: Instant,
    /// Milliseconds after `born` of the last local-shortage log line (0: none yet).
    local_logged: AtomicU64,
    /// Local shortages not logged since the last line.
    local_unlogged: AtomicU64,
    /// Failures on the server's side (connect, silent timeout, reset, protocol), one per
    /// connection that ended with them.
    pub failed: Counter,
    /// Requests that timed out with the server silent.
    pub timeouts: Counter,
    /// Requests whose reply was still arriving when their timeout passed: failed, their
    /// connection reset, not counted against the server.
    pub replies_cut: Counter,
    /// Reads re-sent on a fresh connection because a reply ahead of them was cut.
    pub resent: Counter,
    /// Requests failed because a reply ahead of them was cut and they could not be re-sent.
    pub cut_behind: Counter,
    /// Connects the router could not make for want of a local resource.
    pub local_errors: Counter,
    /// Requests refused at once because the server was down or over its outstanding limit.
    pub fast_failed: Counter,
    /// Times the server was marked down.
    pub marked_down: Counter,
    /// Probes answered.
    pub probes_ok: Counter,
    /// Probes that failed.
    pub probes_failed: Counter,
    /// Replies and their latency, one slot per worker: written on every reply, so never a
    /// cache line two workers write.
    latency: Box<[LatencySlot]>,
}

/// One worker's reply count and summed latency for one server.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LatencySlot {
    replies: Counter,
    latency_us: Counter,
}

impl Health {
    /// A server presumed up, served by `workers` workers.
    pub fn new(address: SocketAddr, workers: usize) -> Health {
        Health {
            address,
            down: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            changed_at_ms: AtomicU64::new(now_ms()),
            born: Instant::now(),
            local_logged: AtomicU64::new(0),
            local_unlogged: AtomicU64::new(0),
            failed: Counter::default(),
            timeouts: Counter::default(),
            replies_cut: Counter::default(),
            resent: Counter::default(),
            cut_behind: Counter::default(),
            local_errors: Counter::default(),
            fast_failed: Counter::default(),
            marked_down: Counter::default(),
            probes_ok: Counter::default(),
            probes_failed: Counter::default(),
            latency: (0..workers.max(1))
                .map(|_| LatencySlot::default())
                .collect(),
        }
    }

    /// Whether requests may be sent.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// Replies received, over all workers.
    pub fn replies(&self) -> u64 {
        self.latency.iter().map(|s| s.replies.get()).sum()
    }

    /// Summed reply latency over all workers, microseconds.
    pub fn latency_us(&self) -> u64 {
        self.latency.iter().map(|s| s.latency_us.get()).sum()
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Unix milliseconds of the last state change.
    pub fn changed_at_ms(&self) -> u64 {
        self.changed_at_ms.load(Ordering::Relaxed)
    }

    /// Worker `worker` received a reply after `latency`.
    pub fn record_reply(&self, worker: usize, latency: Duration) {
        let slot = &self.latency[worker % self.latency.len()];
        slot.replies.inc();
        slot.latency_us.add(latency.as_micros() as u64);
        // Read first: the common case writes nothing to a line every worker reads.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed; returns true if this failure marked the server down (the caller then
    /// starts the prober).
    pub fn record_failure(
        &self,
        policy: &HealthPolicy,
        reason: &dyn std::fmt::Display,
        immediate: bool,
    ) -> bool {
        self.failed.inc();
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if (immediate || n >= policy.failure_limit) && !self.down.swap(true, Ordering::AcqRel) {
            self.marked_down.inc();
            self.changed_at_ms.store(now_ms(), Ordering::Relaxed);
            tracing::warn!(backend = %self.address, failures = n, reason = %reason, "backend marked down");
            return true;
        }
        false
    }

    fn mark_up(&self) {
        self.failures.store(0, Ordering::Relaxed);
        if self.down.swap(false, Ordering::AcqRel) {
            self.changed_at_ms.store(now_ms(), Ordering::Relaxed);
            tracing::info!(backend = %self.address, "backend back up");
        }
    }

    /// Whether a prober should start: true for exactly one caller until that prober ends.
    pub fn claim_prober(&self) -> bool {
        !self.probing.swap(true, Ordering::AcqRel)
    }

    /// The router could not connect for want of `what`: counts it, and logs it unless a line
    /// about this server was written less than [`LOCAL_LOG_INTERVAL`] ago. The server's health
    /// is untouched.
    pub fn local_shortage(&self, what: LocalShortage) {
        self.local_errors.inc();
        let now = self.clock().max(1);
        let last = self.local_logged.load(Ordering::Relaxed);
        let due = last == 0 || Duration::from_millis(now - last.min(now)) >= LOCAL_LOG_INTERVAL;
        if due
            && self
                .local_logged
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let unlogged = self.local_unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                backend = %self.address,
                unlogged,
                "cannot connect: router {what}; the server is not marked down \
                 (more of these for {LOCAL_LOG_INTERVAL:?} are counted as local_errors, not logged)"
            );
        } else {
            self.local_unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Milliseconds since this record was made, at least 1 (0 means "never").
    fn clock(&self) -> u64 {
        (self.born.elapsed().as_millis() as u64).max(1)
    }
}

/// Probes a down server until it answers, with exponential backoff. Run as a task by the worker
/// that claimed the prober.
pub async fn probe_until_up(health: std::sync::Arc<Health>, policy: HealthPolicy) {
    let mut wait = policy.probe_floor;
    loop {
        tokio::time::sleep(wait).await;
        if health.is_up() {
            break;
        }
        match probe(health.address, policy.probe_timeout).await {
            Ok(()) => {
                health.probes_ok.inc();
                health.mark_up();
                break;
            }
            Err(e) => {
                health.probes_failed.inc();
                tracing::debug!(backend = %health.address, error = %e, next_in = ?wait, "probe failed");
                wait = (wait * 2).min(policy.probe_ceiling);
            }
        }
    }
    health.probing.store(false, Ordering::Release);
}

/// One `version` round trip on a fresh connection.
async fn probe(address: SocketAddr, budget: Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    match super::exchange::exchange(address, b"version\r\n", ReplyKind::Line, deadline).await {
        Ok((_, ReplyStatus::Version)) => Ok(()),
        Ok((reply, _)) => Err(format!(
            "unexpected answer {:?}",
            String::from_utf8_lossy(&reply)
        )),
        Err(e) => Err(e.to_string()),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(floor_ms: u64, ceiling_ms: u64) -> HealthPolicy {
        HealthPolicy {
            failure_limit: 3,
            probe_floor: Duration::from_millis(floor_ms),
            probe_ceiling: Duration::from_millis(ceiling_ms),
            probe_timeout: Duration::from_secs(1),
        }
    }

    fn health() -> Health {
        Health::new("127.0.0.1:11211".parse().expect("address"), 2)
    }

    #[test]
    fn only_server_side_failures_count_and_a_reply_clears_them() {
        let h = health();
        let p = policy(100, 500);
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(!h.record_failure(&p, &"timed out", false));
        h.record_reply(0, Duration::from_micros(10));
        assert_eq!(h.failures(), 0);
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(
            h.record_failure(&p, &"timed out", false),
            "the third marks it down"
        );
        assert!(!h.is_up());
        assert!(!h.record_failure(&p, &"timed out", false), "once");
        assert_eq!(h.marked_down.get(), 1);

        // A local shortage is counted apart and leaves the state alone.
        let h = health();
        for _ in 0..10 {
            h.local_shortage(super::super::LocalShortage::FileDescriptors);
        }
        assert!(h.is_up());
        assert_eq!((h.failures(), h.local_errors.get()), (0, 10));
        assert_eq!(
            h.local_unlogged.load(Ordering::Relaxed),
            9,
            "one line for ten shortages within the interval"
        );
    }
}
