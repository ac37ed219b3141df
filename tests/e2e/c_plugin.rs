//! A plugin written in C: `examples/c-modula`, built with clang against `sdk/switchyard.h`
//! alone. Its header's plan encoders match the Rust SDK's golden plans (`make test`), the
//! module imports from the host only, and a router running it in front of real memcached puts
//! each key on server `crc32(key) % 3`, moves the keys of a server that is down to the next one
//! up, answers `SERVER_ERROR no server up` when none is, and refuses a config it does not take.
//!
//! clang and wasm-ld are needed (`scripts/setup` installs them): without them these tests fail,
//! saying so, rather than skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use switchyard_tests::ports::poll_until;
use switchyard_tests::{
    Client, Config, Memcached, Router, TestDir, connect, error_chain, locate, router,
    single_pool_config, specs, store_all, switchyard_binary,
};

/// The example's directory.
fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/c-modula")
        .canonicalize()
        .expect("examples/c-modula exists")
}

/// Runs `command`, failing the test with its output unless it succeeds.
fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Fails the test, saying what to do, when `program` cannot be run.
fn require(program: &str, package: &str) {
    if let Err(e) = Command::new(program).arg("--version").output() {
        panic!(
            "cannot run `{program}` ({e}): the C plugin is built with clang and wasm-ld; run \
             scripts/setup (it installs the Debian packages clang and lld, {package} among them)"
        );
    }
}

/// Builds the example into `dir` (`make OUT=dir/modula.wasm`), warning-free; returns the module.
fn build(dir: &TestDir) -> PathBuf {
    require("clang", "clang");
    require("wasm-ld", "lld");
    let wasm = dir.path().join("modula.wasm");
    let built = run(Command::new("make")
        .arg("-C")
        .arg(example_dir())
        .arg(format!("OUT={}", wasm.display())));
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(
        !stderr.contains("warning"),
        "modula.c does not build warning-free with -Wall -Wextra:\n{stderr}"
    );
    assert!(wasm.is_file(), "make built no {}", wasm.display());
    wasm
}

/// The CRC-32 the plugin routes by (the host's `hash` import, algorithm 1).
fn crc32(key: &str) -> u32 {
    switchyard_sdk::hash::crc32(key.as_bytes())
}

#[test]
fn the_c_header_encodes_the_golden_plans_and_the_module_imports_the_host_only() {
    let dir = TestDir::new("c-plugin-build");
    let wasm = build(&dir);

    // The header's inline encoders, compiled natively, against sdk/golden/plans.txt.
    let tested = run(Command::new("make")
        .arg("-C")
        .arg(example_dir())
        .arg(format!("OUT={}", wasm.display()))
        .arg("test"));
    let report = String::from_utf8_lossy(&tested.stdout);
    assert!(
        report.contains("valid plans match sdk/switchyard.h's encoders"),
        "make test:\n{report}{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(
        dir.path().join("golden_test").is_file(),
        "the golden test was not built beside OUT"
    );

    // What the router sees: four imports from `switchyard`, memory and the six exports.
    let inspected = run(Command::new(switchyard_binary())
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .args(["--children", "3"]));
    let report = String::from_utf8_lossy(&inspected.stdout).into_owned();
    let field = |name: &str| -> Vec<String> {
        let line = report
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{report}"));
        let mut items: Vec<String> = line.trim().split(", ").map(str::to_owned).collect();
        items.sort();
        items
    };
    assert_eq!(
        field("imports "),
        ["child_count", "child_healthy", "hash", "set_error"],
        "{report}"
    );
    assert_eq!(
        field("exports "),
        [
            "memory",
            "switchyard_abi_version",
            "switchyard_alloc",
            "switchyard_init",
            "switchyard_key_buffer",
            "switchyard_plan_buffer",
            "switchyard_route",
        ],
        "{report}"
    );
    assert!(report.contains("init     ok with 3 children"), "{report}");
    let size = std::fs::metadata(&wasm).expect("module metadata").len();
    assert!(
        size < 4096,
        "the module is {size} bytes; it should stay small"
    );
}

/// Gets `key` until the router's pool has marked `server` down (the get reaches it while the
/// plugin still thinks it up, which is how the router notices).
fn wait_until_down(client: &mut Client, server: &Memcached, key: &str) {
    let address = server.address();
    poll_until(Duration::from_secs(10), || {
        client.request_str(&format!("get {key}\r\n"));
        (client.backend_stat(&address, "state").as_deref() == Some("down")).then_some(())
    })
    .unwrap_or_else(|| panic!("the router did not mark {address} down within 10 s"));
}

