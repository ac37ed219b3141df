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
//! - **Up**: requests are sent. Every failure (connect error, timeout, reset, protocol error)
//!   counts; any successful reply clears the count.
//! - **Down**: requests fail at once with `SERVER_ERROR backend <addr> is down`, without
//!   touching the network, so failover policies act without paying a timeout. Exactly one
//!   prober (whichever worker marked the server down) sends `version` on a fresh connection
//!   (`exchange.rs`, which reads the reply with the same parser as every other reader),
//!   first after the probe floor, then doubling up to the ceiling, and marks the server up when
//!   it answers.
//!
//! State changes are logged once each, never per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use switchyard_protocol::{ReplyKind, ReplyStatus};

use crate::stats::Counter;

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
    /// Requests that failed at the network level (connect, timeout, reset, protocol).
    pub failed: Counter,
    /// Requests that timed out.
    pub timeouts: Counter,
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
            failed: Counter::default(),
            timeouts: Counter::default(),
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
