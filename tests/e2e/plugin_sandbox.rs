//! A plugin that traps or loops forever fails only the request it was routing; a plugin that
//! imports anything beyond the host's own module (WASI here) is refused at load.
//!
//! The plugins are hand-written WAT (`switchyard_tests::wasm`) loaded by path, like a user's.

use std::time::{Duration, Instant};

use switchyard_tests::ports::poll_until;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{
    Client, Config, Memcached, Router, TestDir, connect, error_chain, router_in, show, wasm,
};

/// The `[plugins] call_timeout_ms` of these tests.
const CALL_TIMEOUT_MS: u64 = 20;

/// How many poisoned requests [`assert_contained`] sends: four alone, one pipelined.
const POISONED: u64 = 5;

/// Listener 0 routes through the plugin in `plugin.wasm` to the pool; listener 1 serves the
/// same pool through the bundled `ketama` only.
fn guarded_router(dir: &TestDir, plugin: &[u8], server: &Memcached) -> Router {
    dir.write("plugin.wasm", plugin);
    router_in(
        dir,
        &format!(
            r#"
[server]
workers = 2

[plugins]
call_timeout_ms = {CALL_TIMEOUT_MS}

[[listeners]]
address = "127.0.0.1:0"
route = "guarded"

[[listeners]]
address = "127.0.0.1:0"
route = "main"

[pools.main]
servers = ["{}"]

[routes.guarded]
plugin = "plugin.wasm"
children = ["main"]
"#,
            server.spec()
        ),
    )
}

fn assert_value(client: &mut Client, key: &str, value: &[u8]) {
    assert_eq!(
        client.get(key).as_deref(),
        Some(value),
        "get {key} via {}",
        client.peer()
    );
}

/// Sends `get <poison>` several times through the guarded listener: each must fail alone with
/// `SERVER_ERROR`, the same connection must keep working, and the other listener must serve.
fn assert_contained(router: &Router, poison: &str) -> Duration {
    let mut guarded = connect(router, 0);
    let mut plain = connect(router, 1);
    guarded.set("ok:1", b"one");
    assert_value(&mut plain, "ok:1", b"one");

    let mut slowest = Duration::ZERO;
    // Several rounds on one connection (so one worker): the instance is poisoned, replaced,
    // and the replacement poisoned again.
    for round in 0..POISONED - 1 {
        let started = Instant::now();
        let reply = guarded.request(format!("get {poison}\r\n").as_bytes());
        slowest = slowest.max(started.elapsed());
        assert!(
            reply.starts_with(b"SERVER_ERROR ") && reply.ends_with(b"\r\n"),
            "round {round}: get {poison} should fail alone, got {}",
            show(&reply)
        );
        assert_value(&mut guarded, "ok:1", b"one");
        assert_value(&mut plain, "ok:1", b"one");
        guarded.set(&format!("ok:round-{round}"), b"r");
        assert_value(&mut plain, &format!("ok:round-{round}"), b"r");
    }

    // Pipelined around a poisoned request, neighbours get their own replies, in order.
    guarded.send(format!("get ok:1\r\nget {poison}\r\nget ok:1\r\n").as_bytes());
    let replies = guarded.replies(3);
    assert_eq!(
        replies[0],
        b"VALUE ok:1 0 3\r\none\r\nEND\r\n",
        "{}",
        show(&replies[0])
    );
    assert!(
        replies[1].starts_with(b"SERVER_ERROR "),
        "{}",
        show(&replies[1])
    );
    assert_eq!(
        replies[2],
        b"VALUE ok:1 0 3\r\none\r\nEND\r\n",
        "{}",
        show(&replies[2])
    );

    // A fresh connection to the guarded listener is served too.
    let mut fresh = connect(router, 0);
    assert_value(&mut fresh, "ok:1", b"one");

    // Each poisoned request was counted as a plugin fault, and nothing else was.
    let mut faults = None;
    let counted = poll_until(Duration::from_secs(5), || {
        faults = fresh.stat("plugin_faults");
        (faults == Some(POISONED)).then_some(())
    });
    assert!(
        counted.is_some(),
        "stats plugin_faults is {faults:?}; {POISONED} requests were poisoned"
    );
    slowest
}

#[test]
fn a_plugin_that_traps_fails_only_its_request() {
    let server = Memcached::start();
    let dir = TestDir::new("trap");
    let router = guarded_router(&dir, &wasm::trapping_plugin(), &server);
    assert_contained(&router, "trap:1");
}

