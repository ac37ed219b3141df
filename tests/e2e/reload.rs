//! Hot swap: routes and plugins change under load with nothing dropped; every trigger works;
//! a broken reload changes nothing; a crash-looping plugin is rolled back.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::ports::{free_port, loopback, poll_until};
use switchyard_tests::{
    Client, Config, Memcached, Router, TestDir, connect, switchyard_binary, wasm,
};

/// Server `a` holds every key with value `a`, server `b` with value `b`: a reply says which pool
/// (which generation's route) served it.
fn two_pools() -> (Memcached, Memcached, Vec<String>) {
    let (a, b) = (Memcached::start(), Memcached::start());
    let keys: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    for (server, value) in [(&a, "a"), (&b, "b")] {
        let mut c = server.client();
        for key in &keys {
            c.set(key, value.as_bytes());
        }
    }
    (a, b, keys)
}

/// A config routing everything through the plugin in `guard.wasm` to pool `to`.
fn config_text(a: &Memcached, b: &Memcached, to: &str, extra: &str) -> String {
    format!(
        r#"
[server]
workers = 2

[plugins]
rollback_faults = 20

{extra}

[[listeners]]
address = "127.0.0.1:0"
route = "root"

[pools.a]
servers = ["{}"]

[pools.b]
servers = ["{}"]

[routes.root]
plugin = "guard.wasm"
children = ["{to}"]
"#,
        a.spec(),
        b.spec()
    )
}

fn start_from(dir: &TestDir, text: &str) -> Router {
    let path = dir.write("switchyard.toml", text);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    Router::start(config).unwrap_or_else(|e| panic!("{e}"))
}

fn served_by(client: &mut Client, key: &str) -> String {
    match client.get(key) {
        Some(v) => String::from_utf8_lossy(&v).into_owned(),
        None => "miss".into(),
    }
}

fn stat(client: &mut Client, name: &str) -> Option<String> {
    client.send(b"stats\r\n");
    let reply = client.read_until(b"END\r\n");
    let prefix = format!("STAT {name} ");
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn swapping_routes_and_plugin_code_under_load_drops_nothing() {
    let _heavy = switchyard_tests::heavy();
    let (a, b, keys) = two_pools();
    let dir = TestDir::new("swap-under-load");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    // Swaps come from reload_with only: the watcher would also react to the plugin file writes.
    let no_watch = |to| config_text(&a, &b, to, "").replace("[server]", "[server]\nwatch = false");
    let router = Arc::new(start_from(&dir, &no_watch("a")));
    let stop = Arc::new(AtomicBool::new(false));

    // Eight connections pipeline batches of gets and sets continuously.
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (router, stop, keys) = (router.clone(), stop.clone(), keys.clone());
            std::thread::spawn(move || {
                let mut client = connect(&router, 0);
                let (mut a_hits, mut b_hits, mut stored, mut round) = (0u64, 0u64, 0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let mut batch = Vec::new();
                    for i in 0..10 {
                        let key = &keys[(round as usize * 10 + i + c) % keys.len()];
                        batch.extend_from_slice(format!("get {key}\r\n").as_bytes());
                    }
                    batch.extend_from_slice(
                        format!("set own-{c}-{round} 0 0 1\r\nx\r\n").as_bytes(),
                    );
                    // Generation n >= 2 routes to b when n is even, to a when odd (1 is a).
                    // A request starts on a generation current between these two readings;
                    // when they are equal, its reply must come from that generation's pool.
                    let before = router.generation().number;
                    client.send(&batch);
                    let replies = client.replies(11);
                    let after = router.generation().number;
                    let only = (before == after).then_some(if before % 2 == 0 { 'b' } else { 'a' });
                    for reply in replies {
                        let pool = |p: char| only.is_none_or(|o| o == p);
                        match reply.as_slice() {
                            r if r.ends_with(b"\r\na\r\nEND\r\n") && pool('a') => a_hits += 1,
                            r if r.ends_with(b"\r\nb\r\nEND\r\n") && pool('b') => b_hits += 1,
                            b"STORED\r\n" => stored += 1,
                            other => panic!(
                                "client {c}: unexpected reply {:?} (generations {before}..={after})",
                                String::from_utf8_lossy(other)
                            ),
                        }
                    }
                    round += 1;
                }
                (a_hits, b_hits, stored)
            })
        })
        .collect();

    // 100 swaps between the two route trees; every fifth also replaces the plugin's code.
    let started = Instant::now();
    for swap in 0..100u8 {
        let to = if swap % 2 == 0 { "b" } else { "a" };
        if swap % 5 == 0 {
            dir.write("guard.wasm", wasm::forwarding_plugin_variant(swap));
        }
        let config = Config::from_toml(&no_watch(to), &dir.path().join("switchyard.toml"))
            .expect("valid config");
        router
            .reload_with(config)
            .unwrap_or_else(|e| panic!("swap {swap}: {e}"));
    }
    let swapping = started.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let (mut a_hits, mut b_hits, mut stored) = (0, 0, 0);
    for c in clients {
        let (x, y, z) = c.join().expect("a client thread failed");
        (a_hits, b_hits, stored) = (a_hits + x, b_hits + y, stored + z);
    }
    println!(
        "100 swaps in {swapping:?}: {a_hits} gets from a, {b_hits} from b, {stored} sets, no errors"
    );
    assert!(a_hits > 0 && b_hits > 0 && stored > 0);
    assert_eq!(router.generation().number, 101);
    // Old generations are freed once their last request ends.
    let alive = poll_until(Duration::from_secs(5), || {
        (router.control().generations_alive() == 1).then_some(())
    });
    assert!(
        alive.is_some(),
        "{} generations still alive",
        router.control().generations_alive()
    );
}

