//! Backend health: a failing server is marked down, its requests then fail at once instead of
//! paying a timeout, a `version` probe brings it back, and a server that never answers cannot
//! make the router hold an unbounded amount for it.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::ports::poll_until;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::scripted::{Accept, Scripted};
use switchyard_tests::{
    Client, Memcached, Router, connect, locate, router, single_pool_config, specs,
};

const TIMEOUT_MS: u64 = 300;
const CONNECT_TIMEOUT_MS: u64 = 200;
const PROBE_CEILING_MS: u64 = 1000;
/// Scheduling headroom on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(500);
/// A request refused because its server is down never leaves the router.
const FAST: Duration = Duration::from_millis(50);

/// Three servers in one ketama pool with short probes and a `timeout_ms` request timeout;
/// `extra` adds pool keys.
fn start(timeout_ms: u64, extra: &str) -> ([Memcached; 3], Router) {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let refs: Vec<&Memcached> = servers.iter().collect();
    let router = router(&single_pool_config(
        &specs(&refs),
        &format!(
            "connect_timeout_ms = {CONNECT_TIMEOUT_MS}\ntimeout_ms = {timeout_ms}\n\
             probe_floor_ms = 50\nprobe_ceiling_ms = {PROBE_CEILING_MS}\n{extra}"
        ),
    ));
    (servers, router)
}

/// A key that lives on `servers[i]`, for each i.
fn keys_by_server(servers: &[Memcached; 3], router: &Router) -> [String; 3] {
    let keys: Vec<String> = (0..60).map(|i| format!("h-{i}")).collect();
    let mut client = connect(router, 0);
    for key in &keys {
        client.set(key, key.as_bytes());
    }
    let refs: Vec<&Memcached> = servers.iter().collect();
    let placement = locate(&refs, &keys);
    let on = |s: usize| {
        keys.iter()
            .zip(&placement)
            .find(|(_, p)| **p == s)
            .map(|(k, _)| k.clone())
            .expect("60 keys reach every server")
    };
    [on(0), on(1), on(2)]
}

fn timed_get(client: &mut Client, key: &str) -> (String, Duration) {
    let started = Instant::now();
    let reply = client.request_str(&format!("get {key}\r\n"));
    (reply, started.elapsed())
}

fn wait_for_state(client: &mut Client, addr: &str, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    poll_until(within, || {
        (client.backend_stat(addr, "state").as_deref() == Some(state)).then_some(())
    })
    .unwrap_or_else(|| panic!("{addr} did not become {state} within {within:?}"));
    started.elapsed()
}

