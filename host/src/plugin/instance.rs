//! One plugin instance: a wasmtime `Store` owned by one worker, `init`-ed once, then asked to
//! `route` requests under an epoch deadline.

use std::sync::Arc;
use std::time::Duration;

use switchyard_sdk::ReplyStatus;
use switchyard_sdk::abi::{self, export};
use wasmtime::{Memory, ResourceLimiter, Store, Trap, TypedFunc, UpdateDeadline};

use super::MetricValues;
use super::epoch::CallGauge;
use super::plan::{self, Decision};
use super::{PluginError, PluginModule};
use crate::config::PluginSettings;
use crate::tls::Identity;

/// What a plugin is told about one of its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    /// For a pool's servers, the ketama name; for route children, the pool or route name.
    pub name: String,
    /// A server's weight; 1 for route children.
    pub weight: u32,
}

/// The node an instance serves: shared by that node's instances on every worker.
#[derive(Debug)]
pub struct NodeContext {
    /// How the node is named in logs and errors, e.g. `routes.root`.
    pub label: String,
    /// Its children, in index order.
    pub children: Vec<ChildInfo>,
    /// The node's `config` table as TOML text, handed to `init`.
    pub config_toml: String,
    /// For a pool's servers, each one's health (what `child_healthy` answers); `None` for a
    /// route child, which is always healthy.
    pub health: Vec<Option<Arc<crate::backend::Health>>>,
    /// Bounds the lines the node's plugin may log (`log`), shared by its instances.
    pub log_budget: super::host_fns::LogBudget,
    /// The most detailed level of its log lines written (an ABI `log_level` code: 1 error to
    /// 4 debug); more detailed ones are dropped before they count against the budget.
    pub log_level: u32,
    /// The module it runs, as its log lines name it: `<name> sha256:<hex>`.
    pub module: String,
    /// The counters and histograms its plugin defined, per worker.
    pub metrics: super::PluginMetrics,
    /// Its own sandbox budget, where it sets one (`[routes.NAME] call_timeout_ms`,
    /// `memory_limit_mb`); `[plugins]` otherwise.
    pub budget: NodeBudget,
    /// The tenant the node is for, which its log lines and fault logs name and `/metrics`
    /// labels it with: the tenant whose file defines it, else the one tenant whose route
    /// tree reaches it when no other and no listener without tenants does
    /// ([`crate::config::Config::node_tenants`]); `None` for a shared node.
    pub tenant: Option<String>,
    /// The tenant whose file (`[tenants.NAME] include`) defines the node, whose file a
    /// partial rollback puts back; `None` for a node of the config file itself.
    pub file_tenant: Option<String>,
}

/// A node's own sandbox budget: `None` takes `[plugins]`'s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeBudget {
    /// CPU time of one `route` or `on_reply` call.
    pub call_timeout: Option<Duration>,
    /// Linear memory of one instance.
    pub memory_limit_bytes: Option<usize>,
}

/// What one instance may hold: its linear memory in bytes, and one memory, one instance and a
/// few small tables. Remembers a refused memory growth, so that the trap a guest's allocator
/// raises next reads "memory limit reached" rather than "unreachable".
#[derive(Debug)]
struct Limits {
    memory_bytes: usize,
    refused_growth: bool,
}

/// Table elements an instance may have: far above what a compiled plugin's function table
/// needs, and a bound on what a table can cost.
const MAX_TABLE_ELEMENTS: usize = 1 << 16;

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        self.refused_growth |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The data a `Store` carries for host functions.
pub struct HostState {
    limits: Limits,
    pub(super) node: Arc<NodeContext>,
    pub(super) memory: Option<Memory>,
    /// What the guest said about its failure: `init`'s reason for rejecting its config, or a
    /// panic's message just before the trap it becomes (`set_error`).
    pub(super) error_note: Option<String>,
    rng: u64,
    /// The identity of the client whose request is being routed (`client_identity`); kept
    /// from one call to the next while it is the same client's.
    pub(super) identity: Option<Identity>,
    /// The CPU time a `route` or `on_reply` call may use; `None` while `init` runs, whose
    /// deadline is wall-clock time.
    call_budget: Option<Duration>,
    /// The thread's CPU time when the running call first reached an epoch tick (`None`: it
    /// has not yet: most calls end within a microsecond or two, long before).
    call_cpu_from: Option<Duration>,
    /// The worker the instance serves: whose slot its metrics move.
    pub(super) worker: usize,
    /// This worker's slot of the share of the node's metrics of the tenant whose request is
    /// being routed: its metrics move there too. Kept from one call to the next while it is
    /// the same tenant's ([`PluginInstance::serve`]).
    pub(super) share: Option<Arc<MetricValues>>,
}

