//! The wasm32 glue: the `switchyard` imports and the statics the host reads and writes.
//!
//! This is the only module of the SDK with `unsafe` code, allowed here alone: calling imports,
//! and declaring that the statics may be shared, which holds because wasm32-unknown-unknown
//! without the `atomics` feature runs one thread. Everything else in the SDK is safe.
#![allow(unsafe_code)]

use std::cell::{Ref, RefCell, RefMut};

use crate::abi::{KEY_CAPACITY, PLAN_CAPACITY};

#[cfg(target_feature = "atomics")]
compile_error!("Switchyard plugins are single-threaded: build them without the `atomics` feature");

mod ffi {
    #[link(wasm_import_module = "switchyard")]
    unsafe extern "C" {
        pub fn hash(alg: i32, ptr: *const u8, len: i32) -> i32;
        pub fn md5(ptr: *const u8, len: i32, out: *mut u8);
        pub fn child_count() -> i32;
        pub fn child_name(idx: i32, out: *mut u8, cap: i32) -> i32;
        pub fn child_weight(idx: i32) -> i32;
        pub fn child_healthy(idx: i32) -> i32;
        pub fn random() -> i64;
        pub fn now_ms() -> i64;
        pub fn log(level: i32, ptr: *const u8, len: i32);
        pub fn set_error(ptr: *const u8, len: i32);
        pub fn client_identity(out: *mut u8, cap: i32) -> i32;
        pub fn metric_define(kind: i32, ptr: *const u8, len: i32) -> i32;
        pub fn counter_add(id: i32, delta: i64);
        pub fn histogram_record(id: i32, value: i64);
    }
}

/// A `RefCell` usable in a `static`. The host reads and writes the memory behind
/// [`GuestCell::as_ptr`] only between calls into the plugin, when no borrow is alive.
pub(crate) struct GuestCell<T>(RefCell<T>);

// SAFETY: a wasm32 plugin without the `atomics` feature (refused above) has exactly one thread,
// so a `GuestCell` is never accessed from two threads.
unsafe impl<T> Sync for GuestCell<T> {}

impl<T> GuestCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(RefCell::new(value))
    }

    pub(crate) fn borrow(&self) -> Ref<'_, T> {
        self.0.borrow()
    }

    pub(crate) fn borrow_mut(&self) -> RefMut<'_, T> {
        self.0.borrow_mut()
    }

    /// The address of the contents, for the host.
    pub(crate) fn address(&self) -> i32 {
        self.0.as_ptr() as usize as i32
    }
}

static KEY: GuestCell<[u8; KEY_CAPACITY]> = GuestCell::new([0; KEY_CAPACITY]);
static PLAN: GuestCell<[u8; PLAN_CAPACITY]> = GuestCell::new([0; PLAN_CAPACITY]);
static CONFIG: GuestCell<Vec<u8>> = GuestCell::new(Vec::new());

pub(crate) fn key_buffer() -> i32 {
    KEY.address()
}

pub(crate) fn plan_buffer() -> i32 {
    PLAN.address()
}

/// Runs `f` on the first `len` bytes of the key buffer.
pub(crate) fn with_key<R>(len: usize, f: impl FnOnce(&[u8]) -> R) -> R {
    let key = KEY.borrow();
    f(&key[..len])
}

/// Runs `f` on the plan buffer.
pub(crate) fn with_plan_buffer<R>(f: impl FnOnce(&mut [u8; PLAN_CAPACITY]) -> R) -> R {
    f(&mut PLAN.borrow_mut())
}

/// `switchyard_alloc`: a zeroed buffer of `len` bytes for the configuration, replacing any
/// earlier one; 0 if it cannot be allocated.
pub(crate) fn alloc_config(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    let mut buffer = Vec::new();
    if buffer.try_reserve_exact(len).is_err() {
        return 0;
    }
    buffer.resize(len, 0);
    let address = buffer.as_ptr() as usize as i32;
    *CONFIG.borrow_mut() = buffer;
    address
}

