//! The router's life cycle and its edges, against real memcached: a graceful drain on SIGTERM
//! (every request already sent is answered, new connects are refused, the process exits 0
//! within `drain_timeout_ms`, a second SIGTERM exits at once), connection limits answered as
//! memcached answers them (a listener's `max_connections`, the budget a low open-file limit
//! leaves) without blaming a server, a binary-protocol client closed rather than left hanging,
//! one line cap however the line arrives, and an admin port that costs no thread per
//! connection.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use switchyard_tests::client::Ending;
use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::process::{RouterProcess, Signal};
use switchyard_tests::{Client, Memcached, router, show};

/// memcached's reply to a client past its connection limit.
const TOO_MANY: &[u8] = b"ERROR Too many open connections\r\n";
/// The reply to a `get k` of the value tests store.
const HIT: &[u8] = b"VALUE k 0 1\r\nv\r\nEND\r\n";
/// How long a test waits for something the router does at once (a refused connect, an exit
/// after a second signal).
const PROMPTLY: Duration = Duration::from_secs(2);

/// A process router in front of `server`, two workers, with `server_settings` in `[server]`
/// and `listener_settings` on its listener; the pool's timeout is long, so that requests wait
/// for a stopped server rather than fail.
fn process_router(
    name: &str,
    server: &Memcached,
    server_settings: &str,
    listener_settings: &str,
) -> RouterProcess {
    let spec = server.spec();
    RouterProcess::start(name, |listen| {
        config(listen, &spec, server_settings, listener_settings)
    })
}

fn config(listen: &str, spec: &str, server_settings: &str, listener_settings: &str) -> String {
    format!(
        "[server]\nworkers = 2\nwatch = false\n{server_settings}\n\n\
         [[listeners]]\naddress = \"{listen}\"\nroute = \"main\"\n{listener_settings}\n\n\
         [pools.main]\nservers = [\"{spec}\"]\ntimeout_ms = 20000\n"
    )
}

/// Whether a connect to `addr` is refused now.
fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// Reads one reply line from a client that may be refused: what came, and how it ended.
fn first_line(client: &mut Client) -> (Vec<u8>, Ending) {
    client.read_through(b"\r\n")
}

/// The value of `STAT name` in a `stats` reply, asked on a connection of its own.
fn stat(addr: SocketAddr, name: &str) -> u64 {
    Client::connect(addr)
        .stat(name)
        .unwrap_or_else(|| panic!("no STAT {name}"))
}

#[test]
fn sigterm_answers_every_request_already_sent_refuses_new_connects_and_exits_0() {
    const PIPELINED: usize = 3000;
    let server = Memcached::start();
    let mut router = process_router("drain", &server, "drain_timeout_ms = 20000", "");
    let addr = router.addr();
    Client::connect(addr).set("k", b"v");

    // Requests in flight: the server is stopped, so none can be answered yet.
    server.pause();
    let mut singles: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
    for client in &mut singles {
        client.send(b"get k\r\n");
    }
    // More than the client's reply budget lets the router take at once: part of this batch is
    // still unread, in the router's buffer or the socket's, when the signal comes.
    let mut pipelined = Client::connect(addr);
    pipelined.send(&b"get k\r\n".repeat(PIPELINED));
    // A store with no reply, and a client with nothing in flight.
    let mut quiet = Client::connect(addr);
    quiet.send(b"set quiet 0 0 1 noreply\r\nq\r\n");
    let mut idle = Client::connect(addr);
    let reached = poll_until(Duration::from_secs(10), || {
        (stat(addr, "cmd_get") >= 10 + 8 && stat(addr, "cmd_set") >= 2).then_some(())
    });
    assert!(reached.is_some(), "the requests did not reach the router");

    router.signal(Signal::TERM);
    // Listeners closed at once: connects are refused, not queued.
    let closed = poll_until(PROMPTLY, || refused(addr).then_some(()));
    assert!(
        closed.is_some(),
        "{addr} still accepts after SIGTERM:\n{}",
        router.log()
    );
    // An idle connection is closed at once; the others wait for their replies.
    idle.expect_closed();
    assert!(
        router.wait_exit(Duration::ZERO).is_none(),
        "the router exited with requests in flight"
    );

    server.resume();
    for client in &mut singles {
        assert_eq!(client.reply(), HIT, "a request sent before SIGTERM");
        client.expect_closed();
    }
    for i in 0..PIPELINED {
        let reply = pipelined.reply();
        assert_eq!(reply, HIT, "pipelined request {i}: {}", show(&reply));
    }
    pipelined.expect_closed();
    quiet.expect_closed();

    let status = router
        .wait_exit(Duration::from_secs(20))
        .expect("the router exits within its drain timeout");
    assert!(status.success(), "exit status {status}:\n{}", router.log());
    assert_eq!(
        server.client().get("quiet"),
        Some(b"q".to_vec()),
        "a noreply store read before SIGTERM was not applied"
    );
    let log = router.log();
    let open: Option<u64> = log
        .lines()
        .find(|l| l.contains("draining"))
        .and_then(|l| l.split("connections=").nth(1))
        .and_then(|n| n.split_whitespace().next()?.parse().ok());
    // The 13 clients above, and maybe a `stats` probe's connection not yet closed.
    assert!(
        open.is_some_and(|n| (13..=14).contains(&n)),
        "no drain line with the connections open:\n{log}"
    );
    assert!(
        log.contains("drained: 0 connections cut"),
        "no end-of-drain line:\n{log}"
    );
}

