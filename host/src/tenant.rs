//! Tenants: teams sharing one router, each recognised by its connections (a listener, a TLS
//! client identity, or memcached's ASCII authentication) and given its own route, key
//! namespace, command and key-prefix ACL, and limits (`configs/README.md`, "Tenants").
//!
//! - [`CommandSet`]: the classes of commands a tenant may send.
//! - [`Tenant`]: one tenant as a generation sees it (its root, ACL, limits), with the
//!   [`TenantState`] it keeps across reloads (rate buckets, connection count, counters), handed
//!   from each generation to the next by name.
//! - [`servers`]: a tenant's requests to each server (`stats backends`, by tenant).
//! - [`nodes`]: a tenant's requests at each route node (`stats routes` and `stats plugins`,
//!   by tenant).
//! - [`Credentials`]: the `[auth]` file, and the check of an authentication request.
//! - [`Gcra`]: the token bucket behind `requests_per_second` and `bytes_per_second`, one atomic
//!   word shared by every worker.

pub mod nodes;
pub mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use switchyard_protocol::Command;
use switchyard_protocol::limits::DEFAULT_MAX_KEY_LEN as MAX_KEY_LEN;

use crate::config::{Rate, TenantConfig};
use crate::generation::Target;
use crate::stats::tally::{Counted, Tally};
use crate::stats::{Counter, Histogram, Snapshot};

/// Classes of commands, as a tenant's `commands` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSet(u8);

impl CommandSet {
    /// `get`, `gets`, `mg`, `me`.
    pub const READ: CommandSet = CommandSet(1);
    /// `set`, `add`, `replace`, `append`, `prepend`, `cas`, `ms`.
    pub const WRITE: CommandSet = CommandSet(2);
    /// `delete`, `md`.
    pub const DELETE: CommandSet = CommandSet(4);
    /// `incr`, `decr`, `ma`.
    pub const ARITHMETIC: CommandSet = CommandSet(8);
    /// `touch`, `gat`, `gats`.
    pub const TOUCH: CommandSet = CommandSet(16);
    /// `flush_all`: only for a tenant without a namespace (its pools are its own).
    pub const FLUSH: CommandSet = CommandSet(32);
    /// `stats` (every group: they show every tenant's numbers and hot keys).
    pub const STATS: CommandSet = CommandSet(64);
    /// What a tenant may send when its table does not say: everything on its own keys.
    pub const DEFAULT: CommandSet = CommandSet(1 | 2 | 4 | 8 | 16);

    /// The classes by name, as `commands` lists them.
    pub const NAMES: [(&'static str, CommandSet); 7] = [
        ("read", Self::READ),
        ("write", Self::WRITE),
        ("delete", Self::DELETE),
        ("arithmetic", Self::ARITHMETIC),
        ("touch", Self::TOUCH),
        ("flush_all", Self::FLUSH),
        ("stats", Self::STATS),
    ];

    /// No class.
    pub const fn empty() -> CommandSet {
        CommandSet(0)
    }

    /// This set and `other`.
    pub const fn with(self, other: CommandSet) -> CommandSet {
        CommandSet(self.0 | other.0)
    }

    /// Whether every class of `other` is in this set.
    pub const fn contains(self, other: CommandSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// The class of `command`; `None` for what any client may send (`version`, `verbosity`,
    /// `quit`, `mn`).
    pub const fn of(command: Command) -> Option<CommandSet> {
        Some(match command {
            Command::Get | Command::Gets | Command::MetaGet | Command::MetaDebug => Self::READ,
            Command::Set
            | Command::Add
            | Command::Replace
            | Command::Append
            | Command::Prepend
            | Command::Cas
            | Command::MetaSet => Self::WRITE,
            Command::Delete | Command::MetaDelete => Self::DELETE,
            Command::Incr | Command::Decr | Command::MetaArithmetic => Self::ARITHMETIC,
            Command::Touch | Command::Gat | Command::Gats => Self::TOUCH,
            Command::FlushAll => Self::FLUSH,
            Command::Stats => Self::STATS,
            Command::Version | Command::Verbosity | Command::Quit | Command::MetaNoop => {
                return None;
            }
        })
    }

    /// The name of a single class.
    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, set)| *set == self)
            .map_or("?", |(name, _)| name)
    }
}

