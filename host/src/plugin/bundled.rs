//! Plugins compiled into the binary: `build.rs` builds every crate under `plugins/` to wasm
//! and lists the results here, so a config can say `plugin = "ketama"`.

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// The wasm bytes of a bundled plugin.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUNDLED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, wasm)| *wasm)
}

/// Names of every bundled plugin, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUNDLED.iter().map(|(n, _)| *n)
}