/// Makes `held` hold `now`: nothing to do when it is the same allocation (or both are none),
/// a reference count moved otherwise.
fn hold<T: ?Sized>(held: &mut Option<Arc<T>>, now: Option<&Arc<T>>) {
    let same = match (&*held, now) {
        (None, None) => true,
        (Some(was), Some(now)) => Arc::ptr_eq(was, now),
        _ => false,
    };
    if !same {
        *held = now.cloned();
    }
}

/// The calling thread's CPU time.
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// What happens when a call reaches its epoch deadline. During `init`, the wall-clock deadline
/// is the budget: the call is interrupted. During `route` or `on_reply`, the budget is the CPU
/// time the call uses, so that a worker thread descheduled in the middle of a call (a loaded
/// host) does not fail a good request: the deadline is one tick ahead, and at each tick the
/// call reaches, its thread's CPU time since the first is checked against the budget.
fn on_deadline(state: &mut HostState) -> UpdateDeadline {
    let Some(budget) = state.call_budget else {
        return UpdateDeadline::Interrupt;
    };
    let now = thread_cpu_time();
    match state.call_cpu_from {
        None => {
            state.call_cpu_from = Some(now);
            UpdateDeadline::Continue(1)
        }
        Some(from) if now.saturating_sub(from) >= budget => UpdateDeadline::Interrupt,
        Some(_) => UpdateDeadline::Continue(1),
    }
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("node", &self.node.label)
            .finish_non_exhaustive()
    }
}

impl HostState {
    /// Whether `init` is running (not `route` or `on_reply`).
    pub(super) fn in_init(&self) -> bool {
        self.call_budget.is_none()
    }

    pub(super) fn healthy(&self, child: usize) -> bool {
        self.node
            .health
            .get(child)
            .and_then(Option::as_ref)
            .is_none_or(|h| h.is_up())
    }

    /// xorshift64*: a plugin's `random` needs spread, not secrecy.
    pub(super) fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// One request as a plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    /// ABI operation code.
    pub op: u32,
    /// The key (decoded bytes for base64 keys).
    pub key: &'a [u8],
    /// Client flags of a storage command.
    pub flags: u32,
    /// Expiry of a storage command, `touch` or `gat`.
    pub exptime: i64,
    /// Length of a storage command's value.
    pub value_len: u32,
    /// Index of the listener the request came in on.
    pub listener: u32,
    /// The client's identity, from its certificate (`tls::identity`), if it has one.
    pub identity: Option<&'a Identity>,
}

impl<'a> RouteInput<'a> {
    /// The same request with another key: one held past the client's buffer (a `call`'s
    /// continuation keeps its own copy).
    /// The request with nothing borrowed (no key, no identity): what a `call`'s continuation
    /// keeps, with its own copies of those.
    pub fn detached(&self) -> RouteInput<'static> {
        RouteInput {
            op: self.op,
            key: &[],
            flags: self.flags,
            exptime: self.exptime,
            value_len: self.value_len,
            listener: self.listener,
            identity: None,
        }
    }

    pub fn with_key<'b>(&self, key: &'b [u8]) -> RouteInput<'b>
    where
        'a: 'b,
    {
        RouteInput {
            op: self.op,
            key,
            flags: self.flags,
            exptime: self.exptime,
            value_len: self.value_len,
            listener: self.listener,
            identity: self.identity,
        }
    }
}

/// Why a `route` call produced no usable plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFault {
    /// The guest trapped: why, on one line (a panic's message when it left one).
    Trap(String),
    /// The guest ran past its epoch deadline.
    Timeout,
    /// The guest trapped after the host refused to grow its memory past the cap: the cap.
    OutOfMemory {
        /// `[plugins] memory_limit_mb`, in bytes.
        limit_bytes: usize,
    },
    /// The guest returned a plan the host cannot execute.
    BadPlan(String),
}

impl PluginFault {
    /// Whether the instance must be discarded: after a trap its state is unknown.
    pub fn poisons(&self) -> bool {
        !matches!(self, PluginFault::BadPlan(_))
    }
}

