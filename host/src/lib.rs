//! Switchyard: a memcached-protocol router whose routing policies are WebAssembly plugins.
//!
//! A request's path through this crate, one module a step (`ARCHITECTURE.md` walks it):
//!
//! 1. `connection`: one client connection; its input framed (`switchyard_protocol::Framer`,
//!    sans-IO), each request dispatched, replies written in request order.
//! 2. `dispatch`: per command: answer locally, route by key, or split a multi-key get.
//! 3. `route`: one key through the route tree's plugins to a server, a reply or a plan; no
//!    I/O.
//! 4. `execute`: carries a resolved route out: sends, fan-outs, call continuations, rewrites,
//!    background sends.
//! 5. `reply`: what the client gets: pending replies, the in-order queue, merged multi-gets.
//! 6. `backend`: one pipelined connection per server and worker (the reply reader), health.
//!
//! Around it: [`server`] (listeners, admission, one single-threaded runtime per worker
//! thread, the graceful drain), `drain` (a worker's open connections, as a drain sees them), `worker`
//! (a worker's plugin instances and backend handles for a generation), [`plugin`] (the
//! wasmtime sandbox and the ABI, `sdk/ABI.md`), `error` (why a request failed: its side,
//! whether a retry is safe, its one reply, where it is counted), `spool` (the reliable delete
//! stream: failed deletes kept on disk and replayed), `introspect` (`get __switchyard__.…`
//! answered by the router itself, and `switchyard route`: dry runs of the route tree),
//! [`config`] and `generation` (the TOML file, validated, built into a route tree), [`reload`]
//! (hot swap), `admin`, `wire` (vectored writes), [`stats`], [`cli`], `trace` (request traces
//! as `plugin test --trace` reads them).
//!
//! The public surface is what the binary, the benchmarks and the tests need: [`Router`],
//! [`Config`], [`cli`], and the plugin runtime for its microbenchmarks.

mod admin;
mod backend;
pub mod cli;
pub mod config;
mod connection;
mod deque;
mod diff;
mod dispatch;
mod drain;
mod error;
mod execute;
mod experiment;
mod generation;
mod introspect;
pub mod plugin;
pub mod reload;
mod replay;
mod reply;
mod route;
pub mod server;
mod signal;
mod spool;
pub mod stats;
mod tap;
mod tenant;
mod tls;
pub mod top;
mod trace;
mod wire;
mod worker;

pub use config::{Config, ConfigError};
pub use reload::ReloadError;
pub use server::{Router, StartError};

/// What `version` answers and `stats` reports as `version`.
pub const VERSION_STRING: &str = concat!("switchyard-", env!("CARGO_PKG_VERSION"));