#[test]
fn a_second_sigterm_during_the_drain_exits_at_once() {
    let server = Memcached::start();
    let mut router = process_router("second-sigterm", &server, "drain_timeout_ms = 60000", "");
    let mut client = Client::connect(router.addr());
    server.pause();
    client.send(b"get k\r\n");
    let reached = poll_until(Duration::from_secs(10), || {
        (stat(router.addr(), "cmd_get") >= 1).then_some(())
    });
    assert!(reached.is_some(), "the request did not reach the router");

    router.signal(Signal::TERM);
    let draining = poll_until(PROMPTLY, || refused(router.addr()).then_some(()));
    assert!(
        draining.is_some(),
        "no drain after SIGTERM:\n{}",
        router.log()
    );
    assert!(
        router.wait_exit(Duration::ZERO).is_none(),
        "the router did not wait for its request in flight"
    );

    let signalled = Instant::now();
    router.signal(Signal::TERM);
    let status = router
        .wait_exit(PROMPTLY)
        .expect("a second SIGTERM ends the router at once");
    assert_eq!(status.code(), Some(1), "{}", router.log());
    println!("exited {:?} after the second SIGTERM", signalled.elapsed());
    let (bytes, ending) = client.read_through(b"\r\n");
    assert_eq!(
        (bytes.as_slice(), ending),
        (&b""[..], Ending::Closed),
        "{}",
        show(&bytes)
    );
    server.resume();
}

#[test]
fn the_drain_cuts_what_is_left_at_its_deadline() {
    let server = Memcached::start();
    let mut router = process_router("drain-deadline", &server, "drain_timeout_ms = 300", "");
    let mut client = Client::connect(router.addr());
    server.pause();
    client.send(b"get k\r\n");
    let reached = poll_until(Duration::from_secs(10), || {
        (stat(router.addr(), "cmd_get") >= 1).then_some(())
    });
    assert!(reached.is_some(), "the request did not reach the router");

    let signalled = Instant::now();
    router.signal(Signal::TERM);
    let status = router
        .wait_exit(Duration::from_secs(10))
        .expect("the router exits at its drain deadline");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}:\n{}", router.log());
    assert!(
        took >= Duration::from_millis(300),
        "exited after {took:?}, before the deadline"
    );
    client.expect_closed();
    let log = router.log();
    assert!(
        log.contains("drained: 1 connections cut"),
        "the end-of-drain line does not count the connection cut:\n{log}"
    );
    server.resume();
}

#[test]
fn clients_past_a_listeners_max_connections_get_memcacheds_error_and_others_are_unaffected() {
    let server = Memcached::start();
    let router = router(&config(
        "127.0.0.1:0",
        &server.spec(),
        "",
        "max_connections = 3",
    ));
    let addr = router.local_addrs()[0];
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
    for client in &mut clients {
        assert_eq!(
            client.request_str("version\r\n").split(' ').next(),
            Some("VERSION")
        );
    }
    clients[0].set("k", b"v");

    for _ in 0..2 {
        let mut extra = Client::connect(addr);
        assert_eq!(
            first_line(&mut extra),
            (TOO_MANY.to_vec(), Ending::Terminator)
        );
        extra.expect_closed();
    }
    for client in &mut clients {
        assert_eq!(client.get("k"), Some(b"v".to_vec()));
    }
    let rejected = clients[1].stat("rejected_connections");
    assert_eq!(rejected, Some(2));

    // A place given back is taken again.
    drop(clients.pop());
    let mut again = poll_until(Duration::from_secs(5), || {
        let mut client = Client::connect(addr);
        let _ = client.try_send(b"version\r\n");
        let (line, _) = first_line(&mut client);
        line.starts_with(b"VERSION").then_some(client)
    })
    .expect("a client is accepted once another one left");
    assert_eq!(again.get("k"), Some(b"v".to_vec()));
}

