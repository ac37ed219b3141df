//! Configuration: the TOML file, validated into typed settings.
//!
//! `raw` mirrors the file and rejects unknown keys; `validate` resolves references, addresses and
//! defaults; `server_spec` parses twemproxy-style `host:port[:weight] [name]` server strings.
//! Every error names the file, the line and the key (see [`ConfigError`]).

mod experiments;
mod raw;
mod server_spec;
mod tenants;
mod validate;

pub use validate::MAX_NAME_BYTES;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use server_spec::ServerSpec;

/// Per-request connect timeout to a backend when the pool does not set one. A memcached on the
/// same network answers a SYN in well under a millisecond; half a second covers a loaded host
/// without letting a dead one stall clients for long.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time a backend has to answer one request when the pool does not set it: mcrouter's default
/// server timeout, long enough for a multi-megabyte value over a busy link.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(1000);
/// CPU time one plugin `route` or `on_reply` call may use. A routing decision takes a
/// microsecond or two, and a memcached round trip on one network well under a millisecond: a
/// plugin that needs milliseconds per request is broken, and every millisecond it runs, every
/// other client of its worker waits. The budget is the calling thread's CPU time, checked at
/// each 1 ms epoch tick a call reaches (`plugin/instance.rs`), so a worker descheduled in the
/// middle of a call on a loaded host does not fail a good request. A plugin that keeps using it
/// up trips its node's breaker after [`DEFAULT_BREAKER_FAULTS`] calls, so a runaway loop costs
/// a worker about 50 ms, not seconds.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_millis(10);
/// Consecutive traps, timeouts or failed re-creations of one node's plugin on one worker that
/// open the node's circuit breaker: more than a plugin with a few bad keys in a row produces,
/// few enough that a plugin looping on every call stops costing its worker within ~50 ms.
pub const DEFAULT_BREAKER_FAULTS: u32 = 5;
/// How long an opened breaker stays open the first time; each reopening doubles it.
pub const DEFAULT_BREAKER_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a breaker stays open before it tries the plugin again.
pub const DEFAULT_BREAKER_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Budget of one plugin `init` call, which may build tables (a ketama continuum) once.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Linear-memory cap per plugin instance: room for large lookup tables, small enough that one
/// leaking plugin cannot take the host's memory.
pub const DEFAULT_MEMORY_LIMIT_BYTES: usize = 64 << 20;
/// Consecutive failures (connect errors, timeouts, resets) that mark a server down. One is too
/// jumpy for a busy pool (a single slow reply would eject a healthy server); three is mcrouter's
/// choice too. A refused connect marks a server down at once whatever this says.
pub const DEFAULT_FAILURE_LIMIT: u32 = 3;
/// First wait before a down server is probed, and the shortest time between two probes (a
/// request for a down server wakes its prober early, but no sooner than this after the last
/// probe): short, so a restarted memcached that clients ask for is back within about a tenth
/// of a second, as twemproxy's reconnect-on-request would have it, while a server clients keep
/// asking for costs at most ten probes a second per router, not one connect per request.
pub const DEFAULT_PROBE_FLOOR: Duration = Duration::from_millis(100);
/// Longest wait between probes of a down server nobody asks for (requests wake the prober
/// sooner). Was 5 s, which left a restarted server unused for seconds after the backoff had
/// grown, and a ketama `eject` pool routing around it (so asking for it never) as long; half a
/// second brings it back within that for two connect attempts a second, one `SYN` answered by
/// a `RST` while nothing listens.
pub const DEFAULT_PROBE_CEILING: Duration = Duration::from_millis(500);
/// Bytes of requests one worker may have queued or in flight at one server (each request
/// counted with about a hundred bytes of overhead). Far above what a healthy memcached keeps
/// outstanding, even in a burst of tens of thousands of requests; reached only when a server
/// stops reading or falls far behind, and then it caps what the router holds for it.
pub const DEFAULT_MAX_OUTSTANDING_BYTES: usize = 32 << 20;
/// Smallest `max_outstanding_bytes`: a few requests' worth.
pub const MIN_OUTSTANDING_BYTES: usize = 1 << 10;
/// Bytes of one reply the router gathers whole (a multi-get's, or a value too short to stream)
/// before it gives up on it: sixty-four of memcached's largest default items. A multi-get
/// asking for more than this from one server fails alone (`max_reply_bytes`), instead of holding
/// a reply of any size in memory.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 64 << 20;
/// Smallest `max_reply_bytes`.
pub const MIN_REPLY_BYTES: usize = 64 << 10;
/// Plugin faults after which a newly published generation is replaced by the previous
/// configuration: far more than a plugin with an occasional bad key produces, few enough that a
/// plugin trapping on every request is gone within a fraction of a second under load.
pub const DEFAULT_ROLLBACK_FAULTS: u64 = 100;
/// Bytes of replies one client connection may be owed before the router stops reading its
/// requests (`reply/queue.rs` says how they are counted). A client that reads its replies never
/// comes near it: a pipeline of a thousand 1 KiB replies is 1 MiB. One that sends without
/// reading holds at most about this much in the router, instead of every reply it asked for;
/// ten thousand such connections would hold 40 GiB, so it stays small.
pub const DEFAULT_MAX_CLIENT_REPLY_BYTES: usize = 4 << 20;
/// Bytes of background requests (shadow copies, refills, asynchronous replication) one worker
/// may have in flight: a shadowed stream of 1 MiB sets would otherwise hold `max_background`
/// values, a gigabyte, while a slow shadow pool catches up. 64 MiB keeps a thousand ordinary
/// copies in flight and bounds the large ones.
pub const DEFAULT_MAX_BACKGROUND_BYTES: usize = 64 << 20;
/// Smallest `max_client_reply_bytes`.
pub const MIN_CLIENT_REPLY_BYTES: usize = 64 << 10;
/// Largest value a client may store: memcached's own default item size limit.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1 << 20;
/// Hard ceiling for `server.max_value_bytes`.
pub const MAX_VALUE_BYTES_CEILING: usize = 1 << 30;
/// Values at least this long pass through as they arrive instead of being held whole: a quarter
/// of memcached's default item size, so that ordinary values keep the pipelined path and only
/// long ones pay for a connection of their own (a store) or hold up their server connection
/// while they pass (a retrieval).
pub const DEFAULT_STREAM_FROM_BYTES: usize = 256 << 10;
/// Smallest `server.stream_from_bytes`.
pub const MIN_STREAM_FROM_BYTES: usize = 1 << 10;
/// Background requests (shadow copies, warm-up refills, asynchronous replication) one worker
/// may have outstanding. Background work must never hold more than a bounded amount of memory
/// or connections when a shadow or cold pool is slow; a thousand in flight per worker is far
/// above what a healthy pool keeps outstanding, and beyond it new background sends are dropped
/// and counted (`stats background_dropped`).
pub const DEFAULT_MAX_BACKGROUND: usize = 1024;
/// How long a drain (SIGTERM) lets connections finish the requests already read before it
/// cuts them and the process exits. Every request has a reply or its pool's timeout within
/// `timeout_ms` (1 s by default, mcrouter's), so five of those cover a default pool with room
/// for a reply that queued behind others; it stays well under what service managers allow a
/// stop (systemd's 90 s, the unit's `TimeoutStopSec`, Kubernetes' 30 s grace period), so a
/// stuck client never turns a stop into a kill.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Highest `max_connections` a listener may set: far above what one process can hold open.
pub const MAX_CONNECTIONS_CEILING: usize = 1 << 30;
/// Most worker threads `[server] workers` (and `--workers`) may ask for: far above any core
/// count this runs on, low enough that a typo cannot start a million threads.
pub const MAX_WORKERS: usize = 1024;
/// Bytes one server's delete spool file may hold when the pool does not set
/// `delete_spool_max_bytes`: about a million deletes of 40-byte keys, hours of a busy pool's
/// deletes to one dead server, and still small next to any disk. Past it further deletes are
/// refused to the spool (and answered with their error), never an unbounded file.
pub const DEFAULT_DELETE_SPOOL_MAX_BYTES: u64 = 64 << 20;
/// Spooled deletes replayed per second to a server that is back, when the pool does not set
/// `delete_spool_replay_rate`: a few percent of what one memcached serves, so a replay after a
/// long outage does not compete with the clients, yet a full default spool of a million deletes
/// drains in about a quarter of an hour.
pub const DEFAULT_DELETE_SPOOL_REPLAY_RATE: u32 = 1000;
/// Hashing plugin of a pool that names none: what twemproxy and libmemcached users expect.
pub const DEFAULT_HASH_PLUGIN: &str = "ketama";
/// Address the admin HTTP listener binds when `[admin.http] address` names a port alone: loopback,
/// since its endpoints include `POST /reload` and carry no authentication of their own.
pub const DEFAULT_ADMIN_HTTP_HOST: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A validated configuration, ready to be built into a generation.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from; names it in errors and anchors relative plugin paths.
    pub origin: PathBuf,
    /// The text it was read from: what `get __switchyard__.config` (`introspect.rs`) and
    /// `GET /config` answer, the configuration running even when the file has changed since.
    pub text: std::sync::Arc<str>,
    /// Process-wide settings.
    pub server: ServerSettings,
    /// Sandbox budgets applied to every plugin instance.
    pub plugins: PluginSettings,
    /// What is measured beyond the counters.
    pub stats: StatsSettings,
    /// Client-facing sockets, in file order (a plugin sees the index as `listener`).
    pub listeners: Vec<ListenerConfig>,
    /// Where the admin commands (`reload`, `stats`) are accepted, if anywhere (`[admin]
    /// address`).
    pub admin: Option<SocketAddr>,
    /// Where the admin HTTP endpoints (`/metrics`, `/healthz`, `/readyz`, `/config`,
    /// `/reload`) are served, if anywhere (`[admin.http] address`).
    pub admin_http: Option<SocketAddr>,
    /// Pools of memcached servers, each with its hashing plugin.
    pub pools: Vec<PoolConfig>,
    /// Named route nodes.
    pub routes: Vec<RouteConfig>,
    /// Tenants (`[tenants.NAME]`), in name order.
    pub tenants: Vec<TenantConfig>,
    /// Experiments (`[experiments.NAME]`), in name order.
    pub experiments: Vec<ExperimentConfig>,
    /// memcached's ASCII authentication (`[auth]`), for listeners with `tenant_by = "auth"`.
    pub auth: Option<AuthConfig>,
    /// Tenants' own files (`[tenants.NAME] include`), as read into this configuration: their
    /// route tables follow the file's text in [`Config::text`], from `first_line` on.
    pub includes: Vec<Include>,
}