#[test]
fn a_killed_server_fails_fast_once_down_and_is_probed_back_after_restart() {
    let (mut servers, router) = start(TIMEOUT_MS, "");
    let [victim, other1, other2] = keys_by_server(&servers, &router);
    let addr = servers[0].address();
    let mut client = connect(&router, 0);

    // Load on the healthy servers keeps flowing throughout.
    let load = {
        let mut c = connect(&router, 0);
        let keys = [other1.clone(), other2.clone()];
        std::thread::spawn(move || {
            let mut served = 0u32;
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                for key in &keys {
                    assert_eq!(
                        c.get(key).as_deref(),
                        Some(key.as_bytes()),
                        "bystander {key}"
                    );
                    served += 1;
                }
            }
            served
        })
    };

    let killed = Instant::now();
    servers[0].kill();
    // First request: the connection notices (refused or closed) within the connect timeout.
    let (reply, first) = timed_get(&mut client, &victim);
    assert!(reply.starts_with("SERVER_ERROR "), "{reply:?}");
    assert!(
        first <= Duration::from_millis(CONNECT_TIMEOUT_MS) + SLACK,
        "{first:?}"
    );
    // Once refused, the server is down: every request fails at once, naming why.
    let fail_fast = poll_until(Duration::from_millis(CONNECT_TIMEOUT_MS) + SLACK, || {
        let (reply, took) = timed_get(&mut client, &victim);
        (reply.contains("is down") && took < FAST).then(|| killed.elapsed())
    })
    .expect("requests to a killed server fail fast");
    println!("kill -9 to fail-fast: {fail_fast:?} (first error after {first:?})");
    for _ in 0..20 {
        let (reply, took) = timed_get(&mut client, &victim);
        assert!(
            reply.contains("is down") && took < FAST,
            "{reply:?} after {took:?}"
        );
    }
    assert_eq!(client.backend_stat(&addr, "state").as_deref(), Some("down"));
    let served = load.join().expect("load thread");
    assert!(served > 0, "the bystanders were served under load");

    // Restarted (empty), it is probed back into service: no router restart.
    let restarted = Instant::now();
    servers[0].restart();
    let back = wait_for_state(
        &mut client,
        &addr,
        "up",
        Duration::from_millis(PROBE_CEILING_MS) + SLACK * 2,
    );
    println!("restart to back-in-service: {back:?}");
    assert_eq!(
        client.request_str(&format!("set {victim} 0 0 1\r\nv\r\n")),
        "STORED\r\n"
    );
    assert_eq!(client.get(&victim).as_deref(), Some(&b"v"[..]));
    assert!(restarted.elapsed() < Duration::from_millis(PROBE_CEILING_MS) + SLACK * 3);
    let probes: u64 = client
        .backend_stat(&addr, "probes_ok")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(probes >= 1, "it came back through a probe");
}

#[test]
fn a_hung_server_times_out_is_marked_down_and_probed_back_after_sigcont() {
    let (servers, router) = start(TIMEOUT_MS, "failure_limit = 2");
    let [victim, bystander, _] = keys_by_server(&servers, &router);
    let addr = servers[0].address();
    let mut client = connect(&router, 0);

    servers[0].pause();
    // Each timed-out request resets the connection and counts one failure; two mark it down.
    for round in 0..2 {
        let (reply, took) = timed_get(&mut client, &victim);
        assert!(
            reply.starts_with("SERVER_ERROR "),
            "round {round}: {reply:?}"
        );
        assert!(
            took >= Duration::from_millis(TIMEOUT_MS / 2)
                && took <= Duration::from_millis(TIMEOUT_MS) + SLACK,
            "round {round}: {took:?}"
        );
    }
    assert_eq!(client.backend_stat(&addr, "state").as_deref(), Some("down"));
    let (reply, took) = timed_get(&mut client, &victim);
    assert!(
        reply.contains("is down") && took < FAST,
        "{reply:?} after {took:?}"
    );
    assert_eq!(
        client.get(&bystander).as_deref(),
        Some(bystander.as_bytes())
    );

    // While it stays stopped, probes keep failing and it stays down.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(client.backend_stat(&addr, "state").as_deref(), Some("down"));

    servers[0].resume();
    let back = wait_for_state(
        &mut client,
        &addr,
        "up",
        Duration::from_millis(PROBE_CEILING_MS) + SLACK * 2,
    );
    println!("SIGCONT to back-in-service: {back:?}");
    assert_eq!(client.get(&victim).as_deref(), Some(victim.as_bytes()));
}

