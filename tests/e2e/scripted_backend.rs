//! The router against scripted backends ([`switchyard_tests::scripted`]) that misbehave in one
//! exact way each, grouped by the router component they exercise: what a client sees, and
//! exactly what each backend was sent.
//!
//! Every router here but one runs one worker, so one client's requests to a server share one
//! backend connection and the scripted server's connection numbers follow the router's
//! reconnects.

use std::time::{Duration, Instant};

use switchyard_tests::client::{parse_values, reply_keys};
use switchyard_tests::ports::poll_until;
use switchyard_tests::scripted::{Accept, Scripted, Step, When};
use switchyard_tests::{Client, Router, connect, router, show, single_pool_config, toml_servers};

/// The pool's request timeout, unless a test needs another.
const TIMEOUT_MS: u64 = 400;
/// Scheduling headroom on a loaded two-core machine, on top of a configured timeout.
const SLACK: Duration = Duration::from_millis(700);
/// Pool settings for tests about one connection: failures never mark the server down (the
/// `health` tests below do that on purpose).
const NEVER_DOWN: &str = "failure_limit = 1000";

/// A router with one worker and one listener in front of one ketama pool `main` of `servers`,
/// with request timeout `timeout_ms` and `extra` pool settings.
fn pool_router(servers: &[&Scripted], timeout_ms: u64, extra: &str) -> Router {
    let specs: Vec<String> = servers.iter().map(|s| s.spec()).collect();
    router(&format!(
        r#"
[server]
workers = 1

[[listeners]]
address = "127.0.0.1:0"
route = "main"

[pools.main]
servers = {}
timeout_ms = {timeout_ms}
connect_timeout_ms = 200
{extra}
"#,
        toml_servers(&specs)
    ))
}

/// For each server, `per_server` keys the router sends to it, found by asking: each `get`
/// reaches exactly one server, which records it. Forgets what the servers received meanwhile.
fn keys_on(router: &Router, servers: &[&Scripted], per_server: usize) -> Vec<Vec<String>> {
    let mut client = connect(router, 0);
    let mut placed: Vec<Vec<String>> = vec![Vec::new(); servers.len()];
    for i in 0..2000 {
        if placed.iter().all(|keys| keys.len() >= per_server) {
            break;
        }
        let key = format!("key-{i}");
        let reply = client.request_str(&format!("get {key}\r\n"));
        assert_eq!(reply, "END\r\n", "get {key} while placing keys");
        let line = format!("get {key}");
        let on: Vec<usize> = (0..servers.len())
            .filter(|&s| servers[s].lines().contains(&line))
            .collect();
        match on[..] {
            [s] => {
                if placed[s].len() < per_server {
                    placed[s].push(key);
                }
            }
            _ => panic!("get {key} reached servers {on:?}, expected exactly one"),
        }
    }
    assert!(
        placed.iter().all(|keys| keys.len() >= per_server),
        "2000 keys do not put {per_server} on every server: {placed:?}"
    );
    for server in servers {
        server.forget();
    }
    placed
}

/// `VALUE key flags len\r\ndata\r\nEND\r\n`.
fn hit(key: &str, flags: u32, data: &[u8]) -> Vec<u8> {
    let mut reply = format!("VALUE {key} {flags} {}\r\n", data.len()).into_bytes();
    reply.extend_from_slice(data);
    reply.extend_from_slice(b"\r\nEND\r\n");
    reply
}

/// Asserts that `reply` is one `SERVER_ERROR` line, naming the backend at `address` and
/// containing `why`.
fn assert_backend_error(reply: &[u8], address: &str, why: &str, what: &str) {
    let text = String::from_utf8_lossy(reply);
    assert!(
        text.starts_with("SERVER_ERROR ")
            && text.ends_with("\r\n")
            && text.lines().count() == 1
            && text.contains(address)
            && text.contains(why),
        "{what}: expected one SERVER_ERROR line about {address} saying {why:?}, got {}",
        show(reply)
    );
}