#[test]
fn every_trigger_publishes_and_new_requests_follow_at_once() {
    let _heavy = switchyard_tests::heavy();
    let (a, b, _) = two_pools();
    let dir = TestDir::new("triggers");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let admin = "[admin]\naddress = \"127.0.0.1:0\"";
    let router = start_from(&dir, &config_text(&a, &b, "a", admin));
    let mut client = connect(&router, 0);
    assert_eq!(served_by(&mut client, "k1"), "a");

    // File watch: within a second of the change.
    let changed = Instant::now();
    dir.write("switchyard.toml", config_text(&a, &b, "b", admin));
    let followed = poll_until(Duration::from_secs(1), || {
        (served_by(&mut client, "k1") == "b").then_some(())
    });
    assert!(
        followed.is_some(),
        "the watched file change was not followed within 1 s"
    );
    println!("file change to new policy: {:?}", changed.elapsed());

    // The admin command: the reply comes after the publish.
    let admin_addr = router.admin_addr().expect("admin listener");
    dir.write("switchyard.toml", config_text(&a, &b, "a", admin));
    let mut admin_client = Client::connect(admin_addr);
    let reply = admin_client.request_str("reload\r\n");
    assert!(reply.starts_with("OK "), "{reply:?}");
    assert_eq!(
        served_by(&mut client, "k1"),
        "a",
        "immediately after `reload` returned"
    );
}