/// An experiment on a route node (`[experiments.NAME]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// The table's name.
    pub name: String,
    /// What it does.
    pub kind: ExperimentKind,
    /// The pool or route whose decisions are compared.
    pub node: String,
    /// The pool or route they are compared with: no listener's or tenant's.
    pub candidate: String,
    /// The fraction of the node's requests compared, chosen by key hash (a key is always in
    /// or always out): the first `sample` of `key_range`; 1 for a canary, whose fraction is its
    /// step's.
    pub sample: f64,
    /// `[start, end)`: the band of the key-hash space (as fractions of it) the sample is taken
    /// from; `[0, 1)` by default.
    pub key_range: (f64, f64),
    /// Whether it runs (`enabled = false` keeps it configured and stopped).
    pub enabled: bool,
    /// A shadow's mismatching requests kept as samples (the newest).
    pub keep_mismatches: usize,
    /// A canary's rollout; `None` for other kinds.
    pub canary: Option<CanaryConfig>,
    /// Line of the table.
    pub line: usize,
}

impl ExperimentConfig {
    /// Whether `other` runs the same experiment (its line aside): what it found so far and
    /// whether it was started or stopped carry over a reload.
    pub fn same_as(&self, other: &ExperimentConfig) -> bool {
        ExperimentConfig {
            line: other.line,
            ..self.clone()
        } == *other
    }
}

