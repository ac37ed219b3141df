//! Every stat the router reports, declared once: its group, name, kind, unit and what it
//! means. `stats` and its groups render from these declarations, and `switchyard
//! --describe-stats` prints them all ([`describe`]).
//!
//! Counters that every worker keeps are declared with their struct ([`declare_counters!`]), so
//! a field cannot exist without its description. Stats of one server, plugin node or identity
//! are declared here with a `<placeholder>` in their name, the way `stats` prints them
//! (`<server>:timeouts`).

use std::fmt::Write as _;

/// How a stat behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows (until a restart).
    Counter,
    /// Goes up and down: a level now.
    Gauge,
    /// A quantile or mean of a latency histogram.
    Quantile,
    /// A fact, not a number to add up (a version, a state, a hash).
    Info,
}

impl Kind {
    /// Its name in `--describe-stats`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Quantile => "quantile",
            Kind::Info => "info",
        }
    }
}

/// What a stat's value counts or measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Events, requests, keys, connections, ...: a number of things.
    Count,
    /// Bytes.
    Bytes,
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Milliseconds,
    /// Microseconds.
    Microseconds,
    /// Seconds since the Unix epoch.
    UnixSeconds,
    /// Milliseconds since the Unix epoch.
    UnixMilliseconds,
    /// Text.
    Text,
}

impl Unit {
    /// Its name in `--describe-stats`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Bytes => "bytes",
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "milliseconds",
            Unit::Microseconds => "microseconds",
            Unit::UnixSeconds => "unix_seconds",
            Unit::UnixMilliseconds => "unix_milliseconds",
            Unit::Text => "text",
        }
    }
}

/// One stat's declaration.
#[derive(Debug, Clone, Copy)]
pub struct StatDef {
    /// The `stats` group it is reported in: `""` for plain `stats`, else `backends`,
    /// `plugins`, `config` or `tls`.
    pub group: &'static str,
    /// Its name as `stats` prints it; `<server>`, `<node>`, `<command>` or `<identity>`
    /// stand for the part that varies.
    pub name: &'static str,
    /// How it behaves.
    pub kind: Kind,
    /// What it measures.
    pub unit: Unit,
    /// What it means (doc comment text, whitespace as written).
    pub help: &'static str,
}