/// Sends `request`; returns the reply and how long it took.
fn timed(client: &mut Client, request: &str) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let reply = client.request(request.as_bytes());
    (reply, started.elapsed())
}

/// The connection (as the server numbers them) the last request it received came on.
fn last_connection(server: &Scripted) -> usize {
    server
        .requests()
        .last()
        .map(|r| r.connection)
        .unwrap_or_else(|| panic!("{} received no request", server.address()))
}

/// Backend connection: how one pipelined connection to a server copes with what comes back.
mod connection {
    use super::*;

    #[test]
    fn a_malformed_reply_is_a_server_error_and_the_next_request_gets_a_fresh_connection() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("good", 3, b"fine");
        let malformed: [&[u8]; 5] = [
            b"HELLO FROM NOT MEMCACHED\r\n",
            b"STORED\r\n",
            b"END\n",
            b"VALUE bad 0 3\r\nabcdef\r\nEND\r\n",
            b"VALUE bad 0 three\r\nabc\r\nEND\r\n",
        ];
        for (round, bad) in malformed.iter().enumerate() {
            server.once(When::key("bad"), Step::Reply(bad.to_vec()));
            let reply = client.request(b"get bad\r\n");
            assert_backend_error(
                &reply,
                &server.address(),
                "protocol error",
                &format!("get answered with {}", show(bad)),
            );
            // The router drops the connection it can no longer trust...
            server.wait_closed(round);
            // ... and the next request goes out on a new one, and gets its own answer.
            assert_eq!(client.request(b"get good\r\n"), hit("good", 3, b"fine"));
            assert_eq!(last_connection(&server), round + 1);
        }
        assert_eq!(server.connections(), malformed.len() + 1);
    }

    #[test]
    fn an_extra_reply_after_the_last_request_resets_the_connection() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("a", 0, b"fresh");
        server.once(
            When::key("a"),
            Step::Extra(b"VALUE a 0 5\r\nstale\r\nEND\r\n".to_vec()),
        );
        assert_eq!(client.request(b"get a\r\n"), hit("a", 0, b"fresh"));
        // Nothing was asked when the extra reply came: the connection is out of step, and the
        // router closes it rather than keep the stray reply for the next request.
        server.wait_closed(0);
        for _ in 0..3 {
            assert_eq!(client.request(b"get a\r\n"), hit("a", 0, b"fresh"));
        }
        assert_eq!(last_connection(&server), 1);
    }

    #[test]
    fn an_extra_reply_of_the_wrong_kind_fails_the_request_behind_it_not_its_answer() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("a", 0, b"one");
        server.set("b", 0, b"two");
        server.once(When::key("a"), Step::Extra(b"STORED\r\n".to_vec()));
        // Both requests in flight on one connection before the server answers either.
        server.hold();
        client.send(b"get a\r\nget b\r\n");
        server.wait_requests(2);
        server.release();
        assert_eq!(client.reply(), hit("a", 0, b"one"));
        // `STORED` cannot answer a get: `get b` fails instead of being answered with it.
        let reply = client.reply();
        assert_backend_error(
            &reply,
            &server.address(),
            "",
            "get b behind an extra STORED",
        );
        server.wait_closed(0);
        assert_eq!(client.request(b"get b\r\n"), hit("b", 0, b"two"));
    }

    #[test]
    fn an_extra_value_for_another_key_is_not_handed_to_the_request_behind_it() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("a", 0, b"one");
        server.set("b", 0, b"two");
        server.once(
            When::key("a"),
            Step::Extra(b"VALUE zzz 0 5\r\nstray\r\nEND\r\n".to_vec()),
        );
        server.hold();
        client.send(b"get a\r\nget b\r\n");
        server.wait_requests(2);
        server.release();
        assert_eq!(client.reply(), hit("a", 0, b"one"));
        // `get b` may fail, or get b's own value; never zzz's.
        let reply = client.reply();
        assert!(
            reply == hit("b", 0, b"two") || reply.starts_with(b"SERVER_ERROR "),
            "get b was answered with {}",
            show(&reply)
        );
        assert_eq!(client.request(b"get b\r\n"), hit("b", 0, b"two"));
    }

    #[test]
    fn a_reply_dripped_byte_by_byte_is_assembled() {
        let server = Scripted::start();
        // Dripping takes a while on a loaded machine; the timeout is not under test here.
        let router = pool_router(&[&server], 5000, NEVER_DOWN);
        let mut client = connect(&router, 0);
        // Values that hold the reply's own line ends and its END: only the announced length
        // can tell where they stop.
        let tricky: &[u8] = b"x\r\nEND\r\nVALUE y 0 1\r\n";
        server.set("v", 7, tricky);
        server.set("w", 0, b"");
        let drip = Step::Drip(Duration::from_millis(1));
        server.on(When::Any, drip);

        assert_eq!(client.request(b"get v\r\n"), hit("v", 7, tricky));
        assert_eq!(client.request_str("set s 1 0 2\r\nhi\r\n"), "STORED\r\n");
        assert_eq!(client.request_str("get nothing\r\n"), "END\r\n");
        let reply = client.request(b"get v w s\r\n");
        let values = parse_values(&reply)
            .unwrap_or_else(|| panic!("not a retrieval reply: {}", show(&reply)));
        let got: Vec<(&str, &[u8])> = values
            .iter()
            .map(|(header, data)| (header.as_str(), data.as_slice()))
            .collect();
        let v_header = format!("VALUE v 7 {}", tricky.len());
        assert_eq!(
            got,
            [
                (v_header.as_str(), tricky),
                ("VALUE w 0 0", &b""[..]),
                ("VALUE s 1 2", &b"hi"[..])
            ]
        );
        assert_eq!(
            server.connections(),
            1,
            "a slow reply is not a reason to reconnect"
        );
    }

    #[test]
    fn a_stalled_server_times_out_within_the_pool_timeout_and_is_used_again() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("k", 0, b"v");
        let timeout = Duration::from_millis(TIMEOUT_MS);

        server.once(When::key("hang"), Step::Stall);
        let (reply, took) = timed(&mut client, "get hang\r\n");
        println!("get on a stalled server: {} after {took:?}", show(&reply));
        assert_backend_error(&reply, &server.address(), "timed out", "get hang");
        assert!(
            took >= timeout / 2 && took <= timeout + SLACK,
            "SERVER_ERROR after {took:?}; the pool's timeout is {timeout:?}"
        );
        server.wait_closed(0);
        assert_eq!(client.request(b"get k\r\n"), hit("k", 0, b"v"));

        // A request pipelined behind the stalled one on the same connection is never answered
        // by the server either: it fails with it, at the same deadline, not one later.
        server.once(When::key("hang"), Step::Stall);
        let started = Instant::now();
        client.send(b"get hang\r\nget k\r\n");
        let replies = client.replies(2);
        let took = started.elapsed();
        for reply in &replies {
            assert_backend_error(reply, &server.address(), "", "pipelined behind a stall");
        }
        assert!(took <= timeout + SLACK, "{took:?}");
        assert_eq!(client.request(b"get k\r\n"), hit("k", 0, b"v"));
        assert_eq!(last_connection(&server), 2);
    }

    #[test]
    fn a_reply_that_comes_after_the_timeout_is_given_to_nobody() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("late", 0, b"too late");
        server.set("k", 0, b"v");
        server.once(
            When::key("late"),
            Step::Delay(Duration::from_millis(TIMEOUT_MS * 2)),
        );
        let reply = client.request(b"get late\r\n");
        assert_backend_error(&reply, &server.address(), "timed out", "get late");
        assert_eq!(client.request(b"get k\r\n"), hit("k", 0, b"v"));
        // The late reply has been written (the server's connection ends when it tries): no
        // later request gets it.
        server.wait_closed(0);
        for _ in 0..3 {
            assert_eq!(client.request(b"get k\r\n"), hit("k", 0, b"v"));
        }
    }

    #[test]
    fn a_connection_lost_mid_reply_fails_only_the_requests_in_flight() {
        let servers = [Scripted::start(), Scripted::start()];
        let refs: Vec<&Scripted> = servers.iter().collect();
        let router = pool_router(&refs, TIMEOUT_MS, NEVER_DOWN);
        let keys = keys_on(&router, &refs, 3);
        let [a, b, c] = [&keys[0][0], &keys[0][1], &keys[0][2]];
        let x = &keys[1][0];
        for key in [a, b, c] {
            servers[0].set(key, 0, key.as_bytes());
        }
        servers[1].set(x, 0, x.as_bytes());
        let mut client = connect(&router, 0);

        for step in [Step::Close, Step::Reset, Step::ResetAfter(9)] {
            let before = servers[0].connections();
            servers[0].once(When::key(b), step.clone());
            // a, b and c in flight together on one connection; x on the other server.
            servers[0].hold();
            client.send(format!("get {a}\r\nget {b}\r\nget {x}\r\nget {c}\r\n").as_bytes());
            servers[0].wait_requests(3);
            servers[0].release();
            let replies = client.replies(4);
            let what = format!("{step:?} answering {b}");
            assert_eq!(
                replies[0],
                hit(a, 0, a.as_bytes()),
                "{what}: answered before"
            );
            assert_backend_error(&replies[1], &servers[0].address(), "", &what);
            assert_eq!(replies[2], hit(x, 0, x.as_bytes()), "{what}: other server");
            assert_backend_error(&replies[3], &servers[0].address(), "", &what);
            // Requests after it are served, on a new connection.
            for key in [c, b, a] {
                assert_eq!(
                    client.request(format!("get {key}\r\n").as_bytes()),
                    hit(key, 0, key.as_bytes()),
                    "{what}: then {key}"
                );
            }
            assert_eq!(servers[0].connections(), before + 1, "{what}");
            servers[0].forget();
        }
    }

    #[test]
    fn pipelined_requests_get_their_replies_in_order_whatever_order_servers_answer_in() {
        let servers = [Scripted::start(), Scripted::start()];
        let refs: Vec<&Scripted> = servers.iter().collect();
        let router = pool_router(&refs, 5000, NEVER_DOWN);
        let keys = keys_on(&router, &refs, 5);
        let mut request = Vec::new();
        let mut expected = Vec::new();
        for (i, (a, b)) in (0u32..).zip(keys[0].iter().zip(&keys[1])) {
            servers[0].set(a, i, a.as_bytes());
            servers[1].set(b, 0, b"old");
            request.extend_from_slice(format!("get {a}\r\nget {b}\r\n").as_bytes());
            expected.push(hit(a, i, a.as_bytes()));
            expected.push(hit(b, 0, b"old"));
            request
                .extend_from_slice(format!("set {b} 0 0 3\r\nnew\r\nget {a} {b}\r\n").as_bytes());
            expected.push(b"STORED\r\n".to_vec());
            let mut both = hit(a, i, a.as_bytes());
            both.truncate(both.len() - b"END\r\n".len());
            both.extend_from_slice(&hit(b, 0, b"new"));
            expected.push(both);
        }
        // The first server answers each request late, the second at once (a few dripped).
        servers[0].on(When::Any, Step::Delay(Duration::from_millis(15)));
        servers[1].times(When::Any, 3, Step::Drip(Duration::from_millis(1)));
        let mut client = connect(&router, 0);
        client.send(&request);
        let replies = client.replies(expected.len());
        for (i, (got, want)) in replies.iter().zip(&expected).enumerate() {
            assert_eq!(
                got,
                want,
                "reply {i}: got {}, want {}",
                show(got),
                show(want)
            );
        }
    }
}

