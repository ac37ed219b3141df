//! The router's memory is bounded in bytes per client: a client that pipelines requests for
//! a large value without reading the replies holds about `[server] max_client_reply_bytes` of
//! replies in the router, not every reply it asked for, and other clients are served as usual.

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached};

const KEY: &str = "memory:big";
/// memcached's item size limit is 1 MiB; 200 kB is a large but ordinary value.
const VALUE_LEN: usize = 200_000;
/// Gets each greedy client pipelines: 4 GB of replies if the router held them all.
const GETS: usize = 20_000;
const GREEDY_CLIENTS: usize = 2;
/// The most a greedy client may cost the router, resident: the default reply budget (4 MiB)
/// twice over (outstanding and taken by its writer), socket buffers and allocator slack.
const BOUND_PER_CLIENT: usize = 64 << 20;

#[test]
fn a_client_pipelining_gets_without_reading_holds_a_bounded_amount_of_replies() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let spec = server.spec();
    let router = RouterProcess::start("memory-greedy", |listen| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"{listen}\"\n\
             route = \"main\"\n\n[pools.main]\nservers = [\"{spec}\"]\n"
        )
    });
    let mut polite = Client::connect(router.addr());
    let value = vec![b'v'; VALUE_LEN];
    polite.set(KEY, &value);
    // Warm: a few replies of this size through the router before the baseline.
    for _ in 0..20 {
        assert_eq!(polite.get(KEY).as_deref(), Some(&value[..]));
    }
    let baseline = router.status_bytes("VmRSS");

    // Each greedy client writes its gets from a thread of its own and never reads; its writes
    // block once the router stops reading it and the socket buffers are full.
    let request: Vec<u8> = format!("get {KEY}\r\n").repeat(GETS).into_bytes();
    let greedy: Vec<TcpStream> = (0..GREEDY_CLIENTS)
        .map(|_| TcpStream::connect(router.addr()).expect("connect"))
        .collect();
    let writers: Vec<_> = greedy
        .iter()
        .map(|s| {
            let mut s = s.try_clone().expect("clone the socket");
            let request = request.clone();
            std::thread::spawn(move || {
                // Ends with an error once the test shuts the socket down.
                let _ = s.write_all(&request);
            })
        })
        .collect();

    // Two seconds of the greedy clients stuck, a polite client served all along.
    let started = Instant::now();
    let (mut served, mut slowest) = (0u32, Duration::ZERO);
    while started.elapsed() < Duration::from_secs(2) {
        let asked = Instant::now();
        assert_eq!(
            polite.get(KEY).as_deref(),
            Some(&value[..]),
            "a polite client beside the greedy ones"
        );
        slowest = slowest.max(asked.elapsed());
        served += 1;
    }
    let peak = router.peak_rss();
    let now = router.status_bytes("VmRSS");
    for s in &greedy {
        let _ = s.shutdown(Shutdown::Both);
    }
    for w in writers {
        w.join().expect("a greedy writer panicked");
    }
    let grew = peak.saturating_sub(baseline);
    println!(
        "{GREEDY_CLIENTS} clients pipelining {GETS} gets of {VALUE_LEN} B without reading: \
         router RSS {} MiB before, peak {} MiB (+{} MiB, {} MiB per client), {} MiB at the \
         end; a polite client beside them: {served} gets, slowest {slowest:?}",
        baseline >> 20,
        peak >> 20,
        grew >> 20,
        (grew / GREEDY_CLIENTS) >> 20,
        now >> 20,
    );
    assert!(
        grew <= GREEDY_CLIENTS * BOUND_PER_CLIENT,
        "router RSS grew by {} MiB for {GREEDY_CLIENTS} non-reading clients",
        grew >> 20
    );
    assert!(
        served > 0 && slowest < Duration::from_secs(1),
        "the polite client was held up"
    );
}

/// Sets of 250 kB each clients pipeline.
const SETS: usize = 200;
const SET_CLIENTS: usize = 4;
const SET_LEN: usize = 250_000;
/// The pool's `max_outstanding_bytes` in the stopped-server test.
const SERVER_BOUND: usize = 8 << 20;