#[test]
fn sighup_reloads_the_binary() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("sighup");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let port = free_port();
    let text = |to| {
        config_text(&a, &b, to, "")
            .replace(
                "address = \"127.0.0.1:0\"",
                &format!("address = \"127.0.0.1:{port}\""),
            )
            .replace("[server]", "[server]\nwatch = false")
    };
    let path = dir.write("switchyard.toml", text("a"));
    let mut child = Command::new(switchyard_binary())
        .args(["--config".as_ref(), path.as_os_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start switchyard");
    let ready = poll_until(Duration::from_secs(20), || {
        switchyard_tests::ports::accepts(loopback(port)).then_some(())
    });
    assert!(ready.is_some(), "switchyard did not listen");
    let mut client = Client::connect(loopback(port));
    assert_eq!(served_by(&mut client, "k1"), "a");

    dir.write("switchyard.toml", text("b"));
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let followed = poll_until(Duration::from_secs(2), || {
        (served_by(&mut client, "k1") == "b").then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(followed.is_some(), "SIGHUP did not publish the new config");
}

#[test]
fn a_broken_reload_leaves_the_running_generation_serving() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("broken");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    dir.write("not-wasm.wasm", b"this is not a module");
    // Reloads come from `reload` only, so each failure is counted exactly once.
    let good = config_text(&a, &b, "a", "").replace("[server]", "[server]\nwatch = false");
    let router = start_from(&dir, &good);
    let mut client = connect(&router, 0);
    let cases = [
        (
            "broken TOML",
            good.replace("[pools.b]", "[pools.b"),
            "unclosed table",
        ),
        (
            "unknown plugin",
            good.replace("\"guard.wasm\"", "\"no-such-plugin\""),
            "no-such-plugin",
        ),
        (
            "init rejects its config",
            good.replace(
                "plugin = \"guard.wasm\"",
                "plugin = \"prefix\"\nconfig = { default = \"nowhere\" }",
            ),
            "nowhere",
        ),
        (
            "not wasm",
            good.replace("guard.wasm", "not-wasm.wasm"),
            "not a WebAssembly module",
        ),
    ];
    for (n, (what, text, reason)) in cases.iter().enumerate() {
        dir.write("switchyard.toml", text);
        let err = router.reload().expect_err(what);
        assert!(err.to_string().contains(reason), "{what}: {err}");
        assert_eq!(
            served_by(&mut client, "k1"),
            "a",
            "{what}: still served by generation 1"
        );
        assert_eq!(
            stat(&mut client, "generation").as_deref(),
            Some("1"),
            "{what}"
        );
        assert_eq!(
            stat(&mut client, "reload_failures"),
            Some((n + 1).to_string()),
            "{what}"
        );
        let last = stat(&mut client, "last_reload_error").unwrap_or_default();
        assert!(
            last.contains(reason),
            "{what}: stats last_reload_error is {last:?}"
        );
    }

    // A reload that publishes clears the last error and says when it succeeded.
    assert_eq!(
        stat(&mut client, "last_reload_success").as_deref(),
        Some("0")
    );
    dir.write("switchyard.toml", &good);
    router.reload().expect("the good config reloads");
    assert_eq!(stat(&mut client, "last_reload_error"), None);
    let success: u64 = stat(&mut client, "last_reload_success")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    assert!(
        success + 5 >= now && success <= now + 1,
        "last_reload_success {success}, now {now}"
    );
}

/// A plugin file that a refused reload needed, created afterwards, is noticed by the watcher
/// and published without another edit of the config.
#[test]
fn a_plugin_file_created_after_a_refused_reload_is_published() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("late-plugin");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let good = config_text(&a, &b, "a", "");
    let router = start_from(&dir, &good);
    let mut client = connect(&router, 0);
    let first = wait_stat(&mut client, "generation", |_| true, "the first generation");

    dir.write(
        "switchyard.toml",
        good.replace("guard.wasm", "later.wasm")
            .replace("children = [\"a\"]", "children = [\"b\"]"),
    );
    wait_stat(
        &mut client,
        "reload_failures",
        |f| f >= 1,
        "the reload needing later.wasm is refused",
    );
    assert!(
        stat(&mut client, "last_reload_error")
            .unwrap_or_default()
            .contains("later.wasm"),
        "the error names the missing file"
    );
    dir.write("later.wasm", wasm::forwarding_plugin_variant(3));
    wait_stat(
        &mut client,
        "generation",
        |g| g > first,
        "the new plugin file is noticed",
    );
    assert_eq!(served_by(&mut client, "k1"), "b");
    assert_eq!(
        stat(&mut client, "last_reload_error"),
        None,
        "reloads {:?}, failures {:?}",
        stat(&mut client, "reloads"),
        stat(&mut client, "reload_failures")
    );
}

#[test]
fn a_plugin_that_traps_on_every_request_is_rolled_back() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("rollback");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let router = start_from(
        &dir,
        &config_text(&a, &b, "a", "[server]\nwatch = false").replace("[server]\nworkers = 2\n", ""),
    );
    let mut client = connect(&router, 0);
    assert_eq!(served_by(&mut client, "trap1"), "miss");

    // The same file overwritten with code that traps on `trap*` keys, then reloaded.
    dir.write("guard.wasm", wasm::trapping_plugin());
    router.reload().expect("the trapping plugin loads fine");
    let mut failed = 0;
    let recovered = poll_until(Duration::from_secs(5), || {
        let reply = client.request_str("get trap1\r\n");
        if reply.starts_with("SERVER_ERROR") {
            failed += 1;
            None
        } else {
            Some(reply)
        }
    });
    assert_eq!(
        recovered.as_deref(),
        Some("END\r\n"),
        "rolled back to the forwarding plugin"
    );
    assert!(failed >= 20, "{failed} requests failed before the rollback");
    assert_eq!(stat(&mut client, "rollbacks").as_deref(), Some("1"));
    println!("rolled back after {failed} failed requests");
    let _ = std::io::stdout().flush();
}

