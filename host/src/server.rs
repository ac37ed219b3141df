//! The router as a whole: builds the first generation, binds the listeners, and runs one
//! worker thread per core, each with its own single-threaded runtime.
//!
//! Every worker accepts on every listener (the listening sockets are shared, so the kernel
//! hands each connection to one worker); a connection then stays on that worker for life.
//!
//! Admission: a new client counts against its listener's `max_connections` and against the
//! router-wide budget the open-file limit leaves ([`client_budget`]); past either it is
//! answered memcached's `ERROR Too many open connections` and closed (`rejected_connections`),
//! so the router never spends the descriptors its servers need on clients, and a client at
//! the limit is told rather than left in the backlog. A failing `accept` (out of descriptors,
//! buffers or memory) backs off from 10 ms to 1 s and is logged once per 10 s, with a count.
//!
//! Drain ([`Router::drain`], SIGTERM in the binary): every worker takes what the kernel already
//! accepted and shuts the listening sockets down (new connects are refused from then on); every
//! connection answers what it has read, reads what its client had already sent, and closes once
//! nothing is left (`connection.rs`); a worker ends when its connections and background sends
//! are done, or at the deadline, when what is left is cut.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::config::Config;
use crate::drain::Connections;
use crate::generation::Generation;
use crate::plugin::{PluginEngine, PluginError};
use crate::reload::{Control, ReloadError};
use crate::stats::RouterStats;
use crate::worker::Worker;

/// What memcached answers a client past its connection limit, before it closes the connection.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// First pause after `accept` fails for want of a resource (descriptors, buffers, memory),
/// doubled while it keeps failing up to [`ACCEPT_BACKOFF_MAX`]: a persistent failure neither
/// spins a core nor leaves the listener deaf for long once it clears.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause between accepts that keep failing.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval, over every worker, about failing accepts, and one
/// about rejected clients, each with the count since the last.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// How long a drained worker lets its backend connections write what is still queued (a
/// `noreply` request's bytes) once its clients are gone.
const FLUSH_GRACE: Duration = Duration::from_millis(50);

/// Descriptors one worker keeps besides its clients': per server, its shared connection and
/// two spare connections for long values ([`DESCRIPTORS_PER_SERVER`]); the long values it
/// streams at once ([`crate::connection::MAX_UPLOADS`]); its copy of each listening socket;
/// and its runtime's own (an epoll instance, a wake-up descriptor, slack).
const DESCRIPTORS_PER_SERVER: usize = 3;
/// A worker runtime's own descriptors.
const RUNTIME_DESCRIPTORS: usize = 4;
/// Descriptors the process keeps besides the workers': the admin listener and its connections,
/// and for standard streams, config and plugin files being read, room to spare.
const PROCESS_DESCRIPTORS: usize = 1 + crate::admin::MAX_CONNECTIONS + 32;

/// Client connections the router accepts at once, over every listener, when its soft limit
/// on open files is `open_files`: the limit less what it keeps for everything else (see
/// [`DESCRIPTORS_PER_SERVER`]), so that clients can never take the descriptors a reconnect to
/// a server needs. With the usual hard limits (524288 under systemd, 65536 in the unit) this
/// is far above any real client count; under a small limit it is what stops `accept` from
/// failing with `EMFILE`.
pub fn client_budget(open_files: u64, workers: usize, servers: usize, listeners: usize) -> usize {
    let per_worker = servers * DESCRIPTORS_PER_SERVER
        + crate::connection::MAX_UPLOADS
        + listeners
        + RUNTIME_DESCRIPTORS;
    let reserved = workers * per_worker + PROCESS_DESCRIPTORS;
    usize::try_from(open_files)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved)
}

