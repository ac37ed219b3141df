//! The router as a whole: builds the first generation, binds the listeners, and runs one
//! worker thread per core, each with its own single-threaded runtime.
//!
//! Every worker accepts on every listener (the listening sockets are shared, so the kernel
//! hands each connection to one worker); a connection then stays on that worker for life.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::generation::{BuildError, Generation};
use crate::plugin::{PluginEngine, PluginError};
use crate::stats::RouterStats;
use crate::worker::Worker;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again, so a
/// persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasm engine could not be created.
    #[error("{0}")]
    Engine(#[from] PluginError),
    /// The configuration could not be built.
    #[error("{0}")]
    Build(#[from] BuildError),
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
}

/// A running router. Dropping it (or [`Router::shutdown`]) stops every worker.
#[derive(Debug)]
pub struct Router {
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    current: Arc<ArcSwap<Generation>>,
    stats: Arc<RouterStats>,
    _engine: Arc<PluginEngine>,
}

impl Router {
    /// Builds `config` (compiling and `init`-ing every plugin), binds every listener and starts
    /// the workers. Returns once every listener accepts connections.
    pub fn start(config: Config) -> Result<Router, StartError> {
        let engine = Arc::new(PluginEngine::new()?);
        let generation = Generation::build(config, &engine, 1, None)?;
        let workers = generation.config.server.workers;
        let mut listeners = Vec::with_capacity(generation.config.listeners.len());
        for l in &generation.config.listeners {
            let bound = StdListener::bind(l.address)
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|source| StartError::Bind {
                    address: l.address,
                    source,
                })?;
            listeners.push(bound);
        }
        let addrs = listeners
            .iter()
            .zip(&generation.config.listeners)
            .map(|(s, l)| s.local_addr().unwrap_or(l.address))
            .collect();
        let current = Arc::new(ArcSwap::from_pointee(generation));
        let stats = Arc::new(RouterStats::new(workers));
        let (shutdown, signal) = watch::channel(false);

        let mut threads = Vec::with_capacity(workers);
        for id in 0..workers {
            let mine = listeners
                .iter()
                .map(|l| l.try_clone())
                .collect::<Result<Vec<_>, _>>()
                .map_err(StartError::Thread)?;
            let current = current.clone();
            let stats = stats.clone();
            let signal = signal.clone();
            let thread = std::thread::Builder::new()
                .name(format!("switchyard-w{id}"))
                .spawn(move || run_worker(id, mine, current, stats, signal))
                .map_err(StartError::Thread)?;
            threads.push(thread);
        }
        tracing::info!(workers, listeners = ?addrs, "switchyard started");
        Ok(Router {
            addrs,
            shutdown,
            threads,
            current,
            stats,
            _engine: engine,
        })
    }

    /// The bound address of each listener, in config order (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The generation serving new requests.
    pub fn generation(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Router-wide counters.
    pub fn stats(&self) -> &RouterStats {
        &self.stats
    }

    /// Stops accepting, closes every connection and joins the workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_worker(
    id: usize,
    listeners: Vec<StdListener>,
    current: Arc<ArcSwap<Generation>>,
    stats: Arc<RouterStats>,
    mut signal: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, error = %e, "cannot build worker runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let worker = Rc::new(Worker::new(id, current, stats));
        for (index, l) in listeners.into_iter().enumerate() {
            match TcpListener::from_std(l) {
                Ok(l) => {
                    tokio::task::spawn_local(accept(
                        l,
                        worker.clone(),
                        index as u32,
                        signal.clone(),
                    ));
                }
                Err(e) => tracing::error!(worker = id, error = %e, "cannot register listener"),
            }
        }
        while !*signal.borrow_and_update() {
            if signal.changed().await.is_err() {
                break;
            }
        }
    });
}

async fn accept(
    listener: TcpListener,
    worker: Rc<Worker>,
    index: u32,
    mut signal: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::task::spawn_local(crate::session::run(stream, worker.clone(), index));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = signal.changed() => return,
        }
    }
}