#[test]
fn at_a_low_open_file_limit_clients_past_the_budget_are_refused_and_the_server_stays_up() {
    const BUDGET: usize = 20;
    const EXTRA: usize = 10;
    // Two workers, one server, one listener: what the router keeps for itself.
    let reserved = 100_000 - switchyard::server::client_budget(100_000, 2, 1, 1);
    let open_files = (reserved + BUDGET) as u64;
    let mut server = Memcached::start();
    let spec = server.spec();
    let router = RouterProcess::start_with_open_files("low-nofile", open_files, |listen| {
        config(listen, &spec, "", "")
    });
    let addr = router.addr();
    let mut first = Client::connect(addr);
    first.set("k", b"v");
    // The readiness probes' connections are gone: only `first` is open.
    let settled = poll_until(Duration::from_secs(5), || {
        (first.stat("curr_connections") == Some(1)).then_some(())
    });
    assert!(settled.is_some(), "connections left over from start-up");

    let mut served = vec![];
    let mut refused = 0;
    for _ in 0..BUDGET - 1 + EXTRA {
        let mut client = Client::connect(addr);
        // A refused client may find the connection closed before it writes.
        let _ = client.try_send(b"version\r\n");
        match first_line(&mut client) {
            (line, Ending::Terminator) if line.starts_with(b"VERSION") => served.push(client),
            (line, _) if line == TOO_MANY => {
                client.expect_closed();
                refused += 1;
            }
            (line, ending) => panic!("a client got {} then {ending:?}", show(&line)),
        }
    }
    assert_eq!(
        (served.len(), refused),
        (BUDGET - 1, EXTRA),
        "{}",
        router.log()
    );

    // The clients held, and those refused, cost the server nothing: not even a reconnect
    // after it restarts, for which the router kept a descriptor.
    for client in served.iter_mut().chain([&mut first]) {
        assert_eq!(client.get("k"), Some(b"v".to_vec()));
    }
    server.restart();
    let stored = poll_until(Duration::from_secs(5), || {
        (first.request(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n").then_some(())
    });
    assert!(
        stored.is_some(),
        "no store after the server restarted:\n{}",
        router.log()
    );
    for client in &mut served {
        assert_eq!(client.get("k"), Some(b"v".to_vec()));
    }
    let address = server.address();
    assert_eq!(first.backend_stat(&address, "state").as_deref(), Some("up"));
    assert_eq!(
        first.backend_stat(&address, "marked_down").as_deref(),
        Some("0")
    );
    assert_eq!(first.stat("rejected_connections"), Some(EXTRA as u64));
    let log = router.log();
    assert!(
        log.contains(&format!("open file limit {open_files}")),
        "the start does not log the open-file limit:\n{log}"
    );
    assert!(
        !log.contains("accept failed"),
        "accept failed: the budget let clients take every descriptor:\n{log}"
    );
}

#[test]
fn a_binary_protocol_client_is_answered_error_and_closed_without_waiting() {
    let server = Memcached::start();
    let router = router(&config("127.0.0.1:0", &server.spec(), "", ""));
    // A binary `get foo` request header and key: magic 0x80, opcode 0, key length 3, no
    // newline anywhere (memcached -B ascii waits for one, then says ERROR).
    let mut request = vec![0x80, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3];
    request.extend_from_slice(&[0; 12]);
    request.extend_from_slice(b"foo");
    let mut client = Client::connect(router.local_addrs()[0]).with_deadline(Duration::from_secs(5));
    client.send(&request);
    let started = Instant::now();
    let (bytes, ending) = client.read_through(b"\r\n");
    assert_eq!(
        (bytes.as_slice(), ending),
        (&b"ERROR\r\n"[..], Ending::Terminator)
    );
    client.expect_closed();
    assert!(started.elapsed() < PROMPTLY, "took {:?}", started.elapsed());
}

#[test]
fn a_line_over_the_cap_gets_the_same_error_however_its_reads_are_cut() {
    // `Limits::line_cap`, and the reply to a line past it.
    const CAP: usize = 2 << 20;
    const TOO_LONG: &[u8] = b"SERVER_ERROR out of memory reading request\r\n";
    let server = Memcached::start();
    let router = router(&config("127.0.0.1:0", &server.spec(), "", ""));
    let addr = router.local_addrs()[0];

    // Exactly the cap (its `\r` counted): read and answered.
    let mut fits = b"get k".to_vec();
    fits.resize(CAP - 1, b' ');
    fits.extend_from_slice(b"\r\n");
    let mut client = Client::connect(addr);
    client.send(&fits);
    assert_eq!(client.reply(), b"END\r\n");

    let mut long = b"get".to_vec();
    let mut i = 0;
    while long.len() < CAP + 4096 {
        long.extend_from_slice(format!(" k{i}").as_bytes());
        i += 1;
    }
    long.extend_from_slice(b"\r\n");
    // Whole; cut before the cap (the last piece crosses it and holds the newline); cut past
    // the cap (it is crossed before the newline arrives); in small pieces.
    let cuts: [(&str, Vec<usize>); 4] = [
        ("whole", vec![]),
        (
            "crossing the cap in the read with the newline",
            vec![CAP - 2048],
        ),
        ("crossing the cap before the newline", vec![CAP + 1024]),
        (
            "in 64 KiB pieces",
            (1..long.len() / 65536).map(|n| n * 65536).collect(),
        ),
    ];
    for (how, cuts) in cuts {
        let mut client = Client::connect(addr);
        let mut from = 0;
        for to in cuts.into_iter().chain([long.len()]) {
            // The router may close before it has read everything.
            if client.try_send(&long[from..to]).is_err() {
                break;
            }
            from = to;
        }
        let (bytes, ending) = client.read_through(b"\r\n");
        assert_eq!(
            (bytes.as_slice(), ending),
            (TOO_LONG, Ending::Terminator),
            "{how}: {}",
            show(&bytes)
        );
        let (rest, ending) = client.read_through(b"\r\n");
        assert_eq!(
            (rest.as_slice(), ending),
            (&b""[..], Ending::Closed),
            "{how}: the connection stays open after {}",
            show(&rest)
        );
    }
}

#[test]
fn a_thousand_admin_connections_cost_no_threads() {
    const CONNECTIONS: usize = 1000;
    let files = switchyard::server::raise_open_file_limit().expect("raise the open file limit");
    assert!(files > 2 * CONNECTIONS as u64, "open file limit {files}");
    let server = Memcached::start();
    let spec = server.spec();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let router = RouterProcess::start("admin-flood", |listen| {
        format!(
            "[admin]\naddress = \"{admin}\"\n\n{}",
            config(listen, &spec, "", "")
        )
    });
    // The admin listener starts beside the client listeners, which are what `start` waits for.
    poll_until(Duration::from_secs(10), || {
        switchyard_tests::ports::accepts(admin).then_some(())
    })
    .expect("the admin listener accepts");
    let threads_before = router.threads();

    let mut served = vec![];
    let mut refused = 0;
    for _ in 0..CONNECTIONS {
        let mut client = Client::connect(admin);
        // A refused client may find the connection closed before it writes.
        let _ = client.try_send(b"version\r\n");
        match first_line(&mut client) {
            (line, Ending::Terminator) if line.starts_with(b"VERSION ") => served.push(client),
            (line, _) if line == TOO_MANY => refused += 1,
            (line, ending) => panic!("an admin client got {} then {ending:?}", show(&line)),
        }
    }
    let threads = router.threads();
    println!(
        "{} admin connections served, {refused} refused; threads {threads_before} before, {threads} with them open",
        served.len()
    );
    assert_eq!(served.len() + refused, CONNECTIONS);
    assert!(!served.is_empty() && refused > 0, "{} served", served.len());
    assert!(
        threads <= threads_before + 1 && threads < 16,
        "{threads} threads with {} admin connections open ({threads_before} before)",
        served.len()
    );
    // Those held still work; one closing lets the next in.
    assert!(served[0].request_str("stats\r\n").starts_with("STAT pid "));
    drop(served.pop());
    let next = poll_until(Duration::from_secs(5), || {
        let mut client = Client::connect(admin);
        let _ = client.try_send(b"version\r\n");
        first_line(&mut client)
            .0
            .starts_with(b"VERSION ")
            .then_some(())
    });
    assert!(
        next.is_some(),
        "no admin connection accepted after one closed"
    );
}