#[test]
fn a_server_that_never_answers_cannot_grow_the_router_without_bound() {
    const LIMIT: usize = 64;
    const VALUE: usize = 8 * 1024;
    const REQUESTS: usize = 2000;
    let server = Memcached::start();
    // A long timeout and a high failure limit: only the outstanding bound (about LIMIT of these
    // sets) protects here. The router is a process of its own, so that its memory is its own.
    let pool = single_pool_config(
        &[server.spec()],
        &format!(
            "timeout_ms = 1000\nfailure_limit = 1000\nmax_outstanding_bytes = {}",
            LIMIT * (VALUE + 200)
        ),
    );
    let router = RouterProcess::start("never-answers", |listen| {
        pool.replace("127.0.0.1:0", listen)
    });
    let victim = "h-victim";
    server.pause();

    let addr = router.addr();
    let value = vec![b'x'; VALUE];
    let mut round_rss = Vec::new();
    for round in 0..3 {
        // One writer pipelines sets to the hung server; this thread reads the replies.
        let mut client = Client::connect(addr).with_deadline(Duration::from_secs(20));
        let mut writer = client.writer();
        let payload = {
            let mut one = format!("set {victim} 0 0 {VALUE}\r\n").into_bytes();
            one.extend_from_slice(&value);
            one.extend_from_slice(b"\r\n");
            one
        };
        let sender = std::thread::spawn(move || {
            for _ in 0..REQUESTS {
                writer.write_all(&payload).expect("send");
            }
        });
        let replies = client.replies(REQUESTS);
        sender.join().expect("sender");
        let refused = replies
            .iter()
            .filter(|r| {
                r.starts_with(b"SERVER_ERROR") && r.windows(11).any(|w| w == b"outstanding")
            })
            .count();
        assert!(
            refused >= REQUESTS - 4 * LIMIT,
            "round {round}: only {refused} of {REQUESTS} refused at the outstanding limit"
        );
        assert!(
            replies.iter().all(|r| r.starts_with(b"SERVER_ERROR")),
            "round {round}"
        );
        round_rss.push(router.status_bytes("VmRSS"));
    }
    let sent_per_round = REQUESTS * VALUE;
    let growth = round_rss[2].saturating_sub(round_rss[0]);
    println!("rss after rounds: {round_rss:?}; {sent_per_round} bytes sent per round");
    assert!(
        growth < sent_per_round / 2,
        "memory grew by {growth} bytes over two rounds of {sent_per_round} bytes each"
    );
    server.resume();
}

#[test]
fn with_eject_a_down_servers_keys_move_to_the_next_server_and_back() {
    let (mut servers, router) = start(
        TIMEOUT_MS,
        "hash = { plugin = \"ketama\", config = { eject = true } }",
    );
    let [victim, _, _] = keys_by_server(&servers, &router);
    let addr = servers[0].address();
    let mut client = connect(&router, 0);
    servers[0].kill();
    // The first request finds the server gone (refused: marked down at once); after that its
    // key is served elsewhere.
    let _ = client.request_str(&format!("get {victim}\r\n"));
    wait_for_state(&mut client, &addr, "down", Duration::from_secs(2));
    let moved = poll_until(Duration::from_secs(2), || {
        (client.request_str(&format!("set {victim} 0 0 5\r\nmoved\r\n")) == "STORED\r\n")
            .then_some(())
    });
    assert!(
        moved.is_some(),
        "an ejected server's key is stored elsewhere"
    );
    assert_eq!(client.get(&victim).as_deref(), Some(&b"moved"[..]));
    let elsewhere: Vec<bool> = servers[1..]
        .iter()
        .map(|s| s.holds(std::slice::from_ref(&victim))[0])
        .collect();
    assert_eq!(elsewhere.iter().filter(|h| **h).count(), 1, "{elsewhere:?}");

    // Back up, the key hashes to its own server again (which restarted empty).
    servers[0].restart();
    wait_for_state(
        &mut client,
        &addr,
        "up",
        Duration::from_millis(PROBE_CEILING_MS) + SLACK * 2,
    );
    assert_eq!(
        client.get(&victim),
        None,
        "the key is read from its own, empty server again"
    );
}

