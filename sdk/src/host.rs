//! Safe wrappers, one per host import.
//!
//! In a wasm plugin these call the `switchyard` imports (see `sys.rs`, the SDK's only unsafe
//! code). Natively they run against the fake host of [`crate::testing::Harness`]: [`hash`] and
//! [`md5()`] work anywhere, the others panic outside a harness call.

use crate::abi::log_level;
use crate::hash::HashAlgorithm;
use crate::plan::Child;

#[cfg(target_arch = "wasm32")]
use crate::sys as backend;
#[cfg(not(target_arch = "wasm32"))]
use crate::testing::fake_host as backend;

/// Severity of a [`log`] message.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Worth knowing.
    Info,
    /// Detail for debugging.
    Debug,
}

impl Level {
    /// The ABI code ([`crate::abi::log_level`]).
    pub const fn code(self) -> u32 {
        match self {
            Self::Error => log_level::ERROR,
            Self::Warn => log_level::WARN,
            Self::Info => log_level::INFO,
            Self::Debug => log_level::DEBUG,
        }
    }

    /// Its name in configs (`[routes.NAME] log_level`): `error`, `warn`, `info`, `debug`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }

    /// The level with this name ([`Level::name`]), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Error, Self::Warn, Self::Info, Self::Debug]
            .into_iter()
            .find(|level| level.name() == name)
    }

    /// The level with this ABI code, if any.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            log_level::ERROR => Some(Self::Error),
            log_level::WARN => Some(Self::Warn),
            log_level::INFO => Some(Self::Info),
            log_level::DEBUG => Some(Self::Debug),
            _ => None,
        }
    }
}

/// Hashes `bytes` with the host's native implementation of `alg`.
pub fn hash(alg: HashAlgorithm, bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "wasm32")]
    return backend::hash(alg.code(), bytes);
    #[cfg(not(target_arch = "wasm32"))]
    return alg.hash(bytes);
}

/// The MD5 digest of `bytes`, computed by the host.
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    #[cfg(target_arch = "wasm32")]
    return backend::md5(bytes);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::hash::md5(bytes);
}

/// Does the host currently consider `child` usable (not marked down)?
///
/// A child index out of range traps.
pub fn child_healthy(child: Child) -> bool {
    backend::child_healthy(child.0)
}

/// 64 random bits from the host's per-instance generator.
pub fn random() -> u64 {
    backend::random()
}

/// Wall-clock time, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    backend::now_ms()
}

/// Who the requesting client is: the identity its TLS client certificate gave its connection
/// (the subject CN, else the first URI SAN such as a SPIFFE ID, else the first DNS SAN), or
/// `None` for a client without one (a plaintext listener, TLS without a client certificate).
/// Meaningful during `route` and `on_reply`; `None` during `init`.
pub fn client_identity() -> Option<String> {
    backend::client_identity()
}

/// Logs a message through the host's logger.
pub fn log(level: Level, message: &str) {
    backend::log(level.code(), message);
}

/// Number of children of this node.
pub(crate) fn child_count() -> u32 {
    backend::child_count()
}

/// The name of child `idx`.
pub(crate) fn child_name(idx: u32) -> String {
    backend::child_name(idx)
}

/// The weight of child `idx`.
pub(crate) fn child_weight(idx: u32) -> u32 {
    backend::child_weight(idx)
}
