//! Health of one backend server, shared by every worker.
//!
//! ```text
//!                 N consecutive failures,
//!                 or one refused connect
//!        ┌──────┐ ─────────────────────────▶ ┌──────┐
//!        │  Up  │                            │ Down │ ◀─┐ probe failed:
//!        └──────┘ ◀───────────────────────── └──────┘ ──┘ wait ×2 (≤ ceiling), jittered
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
//!   (`exchange.rs`, which reads the reply with the same parser as every other reader) and
//!   marks the server up when it answers. It waits the probe floor first, then twice as long
//!   after each failed probe up to the ceiling, each wait drawn between half of it (never
//!   below the floor) and all of it, so that routers which lost a server together do not
//!   probe it in step. A request refused because the server is down wakes the prober early
//!   ([`Health::wanted`]) when the last probe began at least a floor ago: a server that
//!   clients ask for is probed every floor (100 ms by default), one nobody asks for every
//!   ceiling at most (500 ms), and never by more than one probe at a time however many
//!   workers and requests want it.
//!
//! State changes are logged once each, never per request; local shortages once per
//! [`LOCAL_LOG_INTERVAL`] per server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use switchyard_protocol::{ReplyKind, ReplyStatus};
use tokio::sync::Notify;

use super::LocalShortage;
use crate::stats::registry::declare_counters;

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

declare_counters! {
    /// A server's counters: written by whichever worker sees an event, summed by `stats
    /// backends`.
    #[derive(Debug, Default)]
    pub struct HealthCounters in "backends" {
        /// Failures on the server's side (connect, silent timeout, reset, protocol), one per
        /// connection that ended with them.
        failures: Counter, Count;
        /// Requests that timed out with the server silent.
        timeouts: Counter, Count;
        /// Requests whose reply was still arriving when their timeout passed: failed, their
        /// connection reset, not counted against the server.
        replies_cut: Counter, Count;
        /// Reads re-sent on a fresh connection because a reply ahead of them was cut.
        resent: Counter, Count;
        /// Requests failed because a reply ahead of them was cut and they could not be re-sent.
        cut_behind: Counter, Count;
        /// Connects the router could not make for want of a local resource.
        local_errors: Counter, Count;
        /// TLS handshakes with the server that failed (a certificate that did not verify, a
        /// server not speaking TLS).
        tls_handshake_errors: Counter, Count;
        /// Requests refused at once because the server was down or over its outstanding limit.
        fast_failed: Counter, Count;
        /// Times the server was marked down.
        marked_down: Counter, Count;
        /// Probes answered.
        probes_ok: Counter, Count;
        /// Probes that failed.
        probes_failed: Counter, Count;
    }
    also {}
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
    /// The clock of [`Health::last_probe`] and of the local-shortage log.
    born: Instant,
    /// Milliseconds after `born` when the last probe began or ended (0: none yet).
    last_probe: AtomicU64,
    /// Milliseconds after `born` of the last local-shortage log line (0: none yet).
    local_logged: AtomicU64,
    /// Local shortages not logged since the last line.
    local_unlogged: AtomicU64,
    /// A request wanted the server while it was down; the prober has not seen it yet.
    wanted: AtomicBool,
    /// Wakes the prober when a request wants the server.
    wake: Notify,
    /// The server's counters (`stats backends`).
    pub counters: HealthCounters,
    /// At most one log line about failed handshakes per interval.
    tls_logged: crate::server::EveryInterval,
    /// Replies and their latency, one slot per worker: written on every reply, so never a
    /// cache line two workers write.
    latency: Box<[LatencySlot]>,
}

