//! Compiling a plugin and vetting what it imports and exports, once per generation.

use switchyard_sdk::abi::{self, export};
use wasmtime::{ExternType, InstancePre, Linker, Module};

use super::instance::HostState;
use super::{PluginEngine, PluginError};

/// A compiled, vetted plugin: ready to be instantiated on any worker.
pub struct PluginModule {
    name: String,
    /// `sha256:<hex>` of its bytes: which build a node runs (`stats plugins`, the start log),
    /// and what a config's `sha256` pins.
    hash: String,
    pre: InstancePre<HostState>,
    ticker: super::epoch::TickerHandle,
}

impl std::fmt::Debug for PluginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginModule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Functions every plugin must export, besides `memory`.
const REQUIRED_EXPORTS: [&str; 6] = [
    export::ABI_VERSION,
    export::KEY_BUFFER,
    export::PLAN_BUFFER,
    export::ALLOC,
    export::INIT,
    export::ROUTE,
];

impl PluginModule {
    /// Compiles `wasm` and checks it against the ABI: imports only from the host module and only
    /// the functions it offers, and exports everything the host calls.
    pub fn compile(
        engine: &PluginEngine,
        name: &str,
        wasm: &[u8],
    ) -> Result<PluginModule, PluginError> {
        let err = |message: String| PluginError {
            plugin: name.to_string(),
            message,
        };
        if !wasm.starts_with(b"\0asm") {
            return Err(err("not a WebAssembly module (no `\\0asm` header)".into()));
        }
        let module = Module::new(engine.engine(), wasm)
            .map_err(|e| err(format!("does not compile: {e}")))?;

        for import in module.imports() {
            let what = format!("`{}::{}`", import.module(), import.name());
            if import.module() != abi::HOST_MODULE {
                return Err(err(format!(
                    "imports {what}, but plugins may import only from `{}` (no WASI, no other host modules)",
                    abi::HOST_MODULE
                )));
            }
            if !matches!(import.ty(), ExternType::Func(_)) {
                return Err(err(format!("imports {what}, which is not a function")));
            }
            if !super::host_fns::NAMES.contains(&import.name()) {
                return Err(err(format!(
                    "imports {what}, which the host does not provide (it provides: {})",
                    super::host_fns::NAMES.join(", ")
                )));
            }
        }
        let has_export = |n: &str| module.exports().any(|e| e.name() == n);
        if !module
            .exports()
            .any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(_)))
        {
            return Err(err("does not export its `memory`".into()));
        }
        if let Some(missing) = REQUIRED_EXPORTS.iter().find(|n| !has_export(n)) {
            return Err(err(format!(
                "does not export `{missing}`; is it built with switchyard-sdk's export_policy! macro?"
            )));
        }

        let mut linker = Linker::new(engine.engine());
        super::host_fns::define(&mut linker)
            .map_err(|e| err(format!("linking host functions: {e}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| err(format!("cannot be linked: {e}")))?;
        let hash = format!("sha256:{}", sha256_hex(wasm));
        Ok(PluginModule {
            name: name.to_string(),
            hash,
            pre,
            ticker: engine.ticker(),
        })
    }

    /// The plugin's name (bundled) or path (file), for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sha256:<hex>` of the module's bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether the module's bytes have the SHA-256 `pin` (64 lowercase hex digits).
    pub fn matches(&self, pin: &str) -> bool {
        self.hash.strip_prefix("sha256:") == Some(pin)
    }

    pub(crate) fn pre(&self) -> &InstancePre<HostState> {
        &self.pre
    }

    /// The engine's epoch ticker, which every call into an instance must keep awake.
    pub(crate) fn ticker(&self) -> &super::epoch::TickerHandle {
        &self.ticker
    }
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_is_the_standard_one() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
