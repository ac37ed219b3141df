//! Failures blamed on the right side: a request whose own reply outlasts the pool timeout, and
//! a router out of file descriptors, are not the server's fault. Neither marks a healthy
//! server down, each error names its real cause, and other clients' requests to the same
//! server go on being served.
//!
//! Every router here has `failure_limit = 1` and probes only every ten seconds: a single
//! failure counted against the server would mark it down, and it would stay down while the
//! test looks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::client::Ending;
use switchyard_tests::ports::poll_until;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::scripted::{Scripted, Step, When};
use switchyard_tests::{Client, Memcached, connect, router, show, toml_servers};

/// Pool settings under which one failure counted against a server marks it down, and it stays
/// down for ten seconds.
const ONE_STRIKE: &str = "failure_limit = 1\nprobe_floor_ms = 10000\nprobe_ceiling_ms = 10000";

/// A router with one worker (so every client's requests to a server share one backend
/// connection: the hard case) in front of one pool `main` of `servers`. A loaded machine can
/// hold up a plugin call for longer than the default 10 ms; these tests are about servers.
/// Replies are gathered up to 4 GiB (`max_reply_bytes`), so that a long reply meets its timeout
/// here, not the size bound (`memory.rs` tests that).
fn one_worker_config(listen: &str, servers: &[String], timeout_ms: u64) -> String {
    format!(
        r#"
[server]
workers = 1

[plugins]
call_timeout_ms = 1000

[[listeners]]
address = "{listen}"
route = "main"

[pools.main]
servers = {}
timeout_ms = {timeout_ms}
connect_timeout_ms = 200
max_reply_bytes = 4294967296
{ONE_STRIKE}
"#,
        toml_servers(servers)
    )
}

/// `state` and `marked_down` of the server at `address`, from `stats backends`.
fn health_of(client: &mut Client, address: &str) -> (String, String) {
    let state = client.backend_stat(address, "state").unwrap_or_default();
    let marked = client
        .backend_stat(address, "marked_down")
        .unwrap_or_default();
    (state, marked)
}

/// A client that asks for `key` (expecting `want`) in a loop on a thread of its own until
/// stopped; returns how many it was served, the slowest reply, and every reply that was not
/// `want`.
fn bystander(
    mut client: Client,
    key: String,
    want: Vec<u8>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Duration, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut served, mut slowest, mut wrong) = (0, Duration::ZERO, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if client
                .try_send(format!("get {key}\r\n").as_bytes())
                .is_err()
            {
                wrong.push("connection lost".into());
                break;
            }
            // A hit or one error line; a closed connection ends the loop.
            let (mut reply, ending) = client.read_through(b"\r\n");
            if ending == Ending::Terminator && reply.starts_with(b"VALUE ") {
                let (rest, _) = client.read_through(b"END\r\n");
                reply.extend_from_slice(&rest);
            }
            if ending != Ending::Terminator {
                wrong.push(format!("{} ({ending:?})", show(&reply)));
                break;
            }
            slowest = slowest.max(started.elapsed());
            if reply == want {
                served += 1;
            } else {
                wrong.push(show(&reply));
            }
        }
        (served, slowest, wrong)
    })
}