#[test]
fn listeners_open_and_close_on_reload_without_touching_the_others() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("listeners");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let (p1, p2) = (free_port(), free_port());
    let with_ports = |ports: &[u16]| {
        let base = config_text(&a, &b, "a", "").replace("[server]", "[server]\nwatch = false");
        let one = "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"root\"\n";
        let listeners: String = ports
            .iter()
            .map(|p| one.replace("127.0.0.1:0", &format!("127.0.0.1:{p}")))
            .collect();
        base.replace(one, &listeners)
    };
    let router = start_from(&dir, &with_ports(&[p1]));
    let mut on_p1 = Client::connect(loopback(p1));
    assert_eq!(served_by(&mut on_p1, "k1"), "a");

    // Adding p2 opens it; p1 and its open connection are untouched.
    dir.write("switchyard.toml", with_ports(&[p1, p2]));
    router.reload().expect("add a listener");
    let mut on_p2 = Client::connect(loopback(p2));
    assert_eq!(served_by(&mut on_p2, "k2"), "a");
    assert_eq!(served_by(&mut on_p1, "k3"), "a");
    assert_eq!(router.local_addrs(), vec![loopback(p1), loopback(p2)]);

    // Removing p1 closes it (once the generations using it are gone); p2 keeps serving.
    dir.write("switchyard.toml", with_ports(&[p2]));
    router.reload().expect("remove a listener");
    assert_eq!(served_by(&mut on_p2, "k4"), "a");
    on_p1.send(b"get k5\r\n");
    on_p1.expect_closed();
    let closed = poll_until(Duration::from_secs(5), || {
        (!switchyard_tests::ports::accepts(loopback(p1))).then_some(())
    });
    assert!(
        closed.is_some(),
        "port {p1} still accepts after its listener was removed"
    );
    assert_eq!(served_by(&mut on_p2, "k6"), "a");
}

/// A number stat, polled until `done` says it is what the test waits for.
fn wait_stat(client: &mut Client, name: &str, done: impl Fn(u64) -> bool, what: &str) -> u64 {
    poll_until(Duration::from_secs(10), || {
        stat(client, name)
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| done(*v))
    })
    .unwrap_or_else(|| panic!("{what}: stat {name} is {:?}", stat(client, name)))
}