impl std::fmt::Display for PluginFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginFault::Trap(m) => write!(f, "trapped: {m}"),
            PluginFault::Timeout => f.write_str("exceeded its time budget"),
            PluginFault::OutOfMemory { limit_bytes } => {
                write!(f, "memory limit of {} MiB reached", limit_bytes >> 20)
            }
            PluginFault::BadPlan(m) => write!(f, "returned an invalid plan: {m}"),
        }
    }
}

type RouteFn = TypedFunc<(i32, i32, i32, i64, i32, i32), i64>;
type OnReplyFn = TypedFunc<(i32, i32, i32, i32), i64>;

/// A live, initialised instance.
pub struct PluginInstance {
    store: Store<HostState>,
    /// Keeps the epoch ticking while a call runs.
    gauge: CallGauge,
    memory: Memory,
    route_fn: RouteFn,
    on_reply_fn: Option<OnReplyFn>,
    key_buf: usize,
    plan_buf: usize,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("node", &self.store.data().node.label)
            .finish_non_exhaustive()
    }
}

impl PluginInstance {
    /// Instantiates `module` for `node` and runs its `init` with the node's config. `seed`
    /// seeds the instance's `random`: `(worker << 32) | instances the worker made before`;
    /// its worker part is also the slot the instance's metrics move.
    pub fn new(
        module: &PluginModule,
        node: Arc<NodeContext>,
        settings: &PluginSettings,
        seed: u64,
    ) -> Result<PluginInstance, PluginError> {
        let err = |message: String| PluginError {
            plugin: format!("{} ({})", node.label, module.name()),
            message,
        };
        let limits = Limits {
            memory_bytes: node
                .budget
                .memory_limit_bytes
                .unwrap_or(settings.memory_limit_bytes),
            refused_growth: false,
        };
        let state = HostState {
            limits,
            node: node.clone(),
            memory: None,
            error_note: None,
            identity: None,
            rng: seed | 1,
            call_budget: None,
            call_cpu_from: None,
            worker: (seed >> 32) as usize,
            share: None,
        };
        let mut store = Store::new(module.pre().module().engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut cx| Ok(on_deadline(cx.data_mut())));
        store.set_epoch_deadline(super::ticks(settings.init_timeout));
        // Instantiation runs the module's start function, then `init`: all under the clock.
        let gauge = module.ticker().gauge();
        let running = gauge.enter();

        let instance = module.pre().instantiate(&mut store).map_err(|e| {
            err(format!(
                "cannot be instantiated: {}",
                describe(&e, store.data_mut())
            ))
        })?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| err("exports no memory".into()))?;
        store.data_mut().memory = Some(memory);

        let call0 = |store: &mut Store<HostState>, name: &str| -> Result<i32, PluginError> {
            instance
                .get_typed_func::<(), i32>(&mut *store, name)
                .map_err(|e| err(format!("`{name}` has the wrong signature: {e}")))?
                .call(&mut *store, ())
                .map_err(|e| {
                    err(format!(
                        "`{name}` failed: {}",
                        describe(&e, store.data_mut())
                    ))
                })
        };
        let version = call0(&mut store, export::ABI_VERSION)?;
        if version as u32 != abi::ABI_VERSION {
            return Err(err(format!(
                "speaks plugin ABI version {version}, this host speaks version {}; rebuild it against a matching switchyard-sdk",
                abi::ABI_VERSION
            )));
        }
        let key_buf = call0(&mut store, export::KEY_BUFFER)? as u32 as usize;
        let plan_buf = call0(&mut store, export::PLAN_BUFFER)? as u32 as usize;
        let mem_len = memory.data_size(&store);
        if key_buf.saturating_add(abi::KEY_CAPACITY) > mem_len
            || plan_buf.saturating_add(abi::PLAN_CAPACITY) > mem_len
        {
            return Err(err("key or plan buffer lies outside its memory".into()));
        }

