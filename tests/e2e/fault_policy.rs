//! What a node does with a request its plugin gives no usable decision for (`on_fault`), and
//! the per-node circuit breaker that stops calling a plugin that keeps failing.
//!
//! A fault is a trap, a timeout, running out of memory, an invalid plan, `pass` from `route`,
//! a ninth chained `call`, or no instance to call. `on_fault = "error"` (the default) answers
//! `SERVER_ERROR` naming the node; `"pass"` forwards the request to the node's first child;
//! `"fallback:NAME"` to the child named NAME (a route child as listed in `children`, a pool's
//! server as its `host:port`). Every fault counts in `plugin_faults` and `generation_faults`;
//! requests answered by a pass or a fallback also in `plugin_fallbacks`.
//!
//! Two memcached, `a` and `b`, hold every test key with the values `a` and `b`: a reply says
//! which child served it.

use std::time::{Duration, Instant};

use switchyard_tests::ports::poll_until;
use switchyard_tests::{
    Client, Config, Memcached, Router, TestDir, connect, error_chain, router_in, show, wasm,
};

/// `[plugins] call_timeout_ms` of the table test: the looping guest's requests take this long.
const CALL_TIMEOUT_MS: u64 = 20;

/// A fault kind: a name, the guest, and the 4-byte key prefix it misbehaves on.
type Kind = (&'static str, fn() -> Vec<u8>, &'static str);

/// The fault kinds.
const KINDS: [Kind; 7] = [
    ("trap", wasm::trapping_plugin, "trap"),
    ("timeout", wasm::looping_plugin, "loop"),
    ("out of memory", wasm::out_of_memory_plugin, "oom:"),
    ("invalid plan tag", wasm::invalid_plan_plugin, "bad:"),
    (
        "child out of range",
        wasm::child_out_of_range_plugin,
        "far:",
    ),
    ("pass from route", wasm::pass_from_route_plugin, "pass"),
    ("too many calls", wasm::too_many_calls_plugin, "call"),
];

/// The `on_fault` settings, and the value a faulting request gets under each (`None`: a
/// `SERVER_ERROR` naming the node).
const MODES: [(&str, Option<&str>); 3] = [
    ("error", None),
    ("pass", Some("a")),
    ("fallback:b", Some("b")),
];

/// Two servers, `a` holding each of `keys` with value `a` and `b` with value `b`.
fn two_servers(keys: &[String]) -> (Memcached, Memcached) {
    let (a, b) = (Memcached::start(), Memcached::start());
    for (server, value) in [(&a, b"a"), (&b, b"b")] {
        let mut client = server.client();
        for key in keys {
            client.set(key, value);
        }
    }
    (a, b)
}

/// A stat the new host must have.
fn counter(client: &mut Client, name: &str) -> u64 {
    client
        .stat(name)
        .unwrap_or_else(|| panic!("stats has no {name}"))
}

/// `plugin_faults`, `generation_faults` and `plugin_fallbacks`.
fn fault_stats(client: &mut Client) -> [u64; 3] {
    [
        counter(client, "plugin_faults"),
        counter(client, "generation_faults"),
        counter(client, "plugin_fallbacks"),
    ]
}

/// Polls until the fault stats are `expected` (they are counted as the request is answered;
/// a short poll allows for a count that lands just after the reply), then asserts them.
fn assert_fault_stats(client: &mut Client, expected: [u64; 3], what: &str) {
    let mut seen = [0; 3];
    let _ = poll_until(Duration::from_secs(2), || {
        seen = fault_stats(client);
        (seen == expected).then_some(())
    });
    assert_eq!(
        seen, expected,
        "{what}: [plugin_faults, generation_faults, plugin_fallbacks]"
    );
}

/// Which child served `get key`: its value, or the whole reply if it is not a single value.
fn served_by(client: &mut Client, key: &str) -> Result<String, String> {
    let reply = client.request(format!("get {key}\r\n").as_bytes());
    match switchyard_tests::client::parse_values(&reply).as_deref() {
        Some([(_, value)]) => Ok(String::from_utf8_lossy(value).into_owned()),
        _ => Err(String::from_utf8_lossy(&reply).into_owned()),
    }
}