/// This process's soft limit on open files (`u64::MAX`: none).
pub fn open_file_limit() -> u64 {
    use rustix::process::{Resource, getrlimit};
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

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
    #[error(transparent)]
    Engine(#[from] PluginError),
    /// The first generation could not be built or its listeners bound.
    #[error(transparent)]
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

/// A running router. Dropping it (or [`Router::shutdown`]) stops every worker at once;
/// [`Router::drain`] stops it gracefully.
#[derive(Debug)]
pub struct Router {
    admin: Option<crate::admin::Admin>,
    phase: watch::Sender<Phase>,
    stop_watch: Option<std::sync::mpsc::Sender<crate::reload::WatchSignal>>,
    workers: Vec<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
    control: Arc<Control>,
    stats: Arc<RouterStats>,
    admission: Arc<Admission>,
}

/// What the workers are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    /// Stop accepting, finish what was read, and end by this instant.
    Drain(Instant),
    /// End now.
    Stop,
}

/// How a drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Client connections open when it started.
    pub open: u64,
    /// Connections still open at the deadline, and cut.
    pub cut: usize,
    /// How long it took.
    pub took: Duration,
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
        let admission = Arc::new(Admission::new(open_file_limit()));
        let (phase, signal) = watch::channel(Phase::Run);

        let mut threads = Vec::with_capacity(workers);
        for id in 0..workers {
            let (control, stats, signal) = (control.clone(), stats.clone(), signal.clone());
            let admission = admission.clone();
            let thread = std::thread::Builder::new()
                .name(format!("switchyard-w{id}"))
                .spawn(move || run_worker(id, control, stats, admission, signal))
                .map_err(StartError::Thread)?;
            threads.push(thread);
        }
        let (stop_watch, watch_signal) = std::sync::mpsc::channel();
        control.watch_with(stop_watch.clone());
        let watcher = {
            let control = control.clone();
            // The files as they are now, when the configuration was just loaded from them: a
            // change made before the watcher thread first runs is still a change.
            let seen = crate::reload::Watched::now(&control);
            std::thread::Builder::new()
                .name("switchyard-watch".into())
                .spawn(move || crate::reload::watch(control, seen, watch_signal))
                .map_err(StartError::Thread)?
        };
        let admin = match (generation.config.admin, generation.config.admin_http) {
            (None, None) => None,
            (address, http) => Some(crate::admin::start(
                address,
                http,
                control.clone(),
                stats.clone(),
            )?),
        };
        let addrs = &generation.listen_addrs;
        let budget = client_budget(
            admission.open_files,
            workers,
            generation.destinations.len(),
            addrs.len(),
        );
        tracing::info!(workers, listeners = ?addrs, client_budget = budget, "switchyard started");
        if budget == 0 {
            tracing::warn!(
                open_files = admission.open_files,
                "the open-file limit leaves no room for clients: every one is refused"
            );
        }
        Ok(Router {
            admin,
            phase,
            stop_watch: Some(stop_watch),
            workers: threads,
            watcher: Some(watcher),
            control,
            stats,
            admission,
        })
    }

    /// The bound address of each listener of the current generation, in config order (useful
    /// with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.control.current().load().listen_addrs.clone()
    }

    /// The bound address of the admin listener, if the config has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
            .as_ref()
            .and_then(crate::admin::Admin::local_addr)
    }

    /// The bound address of the admin HTTP listener, if the config has one.
    pub fn admin_http_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(crate::admin::Admin::http_addr)
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

    /// Stops gracefully: closes every listener at once (new connects are refused), lets every
    /// connection answer the requests it has read and those its client had already sent,
    /// closes each as soon as it has nothing left, and returns when all are closed (and the
    /// background sends done) or after `timeout`, when whatever is still open is cut. No
    /// reload happens meanwhile. Logs a line when it starts and one when it ends.
    pub fn drain(mut self, timeout: Duration) -> Drained {
        let started = Instant::now();
        let open = self.stats.sum(|w| &w.curr_connections);
        tracing::info!(
            connections = open,
            timeout_ms = timeout.as_millis() as u64,
            "draining: listeners closed; connections close once they have answered what they read"
        );
        self.stop_reloads();
        let _ = self.phase.send(Phase::Drain(started + timeout));
        for t in self.workers.drain(..) {
            let _ = t.join();
        }
        let drained = Drained {
            open,
            cut: self.admission.cut.load(Ordering::Relaxed),
            took: started.elapsed(),
        };
        tracing::info!(
            cut = drained.cut,
            took_ms = drained.took.as_millis() as u64,
            "drained: {} connections cut at the deadline",
            drained.cut
        );
        drained
    }

    /// Stops the config watcher and the admin listener: nothing reloads from now on.
    fn stop_reloads(&mut self) {
        // Generations hold the watcher's channel too: say stop rather than drop it.
        if let Some(watch) = self.stop_watch.take() {
            let _ = watch.send(crate::reload::WatchSignal::Stop);
        }
        if let Some(admin) = self.admin.take() {
            admin.stop();
        }
    }

    fn stop(&mut self) {
        let _ = self.phase.send(Phase::Stop);
        self.stop_reloads();
        for t in self.workers.drain(..).chain(self.watcher.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Client connections open, per listening address and in all, shared by every worker: what
/// `max_connections` and the open-file budget are checked against.
#[derive(Debug)]
pub(crate) struct Admission {
    total: Arc<AtomicUsize>,
    listeners: Mutex<HashMap<SocketAddr, Arc<ListenerCount>>>,
    /// The soft open-file limit when the router started.
    open_files: u64,
    /// Connections cut at a drain's deadline, over every worker.
    cut: AtomicUsize,
    accept_failures: EveryInterval,
    rejections: EveryInterval,
}

impl Admission {
    fn new(open_files: u64) -> Admission {
        Admission {
            total: Arc::default(),
            listeners: Mutex::default(),
            open_files,
            cut: AtomicUsize::new(0),
            accept_failures: EveryInterval::new(),
            rejections: EveryInterval::new(),
        }
    }

    /// The count of connections open on `address`, kept across reloads.
    fn listener(&self, address: SocketAddr) -> Arc<ListenerCount> {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        listeners
            .entry(address)
            .or_insert_with(|| {
                Arc::new(ListenerCount {
                    open: AtomicUsize::new(0),
                    total: self.total.clone(),
                })
            })
            .clone()
    }
}

/// Client connections open on one listener, and in all.
#[derive(Debug)]
pub(crate) struct ListenerCount {
    open: AtomicUsize,
    total: Arc<AtomicUsize>,
}

impl ListenerCount {
    /// Takes a place for one more connection, unless that would pass `cap` on this listener
    /// or `budget` in all. Two workers admitting at once may both refuse the last place, never
    /// both take it.
    fn admit(&self, cap: Option<usize>, budget: usize) -> bool {
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        if total > budget || cap.is_some_and(|cap| open > cap) {
            self.release();
            return false;
        }
        true
    }

    /// Gives a place back.
    pub(crate) fn release(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts events that are logged at most once per [`LOG_INTERVAL`] over every worker.
#[derive(Debug)]
pub(crate) struct EveryInterval {
    since: Instant,
    /// When the next line may be written, in milliseconds after `since`.
    next_ms: AtomicU64,
    count: AtomicU64,
}

impl EveryInterval {
    pub(crate) fn new() -> EveryInterval {
        EveryInterval {
            since: Instant::now(),
            next_ms: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one event; when a line is due, how many there were since the last one.
    pub(crate) fn note(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        if now < next {
            return None;
        }
        let interval = LOG_INTERVAL.as_millis() as u64;
        self.next_ms
            .compare_exchange(next, now + interval, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.count.swap(0, Ordering::Relaxed))
    }
}

fn run_worker(
    id: usize,
    control: Arc<Control>,
    stats: Arc<RouterStats>,
    admission: Arc<Admission>,
    mut signal: watch::Receiver<Phase>,
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
    let drained = local.block_on(&runtime, async move {
        let current = control.current().clone();
        let worker = Rc::new(Worker::new(id, current.clone(), stats));
        let mut published = control.subscribe();
        // This worker's accept task per listening address.
        let mut accepting: HashMap<SocketAddr, AbortHandle> = HashMap::new();
        let deadline = loop {
            // Instantiate the new generation here now rather than at the next request, so the
            // previous one is released as soon as its own requests end (with its sockets).
            let generation = worker.generation().shared.clone();
            for (socket, addr) in generation.sockets.iter().zip(&generation.listen_addrs) {
                if accepting.contains_key(addr) {
                    continue;
                }
                match socket.try_clone().and_then(TcpListener::from_std) {
                    Ok(l) => {
                        let count = admission.listener(*addr);
                        let task = tokio::task::spawn_local(accept(
                            l,
                            worker.clone(),
                            *addr,
                            admission.clone(),
                            count,
                        ));
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
                changed = published.changed() => if changed.is_err() { break None },
                changed = signal.changed() => match changed.map(|()| *signal.borrow_and_update()) {
                    Ok(Phase::Run) => {}
                    Ok(Phase::Drain(deadline)) => break Some(deadline),
                    Ok(Phase::Stop) | Err(_) => break None,
                },
            }
        };
        for task in accepting.values() {
            task.abort();
        }
        let Some(deadline) = deadline else {
            return false;
        };
        tokio::select! {
            finished = drain(&worker, &admission, deadline) => finished,
            // Router::stop during a drain: now.
            _ = signal.wait_for(|phase| *phase == Phase::Stop) => false,
        }
    });
    if drained {
        // Every connection finished: with the worker's hold on its backend connections gone,
        // each writes what is still queued (the bytes of `noreply` requests) and ends.
        runtime.block_on(async {
            let _ = tokio::time::timeout(FLUSH_GRACE, local).await;
        });
    }
}

/// One worker's part of a drain: its listening sockets closed, its connections told, and
/// waiting until they and its background sends are done (true) or `deadline` passes (false).
async fn drain(worker: &Rc<Worker>, admission: &Arc<Admission>, deadline: Instant) -> bool {
    let generation = worker.generation().shared.clone();
    for (socket, addr) in generation.sockets.iter().zip(&generation.listen_addrs) {
        // Whatever the kernel accepted already is served like any connection ...
        let count = admission.listener(*addr);
        while let Ok((stream, _)) = socket.accept() {
            match stream
                .set_nonblocking(true)
                .and_then(|()| TcpStream::from_std(stream))
            {
                Ok(stream) => admit(worker, admission, &count, stream, *addr),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot serve a connection accepted while draining")
                }
            }
        }
        // ... and from now on connects are refused. Every worker's descriptor names the same
        // socket, so the first shutdown closes it for all; the port stays bound until exit.
        let _ = rustix::net::shutdown(&**socket, rustix::net::Shutdown::Read);
    }
    drop(generation);
    worker.connections.start();
    let finished = async {
        std::future::poll_fn(|cx| worker.connections.poll_idle(cx)).await;
        // Background sends (shadow copies, replication, refills) a client request started.
        while worker.stats.background_outstanding.get() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let deadline = tokio::time::Instant::from_std(deadline);
    tokio::select! {
        () = finished => true,
        () = tokio::time::sleep_until(deadline) => {
            admission.cut.fetch_add(worker.connections.open(), Ordering::Relaxed);
            false
        }
    }
}

async fn accept(
    listener: TcpListener,
    worker: Rc<Worker>,
    local: SocketAddr,
    admission: Arc<Admission>,
    count: Arc<ListenerCount>,
) {
    let mut backoff = AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                admit(&worker, &admission, &count, stream, local);
            }
            Err(e) => {
                if let Some(pause) = backoff.failed(&e, local, &admission.accept_failures) {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// The pause of a listener whose `accept` keeps failing, from [`ACCEPT_BACKOFF`] doubling to
/// [`ACCEPT_BACKOFF_MAX`].
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    next: Duration,
}

impl Default for AcceptBackoff {
    fn default() -> AcceptBackoff {
        AcceptBackoff {
            next: ACCEPT_BACKOFF,
        }
    }
}

impl AcceptBackoff {
    /// An accept succeeded.
    pub(crate) fn reset(&mut self) {
        self.next = ACCEPT_BACKOFF;
    }

    /// How long to pause after `accept` on `local` failed with `error` (`None`: an error about
    /// one client only, which gave up or reset first, and is no failure); logs it when
    /// `reports` says a line is due.
    pub(crate) fn failed(
        &mut self,
        error: &std::io::Error,
        local: SocketAddr,
        reports: &EveryInterval,
    ) -> Option<Duration> {
        use std::io::ErrorKind;
        if matches!(
            error.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return None;
        }
        let pause = self.next;
        if let Some(failures) = reports.note() {
            tracing::warn!(
                %local,
                %error,
                failures,
                retry_ms = pause.as_millis() as u64,
                "accept failed {failures} times since the last report; backing off (up to 1 s)"
            );
        }
        self.next = (pause * 2).min(ACCEPT_BACKOFF_MAX);
        Some(pause)
    }
}

/// Serves a client accepted on `local`, or refuses it when its listener or the router is at its
/// limit.
fn admit(
    worker: &Rc<Worker>,
    admission: &Admission,
    count: &Arc<ListenerCount>,
    stream: TcpStream,
    local: SocketAddr,
) {
    let (cap, budget, tls) = {
        let generation = worker.generation();
        let shared = &generation.shared;
        let index = shared.listener_index(local).map(|i| i as usize);
        let cap = index
            .and_then(|i| shared.config.listeners.get(i))
            .and_then(|l| l.max_connections);
        // The listener's TLS as the generation serving now has it: a reload with a rotated
        // certificate applies from the next connection.
        let tls = index.and_then(|i| shared.acceptors.get(i).cloned().flatten());
        let budget = client_budget(
            admission.open_files,
            worker.router_stats.workers.len(),
            shared.destinations.len(),
            shared.listen_addrs.len(),
        );
        (cap, budget, tls)
    };
    if count.admit(cap, budget) {
        let admitted = Connections::enter(worker, count.clone());
        match tls {
            None => {
                let caller = crate::dispatch::Caller::new(local, None, admitted);
                tokio::task::spawn_local(crate::connection::run(stream, caller));
            }
            Some(tls) => {
                tokio::task::spawn_local(crate::connection::run_tls(stream, tls, admitted, local));
            }
        }
        return;
    }
    worker.stats.rejected_connections.inc();
    if let Some(rejected) = admission.rejections.note() {
        tracing::warn!(
            %local,
            rejected,
            cap,
            budget,
            "client connections at the limit: {rejected} refused since the last report"
        );
    }
    match stream.into_std() {
        Ok(stream) => refuse(stream),
        Err(e) => tracing::debug!(error = %e, "cannot refuse a connection"),
    }
}

/// Answers a client that cannot be served as memcached does: one write of
/// [`TOO_MANY_CONNECTIONS`], then the connection is closed.
pub(crate) fn refuse(stream: std::net::TcpStream) {
    let _ = (&stream).write(TOO_MANY_CONNECTIONS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_get_what_the_open_file_limit_leaves() {
        // Two workers, three servers, one listener.
        let reserved = 2 * (3 * 3 + crate::connection::MAX_UPLOADS + 1 + 4) + PROCESS_DESCRIPTORS;
        assert_eq!(client_budget(10_000, 2, 3, 1), 10_000 - reserved);
        assert_eq!(client_budget(64, 2, 3, 1), 0);
        assert!(client_budget(u64::MAX, 1024, 100, 10) > 1 << 40);
    }

    #[test]
    fn a_listener_admits_up_to_its_cap_and_the_budget() {
        let admission = Admission::new(1 << 20);
        let a = admission.listener("127.0.0.1:1".parse().expect("address"));
        let b = admission.listener("127.0.0.1:2".parse().expect("address"));
        assert!(a.admit(Some(2), 3) && a.admit(Some(2), 3));
        assert!(!a.admit(Some(2), 3), "past the listener's cap");
        assert!(b.admit(None, 3));
        assert!(!b.admit(None, 3), "past the budget");
        a.release();
        assert!(b.admit(None, 3), "a place given back is taken again");
        assert_eq!(admission.total.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_failing_accept_backs_off_doubling_to_a_second_and_a_success_resets_it() {
        let reports = EveryInterval::new();
        let local = "127.0.0.1:1".parse().expect("address");
        let emfile = std::io::Error::from_raw_os_error(24);
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..9)
            .filter_map(|_| backoff.failed(&emfile, local, &reports))
            .map(|p| p.as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // One line was due (the first); the other eight wait for the next.
        assert_eq!(reports.count.load(Ordering::Relaxed), 8);
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&aborted, local, &reports), None);
        backoff.reset();
        assert_eq!(
            backoff.failed(&emfile, local, &reports),
            Some(ACCEPT_BACKOFF)
        );
    }

    #[test]
    fn a_report_is_due_at_most_once_an_interval_and_counts_the_rest() {
        let every = EveryInterval::new();
        assert_eq!(every.note(), Some(1));
        for _ in 0..5 {
            assert_eq!(every.note(), None);
        }
        every.next_ms.store(0, Ordering::Relaxed);
        assert_eq!(every.note(), Some(6));
    }
}
