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
