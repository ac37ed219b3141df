//! Client load for tests that watch a router under traffic: threads doing `set` then `get`
//! of their own keys, one request at a time, counting what they see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::ports::poll_until;
use crate::{Client, show};

/// What the clients of a [`Load`] saw, in all or over one phase.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Replies as expected: `STORED` to a set, a retrieval reply to a get.
    pub ok: u64,
    /// `SERVER_ERROR` replies.
    pub server_errors: u64,
    /// Any other reply.
    pub other_count: u64,
    /// The first few other replies, shown.
    pub other: Vec<String>,
    /// The slowest request.
    pub max_latency: Duration,
}

/// Counters the client threads of a [`Load`] share.
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicU64,
    server_errors: AtomicU64,
    other_count: AtomicU64,
    other: std::sync::Mutex<Vec<String>>,
    /// The slowest request since the last [`Load::phase`], in microseconds.
    max_latency_us: AtomicU64,
}

/// Client threads doing `set` then `get` of their own keys in a loop, one request at a time,
/// until stopped, each taking its connections in turn.
///
/// The connections are opened one at a time, each answered before the next is opened, and
/// dealt to the threads in turn: every worker accepts on every listener and a new connection
/// goes to whichever takes it first, so connections opened in a burst land on one worker
/// (which accepts them all in one go), and a thread holding only those would not notice the
/// other worker stalling. Dealt this way, with several per thread, each thread has
/// connections on every worker (with all but negligible odds: which worker accepts is not
/// for a client to choose).
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    counts: Arc<Counts>,
    started: Instant,
}

impl Load {
    pub fn start(addr: SocketAddr, threads: usize, connections: usize, label: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let mut dealt: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
        for k in 0..threads * connections {
            let mut client = Client::connect(addr);
            let reply = client.request(b"version\r\n");
            assert!(reply.starts_with(b"VERSION "), "{}", show(&reply));
            // Each round of `threads` connections is dealt starting one thread further on,
            // so that neither runs nor alternation of workers give a thread only one.
            dealt[(k + k / threads) % threads].push(client);
        }
        let threads = dealt
            .into_iter()
            .enumerate()
            .map(|(t, mut clients)| {
                let (stop, counts) = (stop.clone(), counts.clone());
                let label = label.to_string();
                std::thread::spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let client = &mut clients[i % connections];
                        let key = format!("{label}-{t}-{}", i % 100);
                        let set = format!("set {key} 0 0 5\r\nvalue\r\n");
                        for (request, get) in [(set, false), (format!("get {key}\r\n"), true)] {
                            let sent = Instant::now();
                            let reply = client.request(request.as_bytes());
                            let took = sent.elapsed().as_micros() as u64;
                            counts.max_latency_us.fetch_max(took, Ordering::Relaxed);
                            let good = if get {
                                reply.ends_with(b"END\r\n")
                            } else {
                                reply == b"STORED\r\n"
                            };
                            let counter = if good {
                                &counts.ok
                            } else if reply.starts_with(b"SERVER_ERROR") {
                                &counts.server_errors
                            } else {
                                let mut other = counts.other.lock().expect("not poisoned");
                                if other.len() < 5 {
                                    other.push(show(&reply));
                                }
                                &counts.other_count
                            };
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load {
            stop,
            threads,
            counts,
            started: Instant::now(),
        }
    }

    /// What the clients have seen so far; the slowest request is the slowest since the last
    /// call, which starts a new phase.
    pub fn phase(&self) -> (Seen, Instant) {
        let c = &self.counts;
        let seen = Seen {
            ok: c.ok.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            other_count: c.other_count.load(Ordering::Relaxed),
            other: c.other.lock().expect("not poisoned").clone(),
            max_latency: Duration::from_micros(c.max_latency_us.swap(0, Ordering::Relaxed)),
        };
        (seen, Instant::now())
    }

    /// Waits until the clients have had `n` good replies in all (they are connected and
    /// served).
    pub fn wait_served(&self, n: u64) {
        let served = poll_until(Duration::from_secs(20), || {
            (self.counts.ok.load(Ordering::Relaxed) >= n).then_some(())
        });
        assert!(served.is_some(), "the load's clients were not served");
    }

    /// Stops the threads; what they saw in all (the slowest request since the last phase),
    /// and for how long they ran.
    pub fn stop(mut self) -> (Seen, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        for t in std::mem::take(&mut self.threads) {
            t.join().expect("a load thread panicked");
        }
        (self.phase().0, elapsed)
    }
}
