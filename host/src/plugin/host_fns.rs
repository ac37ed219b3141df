//! The host module a plugin may import (`switchyard`), one function per ABI import.
//!
//! Every pointer is checked against the guest's memory; a bad one traps the call, which fails
//! only the request being routed.

use switchyard_sdk::{abi, hash};
use wasmtime::{Caller, Linker, format_err};

use super::instance::HostState;

/// Names of the functions in [`define`], for load-time messages.
pub const NAMES: [&str; 11] = abi::import::ALL;

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
            let bytes = guest_bytes(&caller, ptr, len)?;
            let msg = super::instance::one_line(&String::from_utf8_lossy(bytes));
            let plugin = &caller.data().node.label;
            match level {
                1 => tracing::error!(plugin = %plugin, "{msg}"),
                2 => tracing::warn!(plugin = %plugin, "{msg}"),
                3 => tracing::info!(plugin = %plugin, "{msg}"),
                _ => tracing::debug!(plugin = %plugin, "{msg}"),
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
    Ok(())
}