/// With the watcher on, as in production: an edit that points the route at a trapping plugin
/// is published, rolled back once within `rollback_faults` failed requests, and stays rolled
/// back while the files stay as they are (the watcher does not publish the same bytes again);
/// fixing the plugin file publishes it.
#[test]
fn a_route_edited_to_a_trapping_plugin_is_rolled_back_once_and_stays_rolled_back() {
    rolled_back_once_and_stays("rollback-sticks", false);
}

/// The same with an edit that also adds a listener: the rollback closes it, the watcher does
/// not reopen it in a loop, and the fixed plugin's reload binds it again at once.
#[test]
fn an_edit_adding_a_listener_and_a_trapping_plugin_is_rolled_back_once_and_rebinds_when_fixed() {
    rolled_back_once_and_stays("rollback-listener", true);
}

fn rolled_back_once_and_stays(name: &str, add_listener: bool) {
    let (a, b, _) = two_pools();
    let dir = TestDir::new(name);
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let good = config_text(&a, &b, "a", "");
    let router = start_from(&dir, &good);
    let mut client = connect(&router, 0);
    assert_eq!(served_by(&mut client, "trap1"), "miss");
    let first = wait_stat(&mut client, "generation", |_| true, "the first generation");

    let added = free_port();
    let mut edited = good.replace("guard.wasm", "trap.wasm");
    if add_listener {
        edited.push_str(&format!(
            "\n[[listeners]]\naddress = \"127.0.0.1:{added}\"\nroute = \"root\"\n"
        ));
    }
    dir.write("trap.wasm", wasm::trapping_plugin());
    dir.write("switchyard.toml", &edited);
    wait_stat(
        &mut client,
        "generation",
        |g| g > first,
        "the edit is published",
    );
    let mut failed = 0;
    let recovered = poll_until(Duration::from_secs(10), || {
        let reply = client.request_str("get trap1\r\n");
        if reply.starts_with("SERVER_ERROR") {
            failed += 1;
            None
        } else {
            Some(reply)
        }
    });
    assert_eq!(recovered.as_deref(), Some("END\r\n"), "rolled back");
    assert_eq!(stat(&mut client, "rollbacks").as_deref(), Some("1"));
    // `config_text` sets rollback_faults = 20, and this client is the only one.
    assert!(
        failed <= 20,
        "rolled back after {failed} failed requests, more than rollback_faults"
    );
    let rolled_back = wait_stat(&mut client, "generation", |_| true, "after the rollback");
    assert_eq!(
        stat(&mut client, "rolled_back_from"),
        Some((rolled_back - 1).to_string()),
        "stats names the generation rolled back from"
    );
    let reloads = stat(&mut client, "reloads");
    println!("rolled back after {failed} failed requests, to generation {rolled_back}");
    if add_listener {
        let closed = poll_until(Duration::from_secs(5), || {
            (!switchyard_tests::ports::accepts(loopback(added))).then_some(())
        });
        assert!(closed.is_some(), "the rollback left port {added} open");
    }

    // Several watch intervals with the files unchanged: nothing is published again.
    std::thread::sleep(reload_settle());
    assert_eq!(
        wait_stat(&mut client, "generation", |_| true, "still rolled back"),
        rolled_back,
        "the watcher published again after the rollback"
    );
    assert_eq!(stat(&mut client, "reloads"), reloads);
    assert_eq!(stat(&mut client, "reload_failures").as_deref(), Some("0"));
    assert_eq!(served_by(&mut client, "trap1"), "miss");

    // A fixed plugin in the file the config names is noticed and published.
    dir.write("trap.wasm", wasm::forwarding_plugin_variant(7));
    wait_stat(
        &mut client,
        "generation",
        |g| g > rolled_back,
        "the fixed plugin is published",
    );
    assert_eq!(served_by(&mut client, "trap1"), "miss");
    assert_eq!(stat(&mut client, "rollbacks").as_deref(), Some("1"));
    assert_eq!(stat(&mut client, "rolled_back_from").as_deref(), Some("0"));
    assert_eq!(stat(&mut client, "reload_failures").as_deref(), Some("0"));
    if add_listener {
        let mut on_added = Client::connect(loopback(added));
        assert_eq!(served_by(&mut on_added, "k1"), "a");
    }
}