/// Every fault kind under every `on_fault` setting: one router, one listener and one route
/// per (kind, setting), each route of that kind's guest over the children `a` and `b`.
#[test]
fn each_fault_kind_is_answered_as_on_fault_says() {
    let key = |k: usize, m: usize| format!("{}-{k}-{m}", KINDS[k].2);
    let keys: Vec<String> = (0..KINDS.len())
        .flat_map(|k| (0..MODES.len()).map(move |m| key(k, m)))
        .collect();
    let (a, b) = two_servers(&keys);
    let dir = TestDir::new("on-fault-table");
    let mut config = format!(
        "[server]\nworkers = 1\n\n[plugins]\ncall_timeout_ms = {CALL_TIMEOUT_MS}\n\
         rollback_faults = 0\n\n[pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n",
        a.spec(),
        b.spec()
    );
    for (k, (_, plugin, _)) in KINDS.iter().enumerate() {
        dir.write(&format!("kind{k}.wasm"), plugin());
        for (m, (on_fault, _)) in MODES.iter().enumerate() {
            config.push_str(&format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r{k}_{m}\"\n\n\
                 [routes.r{k}_{m}]\nplugin = \"kind{k}.wasm\"\nchildren = [\"a\", \"b\"]\n\
                 on_fault = \"{on_fault}\"\n\n"
            ));
        }
    }
    let router = router_in(&dir, &config);
    let mut stats = connect(&router, 0);
    let mut expected = fault_stats(&mut stats);

    for (k, (kind, _, _)) in KINDS.iter().enumerate() {
        for (m, (on_fault, served)) in MODES.iter().enumerate() {
            let what = format!("{kind} with on_fault = {on_fault:?}");
            let mut client = connect(&router, k * MODES.len() + m);
            let started = Instant::now();
            let got = served_by(&mut client, &key(k, m));
            let took = started.elapsed();
            match served {
                None => {
                    let reply = got.expect_err(&format!("{what}: should fail"));
                    let node = format!("routes.r{k}_{m}");
                    assert!(
                        reply.starts_with("SERVER_ERROR ") && reply.contains(&node),
                        "{what}: a SERVER_ERROR naming {node}, got {reply:?}"
                    );
                }
                Some(value) => assert_eq!(
                    got.as_deref(),
                    Ok(*value),
                    "{what}: served by the child named for it"
                ),
            }
            assert!(
                took < Duration::from_secs(2),
                "{what}: took {took:?} (call_timeout_ms {CALL_TIMEOUT_MS})"
            );
            expected[0] += 1;
            expected[1] += 1;
            expected[2] += u64::from(served.is_some());
            assert_fault_stats(&mut stats, expected, &what);
        }
    }
}

/// A pool's `on_fault` names a server by `host:port`: a pool whose hash plugin traps on `trap`
/// keys sends them to its second server, and keeps hashing other keys to the first.
#[test]
fn a_pool_falls_back_to_the_server_it_names() {
    let keys = vec!["trap:1".to_string(), "good:1".to_string()];
    let (a, b) = two_servers(&keys);
    let dir = TestDir::new("on-fault-pool");
    dir.write("trap.wasm", wasm::trapping_plugin());
    let router = router_in(
        &dir,
        &format!(
            "[server]\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"p\"\n\n\
             [pools.p]\nservers = [\"{}\", \"{}\"]\nhash = {{ plugin = \"trap.wasm\" }}\n\
             on_fault = \"fallback:{}\"\n",
            a.spec(),
            b.spec(),
            b.address()
        ),
    );
    let mut client = connect(&router, 0);
    let before = fault_stats(&mut client);
    assert_eq!(served_by(&mut client, "trap:1").as_deref(), Ok("b"));
    assert_eq!(served_by(&mut client, "good:1").as_deref(), Ok("a"));
    assert_fault_stats(
        &mut client,
        [before[0] + 1, before[1] + 1, before[2] + 1],
        "one fault, answered by the fallback",
    );
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the test config"))
        + 1
}

/// Loads `text` as `dir/switchyard.toml` and starts a router on it; the error of whichever
/// refused it, or `None` if it started.
fn refusal(dir: &TestDir, text: &str) -> Option<String> {
    let path = dir.write("switchyard.toml", text);
    match Config::load(&path) {
        Err(e) => Some(error_chain(&e)),
        Ok(config) => match Router::start(config) {
            Err(e) => Some(error_chain(&e)),
            Ok(_router) => None,
        },
    }
}

/// A fallback that is not a child of its node is refused, naming the file, the line and the
/// key; the same config naming a child is accepted.
#[test]
fn a_fallback_that_is_not_a_child_is_refused_with_file_line_and_key() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dir = TestDir::new("on-fault-bad-name");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let config = |route_fault: &str, pool_fault: &str| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r\"\n\n\
             [pools.a]\nservers = [\"{}\"]\non_fault = \"{pool_fault}\"\n\n\
             [pools.b]\nservers = [\"{}\"]\n\n\
             [routes.r]\nplugin = \"guard.wasm\"\nchildren = [\"a\", \"b\"]\n\
             on_fault = \"{route_fault}\"\n",
            a.spec(),
            b.spec()
        )
    };
    let file = dir.path().join("switchyard.toml").display().to_string();

    let good = config("fallback:b", &format!("fallback:{}", a.address()));
    if let Some(error) = refusal(&dir, &good) {
        panic!("fallbacks naming a child were refused: {error}\n{good}");
    }

    let cases = [
        (
            config("fallback:nope", "pass"),
            "fallback:nope",
            "routes.r.on_fault",
            "nope",
        ),
        (
            config("error", "fallback:127.0.0.1:1"),
            "fallback:127.0.0.1:1",
            "pools.a.on_fault",
            "127.0.0.1:1",
        ),
        (
            // A pool's fallback is a server, not another pool.
            config("error", "fallback:b"),
            "fallback:b",
            "pools.a.on_fault",
            "b",
        ),
    ];
    for (text, at, key, name) in cases {
        let line = line_of(&text, at);
        let error = refusal(&dir, &text)
            .unwrap_or_else(|| panic!("on_fault = {at:?} was accepted\n{text}"));
        assert!(
            error.contains(&format!("{file}:{line}")) || error.contains(&format!("line {line}")),
            "{at}: the error should name {file} line {line}: {error}"
        );
        assert!(
            error.contains(key),
            "{at}: the error should name {key}: {error}"
        );
        assert!(
            error.contains(name),
            "{at}: the error should name {name:?}: {error}"
        );
    }
}