/// Dispatch: what each backend is sent for a client's request.
mod dispatch {
    use super::*;

    #[test]
    fn a_multi_get_is_split_into_one_get_per_server_in_the_clients_key_order() {
        let servers = [Scripted::start(), Scripted::start(), Scripted::start()];
        let refs: Vec<&Scripted> = servers.iter().collect();
        let router = pool_router(&refs, TIMEOUT_MS, NEVER_DOWN);
        let keys = keys_on(&router, &refs, 3);
        let (a, b, c) = (&keys[0], &keys[1], &keys[2]);
        // Every key is stored but a[1] and c[0].
        for (s, on) in keys.iter().enumerate() {
            for key in on {
                if key != &a[1] && key != &c[0] {
                    servers[s].set(key, 0, key.as_bytes());
                }
            }
        }
        let mut client = connect(&router, 0);
        let asked = [&a[2], &b[0], &a[0], &c[0], &b[1], &a[1], &c[1]];
        let line = asked
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let reply = client.request(format!("get {line}\r\n").as_bytes());

        let sent: Vec<Vec<u8>> = servers.iter().map(Scripted::received_all).collect();
        assert_eq!(
            sent.iter().map(|s| show(s)).collect::<Vec<_>>(),
            [
                show(format!("get {} {} {}\r\n", a[2], a[0], a[1]).as_bytes()),
                show(format!("get {} {}\r\n", b[0], b[1]).as_bytes()),
                show(format!("get {} {}\r\n", c[0], c[1]).as_bytes()),
            ],
            "what each server was sent for `get {line}`"
        );
        let hits: Vec<String> = asked
            .iter()
            .filter(|k| **k != &a[1] && **k != &c[0])
            .map(|k| k.to_string())
            .collect();
        assert_eq!(reply_keys(&reply), hits, "{}", show(&reply));
        let values = parse_values(&reply).unwrap_or_default();
        for ((_, data), key) in values.iter().zip(&hits) {
            assert_eq!(data, key.as_bytes());
        }

        // Keys that all live on one server: the client's own bytes, unchanged.
        for server in &servers {
            server.forget();
        }
        let request = format!("gets {}  {}\r\n", b[1], b[0]);
        let reply = client.request(request.as_bytes());
        assert_eq!(reply_keys(&reply), [b[1].clone(), b[0].clone()]);
        assert_eq!(servers[1].received_all(), request.as_bytes());
        assert!(servers[0].received_all().is_empty() && servers[2].received_all().is_empty());
    }

