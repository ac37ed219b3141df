//! The router as a whole: builds the first generation, binds the listeners, and runs one
//! worker thread per core, each with its own single-threaded runtime.
//!
//! Every worker accepts on every listener (the listening sockets are shared, so the kernel
//! hands each connection to one worker); a connection then stays on that worker for life.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::generation::Generation;
use crate::plugin::{PluginEngine, PluginError};
use crate::reload::{Control, ReloadError};
use crate::stats::RouterStats;
use crate::worker::Worker;

/// Pause after a failed `accept` (out of file descriptors, say) before trying again, so a
/// persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// Raises this process's soft limit on open files to its hard limit, as memcached and
/// nginx do, and returns the limit now in force: every client connection is a file, and the
/// usual soft default (1024) would refuse a busy router's clients long before the machine runs
/// out of anything. The binary calls this once at start; a library user decides for itself.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    // `None` is unlimited.
    let below = match (limit.current, limit.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if below {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(limit.current.unwrap_or(u64::MAX))
}

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The wasm engine could not be created.
    #[error("{0}")]
    Engine(#[from] PluginError),
    /// The first generation could not be built or its listeners bound.
    #[error("{0}")]
    Reload(#[from] ReloadError),
    /// A worker thread could not be started.
    #[error("cannot start worker thread: {0}")]
    Thread(std::io::Error),
    /// The admin listener could not be bound.
    #[error("cannot listen for admin commands on {address}: {source}")]
    Admin {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running router. Dropping it (or [`Router::shutdown`]) stops every worker.
#[derive(Debug)]
pub struct Router {
    admin: Option<crate::admin::Admin>,
    shutdown: watch::Sender<bool>,
    stop_watch: Option<std::sync::mpsc::Sender<crate::reload::WatchSignal>>,
    threads: Vec<JoinHandle<()>>,
    control: Arc<Control>,
    stats: Arc<RouterStats>,
}

impl Router {
    /// Builds `config` (compiling and `init`-ing every plugin), binds every listener and starts
    /// the workers. Returns once every listener accepts connections.
    pub fn start(config: Config) -> Result<Router, StartError> {
        let engine = Arc::new(PluginEngine::new()?);
        let control = Arc::new(Control::start(engine, config)?);
        let generation = control.current().load_full();
        let workers = generation.config.server.workers;
        let stats = Arc::new(RouterStats::new(workers, control.clone()));
        let (shutdown, signal) = watch::channel(false);

        let mut threads = Vec::with_capacity(workers + 1);
        for id in 0..workers {
            let (control, stats, signal) = (control.clone(), stats.clone(), signal.clone());
            let thread = std::thread::Builder::new()
                .name(format!("switchyard-w{id}"))
                .spawn(move || run_worker(id, control, stats, signal))
                .map_err(StartError::Thread)?;
            threads.push(thread);
        }
        let (stop_watch, watch_signal) = std::sync::mpsc::channel();
        control.watch_with(stop_watch.clone());
        {
            let control = control.clone();
            // The files as they are now, when the configuration was just loaded from them: a
            // change made before the watcher thread first runs is still a change.
            let seen = crate::reload::Watched::now(&control);
            let watcher = std::thread::Builder::new()
                .name("switchyard-watch".into())
                .spawn(move || crate::reload::watch(control, seen, watch_signal))
                .map_err(StartError::Thread)?;
            threads.push(watcher);
        }
        let admin = match generation.config.admin {
            Some(address) => Some(crate::admin::start(
                address,
                control.clone(),
                stats.clone(),
            )?),
            None => None,
        };
        let addrs = &generation.listen_addrs;
        tracing::info!(workers, listeners = ?addrs, "switchyard started");
        Ok(Router {
            admin,
            shutdown,
            stop_watch: Some(stop_watch),
            threads,
            control,
            stats,
        })
    }

    /// The bound address of each listener of the current generation, in config order (useful
    /// with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.control.current().load().listen_addrs.clone()
    }

    /// The bound address of the admin listener, if the config has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(crate::admin::Admin::local_addr)
    }

    /// The generation serving new requests.
    pub fn generation(&self) -> Arc<Generation> {
        self.control.current().load_full()
    }

    /// Re-reads the config file and publishes it; on failure the running generation stays.
    pub fn reload(&self) -> Result<u64, ReloadError> {
        self.control.reload()
    }

    /// Publishes `config` as a reload would.
    pub fn reload_with(&self, config: Config) -> Result<u64, ReloadError> {
        self.control.reload_with(config)
    }

    /// Reloading and rollback state.
    pub fn control(&self) -> &Arc<Control> {
        &self.control
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
        // Generations hold the watcher's channel too: say stop rather than drop it.
        if let Some(watch) = self.stop_watch.take() {
            let _ = watch.send(crate::reload::WatchSignal::Stop);
        }
        if let Some(admin) = self.admin.take() {
            admin.stop();
        }
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
    control: Arc<Control>,
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
        let current = control.current().clone();
        let worker = Rc::new(Worker::new(id, current.clone(), stats));
        let mut published = control.subscribe();
        // This worker's accept task per listening address.
        let mut accepting: HashMap<SocketAddr, AbortHandle> = HashMap::new();
        loop {
            // Instantiate the new generation here now rather than at the next request, so the
            // previous one is released as soon as its own requests end (with its sockets).
            let generation = worker.generation().shared.clone();
            for (socket, addr) in generation.sockets.iter().zip(&generation.listen_addrs) {
                if accepting.contains_key(addr) {
                    continue;
                }
                match socket.try_clone().and_then(TcpListener::from_std) {
                    Ok(l) => {
                        let task = tokio::task::spawn_local(accept(l, worker.clone(), *addr));
                        accepting.insert(*addr, task.abort_handle());
                    }
                    Err(e) => tracing::error!(worker = id, %addr, error = %e, "cannot accept"),
                }
            }
            // Listeners the new generation dropped: stop accepting (connections already
            // accepted on them are closed at their next request).
            accepting.retain(|addr, task| {
                let keep = generation.listen_addrs.contains(addr);
                if !keep {
                    task.abort();
                }
                keep
            });
            drop(generation);
            tokio::select! {
                changed = published.changed() => if changed.is_err() { break },
                _ = signal.changed() => break,
            }
        }
        for task in accepting.values() {
            task.abort();
        }
    });
}

async fn accept(listener: TcpListener, worker: Rc<Worker>, local: SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::task::spawn_local(crate::connection::run(stream, worker.clone(), local));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