/// Long enough for the watcher to look at the files several times (its interval is 200 ms).
fn reload_settle() -> Duration {
    switchyard::reload::WATCH_INTERVAL * 6
}

/// Every edit of the config file under the watcher is one reload: no more, no fewer. Each edit
/// replaces the file whole (a rename), as editors do: a file caught half written by a write
/// stalled past the watcher's quiet period (a loaded machine) is a refused reload, which is
/// not what this counts.
#[test]
fn a_hundred_config_edits_make_a_hundred_reloads() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("hundred-edits");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    let base = config_text(&a, &b, "a", "");
    let router = start_from(&dir, &base);
    let mut client = connect(&router, 0);
    for edit in 1..=100u64 {
        dir.replace("switchyard.toml", format!("{base}\n# edit {edit}\n"));
        wait_stat(&mut client, "reloads", |r| r >= edit, "an edit is reloaded");
    }
    std::thread::sleep(reload_settle());
    assert_eq!(stat(&mut client, "reloads").as_deref(), Some("100"));
    assert_eq!(stat(&mut client, "reload_failures").as_deref(), Some("0"));
    assert_eq!(served_by(&mut client, "k1"), "a");
}

/// `switchyard plugin inspect FILE`'s `sha256` line.
fn inspected_sha256(file: &std::path::Path) -> String {
    let output = Command::new(switchyard_binary())
        .args(["plugin", "inspect"])
        .arg(file)
        .output()
        .expect("run switchyard plugin inspect");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "inspect: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("init     ok"), "{stdout}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("sha256   "))
        .unwrap_or_else(|| panic!("no sha256 line: {stdout}"))
        .to_string()
}

#[test]
fn a_pinned_plugin_replaced_on_disk_is_refused_and_the_pinned_one_keeps_serving() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("pinned-plugin");
    let guard = dir.write("guard.wasm", wasm::forwarding_plugin());
    let pin = inspected_sha256(&guard);
    assert_eq!(pin.len(), 64, "{pin}");
    let pinned = format!(
        "{}sha256 = \"sha256:{pin}\"\n",
        config_text(&a, &b, "a", "")
    );

    // A wrong pin: the router would not start, and says where and why.
    let wrong = "0".repeat(64);
    let bad = dir.write("bad.toml", pinned.replace(&pin, &wrong));
    let output = Command::new(switchyard_binary())
        .arg("--check-config")
        .arg(&bad)
        .output()
        .expect("run switchyard --check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = pinned
        .lines()
        .position(|l| l.starts_with("plugin = \"guard.wasm\""))
        .expect("the route's plugin line")
        + 1;
    for mention in [
        format!("{}:{line}", bad.display()),
        format!("sha256:{pin}"),
        format!("sha256:{wrong}"),
    ] {
        assert!(stderr.contains(&mention), "{mention:?} not in: {stderr}");
    }

    let router = start_from(&dir, &pinned);
    let mut client = connect(&router, 0);
    let first = wait_stat(&mut client, "generation", |_| true, "the first generation");
    assert_eq!(served_by(&mut client, "k1"), "a");

    // Another build lands on disk (and the route now names pool b): refused, as pinned.
    dir.write("guard.wasm", wasm::forwarding_plugin_variant(3));
    dir.write(
        "switchyard.toml",
        pinned.replace("children = [\"a\"]", "children = [\"b\"]"),
    );
    wait_stat(
        &mut client,
        "reload_failures",
        |f| f >= 1,
        "the reload with another guard.wasm is refused",
    );
    let error = stat(&mut client, "last_reload_error").unwrap_or_default();
    assert!(
        error.contains("guard.wasm") && error.contains(&format!("pins sha256:{pin}")),
        "{error}"
    );
    assert_eq!(
        stat(&mut client, "generation"),
        Some(first.to_string()),
        "still the first generation"
    );
    assert_eq!(served_by(&mut client, "k1"), "a");
}