    #[test]
    fn noreply_requests_reach_the_backend_and_the_client_gets_nothing() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        server.set("gone", 0, b"x");
        // Even a failure is not the client's to see once it said noreply.
        server.once(
            When::key("full"),
            Step::Reply(b"SERVER_ERROR out of memory storing object\r\n".to_vec()),
        );
        client.send(
            b"set k 0 0 1 noreply\r\nv\r\ndelete gone noreply\r\nset full 0 0 1 noreply\r\nz\r\nget k\r\n",
        );
        assert_eq!(
            client.reply(),
            hit("k", 0, b"v"),
            "the get's reply comes first"
        );
        // The router reads every reply itself (so it asks for them): noreply is not forwarded.
        assert_eq!(
            show(&server.received_all()),
            show(b"set k 0 0 1\r\nv\r\ndelete gone\r\nset full 0 0 1\r\nz\r\nget k\r\n")
        );
        assert_eq!(server.value("gone"), None);
        assert_eq!(client.request_str("get gone\r\n"), "END\r\n");
        assert_eq!(server.connections(), 1);
    }

    #[test]
    fn locally_answered_commands_never_reach_a_backend() {
        let server = Scripted::start();
        let router = pool_router(&[&server], TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        let version = client.request_str("version\r\n");
        assert!(
            version.starts_with("VERSION ") && version.ends_with("\r\n"),
            "{version:?}"
        );
        assert_ne!(
            version.as_bytes(),
            switchyard_tests::scripted::VERSION,
            "the router's own"
        );
        assert_eq!(client.request_str("verbosity 1\r\n"), "OK\r\n");
        client.send(b"stats\r\n");
        let stats = client.read_until(b"END\r\n");
        assert!(stats.starts_with(b"STAT "), "{}", show(&stats));
        client.send(b"stats backends\r\n");
        let backends = client.read_until(b"END\r\n");
        assert!(
            String::from_utf8_lossy(&backends)
                .contains(&format!("STAT {}:state up", server.address())),
            "{}",
            show(&backends)
        );
        assert_eq!(client.request_str("mn\r\n"), "MN\r\n");
        assert_eq!(server.connections(), 0, "not even a connection was opened");
        // The server is there all the same: a keyed command reaches it.
        assert_eq!(client.request_str("get k\r\n"), "END\r\n");
        assert_eq!(server.received_all(), b"get k\r\n");
    }

    #[test]
    fn flush_all_reaches_every_server() {
        let servers = [Scripted::start(), Scripted::start(), Scripted::start()];
        let refs: Vec<&Scripted> = servers.iter().collect();
        let router = pool_router(&refs, TIMEOUT_MS, NEVER_DOWN);
        let mut client = connect(&router, 0);
        assert_eq!(client.request_str("flush_all\r\n"), "OK\r\n");
        for server in &servers {
            assert_eq!(show(&server.received_all()), show(b"flush_all\r\n"));
        }
        // The worst reply wins: one server refusing is the client's answer.
        servers[1].once(When::Any, Step::Reply(b"SERVER_ERROR busy\r\n".to_vec()));
        assert_eq!(client.request_str("flush_all\r\n"), "SERVER_ERROR busy\r\n");
    }
}