        let config = node.config_toml.as_bytes();
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, export::ALLOC)
            .map_err(|e| err(format!("`{}` has the wrong signature: {e}", export::ALLOC)))?;
        let len = i32::try_from(config.len()).map_err(|_| err("config too large".into()))?;
        let ptr = alloc.call(&mut store, len).map_err(|e| {
            err(format!(
                "`{}` failed: {}",
                export::ALLOC,
                describe(&e, store.data_mut())
            ))
        })?;
        // 0 is `switchyard_alloc`'s "no room" (ABI.md): never written to.
        if ptr == 0 && !config.is_empty() {
            return Err(err(format!(
                "could not allocate room for its config (`{}` returned 0 for {len} bytes)",
                export::ALLOC
            )));
        }
        memory
            .data_mut(&mut store)
            .get_mut(ptr as u32 as usize..(ptr as u32 as usize).saturating_add(config.len()))
            .ok_or_else(|| err("could not allocate room for its config".into()))?
            .copy_from_slice(config);
        let init = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, export::INIT)
            .map_err(|e| err(format!("`{}` has the wrong signature: {e}", export::INIT)))?;
        let rc = init
            .call(&mut store, (ptr, len))
            .map_err(|e| err(format!("`init` failed: {}", describe(&e, store.data_mut()))))?;
        if rc != 0 {
            let reason = store
                .data_mut()
                .error_note
                .take()
                .unwrap_or_else(|| format!("`init` returned {rc} without a reason"));
            return Err(err(format!("rejected its config: {reason}")));
        }

        let on_reply_fn = match instance.get_func(&mut store, export::ON_REPLY) {
            None => None,
            Some(f) => Some(f.typed(&store).map_err(|e| {
                err(format!(
                    "`{}` has the wrong signature: {e}",
                    export::ON_REPLY
                ))
            })?),
        };
        let route_fn = instance
            .get_typed_func(&mut store, export::ROUTE)
            .map_err(|e| err(format!("`{}` has the wrong signature: {e}", export::ROUTE)))?;
        drop(running);
        store.data_mut().call_budget =
            Some(node.budget.call_timeout.unwrap_or(settings.call_timeout));
        Ok(PluginInstance {
            store,
            gauge,
            memory,
            route_fn,
            on_reply_fn,
            key_buf,
            plan_buf,
        })
    }

    /// Bytes of linear memory the instance has now.
    pub fn memory_size(&self) -> Option<u64> {
        let memory = self.store.data().memory?;
        Some(memory.data_size(&self.store) as u64)
    }

    /// Makes `identity` what `client_identity` answers: a pointer comparison while one
    /// client's requests follow each other, a reference count otherwise.
    fn set_identity(&mut self, identity: Option<&Identity>) {
        hold(&mut self.store.data_mut().identity, identity);
    }

    /// The calls from now on are for a request of the tenant whose slot on this worker of its
    /// share of the node's metrics is `share` (`None`: of no tenant): a pointer comparison
    /// while it is the same tenant's, else a count moved on the slot, which only this worker
    /// touches.
    pub fn serve(&mut self, share: Option<&Arc<MetricValues>>) {
        hold(&mut self.store.data_mut().share, share);
    }

    /// Asks the plugin what to do with one request.
    pub fn route(&mut self, input: &RouteInput<'_>) -> Result<Decision, PluginFault> {
        let key_len = self.write_key(input.key)?;
        self.set_identity(input.identity);
        let _running = self.gauge.enter();
        let word = self
            .route_fn
            .call(
                &mut self.store,
                (
                    input.op as i32,
                    key_len as i32,
                    input.flags as i32,
                    input.exptime,
                    input.value_len as i32,
                    input.listener as i32,
                ),
            )
            .map_err(|e| fault(&e, self.store.data_mut()))?;
        self.decode(word)
    }

    /// Asks the plugin what to make of the reply to a `call` it planned: `status` is what the
    /// called child answered, passed as its ABI code.
    pub fn on_reply(
        &mut self,
        cookie: u32,
        status: ReplyStatus,
        input: &RouteInput<'_>,
    ) -> Result<Decision, PluginFault> {
        let (op, key) = (input.op, input.key);
        let Some(on_reply) = self.on_reply_fn.clone() else {
            return Err(PluginFault::BadPlan(format!(
                "planned a call but does not export `{}`",
                export::ON_REPLY
            )));
        };
        let key_len = self.write_key(key)?;
        self.set_identity(input.identity);
        let _running = self.gauge.enter();
        let word = on_reply
            .call(
                &mut self.store,
                (
                    cookie as i32,
                    status.code() as i32,
                    op as i32,
                    key_len as i32,
                ),
            )
            .map_err(|e| fault(&e, self.store.data_mut()))?;
        self.decode(word)
    }

    /// Copies the key into the guest's key buffer and arms the call's deadline.
    fn write_key(&mut self, key: &[u8]) -> Result<usize, PluginFault> {
        let key_len = key.len();
        if key_len > abi::KEY_CAPACITY {
            return Err(PluginFault::BadPlan(format!(
                "key of {key_len} bytes exceeds the ABI key capacity"
            )));
        }
        let dst = self
            .memory
            .data_mut(&mut self.store)
            .get_mut(self.key_buf..self.key_buf + key_len)
            .ok_or_else(|| PluginFault::Trap("key buffer lies outside memory".into()))?;
        dst.copy_from_slice(key);
        let state = self.store.data_mut();
        state.limits.refused_growth = false;
        state.error_note = None;
        state.call_cpu_from = None;
        // The next tick starts the CPU clock of a call still running then (`on_deadline`).
        self.store.set_epoch_deadline(1);
        Ok(key_len)
    }

    fn decode(&self, word: i64) -> Result<Decision, PluginFault> {
        plan::decode(
            word as u64,
            self.memory.data(&self.store),
            self.plan_buf,
            self.store.data().node.children.len(),
        )
        .map_err(PluginFault::BadPlan)
    }
}

