//! One misbehaving plugin costs its own requests only: not another listener's throughput, not
//! the latency of requests on a reload, not a published generation that cannot run on every
//! worker, not the log, and not more failed requests than `[plugins] rollback_faults`.
//!
//! Every test runs the router binary as a process of its own (`SWITCHYARD_BINARY` picks
//! another build, to measure one before a change) and prints what it measured with
//! `eprintln!`, so `--nocapture` shows the figures. Each measures first and asserts after.

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use switchyard_tests::load::Load;
use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, show, wasm};

/// `[server]` and `[[listeners]]` of a config: `workers` workers, watching its files or not,
/// one listener per (port, route).
fn head(workers: usize, watch: bool, plugins: &str, listeners: &[(u16, &str)]) -> String {
    let mut text = format!("[server]\nworkers = {workers}\nwatch = {watch}\n\n{plugins}\n");
    for (port, route) in listeners {
        text.push_str(&format!(
            "[[listeners]]\naddress = \"127.0.0.1:{port}\"\nroute = \"{route}\"\n\n"
        ));
    }
    text
}

/// A pool `name` of the one server `server`.
fn pool(name: &str, server: &Memcached) -> String {
    format!("[pools.{name}]\nservers = [\"{}\"]\n\n", server.spec())
}

/// A route `name` of the plugin file `plugin`, with `children`.
fn route(name: &str, plugin: &str, children: &[&str]) -> String {
    let children: Vec<String> = children.iter().map(|c| format!("{c:?}")).collect();
    format!(
        "[routes.{name}]\nplugin = \"{plugin}\"\nchildren = [{}]\n\n",
        children.join(", ")
    )
}

/// A number stat, asked on a fresh connection to `addr` (so a stuck connection of the test's
/// own does not hide it).
fn stat(addr: SocketAddr, name: &str) -> u64 {
    Client::connect(addr)
        .stat(name)
        .unwrap_or_else(|| panic!("no stat {name} at {addr}"))
}

/// A reload whose new route's plugin takes a second in `init`: clients of the listener the
/// route is put behind see no request held for anything like that second, and the new
/// configuration is published.
#[test]
fn a_plugin_whose_init_takes_a_second_holds_no_client_request() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let port = free_port();
    let before = head(2, false, "", &[(port, "p")]) + &pool("p", &server);
    let after = head(2, false, "", &[(port, "slow")])
        + &pool("p", &server)
        + &route("slow", "slow.wasm", &["p"]);
    let router = RouterProcess::start_listening(
        "isolation-slow-init",
        &before,
        &[port],
        &[("slow.wasm", wasm::slow_init_plugin(1000))],
    );
    let (generation, reloads) = (
        stat(router.listener(0), "generation"),
        stat(router.listener(0), "reloads"),
    );

    let load = Load::start(router.listener(0), 4, 1, "slow-init");
    load.wait_served(8);
    let _ = load.phase();
    let window = Instant::now();
    // Half a second of load before the reload, then the reload, under load.
    std::thread::sleep(Duration::from_millis(500));
    router.write("switchyard.toml", &after);
    router.signal(Signal::HUP);
    let signalled = Instant::now();
    let published = poll_until(Duration::from_secs(10), || {
        (stat(router.listener(0), "generation") > generation).then(|| signalled.elapsed())
    });
    // The load runs on for at least a second after the publish and 3 s in all: every
    // worker's first request through the new route falls in the window.
    let end = (window + Duration::from_secs(3)).max(Instant::now() + Duration::from_secs(1));
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    let (seen, elapsed) = load.stop();
    let reloads_after = stat(router.listener(0), "reloads");

    eprintln!(
        "reload to a plugin whose init takes 1 s: published after {published:?}; max client \
         latency {:?} over {} requests in {elapsed:?} ({} SERVER_ERROR, {} other)",
        seen.max_latency,
        seen.ok + seen.server_errors + seen.other_count,
        seen.server_errors,
        seen.other_count,
    );
    assert!(
        published.is_some(),
        "the reload was not published: {}",
        router.log()
    );
    assert!(
        reloads_after > reloads,
        "stats reloads stayed {reloads_after}"
    );
    assert_eq!(
        (seen.server_errors, seen.other_count),
        (0, 0),
        "requests failed across the reload: {:?}",
        seen.other
    );
    assert!(
        seen.max_latency < Duration::from_millis(250),
        "a request was held {:?} across the reload",
        seen.max_latency
    );
}