/// Execute: fan-outs through bundled replication routes when one child misbehaves.
mod execute {
    use super::*;

    /// Three scripted servers, each the one server of a pool `p0`..`p2`, as the children of
    /// route `r` of bundled plugin `plugin`.
    fn replicated(plugin: &str) -> ([Scripted; 3], Router) {
        let servers = [Scripted::start(), Scripted::start(), Scripted::start()];
        let specs: Vec<String> = servers.iter().map(Scripted::spec).collect();
        let router = switchyard_tests::replicated_router(
            &specs,
            plugin,
            TIMEOUT_MS,
            NEVER_DOWN,
            "workers = 1",
        );
        (servers, router)
    }

    /// Waits until each of `servers` has received a request whose line is `line`.
    fn wait_sent(servers: &[Scripted], line: &str) {
        for (i, server) in servers.iter().enumerate() {
            server.wait_for(&format!("`{line}` at child {i}"), |s| {
                s.lines().iter().any(|l| l == line)
            });
        }
    }

    #[test]
    fn all_sync_answers_a_childs_garbage_with_server_error_and_still_writes_the_others() {
        let (servers, router) = replicated("all-sync");
        let mut client = connect(&router, 0);
        servers[1].once(When::command("set"), Step::Malformed);
        let reply = client.request(b"set k 0 0 1\r\nv\r\n");
        assert_backend_error(
            &reply,
            &servers[1].address(),
            "protocol error",
            "all-sync set",
        );
        wait_sent(&servers, "set k 0 0 1");
        assert_eq!(servers[0].value("k").as_deref(), Some(&b"v"[..]));
        assert_eq!(servers[2].value("k").as_deref(), Some(&b"v"[..]));
        // The child is used again, on a new connection.
        assert_eq!(client.request_str("set k 0 0 1\r\nw\r\n"), "STORED\r\n");
        for server in &servers {
            assert_eq!(server.value("k").as_deref(), Some(&b"w"[..]));
        }
        assert_eq!(servers[1].connections(), 2);
    }