/// One worker's reply latencies for one server.
#[derive(Debug, Default)]
#[repr(align(128))]
struct LatencySlot {
    /// Replies the worker received from the server.
    replies: crate::stats::Counter,
    latency: crate::stats::Histogram,
    /// The worker's requests queued or in flight at the server now.
    outstanding: crate::stats::Counter,
    /// Their bytes, as `max_outstanding_bytes` counts them.
    outstanding_bytes: crate::stats::Counter,
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
            last_probe: AtomicU64::new(0),
            local_logged: AtomicU64::new(0),
            local_unlogged: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
            wake: Notify::new(),
            counters: HealthCounters::default(),
            tls_logged: crate::server::EveryInterval::new(),
            latency: (0..workers.max(1))
                .map(|_| LatencySlot::default())
                .collect(),
        }
    }

    /// Whether requests may be sent.
    pub fn is_up(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// Reply latencies over all workers.
    pub fn latency(&self) -> crate::stats::Snapshot {
        crate::stats::Snapshot::of(self.latency.iter().map(|s| &s.latency))
    }

    /// Worker `worker` queued a request of `cost` bytes for the server.
    pub(super) fn outstanding_added(&self, worker: usize, cost: usize) {
        let slot = &self.latency[worker % self.latency.len()];
        slot.outstanding.inc();
        slot.outstanding_bytes.add(cost as u64);
    }

    /// A request of worker `worker`, of `cost` bytes, is done (answered or failed).
    pub(super) fn outstanding_removed(&self, worker: usize, cost: usize) {
        let slot = &self.latency[worker % self.latency.len()];
        slot.outstanding.dec();
        slot.outstanding_bytes.sub(cost as u64);
    }

    /// Replies received from the server, over all workers.
    pub fn replies(&self) -> u64 {
        self.latency.iter().map(|s| s.replies.get()).sum()
    }

    /// Requests queued or in flight at the server now, and their bytes, over all workers.
    pub fn outstanding(&self) -> (u64, u64) {
        self.latency.iter().fold((0, 0), |(n, bytes), slot| {
            (
                n + slot.outstanding.get(),
                bytes + slot.outstanding_bytes.get(),
            )
        })
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Unix milliseconds of the last state change.
    pub fn changed_at_ms(&self) -> u64 {
        self.changed_at_ms.load(Ordering::Relaxed)
    }

    /// Worker `worker` received a reply after `latency` (`None`: not timed).
    pub fn record_reply(&self, worker: usize, latency: Option<Duration>) {
        let slot = &self.latency[worker % self.latency.len()];
        slot.replies.inc();
        if let Some(latency) = latency {
            slot.latency.record(latency);
        }
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
        self.counters.failures.inc();
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if (immediate || n >= policy.failure_limit) && !self.down.swap(true, Ordering::AcqRel) {
            self.counters.marked_down.inc();
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

    /// A request wanted the server while it is down: wakes the prober to probe now, if its
    /// last probe began at least `policy.probe_floor` ago. Called only on the refusal path,
    /// never for a server that is up.
    pub fn wanted(&self, policy: &HealthPolicy) {
        let last = self.last_probe.load(Ordering::Relaxed);
        let since = Duration::from_millis(self.clock().saturating_sub(last));
        if (last == 0 || since >= policy.probe_floor) && !self.wanted.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// The router could not connect for want of `what`: counts it, and logs it unless a line
    /// about this server was written less than [`LOCAL_LOG_INTERVAL`] ago. The server's health
    /// is untouched.
    pub fn local_shortage(&self, what: LocalShortage) {
        self.counters.local_errors.inc();
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

    /// A TLS handshake with the server failed with `error`: counted, and logged with the
    /// reason (the first, then at most once per interval with how many there were).
    pub fn tls_failed(&self, error: &super::BackendError) {
        self.counters.tls_handshake_errors.inc();
        if let Some(failed) = self.tls_logged.note() {
            tracing::warn!(
                backend = %self.address,
                failed,
                "backend {error}"
            );
        }
    }

    /// Milliseconds since this record was made, at least 1 (0 means "never" above).
    fn clock(&self) -> u64 {
        (self.born.elapsed().as_millis() as u64).max(1)
    }
}

/// A small xorshift generator for probe jitter: no dependency, no lock, and nothing secret.
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn new(address: SocketAddr) -> Jitter {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        address.hash(&mut h);
        now_ms().hash(&mut h);
        Jitter(h.finish() | 1)
    }

    /// A duration drawn evenly from `low..=high`.
    fn between(&mut self, low: Duration, high: Duration) -> Duration {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let span = high.saturating_sub(low).as_micros() as u64;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) % (span + 1);
        low + Duration::from_micros(r)
    }
}

/// The wait before the next probe, `wait` being the current step of the backoff: drawn between
/// half of it (never below the floor) and all of it.
fn jittered(jitter: &mut Jitter, wait: Duration, policy: &HealthPolicy) -> Duration {
    let low = (wait / 2).max(policy.probe_floor).min(wait);
    jitter.between(low, wait)
}

/// Probes a down server until it answers, with jittered exponential backoff, or sooner when a
/// request wants it ([`Health::wanted`]). Run as a task by the worker that claimed the prober.
pub async fn probe_until_up(
    health: std::sync::Arc<Health>,
    policy: HealthPolicy,
    tls: Option<crate::tls::Connector>,
) {
    loop {
        probe_loop(&health, &policy, tls.as_ref()).await;
        health.probing.store(false, Ordering::Release);
        // Marked down again between the probe that brought it up and the line above: the
        // worker that marked it found a prober still running and started none.
        if health.is_up() || !health.claim_prober() {
            break;
        }
    }
}

async fn probe_loop(health: &Health, policy: &HealthPolicy, tls: Option<&crate::tls::Connector>) {
    let mut jitter = Jitter::new(health.address);
    let mut step = policy.probe_floor;
    // The first wait is the floor itself: the server just failed.
    let mut wait = policy.probe_floor;
    health.last_probe.store(health.clock(), Ordering::Relaxed);
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = health.wake.notified() => {
                // Asked for: probe now, but never sooner than a floor after the last probe
                // began or ended.
                let since = health.clock().saturating_sub(health.last_probe.load(Ordering::Relaxed));
                let left = policy.probe_floor.saturating_sub(Duration::from_millis(since));
                if !left.is_zero() {
                    tokio::time::sleep(left).await;
                }
            }
        }
        health.wanted.store(false, Ordering::Release);
        if health.is_up() {
            break;
        }
        health.last_probe.store(health.clock(), Ordering::Relaxed);
        let result = probe(health, tls, policy.probe_timeout).await;
        health.last_probe.store(health.clock(), Ordering::Relaxed);
        match result {
            Ok(()) => {
                health.counters.probes_ok.inc();
                health.mark_up();
                break;
            }
            Err(e) => {
                health.counters.probes_failed.inc();
                step = (step * 2).min(policy.probe_ceiling);
                wait = jittered(&mut jitter, step, policy);
                tracing::debug!(backend = %health.address, error = %e, next_in = ?wait, "probe failed");
            }
        }
    }
}

/// One `version` round trip on a fresh connection.
async fn probe(
    health: &Health,
    tls: Option<&crate::tls::Connector>,
    budget: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + budget;
    let exchange = super::exchange::exchange(
        health.address,
        tls,
        b"version\r\n",
        ReplyKind::Line,
        deadline,
    );
    match exchange.await {
        Err(e @ super::BackendError::Tls(_)) => {
            health.tls_failed(&e);
            Err(e.to_string())
        }
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
    fn probe_waits_are_jittered_within_half_the_step_and_never_below_the_floor() {
        let p = policy(100, 500);
        let mut jitter = Jitter::new("127.0.0.1:1".parse().expect("address"));
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let w = jittered(&mut jitter, Duration::from_millis(400), &p);
            assert!(
                w >= Duration::from_millis(200) && w <= Duration::from_millis(400),
                "{w:?}"
            );
            seen.insert(w.as_millis());
            let w = jittered(&mut jitter, Duration::from_millis(150), &p);
            assert!(
                w >= Duration::from_millis(100) && w <= Duration::from_millis(150),
                "{w:?}"
            );
        }
        assert!(seen.len() > 50, "the waits vary: {} distinct", seen.len());
        let w = jittered(&mut jitter, Duration::from_millis(100), &p);
        assert_eq!(
            w,
            Duration::from_millis(100),
            "a step at the floor is the floor"
        );
    }

    #[test]
    fn only_server_side_failures_count_and_a_reply_clears_them() {
        let h = health();
        let p = policy(100, 500);
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(!h.record_failure(&p, &"timed out", false));
        h.record_reply(0, Some(Duration::from_micros(10)));
        assert_eq!(h.failures(), 0);
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(!h.record_failure(&p, &"timed out", false));
        assert!(
            h.record_failure(&p, &"timed out", false),
            "the third marks it down"
        );
        assert!(!h.is_up());
        assert!(!h.record_failure(&p, &"timed out", false), "once");
        assert_eq!(h.counters.marked_down.get(), 1);

        // A local shortage is counted apart and leaves the state alone.
        let h = health();
        for _ in 0..10 {
            h.local_shortage(super::super::LocalShortage::FileDescriptors);
        }
        assert!(h.is_up());
        assert_eq!((h.failures(), h.counters.local_errors.get()), (0, 10));
        assert_eq!(
            h.local_unlogged.load(Ordering::Relaxed),
            9,
            "one line for ten shortages within the interval"
        );
    }

    #[test]
    fn a_request_for_a_down_server_wakes_the_prober_at_most_once_per_floor() {
        let h = health();
        let p = policy(100, 500);
        // No probe yet: the first request wakes the prober; the others find it woken.
        h.wanted(&p);
        assert!(h.wanted.load(Ordering::Relaxed));
        h.wanted.store(false, Ordering::Relaxed);
        // A probe just began: nobody wakes it until a floor has passed.
        h.last_probe.store(h.clock(), Ordering::Relaxed);
        h.wanted(&p);
        assert!(!h.wanted.load(Ordering::Relaxed));
        h.last_probe.store(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(2));
        h.wanted(&policy(1, 500));
        assert!(h.wanted.load(Ordering::Relaxed));
    }
}