#[test]
fn a_multi_get_whose_reply_outlasts_the_timeout_fails_alone_and_the_server_stays_up() {
    const COPIES: usize = 2000;
    const VALUE: usize = 500 * 1000;
    const TIMEOUT_MS: u64 = 150;
    let server = Memcached::start_with(&["-m", "128"]);
    let address = server.address();
    server.client().set("big", &vec![b'x'; VALUE]);
    server.client().set("small", b"v");
    let router = router(&one_worker_config(
        "127.0.0.1:0",
        &[server.spec()],
        TIMEOUT_MS,
    ));
    let mut client = connect(&router, 0);
    assert_eq!(client.get("small").as_deref(), Some(&b"v"[..]));

    // Another client asks for a small key throughout, on the same backend connection.
    let stop = Arc::new(AtomicBool::new(false));
    let other = bystander(
        connect(&router, 0),
        "small".into(),
        b"VALUE small 0 1\r\nv\r\nEND\r\n".to_vec(),
        stop.clone(),
    );

    // 2,000 copies of a 500 kB key: a 1 GB reply, still streaming in when the timeout passes.
    let huge = format!("get{}\r\n", " big".repeat(COPIES));
    let mut rounds = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let reply = client.request(huge.as_bytes());
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&reply[..reply.len().min(300)]).into_owned();
        let health = health_of(&mut client, &address);
        println!(
            "round {round}: {COPIES}-key get of a {VALUE}-byte value: {text:?} ({} bytes) \
             after {took:?}; server (state, marked_down) {health:?}",
            reply.len()
        );
        rounds.push((text, reply.len(), took));
    }
    stop.store(true, Ordering::Relaxed);
    let (served, slowest, wrong) = other.join().expect("bystander");
    println!(
        "the other client meanwhile: {served} replies, slowest {slowest:?}, {} wrong {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(3)]
    );
    for (round, (text, len, took)) in rounds.iter().enumerate() {
        assert!(
            text.starts_with("SERVER_ERROR reply from ")
                && text.contains("still arriving")
                && text.contains(&address)
                && *len < 300,
            "round {round}: the client's error names the cause, got {text:?}"
        );
        assert!(
            *took < Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(2),
            "round {round}: {took:?}"
        );
    }
    assert!(
        wrong.is_empty(),
        "the other client's requests failed: {wrong:?}"
    );
    assert!(served > 0, "the other client was served");
    assert_eq!(
        health_of(&mut client, &address),
        ("up".into(), "0".into()),
        "the server is not marked down"
    );
    assert_eq!(client.get("small").as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_reply_still_trickling_in_at_the_timeout_fails_its_request_and_reads_behind_it_are_sent_again()
{
    const TIMEOUT_MS: u64 = 300;
    let server = Scripted::start();
    let address = server.address();
    let router = router(&one_worker_config(
        "127.0.0.1:0",
        &[server.spec()],
        TIMEOUT_MS,
    ));
    server.set("slow", 0, &[b's'; 40]);
    server.set("other", 0, b"o");
    // About 60 bytes, one every 20 ms: still arriving when the timeout passes.
    server.once(When::key("slow"), Step::Drip(Duration::from_millis(20)));

    let mut a = connect(&router, 0);
    let mut b = connect(&router, 0);
    a.send(b"get slow\r\n");
    server.wait_requests(1);
    // Behind it on the same connection: a read and a write of another client.
    b.send(b"get other\r\nset w 0 0 1\r\nv\r\n");
    server.wait_requests(3);

    let started = Instant::now();
    let slow = a.reply();
    let took = started.elapsed();
    println!("get slow: {} after {took:?}", show(&slow));
    let text = String::from_utf8_lossy(&slow);
    assert!(
        text.starts_with("SERVER_ERROR reply from ")
            && text.contains(&address)
            && text.contains("still arriving"),
        "{}",
        show(&slow)
    );
    let other = b.reply();
    assert_eq!(
        other,
        b"VALUE other 0 1\r\no\r\nEND\r\n",
        "{}",
        show(&other)
    );
    let write = b.reply();
    let write = String::from_utf8_lossy(&write);
    assert!(
        write.starts_with("SERVER_ERROR ") && write.contains("reset") && write.contains(&address),
        "a write behind the cut reply cannot be answered: {write:?}"
    );
    println!("set behind it: {write:?}");

    // What the server saw: the three on the first connection, the read again on a new one.
    let requests = server.requests();
    let seen: Vec<(usize, &str)> = requests
        .iter()
        .map(|r| (r.connection, r.line.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "get slow"),
            (0, "get other"),
            (0, "set w 0 0 1"),
            (1, "get other")
        ]
    );
    let mut c = connect(&router, 0);
    assert_eq!(health_of(&mut c, &address), ("up".into(), "0".into()));
    assert_eq!(
        c.backend_stat(&address, "consecutive_failures").as_deref(),
        Some("0")
    );
    assert_eq!(c.backend_stat(&address, "timeouts").as_deref(), Some("0"));
    assert_eq!(
        c.backend_stat(&address, "replies_cut").as_deref(),
        Some("1")
    );
    assert_eq!(c.backend_stat(&address, "resent").as_deref(), Some("1"));
    assert_eq!(c.get("other").as_deref(), Some(&b"o"[..]));
    let errors = (c.stat("client_errors"), c.stat("backend_errors"));
    println!("client_errors, backend_errors: {errors:?}");
    assert_eq!(errors.1, Some(0), "nothing counted against the server");
}

