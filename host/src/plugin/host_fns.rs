//! The host module a plugin may import (`switchyard`), one function per ABI import.
//!
//! Every pointer is checked against the guest's memory; a bad one traps the call, which fails
//! only the request being routed.

use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_sdk::{abi, hash};

use wasmtime::{Caller, Linker, format_err};

use super::instance::HostState;

/// Names of the functions in [`define`], for load-time messages.
pub const NAMES: [&str; 14] = abi::import::ALL;

type HostResult<T> = wasmtime::Result<T>;

fn range(ptr: i32, len: i32) -> std::ops::Range<usize> {
    let start = ptr as u32 as usize;
    start..start.saturating_add(len as u32 as usize)
}

fn guest_bytes<'a>(caller: &'a Caller<'_, HostState>, ptr: i32, len: i32) -> HostResult<&'a [u8]> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| format_err!("guest memory is not available yet"))?;
    memory
        .data(caller)
        .get(range(ptr, len))
        .ok_or_else(|| format_err!("pointer {ptr} + {len} is outside guest memory"))
}

fn write_guest(caller: &mut Caller<'_, HostState>, ptr: i32, bytes: &[u8]) -> HostResult<()> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| format_err!("guest memory is not available yet"))?;
    let len = i32::try_from(bytes.len()).map_err(|_| format_err!("write too large"))?;
    memory
        .data_mut(caller)
        .get_mut(range(ptr, len))
        .ok_or_else(|| format_err!("pointer {ptr} + {len} is outside guest memory"))?
        .copy_from_slice(bytes);
    Ok(())
}

fn child(caller: &Caller<'_, HostState>, idx: i32) -> HostResult<usize> {
    let idx = idx as u32 as usize;
    if idx < caller.data().node.children.len() {
        Ok(idx)
    } else {
        Err(format_err!("child index {idx} out of range"))
    }
}

/// Lines a plugin node may log per [`LOG_WINDOW`]; past it its `log` calls are counted, not
/// written, and the first line of the next window says how many were dropped (`suppressed`).
pub const LOG_LINES_PER_WINDOW: u64 = 20;
/// The window of [`LOG_LINES_PER_WINDOW`].
pub const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// One node's log budget, shared by its instances on every worker; lock-free.
#[derive(Debug, Default)]
pub struct LogBudget {
    /// Start of the current window, in [`log_clock_ms`] milliseconds.
    window_start: AtomicU64,
    /// Lines admitted in the current window.
    lines: AtomicU64,
    /// Lines dropped since the last one written.
    suppressed: AtomicU64,
}

