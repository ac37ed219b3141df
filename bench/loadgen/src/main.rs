//! `loadgen`: a memcached load generator, the instrument of Switchyard's benchmarks (direct
//! memcached, twemproxy and Switchyard under the same load). Correct measurement comes before
//! features: every reply is parsed and checked, errors are counted by kind and never hidden,
//! and in open loop (`--rate`) latency counts from when a request was *scheduled*, so a server
//! that stalls cannot hide the stall by slowing the client down (coordinated omission).
//!
//! # Codemap
//! - [`cli`]: flags, defaults, validation ([`cli::Config`]).
//! - [`keys`]: the key space, `key:<n>` zero-padded to one width.
//! - [`workload`]: which operation, keys and value size come next, and their request bytes.
//! - [`reply`]: sans-IO reader of `set`/`get` replies, checking each against its request.
//! - [`pipeline`]: one connection's requests in flight and its buffers, without the socket.
//! - [`conn`]: the socket loop around a pipeline, over a socket or a TLS session;
//!   reconnecting; closed and open-loop pacing.
//! - [`tls`]: TLS to the server (`--tls-ca`): rustls's client configuration, the handshakes.
//! - [`pacer`]: a high-resolution timer for the open loop (tokio's ticks in milliseconds).
//! - [`worker`]: threads, each a single-threaded runtime with its share of the connections.
//! - [`stats`]: counters and HDR histograms, per thread, merged at the end.
//! - [`report`], [`json`]: the JSON object and the table.
//!
//! A run: resolve and connect once (with TLS, a handshake and a `version`; or exit with one
//! line saying why), open the idle connections, open the load connections, prefill if asked,
//! then warmup and the measured window, the same instants for every thread.
#![forbid(unsafe_code)]

mod cli;
mod conn;
mod json;
mod keys;
mod pacer;
mod pipeline;
mod reply;
mod report;
mod rng;
mod stats;
mod tls;
mod worker;
mod workload;

use std::io::{ErrorKind as IoErrorKind, Read as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};

use crate::cli::{Command, Config};
use crate::conn::{CONNECT_TIMEOUT, Context};
use crate::keys::KeySpace;
use crate::pacer::Pacer;
use crate::report::{Prefill, Report};
use crate::stats::Recorder;
use crate::tls::{Blocking, Negotiated, Tls};
use crate::worker::{Run, Setup, Worker};
use crate::workload::{Op, Workload};

/// Time between ordering the run and its start: enough for every worker thread to have the
/// order, so that all start at the same instant.
const START_DELAY: Duration = Duration::from_millis(20);

