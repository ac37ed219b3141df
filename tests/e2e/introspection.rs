//! Route introspection on real memcached: `get __switchyard__.route(<op>,<key>)` names the
//! servers a request would reach (the ones a real request does reach) for a ketama pool, a
//! prefix route, an all-sync fan-out and a failover route, and sends nothing to any of them (their
//! own `stats` do not move); `switchyard route` prints the same for the config file; the
//! version, generation and config keys answer; other reserved keys miss; a multi-key get mixing
//! reserved and ordinary keys keeps the client's order; what `stats` counts.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use switchyard_tests::client::parse_values;
use switchyard_tests::{
    Client, Memcached, Router, TestDir, connect, locate, router, router_in, show, specs,
    switchyard_binary, toml_servers,
};

/// Counters of memcached's own `stats` that any request, or a new connection, would move.
const MOVED_BY_ANY_REQUEST: &[&str] = &[
    "cmd_get",
    "cmd_set",
    "cmd_touch",
    "get_hits",
    "get_misses",
    "delete_hits",
    "delete_misses",
    "incr_hits",
    "incr_misses",
    "decr_hits",
    "decr_misses",
    "touch_hits",
    "touch_misses",
    "total_connections",
    "curr_connections",
    "bytes_read",
];

/// What `MOVED_BY_ANY_REQUEST` are on one memcached, read on a connection of the test's own
/// (kept open, so that reading them moves none of them but `bytes_read`, by the same `stats`
/// each time).
struct Watched {
    client: Client,
    address: String,
}

impl Watched {
    fn counters(&mut self) -> Vec<(String, u64)> {
        self.client.send(b"stats\r\n");
        let reply = String::from_utf8_lossy(&self.client.read_until(b"END\r\n")).into_owned();
        MOVED_BY_ANY_REQUEST
            .iter()
            .map(|name| {
                let prefix = format!("STAT {name} ");
                let value = reply
                    .lines()
                    .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{}: no {name} in its stats", self.address));
                (name.to_string(), value)
            })
            .collect()
    }
}

/// Asserts that nothing reached any of `servers` while `f` ran.
fn sends_nothing<T>(servers: &[&Memcached], f: impl FnOnce() -> T) -> T {
    let mut watched: Vec<Watched> = servers
        .iter()
        .map(|m| Watched {
            client: m.client(),
            address: m.address(),
        })
        .collect();
    let before: Vec<Vec<(String, u64)>> = watched.iter_mut().map(Watched::counters).collect();
    // Reading `stats` moves `bytes_read` by its own length: read twice, and compare with the
    // second reading's step.
    let again: Vec<Vec<(String, u64)>> = watched.iter_mut().map(Watched::counters).collect();
    let out = f();
    for ((w, first), second) in watched.iter_mut().zip(&before).zip(&again) {
        let after = w.counters();
        for ((name, a), ((_, b), (_, c))) in first.iter().zip(second.iter().zip(&after)) {
            let expected = b + (b - a);
            assert_eq!(
                *c, expected,
                "{}: {name} went from {b} to {c}: the dry run reached this server",
                w.address
            );
        }
    }
    out
}

/// The answer to `get __switchyard__.route(<op>,<key>)` on `client`.
fn route(client: &mut Client, op: &str, key: &str) -> String {
    let asked = format!("__switchyard__.route({op},{key})");
    let reply = client.request(format!("get {asked}\r\n").as_bytes());
    let values = parse_values(&reply).unwrap_or_else(|| panic!("get {asked}: {}", show(&reply)));
    match values.as_slice() {
        [(head, data)] if *head == format!("VALUE {asked} 0 {}", data.len()) => {
            String::from_utf8(data.clone()).expect("UTF-8 text")
        }
        _ => panic!("get {asked}: {}", show(&reply)),
    }
}

/// `STAT <name>` of the router's `stats plugins`.
fn plugin_stat(client: &mut Client, name: &str) -> u64 {
    client.send(b"stats plugins\r\n");
    let reply = String::from_utf8_lossy(&client.read_until(b"END\r\n")).into_owned();
    let prefix = format!("STAT {name} ");
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in stats plugins: {reply}"))
}

