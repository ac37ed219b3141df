//! Per-request cost of the `configs/ha-warmup.toml` route tree (operation → warmup (call
//! `localhost`, on a miss call `backup` and refill in the background) / all-sync, over two
//! ketama pools of three memcached each) against a single ketama pool node (the `localhost`
//! pool alone), through the real router over real TCP to real memcached.
//!
//! `cargo bench -p switchyard-tests --bench route_tree` starts the example twice, each on six
//! fresh memcached and an in-process router (`Router::start`): as written ("tree"), and with
//! the listener's `route = "ha"` changed to `route = "localhost"` ("single"), so both run over
//! identical pools. Both get `[server] workers = 1` ([`WORKERS`]) instead of one worker per
//! core: on a two-core machine the client thread, the router and up to three memcached
//! processes already contend for the cores, and one worker per router keeps the two routers'
//! runs alike and about the route tree rather than about scheduling. A client straight to one
//! more fresh memcached ("direct") runs the same workload as a reference line.
//!
//! Workloads, each on one connection per target, pipelined in batches of [`BATCH`] requests
//! per write, every reply checked byte for byte: `get` of keys stored beforehand (every get
//! hits `localhost`, so the tree adds the operation and warmup plugins, never a refill), and
//! `set` of the same keys (the tree writes both pools through all-sync and answers once both
//! have, so its sets also cost the second pool's memcached work). Within a round the targets
//! take turns every [`SLICE`] requests, the two routers alternating which goes first, so load
//! from elsewhere on the machine hits all of them alike. The output is, per workload, the
//! median over [`ROUNDS`] rounds of ns/request for each target and the medians of the
//! per-round difference (tree − single) and ratio (tree / single), each with the range over
//! the rounds. Takes about 30 s.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use switchyard_tests::example::Example;
use switchyard_tests::{Memcached, connect, show, store_all};

/// Requests per write (and per read of all their replies).
const BATCH: usize = 100;
/// Distinct keys, cycled through in batches.
const KEYS: usize = 1_000;
/// Bytes per value.
const VALUE_LEN: usize = 100;
/// Requests per round for each target and workload.
const REQUESTS: usize = 50_000;
/// The targets take turns every this many requests (a multiple of [`BATCH`]), so that
/// whatever else runs on the machine slows all of them alike.
const SLICE: usize = 1_000;
/// `[server] workers` of both routers.
const WORKERS: usize = 1;
/// Timed rounds; each runs every target on every workload once.
const ROUNDS: usize = 9;
/// How long one batch's replies may take before the bench fails.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

