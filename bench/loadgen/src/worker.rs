//! Worker threads: each runs a single-threaded tokio runtime with its share of the connections
//! (connection `i` on thread `i % threads`), and carries out the phases the main thread orders.
//! A thread's connections share one [`Recorder`], so memory does not grow with their number.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinSet, LocalSet};

use crate::conn::{Conn, Context, Pacing, Phase, Source};
use crate::rng::Rng;
use crate::stats::Recorder;

/// Requests in flight per connection while prefilling (or `--depth`, if larger): enough to
/// keep the server busy without waiting a round trip per key.
const PREFILL_DEPTH: usize = 16;

/// What the run asks of every worker.
#[derive(Debug)]
pub struct Setup {
    pub ctx: Context,
    /// Load connections in all.
    pub conns: usize,
    pub depth: usize,
    pub seed: u64,
}

/// The measured phase.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// When the warmup starts.
    pub start: Instant,
    /// Replies arriving in `from..end` are recorded.
    pub from: Instant,
    pub end: Instant,
    /// Open loop: requests per second per connection.
    pub rate_per_conn: Option<f64>,
}

#[derive(Debug)]
enum Command {
    Connect(oneshot::Sender<Result<(), String>>),
    Prefill(oneshot::Sender<Result<Recorder, String>>),
    Run(Run, oneshot::Sender<Result<Recorder, String>>),
}

/// The main thread's side of a worker.
#[derive(Debug)]
pub struct Worker {
    commands: mpsc::UnboundedSender<Command>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Worker {
    /// Starts worker `index` of `threads`.
    pub fn start(index: usize, threads: usize, setup: Arc<Setup>) -> anyhow::Result<Self> {
        let (commands, rx) = mpsc::unbounded_channel();
        let ids: Vec<usize> = (index..setup.conns).step_by(threads).collect();
        let thread = thread::Builder::new()
            .name(format!("loadgen-{index}"))
            .spawn(move || serve(&ids, &setup, rx))
            .context("cannot start a worker thread")?;
        Ok(Self {
            commands,
            thread: Some(thread),
        })
    }

    /// Opens this worker's connections.
    pub fn connect(&self) -> Pending<()> {
        self.send(Command::Connect)
    }

    /// Sets every key once, over this worker's connections.
    pub fn prefill(&self) -> Pending<Recorder> {
        self.send(Command::Prefill)
    }

    pub fn run(&self, run: Run) -> Pending<Recorder> {
        self.send(|reply| Command::Run(run, reply))
    }

    fn send<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Command,
    ) -> Pending<T> {
        let (tx, rx) = oneshot::channel();
        // If the thread is gone, the receiver says so when waited on.
        self.commands.send(command(tx)).ok();
        Pending(rx)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let (closed, _) = mpsc::unbounded_channel();
        self.commands = closed;
        if let Some(thread) = self.thread.take() {
            // A panic has been printed already; the report says what was measured.
            thread.join().ok();
        }
    }
}

/// A command's answer, to wait for (from the main thread, outside any runtime).
#[derive(Debug)]
pub struct Pending<T>(oneshot::Receiver<Result<T, String>>);

impl<T> Pending<T> {
    pub fn wait(self) -> anyhow::Result<T> {
        self.0
            .blocking_recv()
            .map_err(|_| anyhow!("a worker thread stopped unexpectedly"))?
            .map_err(|message| anyhow!(message))
    }
}

/// The worker thread: connections `ids`, commands until the channel closes.
fn serve(ids: &[usize], setup: &Arc<Setup>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start a runtime: {e}");
            return;
        }
    };
    let local = LocalSet::new();
    local.block_on(&runtime, async {
        let mut conns: Vec<Conn> = Vec::new();
        while let Some(command) = commands.recv().await {
            match command {
                Command::Connect(reply) => {
                    reply.send(connect(ids, setup, &mut conns).await).ok();
                }
                Command::Prefill(reply) => {
                    let keys = u64::from(setup.ctx.workload.keys.count());
                    // Each server gets every key, from the connections that talk to it.
                    let phase = |id: usize| {
                        let (next, step) = setup.ctx.place(id, setup.conns);
                        Phase {
                            end: None,
                            depth: setup.depth.max(PREFILL_DEPTH),
                            pacing: Pacing::Closed,
                            source: Source::Keys {
                                next,
                                step,
                                end: keys,
                            },
                        }
                    };
                    let rec = Recorder::new(None);
                    reply
                        .send(drive(&mut conns, setup, phase, rec, None).await)
                        .ok();
                }
                Command::Run(run, reply) => {
                    let phase = |id: usize| Phase {
                        end: Some(run.end),
                        depth: setup.depth,
                        pacing: match run.rate_per_conn {
                            None => Pacing::Closed,
                            Some(rate) => {
                                let interval = Duration::from_secs_f64(1.0 / rate);
                                // Connections are staggered evenly over one interval, so the
                                // total load is smooth rather than in bursts of `conns`.
                                let offset = interval.mul_f64(id as f64 / setup.conns as f64);
                                Pacing::Open {
                                    next: run.start + offset,
                                    interval,
                                }
                            }
                        },
                        source: Source::Mix,
                    };
                    let rec = Recorder::new(Some((run.from, run.end)));
                    let result = drive(&mut conns, setup, phase, rec, Some(run.start)).await;
                    // The run is the last phase: close the connections now.
                    conns.clear();
                    reply.send(result).ok();
                }
            }
        }
    });
}

async fn connect(ids: &[usize], setup: &Setup, conns: &mut Vec<Conn>) -> Result<(), String> {
    let slots = setup.depth.max(PREFILL_DEPTH);
    for &id in ids {
        // Each connection draws from its own stream, derived from the seed and its index.
        let rng = Rng::new(Rng::new(setup.seed ^ (id as u64).rotate_left(32)).next_u64());
        let conn = Conn::connect(id, &setup.ctx, rng, slots)
            .await
            .map_err(|e| {
                format!(
                    "cannot connect to {} (connection {id}): {e}",
                    setup.ctx.addr(id)
                )
            })?;
        conns.push(conn);
    }
    Ok(())
}

/// Runs one phase on every connection at once (each waiting for `start` first).
async fn drive(
    conns: &mut Vec<Conn>,
    setup: &Arc<Setup>,
    phase: impl Fn(usize) -> Phase,
    rec: Recorder,
    start: Option<Instant>,
) -> Result<Recorder, String> {
    let rec = Rc::new(RefCell::new(rec));
    let mut tasks = JoinSet::new();
    for mut conn in conns.drain(..) {
        let mut phase = phase(conn.id);
        let rec = Rc::clone(&rec);
        let setup = Arc::clone(setup);
        tasks.spawn_local(async move {
            if let Some(start) = start {
                tokio::time::sleep_until(start.into()).await;
            }
            conn.run(&mut phase, &setup.ctx, &rec).await;
            conn
        });
    }
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(conn) => conns.push(conn),
            Err(e) => failure = Some(format!("a connection task failed: {e}")),
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    Ok(rec.replace(Recorder::new(None)))
}