    #[test]
    fn all_majority_outvotes_one_child_that_answers_garbage() {
        let (servers, router) = replicated("all-majority");
        let mut client = connect(&router, 0);
        servers[2].on(When::Any, Step::Malformed);
        for i in 0..3 {
            assert_eq!(
                client.request_str(&format!("set k{i} 0 0 1\r\nv\r\n")),
                "STORED\r\n",
                "two of three stored k{i}"
            );
        }
        servers[1].on(When::Any, Step::Malformed);
        let reply = client.request(b"set lone 0 0 1\r\nv\r\n");
        assert!(
            reply.starts_with(b"SERVER_ERROR "),
            "one of three is no majority: {}",
            show(&reply)
        );
    }

    #[test]
    fn all_fastest_is_not_held_up_by_a_stalled_child() {
        let (servers, router) = replicated("all-fastest");
        let mut client = connect(&router, 0);
        servers[0].once(When::command("set"), Step::Stall);
        let (reply, took) = timed(&mut client, "set k 0 0 1\r\nv\r\n");
        assert_eq!(reply, b"STORED\r\n");
        assert!(
            took < Duration::from_millis(TIMEOUT_MS),
            "waited for the stalled child: {took:?}"
        );
        wait_sent(&servers, "set k 0 0 1");
        // The stalled child's connection times out and is replaced; it gets the next write.
        servers[0].wait_closed(0);
        assert_eq!(client.request_str("set k 0 0 1\r\nw\r\n"), "STORED\r\n");
        servers[0].wait_for("the second write", |s| {
            s.value("k").as_deref() == Some(&b"w"[..])
        });
    }