/// The `server` lines of a route answer: (path, address, role, state).
fn server_lines(text: &str) -> Vec<(String, String, String, String)> {
    text.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            match words.as_slice() {
                ["server", path, address, role, state] => Some((
                    path.to_string(),
                    address.to_string(),
                    role.to_string(),
                    state.to_string(),
                )),
                _ => None,
            }
        })
        .collect()
}

fn line(path: &str, address: &str, role: &str) -> (String, String, String, String) {
    (path.into(), address.into(), role.into(), "up".into())
}

fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Stores every key through the router, then where each one landed, asked of the servers.
fn landed(router: &Router, servers: &[&Memcached], keys: &[String]) -> Vec<String> {
    let mut client = connect(router, 0);
    for key in keys {
        client.set(key, b"v");
    }
    locate(servers, keys)
        .into_iter()
        .map(|i| servers[i].address())
        .collect()
}

#[test]
fn a_ketama_pool_names_the_server_a_set_lands_on_and_sends_nothing() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let all: Vec<&Memcached> = servers.iter().collect();
    let router = router(&switchyard_tests::single_pool_config(&specs(&all), ""));
    let keys = keys(24, "ketama:");
    let mut client = connect(&router, 0);
    let calls = plugin_stat(&mut client, "pools.main:calls");
    let answers: Vec<String> = sends_nothing(&all, || {
        keys.iter()
            .map(|k| {
                let get = route(&mut client, "get", k);
                let set = route(&mut client, "set", k);
                assert_eq!(
                    get.replacen("route get", "route set", 1),
                    set,
                    "{k}: a get and a set go alike through ketama"
                );
                assert!(get.starts_with(&format!("route get {k}\n")), "{get}");
                set
            })
            .collect()
    });
    assert_eq!(
        plugin_stat(&mut client, "pools.main:calls"),
        calls + 48,
        "each question called ketama once"
    );
    let landed = landed(&router, &all, &keys);
    let mut seen = std::collections::HashSet::new();
    for ((key, answer), address) in keys.iter().zip(&answers).zip(&landed) {
        assert_eq!(
            server_lines(answer),
            vec![line("pools.main", address, "answer")],
            "{key}: {answer}"
        );
        seen.insert(address.clone());
    }
    assert_eq!(seen.len(), 3, "24 keys spread over the three servers");
}

#[test]
fn a_prefix_route_names_its_pool_and_server() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let [sessions, users, main] = &servers;
    let config = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
route = "by_prefix"

[routes.by_prefix]
plugin = "prefix"
children = ["sessions", "users", "main"]
config = {{ prefixes = {{ "session:" = "sessions", "user:" = "users" }}, default = "main" }}

[pools.sessions]
servers = ["{}"]

[pools.users]
servers = ["{}"]

[pools.main]
servers = ["{}"]
"#,
        sessions.spec(),
        users.spec(),
        main.spec()
    );
    let router = router(&config);
    let all: Vec<&Memcached> = servers.iter().collect();
    let keys = ["session:1", "user:7", "user", "other"].map(String::from);
    let answers: Vec<String> = sends_nothing(&all, || {
        let mut client = connect(&router, 0);
        keys.iter().map(|k| route(&mut client, "set", k)).collect()
    });
    let landed = landed(&router, &all, &keys);
    for ((key, answer), (pool, address)) in keys.iter().zip(&answers).zip([
        ("sessions", &landed[0]),
        ("users", &landed[1]),
        ("main", &landed[2]),
        ("main", &landed[3]),
    ]) {
        assert_eq!(
            server_lines(answer),
            vec![line(
                &format!("routes.by_prefix>pools.{pool}"),
                address,
                "answer"
            )],
            "{key}: {answer}"
        );
    }
    assert_eq!(landed[0], sessions.address());
    assert_eq!(landed[1], users.address());
}