/// A reload to a plugin whose `init` succeeds when the config is checked and on worker 0 but
/// fails on worker 1 is refused as a whole: it counts as a failed reload, the running
/// generation stays, and requests on every worker keep being served.
#[test]
fn a_plugin_whose_init_fails_on_one_worker_is_a_refused_reload() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let port = free_port();
    let config = |plugin: &str| {
        head(2, false, "", &[(port, "guard")])
            + &pool("p", &server)
            + &route("guard", plugin, &["p"])
    };
    let router = RouterProcess::start_listening(
        "isolation-init-fails",
        &config("guard.wasm"),
        &[port],
        &[
            ("guard.wasm", wasm::forwarding_plugin()),
            ("fails.wasm", wasm::init_fails_off_worker_zero_plugin()),
        ],
    );
    let addr = router.listener(0);
    let (generation, failures, reloads) = (
        stat(addr, "generation"),
        stat(addr, "reload_failures"),
        stat(addr, "reloads"),
    );

    router.write("switchyard.toml", config("fails.wasm"));
    router.signal(Signal::HUP);
    // The reload is over when it is counted, either way.
    let done = poll_until(Duration::from_secs(10), || {
        (stat(addr, "reload_failures") > failures || stat(addr, "reloads") > reloads).then_some(())
    });

    // 200 requests over 20 fresh connections, all open at once: the workers share them.
    let mut clients: Vec<Client> = (0..20).map(|_| Client::connect(addr)).collect();
    let (mut ok, mut server_errors, mut other) = (0, 0, Vec::new());
    for round in 0..5 {
        for (c, client) in clients.iter_mut().enumerate() {
            let key = format!("init-fails-{c}-{round}");
            for request in [
                format!("set {key} 0 0 2\r\nok\r\n"),
                format!("get {key}\r\n"),
            ] {
                let reply = client.request(request.as_bytes());
                if reply == b"STORED\r\n" || reply.ends_with(b"\r\nok\r\nEND\r\n") {
                    ok += 1;
                } else if reply.starts_with(b"SERVER_ERROR") {
                    server_errors += 1;
                    if other.len() < 3 {
                        other.push(show(&reply));
                    }
                } else {
                    other.push(show(&reply));
                }
            }
        }
    }
    let (generation_after, failures_after) =
        (stat(addr, "generation"), stat(addr, "reload_failures"));

    eprintln!(
        "reload to a plugin whose init fails on worker 1: reload_failures {failures} -> \
         {failures_after}, generation {generation} -> {generation_after}; of 200 requests \
         {ok} ok, {server_errors} SERVER_ERROR (first replies not ok: {other:?})"
    );
    assert!(done.is_some(), "the reload was never counted");
    assert_eq!(
        failures_after,
        failures + 1,
        "the reload should be refused: {}",
        router.log()
    );
    assert_eq!(generation_after, generation, "a generation was published");
    assert_eq!(server_errors, 0, "requests failed: {other:?}");
    assert_eq!(ok, 200, "not every request was served: {other:?}");
}

/// Whether a log line (escape sequences removed) has a level, as every line the router writes
/// should: a message split over lines leaves lines without one.
fn has_level(line: &str) -> bool {
    ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
        .iter()
        .any(|level| line.contains(level))
}

/// 5,000 trapping requests in two seconds make a handful of log lines, not 5,000: the router
/// logs a fault kind of a node once per interval with a count of those it did not log. Lines
/// are whole (none is a fragment of a message split over lines) and say "wasm trap" once.
#[test]
fn faults_do_not_flood_the_log() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let port = free_port();
    let config = head(2, false, "", &[(port, "guarded")])
        + &pool("p", &server)
        + &route("guarded", "trap.wasm", &["p"]);
    let router = RouterProcess::start_listening(
        "isolation-log",
        &config,
        &[port],
        &[("trap.wasm", wasm::trapping_plugin())],
    );
    // Only what is written from here on is counted.
    let mut warm = Client::connect(router.listener(0));
    warm.set("warm", b"1");
    let start_at = router.log().len();

    const REQUESTS: u64 = 5000;
    const THREADS: u64 = 2;
    let window = Duration::from_secs(2);
    let started = Instant::now();
    let senders: Vec<JoinHandle<(u64, u64)>> = (0..THREADS)
        .map(|t| {
            let addr = router.listener(0);
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let per_thread = REQUESTS / THREADS;
                let (mut errors, mut other) = (0, 0);
                for i in 0..per_thread {
                    // Paced to spread the requests over the window.
                    let due = started + window.mul_f64(i as f64 / per_thread as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    let reply = client.request(format!("get trap:{t}-{i}\r\n").as_bytes());
                    if reply.starts_with(b"SERVER_ERROR") {
                        errors += 1;
                    } else {
                        other += 1;
                    }
                }
                (errors, other)
            })
        })
        .collect();
    let (mut errors, mut other) = (0, 0);
    for s in senders {
        let (e, o) = s.join().expect("a sending client panicked");
        errors += e;
        other += o;
    }
    let sent_in = started.elapsed();
    // A last line for the interval (with its count) may follow the last fault.
    std::thread::sleep(Duration::from_secs(1));
    let log = switchyard_tests::process::strip_ansi(&router.log()[start_at..]);
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let about_faults: Vec<&&str> = lines
        .iter()
        .filter(|l| {
            let lower = l.to_lowercase();
            lower.contains("fault") || lower.contains("trap") || lower.contains("routes.guarded")
        })
        .collect();
    let doubled: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("wasm trap: wasm trap"))
        .collect();
    let fragments: Vec<&&str> = lines.iter().filter(|l| !has_level(l)).collect();

    eprintln!(
        "{REQUESTS} trapping requests in {sent_in:?} ({errors} SERVER_ERROR, {other} other): \
         {} log lines about the fault ({} lines in all, {} with `wasm trap: wasm trap`, {} \
         without a level); first: {:?}",
        about_faults.len(),
        lines.len(),
        doubled.len(),
        fragments.len(),
        about_faults.first(),
    );
    assert_eq!(
        (errors, other),
        (REQUESTS, 0),
        "every trapping request fails alone"
    );
    assert!(
        !about_faults.is_empty(),
        "the faults were not logged at all: {log}"
    );
    assert!(
        about_faults.len() <= 20,
        "{} log lines for {REQUESTS} faults of one kind on one node; last: {:?}",
        about_faults.len(),
        about_faults.last()
    );
    assert!(doubled.is_empty(), "doubled prefix: {:?}", doubled.first());
    assert!(
        fragments.is_empty(),
        "log lines without a level (a message split over lines?): {:?}",
        &fragments[..fragments.len().min(5)]
    );
}