/// A token bucket as the generic cell rate algorithm keeps it: one word, the time (in
/// nanoseconds since the router started) at which the bucket will be full again. A request
/// costing `n` units is admitted when that time, pushed `n` units further, is at most a burst
/// ahead of now. Every worker shares the word: one compare-and-swap per admitted request.
#[derive(Debug, Default)]
pub struct Gcra {
    full_at: AtomicU64,
}

/// Nanoseconds on a clock every worker shares.
fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A cost of `units` and the bucket's size, in nanoseconds of `rate`.
fn in_nanos(rate: Rate, units: u64) -> (u64, u64) {
    let per_unit = 1_000_000_000 / rate.per_second.max(1);
    (
        per_unit.saturating_mul(units),
        per_unit.saturating_mul(rate.burst.max(1)),
    )
}

impl Gcra {
    /// Takes `units` from the bucket of `rate` whatever it holds, and returns how long the
    /// taker should wait for them to have been there (zero when they were): what a connection
    /// of a tenant with `over_limit = "wait"` pauses before its next request.
    pub fn reserve(&self, rate: Rate, units: u64) -> std::time::Duration {
        let (cost, tolerance) = in_nanos(rate, units);
        let now = now_ns();
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            let next = full_at.max(now).saturating_add(cost);
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let ahead = next.saturating_sub(now).saturating_sub(tolerance);
                    return std::time::Duration::from_nanos(ahead);
                }
                Err(seen) => full_at = seen,
            }
        }
    }

    /// Takes `units` from the bucket of `rate`; `false` (and nothing taken) when that would
    /// overdraw it.
    pub fn admit(&self, rate: Rate, units: u64) -> bool {
        let (cost, tolerance) = in_nanos(rate, units);
        let now = now_ns();
        let mut full_at = self.full_at.load(Ordering::Relaxed);
        loop {
            let next = full_at.max(now).saturating_add(cost);
            if next.saturating_sub(now) > tolerance {
                return false;
            }
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => full_at = seen,
            }
        }
    }
}

/// What a tenant keeps from one generation to the next: its buckets, its connections, its
/// requests in flight and its counters. A generation takes it over from the one before, by the
/// tenant's name.
#[derive(Debug)]
pub struct TenantState {
    /// `requests_per_second`.
    pub requests: Gcra,
    /// `bytes_per_second`.
    pub bytes: Gcra,
    /// Connections open now.
    pub connections: AtomicUsize,
    /// Counters, `stats tenants`.
    pub counters: TenantCounters,
    /// Its traffic, a slot per worker.
    traffic: Box<[TenantTraffic]>,
}

impl TenantState {
    /// A tenant's state on a router of `workers` workers.
    pub fn new(workers: usize) -> TenantState {
        TenantState {
            requests: Gcra::default(),
            bytes: Gcra::default(),
            connections: AtomicUsize::new(0),
            counters: TenantCounters::default(),
            traffic: (0..workers.max(1))
                .map(|_| TenantTraffic::default())
                .collect(),
        }
    }

    /// Its requests admitted whose reply has not gone out yet (what `max_outstanding`
    /// bounds), over every worker: each counts its own, so that counting costs no shared
    /// cache line, and a check reads them all.
    pub fn outstanding(&self) -> u64 {
        self.traffic.iter().map(|t| t.in_flight.get()).sum()
    }

    /// Its traffic's slot for `worker`.
    pub fn traffic(&self, worker: usize) -> &TenantTraffic {
        &self.traffic[worker % self.traffic.len()]
    }

    /// Its traffic summed over workers.
    pub fn traffic_totals(&self) -> TrafficTotals {
        let sum = |f: &dyn Fn(&TenantTraffic) -> u64| self.traffic.iter().map(f).sum();
        let per_command = |f: &dyn Fn(&TenantTraffic, usize) -> u64| {
            Command::ALL
                .iter()
                .map(|c| (c.name(), sum(&|t| f(t, c.index()))))
                .collect()
        };
        TrafficTotals {
            commands: per_command(&|t, i| t.commands[i].get()),
            command_errors: per_command(&|t, i| t.command_errors[i].get()),
            get_hits: sum(&|t| t.get_hits.get()),
            get_misses: sum(&|t| t.get_misses.get()),
            bytes_read: sum(&|t| t.bytes_read.get()),
            bytes_written: sum(&|t| t.bytes_written.get()),
            client_errors: sum(&|t| t.client_errors.get()),
            latency: Snapshot::of(self.traffic.iter().map(|t| &t.latency)),
        }
    }
}

