//! A plugin written outside this repository, as a new author would: `switchyard plugin new`
//! makes the crate, its own `cargo test` runs the policy against the SDK's harness, `switchyard
//! plugin build` builds and vets the module, and a router runs it in front of real memcached.
//!
//! Cargo runs offline here: every crate the new plugin needs is already in the local registry
//! cache (the workspace uses the same ones), so the test needs no network.

use std::path::Path;
use std::process::{Command, Output};

use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, TestDir, switchyard_binary};

/// Runs `command` in `dir` with cargo offline and the crate's target directory inside `dir`.
fn run(dir: &Path, command: &mut Command) -> Output {
    let output = command
        .current_dir(dir)
        .env("CARGO_NET_OFFLINE", "true")
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_plugin_made_with_plugin_new_tests_builds_and_routes_real_traffic() {
    let _heavy = switchyard_tests::heavy();
    let dir = TestDir::new("plugin-new");
    run(
        dir.path(),
        Command::new(switchyard_binary()).args([
            "plugin",
            "new",
            "by-prefix",
            "--template",
            "prefix",
        ]),
    );
    let crate_dir = dir.path().join("by-prefix");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "example.toml",
        "rust-toolchain.toml",
    ] {
        assert!(crate_dir.join(file).is_file(), "plugin new wrote no {file}");
    }
    // A second `new` into the same directory is refused, not a merge.
    let again = Command::new(switchyard_binary())
        .args(["plugin", "new", "by-prefix"])
        .current_dir(dir.path())
        .output()
        .expect("run switchyard plugin new");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tested = run(&crate_dir, Command::new(&cargo).arg("test"));
    let tested = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(tested.contains("test result: ok. 1 passed"), "{tested}");

    let built = run(
        &crate_dir,
        Command::new(switchyard_binary()).args(["plugin", "build"]),
    );
    let report = String::from_utf8_lossy(&built.stdout).into_owned();
    assert!(report.contains("init     ok"), "{report}");
    let sha256 = report
        .lines()
        .find_map(|l| l.strip_prefix("sha256   "))
        .unwrap_or_else(|| panic!("no sha256 in {report}"))
        .to_string();
    let wasm = crate_dir.join("target/wasm32-unknown-unknown/release/by_prefix.wasm");
    assert!(wasm.is_file(), "{report}");

    // The example config's route, pinned, over two real servers.
    let (users, rest) = (Memcached::start(), Memcached::start());
    let port = switchyard_tests::ports::free_port();
    let config = format!(
        "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\n\
         route = \"split\"\n\n[routes.split]\nplugin = {:?}\nsha256 = \"{sha256}\"\n\
         children = [\"users\", \"rest\"]\n\
         config = {{ prefixes = {{ \"user:\" = \"users\" }}, default = \"rest\" }}\n\n\
         [pools.users]\nservers = [\"{}\"]\n\n[pools.rest]\nservers = [\"{}\"]\n",
        wasm.display().to_string(),
        users.spec(),
        rest.spec()
    );
    let router = RouterProcess::start_listening("plugin-new", &config, &[port], &[]);
    let mut client = Client::connect(router.addr());
    client.set("user:1", b"u");
    client.set("other", b"o");
    assert_eq!(client.get("user:1").as_deref(), Some(&b"u"[..]));
    assert_eq!(client.get("other").as_deref(), Some(&b"o"[..]));
    assert_eq!(users.client().get("user:1").as_deref(), Some(&b"u"[..]));
    assert_eq!(users.client().get("other"), None);
    assert_eq!(rest.client().get("other").as_deref(), Some(&b"o"[..]));
}