/// A canary's rollout (`kind = "canary"`).
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryConfig {
    /// The fractions of keys sent to the candidate, in turn; the last is where it stays.
    pub steps: Vec<f64>,
    /// How long each step lasts, at least.
    pub step: std::time::Duration,
    /// Requests each side must have answered in a step before it is judged.
    pub min_requests: u64,
    /// How much higher than the live side's the candidate's error rate may be (0.01: one
    /// percentage point).
    pub max_error_rate_increase: f64,
    /// How many times the live side's p99 the candidate's may be.
    pub max_p99_ratio: f64,
}

/// Kinds of experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExperimentKind {
    /// The candidate's decision is computed beside the node's (its plugins called, nothing
    /// sent) and the servers each would reach compared.
    DryRun,
    /// Requests are also sent to the candidate in the background and its replies compared
    /// with the node's.
    Shadow,
    /// A growing fraction of keys is routed through the candidate instead of the node, and the
    /// rollout undone when the candidate does worse.
    Canary,
}

/// A tenant's own file of route tables (`[tenants.NAME] include`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The tenant.
    pub tenant: String,
    /// The file, resolved against the config file's directory.
    pub path: PathBuf,
    /// What was read from it (or kept from an earlier read: [`Config::load_with`]).
    pub text: String,
    /// The line of [`Config::text`] its first line is.
    pub first_line: usize,
}

