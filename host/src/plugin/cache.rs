//! Compiled modules by content: a reload recompiles only the plugins whose bytes changed.
//!
//! Entries are weak: a module lives as long as some generation uses it, and the cache never
//! keeps one alive by itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::{PluginEngine, PluginError, PluginModule};

/// The key of a module: the MD5 of its bytes (collisions would need a deliberate attack by
/// someone who can already write the router's plugin files).
type Digest = [u8; 16];

/// Compiled modules shared across generations. Locked only while a generation is built, never
/// on the request path.
#[derive(Debug, Default)]
pub struct ModuleCache {
    modules: Mutex<HashMap<Digest, Weak<PluginModule>>>,
}

impl ModuleCache {
    /// The compiled module for `wasm`: from the cache if the same bytes were compiled before and
    /// are still in use, else compiled now (and remembered).
    pub fn get_or_compile(
        &self,
        engine: &PluginEngine,
        name: &str,
        wasm: &[u8],
    ) -> Result<Arc<PluginModule>, PluginError> {
        let digest = switchyard_sdk::hash::md5(wasm);
        if let Some(module) = self.lock().get(&digest).and_then(Weak::upgrade) {
            return Ok(module);
        }
        let module = Arc::new(PluginModule::compile(engine, name, wasm)?);
        let mut modules = self.lock();
        modules.retain(|_, m| m.strong_count() > 0);
        modules.insert(digest, Arc::downgrade(&module));
        Ok(module)
    }

    /// Modules compiled and still in use.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|m| m.strong_count() > 0)
            .count()
    }

    /// Whether no compiled module is in use.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Weak<PluginModule>>> {
        // A panic while holding this lock leaves a map of weak pointers: still consistent.
        self.modules.lock().unwrap_or_else(|e| e.into_inner())
    }
}
