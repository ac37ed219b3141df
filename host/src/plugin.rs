//! The WebAssembly plugin runtime.
//!
//! One [`PluginEngine`] per process (a wasmtime `Engine` plus the thread that advances its
//! epoch while plugins run); a [`PluginModule`] per compiled plugin, shared by every worker; a [`PluginInstance`]
//! per worker and route node, since a wasmtime `Store` is not `Sync`. The ABI these speak is
//! `sdk/ABI.md`; its constants come from `switchyard_sdk::abi`.
//!
//! - `bundled`: the plugins compiled into the binary by `build.rs`, by name.
//! - `cli`: `switchyard plugin inspect`, a module vetted and `init`ed outside a config.
//! - `cache`: compiled modules by content hash, so a reload compiles only what changed.
//! - `module`: compile and vet a module (imports, exports) into an `InstancePre`.
//! - `host_fns`: the functions a plugin may import.
//! - `instance`: instantiate, `init`, `route` under an epoch deadline and a memory cap.
//! - `metrics`: the counters and histograms a node's plugin defines.
//! - `plan`: the host's reading of what `route` returned.
//! - `epoch`: the ticker that advances the epoch, parked while no plugin runs.

pub mod bundled;
mod cache;
pub mod cli;
mod epoch;
mod host_fns;
mod instance;
mod metrics;
mod module;
mod plan;

use std::time::Duration;

pub use cache::ModuleCache;
pub use host_fns::LogBudget;
pub use instance::{ChildInfo, NodeBudget, NodeContext, PluginFault, PluginInstance, RouteInput};
pub use metrics::{MetricsSnapshot, PluginMetrics, Values as MetricValues};
pub use module::PluginModule;
pub use plan::{Decision, OwnedBackground, OwnedReply, OwnedRewrite};
pub use switchyard_sdk::Wait;

/// How often the engine's epoch advances while plugins run. Deadlines are counted in these
/// ticks (a call's CPU time is checked at each tick it reaches), so this is the granularity of
/// `call_timeout_ms`; an idle router does not tick at all (`epoch`).
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// An error loading, vetting or initialising a plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}`: {message}")]
pub struct PluginError {
    /// The plugin's name or path.
    pub plugin: String,
    /// What went wrong.
    pub message: String,
}

/// The process-wide wasmtime engine and its epoch ticker.
#[derive(Debug)]
pub struct PluginEngine {
    engine: wasmtime::Engine,
    ticker: epoch::Ticker,
}

impl PluginEngine {
    /// Creates the engine (epoch interruption on) and starts its ticker thread.
    pub fn new() -> Result<PluginEngine, PluginError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = wasmtime::Engine::new(&config).map_err(|e| PluginError {
            plugin: String::new(),
            message: format!("cannot create the wasm engine: {e}"),
        })?;
        let ticker = epoch::Ticker::start(engine.clone()).map_err(|e| PluginError {
            plugin: String::new(),
            message: format!("cannot start the epoch thread: {e}"),
        })?;
        Ok(PluginEngine { engine, ticker })
    }

    pub(crate) fn engine(&self) -> &wasmtime::Engine {
        &self.engine
    }

    pub(crate) fn ticker(&self) -> epoch::TickerHandle {
        self.ticker.handle()
    }
}

/// Epoch ticks for a budget: rounded up, plus one because the current tick is already partly
/// spent.
pub(crate) fn ticks(budget: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos().max(1);
    (budget.as_nanos().div_ceil(tick) as u64).saturating_add(1)
}
