//! Builds every crate under `plugins/` to `wasm32-unknown-unknown` and embeds the results, so
//! that `cargo build` yields one binary that already carries its bundled plugins.
//!
//! The plugins are compiled by a nested `cargo build` with its own target directory (the outer
//! build holds the lock on its own), in the `plugin` profile of the workspace manifest.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives inside the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    let plugins_dir = root.join("plugins");
    for watched in [
        &plugins_dir,
        &root.join("sdk"),
        &root.join("Cargo.toml"),
        &root.join("Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", watched.display());
    }

    let mut plugins: Vec<String> = std::fs::read_dir(&plugins_dir)
        .expect("plugins/ is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    plugins.sort();

    // <target>/<profile>/build/switchyard-<hash>/out → <target>/plugin-wasm, shared by profiles.
    let wasm_target_dir = out_dir
        .ancestors()
        .nth(4)
        .map_or_else(|| out_dir.join("plugin-wasm"), |t| t.join("plugin-wasm"));

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&wasm_target_dir);
    for p in &plugins {
        cmd.args(["-p", &format!("switchyard-plugin-{p}")]);
    }
    // Flags meant for the host build (coverage, sanitizers, clippy's wrapper) must not leak
    // into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("can run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the bundled plugins to wasm failed ({status}); is the {TARGET} target installed? (`rustup target add {TARGET}`)"
        );
    }

    let mut listing = String::from(
        "/// Bundled plugins: (name, wasm bytes), sorted by name.\npub(crate) static BUNDLED: &[(&str, &[u8])] = &[\n",
    );
    for p in &plugins {
        let wasm = wasm_target_dir
            .join(TARGET)
            .join(PROFILE)
            .join(format!("switchyard_plugin_{}.wasm", p.replace('-', "_")));
        assert!(
            wasm.is_file(),
            "expected {} after the build",
            wasm.display()
        );
        writeln!(
            listing,
            "    ({p:?}, include_bytes!({:?})),",
            path_str(&wasm)
        )
        .expect("write to String");
    }
    listing.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), listing).expect("OUT_DIR is writable");
}

fn path_str(p: &Path) -> String {
    p.to_str()
        .expect("target directory path is UTF-8")
        .to_string()
}