/// `[auth]`: where the users and passwords of ASCII authentication are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `user:password` lines, as memcached's `-Y` file; read when a generation is built.
    pub credentials: PathBuf,
    /// Line of the `credentials` key, for errors found reading the file.
    pub line: usize,
}

/// One `[tenants.NAME]` table: how a team's connections are recognised and what they get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantConfig {
    /// The table's name.
    pub name: String,
    /// Line of the table.
    pub line: usize,
    /// The pool or route that receives its requests.
    pub route: String,
    /// The invisible prefix its keys carry on the servers (`""`: none, for dedicated pools).
    pub namespace: String,
    /// TLS client identities that are this tenant, on `tenant_by = "identity"` listeners.
    pub identities: Vec<String>,
    /// Users of `[auth]` that are this tenant, on `tenant_by = "auth"` listeners.
    pub users: Vec<String>,
    /// The commands it may send.
    pub commands: crate::tenant::CommandSet,
    /// Key prefixes its reads may use (`[]`: any key).
    pub read_prefixes: Vec<String>,
    /// Key prefixes its writes (stores, deletes, arithmetic) may use (`[]`: any key).
    pub write_prefixes: Vec<String>,
    /// Its limits.
    pub limits: TenantLimits,
    /// The sandbox budget of the plugins on its routes (`call_timeout_ms`, `memory_limit_mb`):
    /// what each of the routes only it reaches has where the route sets none.
    pub budget: crate::plugin::NodeBudget,
}

/// A tenant's limits; `None`: none but the router's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantLimits {
    /// Requests per second, and how many may come at once (`requests_per_second`,
    /// `requests_burst`).
    pub requests: Option<Rate>,
    /// Bytes of requests per second (lines and values), and the burst (`bytes_per_second`,
    /// `bytes_burst`).
    pub bytes: Option<Rate>,
    /// Connections it may have open at once.
    pub max_connections: Option<usize>,
    /// Longest value it may store.
    pub max_value_bytes: Option<usize>,
    /// Requests it may have in flight at once, over all its connections: admitted and not
    /// yet answered.
    pub max_outstanding: Option<usize>,
    /// Over a rate, its connection waits (`over_limit = "wait"`) instead of the request being
    /// refused.
    pub wait: bool,
}