/// A tenant's traffic on one worker: what plain `stats` counts for the whole router, for its
/// connections alone. Written by that worker only.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct TenantTraffic {
    /// Requests by command (`Command::index`).
    commands: [Counter; Command::ALL.len()],
    /// Error replies by command.
    command_errors: [Counter; Command::ALL.len()],
    get_hits: Counter,
    get_misses: Counter,
    bytes_read: Counter,
    bytes_written: Counter,
    /// From dispatch to the reply going out (with `[stats] timings`).
    latency: Histogram,
    /// Its requests on this worker whose reply is to go out (a gauge).
    in_flight: Counter,
    /// Malformed requests from its clients.
    client_errors: Counter,
}

impl TenantTraffic {
    /// A request of `command` came.
    pub fn command(&self, command: Command) {
        self.commands[command.index()].inc();
    }

    /// One of its clients sent what the router could not take as a request.
    pub fn client_error(&self) {
        self.client_errors.inc();
    }

    /// `n` bytes came from one of its clients.
    pub fn read(&self, n: u64) {
        self.bytes_read.add(n);
    }

    /// A reply of `written` bytes went out, counting as `counted` for the command `tally`
    /// names, `latency_us` after its dispatch (`None`: not timed).
    pub fn replied(&self, tally: &Tally, counted: &Counted, written: u64, latency_us: Option<u64>) {
        self.bytes_written.add(written);
        if counted.hits != 0 {
            self.get_hits.add(counted.hits);
        }
        if counted.misses != 0 {
            self.get_misses.add(counted.misses);
        }
        if counted.error
            && let Some(command) = tally.command()
        {
            self.command_errors[command.index()].inc();
        }
        if let Some(us) = latency_us {
            self.latency.record_us(us);
        }
    }
}

/// A tenant's traffic summed over workers (`stats tenants`, `/metrics`).
#[derive(Debug)]
pub struct TrafficTotals {
    /// Requests by command name.
    pub commands: Vec<(&'static str, u64)>,
    /// Error replies by command name.
    pub command_errors: Vec<(&'static str, u64)>,
    /// Keys its retrievals found.
    pub get_hits: u64,
    /// Keys its retrievals did not find.
    pub get_misses: u64,
    /// Bytes read from its clients.
    pub bytes_read: u64,
    /// Bytes written to its clients.
    pub bytes_written: u64,
    /// Malformed requests from its clients.
    pub client_errors: u64,
    /// Its requests' latency, dispatch to reply.
    pub latency: Snapshot,
}

crate::stats::registry::declare_counters! {
    /// A tenant's counters (`stats tenants`, each line `<tenant>:<name>`), written by any
    /// worker.
    #[derive(Debug, Default)]
    pub struct TenantCounters in "tenants" {
        /// Connections that became the tenant's.
        total_connections: Counter, Count;
        /// Connections refused because the tenant had `max_connections` open.
        rejected_connections: Counter, Count;
        /// Requests of its connections that reached the ACL (after authentication).
        requests: Counter, Count;
        /// Requests its ACL refused (a command or a key it may not use).
        denied: Counter, Count;
        /// Requests refused by its `requests_per_second`.
        limited_requests: Counter, Count;
        /// Requests refused by its `bytes_per_second`.
        limited_bytes: Counter, Count;
        /// Stores refused by its `max_value_bytes`.
        limited_values: Counter, Count;
        /// Requests over its rates that made their connection wait (`over_limit = "wait"`).
        throttled: Counter, Count;
        /// Requests refused because it had `max_outstanding` requests in flight.
        limited_outstanding: Counter, Count;
    }
    also {}
}

/// One tenant as a generation serves it.
#[derive(Debug)]
pub struct Tenant {
    /// Its name, shared with the connections bound to it.
    pub name: Arc<str>,
    /// Its place in [`Generation::tenants`](crate::generation::Generation::tenants): what its
    /// requests carry ([`Req::tenant`](crate::execute::Req::tenant)) to be counted in its
    /// share of each server and node.
    pub index: usize,
    /// Its configuration.
    pub config: TenantConfig,
    /// Where its requests go.
    pub root: Target,
    /// What it keeps across reloads.
    pub state: Arc<TenantState>,
    /// Its requests to each server its route can reach, by destination index
    /// ([`Generation::destinations`](crate::generation::Generation::destinations)): each kept
    /// across reloads for as long as its server stays.
    pub servers: Box<[Option<Arc<servers::ServerTraffic>>]>,
    /// Its requests at each node its route can reach, by node index
    /// ([`Generation::nodes`](crate::generation::Generation::nodes)): each kept across a
    /// reload that keeps its node as it was.
    pub nodes: Box<[Option<Arc<nodes::NodeTraffic>>]>,
    /// Its namespace as the rewrite that puts it in front of a key, made once: what
    /// `LocalGeneration::execute_in` sends its requests with.
    pub rewrite: crate::plugin::OwnedRewrite,
    /// Its namespace, shared by the multi-gets that strip it from their replies.
    pub namespace: bytes::Bytes,
}

/// Why a tenant's request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its ACL: `CLIENT_ERROR` with the reason.
    Denied(String),
    /// A limit: `SERVER_ERROR` naming it.
    Limited(String),
}

impl Tenant {
    /// Its requests to destination `dest`, if its route can reach it.
    pub fn server(&self, dest: usize) -> Option<&Arc<servers::ServerTraffic>> {
        self.servers.get(dest)?.as_ref()
    }

