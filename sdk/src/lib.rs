//! Write Switchyard routing plugins in safe Rust.
//!
//! A plugin is a [`Policy`] exported with [`export_policy!`] and built for
//! `wasm32-unknown-unknown`; the host calls it for every request and executes the [`Plan`] it
//! returns. A [`Plan::Call`] brings the child's reply back to [`Policy::on_reply`] as a
//! [`ReplyStatus`], for failover-like policies. The SDK implements the guest side of the ABI
//! (`sdk/ABI.md`), and is the vocabulary the host shares with its plugins: the host depends on
//! this crate for the ABI's constants, hash functions, operations ([`Op`]), reply statuses
//! ([`ReplyStatus`]) and decoded plans ([`decision::Decision`]). See `README.md` for an example.
//!
//! [`guide`] walks through writing one: every kind of plan, testing, building, deploying.
//!
//! Codemap:
//!
//! - [`abi`]: every constant of ABI.md and the plan word layout (host and guest share these).
//! - [`hash`]: the hash functions behind the `hash`/`md5` imports, in pure Rust (used by the
//!   host, and by the SDK natively).
//! - [`request`]: [`Op`] and [`Request`], what `route` receives.
//! - [`plan`]: [`Plan`], [`Reply`], [`Child`], ..., what `route` and `on_reply` return, and
//!   their encoding.
//! - [`rewrite`]: [`Rewrite`] and [`Background`], the extras of a [`Plan::Extended`]: the
//!   request changed (key prefix, exptime), and requests sent on the side.
//! - [`decision`]: decoding a plan as the host does, with every check ABI.md asks of it (the
//!   host uses this, and so does [`testing`]).
//! - [`status`]: [`ReplyStatus`], what a memcached reply says: what `on_reply` learns about a
//!   called child's reply, and the status the host's reply parser gives every backend reply.
//! - [`policy`]: the [`Policy`] trait and [`InitContext`] (the node's children).
//! - [`replicate`]: the one policy behind the replication plugins (every child, a wait policy).
//! - [`select`]: ketama, jump, rendezvous, modula and weighted random selection, the schemes
//!   of the bundled hashing plugins, as types a plugin embeds.
//! - [`weights`]: [`weights::CumulativeWeights`], which child owns a point of the children's
//!   weights laid end to end (weighted buckets, weighted random choice).
//! - [`host`]: one safe wrapper per host import.
//! - [`metrics`]: [`metrics::Counter`] and [`metrics::Histogram`], the plugin's own stats.
//! - `export`: [`export_policy!`], which defines the wasm exports.
//! - [`testing`] (native only): [`testing::Harness`], a fake host for `cargo test`.
//! - `sys` (wasm32 only): the imports and the shared statics; the SDK's only `unsafe` code.
#![deny(missing_docs)]

pub mod abi;
pub mod decision;
#[doc = include_str!("../GUIDE.md")]
pub mod guide {}
mod export;
pub mod hash;
pub mod host;
pub mod key;
pub mod metrics;
pub mod plan;
pub mod policy;
pub mod replicate;
pub mod request;
pub mod rewrite;
pub mod select;
pub mod status;
#[cfg(target_arch = "wasm32")]
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod weights;

#[doc(hidden)]
pub use export::__private;
pub use hash::HashAlgorithm;
pub use host::Level;
pub use plan::{Child, Children, Extended, Plan, Primary, Reply, Wait};
pub use policy::{ChildInfo, InitContext, NoConfig, Policy};
pub use request::{Op, Request};
pub use rewrite::{Background, Exptime, KeyRewrite, Rewrite, Store};
pub use status::ReplyStatus;

/// Re-exported so plugins can `#[derive(serde::Deserialize)]` their config without naming the
/// version.
pub use serde;