fn fault(e: &wasmtime::Error, state: &mut HostState) -> PluginFault {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PluginFault::Timeout,
        _ if state.limits.refused_growth => PluginFault::OutOfMemory {
            limit_bytes: state.limits.memory_bytes,
        },
        _ => PluginFault::Trap(describe(e, state)),
    }
}

/// A failed call's description, on one line: the guest's own note (a panic's message) when it
/// left one, the memory cap when a refused growth led to the trap, else the trap or error
/// itself (its first line: wasmtime appends a backtrace).
fn describe(e: &wasmtime::Error, state: &mut HostState) -> String {
    let what = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => return "exceeded its time budget".into(),
        _ if state.limits.refused_growth => {
            return format!(
                "memory limit of {} MiB reached",
                state.limits.memory_bytes >> 20
            );
        }
        Some(t) => t.to_string(),
        None => e.to_string(),
    };
    let what = one_line(&what);
    match state.error_note.take() {
        Some(note) => format!("{} ({what})", one_line(&note)),
        None => what,
    }
}

/// `text` on one line: line breaks become `; `, and at most 300 characters are kept.
pub(super) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(300));
    for (i, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(line);
    }
    if out.chars().count() > 300 {
        out = out.chars().take(297).collect::<String>() + "...";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plugin whose `switchyard_alloc` always answers 0, "no room".
    const NO_ROOM: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "switchyard_abi_version") (result i32) i32.const 1)
  (func (export "switchyard_key_buffer") (result i32) i32.const 1024)
  (func (export "switchyard_plan_buffer") (result i32) i32.const 4096)
  (func (export "switchyard_alloc") (param i32) (result i32) i32.const 0)
  (func (export "switchyard_init") (param i32 i32) (result i32) i32.const 0)
  (func (export "switchyard_route") (param i32 i32 i32 i64 i32 i32) (result i64) i64.const 1))"#;

    #[test]
    fn a_config_the_plugin_has_no_room_for_is_never_written_at_0() {
        let engine = crate::plugin::PluginEngine::new().expect("engine");
        let wasm = wat::parse_str(NO_ROOM).expect("WAT");
        let module = PluginModule::compile(&engine, "no-room", &wasm).expect("compiles");
        let node = |config: &str| {
            Arc::new(NodeContext {
                label: "routes.r".into(),
                children: vec![],
                config_toml: config.into(),
                health: vec![],
                log_budget: Default::default(),
                log_level: abi::log_level::DEBUG,
                module: "no-room".into(),
                metrics: crate::plugin::PluginMetrics::new(1),
                budget: Default::default(),
                tenant: None,
                file_tenant: None,
            })
        };
        let settings = crate::plugin::cli::default_settings();
        let err = PluginInstance::new(&module, node("a = 1\n"), &settings, 1)
            .expect_err("no room for the config");
        assert!(
            err.message.contains(
                "could not allocate room for its config (`switchyard_alloc` returned 0 for 6 bytes)"
            ),
            "{}",
            err.message
        );
        // An empty config needs no room.
        assert!(PluginInstance::new(&module, node(""), &settings, 1).is_ok());
    }

    #[test]
    fn a_panic_message_reads_on_one_line() {
        assert_eq!(
            one_line("plugin panicked: panicked at src/lib.rs:5:9:\nindex out of bounds\n"),
            "plugin panicked: panicked at src/lib.rs:5:9:; index out of bounds"
        );
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), 300);
    }
}