#[test]
fn a_plugin_that_loops_forever_is_stopped_at_its_deadline() {
    let server = Memcached::start();
    let dir = TestDir::new("loop");
    let router = guarded_router(&dir, &wasm::looping_plugin(), &server);
    let slowest = assert_contained(&router, "loop:1");
    println!("slowest request through the looping plugin: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(CALL_TIMEOUT_MS) + Duration::from_secs(1),
        "a looping plugin held a request for {slowest:?}; call_timeout_ms is {CALL_TIMEOUT_MS}"
    );
}

/// An idle router's plugin clock (the wasmtime epoch ticker) stops, so the process sleeps; the
/// first request after it wakes the clock, and a looping plugin is still stopped in time.
#[test]
fn an_idle_router_stops_its_plugin_clock_and_still_stops_a_looping_plugin() {
    let server = Memcached::start();
    let dir = TestDir::new("idle-clock");
    let plugin = dir.write("loop.wasm", wasm::looping_plugin());
    let router = RouterProcess::start("idle-clock", |listen| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n[plugins]\ncall_timeout_ms = {CALL_TIMEOUT_MS}\n\n\
             [[listeners]]\naddress = \"{listen}\"\nroute = \"guarded\"\n\n\
             [pools.main]\nservers = [\"{}\"]\n\n\
             [routes.guarded]\nplugin = {:?}\nchildren = [\"main\"]\n",
            server.spec(),
            plugin.display().to_string()
        )
    });
    let mut client = Client::connect(router.addr());
    assert_value_set(&mut client);

    // Idle: the clock thread stops waking (a ticking one wakes a thousand times a second).
    let window = Duration::from_millis(300);
    let quiet = poll_until(Duration::from_secs(10), || {
        let before = router.thread_switches("switchyard-epoch")?;
        std::thread::sleep(window);
        let after = router.thread_switches("switchyard-epoch")?;
        (after - before <= 2).then_some(after - before)
    });
    assert!(
        quiet.is_some(),
        "the idle router's epoch thread kept waking for 10 s"
    );

    let started = Instant::now();
    let reply = client.request(b"get loop:1\r\n");
    let took = started.elapsed();
    assert!(
        reply.starts_with(b"SERVER_ERROR "),
        "a looping plugin after an idle spell: {}",
        show(&reply)
    );
    assert!(
        took < Duration::from_millis(CALL_TIMEOUT_MS) + Duration::from_secs(1),
        "the looping plugin held the first request after an idle spell for {took:?}"
    );
    assert_value(&mut client, "ok:1", b"one");
}

fn assert_value_set(client: &mut Client) {
    client.set("ok:1", b"one");
    assert_value(client, "ok:1", b"one");
}

#[test]
fn a_well_behaved_plugin_loaded_by_path_serves_every_key() {
    // The control for the two tests above: the same guest without a poisoned branch.
    let server = Memcached::start();
    let dir = TestDir::new("forward");
    let router = guarded_router(&dir, &wasm::forwarding_plugin(), &server);
    let mut client = connect(&router, 0);
    for key in ["trap:1", "loop:1", "ok:1"] {
        client.set(key, key.as_bytes());
        assert_value(&mut server.client(), key, key.as_bytes());
    }
}

#[test]
fn a_plugin_importing_wasi_is_refused_naming_the_import() {
    let server = Memcached::start();
    let dir = TestDir::new("wasi");
    dir.write("wasi.wasm", wasm::wasi_plugin());
    let config = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
route = "root"

[pools.main]
servers = ["{}"]

[routes.root]
plugin = "wasi.wasm"
children = ["main"]
"#,
        server.spec()
    );
    // The refusal may come from validating the config or from starting the router.
    let error = match Config::from_toml(&config, &dir.path().join("switchyard.toml")) {
        Err(e) => error_chain(&e),
        Ok(config) => match Router::start(config) {
            Err(e) => error_chain(&e),
            Ok(router) => panic!(
                "a plugin importing wasi_snapshot_preview1 was accepted; listening on {:?}",
                router.local_addrs()
            ),
        },
    };
    assert!(
        error.contains("wasi_snapshot_preview1") && error.contains("fd_write"),
        "the error should name the import (wasi_snapshot_preview1::fd_write): {error}"
    );
}