#[test]
fn with_failover_in_front_a_killed_server_costs_no_request() {
    let mut servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let backup = Memcached::start();
    let main: Vec<String> = servers.iter().map(Memcached::spec).collect();
    let router = router(&format!(
        r#"
[server]
workers = 2

[[listeners]]
address = "127.0.0.1:0"
route = "safe"

[pools.main]
servers = {main:?}
connect_timeout_ms = {CONNECT_TIMEOUT_MS}
timeout_ms = {TIMEOUT_MS}

[pools.backup]
servers = ["{}"]

[routes.safe]
plugin = "failover"
children = ["main", "backup"]
"#,
        backup.spec()
    ));
    let keys: Vec<String> = (0..60).map(|i| format!("f-{i}")).collect();
    let mut client = connect(&router, 0);
    for key in &keys {
        client.set(key, key.as_bytes());
    }

    // Two clients hammer every key with sets and gets while one main server is killed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let mut c = connect(&router, 0);
            let keys = keys.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for key in &keys {
                        let set = c.request_str(&format!("set {key} {w} 0 1\r\nv\r\n"));
                        let get = c.request_str(&format!("get {key}\r\n"));
                        for reply in [set, get] {
                            if reply == "STORED\r\n"
                                || reply.starts_with("VALUE ")
                                || reply == "END\r\n"
                            {
                                ok += 1;
                            } else {
                                failed.push(reply);
                            }
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    servers[0].kill();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.join().expect("load thread");
        assert!(
            failed.is_empty(),
            "{} failed replies, e.g. {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
        total += ok;
    }
    println!("{total} requests through failover while a main server was killed: all succeeded");
    assert!(total > 100, "the load ran ({total} requests)");
    // The failed-over writes landed on the backup.
    assert!(
        backup.holds(&keys).iter().any(|h| *h),
        "some keys were written to the backup"
    );
}

/// Waits on a thread of its own until something accepts TCP connections on `addr` (polling
/// every millisecond), and returns when it first did.
fn first_accept(addr: SocketAddr) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(50)).is_ok() {
                return Instant::now();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    })
}

/// Sends `get k` to `addr` every 2 ms on a thread of its own (reconnecting whenever the
/// connection fails) until the reply is `END\r\n`, a miss served by the (empty) server; returns
/// when that reply came and how many requests it took.
fn first_served(addr: SocketAddr, until: Duration) -> std::thread::JoinHandle<(Instant, usize)> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0;
        let mut conn: Option<TcpStream> = None;
        while started.elapsed() < until {
            let stream = match conn.take() {
                Some(stream) => stream,
                None => match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                    Ok(stream) => {
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        stream
                    }
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                },
            };
            sent += 1;
            if let Some(reply) = one_line(&stream, b"get k\r\n") {
                if reply == b"END\r\n" {
                    return (Instant::now(), sent);
                }
                conn = Some(stream);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("{addr} did not serve `get k` within {until:?}");
    })
}

/// Sends `request` on `stream` and reads one line back; `None` if the connection failed.
fn one_line(mut stream: &TcpStream, request: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    stream.write_all(request).ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return None,
        }
    }
    Some(line)
}

/// How long a server is down before it restarts: longer than the probe backoff of a build
/// whose waits double from 100 ms (0.1, 0.3, 0.7, 1.5, 3.1 s after the failure: the next probe
/// would then come at 6.3 s).
const DOWN_FOR: Duration = Duration::from_millis(3200);