/// A token bucket's rate and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Units per second.
    pub per_second: u64,
    /// Units that may come at once: the bucket's size.
    pub burst: u64,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads, each with its own runtime, plugin instances and backend connections.
    pub workers: usize,
    /// Reload when the config file or a plugin file it names changes.
    pub watch: bool,
    /// Largest value a client may store; larger ones get memcached's `SERVER_ERROR object too
    /// large for cache`.
    pub max_value_bytes: usize,
    /// Background requests one worker may have outstanding; more are dropped and counted.
    pub max_background: usize,
    /// Values at least this long stream through when their route ends at one server.
    pub stream_from_bytes: usize,
    /// Bytes of background requests one worker may have in flight.
    pub max_background_bytes: usize,
    /// Bytes of replies one client connection may be owed before its requests are not read.
    pub max_client_reply_bytes: usize,
    /// How long a drain (SIGTERM, SIGINT) waits for connections to finish before it cuts
    /// them (zero: at once).
    pub drain_timeout: Duration,
}

/// `[stats]`: the measurements that cost the request path more than a counter, each on by
/// default and each a switch (`bench/run` measures the router with both off beside it).
#[derive(Debug, Clone, Copy)]
pub struct StatsSettings {
    /// Latency histograms: of each server's replies, each plugin call and each route node's
    /// requests (two clock reads per request and per plugin call, a relaxed add per value).
    pub timings: bool,
    /// Hot key sampling (`stats hotkeys`).
    pub hotkeys: bool,
}

/// `[plugins]`.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Epoch deadline of one `route` call.
    pub call_timeout: Duration,
    /// Epoch deadline of one `init` call.
    pub init_timeout: Duration,
    /// Linear-memory cap per instance.
    pub memory_limit_bytes: usize,
    /// Faults after which a reloaded generation is rolled back (0: never).
    pub rollback_faults: u64,
    /// Consecutive traps or timeouts that open a node's breaker on a worker (0: never).
    pub breaker_faults: u32,
    /// First open interval of a breaker.
    pub breaker_backoff: Duration,
    /// Longest open interval of a breaker.
    pub breaker_max_backoff: Duration,
}

/// What a route node does with a request its plugin could not route (a trap, a timeout, an
/// invalid plan, no instance): `on_fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFault {
    /// Fail the request with `SERVER_ERROR` naming the node (fail closed).
    #[default]
    Error,
    /// Send the request on to the node's child of this index, as if the plugin had forwarded
    /// it there (`pass` is child 0; `fallback:NAME` the child named NAME).
    Forward(usize),
}

/// Whose requests a listener's connections send, and so where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerRoute {
    /// Every request goes to this pool or route (`route`).
    Route(String),
    /// Every connection is this tenant's (`tenant`).
    Tenant(String),
    /// A connection is the tenant whose `identities` hold its TLS client identity
    /// (`tenant_by = "identity"`); one that matches none is refused.
    ByIdentity,
    /// A connection is the tenant whose `users` hold the user it authenticates as, with
    /// memcached's ASCII authentication (`tenant_by = "auth"`), before anything else.
    ByAuth,
}

/// One `[[listeners]]` entry.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Where to accept clients; port 0 picks a free port.
    pub address: SocketAddr,
    /// Where its requests go: a route, or a tenant's.
    pub route: ListenerRoute,
    /// Client connections this listener holds at once; past it a new client is answered
    /// `ERROR Too many open connections` and closed. `None`: only the router-wide budget the
    /// open-file limit leaves (`server::client_budget`).
    pub max_connections: Option<usize>,
    /// `[listeners.tls]`: clients connect over TLS.
    pub tls: Option<ListenerTls>,
}

