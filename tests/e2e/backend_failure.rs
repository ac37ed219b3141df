//! A dead or hung backend fails only the requests bound for it, with `SERVER_ERROR` within the
//! pool's timeout; other keys keep working, and the backend is used again once it is back.

use std::time::{Duration, Instant};

use switchyard_tests::ports::poll_until;
use switchyard_tests::{
    Client, Memcached, Router, connect, locate, router, show, single_pool_config, specs,
};

/// The pool's per-request timeout in these tests. The router's default is longer, so a router
/// that ignored the setting would fail the upper bound below.
const TIMEOUT_MS: u64 = 400;
const CONNECT_TIMEOUT_MS: u64 = 200;
/// Scheduling headroom on a loaded two-core CI machine, on top of the configured timeout.
const SLACK: Duration = Duration::from_millis(400);
/// How long a restarted or resumed backend may take to be used again (reconnect, health probe
/// backoff).
const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);

struct Setup {
    servers: [Memcached; 3],
    router: Router,
    /// A key on `servers[0]`, the one the tests break.
    victim: String,
    /// Keys on `servers[1]` and `servers[2]`.
    bystanders: Vec<String>,
}

fn setup() -> Setup {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let refs: Vec<&Memcached> = servers.iter().collect();
    let router = router(&single_pool_config(
        &specs(&refs),
        &format!("connect_timeout_ms = {CONNECT_TIMEOUT_MS}\ntimeout_ms = {TIMEOUT_MS}"),
    ));
    let keys: Vec<String> = (0..30).map(|i| format!("fail-{i}")).collect();
    let mut client = connect(&router, 0);
    for key in &keys {
        client.set(key, key.as_bytes());
    }
    let placement = locate(&refs, &keys);
    let on = |server: usize| {
        keys.iter()
            .zip(&placement)
            .filter(move |(_, s)| **s == server)
            .map(|(key, _)| key.clone())
    };
    let victim = on(0).next().expect("some of 30 keys on server 0");
    let bystanders: Vec<String> = on(1).take(3).chain(on(2).take(3)).collect();
    assert_eq!(bystanders.len(), 6, "30 keys should put 3 on each server");
    Setup {
        servers,
        router,
        victim,
        bystanders,
    }
}

/// Sends `request`; returns the reply and how long it took.
fn timed(client: &mut Client, request: &str) -> (String, Duration) {
    let started = Instant::now();
    let reply = client.request_str(request);
    (reply, started.elapsed())
}

fn assert_server_error_in_time(reply: &str, elapsed: Duration, what: &str) {
    assert!(
        reply.starts_with("SERVER_ERROR ") && reply.ends_with("\r\n") && reply.lines().count() == 1,
        "{what}: expected one SERVER_ERROR line, got {reply:?}"
    );
    let limit = Duration::from_millis(TIMEOUT_MS) + SLACK;
    assert!(
        elapsed <= limit,
        "{what}: SERVER_ERROR after {elapsed:?}; the pool's timeout is {TIMEOUT_MS} ms"
    );
}

fn assert_bystanders_work(client: &mut Client, bystanders: &[String]) {
    for key in bystanders {
        let (reply, elapsed) = timed(client, &format!("get {key}\r\n"));
        assert_eq!(
            reply,
            format!("VALUE {key} 0 {}\r\n{key}\r\nEND\r\n", key.len()),
            "a key on a healthy server"
        );
        assert!(
            elapsed < Duration::from_millis(TIMEOUT_MS),
            "get {key} on a healthy server took {elapsed:?}"
        );
        client.set(key, key.as_bytes());
    }
    let reply = client.request(format!("get {}\r\n", bystanders.join(" ")).as_bytes());
    assert_eq!(
        switchyard_tests::client::reply_keys(&reply),
        bystanders,
        "{}",
        show(&reply)
    );
}

/// Polls until `set victim` is stored again, then checks that the value read back is the one
/// just written (a reconnected backend must not hand out replies to older requests).
fn assert_recovers(client: &mut Client, victim: &str) {
    let mut attempt = 0usize;
    let stored = poll_until(RECOVERY_DEADLINE, || {
        attempt += 1;
        let value = format!("fresh-{attempt}");
        let reply = client.request_str(&format!("set {victim} 0 0 {}\r\n{value}\r\n", value.len()));
        match reply.as_str() {
            "STORED\r\n" => Some(value),
            r if r.starts_with("SERVER_ERROR ") => None,
            other => panic!("set {victim} while recovering: {other:?}"),
        }
    });
    let value = stored
        .unwrap_or_else(|| panic!("the backend was not used again within {RECOVERY_DEADLINE:?}"));
    for round in 0..5 {
        assert_eq!(
            client.get(victim),
            Some(value.as_bytes().to_vec()),
            "read {round} after recovery"
        );
    }
}

#[test]
fn a_killed_backend_fails_only_its_keys_and_is_used_again_after_restart() {
    let mut s = setup();
    let mut client = connect(&s.router, 0);
    s.servers[0].kill();

    let (reply, elapsed) = timed(&mut client, &format!("get {}\r\n", s.victim));
    assert_server_error_in_time(&reply, elapsed, "get on a killed backend");
    println!("get on a killed backend: {reply:?} after {elapsed:?}");
    let (reply, elapsed) = timed(&mut client, &format!("set {} 0 0 1\r\nx\r\n", s.victim));
    assert_server_error_in_time(&reply, elapsed, "set on a killed backend");

    assert_bystanders_work(&mut client, &s.bystanders);
    // A new client connection is not affected either.
    assert_bystanders_work(&mut connect(&s.router, 0), &s.bystanders);
    let errors = client.stat("backend_errors");
    assert!(
        errors.is_some_and(|n| n >= 2),
        "stats backend_errors is {errors:?} after two failed requests"
    );

    s.servers[0].restart();
    assert_recovers(&mut client, &s.victim);
}

#[test]
fn a_hung_backend_times_out_within_the_configured_timeout() {
    let s = setup();
    let mut client = connect(&s.router, 0);
    s.servers[0].pause();

    let (reply, elapsed) = timed(&mut client, &format!("get {}\r\n", s.victim));
    println!("get on a hung backend: {reply:?} after {elapsed:?}");
    assert_server_error_in_time(&reply, elapsed, "get on a hung backend");
    assert!(
        elapsed >= Duration::from_millis(TIMEOUT_MS / 2),
        "SERVER_ERROR after only {elapsed:?}: a paused memcached still accepts connections, \
         so only the {TIMEOUT_MS} ms timeout can have ended the request"
    );

    // Pipelined behind a request to the hung server, a healthy key still gets its own reply,
    // in order.
    let bystander = &s.bystanders[0];
    client.send(format!("get {}\r\nget {bystander}\r\n", s.victim).as_bytes());
    let replies = client.replies(2);
    assert!(
        replies[0].starts_with(b"SERVER_ERROR "),
        "{}",
        show(&replies[0])
    );
    assert_eq!(
        replies[1],
        format!(
            "VALUE {bystander} 0 {}\r\n{bystander}\r\nEND\r\n",
            bystander.len()
        )
        .as_bytes(),
        "{}",
        show(&replies[1])
    );
    assert_bystanders_work(&mut client, &s.bystanders);

    s.servers[0].resume();
    assert_recovers(&mut client, &s.victim);
}