    /// Its requests at node `n`, if its route can reach it.
    pub fn node(&self, n: usize) -> Option<&nodes::NodeTraffic> {
        self.nodes.get(n)?.as_deref()
    }

    /// Checks one request against the tenant's ACL and limits: its command, its keys (`keys`,
    /// as the client sent them), the bytes it carries (line and value) and its value's length.
    /// Counts it, and the refusal if any. With `over_limit = "wait"`, a request over a rate is
    /// not refused: the first result is how long its connection waits before its next request
    /// (a request the ACL allows counts against the rates even when refused for its value's
    /// size: its bytes came).
    pub fn admit<'k>(
        &self,
        command: Command,
        keys: impl Iterator<Item = &'k [u8]>,
        base64: bool,
        bytes: usize,
        value_len: Option<usize>,
    ) -> (std::time::Duration, Result<(), Refusal>) {
        let counters = &self.state.counters;
        counters.requests.inc();
        if let Err(refusal) = self.acl(command, keys, base64) {
            counters.denied.inc();
            return (std::time::Duration::ZERO, Err(refusal));
        }
        self.limit(bytes, value_len)
    }

    /// Refuses a request its ACL cannot allow for `reason`, counted as [`Tenant::admit`]
    /// counts a denial.
    pub fn deny(&self, reason: String) -> (std::time::Duration, Result<(), Refusal>) {
        let counters = &self.state.counters;
        counters.requests.inc();
        counters.denied.inc();
        (std::time::Duration::ZERO, Err(Refusal::Denied(reason)))
    }