impl StatDef {
    /// Its description on one line.
    pub fn help(&self) -> String {
        self.help.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Declares a struct of per-worker [`Counter`](crate::stats::Counter)s and the [`StatDef`] of
/// each, from one list: `name: Kind, Unit;` under its doc comment. Other fields follow in an
/// `also { ... }` block.
macro_rules! declare_counters {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident in $group:literal {
            $( $(#[doc = $doc:literal])+ $field:ident: $kind:ident, $unit:ident; )*
        }
        also { $( $(#[doc = $xdoc:literal])+ $xfield:ident: $xty:ty, )* }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $( $(#[doc = $doc])+ pub $field: $crate::stats::Counter, )*
            $( $(#[doc = $xdoc])+ pub $xfield: $xty, )*
        }

        impl $name {
            /// The declaration of each counter, in field order.
            pub const DEFS: &'static [$crate::stats::registry::StatDef] = &[
                $( $crate::stats::registry::StatDef {
                    group: $group,
                    name: stringify!($field),
                    kind: $crate::stats::registry::Kind::$kind,
                    unit: $crate::stats::registry::Unit::$unit,
                    help: concat!($($doc),+),
                }, )*
            ];

            /// Each counter, in the order of [`Self::DEFS`].
            pub fn counters(&self) -> [&$crate::stats::Counter; [$(stringify!($field)),*].len()] {
                [$(&self.$field),*]
            }
        }
    };
}
pub(crate) use declare_counters;

macro_rules! defs {
    ($( $(#[doc = $doc:literal])+ $ident:ident = $group:literal, $name:literal, $kind:ident, $unit:ident; )*) => {
        $(
            $(#[doc = $doc])+
            pub const $ident: StatDef = StatDef {
                group: $group,
                name: $name,
                kind: Kind::$kind,
                unit: Unit::$unit,
                help: concat!($($doc),+),
            };
        )*
        /// Every stat declared here (the per-worker counters are in their structs).
        pub const DECLARED: &[StatDef] = &[$($ident),*];
    };
}

defs! {
    /// The router's process id.
    PID = "", "pid", Info, Count;
    /// Seconds since the router started.
    UPTIME = "", "uptime", Gauge, Seconds;
    /// The time now.
    TIME = "", "time", Gauge, UnixSeconds;
    /// The router's version and plugin ABI version.
    VERSION = "", "version", Info, Text;
    /// Worker threads serving clients.
    THREADS = "", "threads", Gauge, Count;
    /// Requests of each command clients sent (memcached's command names: `cmd_get`,
    /// `cmd_set`, `cmd_mg`, ... one per command; a multi-key get is one).
    CMD = "", "cmd_<command>", Counter, Count;
    /// Requests of each command whose reply to the client was an error (`ERROR`,
    /// `CLIENT_ERROR`, `SERVER_ERROR`, the router's own or a server's): `cmd_get_errors`, ...
    /// A `noreply` request's reply is not read by its client and not counted here.
    CMD_ERRORS = "", "cmd_<command>_errors", Counter, Count;
    /// Deletes kept in a delete spool because their server failed them.
    DELETE_SPOOLED = "", "delete_spooled", Counter, Count;
    /// Spooled deletes replayed to their server.
    DELETE_REPLAYED = "", "delete_replayed", Counter, Count;
    /// Deletes a spool could not keep (full, or a write failed): their clients got the error.
    DELETE_SPOOL_DROPPED = "", "delete_spool_dropped", Counter, Count;
    /// Bytes in the delete spools now.
    DELETE_SPOOL_BYTES = "", "delete_spool_bytes", Gauge, Bytes;
    /// Heap allocations so far, in a build that counts them (`bench/run`'s); absent
    /// otherwise.
    ALLOCATIONS = "", "allocations", Counter, Count;

    /// The serving generation's number: one more with every published reload.
    GENERATION = "config", "generation", Gauge, Count;
    /// When the serving generation was published.
    GENERATION_LOADED_AT = "config", "generation_loaded_at", Info, UnixSeconds;
    /// Plugin faults in the serving generation (a rollback watches this).
    GENERATION_FAULTS = "config", "generation_faults", Counter, Count;
    /// Generations still held by a connection or a request (the serving one included).
    GENERATIONS_ALIVE = "config", "generations_alive", Gauge, Count;
    /// Compiled plugin modules in the cache.
    PLUGIN_MODULES = "config", "plugin_modules", Gauge, Count;
    /// The config file the router runs.
    CONFIG_FILE = "config", "config_file", Info, Text;
    /// Reloads published.
    RELOADS = "config", "reloads", Counter, Count;
    /// Reloads refused (a bad file, a plugin that failed, a file that cannot be read); the
    /// serving generation stayed.
    RELOAD_FAILURES = "config", "reload_failures", Counter, Count;
    /// Generations rolled back because their plugins faulted too often.
    ROLLBACKS = "config", "rollbacks", Counter, Count;
    /// The generation the last rollback left (0: none).
    ROLLED_BACK_FROM = "config", "rolled_back_from", Info, Count;
    /// When the last reload was published (0: none since the start).
    LAST_RELOAD_SUCCESS = "config", "last_reload_success", Info, UnixSeconds;
    /// Why the last reload was refused, until a reload succeeds; absent when none was.
    LAST_RELOAD_ERROR = "config", "last_reload_error", Info, Text;
    /// When the last refused reload was; absent when none was.
    LAST_RELOAD_FAILURE = "config", "last_reload_failure", Info, UnixSeconds;
    /// When a reload last succeeded after a refused one, clearing `last_reload_error`.
    LAST_RELOAD_ERROR_CLEARED = "config", "last_reload_error_cleared", Info, UnixSeconds;

    /// `up` or `down`.
    BACKEND_STATE = "backends", "<server>:state", Info, Text;
    /// When the server's state last changed.
    BACKEND_STATE_SINCE = "backends", "<server>:state_since_ms", Info, UnixMilliseconds;
    /// Failures in a row; `failure_limit` of them mark the server down.
    BACKEND_CONSECUTIVE_FAILURES = "backends", "<server>:consecutive_failures", Gauge, Count;
    /// Replies received from the server (every worker's connection).
    BACKEND_REPLIES = "backends", "<server>:replies", Counter, Count;
    /// Mean time from a request's queueing to its reply's arrival.
    BACKEND_LATENCY_MEAN = "backends", "<server>:latency_mean_us", Quantile, Microseconds;
    /// Median of that time (the upper edge of its histogram bucket: at most 12.5% high).
    BACKEND_LATENCY_P50 = "backends", "<server>:latency_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    BACKEND_LATENCY_P99 = "backends", "<server>:latency_p99_us", Quantile, Microseconds;

    /// Requests queued or in flight at the server now (every worker's).
    BACKEND_OUTSTANDING = "backends", "<server>:outstanding", Gauge, Count;
    /// Their bytes, each request counted with 128 bytes of overhead: what a pool's
    /// `max_outstanding_bytes` bounds per worker.
    BACKEND_OUTSTANDING_BYTES = "backends", "<server>:outstanding_bytes", Gauge, Bytes;

    /// The server's replies to the tenant's requests: `<server>:replies` for one tenant.
    /// A tenant's lines are printed for each server it has sent anything; `/metrics` labels
    /// them `server` and `tenant`.
    BACKEND_TENANT_REPLIES = "backends", "<server>:tenant:<tenant>:replies", Counter, Count;
    /// The tenant's requests queued for the server that got no reply, one each: they timed
    /// out (in flight or still queued), their connection failed or could not be made (the
    /// router's own shortages included), or a reply (theirs or one ahead of them) was cut off.
    /// Not `<server>:failures`, which counts connections.
    BACKEND_TENANT_FAILED = "backends", "<server>:tenant:<tenant>:failed", Counter, Count;
    /// Of those, the ones that timed out: each request in flight on a connection that timed
    /// out, and each that waited its whole timeout in the queue.
    BACKEND_TENANT_TIMEOUTS = "backends", "<server>:tenant:<tenant>:timeouts", Counter, Count;
    /// The tenant's requests refused at once because the server was down or over its
    /// outstanding limit.
    BACKEND_TENANT_FAST_FAILED = "backends", "<server>:tenant:<tenant>:fast_failed", Counter, Count;
    /// Mean time from the tenant's request's queueing to its reply's arrival.
    BACKEND_TENANT_LATENCY_MEAN = "backends", "<server>:tenant:<tenant>:latency_mean_us", Quantile, Microseconds;
    /// Median of that time.
    BACKEND_TENANT_LATENCY_P50 = "backends", "<server>:tenant:<tenant>:latency_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    BACKEND_TENANT_LATENCY_P99 = "backends", "<server>:tenant:<tenant>:latency_p99_us", Quantile, Microseconds;
    /// The tenant's requests queued or in flight at the server now (every worker's).
    BACKEND_TENANT_OUTSTANDING = "backends", "<server>:tenant:<tenant>:outstanding", Gauge, Count;
    /// Their bytes, as `max_outstanding_bytes` counts them.
    BACKEND_TENANT_OUTSTANDING_BYTES = "backends", "<server>:tenant:<tenant>:outstanding_bytes", Gauge, Bytes;

    /// Calls into the node's plugin (`route` and `on_reply`), every worker.
    PLUGIN_CALLS = "plugins", "<node>:calls", Counter, Count;
    /// Calls that trapped (a panic, an out-of-bounds access, ...).
    PLUGIN_TRAPS = "plugins", "<node>:faults_trap", Counter, Count;
    /// Calls that ran past `call_timeout_ms` of CPU time.
    PLUGIN_TIMEOUTS = "plugins", "<node>:faults_timeout", Counter, Count;
    /// Calls that returned a plan the host refused.
    PLUGIN_BAD_PLANS = "plugins", "<node>:faults_bad_plan", Counter, Count;
    /// Calls that trapped after the host refused to grow the plugin's memory past
    /// `memory_limit_mb`.
    PLUGIN_OUT_OF_MEMORY = "plugins", "<node>:faults_out_of_memory", Counter, Count;
    /// Requests that found no instance to call (its breaker open, or re-creating it failed).
    PLUGIN_UNAVAILABLE = "plugins", "<node>:faults_unavailable", Counter, Count;
    /// Mean CPU-thread time of a call, measured around it (wall clock on the worker).
    PLUGIN_CALL_MEAN = "plugins", "<node>:call_mean_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    PLUGIN_CALL_P99 = "plugins", "<node>:call_p99_us", Quantile, Microseconds;
    /// Linear memory of the node's instances now, summed over workers.
    PLUGIN_MEMORY = "plugins", "<node>:memory_bytes", Gauge, Bytes;
    /// The plugin module the node runs: `bundled:<name>` or its file, and the SHA-256 of its
    /// bytes (`sha256:<hex>`, what a config's `sha256` pins).
    PLUGIN_MODULE = "plugins", "<node>:module", Info, Text;
    /// The tenant the node is for: the tenant whose file defines it, or the one tenant that
    /// reaches it when no other and no listener without tenants does. Not printed for a
    /// shared node; `/metrics` also labels the node's series with it (`tenant`).
    PLUGIN_TENANT = "plugins", "<node>:tenant", Info, Text;
    /// Calls into the node's plugin for the tenant's requests: `<node>:calls` for one tenant.
    /// A tenant's lines are printed for each node whose plugin its requests called; `/metrics`
    /// labels them `node` and `tenant`.
    PLUGIN_TENANT_CALLS = "plugins", "<node>:tenant:<tenant>:calls", Counter, Count;
    /// Of those, the ones that trapped.
    PLUGIN_TENANT_TRAPS = "plugins", "<node>:tenant:<tenant>:faults_trap", Counter, Count;
    /// The ones that ran past `call_timeout_ms`.
    PLUGIN_TENANT_TIMEOUTS = "plugins", "<node>:tenant:<tenant>:faults_timeout", Counter, Count;
    /// The ones that returned a plan the host refused.
    PLUGIN_TENANT_BAD_PLANS = "plugins", "<node>:tenant:<tenant>:faults_bad_plan", Counter, Count;
    /// The ones that trapped for want of memory.
    PLUGIN_TENANT_OUT_OF_MEMORY = "plugins", "<node>:tenant:<tenant>:faults_out_of_memory", Counter, Count;
    /// The tenant's requests that found no instance to call.
    PLUGIN_TENANT_UNAVAILABLE = "plugins", "<node>:tenant:<tenant>:faults_unavailable", Counter, Count;
    /// Mean time of a call for the tenant's requests.
    PLUGIN_TENANT_CALL_MEAN = "plugins", "<node>:tenant:<tenant>:call_mean_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    PLUGIN_TENANT_CALL_P99 = "plugins", "<node>:tenant:<tenant>:call_p99_us", Quantile, Microseconds;
    /// The tenant's share of a counter the node's plugin defined: what its calls for the
    /// tenant's requests added. Printed for each node whose plugin, defining metrics, the
    /// tenant's requests called.
    PLUGIN_TENANT_COUNTER = "plugins", "<node>:tenant:<tenant>:counter:<counter>", Counter, Count;
    /// Values its calls for the tenant's requests recorded in a histogram the plugin defined.
    PLUGIN_TENANT_HISTOGRAM_COUNT = "plugins", "<node>:tenant:<tenant>:histogram:<histogram>:count", Counter, Count;
    /// Their sum.
    PLUGIN_TENANT_HISTOGRAM_SUM = "plugins", "<node>:tenant:<tenant>:histogram:<histogram>:sum", Counter, Count;
    /// Mean value its calls for the tenant's requests recorded in a histogram the plugin defined.
    PLUGIN_TENANT_HISTOGRAM_MEAN = "plugins", "<node>:tenant:<tenant>:histogram:<histogram>:mean", Quantile, Count;
    /// Their median.
    PLUGIN_TENANT_HISTOGRAM_P50 = "plugins", "<node>:tenant:<tenant>:histogram:<histogram>:p50", Quantile, Count;
    /// Their 99th percentile.
    PLUGIN_TENANT_HISTOGRAM_P99 = "plugins", "<node>:tenant:<tenant>:histogram:<histogram>:p99", Quantile, Count;
    /// A counter the node's plugin defined (ABI.md, "Plugin metrics"), every worker.
    PLUGIN_COUNTER = "plugins", "<node>:counter:<counter>", Counter, Count;
    /// Values recorded in a histogram the node's plugin defined.
    PLUGIN_HISTOGRAM_COUNT = "plugins", "<node>:histogram:<histogram>:count", Counter, Count;
    /// Their sum.
    PLUGIN_HISTOGRAM_SUM = "plugins", "<node>:histogram:<histogram>:sum", Counter, Count;
    /// Mean value recorded in a histogram the node's plugin defined.
    PLUGIN_HISTOGRAM_MEAN = "plugins", "<node>:histogram:<histogram>:mean", Quantile, Count;
    /// Their median (the upper edge of its bucket: at most 12.5% high).
    PLUGIN_HISTOGRAM_P50 = "plugins", "<node>:histogram:<histogram>:p50", Quantile, Count;
    /// Their 99th percentile.
    PLUGIN_HISTOGRAM_P99 = "plugins", "<node>:histogram:<histogram>:p99", Quantile, Count;

    /// Client requests whose route reached the node (at most the first three nodes of a
    /// route are counted; a multi-get counts once per node its keys reached).
    ROUTE_REQUESTS = "routes", "<node>:requests", Counter, Count;
    /// Their replies as they went out to the client, by status (`hit`, `miss`, `stored`,
    /// `not_stored`, `exists`, `not_found`, `deleted`, `touched`, `number`, `ok`, `version`,
    /// `error`, `client_error`, `server_error`): the reply the client got, which for a node
    /// under a fan-out is the combined one. A `noreply` request has none.
    ROUTE_REPLIES = "routes", "<node>:replies_<status>", Counter, Count;
    /// Mean time from a request's dispatch to its reply going out to the client.
    ROUTE_LATENCY_MEAN = "routes", "<node>:latency_mean_us", Quantile, Microseconds;
    /// Median of that time (the upper edge of its histogram bucket: at most 12.5% high).
    ROUTE_LATENCY_P50 = "routes", "<node>:latency_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    ROUTE_LATENCY_P99 = "routes", "<node>:latency_p99_us", Quantile, Microseconds;
    /// The tenant's client requests whose route reached the node: `<node>:requests` for one
    /// tenant. A tenant's lines are printed for each node its requests reached; `/metrics`
    /// labels them `node` and `tenant`.
    ROUTE_TENANT_REQUESTS = "routes", "<node>:tenant:<tenant>:requests", Counter, Count;
    /// Their replies as they went out to the client, by status, as `<node>:replies_<status>`.
    ROUTE_TENANT_REPLIES = "routes", "<node>:tenant:<tenant>:replies_<status>", Counter, Count;
    /// Mean time from the tenant's request's dispatch to its reply going out.
    ROUTE_TENANT_LATENCY_MEAN = "routes", "<node>:tenant:<tenant>:latency_mean_us", Quantile, Microseconds;
    /// Median of that time.
    ROUTE_TENANT_LATENCY_P50 = "routes", "<node>:tenant:<tenant>:latency_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    ROUTE_TENANT_LATENCY_P99 = "routes", "<node>:tenant:<tenant>:latency_p99_us", Quantile, Microseconds;

    /// One keyed request in this many is sampled for the hot keys.
    HOTKEYS_SAMPLE_EVERY = "hotkeys", "hotkeys_sample_every", Info, Count;
    /// Keyed requests sampled so far.
    HOTKEYS_SAMPLED = "hotkeys", "hotkeys_sampled", Counter, Count;
    /// The hottest keys by requests, hottest first: the estimated requests for the key (its
    /// sampled count times the sampling rate; high by at most the smallest count the worker's
    /// table keeps). Keys are printed with bytes other than printable ASCII as `\xNN`.
    HOTKEY_REQUESTS = "hotkeys", "requests:<key>", Counter, Count;
    /// The hottest keys by bytes stored (the values of sets and other stores), estimated the
    /// same way.
    HOTKEY_BYTES = "hotkeys", "bytes:<key>", Counter, Bytes;
    /// A tenant's hot key, ranked with every other (its key as its client sent it, without
    /// its namespace): the estimated requests for it.
    HOTKEY_TENANT_REQUESTS = "hotkeys", "tenant:<tenant>:requests:<key>", Counter, Count;
    /// A tenant's hot key by bytes stored.
    HOTKEY_TENANT_BYTES = "hotkeys", "tenant:<tenant>:bytes:<key>", Counter, Bytes;

    /// Connections bound to the tenant open now (`stats tenants`).
    TENANT_CURR_CONNECTIONS = "tenants", "<tenant>:curr_connections", Gauge, Count;
    /// The tenant's requests admitted whose reply has not gone out yet (what
    /// `max_outstanding` bounds).
    TENANT_OUTSTANDING = "tenants", "<tenant>:outstanding", Gauge, Count;
    /// The tenant's requests of each command, as `cmd_<command>` counts the router's.
    TENANT_CMD = "tenants", "<tenant>:cmd_<command>", Counter, Count;
    /// Error replies to the tenant's requests of each command, as `cmd_<command>_errors`.
    TENANT_CMD_ERRORS = "tenants", "<tenant>:cmd_<command>_errors", Counter, Count;
    /// Keys the tenant's retrievals found.
    TENANT_GET_HITS = "tenants", "<tenant>:get_hits", Counter, Count;
    /// Keys the tenant's retrievals looked up and did not find.
    TENANT_GET_MISSES = "tenants", "<tenant>:get_misses", Counter, Count;
    /// Bytes read from the tenant's clients (after TLS; a long value streamed to its server
    /// is not counted here).
    TENANT_BYTES_READ = "tenants", "<tenant>:bytes_read", Counter, Bytes;
    /// Bytes written to the tenant's clients (before TLS).
    TENANT_BYTES_WRITTEN = "tenants", "<tenant>:bytes_written", Counter, Bytes;
    /// Requests from the tenant's clients the router could not take (`client_errors` for its
    /// connections alone: a malformed line, a refused data block).
    TENANT_CLIENT_ERRORS = "tenants", "<tenant>:client_errors", Counter, Count;
    /// Mean time from the tenant's request being dispatched to its reply going out (with
    /// `[stats] timings`).
    TENANT_LATENCY_MEAN = "tenants", "<tenant>:latency_mean_us", Quantile, Microseconds;
    /// Median of that time.
    TENANT_LATENCY_P50 = "tenants", "<tenant>:latency_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    TENANT_LATENCY_P99 = "tenants", "<tenant>:latency_p99_us", Quantile, Microseconds;

    /// The experiment's kind: `dry-run`, `shadow` or `canary` (`stats experiments`).
    EXPERIMENT_KIND = "experiments", "<experiment>:kind", Info, Text;
    /// 1 while it runs, 0 when stopped (`enabled = false`, `experiment stop NAME`).
    EXPERIMENT_ENABLED = "experiments", "<experiment>:enabled", Gauge, Count;
    /// When it started (a reload that leaves it, its node and its candidate unchanged keeps it).
    EXPERIMENT_STARTED = "experiments", "<experiment>:started", Info, UnixSeconds;
    /// The fraction of the node's requests a dry run or shadow compares, chosen by key hash.
    EXPERIMENT_SAMPLE = "experiments", "<experiment>:sample", Info, Count;
    /// Requests compared: a dry run's decisions, a shadow's pairs of replies.
    EXPERIMENT_COMPARED = "experiments", "<experiment>:compared", Counter, Count;
    /// Of those, requests a dry run's candidate would send to other servers.
    EXPERIMENT_MOVED = "experiments", "<experiment>:moved", Counter, Count;
    /// `moved` in percent of `compared`.
    EXPERIMENT_MOVED_PCT = "experiments", "<experiment>:moved_pct", Gauge, Count;
    /// Comparisons in which a plugin of a dry run's candidate faulted (the request unharmed).
    EXPERIMENT_FAULTS = "experiments", "<experiment>:candidate_faults", Counter, Count;
    /// Sampled requests a dry run left uncompared because the node's own dry walk faulted.
    EXPERIMENT_LIVE_FAULTS = "experiments", "<experiment>:live_faults", Counter, Count;
    /// Mean time of a dry run's candidate walk.
    EXPERIMENT_TIME_MEAN = "experiments", "<experiment>:candidate_time_mean_us", Quantile, Microseconds;
    /// Median of that time.
    EXPERIMENT_TIME_P50 = "experiments", "<experiment>:candidate_time_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    EXPERIMENT_TIME_P99 = "experiments", "<experiment>:candidate_time_p99_us", Quantile, Microseconds;
    /// Requests whose first server would be `<to>` instead of `<from>` (`-`: none, the
    /// router answering itself); only cells that moved requests are printed.
    EXPERIMENT_MOVED_FROM_TO = "experiments", "<experiment>:moved:<from>:to:<to>", Counter, Count;
    /// Of a shadow's compared requests, those whose two replies said the same.
    EXPERIMENT_AGREED = "experiments", "<experiment>:agreed", Counter, Count;
    /// Those whose replies differed.
    EXPERIMENT_MISMATCHED = "experiments", "<experiment>:mismatched", Counter, Count;
    /// `agreed` in percent of `compared`.
    EXPERIMENT_AGREEMENT_PCT = "experiments", "<experiment>:agreement_pct", Gauge, Count;
    /// Mismatches of one kind: `status` (hit and miss, stored and error), `value` (same
    /// status, other data), `flags` (same data, other client flags).
    EXPERIMENT_MISMATCH_KIND = "experiments", "<experiment>:mismatch_<kind>", Counter, Count;
    /// A shadow's compared requests of one command, and of those the agreeing ones.
    EXPERIMENT_CMD_COMPARED = "experiments", "<experiment>:cmd_<command>_compared", Counter, Count;
    /// Of a command's compared requests, those that agreed.
    EXPERIMENT_CMD_AGREED = "experiments", "<experiment>:cmd_<command>_agreed", Counter, Count;
    /// Error replies from a shadow's or a canary's candidate.
    EXPERIMENT_CANDIDATE_ERRORS = "experiments", "<experiment>:candidate_errors", Counter, Count;
    /// A shadow's copies not sent: over `server.max_background` or its bytes.
    EXPERIMENT_DROPPED = "experiments", "<experiment>:dropped", Counter, Count;
    /// A shadow's copies whose node reply never came (the client's connection closed first).
    EXPERIMENT_UNANSWERED = "experiments", "<experiment>:unanswered", Counter, Count;
    /// Mean time to the node's reply: a shadow's compared requests, a canary's measured ones.
    EXPERIMENT_LIVE_MEAN = "experiments", "<experiment>:live_reply_mean_us", Quantile, Microseconds;
    /// Median of that time.
    EXPERIMENT_LIVE_P50 = "experiments", "<experiment>:live_reply_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    EXPERIMENT_LIVE_P99 = "experiments", "<experiment>:live_reply_p99_us", Quantile, Microseconds;
    /// Mean time to the candidate's reply.
    EXPERIMENT_CANDIDATE_MEAN = "experiments", "<experiment>:candidate_reply_mean_us", Quantile, Microseconds;
    /// Median of that time.
    EXPERIMENT_CANDIDATE_P50 = "experiments", "<experiment>:candidate_reply_p50_us", Quantile, Microseconds;
    /// 99th percentile of that time.
    EXPERIMENT_CANDIDATE_P99 = "experiments", "<experiment>:candidate_reply_p99_us", Quantile, Microseconds;
    /// A kept mismatch of a shadow, the newest last: `<command> <key> <kind> <node's
    /// status>/<candidate's status>`.
    EXPERIMENT_MISMATCH_SAMPLE = "experiments", "<experiment>:mismatch_sample:<n>", Info, Text;
    /// A canary's stage: `ramping`, `done` (at its last step for good) or `rolled-back`.
    EXPERIMENT_STAGE = "experiments", "<experiment>:stage", Info, Text;
    /// The step a canary is at, from 1.
    EXPERIMENT_STEP = "experiments", "<experiment>:step", Gauge, Count;
    /// The fraction of keys a canary routes through the candidate now (0 once rolled back).
    EXPERIMENT_FRACTION = "experiments", "<experiment>:fraction", Gauge, Count;
    /// A canary's requests measured on the node: the keys next to the candidate's, as many.
    EXPERIMENT_LIVE_REQUESTS = "experiments", "<experiment>:live_requests", Counter, Count;
    /// Error replies among those.
    EXPERIMENT_LIVE_ERRORS = "experiments", "<experiment>:live_errors", Counter, Count;
    /// A canary's requests the candidate answered.
    EXPERIMENT_CANDIDATE_REQUESTS = "experiments", "<experiment>:candidate_requests", Counter, Count;
    /// Why a canary was rolled back.
    EXPERIMENT_ROLLBACK_REASON = "experiments", "<experiment>:rollback_reason", Info, Text;

    /// TLS client connections open now with this identity.
    IDENTITY_CURR = "tls", "identity:<identity>:curr_connections", Gauge, Count;
    /// TLS client connections made with this identity.
    IDENTITY_TOTAL = "tls", "identity:<identity>:total_connections", Counter, Count;
}

/// `switchyard --describe-stats`: every stat, one per line, grouped as `stats` prints them:
/// `group name kind unit description` (the group `stats` for plain `stats`).
/// `prefixed` are counters printed after a placeholder (`<server>:timeouts`).
pub fn describe(worker_defs: &[&[StatDef]], prefixed: &[(&str, &[StatDef])]) -> String {
    let mut all: Vec<(StatDef, String)> =
        DECLARED.iter().map(|d| (*d, d.name.to_string())).collect();
    for defs in worker_defs {
        all.extend(defs.iter().map(|d| (*d, d.name.to_string())));
    }
    for (placeholder, defs) in prefixed {
        all.extend(
            defs.iter()
                .map(|d| (*d, format!("{placeholder}:{}", d.name))),
        );
    }
    let order = [
        "", "config", "backends", "routes", "plugins", "hotkeys", "tls", "tenants",
    ];
    all.sort_by_key(|(d, _)| {
        order
            .iter()
            .position(|g| *g == d.group)
            .unwrap_or(order.len())
    });
    let mut out = String::new();
    let _ = writeln!(out, "# group name kind unit description");
    for (d, name) in all {
        let group = if d.group.is_empty() { "stats" } else { d.group };
        let _ = writeln!(
            out,
            "{group} {name} {} {} {}",
            d.kind.name(),
            d.unit.name(),
            d.help()
        );
    }
    out
}
