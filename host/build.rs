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

    if let Some(missing) = missing_target() {
        // `cargo::error` is printed as one `error:` line and fails the build without the
        // nested build's pages of "can't find crate for `core`".
        println!("cargo::error={missing}");
        return;
    }

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
        println!(
            "cargo::error=building the bundled plugins to {TARGET} failed ({status}); the errors are above"
        );
        return;
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

/// Why the plugins cannot be built for [`TARGET`], when its standard library is not installed
/// for the compiler this build uses: one sentence naming the command that adds it.
fn missing_target() -> Option<String> {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|dir| dir.is_dir()) {
        return None;
    }
    // rustup names the toolchain it chose for this build (rust-toolchain.toml's channel),
    // with the host triple, which `rustup target add --toolchain` does not need.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").map_or_else(
        |_| String::new(),
        |t| {
            let host = env::var("HOST").unwrap_or_default();
            let t = t.strip_suffix(&format!("-{host}")).unwrap_or(&t);
            format!(" --toolchain {t}")
        },
    );
    Some(format!(
        "the {TARGET} target, which the bundled plugins are built for, is not installed: run `rustup target add{toolchain} {TARGET}` (or scripts/setup, which installs everything the build and tests need)"
    ))
}

fn path_str(p: &Path) -> String {
    p.to_str()
        .expect("target directory path is UTF-8")
        .to_string()
}