    /// The ACL's verdict on `command` with `keys` (decoded; `base64`: the request sends its
    /// key in base64, the `b` flag).
    fn acl<'k>(
        &self,
        command: Command,
        keys: impl Iterator<Item = &'k [u8]>,
        base64: bool,
    ) -> Result<(), Refusal> {
        let (config, name) = (&self.config, &self.name);
        if let Some(class) = CommandSet::of(command) {
            if !config.commands.contains(class) {
                return Err(Refusal::Denied(format!(
                    "tenant {name} may not use {} ({} commands)",
                    command.name(),
                    class.name()
                )));
            }
            if class == CommandSet::FLUSH && !config.namespace.is_empty() {
                return Err(Refusal::Denied(format!(
                    "tenant {name} may not use flush_all: its keys share servers with others"
                )));
            }
            let prefixes = if class == CommandSet::READ || class == CommandSet::TOUCH {
                &config.read_prefixes
            } else {
                &config.write_prefixes
            };
            // Its keys are stored with the namespace in front, in memcached's 250 bytes; a key
            // sent in base64 is sent on in base64, and those 250 bytes hold its encoding
            // (186 bytes decoded).
            let (limit, how) = if base64 {
                (
                    MAX_KEY_LEN / 4 * 3,
                    "186 decoded, as base64 in memcached's 250,",
                )
            } else {
                (MAX_KEY_LEN, "250")
            };
            let longest = limit.saturating_sub(config.namespace.len());
            for key in keys {
                if key.len() > longest {
                    return Err(Refusal::Denied(format!(
                        "tenant {name}'s keys are at most {longest} bytes ({how} less its namespace); this one has {}",
                        key.len()
                    )));
                }
                if !prefixes.is_empty() && !prefixes.iter().any(|p| key.starts_with(p.as_bytes())) {
                    return Err(Refusal::Denied(format!(
                        "tenant {name} may not use key {} with {}",
                        crate::stats::hotkeys::printable(key),
                        command.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The limits' verdict on a request of `bytes` with a value of `value_len`, and how long
    /// its connection waits (`over_limit = "wait"`).
    fn limit(
        &self,
        bytes: usize,
        value_len: Option<usize>,
    ) -> (std::time::Duration, Result<(), Refusal>) {
        let (limits, name) = (&self.config.limits, &self.name);
        let counters = &self.state.counters;
        // Before the rates: a request refused here takes none of their tokens.
        if let Some(max) = limits.max_outstanding
            && self.state.outstanding() >= max as u64
        {
            counters.limited_outstanding.inc();
            return (
                std::time::Duration::ZERO,
                Err(Refusal::Limited(format!(
                    "tenant {name} has its max_outstanding ({max}) requests in flight"
                ))),
            );
        }
        let mut wait = std::time::Duration::ZERO;
        if limits.wait {
            if let Some(rate) = limits.requests {
                wait = wait.max(self.state.requests.reserve(rate, 1));
            }
            if let Some(rate) = limits.bytes {
                wait = wait.max(self.state.bytes.reserve(rate, bytes as u64));
            }
            if !wait.is_zero() {
                counters.throttled.inc();
            }
        }
        if let (Some(max), Some(len)) = (limits.max_value_bytes, value_len)
            && len > max
        {
            counters.limited_values.inc();
            return (
                wait,
                Err(Refusal::Limited(format!(
                    "tenant {name}: a value of {len} bytes is over its max_value_bytes ({max})"
                ))),
            );
        }
        if limits.wait {
            return (wait, Ok(()));
        }
        (wait, self.refuse_over_rate(bytes))
    }

    /// `over_limit = "error"`: a request over a rate is refused.
    fn refuse_over_rate(&self, bytes: usize) -> Result<(), Refusal> {
        let (limits, name) = (&self.config.limits, &self.name);
        let counters = &self.state.counters;
        if let Some(rate) = limits.requests
            && !self.state.requests.admit(rate, 1)
        {
            counters.limited_requests.inc();
            return Err(Refusal::Limited(format!(
                "tenant {name} is over its requests_per_second ({})",
                rate.per_second
            )));
        }
        if let Some(rate) = limits.bytes
            && !self.state.bytes.admit(rate, bytes as u64)
        {
            counters.limited_bytes.inc();
            return Err(Refusal::Limited(format!(
                "tenant {name} is over its bytes_per_second ({})",
                rate.per_second
            )));
        }
        Ok(())
    }

    /// A connection on `worker` becomes the tenant's: `None` when it has `max_connections`
    /// open already.
    pub fn connect(self: &Arc<Self>, worker: usize) -> Option<TenantConnection> {
        let state = &self.state;
        let open = state.connections.fetch_add(1, Ordering::Relaxed) + 1;
        if self
            .config
            .limits
            .max_connections
            .is_some_and(|max| open > max)
        {
            state.connections.fetch_sub(1, Ordering::Relaxed);
            state.counters.rejected_connections.inc();
            return None;
        }
        state.counters.total_connections.inc();
        Some(TenantConnection {
            name: self.name.clone(),
            state: state.clone(),
            worker,
            in_flight: std::cell::Cell::new(0),
        })
    }
}

/// A connection bound to a tenant, counted open until dropped, with its requests in flight.
#[derive(Debug)]
pub struct TenantConnection {
    /// The tenant's name: what the connection looks its tenant up by in each generation.
    pub name: Arc<str>,
    state: Arc<TenantState>,
    /// The worker serving it, whose slot of its tenant's traffic it counts in.
    worker: usize,
    /// Its requests counted in its tenant's requests in flight whose reply has not gone out.
    in_flight: std::cell::Cell<u64>,
}

impl TenantConnection {
    /// What its tenant keeps across reloads.
    pub fn state(&self) -> &TenantState {
        &self.state
    }

    /// An admitted request's reply is queued: one more of its tenant's requests in flight.
    pub fn started(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
        self.state.traffic(self.worker).in_flight.inc();
    }

    /// The reply to a request [`TenantConnection::started`] counted went out.
    pub fn answered(&self) {
        let n = self.in_flight.get();
        if n != 0 {
            self.in_flight.set(n - 1);
            self.state.traffic(self.worker).in_flight.dec();
        }
    }
}

impl Drop for TenantConnection {
    fn drop(&mut self) {
        self.state.connections.fetch_sub(1, Ordering::Relaxed);
        // Replies it will never write: the client went away first.
        self.state
            .traffic(self.worker)
            .in_flight
            .sub(self.in_flight.get());
    }
}

/// The `[auth]` file: `user:password` per line, as memcached's `-Y` reads it.
#[derive(Debug, Default)]
pub struct Credentials {
    users: std::collections::HashMap<String, String>,
}

/// What an authentication request (`set <any> <flags> <exptime> <len>` with `user password`
/// as its data) comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// This user, with this password.
    User(String),
    /// A wrong user or password: `CLIENT_ERROR authentication failure`.
    Failure,
    /// Data that is not `user password`: `CLIENT_ERROR bad authentication token format`.
    BadFormat,
}

impl Credentials {
    /// Reads the file's text; an error names the line.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let mut users = std::collections::HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, password)) = line.split_once(':') else {
                return Err(format!("line {}: not `user:password`", i + 1));
            };
            if user.is_empty() || user.contains(char::is_whitespace) {
                return Err(format!("line {}: a user name without spaces first", i + 1));
            }
            users.insert(user.to_string(), password.to_string());
        }
        Ok(Credentials { users })
    }

    /// Whether the file has `user`.
    pub fn has(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Checks an authentication request's data.
    pub fn check(&self, data: &[u8]) -> Authenticated {
        let text = String::from_utf8_lossy(data);
        let Some((user, password)) = text.split_once(' ') else {
            return Authenticated::BadFormat;
        };
        match self.users.get(user) {
            Some(expected) if same(expected.as_bytes(), password.as_bytes()) => {
                Authenticated::User(user.to_string())
            }
            _ => Authenticated::Failure,
        }
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let bucket = Gcra::default();
        let rate = Rate {
            per_second: 1000,
            burst: 10,
        };
        let admitted = (0..100).filter(|_| bucket.admit(rate, 1)).count();
        // Ten at once, and at most a few more for the time the loop took.
        assert!((10..=15).contains(&admitted), "{admitted}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(bucket.admit(rate, 1), "refilled after 20 ms");
        // A cost over the burst is never admitted.
        assert!(!Gcra::default().admit(rate, 11));
    }

    #[test]
    fn a_reservation_is_always_taken_and_says_how_long_to_wait() {
        let bucket = Gcra::default();
        let rate = Rate {
            per_second: 1000,
            burst: 10,
        };
        let waits: Vec<std::time::Duration> = (0..20).map(|_| bucket.reserve(rate, 1)).collect();
        assert!(waits[..10].iter().all(|w| w.is_zero()), "{waits:?}");
        // The twentieth is ten past the burst: about 10 ms, less the time the loop took.
        let last = waits[19].as_micros();
        assert!((8_000..=10_000).contains(&last), "{last} µs");
        // A cost over the burst is taken too, and waits for what it overdraws.
        let big = Gcra::default().reserve(rate, 110);
        assert_eq!(big.as_millis(), 100);
    }

    #[test]
    fn commands_fall_in_their_classes() {
        assert_eq!(CommandSet::of(Command::MetaGet), Some(CommandSet::READ));
        assert_eq!(CommandSet::of(Command::Cas), Some(CommandSet::WRITE));
        assert_eq!(CommandSet::of(Command::Gat), Some(CommandSet::TOUCH));
        assert_eq!(CommandSet::of(Command::Version), None);
        assert!(CommandSet::DEFAULT.contains(CommandSet::ARITHMETIC));
        assert!(!CommandSet::DEFAULT.contains(CommandSet::FLUSH));
        assert!(!CommandSet::DEFAULT.contains(CommandSet::STATS));
    }

    #[test]
    fn credentials_are_memcacheds_file_and_checked_as_it_does() {
        let c = Credentials::parse("# users\nbeta:beta-secret\nalpha:a:b\n").expect("valid");
        assert_eq!(
            c.check(b"beta beta-secret"),
            Authenticated::User("beta".into())
        );
        assert_eq!(c.check(b"alpha a:b"), Authenticated::User("alpha".into()));
        assert_eq!(c.check(b"beta beta-secrex"), Authenticated::Failure);
        assert_eq!(c.check(b"nobody x"), Authenticated::Failure);
        assert_eq!(c.check(b"abc"), Authenticated::BadFormat);
        assert!(Credentials::parse("beta\n").is_err());
    }
}