    #[test]
    fn failover_moves_on_when_the_first_child_resets_the_connection() {
        let (servers, router) = replicated("failover");
        let mut client = connect(&router, 0);
        servers[0].once(When::command("set"), Step::Reset);
        assert_eq!(client.request_str("set k 0 0 1\r\nv\r\n"), "STORED\r\n");
        assert_eq!(servers[0].lines(), ["set k 0 0 1"]);
        assert_eq!(servers[1].lines(), ["set k 0 0 1"]);
        assert!(
            servers[2].lines().is_empty(),
            "the third child was not needed"
        );
        assert_eq!(servers[1].value("k").as_deref(), Some(&b"v"[..]));
        // The first child answers again: it is asked first, and alone.
        assert_eq!(client.request_str("set k2 0 0 1\r\nv\r\n"), "STORED\r\n");
        assert_eq!(servers[0].value("k2").as_deref(), Some(&b"v"[..]));
        assert_eq!(servers[1].lines(), ["set k 0 0 1"]);
    }
}

/// Health: failures mark a server down, a probe brings it back.
mod health {
    use super::*;

    /// A request refused because its server is down never leaves the router.
    const FAST: Duration = Duration::from_millis(100);
    const PROBE_CEILING_MS: u64 = 400;

    fn health_router(server: &Scripted, failure_limit: u32) -> Router {
        pool_router(
            &[server],
            TIMEOUT_MS,
            &format!(
                "failure_limit = {failure_limit}\nprobe_floor_ms = 50\n\
                 probe_ceiling_ms = {PROBE_CEILING_MS}"
            ),
        )
    }

    /// Requests other than the prober's `version`.
    fn served(server: &Scripted) -> Vec<String> {
        server
            .lines()
            .into_iter()
            .filter(|l| l != "version")
            .collect()
    }

    /// Polls `get k` until it is answered with `want`, within the probe backoff and slack.
    fn wait_served_again(client: &mut Client, want: &[u8]) -> Duration {
        let started = Instant::now();
        let deadline = Duration::from_millis(PROBE_CEILING_MS * 2) + SLACK * 2;
        poll_until(deadline, || {
            (client.request(b"get k\r\n") == want).then_some(())
        })
        .unwrap_or_else(|| panic!("not served again within {deadline:?}"));
        started.elapsed()
    }

    /// After `failure_limit` failures the server is down: requests fail at once, naming it,
    /// and none reaches it.
    fn assert_down(client: &mut Client, server: &Scripted, sent_before: usize) {
        assert_eq!(
            client.backend_stat(&server.address(), "state").as_deref(),
            Some("down")
        );
        for round in 0..10 {
            let (reply, took) = timed(client, "get k\r\n");
            assert_backend_error(
                &reply,
                &server.address(),
                "is down",
                &format!("round {round}"),
            );
            assert!(took < FAST, "round {round}: refused after {took:?}");
        }
        assert_eq!(served(server).len(), sent_before, "{:?}", server.lines());
    }

