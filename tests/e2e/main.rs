//! End-to-end tests: real memcached (and twemproxy) processes, a real router, real TCP.
//! One module per concern; the harness is the `switchyard_tests` library (`tests/src/`).
//!
//! - [`differential`]: replies through the router are byte-identical to memcached's own.
//! - [`conformance`]: the same, for a table of 200+ scripts covering every command, flag,
//!   limit and error of the classic text protocol.
//! - [`ketama`]: keys land where twemproxy puts them; adding a server moves about a quarter.
//! - [`prefix`]: key prefixes choose pools, longest match first.
//! - [`pipelining`]: pipelined requests and multi-key gets come back in order.
//! - [`blame`]: a reply that outlasts its timeout while still arriving, or a router out of file
//!   descriptors, fails its own request and never marks a healthy server down.
//! - [`backend_failure`]: a dead or hung backend costs its requests only, within the timeout.
//! - [`burst`]: 10,000 clients asking for one hot key at once all get it, no error.
//! - [`health`]: servers marked down fail fast, come back by probe, and cannot grow memory.
//! - [`plugin_authoring`]: a plugin made with `plugin new`, tested, built and routing traffic.
//! - [`plugin_sandbox`]: traps, endless loops and WASI imports are contained or refused.
//! - [`fault_policy`]: `on_fault` (error, pass, fallback) for every kind of plugin fault, and
//!   the per-node circuit breaker.
//! - [`isolation`]: a looping, slow-starting, half-failing or trapping plugin costs its own
//!   requests only: not another listener's throughput, reload latency, the log, or more than
//!   `rollback_faults` failed requests (process tests; `SWITCHYARD_BINARY` picks the build).
//! - [`fan_out`]: a plugin's `fan_out` plan reaches every child and answers the worst reply.
//! - [`diff`]: `switchyard diff` of a ketama pool and the same pool with a fourth server: a
//!   quarter of the keys move, all to it, as a router on the new configuration places them.
//! - [`experiments`]: a dry run of a ketama pool given a fourth server reports about a
//!   quarter moved, as `switchyard diff` does, and sends that server nothing; a trapping
//!   candidate costs live traffic nothing.
//! - [`tap`]: a capture on the admin listener, replayed through its configuration, gives each
//!   request the server the router sent it to.
//! - [`introspection`]: `get __switchyard__.route(op,key)` and `switchyard route` name the
//!   servers a request reaches (ketama, prefix, all-sync, failover) and send nothing; the
//!   version, generation and config keys.
//! - [`reload`]: hot swap under load, every trigger, refused reloads, automatic rollback.
//! - [`replication`]: all-sync, all-fastest, all-majority, all-async and failover with a child
//!   stopped or slow.
//! - [`check_config`]: `switchyard --check-config` accepts good files and names bad keys.
//! - [`cli`]: `--help` lists every flag, `--version` the plugin ABI; a copied binary runs its
//!   bundled plugins from any directory; the systemd unit's command lines work.
//! - [`setup`]: `scripts/setup` would install nothing after it ran, and lists every program
//!   the tests start.
//! - [`examples`]: every config of `configs/` does what its header says (ha warm-up, magent
//!   backup, shadowing, two random pools, prefixes, migration).
//! - [`rewrites`]: background sends and rewrites: all-initial, modify, the background bound.
//! - [`long_values`]: long values stream through both ways, with memcached's replies, and the
//!   router's memory does not grow with them.
//! - [`memory`]: a client that pipelines without reading holds a bounded amount of replies in
//!   the router; other clients are served as usual.
//! - [`docs`]: `configs/README.md` lists every bundled plugin, example config and config key.
//! - [`spool`]: the reliable delete stream: a delete a dead or stopped server fails is spooled,
//!   answered `NOT_FOUND`, and replayed when it is back, after a router restart or SIGKILL, past
//!   a torn last record, or by `switchyard spool replay`; the spool's byte bound.
//! - [`lifecycle`]: SIGTERM drains (every request already sent answered, new connects refused,
//!   exit 0 within the drain timeout, a second signal exits at once); `max_connections` and a
//!   low open-file limit answered with memcached's `ERROR Too many open connections`, the
//!   server left up; binary-protocol clients and over-long lines closed with memcached's
//!   errors; a thousand admin connections and no thread each.
//! - [`scripted_backend`]: scripted backends that send garbage, extra, dripped, late or no
//!   replies, or drop the connection: what clients get, and exactly what each backend is sent
//!   (connection, dispatch, fan-out and health).
//! - [`tls`]: TLS listeners and pools against memcached `-Z`: set/get both ways, mutual TLS
//!   and routing by the client certificate's identity, refused certificates and handshakes,
//!   backends whose TLS fails, certificate rotation on reload, `configs/tls.toml`.

mod backend_failure;
mod blame;
mod burst;
mod c_plugin;
mod check_config;
mod cli;
mod conformance;
mod diff;
mod differential;
mod docs;
mod examples;
mod experiments;
mod fan_out;
mod fault_policy;
mod health;
mod introspection;
mod isolation;
mod ketama;
mod lifecycle;
mod logs;
mod long_values;
mod memory;
mod metrics;
mod pipelining;
mod plugin_authoring;
mod plugin_sandbox;
mod prefix;
mod reload;
mod replication;
mod rewrites;
mod scripted_backend;
mod setup;
mod spool;
mod stats;
mod tap;
mod tenants;
mod tls;
mod top;