#[test]
fn an_all_sync_fan_out_names_every_child_with_its_wait() {
    let (servers, router) = switchyard_tests::replicated("all-sync", 1000);
    let all: Vec<&Memcached> = servers.iter().collect();
    let answer = sends_nothing(&all, || {
        route(&mut connect(&router, 0), "set", "replicated")
    });
    let expected: Vec<_> = servers
        .iter()
        .enumerate()
        .map(|(i, m)| line(&format!("routes.r>pools.p{i}"), &m.address(), "all"))
        .collect();
    assert_eq!(server_lines(&answer), expected, "{answer}");
    assert!(
        answer.lines().any(|l| l == "fan_out routes.r all"),
        "{answer}"
    );
    // A real set does reach all three.
    connect(&router, 0).set("replicated", b"v");
    for m in &servers {
        assert_eq!(
            m.holds(&["replicated".into()]),
            vec![true],
            "{}",
            m.address()
        );
    }
}

#[test]
fn a_failover_route_names_the_child_it_calls_and_leaves_the_rest_to_on_reply() {
    let (servers, router) = switchyard_tests::replicated("failover", 1000);
    let all: Vec<&Memcached> = servers.iter().collect();
    let answer = sends_nothing(&all, || route(&mut connect(&router, 0), "get", "fo"));
    assert_eq!(
        answer,
        format!(
            "route get fo\ncall routes.r\nserver routes.r>pools.p0 {} call up\non_reply routes.r\n",
            servers[0].address()
        )
    );
}

#[test]
fn a_fault_shows_in_the_answer_and_counts_as_one() {
    let server = Memcached::start();
    let dir = TestDir::new("introspect-fault");
    dir.write("trap.wasm", switchyard_tests::wasm::trapping_plugin());
    let router = router_in(
        &dir,
        &format!(
            r#"
[[listeners]]
address = "127.0.0.1:0"
route = "t"

[routes.t]
plugin = "trap.wasm"
children = ["main"]

[pools.main]
servers = ["{}"]
"#,
            server.spec()
        ),
    );
    let mut client = connect(&router, 0);
    let faults = client.stat("plugin_faults").expect("plugin_faults");
    let answer = sends_nothing(&[&server], || route(&mut client, "get", "trap:1"));
    let lines: Vec<&str> = answer.lines().collect();
    assert_eq!(lines.len(), 3, "{answer}");
    assert!(lines[1].starts_with("fault routes.t trapped: "), "{answer}");
    assert_eq!(
        lines[2],
        "reply routes.t SERVER_ERROR plugin routes.t failed"
    );
    assert_eq!(client.stat("plugin_faults"), Some(faults + 1));
    assert_eq!(plugin_stat(&mut client, "routes.t:faults_trap"), 1);
}

#[test]
fn version_generation_config_and_unknown_keys_answer_and_count_as_gets_only() {
    let server = Memcached::start();
    let config = switchyard_tests::single_pool_config(&[server.spec()], "");
    let router = router(&config);
    let mut client = connect(&router, 0);
    let stat = |client: &mut Client, name: &str| {
        client
            .stat(name)
            .unwrap_or_else(|| panic!("no {name} in stats"))
    };
    let (gets, sets, keys) = (
        stat(&mut client, "cmd_get"),
        stat(&mut client, "cmd_set"),
        stat(&mut client, "get_keys"),
    );

    assert_eq!(
        client.request_str("get __switchyard__.version\r\n"),
        format!(
            "VALUE __switchyard__.version 0 {}\r\n{}\r\nEND\r\n",
            switchyard::VERSION_STRING.len(),
            switchyard::VERSION_STRING
        )
    );
    assert_eq!(
        client.request_str("gets __switchyard__.generation\r\n"),
        "VALUE __switchyard__.generation 0 1 0\r\n1\r\nEND\r\n"
    );
    let reply = client.request(b"get __switchyard__.config\r\n");
    let values = parse_values(&reply).expect("a retrieval reply");
    assert_eq!(values.len(), 1, "{}", show(&reply));
    assert_eq!(String::from_utf8_lossy(&values[0].1), config);
    assert_eq!(
        client.request_str("get __switchyard__.nothing\r\n"),
        "END\r\n"
    );
    let bad = client.request_str("get __switchyard__.route(fetch,k)\r\n");
    assert!(
        bad.starts_with("CLIENT_ERROR unknown operation `fetch`"),
        "{bad}"
    );
    route(&mut client, "set", "k");
    assert_eq!(
        (
            stat(&mut client, "cmd_get"),
            stat(&mut client, "cmd_set"),
            stat(&mut client, "get_keys")
        ),
        (gets + 5, sets, keys),
        "each get counts as one; no key was looked up, and the route question is no set"
    );

    // Mixed with ordinary keys: in the client's order, misses left out.
    client.set("a", b"1");
    client.set("b", b"22");
    let reply =
        client.request_str("get a __switchyard__.generation missing __switchyard__.nothing b\r\n");
    assert_eq!(
        reply,
        "VALUE a 0 1\r\n1\r\nVALUE __switchyard__.generation 0 1\r\n1\r\nVALUE b 0 2\r\n22\r\nEND\r\n"
    );
    assert_eq!(stat(&mut client, "get_keys"), keys + 3, "a, missing and b");
}