/// A stopped memcached, four clients pipelining 250 kB sets at it (200 MB in all): the router
/// holds about the pool's `max_outstanding_bytes` of them, fails the rest at once with the
/// bound's error, and every client gets a reply for every set once the server resumes.
#[test]
fn a_stopped_server_costs_the_router_its_outstanding_bytes_not_every_request() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let spec = server.spec();
    let router = RouterProcess::start("memory-stopped", |listen| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"{listen}\"\n\
             route = \"main\"\n\n[pools.main]\nservers = [\"{spec}\"]\n\
             max_outstanding_bytes = {SERVER_BOUND}\ntimeout_ms = 20000\n"
        )
    });
    let mut warm = Client::connect(router.addr());
    warm.set("memory:warm", &vec![b'w'; SET_LEN]);
    let baseline = router.status_bytes("VmRSS");
    server.pause();

    let value = vec![b's'; SET_LEN];
    let clients: Vec<_> = (0..SET_CLIENTS)
        .map(|c| {
            let value = value.clone();
            let addr = router.addr();
            std::thread::spawn(move || {
                let mut client = Client::connect(addr).with_deadline(Duration::from_secs(60));
                let mut w = client.writer();
                // Sets are written from a thread of their own while this one reads replies.
                let writer = std::thread::spawn(move || {
                    for i in 0..SETS {
                        let mut request =
                            format!("set memory:{c}:{i} 0 0 {SET_LEN}\r\n").into_bytes();
                        request.extend_from_slice(&value);
                        request.extend_from_slice(b"\r\n");
                        w.write_all(&request).expect("send a set");
                    }
                });
                let replies = client.replies(SETS);
                writer.join().expect("the writer panicked");
                replies
            })
        })
        .collect();

    // Every set is sent (the writers finish) or held; give the router a moment under that
    // load, then look at its memory while the server is still stopped.
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(3) {
        peak = peak.max(router.status_bytes("VmRSS"));
        std::thread::sleep(Duration::from_millis(50));
    }
    server.resume();
    let mut stored = 0;
    let mut refused = 0;
    for c in clients {
        for reply in c.join().expect("a client panicked") {
            if reply == b"STORED\r\n" {
                stored += 1;
            } else if reply.starts_with(b"SERVER_ERROR backend")
                && String::from_utf8_lossy(&reply).contains("outstanding")
            {
                refused += 1;
            } else {
                panic!("unexpected reply {:?}", String::from_utf8_lossy(&reply));
            }
        }
    }
    let grew = peak.saturating_sub(baseline);
    println!(
        "{SET_CLIENTS} clients pipelining {SETS} sets of {SET_LEN} B at a stopped server \
         (max_outstanding_bytes {} MiB): router RSS +{} MiB at most while stopped; after it \
         resumed {stored} stored, {refused} refused at once",
        SERVER_BOUND >> 20,
        grew >> 20
    );
    assert_eq!(stored + refused, SET_CLIENTS * SETS);
    assert!(stored > 0, "nothing was stored after the server resumed");
    assert!(
        grew <= SERVER_BOUND + (48 << 20),
        "router RSS grew by {} MiB with {} MiB allowed outstanding",
        grew >> 20,
        SERVER_BOUND >> 20
    );
}

/// Clients asking at once for multi-key gets of large values, a spike of hundreds of MiB of
/// replies in flight: once they are answered and gone, the router's memory comes back down.
#[test]
fn memory_comes_back_after_a_spike() {
    let _heavy = switchyard_tests::heavy();
    const CLIENTS: usize = 16;
    const KEYS: usize = 40;
    const LEN: usize = 500_000;
    let server = Memcached::start();
    let spec = server.spec();
    let router = RouterProcess::start("memory-spike", |listen| {
        format!(
            "[server]\nworkers = 2\nwatch = false\n\n[[listeners]]\naddress = \"{listen}\"\n\
             route = \"main\"\n\n[pools.main]\nservers = [\"{spec}\"]\ntimeout_ms = 20000\n"
        )
    });
    let mut setup = Client::connect(router.addr());
    let value = vec![b'x'; LEN];
    for k in 0..KEYS {
        setup.set(&format!("spike:{k}"), &value);
    }
    let baseline = router.status_bytes("VmRSS");
    let line = format!(
        "get {}\r\n",
        (0..KEYS)
            .map(|k| format!("spike:{k}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for _round in 0..3 {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let addr = router.addr();
                let line = line.clone();
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr).with_deadline(Duration::from_secs(60));
                    c.request(line.as_bytes()).len()
                })
            })
            .collect();
        for c in clients {
            assert!(c.join().expect("a client panicked") > KEYS * LEN);
        }
    }
    let peak = router.peak_rss();
    // Ordinary traffic after the spike, on connections spread over both workers: an
    // allocator that returns memory as it goes (rather than from an idle thread) has its
    // chance, as it would in service.
    let mut light: Vec<Client> = (0..4).map(|_| Client::connect(router.addr())).collect();
    let mut after = router.status_bytes("VmRSS");
    let started = Instant::now();
    // jemalloc purges freed pages over its dirty decay time (10 s): past it they are gone,
    // however busy the machine is; most are gone long before.
    while started.elapsed() < Duration::from_secs(15) && after > baseline + (64 << 20) {
        for c in &mut light {
            assert!(c.request(b"version\r\n").starts_with(b"VERSION"));
        }
        std::thread::sleep(Duration::from_millis(5));
        after = router.status_bytes("VmRSS");
    }
    let took = started.elapsed();
    println!(
        "{CLIENTS} clients at once, each a get of {KEYS} x {LEN} B, 3 rounds: router RSS {} MiB \
         before, peak {} MiB, {} MiB {took:?} after under light traffic",
        baseline >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        after <= baseline + (64 << 20),
        "the router kept {} MiB after the spike (peak {} MiB)",
        (after - baseline) >> 20,
        peak >> 20
    );
}