#[test]
fn a_restarted_memcached_under_requests_is_served_again_within_half_a_second() {
    let mut server = Memcached::start();
    let address = server.address();
    // The default probe settings, as a user gets them.
    let router = router(&single_pool_config(
        &[server.spec()],
        "connect_timeout_ms = 200",
    ));
    let proxy = switchyard_tests::Nutcracker::start(&[server.spec()]);
    let mut client = connect(&router, 0);
    assert_eq!(client.request_str("get k\r\n"), "END\r\n");
    assert_eq!(proxy.client().request_str("get k\r\n"), "END\r\n");

    server.kill();
    let reply = client.request_str("get k\r\n");
    assert!(reply.starts_with("SERVER_ERROR "), "{reply:?}");
    wait_for_state(&mut client, &address, "down", Duration::from_secs(2));
    std::thread::sleep(DOWN_FOR);

    // Both are asked every 2 ms from just before the restart on.
    let accepted = first_accept(server.addr());
    let ours = first_served(router.local_addrs()[0], Duration::from_secs(10));
    let theirs = first_served(proxy.addr(), Duration::from_secs(10));
    server.restart();
    let accepted = accepted.join().expect("accept watcher");
    let (ours, sent) = ours.join().expect("router poller");
    let (theirs, _) = theirs.join().expect("nutcracker poller");
    let ours = ours.saturating_duration_since(accepted);
    let theirs = theirs.saturating_duration_since(accepted);
    let probes = ["probes_ok", "probes_failed"].map(|name| {
        client
            .backend_stat(&address, name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    });
    println!(
        "down {DOWN_FOR:?}, restarted: served again through switchyard after {ours:?} \
         ({sent} requests polled every 2 ms; probes ok/failed {probes:?}), through \
         nutcracker after {theirs:?}"
    );
    assert!(
        ours <= Duration::from_millis(500),
        "served again {ours:?} after the restarted server accepted"
    );
}

#[test]
fn a_restarted_memcached_nobody_asks_for_is_probed_back_within_the_probe_ceiling() {
    let mut server = Memcached::start();
    let address = server.address();
    let router = router(&single_pool_config(
        &[server.spec()],
        "connect_timeout_ms = 200",
    ));
    let mut client = connect(&router, 0);
    assert_eq!(client.request_str("get k\r\n"), "END\r\n");
    server.kill();
    let reply = client.request_str("get k\r\n");
    assert!(reply.starts_with("SERVER_ERROR "), "{reply:?}");
    wait_for_state(&mut client, &address, "down", Duration::from_secs(2));
    std::thread::sleep(DOWN_FOR);

    // No request reaches the server's keys: only the router's own `stats` is asked.
    let accepted = first_accept(server.addr());
    server.restart();
    let accepted = accepted.join().expect("accept watcher");
    wait_for_state(&mut client, &address, "up", Duration::from_secs(10));
    let back = accepted.elapsed();
    println!("down {DOWN_FOR:?}, restarted, no requests: marked up after {back:?}");
    assert!(
        back <= Duration::from_millis(500) + SLACK,
        "probed back {back:?} after the restarted server accepted"
    );
    assert_eq!(client.request_str("get k\r\n"), "END\r\n");
}

#[test]
fn a_server_down_under_load_is_not_flooded_with_connects() {
    const LOAD_FOR: Duration = Duration::from_secs(5);
    let server = Scripted::start();
    let address = server.address();
    let router = router(&single_pool_config(
        &[server.spec()],
        "connect_timeout_ms = 200\ntimeout_ms = 300",
    ));
    let mut client = connect(&router, 0);
    assert_eq!(client.request_str("get k\r\n"), "END\r\n");

    // From now on the server closes every connection at once: each request fails, and after
    // `failure_limit` of them it is down.
    server.accept(Accept::Close);
    server.close_connections();
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let mut c = connect(&router, 0);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let reply = c.request_str("get k\r\n");
                    assert!(
                        reply.starts_with("SERVER_ERROR ") || reply == "END\r\n",
                        "{reply:?}"
                    );
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    wait_for_state(&mut client, &address, "down", Duration::from_secs(5));
    let before = server.connections();
    std::thread::sleep(LOAD_FOR);
    let attempts = server.connections() - before;

    // Serving again: back under the same load.
    server.accept(Accept::Serve);
    let serving = Instant::now();
    wait_for_state(&mut client, &address, "up", Duration::from_secs(5));
    let back = serving.elapsed();
    stop.store(true, Ordering::Relaxed);
    let sent: u64 = load.into_iter().map(|t| t.join().expect("load")).sum();
    println!(
        "down for {LOAD_FOR:?} under {sent} requests: {attempts} connection attempts reached \
         it; up again {back:?} after it served again"
    );
    // One prober for all workers, at most one probe per `probe_floor_ms` (100 ms) however
    // many requests ask for the server.
    assert!(
        attempts <= (LOAD_FOR.as_millis() / 100) as usize + 10,
        "{attempts} connection attempts in {LOAD_FOR:?}"
    );
    assert!(back <= Duration::from_millis(500), "{back:?}");
}