/// Stores every key again through the router and checks that each is on the server `expected`
/// gives for its CRC-32 home, `crc32 % 3`, asking the servers still up (`live`) directly.
fn assert_placement(
    client: &mut Client,
    servers: &[Memcached; 3],
    live: &[usize],
    keys: &[String],
    expected: impl Fn(usize) -> usize,
) {
    for &s in live {
        servers[s].flush_all();
    }
    store_all(client, keys, b"c-modula");
    let refs: Vec<&Memcached> = live.iter().map(|&s| &servers[s]).collect();
    let found = locate(&refs, keys);
    let wrong: Vec<String> = keys
        .iter()
        .zip(found)
        .filter_map(|(key, at)| {
            let home = (crc32(key) % 3) as usize;
            let want = expected(home);
            (live[at] != want).then(|| {
                format!(
                    "{key}: crc32 % 3 = {home}, expected on {want}, found on {}",
                    live[at]
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} keys misplaced (servers up: {live:?}):\n{}",
        wrong.len(),
        keys.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}

#[test]
fn c_modula_places_keys_by_crc32_and_fails_over_to_the_next_server_up() {
    // The hash the plugin asks the host for is the standard CRC-32 (zlib's).
    assert_eq!(switchyard_sdk::hash::crc32(b"123456789"), 0xcbf4_3926);

    let dir = TestDir::new("c-plugin-route");
    let wasm = build(&dir);
    let mut servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let refs: Vec<&Memcached> = servers.iter().collect();
    let router: Router = router(&single_pool_config(
        &specs(&refs),
        &format!(
            "hash = {{ plugin = {:?} }}\nconnect_timeout_ms = 200\ntimeout_ms = 500\n",
            wasm.display().to_string()
        ),
    ));
    let mut client = connect(&router, 0);
    let keys: Vec<String> = (0..200).map(|i| format!("c-modula-{i}")).collect();
    let homes: Vec<usize> = keys.iter().map(|k| (crc32(k) % 3) as usize).collect();
    for s in 0..3 {
        assert!(
            homes.iter().filter(|&&h| h == s).count() >= 40,
            "the keys should spread over all three servers: {homes:?}"
        );
    }
    let key_on = |s: usize| {
        keys[homes
            .iter()
            .position(|&h| h == s)
            .expect("a key per server")]
        .clone()
    };

    // All up: every key on server crc32 % 3.
    store_all(&mut client, &keys, b"c-modula");
    let found = locate(&refs, &keys);
    assert_eq!(found, homes, "keys not on server crc32(key) % 3");
    drop(refs);

    // Server 1 down: its keys go to server 2, the others stay home.
    servers[1].kill();
    wait_until_down(&mut client, &servers[1], &key_on(1));
    assert_placement(&mut client, &servers, &[0, 2], &keys, |home| match home {
        1 => 2,
        other => other,
    });

    // Servers 1 and 2 down: their keys wrap around to server 0.
    servers[2].kill();
    wait_until_down(&mut client, &servers[2], &key_on(2));
    assert_placement(&mut client, &servers, &[0], &keys, |_| 0);

    // All down: the plugin's own reply, for every key and command.
    servers[0].kill();
    let no_server = "SERVER_ERROR no server up\r\n";
    let probe = key_on(0);
    poll_until(Duration::from_secs(10), || {
        (client.request_str(&format!("get {probe}\r\n")) == no_server).then_some(())
    })
    .unwrap_or_else(|| panic!("no `{}` once every server is down", no_server.trim_end()));
    for key in &keys {
        assert_eq!(
            client.request_str(&format!("get {key}\r\n")),
            no_server,
            "get {key}"
        );
    }
    assert_eq!(
        client.request_str(&format!("set {} 0 0 1\r\nx\r\n", keys[0])),
        no_server
    );
}

#[test]
fn c_modula_refuses_a_config_at_load_with_its_message() {
    let dir = TestDir::new("c-plugin-config");
    let wasm = build(&dir);
    let server = Memcached::start();
    let config = |table: &str| {
        single_pool_config(
            &specs(&[&server]),
            &format!(
                "hash = {{ plugin = {:?}, config = {table} }}\n",
                wasm.display().to_string()
            ),
        )
    };

    let refused = config("{ servers = 3 }");
    let error = match Config::from_toml(&refused, &dir.path().join("switchyard.toml")) {
        Err(e) => error_chain(&e),
        Ok(parsed) => match Router::start(parsed) {
            Err(e) => error_chain(&e),
            Ok(router) => panic!(
                "c-modula was loaded with a config; listening on {:?}",
                router.local_addrs()
            ),
        },
    };
    assert!(
        error.contains("c-modula takes no config"),
        "the refusal should carry the plugin's reason: {error}"
    );

    // An empty table is no config: the router starts and routes.
    let router = router(&config("{}"));
    let mut client = connect(&router, 0);
    client.set("k", b"v");
    assert_eq!(client.get("k").as_deref(), Some(&b"v"[..]));
}