#[test]
fn a_silent_server_is_still_blamed_for_a_timeout() {
    const TIMEOUT_MS: u64 = 300;
    let server = Scripted::start();
    let address = server.address();
    let router = router(&one_worker_config(
        "127.0.0.1:0",
        &[server.spec()],
        TIMEOUT_MS,
    ));
    server.set("part", 0, &[b'p'; 40]);
    // The reply's first few bytes, then nothing: silence, not a long reply.
    server.once(When::key("part"), Step::StallAfter(30));
    let mut client = connect(&router, 0);
    let reply = client.request_str("get part\r\n");
    assert_eq!(
        reply,
        format!("SERVER_ERROR backend {address} timed out\r\n")
    );
    assert_eq!(
        client.backend_stat(&address, "state").as_deref(),
        Some("down"),
        "with failure_limit 1, one silent timeout marks it down"
    );
}

#[test]
fn out_of_file_descriptors_the_router_blames_itself_and_the_server_stays_up() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let address = server.address();
    server.client().set("k", b"v");
    let router = RouterProcess::start("emfile", |listen| {
        one_worker_config(listen, &[server.spec()], 1000)
    });
    let mut client = Client::connect(router.addr());
    // Answered by the router alone: no backend connection yet.
    assert!(client.request_str("version\r\n").starts_with("VERSION "));
    // Room for a few more descriptors only, once it has opened all it opens at start.
    router.wait_until_started();
    let limit = router.next_file() + 4;
    router.limit_open_files(limit);
    // Clients until every descriptor number below the limit is taken, each counted once the
    // router holds it.
    let held = || router.open_files().iter().filter(|&&fd| fd < limit).count();
    let mut fillers = Vec::new();
    while router.next_file() < limit {
        let before = held();
        fillers.push(Client::connect(router.addr()));
        poll_until(Duration::from_secs(5), || (held() > before).then_some(())).unwrap_or_else(
            || {
                let links: Vec<String> = router
                    .open_files()
                    .iter()
                    .map(|fd| {
                        let path = format!("/proc/{}/fd/{fd}", router.pid());
                        format!("{fd}:{:?}", std::fs::read_link(path).unwrap_or_default())
                    })
                    .collect();
                panic!(
                    "the router did not accept client {} below its limit {limit}: {links:?}",
                    fillers.len()
                )
            },
        );
    }
    println!(
        "router's descriptors {:?}, its limit {limit}, with {} more clients",
        router.open_files(),
        fillers.len()
    );

    // Now the router cannot open the backend connection.
    for round in 0..3 {
        let started = Instant::now();
        let reply = client.request_str("get k\r\n");
        println!(
            "round {round}: get k at the descriptor limit: {reply:?} after {:?}; server {:?}",
            started.elapsed(),
            health_of(&mut client, &address)
        );
        assert_eq!(
            reply,
            format!("SERVER_ERROR router out of file descriptors connecting to {address}\r\n"),
            "round {round}"
        );
    }
    assert_eq!(
        health_of(&mut client, &address),
        ("up".into(), "0".into()),
        "the healthy server is not marked down"
    );
    assert_eq!(
        client.backend_stat(&address, "local_errors").as_deref(),
        Some("3")
    );
    assert_eq!(client.stat("backend_errors"), Some(0));
    assert_eq!(client.stat("internal_errors"), Some(3));

    // Descriptors free again: served at once.
    drop(fillers.pop());
    poll_until(Duration::from_secs(5), || {
        (router.next_file() < limit).then_some(())
    })
    .expect("the router closes the client that left");
    assert_eq!(client.get("k").as_deref(), Some(&b"v"[..]));
    println!("descriptors freed: get k served");
}