/// With `rollback_faults = 100`, four clients loading the router and the route edited (under
/// the watcher) to a plugin that traps on every call: the router rolls back after about 100
/// failed requests (in-flight ones aside), and stays rolled back.
#[test]
fn rollback_comes_within_rollback_faults_failed_requests_under_load() {
    let _heavy = switchyard_tests::heavy();
    const ROLLBACK_FAULTS: u64 = 100;
    const CLIENTS: usize = 4;
    let server = Memcached::start();
    let port = free_port();
    let config = |plugin: &str| {
        head(
            2,
            true,
            &format!("[plugins]\nrollback_faults = {ROLLBACK_FAULTS}\n"),
            &[(port, "root")],
        ) + &pool("p", &server)
            + &route("root", plugin, &["p"])
    };
    let router = RouterProcess::start_listening(
        "isolation-rollback",
        &config("guard.wasm"),
        &[port],
        &[
            ("guard.wasm", wasm::forwarding_plugin()),
            ("trap.wasm", wasm::trapping_every_call_plugin()),
        ],
    );
    let addr = router.listener(0);
    let generation = stat(addr, "generation");

    let load = Load::start(addr, CLIENTS, 1, "rollback");
    load.wait_served(8);
    router.write("switchyard.toml", config("trap.wasm"));
    let edited = Instant::now();
    let rolled_back = poll_until(Duration::from_secs(20), || {
        (stat(addr, "rollbacks") >= 1).then(|| edited.elapsed())
    });
    let at_rollback = stat(addr, "generation");
    // Two seconds on the rolled-back configuration, the load still running.
    std::thread::sleep(Duration::from_secs(2));
    let (generation_later, rollbacks_later) = (stat(addr, "generation"), stat(addr, "rollbacks"));
    let (seen, _) = load.stop();

    eprintln!(
        "route edited to a plugin that traps on every call (rollback_faults = \
         {ROLLBACK_FAULTS}, {CLIENTS} clients): rolled back after {rolled_back:?}, \
         {} SERVER_ERROR replies; generation {generation} -> {at_rollback} at the rollback -> \
         {generation_later} 2 s later; rollbacks {rollbacks_later}; {} ok, {} other",
        seen.server_errors, seen.ok, seen.other_count,
    );
    assert!(rolled_back.is_some(), "no rollback: {}", router.log());
    assert!(at_rollback > generation, "the edit was never published");
    let log = router.log();
    let rollback_line = log
        .lines()
        .find(|l| l.contains("rolled back"))
        .unwrap_or("");
    assert!(
        seen.server_errors <= ROLLBACK_FAULTS + CLIENTS as u64,
        "{} requests failed before the rollback; rollback_faults is {ROLLBACK_FAULTS}; the \
         router logged: {rollback_line}",
        seen.server_errors
    );
    assert_eq!(
        (generation_later, rollbacks_later),
        (at_rollback, 1),
        "the rolled-back configuration did not stay"
    );
    assert_eq!(seen.other_count, 0, "unexpected replies: {:?}", seen.other);
}