/// A TLS listener's files (`[listeners.tls]`), resolved against the config file's directory.
/// Read when a generation is built (`tls.rs`), so that every reload reads them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// The certificate chain, PEM, the listener's own certificate first.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// CA certificates, PEM: when set, a client must present a certificate that chains to one
    /// of them (mutual TLS), and its names become the connection's identity.
    pub client_ca: Option<PathBuf>,
    /// Line of the `tls` table, for errors found while reading the files.
    pub line: usize,
}

/// A pool's TLS to its servers (`[pools.NAME.tls]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTls {
    /// CA certificates, PEM, that a server's certificate must chain to.
    pub ca: PathBuf,
    /// The name every server's certificate must carry; `None`: each server's host as written
    /// in `servers` (a DNS name, or an IP address checked against the certificate's IP
    /// entries).
    pub server_name: Option<String>,
    /// A client certificate chain and its key, PEM, for servers that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Line of the `tls` table.
    pub line: usize,
}

/// One `[pools.NAME]` table.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The table's name.
    pub name: String,
    /// Line of the table, for errors found while building.
    pub line: usize,
    /// The servers, in file order; the hashing plugin addresses them by this index.
    pub servers: Vec<ServerSpec>,
    /// The plugin that picks a server for each key.
    pub hash: PluginSource,
    /// Its configuration table.
    pub hash_config: toml::Table,
    /// The SHA-256 its module must have (`hash = { ..., sha256 = "..." }`), 64 lowercase hex
    /// digits.
    pub hash_sha256: Option<String>,
    /// The most detailed level of the plugin's own log lines written (`hash = { ...,
    /// log_level }`); `None`: every level the router's log filter lets through.
    pub hash_log_level: Option<switchyard_sdk::Level>,
    /// Connect timeout to each server.
    pub connect_timeout: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Consecutive failures that mark a server down.
    pub failure_limit: u32,
    /// First wait before probing a down server.
    pub probe_floor: Duration,
    /// Longest wait between probes.
    pub probe_ceiling: Duration,
    /// Bytes of requests one worker may have queued or in flight at one server.
    pub max_outstanding_bytes: usize,
    /// Bytes of one reply a server may send before its end, when the reply is gathered whole.
    pub max_reply_bytes: usize,
    /// What the pool does when its hashing plugin faults.
    pub on_fault: OnFault,
    /// Where deletes that fail on a server are kept to be replayed (`delete_spool`), if
    /// anywhere.
    pub delete_spool: Option<DeleteSpool>,
    /// TLS to the servers, if any.
    pub tls: Option<PoolTls>,
}

/// `[pools.NAME] delete_spool` and its settings: the reliable delete stream (`spool.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteSpool {
    /// The directory, resolved against the config file's directory.
    pub dir: PathBuf,
    /// Most bytes one server's spool file may hold.
    pub max_bytes: u64,
    /// Spooled deletes replayed per second to one server.
    pub replay_rate: u32,
}

/// One `[routes.NAME]` table.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The table's name.
    pub name: String,
    /// Line of the table's `plugin` key, for errors found while building.
    pub line: usize,
    /// The policy.
    pub plugin: PluginSource,
    /// The SHA-256 its module must have (`sha256`), 64 lowercase hex digits.
    pub sha256: Option<String>,
    /// The most detailed level of the plugin's own log lines written (`log_level`); `None`:
    /// every level the router's log filter lets through.
    pub log_level: Option<switchyard_sdk::Level>,
    /// Children, by name (pools or routes); the plugin addresses them by index.
    pub children: Vec<String>,
    /// The table handed to the plugin's `init`.
    pub config: toml::Table,
    /// What the route does when its plugin faults.
    pub on_fault: OnFault,
    /// Its own sandbox budget (`call_timeout_ms`, `memory_limit_mb`); `[plugins]` where unset.
    pub budget: crate::plugin::NodeBudget,
}