/// A reload keeps the numbers of a node it leaves as it was (the same module, config and
/// children) and starts afresh those of a node it changes: another tenant's or another
/// listener's edit does not reset this one's `stats plugins`.
#[test]
fn a_reload_keeps_the_counts_of_the_nodes_it_leaves_as_they_were() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("reload-carry");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    // Both listeners on `127.0.0.1:0`: the reload keeps each one's socket.
    let text = |other_to: &str| {
        config_text(&a, &b, "a", "")
            + &format!(
                "\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"other\"\n\n\
                 [routes.other]\nplugin = \"guard.wasm\"\nchildren = [\"{other_to}\"]\n"
            )
    };
    let router = start_from(&dir, &text("b"));
    let (mut root, mut other) = (connect(&router, 0), connect(&router, 1));
    for _ in 0..5 {
        assert_eq!(served_by(&mut root, "k1"), "a");
    }
    for _ in 0..3 {
        assert_eq!(served_by(&mut other, "k1"), "b");
    }
    let calls = |client: &mut Client| {
        let plugins = client.stats_group("plugins").0;
        let n = |node: &str| {
            plugins
                .get(&format!("routes.{node}:calls"))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no routes.{node}:calls in {plugins:?}"))
        };
        (n("root"), n("other"))
    };
    assert_eq!(calls(&mut root), (5, 3));

    dir.write("switchyard.toml", text("a"));
    router.reload().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served_by(&mut other, "k1"), "a", "the edit is served");
    // `root` is as it was: its 5 calls stay. `other` changed: its count starts again.
    assert_eq!(calls(&mut root), (5, 1));
    assert_eq!(served_by(&mut root, "k1"), "a");
    assert_eq!(calls(&mut root), (6, 1));
}

/// A reload keeps the plugin instances of a node it leaves as it was, on every worker, with
/// whatever the plugin keeps in its memory; a node it changes gets fresh ones. The plugin
/// counts its calls in its memory and alternates its children by that count.
#[test]
fn a_reload_keeps_the_instances_of_the_nodes_it_leaves_as_they_were() {
    let (a, b, _) = two_pools();
    let dir = TestDir::new("reload-instances");
    dir.write("guard.wasm", wasm::forwarding_plugin());
    dir.write("alternate.wasm", wasm::alternating_plugin());
    let text = |other_to: &str, root_config: &str| {
        format!(
            "[server]\nworkers = 1\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"root\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"other\"\n\n\
             [pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n\
             [routes.root]\nplugin = \"alternate.wasm\"\nchildren = [\"a\", \"b\"]\n\
             config = {{ {root_config} }}\n\n\
             [routes.other]\nplugin = \"guard.wasm\"\nchildren = [\"{other_to}\"]\n",
            a.spec(),
            b.spec()
        )
    };
    let router = start_from(&dir, &text("b", ""));
    let mut root = connect(&router, 0);
    let served: Vec<String> = (0..3).map(|_| served_by(&mut root, "k1")).collect();
    assert_eq!(served, ["b", "a", "b"]);

    // Another node changes: `root`'s instance carries on, its fourth call goes to child 0.
    dir.write("switchyard.toml", text("a", ""));
    router.reload().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        served_by(&mut connect(&router, 1), "k1"),
        "a",
        "the edit is served"
    );
    assert_eq!(
        served_by(&mut root, "k1"),
        "a",
        "the same instance's fourth call"
    );

    // `root` itself changes (its config): a fresh instance, whose first call goes to child 1.
    dir.write("switchyard.toml", text("a", "edition = 2"));
    router.reload().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        served_by(&mut root, "k1"),
        "b",
        "a fresh instance's first call"
    );
}
