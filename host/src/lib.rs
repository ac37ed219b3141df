//! Switchyard: a memcached-protocol router whose routing policies are WebAssembly plugins.
//!
//! A request's path through this crate (see `ARCHITECTURE.md` for the long version):
//!
//! - [`server`]: binds listeners, runs one single-threaded runtime per worker thread.
//! - [`session`]: one client connection; reads, parses (`switchyard-protocol`, sans-IO) and
//!   answers in request order.
//! - [`dispatch`]: per command: answer locally, route by key, or split a multi-key get.
//! - [`executor`]: walks the route tree through plugin calls and sends to backends.
//! - [`worker`]: a worker's plugin instances and backend connections for a [`generation`].
//! - [`plugin`]: the wasmtime sandbox and the plugin ABI (`sdk/ABI.md`).
//! - [`backend`]: pipelined connections to memcached servers.
//! - [`error`]: why a request failed ([`error::RequestError`]): its side, whether a retry is
//!   safe, its one `SERVER_ERROR` reply, and the one place it is counted.
//! - [`config`]: the TOML file, validated; [`generation`]: a config built into a route tree.
//! - [`reload`]: hot swap (build, validate, one atomic publish, rollback); [`admin`]: the
//!   admin listener.
//! - [`wire`]: zero-copy vectored writes; [`stats`]: counters.
//! - [`cli`]: the command line of the `switchyard` binary.

pub mod admin;
pub mod backend;
pub mod cli;
pub mod config;
mod deque;
pub mod dispatch;
pub mod error;
pub mod executor;
pub mod generation;
pub mod plugin;
pub mod reload;
pub mod server;
pub mod session;
mod signal;
pub mod stats;
pub mod wire;
pub mod worker;

pub use config::{Config, ConfigError};
pub use reload::ReloadError;
pub use server::{Router, StartError};

/// What `version` answers and `stats` reports as `version`.
pub const VERSION_STRING: &str = concat!("switchyard-", env!("CARGO_PKG_VERSION"));