/// Where a plugin's code comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// A plugin compiled into the binary, by name (`ketama`, `prefix`, ...).
    Bundled(String),
    /// A `.wasm` file, resolved against the config file's directory.
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Bundled(name) => f.write_str(name),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `error` found in the text with the includes appended, pointed at the file and line it came
/// from.
fn locate_error(mut error: ConfigError, includes: &[Include]) -> ConfigError {
    if let Some(line) = error.line
        && let Some(include) = includes.iter().rev().find(|i| line >= i.first_line)
    {
        error.file = include.path.clone();
        error.line = Some(line - include.first_line + 1);
    }
    error
}

/// A configuration problem: which file, which line, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}{}: {}{message}",
    file.display(),
    line.map(|l| format!(":{l}")).unwrap_or_default(),
    if key.is_empty() { String::new() } else { format!("{key}: ") }
)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// The dotted key (`pools.main.servers`), or the offending token.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Config {
    /// Reads and validates a config file, and the tenants' files it includes.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &std::collections::BTreeMap::new())
    }

    /// [`Config::load`], taking the text of the included files named in `kept` from there
    /// instead of reading them: a reload keeps a tenant's previous file when its new one is
    /// refused (`reload.rs`).
    pub fn load_with(
        path: &Path,
        kept: &std::collections::BTreeMap<PathBuf, String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::from_parts(&text, path, kept)
    }

    /// The config file `origin`'s `text`, with its tenants' files taken from `kept` where
    /// there, else read.
    pub fn from_parts(
        text: &str,
        origin: &Path,
        kept: &std::collections::BTreeMap<PathBuf, String>,
    ) -> Result<Config, ConfigError> {
        let (combined, includes) = tenants::read_includes(text, origin, kept)?;
        let mut config =
            validate::validate(&combined, origin).map_err(|e| locate_error(e, &includes))?;
        config.includes = includes;
        Ok(config)
    }

    /// Validates config text; `origin` names it in errors and anchors relative plugin paths.
    /// A tenant's `include` is read from `origin`'s directory.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Config::from_parts(text, origin, &std::collections::BTreeMap::new())
    }

    /// The pools and routes that are one tenant's, by name: reached from that tenant's route
    /// and from no other tenant's, nor from a listener without tenants. What the logs name
    /// and `/metrics` labels a node with (a node of a tenant's file is that tenant's in any
    /// case).
    pub fn node_tenants(&self) -> std::collections::HashMap<&str, &str> {
        let mut owners: std::collections::HashMap<&str, Option<&str>> = Default::default();
        let tenant_roots = self
            .tenants
            .iter()
            .map(|t| (Some(t.name.as_str()), &t.route));
        let plain_roots = self.listeners.iter().filter_map(|l| match &l.route {
            ListenerRoute::Route(route) => Some((None, route)),
            _ => None,
        });
        for (tenant, root) in tenant_roots.chain(plain_roots) {
            for name in validate::reachable(std::iter::once(root.clone()), &self.routes) {
                let Some(name) = self
                    .pools
                    .iter()
                    .map(|p| p.name.as_str())
                    .chain(self.routes.iter().map(|r| r.name.as_str()))
                    .find(|n| *n == name)
                else {
                    continue;
                };
                owners
                    .entry(name)
                    .and_modify(|owner| {
                        if *owner != tenant {
                            *owner = None;
                        }
                    })
                    .or_insert(tenant);
            }
        }
        owners
            .into_iter()
            .filter_map(|(name, owner)| Some((name, owner?)))
            .collect()
    }

    /// Where line `line` of [`Config::text`] was written: the file, its line there, and the
    /// tenant whose file it is (`None`: the config file itself).
    pub fn locate(&self, line: usize) -> (PathBuf, usize, Option<&str>) {
        match self.includes.iter().rev().find(|i| line >= i.first_line) {
            Some(include) => (
                include.path.clone(),
                line - include.first_line + 1,
                Some(include.tenant.as_str()),
            ),
            None => (self.origin.clone(), line, None),
        }
    }

    /// Directory that relative paths in this config are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.origin
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
    }
}