    #[test]
    fn repeated_malformed_replies_mark_a_server_down_until_a_probe_is_answered() {
        let server = Scripted::start();
        let router = health_router(&server, 3);
        let mut client = connect(&router, 0);
        server.set("k", 0, b"v");
        // Broken for everyone, the prober's `version` included.
        server.on(When::Any, Step::Malformed);
        for round in 0..3 {
            let reply = client.request(b"get k\r\n");
            assert_backend_error(
                &reply,
                &server.address(),
                "protocol error",
                &format!("round {round}"),
            );
        }
        assert_down(&mut client, &server, 3);
        // Probes keep failing while it stays broken.
        server.wait_for("two probes", |s| {
            s.lines().iter().filter(|l| *l == "version").count() >= 2
        });
        assert_eq!(
            client.backend_stat(&server.address(), "state").as_deref(),
            Some("down")
        );

        server.clear_script();
        let back = wait_served_again(&mut client, &hit("k", 0, b"v"));
        println!("fixed to served again: {back:?}");
        let probes: u64 = client
            .backend_stat(&server.address(), "probes_ok")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(probes >= 1, "it came back through a probe");
    }

    #[test]
    fn a_server_closing_idle_connections_is_not_marked_down() {
        let server = Scripted::start();
        // Two workers, so two connections to the server, and a failure limit of two; no probe
        // for ten seconds, so a server marked down stays down while the test looks.
        let router = router(&single_pool_config(
            &[server.spec()],
            &format!("timeout_ms = {TIMEOUT_MS}\nfailure_limit = 2\nprobe_floor_ms = 10000"),
        ));
        let want = hit("k", 0, b"v");
        server.set("k", 0, b"v");
        // New clients until both workers have connected (a client lands on either).
        let mut clients = Vec::new();
        poll_until(Duration::from_secs(10), || {
            let mut client = connect(&router, 0);
            assert_eq!(client.request(b"get k\r\n"), want);
            clients.push(client);
            (server.connections() >= 2).then_some(())
        })
        .expect("both workers connect to the server");

        // Every request has been answered; the server closes its idle connections, as
        // memcached's `idle_timeout` does. No request failed: the server is as healthy as it
        // was, and is used again at once.
        server.close_connections();
        server.wait_closed(0);
        server.wait_closed(1);
        for (i, client) in clients.iter_mut().enumerate() {
            // A request that raced the close on its way out may fail; "is down" may not.
            let served = poll_until(Duration::from_secs(2), || {
                let reply = client.request(b"get k\r\n");
                assert!(
                    !String::from_utf8_lossy(&reply).contains("is down"),
                    "client {i} after idle connections were closed: {}",
                    show(&reply)
                );
                (reply == want).then_some(())
            });
            assert!(served.is_some(), "client {i} is served again");
        }
        let mut client = connect(&router, 0);
        assert_eq!(
            client
                .backend_stat(&server.address(), "marked_down")
                .as_deref(),
            Some("0")
        );
    }

    #[test]
    fn a_server_that_closes_every_connection_is_marked_down_until_it_serves_again() {
        let server = Scripted::start();
        let router = health_router(&server, 2);
        let mut client = connect(&router, 0);
        server.set("k", 0, b"v");
        server.accept(Accept::Close);
        for round in 0..2 {
            let reply = client.request(b"get k\r\n");
            assert_backend_error(&reply, &server.address(), "", &format!("round {round}"));
        }
        assert_down(&mut client, &server, 0);
        assert!(server.received_all().is_empty());

        server.accept(Accept::Serve);
        let back = wait_served_again(&mut client, &hit("k", 0, b"v"));
        println!("serving again to served again: {back:?}");
        assert_eq!(served(&server), ["get k"]);
    }
}