/// Takes the configuration the host wrote at `ptr` (which must be the buffer of
/// [`alloc_config`]), freeing the buffer.
pub(crate) fn take_config(ptr: i32, len: i32) -> Result<Vec<u8>, String> {
    let mut buffer = std::mem::take(&mut *CONFIG.borrow_mut());
    let len = usize::try_from(len).map_err(|_| format!("negative config length {len}"))?;
    if len == 0 {
        return Ok(Vec::new());
    }
    if ptr != buffer.as_ptr() as usize as i32 || len > buffer.len() {
        return Err(format!(
            "config ({len} bytes at {ptr:#x}) is not in the buffer from switchyard_alloc"
        ));
    }
    buffer.truncate(len);
    Ok(buffer)
}

fn len_i32(bytes: &[u8]) -> i32 {
    bytes.len() as i32
}

pub(crate) fn hash(alg: u32, bytes: &[u8]) -> u32 {
    // SAFETY: the pointer and length describe a live slice of this module's memory.
    unsafe { ffi::hash(alg as i32, bytes.as_ptr(), len_i32(bytes)) as u32 }
}

pub(crate) fn md5(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    // SAFETY: the input is a live slice; `out` is 16 writable bytes, as the import writes.
    unsafe { ffi::md5(bytes.as_ptr(), len_i32(bytes), out.as_mut_ptr()) };
    out
}

pub(crate) fn child_count() -> u32 {
    // SAFETY: no arguments.
    unsafe { ffi::child_count() as u32 }
}

pub(crate) fn child_name(idx: u32) -> String {
    let mut name = vec![0u8; 64];
    loop {
        // SAFETY: `name` is `name.len()` writable bytes; the import writes at most that many.
        let full =
            unsafe { ffi::child_name(idx as i32, name.as_mut_ptr(), len_i32(&name)) } as usize;
        if full <= name.len() {
            name.truncate(full);
            return String::from_utf8_lossy(&name).into_owned();
        }
        name.resize(full, 0);
    }
}

pub(crate) fn child_weight(idx: u32) -> u32 {
    // SAFETY: plain integer call.
    unsafe { ffi::child_weight(idx as i32) as u32 }
}

pub(crate) fn child_healthy(idx: u32) -> bool {
    // SAFETY: plain integer call.
    unsafe { ffi::child_healthy(idx as i32) != 0 }
}

pub(crate) fn random() -> u64 {
    // SAFETY: no arguments.
    unsafe { ffi::random() as u64 }
}

pub(crate) fn now_ms() -> u64 {
    // SAFETY: no arguments.
    unsafe { ffi::now_ms() as u64 }
}

pub(crate) fn log(level: u32, message: &str) {
    // SAFETY: the pointer and length describe a live UTF-8 slice.
    unsafe { ffi::log(level as i32, message.as_ptr(), len_i32(message.as_bytes())) }
}

pub(crate) fn client_identity() -> Option<String> {
    let mut name = vec![0u8; 64];
    loop {
        // SAFETY: `name` is `name.len()` writable bytes; the import writes at most that many.
        let full = unsafe { ffi::client_identity(name.as_mut_ptr(), len_i32(&name)) };
        let full = usize::try_from(full).ok()?;
        if full <= name.len() {
            name.truncate(full);
            return Some(String::from_utf8_lossy(&name).into_owned());
        }
        name.resize(full, 0);
    }
}

pub(crate) fn set_error(message: &str) {
    // SAFETY: the pointer and length describe a live UTF-8 slice.
    unsafe { ffi::set_error(message.as_ptr(), len_i32(message.as_bytes())) }
}

pub(crate) fn metric_define(kind: u32, name: &str) -> i32 {
    // SAFETY: the pointer and length describe a live UTF-8 slice.
    unsafe { ffi::metric_define(kind as i32, name.as_ptr(), len_i32(name.as_bytes())) }
}

pub(crate) fn counter_add(id: u32, delta: u64) {
    // SAFETY: plain integer call.
    unsafe { ffi::counter_add(id as i32, delta as i64) }
}

pub(crate) fn histogram_record(id: u32, value: u64) {
    // SAFETY: plain integer call.
    unsafe { ffi::histogram_record(id as i32, value as i64) }
}