/// One client's `get` of 2,000 copies of a 500 kB key: a 1 GB reply from one server, with a
/// timeout long enough for all of it to arrive. The router gathers at most the pool's
/// `max_reply_bytes` of it (its read buffer grows no further; a growth step holds one and a
/// half times that for a moment), fails that request alone with an error naming the bound, and
/// does not blame the server.
#[test]
fn a_gigabyte_multi_get_holds_at_most_max_reply_bytes_and_fails_alone() {
    let _heavy = switchyard_tests::heavy();
    const COPIES: usize = 2000;
    const LEN: usize = 500_000;
    const BOUND: usize = 16 << 20;
    let server = Memcached::start();
    let address = server.address();
    let spec = server.spec();
    server.client().set("multi:big", &vec![b'x'; LEN]);
    server.client().set("multi:small", b"v");
    let router = RouterProcess::start("memory-multi-get", |listen| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"{listen}\"\n\
             route = \"main\"\n\n[pools.main]\nservers = [\"{spec}\"]\ntimeout_ms = 30000\n\
             max_reply_bytes = {BOUND}\nfailure_limit = 1\nprobe_floor_ms = 10000\n\
             probe_ceiling_ms = 10000\n"
        )
    });
    let mut client = Client::connect(router.addr()).with_deadline(Duration::from_secs(60));
    // Under the bound, a multi-get of long values is answered whole, as before.
    let some = format!("get{}\r\n", " multi:big".repeat(BOUND / LEN / 2));
    let reply = client.request(some.as_bytes());
    assert!(
        reply.len() > (BOUND / LEN / 2) * LEN && reply.ends_with(b"END\r\n"),
        "a multi-get under the bound: {:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(200)])
    );
    let baseline = router.status_bytes("VmRSS");

    let huge = format!("get{}\r\n", " multi:big".repeat(COPIES));
    for round in 0..3 {
        let started = Instant::now();
        let reply = client.request(huge.as_bytes());
        let text = String::from_utf8_lossy(&reply[..reply.len().min(300)]).into_owned();
        println!("round {round}: {text:?} after {:?}", started.elapsed());
        assert_eq!(
            text,
            format!(
                "SERVER_ERROR reply from {address} exceeded max_reply_bytes ({BOUND}) before \
                 its end\r\n"
            )
        );
        // The connection was reset, not the client's: it goes on.
        assert_eq!(client.get("multi:small").as_deref(), Some(&b"v"[..]));
    }
    let peak = router.peak_rss();
    let grew = peak.saturating_sub(baseline);
    let state = client.backend_stat(&address, "state");
    let marked = client.backend_stat(&address, "marked_down");
    let cut = client.backend_stat(&address, "replies_cut");
    println!(
        "3 gets of {COPIES} x {LEN} B with max_reply_bytes {} MiB: router RSS +{} MiB at the \
         peak; server state {state:?}, marked_down {marked:?}, replies_cut {cut:?}",
        BOUND >> 20,
        grew >> 20
    );
    assert_eq!(state.as_deref(), Some("up"));
    assert_eq!(marked.as_deref(), Some("0"));
    assert_eq!(cut.as_deref(), Some("3"));
    assert!(
        grew <= BOUND * 3 / 2 + (48 << 20),
        "router RSS grew by {} MiB with max_reply_bytes {} MiB",
        grew >> 20,
        BOUND >> 20
    );
}
