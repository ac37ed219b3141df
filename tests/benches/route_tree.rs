//! Per-request cost of the `configs/ha-warmup.toml` route tree (operation → warmup (call
//! `localhost`, on a miss call `backup` and refill in the background) / all-sync, over two
//! ketama pools of three memcached each) against a single ketama pool node (the `localhost`
//! pool alone), through the real router over real TCP to real memcached.
//!
//! `cargo bench -p switchyard-tests --bench route_tree` (about a minute once built, most of it
//! starting memcached and warming up) starts the example twice, each on six fresh memcached and
//! an in-process router (`Router::start`): as written (`tree`), and with the listener's
//! `route = "ha"` changed to `route = "localhost"` (`single`), so both run over identical
//! pools. Both get `[server] workers = 1` ([`WORKERS`]) instead of one worker per core: on a
//! two-core machine the client thread, the router and up to three memcached processes already
//! contend for the cores, and one worker per router keeps the two routers' runs alike and
//! about the route tree rather than about scheduling. A client straight to one more fresh
//! memcached (`direct`) runs the same workload as a reference line.
//!
//! Workloads, each a criterion group, on one connection per target: `route_tree/get_hit`, a
//! `get` of keys stored beforehand (every get hits `localhost`, so the tree adds the operation
//! and warmup plugins, never a refill), and `route_tree/set`, a `set` of the same keys (the
//! tree writes both pools through all-sync and answers once both have, so its sets also cost
//! the second pool's memcached work). One iteration is one write of [`BATCH`] pipelined
//! requests and the read of all their replies, every reply checked byte for byte: criterion's
//! time is per batch, its throughput (elements) in requests per second; ns/request is the
//! batch time divided by [`BATCH`]. The cost of the tree is `tree` − `single`.
//!
//! Criterion runs the targets one after the other, not interleaved: on a machine with other
//! load, compare `tree` and `single` from the same run, and repeat a run before trusting a
//! small difference.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use criterion::{Criterion, Throughput};
use switchyard_tests::example::Example;
use switchyard_tests::{Memcached, connect, show, store_all};

/// Requests per write (and per read of all their replies): one iteration.
const BATCH: usize = 100;
/// Distinct keys, cycled through in batches.
const KEYS: usize = 1_000;
/// Bytes per value.
const VALUE_LEN: usize = 100;
/// `[server] workers` of both routers.
const WORKERS: usize = 1;
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
        ("get_hit", gets(&keys, &value)),
        ("set", sets(&keys, &value)),
    ];
    let mut targets = [
        Target::new("tree", router_addr(&tree)),
        Target::new("single", router_addr(&single)),
        Target::new("direct", direct.addr()),
    ];

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args();
    for (workload, batches) in &workloads {
        let mut group = criterion.benchmark_group(format!("route_tree/{workload}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        for target in &mut targets {
            group.bench_function(target.name, |b| b.iter(|| target.next_batch(batches)));
        }
        group.finish();
    }
    criterion.final_summary();
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

    /// Sends the next batch of `batches`, going on where the last call stopped, and reads and
    /// checks its replies.
    fn next_batch(&mut self, batches: &[Batch]) {
        self.batch(&batches[self.next % batches.len()]);
        self.next += 1;
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