/// Two listeners over a prefix route and a ketama pool, written to `dir/router.toml`.
fn two_listener_config(dir: &TestDir, servers: &[&Memcached]) -> (String, std::path::PathBuf) {
    let text = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
route = "by_prefix"

[[listeners]]
address = "127.0.0.1:0"
route = "main"

[routes.by_prefix]
plugin = "prefix"
children = ["main", "one"]
config = {{ prefixes = {{ "one:" = "one" }}, default = "main" }}

[pools.main]
servers = {}

[pools.one]
servers = ["{}"]
"#,
        toml_servers(&specs(&servers[..2])),
        servers[2].spec()
    );
    let path = dir.write("router.toml", &text);
    (text, path)
}

fn run(args: &[&str], cwd: &Path) -> Output {
    Command::new(switchyard_binary())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run switchyard {args:?}: {e}"))
}

#[test]
fn switchyard_route_prints_what_the_running_router_answers() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let all: Vec<&Memcached> = servers.iter().collect();
    let dir = TestDir::new("route-cli");
    let (text, path) = two_listener_config(&dir, &all);
    let file = path.to_str().expect("UTF-8 temp path");
    let keys = ["one:1", "k1", "k2", "k3"];

    let out = sends_nothing(&all, || {
        let mut args = vec!["route", "--config", file, "set"];
        args.extend(keys);
        run(&args, dir.path())
    });
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "switchyard route: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_1 = run(
        &["route", "--config", file, "--listener", "1", "get", "k1"],
        dir.path(),
    );
    assert!(on_1.status.success());

    let router = router_in(&dir, &text);
    let mut client = connect(&router, 0);
    let answered: String = keys.iter().map(|k| route(&mut client, "set", k)).collect();
    assert_eq!(printed, answered);
    assert!(
        printed.contains("server routes.by_prefix>pools.one "),
        "{printed}"
    );
    assert_eq!(
        String::from_utf8_lossy(&on_1.stdout),
        route(&mut connect(&router, 1), "get", "k1")
    );

    // A config error fails, naming the file; so does an unknown operation or listener.
    let bad = dir.write("bad.toml", "[[listeners]]\naddress = \"127.0.0.1:0\"\n");
    let bad = run(
        &[
            "route",
            "--config",
            bad.to_str().expect("UTF-8"),
            "get",
            "k",
        ],
        dir.path(),
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad.toml"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    for args in [
        vec!["route", "--config", file, "fetch", "k"],
        vec!["route", "--config", file, "--listener", "2", "get", "k"],
    ] {
        let out = run(&args, dir.path());
        assert!(!out.status.success(), "{args:?} succeeded");
    }
    let help = run(&["--help"], dir.path());
    assert!(
        String::from_utf8_lossy(&help.stdout)
            .contains("switchyard route --config FILE [--listener N] OP KEY..."),
        "--help names the route command"
    );
}
