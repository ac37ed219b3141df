//! Time to store and to fetch one long value: direct to memcached, through Switchyard (which
//! streams it, `server.stream_from_bytes`), and through twemproxy (`nutcracker`), all three in
//! front of the same memcached (`-I 64m`), over real TCP on loopback.
//!
//! `cargo bench -p switchyard-tests --bench long_values`. For each value size, every round
//! runs [`OPS`] `set`s and then [`OPS`] `get`s of that value on each target in turn (one
//! connection per target, one request at a time, each reply read whole and checked), the
//! target order rotating between rounds so load from elsewhere on the machine hits all of them
//! alike. Prints, per size and command, the median over [`ROUNDS`] rounds of the time per
//! request for each target and the medians of the per-round ratios to direct memcached. The
//! router runs in-process with `[server] workers = 1`, like twemproxy's single thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_tests::{Memcached, Nutcracker, router};

/// Value sizes measured.
const SIZES: [usize; 3] = [512 << 10, 4 << 20, 32 << 20];
/// Requests per command, target and round.
const OPS: usize = 8;
/// Timed rounds.
const ROUNDS: usize = 7;

fn main() {
    let server = Memcached::start_with(&["-I", "64m", "-m", "512"]);
    let twemproxy = Nutcracker::start(&[server.spec()]);
    let switchyard = router(&format!(
        r#"
[server]
workers = 1
max_value_bytes = {}

[[listeners]]
address = "127.0.0.1:0"
route = "main"

[pools.main]
servers = ["{}"]
timeout_ms = 5000
"#,
        64 << 20,
        server.spec()
    ));
    let mut targets = [
        Target::new("direct memcached", server.addr()),
        Target::new("switchyard", switchyard.local_addrs()[0]),
        Target::new("twemproxy", twemproxy.addr()),
    ];

    println!(
        "long_values: medians of {ROUNDS} rounds of {OPS} requests per target, size and command; \
         one request at a time; workers = 1"
    );
    for size in SIZES {
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let key = format!("long_values:{size}");
        let set: Arc<[u8]> = {
            let mut r = format!("set {key} 0 0 {size}\r\n").into_bytes();
            r.extend_from_slice(&value);
            r.extend_from_slice(b"\r\n");
            r.into()
        };
        let get: Arc<[u8]> = format!("get {key}\r\n").into_bytes().into();
        let mut get_reply = format!("VALUE {key} 0 {size}\r\n").into_bytes();
        get_reply.extend_from_slice(&value);
        get_reply.extend_from_slice(b"\r\nEND\r\n");
        let commands = [
            ("set", &set, &b"STORED\r\n"[..]),
            ("get", &get, &get_reply[..]),
        ];

        // Untimed: one of each, which also stores the value for the gets.
        for target in &mut targets {
            for (_, request, reply) in &commands {
                target.run(request, reply, 1);
            }
        }
        // samples[command][target][round], in seconds per request.
        let mut samples = vec![vec![Vec::with_capacity(ROUNDS); targets.len()]; commands.len()];
        for round in 0..ROUNDS {
            for (c, (_, request, reply)) in commands.iter().enumerate() {
                for i in 0..targets.len() {
                    let t = (i + round) % targets.len();
                    let spent = targets[t].run(request, reply, OPS);
                    samples[c][t].push(spent.as_secs_f64() / OPS as f64);
                }
            }
        }
        for (c, (name, _, _)) in commands.iter().enumerate() {
            let direct = &samples[c][0];
            let mut line = format!("long_values/{}KiB/{name}:", size >> 10);
            for (t, target) in targets.iter().enumerate() {
                let ms = median(samples[c][t].clone()) * 1e3;
                line.push_str(&format!(" {} {ms:.2} ms", target.name));
                if t > 0 {
                    let ratio = median(
                        samples[c][t]
                            .iter()
                            .zip(direct)
                            .map(|(x, d)| x / d)
                            .collect(),
                    );
                    line.push_str(&format!(" (x{ratio:.2})"));
                }
                line.push(';');
            }
            println!("{}", line.trim_end_matches(';'));
        }
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// One client connection, reading replies into a reused buffer.
struct Target {
    name: &'static str,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Target {
    fn new(name: &'static str, addr: SocketAddr) -> Target {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{name}: connect: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        Target {
            name,
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends `request` `n` times, one at a time, each reply checked against `reply`.
    fn run(&mut self, request: &Arc<[u8]>, reply: &[u8], n: usize) -> Duration {
        let started = Instant::now();
        for _ in 0..n {
            let mut writer = self.stream.try_clone().expect("clone socket");
            let request = Arc::clone(request);
            // A long request and its reply can each outgrow the socket buffers: write from
            // another thread while this one reads.
            let sender = std::thread::spawn(move || writer.write_all(&request[..]));
            self.buf.resize(reply.len(), 0);
            self.stream
                .read_exact(&mut self.buf)
                .unwrap_or_else(|e| panic!("{}: read reply: {e}", self.name));
            sender
                .join()
                .expect("sender thread")
                .unwrap_or_else(|e| panic!("{}: write: {e}", self.name));
            assert!(
                self.buf == reply,
                "{}: unexpected reply starting {:?}",
                self.name,
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(80)])
            );
        }
        started.elapsed()
    }
}