fn main() -> ExitCode {
    let args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    let result = cli::parse(args).and_then(|command| match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Run(config) => run(&config),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A connection held idle: a socket, or a TLS session over one.
#[derive(Debug)]
enum Idle {
    Plain(TcpStream),
    Tls(Box<Blocking>),
}

fn run(config: &Config) -> anyhow::Result<()> {
    let servers: Vec<&str> = config.server.split(',').collect();
    let addrs = servers
        .iter()
        .map(|server| resolve(server))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tls = config
        .tls
        .as_ref()
        .map(|options| Tls::new(options, &servers))
        .transpose()?;
    // Fail fast, with one line, if nothing answers there (or, with TLS, answers otherwise).
    let mut negotiated: Option<Negotiated> = None;
    for (i, (server, addr)) in servers.iter().zip(&addrs).enumerate() {
        let tcp = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .with_context(|| format!("cannot connect to {server} ({addr})"))?;
        if let Some(tls) = &tls {
            tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            tcp.set_write_timeout(Some(CONNECT_TIMEOUT))?;
            let settled = tls
                .probe(i, tcp)
                .with_context(|| format!("cannot speak TLS to {server} ({addr})"))?;
            negotiated.get_or_insert(settled);
        }
    }
    let idle = (0..config.idle_conns)
        .map(|i| {
            let server = i % addrs.len();
            let opened =
                TcpStream::connect_timeout(&addrs[server], CONNECT_TIMEOUT).and_then(|tcp| {
                    match &tls {
                        None => Ok(Idle::Plain(tcp)),
                        Some(tls) => {
                            tcp.set_read_timeout(Some(CONNECT_TIMEOUT))?;
                            tcp.set_write_timeout(Some(CONNECT_TIMEOUT))?;
                            Ok(Idle::Tls(Box::new(tls.handshake(server, tcp)?)))
                        }
                    }
                });
            opened.with_context(|| {
                format!(
                    "cannot open idle connection {} of {} to {}",
                    i + 1,
                    config.idle_conns,
                    config.server
                )
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let workload = Workload::new(
        KeySpace::new(config.keys),
        config.mix,
        config.value_size,
        config.mget_keys,
    );
    // Before any thread starts, so that the pacer and the workers inherit it.
    let timer_slack_ns = pacer::reduce_timer_slack();
    let pacer = match config.rate {
        Some(_) => Some(Pacer::start().context("cannot start the pacer thread")?),
        None => None,
    };
    let setup = Arc::new(Setup {
        ctx: Context {
            addrs: addrs.clone(),
            workload: Arc::new(workload),
            timeout: config.timeout,
            pacer: pacer.as_ref().map(Pacer::handle),
            tls,
        },
        conns: config.conns,
        depth: config.depth,
        seed: config.seed,
    });
    let threads = config.threads.min(config.conns);
    let workers = (0..threads)
        .map(|i| Worker::start(i, threads, Arc::clone(&setup)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for pending in workers.iter().map(Worker::connect).collect::<Vec<_>>() {
        pending.wait()?;
    }

    let prefill = if config.prefill {
        let began = Instant::now();
        let mut rec = Recorder::new(None);
        for pending in workers.iter().map(Worker::prefill).collect::<Vec<_>>() {
            rec.merge(&pending.wait()?)?;
        }
        let prefill = Prefill {
            keys: u64::from(config.keys),
            stored: rec.requests[Op::Set.index()],
            errors: rec.total_errors(),
            elapsed: began.elapsed(),
        };
        if prefill.stored < prefill.keys {
            eprintln!(
                "loadgen: prefill stored {} of {} keys ({} errors; first: {})",
                prefill.stored,
                prefill.keys,
                prefill.errors,
                rec.error_sample.as_deref().unwrap_or("none")
            );
        }
        Some(prefill)
    } else {
        None
    };

    let start = Instant::now() + START_DELAY;
    let from = start + config.warmup;
    let run = Run {
        start,
        from,
        end: from + config.duration,
        rate_per_conn: config.rate.map(|rate| rate / config.conns as f64),
    };
    let marks = config.mark_window.then(|| mark_window(run.from, run.end));
    let mut rec = Recorder::new(None);
    for pending in workers.iter().map(|w| w.run(run)).collect::<Vec<_>>() {
        rec.merge(&pending.wait()?)?;
    }
    if let Some(marks) = marks {
        marks.join().ok();
    }
    drop(workers);
    drop(pacer);
    let idle_closed = idle
        .iter()
        .filter(|idle| match idle {
            Idle::Plain(tcp) => closed_by_peer(tcp),
            Idle::Tls(session) => closed_by_peer(&session.tcp),
        })
        .count();

    let all = rec.all_latencies()?;
    let report = Report {
        config,
        addr: addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(","),
        rec: &rec,
        prefill,
        idle_closed,
        timer_slack_ns,
        tls: negotiated,
    };
    if config.json {
        println!("{}", report.json(&all));
    } else {
        print!("{}", report.table(&all));
    }
    Ok(())
}

/// Writes `measure-start` and `measure-end` lines to stderr as the measured window opens and
/// closes, so that a caller can sample what the server spends in exactly that window.
fn mark_window(from: Instant, end: Instant) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (at, line) in [(from, "measure-start"), (end, "measure-end")] {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            eprintln!("{line}");
        }
    })
}

/// The first address `server` (`HOST:PORT`) resolves to.
fn resolve(server: &str) -> anyhow::Result<SocketAddr> {
    server
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {server:?} (HOST:PORT expected)"))?
        .next()
        .ok_or_else(|| anyhow!("{server:?} resolves to no address"))
}

/// Whether the server has closed a connection that was held idle. What it sent unasked (a TLS
/// server's session tickets) is read past, so that a close behind it is seen.
fn closed_by_peer(mut stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == IoErrorKind::Interrupted => {}
            Err(e) => return e.kind() != IoErrorKind::WouldBlock,
        }
    }
}