/// A plugin that loops on every call, behind a breaker that opens after 3 timeouts: once open,
/// the plugin is not called and requests go straight to the first child (`on_fault = "pass"`),
/// so they take nothing like the call deadline.
#[test]
fn an_open_breaker_answers_without_calling_the_plugin() {
    let _heavy = switchyard_tests::heavy();
    const DEADLINE: Duration = Duration::from_millis(5);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let (a, b) = two_servers(&keys);
    let dir = TestDir::new("breaker");
    dir.write("loop.wasm", wasm::looping_every_call_plugin());
    let router = router_in(
        &dir,
        &format!(
            "[server]\nworkers = 1\n\n[plugins]\ncall_timeout_ms = {}\nbreaker_faults = 3\n\
             rollback_faults = 0\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r\"\n\n\
             [pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n\
             [routes.r]\nplugin = \"loop.wasm\"\nchildren = [\"a\", \"b\"]\non_fault = \"pass\"\n",
            DEADLINE.as_millis(),
            a.spec(),
            b.spec()
        ),
    );
    let mut client = connect(&router, 0);
    // Three timeouts, each passed to the first child.
    for (i, key) in keys.iter().enumerate().take(3) {
        assert_eq!(
            served_by(&mut client, key).as_deref(),
            Ok("a"),
            "timeout {i}"
        );
    }
    let mut latencies = Vec::new();
    for i in 0..200 {
        let key = &keys[i % keys.len()];
        let started = Instant::now();
        let got = served_by(&mut client, key);
        latencies.push(started.elapsed());
        assert_eq!(
            got.as_deref(),
            Ok("a"),
            "request {i} after the breaker opened"
        );
    }
    let opens = counter(&mut client, "plugin_breaker_opens");
    latencies.sort();
    let slow = latencies.iter().filter(|&&l| l >= DEADLINE).count();
    eprintln!(
        "breaker: 200 requests after 3 timeouts, median {:?}, max {:?}, {slow} at or over the \
         {DEADLINE:?} deadline; plugin_breaker_opens {opens}",
        latencies[100], latencies[199],
    );
    assert!(opens >= 1, "plugin_breaker_opens is {opens}");
    // A few may take the deadline: a retry after the backoff calls the plugin once (and the
    // machine may be busy); a breaker that stays closed makes every one of them do so.
    assert!(
        slow <= 10,
        "{slow} of 200 requests took the {DEADLINE:?} call deadline or longer"
    );
}

/// With `on_fault = "error"`, a plugin that traps on some keys fails those requests only: the
/// request after each trapping one, on the same connection, is served at once.
#[test]
fn a_plugin_that_traps_on_some_keys_fails_only_those_requests() {
    let keys = vec!["good".to_string()];
    let (a, b) = two_servers(&keys);
    let dir = TestDir::new("traps-some-keys");
    dir.write("trap.wasm", wasm::trapping_plugin());
    let router = router_in(
        &dir,
        &format!(
            "[server]\nworkers = 1\n\n[plugins]\nrollback_faults = 0\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r\"\n\n\
             [pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n\
             [routes.r]\nplugin = \"trap.wasm\"\nchildren = [\"a\", \"b\"]\non_fault = \"error\"\n",
            a.spec(),
            b.spec()
        ),
    );
    let mut client = connect(&router, 0);
    let before = counter(&mut client, "plugin_faults");
    let mut slowest = Duration::ZERO;
    for round in 0..50 {
        let reply = client.request(format!("get trap:{round}\r\n").as_bytes());
        assert!(
            reply.starts_with(b"SERVER_ERROR ") && show(&reply).contains("routes.r"),
            "round {round}: the trapping request: {}",
            show(&reply)
        );
        let started = Instant::now();
        let got = served_by(&mut client, "good");
        slowest = slowest.max(started.elapsed());
        assert_eq!(
            got.as_deref(),
            Ok("a"),
            "round {round}: the request right after a trap"
        );
    }
    eprintln!("slowest request right after a trap: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(500),
        "a request right after a trap took {slowest:?}"
    );
    let mut faults = 0;
    let _ = poll_until(Duration::from_secs(2), || {
        faults = counter(&mut client, "plugin_faults");
        (faults == before + 50).then_some(())
    });
    assert_eq!(faults, before + 50, "plugin_faults after 50 traps");
}