impl LogBudget {
    /// Whether a line at `now_ms` is written: `Some(lines dropped before it)`, or `None` when
    /// the window's budget is spent (the line is counted as dropped).
    pub fn admit(&self, now_ms: u64) -> Option<u64> {
        let start = self.window_start.load(Ordering::Relaxed);
        if now_ms.saturating_sub(start) >= LOG_WINDOW.as_millis() as u64
            && self
                .window_start
                .compare_exchange(start, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.lines.store(0, Ordering::Relaxed);
        }
        if self.lines.fetch_add(1, Ordering::Relaxed) < LOG_LINES_PER_WINDOW {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Milliseconds on a monotonic clock, for [`LogBudget`] (never 0 after the first call's
/// instant passes, so a new budget's first window starts at once).
fn log_clock_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(|| std::time::Instant::now() - LOG_WINDOW);
    start.elapsed().as_millis() as u64
}

/// Adds every host function to `linker`.
pub fn define(linker: &mut Linker<HostState>) -> HostResult<()> {
    let m = abi::HOST_MODULE;
    linker.func_wrap(
        m,
        abi::import::HASH,
        |caller: Caller<'_, HostState>, alg: i32, ptr: i32, len: i32| {
            let bytes = guest_bytes(&caller, ptr, len)?;
            hash::hash(alg as u32, bytes)
                .map(|h| h as i32)
                .ok_or_else(|| format_err!("unknown hash algorithm {alg}"))
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::MD5,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32, out: i32| {
            let digest = hash::md5(guest_bytes(&caller, ptr, len)?);
            write_guest(&mut caller, out, &digest)
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::CHILD_COUNT,
        |caller: Caller<'_, HostState>| caller.data().node.children.len() as i32,
    )?;
    linker.func_wrap(
        m,
        abi::import::CHILD_NAME,
        |mut caller: Caller<'_, HostState>, idx: i32, out: i32, cap: i32| {
            let idx = child(&caller, idx)?;
            let node = caller.data().node.clone();
            let name = node.children[idx].name.as_bytes();
            let n = name.len().min(cap.max(0) as usize);
            write_guest(&mut caller, out, &name[..n])?;
            Ok(name.len() as i32)
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::CHILD_WEIGHT,
        |caller: Caller<'_, HostState>, idx: i32| {
            let idx = child(&caller, idx)?;
            Ok(caller.data().node.children[idx].weight as i32)
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::CHILD_HEALTHY,
        |caller: Caller<'_, HostState>, idx: i32| {
            let idx = child(&caller, idx)?;
            Ok(i32::from(caller.data().healthy(idx)))
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::RANDOM,
        |mut caller: Caller<'_, HostState>| caller.data_mut().next_random() as i64,
    )?;
    linker.func_wrap(m, abi::import::NOW_MS, |_: Caller<'_, HostState>| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    })?;
    linker.func_wrap(
        m,
        abi::import::LOG,
        |caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            let node = &caller.data().node;
            // A level the node's `log_level` leaves out is dropped first; the rest is checked
            // before the message is even read: a chatty plugin costs a counter.
            if level as u32 > node.log_level {
                return Ok(());
            }
            let Some(suppressed) = node.log_budget.admit(log_clock_ms()) else {
                return Ok(());
            };
            let bytes = guest_bytes(&caller, ptr, len)?;
            let msg = super::instance::one_line(&String::from_utf8_lossy(bytes));
            let (plugin, module) = (&node.label, &node.module);
            let tenant = node.tenant.as_deref().unwrap_or("-");
            match level {
                1 => {
                    tracing::error!(plugin = %plugin, module = %module, tenant, suppressed, "{msg}")
                }
                2 => {
                    tracing::warn!(plugin = %plugin, module = %module, tenant, suppressed, "{msg}")
                }
                3 => {
                    tracing::info!(plugin = %plugin, module = %module, tenant, suppressed, "{msg}")
                }
                _ => {
                    tracing::debug!(plugin = %plugin, module = %module, tenant, suppressed, "{msg}")
                }
            }
            Ok(())
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::SET_ERROR,
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            let msg = String::from_utf8_lossy(guest_bytes(&caller, ptr, len)?).into_owned();
            caller.data_mut().error_note = Some(msg);
            Ok(())
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::CLIENT_IDENTITY,
        |mut caller: Caller<'_, HostState>, out: i32, cap: i32| {
            let Some(identity) = caller.data().identity.clone() else {
                return Ok(-1);
            };
            let n = identity.len().min(cap.max(0) as usize);
            write_guest(&mut caller, out, &identity.as_bytes()[..n])?;
            Ok(identity.len() as i32)
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::METRIC_DEFINE,
        |caller: Caller<'_, HostState>, kind: i32, ptr: i32, len: i32| {
            let state = caller.data();
            if !state.in_init() {
                return Ok(abi::metric_define::NOT_IN_INIT);
            }
            if len as u32 as usize > abi::metric_define::MAX_NAME_BYTES {
                return Ok(abi::metric_define::BAD_NAME);
            }
            let name = guest_bytes(&caller, ptr, len)?;
            Ok(caller.data().node.metrics.define(kind as u32, name))
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::COUNTER_ADD,
        |caller: Caller<'_, HostState>, id: i32, delta: i64| {
            let state = caller.data();
            let share = state.share.as_deref();
            state
                .node
                .metrics
                .add(state.worker, share, id as u32, delta as u64)
                .map_err(|_| format_err!("counter_add({id}): the plugin defined no such counter"))
        },
    )?;
    linker.func_wrap(
        m,
        abi::import::HISTOGRAM_RECORD,
        |caller: Caller<'_, HostState>, id: i32, value: i64| {
            let state = caller.data();
            let share = state.share.as_deref();
            state
                .node
                .metrics
                .record(state.worker, share, id as u32, value as u64)
                .map_err(|_| {
                    format_err!("histogram_record({id}): the plugin defined no such histogram")
                })
        },
    )?;
    Ok(())
}