fn main() {
    let tree = Example::start_edited("ha-warmup", with_workers);
    let single = Example::start_edited("ha-warmup", |text| {
        let edited = text.replace(r#"route = "ha""#, r#"route = "localhost""#);
        assert_ne!(
            edited, text,
            "ha-warmup.toml has no `route = \"ha\"` to replace"
        );
        with_workers(&edited)
    });
    let direct = Memcached::start();

    let keys: Vec<String> = (0..KEYS).map(|i| format!("route_tree:{i:05}")).collect();
    let value: Vec<u8> = (0..VALUE_LEN).map(|i| b'a' + (i % 26) as u8).collect();
    store_all(&mut connect(&tree.router, 0), &keys, &value);
    store_all(&mut connect(&single.router, 0), &keys, &value);
    store_all(&mut direct.client(), &keys, &value);

    let workloads = [
        ("get hit", gets(&keys, &value)),
        ("set", sets(&keys, &value)),
    ];
    let mut targets = [
        Target::new("ha-warmup tree", router_addr(&tree)),
        Target::new("single ketama pool", router_addr(&single)),
        Target::new("direct memcached", direct.addr()),
    ];

    // Untimed: warms connections, caches and the plugins' instances.
    for target in &mut targets {
        for (_, batches) in &workloads {
            target.run(batches, REQUESTS / 4);
        }
    }

    // samples[workload][target][round], in ns/request.
    let mut samples = vec![vec![Vec::with_capacity(ROUNDS); targets.len()]; workloads.len()];
    for _ in 0..ROUNDS {
        for (w, (_, batches)) in workloads.iter().enumerate() {
            let mut spent = [Duration::ZERO; 3];
            for slice in 0..REQUESTS / SLICE {
                // A/B/ref, then B/A/ref: neither router always runs right after the other.
                let order = if slice % 2 == 0 { [0, 1, 2] } else { [1, 0, 2] };
                for t in order {
                    spent[t] += targets[t].run(batches, SLICE);
                }
            }
            for (t, spent) in spent.iter().enumerate() {
                samples[w][t].push(spent.as_nanos() as f64 / (REQUESTS / SLICE * SLICE) as f64);
            }
        }
    }

    println!(
        "route_tree: medians of {ROUNDS} rounds of {REQUESTS} requests per target and \
         workload, interleaved in slices of {SLICE}; {BATCH} pipelined per write, {KEYS} keys, \
         {VALUE_LEN}-byte values, workers = {WORKERS}"
    );
    for (w, (name, _)) in workloads.iter().enumerate() {
        for (t, target) in targets.iter().enumerate() {
            let (lo, ns, hi) = spread(samples[w][t].clone());
            println!(
                "route_tree/{name}/{}: {ns:.0} ns/request (rounds {lo:.0}..{hi:.0})",
                target.name
            );
        }
        let (tree_ns, single_ns) = (&samples[w][0], &samples[w][1]);
        let (lo, diff, hi) = spread(tree_ns.iter().zip(single_ns).map(|(t, s)| t - s).collect());
        let ratio = spread(tree_ns.iter().zip(single_ns).map(|(t, s)| t / s).collect()).1;
        println!(
            "route_tree/{name}/tree - single: {diff:+.0} ns/request (rounds {lo:+.0}..{hi:+.0}), \
             ratio {ratio:.2}"
        );
    }
}

/// The config with `[server] workers = WORKERS` ahead of its first table.
fn with_workers(text: &str) -> String {
    assert!(
        !text.contains("[server]"),
        "ha-warmup.toml now has a [server] table: set workers there instead"
    );
    format!("[server]\nworkers = {WORKERS}\n\n{text}")
}

fn router_addr(example: &Example) -> SocketAddr {
    *example
        .router
        .local_addrs()
        .first()
        .expect("the example has a listener")
}

/// One pipelined batch: the bytes written and exactly the bytes expected back.
#[derive(Debug)]
struct Batch {
    request: Vec<u8>,
    reply: Vec<u8>,
}

/// A `get` of every key, as batches; each reply is the stored value.
fn gets(keys: &[String], value: &[u8]) -> Vec<Batch> {
    keys.chunks(BATCH)
        .map(|chunk| {
            let mut batch = Batch {
                request: Vec::new(),
                reply: Vec::new(),
            };
            for key in chunk {
                batch
                    .request
                    .extend_from_slice(format!("get {key}\r\n").as_bytes());
                batch
                    .reply
                    .extend_from_slice(format!("VALUE {key} 0 {}\r\n", value.len()).as_bytes());
                batch.reply.extend_from_slice(value);
                batch.reply.extend_from_slice(b"\r\nEND\r\n");
            }
            batch
        })
        .collect()
}

/// A `set` of every key to `value`, as batches; each reply is `STORED`.
fn sets(keys: &[String], value: &[u8]) -> Vec<Batch> {
    keys.chunks(BATCH)
        .map(|chunk| {
            let mut batch = Batch {
                request: Vec::new(),
                reply: Vec::new(),
            };
            for key in chunk {
                batch
                    .request
                    .extend_from_slice(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
                batch.request.extend_from_slice(value);
                batch.request.extend_from_slice(b"\r\n");
                batch.reply.extend_from_slice(b"STORED\r\n");
            }
            batch
        })
        .collect()
}

/// A client connection that writes a batch and reads exactly its expected reply bytes: the
/// harness's `Client` parses and allocates per reply, which would add to every target's time.
#[derive(Debug)]
struct Target {
    name: &'static str,
    peer: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
    /// Index of the next batch to send (modulo the workload's batch count).
    next: usize,
}

impl Target {
    fn new(name: &'static str, peer: SocketAddr) -> Target {
        let stream = connect_to(peer);
        Target {
            name,
            peer,
            stream,
            buf: Vec::new(),
            next: 0,
        }
    }

    /// Sends `requests` requests (whole batches, going on through `batches` where the last run
    /// stopped); the time taken.
    fn run(&mut self, batches: &[Batch], requests: usize) -> Duration {
        let started = Instant::now();
        for _ in 0..requests.div_ceil(BATCH) {
            self.batch(&batches[self.next % batches.len()]);
            self.next += 1;
        }
        started.elapsed()
    }

    fn batch(&mut self, batch: &Batch) {
        self.stream
            .write_all(&batch.request)
            .unwrap_or_else(|e| panic!("{}: write to {}: {e}", self.name, self.peer));
        self.buf.resize(batch.reply.len(), 0);
        let mut filled = 0;
        while filled < self.buf.len() {
            match self.stream.read(&mut self.buf[filled..]) {
                Ok(0) => panic!(
                    "{}: {} closed the connection; received {}",
                    self.name,
                    self.peer,
                    show(&self.buf[..filled])
                ),
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!(
                    "{}: read from {}: {e}; received {}",
                    self.name,
                    self.peer,
                    show(&self.buf[..filled])
                ),
            }
        }
        if self.buf != batch.reply {
            let at = self
                .buf
                .iter()
                .zip(&batch.reply)
                .position(|(a, b)| a != b)
                .unwrap_or_default();
            panic!(
                "{}: unexpected reply from {} at byte {at}: got {}, expected {}",
                self.name,
                self.peer,
                show(&self.buf[at..]),
                show(&batch.reply[at..])
            );
        }
    }
}

fn connect_to(peer: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&peer, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {peer}: {e}"));
    stream
        .set_nodelay(true)
        .unwrap_or_else(|e| panic!("TCP_NODELAY on {peer}: {e}"));
    stream
        .set_read_timeout(Some(REPLY_DEADLINE))
        .unwrap_or_else(|e| panic!("read timeout on {peer}: {e}"));
    stream
}

/// (min, median, max).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}
