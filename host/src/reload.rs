//! Hot swap: build a new generation off the request path, then publish it with one atomic
//! store.
//!
//! Every trigger (file watch, `SIGHUP`, the admin `reload` command, [`crate::Router::reload`])
//! ends in [`Control::reload`]. A reload parses the config, compiles only plugins whose bytes
//! changed ([`ModuleCache`]), instantiates and `init`s every node, and only then stores the new
//! generation. Anything failing leaves the running generation untouched; the reason is logged,
//! counted and kept for `stats`. Requests already running finish on the generation they started
//! on (they hold it), and an old generation is freed when its last request ends.
//!
//! A newly published generation whose plugins fault `[plugins] rollback_faults` times is
//! replaced by a fresh build of the previous configuration with the modules it ran, even if
//! their files were overwritten since (the watcher checks every [`WATCH_INTERVAL`]). Only that
//! configuration and its compiled modules are kept for this, never a whole old generation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::config::{Config, ConfigError, PluginSource};
use crate::generation::{BuildError, Generation, Modules};
use crate::plugin::{ModuleCache, PluginEngine};
use crate::stats::Counter;

mod partial;

/// How often the watcher looks at the config and plugin files (and at the fault count of a new
/// generation): a change is picked up within this, plus the build.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(200);

/// What the watcher thread is told besides its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchSignal {
    /// A generation's plugin faults reached `[plugins] rollback_faults`: look now.
    Faults,
    /// The router is stopping.
    Stop,
}

/// Why a reload was refused. The running generation is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file could not be read or is not a valid config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin could not be read, compiled or initialised, or a reference is missing.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A delete spool of the new configuration could not be opened.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// A listener of the new configuration could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Reload counters and the last failure, for `stats`.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Generations published by a reload.
    pub reloads: Counter,
    /// Reloads refused.
    pub failures: Counter,
    /// Generations replaced by the previous configuration after crash-looping.
    pub rollbacks: Counter,
    /// Unix seconds of the last published generation.
    pub loaded_at: AtomicU64,
    /// Unix seconds of the last reload that published (0: none yet).
    pub last_success: AtomicU64,
    /// The generation the running one replaced by rolling back (0: the running generation is
    /// not a rollback).
    pub rolled_back_from: AtomicU64,
    /// Unix seconds of the last refused reload (0: none yet).
    pub last_failure: AtomicU64,
    /// Unix seconds of the last reload that published after a refused one, clearing its
    /// error (0: none yet).
    pub error_cleared: AtomicU64,
    /// Why the last reload was refused; cleared by the next one that publishes.
    last_error: Mutex<String>,
}

impl ReloadStats {
    /// The last refused reload's reason, or empty.
    pub fn last_error(&self) -> String {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    fn set_last_error(&self, error: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            if error.is_empty() && !e.is_empty() {
                self.error_cleared.store(unix_now(), Ordering::Relaxed);
            } else if !error.is_empty() {
                self.last_failure.store(unix_now(), Ordering::Relaxed);
            }
            *e = error.to_string();
        }
    }
}

/// Everything a reload needs; shared by the router, the watcher and the admin listener.
#[derive(Debug)]
pub struct Control {
    engine: Arc<PluginEngine>,
    cache: ModuleCache,
    current: Arc<ArcSwap<Generation>>,
    /// Serialises reloads: held through a whole build and publication.
    reloading: Mutex<()>,
    /// What a reload and a rollback at a fault share, each holding it only briefly (never
    /// through a build), so that the fault reaching `rollback_faults` can wait for it: the
    /// configuration a crash-looping generation is rolled back to, and that configuration built.
    state: Mutex<State>,
    /// Every generation ever published, to count those still alive.
    published: Mutex<Vec<Weak<Generation>>>,
    /// Told the number of each generation published, so workers can open and close listeners.
    announce: tokio::sync::watch::Sender<u64>,
    /// The watcher's channel, given to every published generation (see [`Control::watch_with`]).
    alarm: std::sync::OnceLock<mpsc::Sender<WatchSignal>>,
    /// This control, for published generations to roll back through at their fault.
    this: std::sync::OnceLock<Weak<Control>>,
    /// Set by a rollback made on a worker, taken by the watcher: the files as they are count
    /// as seen.
    rolled_back: std::sync::atomic::AtomicBool,
    /// Counters and the last failure.
    pub stats: ReloadStats,
    /// The delete spools of the published generations (`[pools.NAME] delete_spool`).
    spools: crate::spool::Spools,
}

#[derive(Debug, Default)]
struct State {
    next_number: u64,
    /// A reload is building: a rollback at a fault leaves it to the watcher, since the
    /// reload's generation would replace it.
    building: bool,
    /// The configuration before the current one, with the modules it ran.
    previous: Option<(Config, Modules)>,
    /// That configuration built, its instances made, ready to be published by the fault that
    /// reaches `rollback_faults` without waiting for a build (unnumbered, no sockets yet).
    standby: Option<Generation>,
}

impl Control {
    /// Builds the first generation from `config`.
    pub fn start(engine: Arc<PluginEngine>, config: Config) -> Result<Control, ReloadError> {
        let cache = ModuleCache::default();
        let mut first = Generation::build(config, &engine, &cache, 1, None)?;
        bind_listeners(&mut first, None)?;
        let spools = crate::spool::Spools::default();
        spools.attach(&mut first)?;
        log_serving(&first);
        let first = Arc::new(first);
        let control = Control {
            engine,
            cache,
            current: Arc::new(ArcSwap::new(first.clone())),
            reloading: Mutex::new(()),
            state: Mutex::new(State {
                next_number: 2,
                building: false,
                previous: None,
                standby: None,
            }),
            published: Mutex::new(vec![Arc::downgrade(&first)]),
            announce: tokio::sync::watch::channel(1).0,
            alarm: std::sync::OnceLock::new(),
            this: std::sync::OnceLock::new(),
            rolled_back: std::sync::atomic::AtomicBool::new(false),
            stats: ReloadStats::default(),
            spools,
        };
        control.stats.loaded_at.store(unix_now(), Ordering::Relaxed);
        Ok(control)
    }

    /// Gives the running generation, and every generation published from now on, the
    /// watcher's channel, so that the fault reaching `rollback_faults` wakes it at once (when
    /// the generation cannot roll back by itself: see [`Control::roll_back_now`]).
    pub fn watch_with(self: &Arc<Self>, alarm: mpsc::Sender<WatchSignal>) {
        let _ = self.this.set(Arc::downgrade(self));
        let current = self.current.load();
        let _ = current.alarm.set(alarm.clone());
        let _ = current.control.set(Arc::downgrade(self));
        let _ = self.alarm.set(alarm);
    }

    /// The published generation, as workers read it.
    pub fn current(&self) -> &Arc<ArcSwap<Generation>> {
        &self.current
    }

    /// Changes whenever a generation is published.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.announce.subscribe()
    }

    /// Re-reads the running config's file (and the tenants' files it includes) and publishes
    /// it. A tenant's file that makes the reload fail (a config error in it, a plugin of one of
    /// its routes that does not compile or `init`) is put back as it runs now, and the rest is
    /// published: one tenant's mistake holds back no other's change. Its error is logged,
    /// naming the tenant, and is `stats config`'s `last_reload_error`.
    pub fn reload(&self) -> Result<u64, ReloadError> {
        let running = self.current.load_full();
        let origin = running.config.origin.clone();
        let mut kept: std::collections::BTreeMap<PathBuf, String> = Default::default();
        let mut refused: Vec<String> = Vec::new();
        loop {
            let attempt = Config::load_with(&origin, &kept)
                .map_err(ReloadError::from)
                .and_then(|config| self.publish(config, None));
            let error = match attempt {
                Ok(number) => {
                    tracing::info!(generation = number, "configuration reloaded");
                    if !refused.is_empty() {
                        self.stats.failures.inc();
                        self.stats.set_last_error(&refused.join("; "));
                    }
                    return Ok(number);
                }
                Err(error) => error,
            };
            let blamed = blamed_file(&error)
                .filter(|path| !kept.contains_key(path))
                .and_then(|path| running.config.includes.iter().find(|i| i.path == path));
            let Some(include) = blamed else {
                self.stats.failures.inc();
                self.stats.set_last_error(&error.to_string());
                tracing::error!(error = %error, "reload refused; the running configuration stays");
                return Err(error);
            };
            tracing::error!(
                tenant = %include.tenant,
                file = %include.path.display(),
                error = %error,
                "tenant's file refused; the tenant keeps its running configuration, the rest reloads"
            );
            refused.push(format!(
                "tenant {} keeps its running configuration: {error}",
                include.tenant
            ));
            kept.insert(include.path.clone(), include.text.clone());
        }
    }

    /// Builds and publishes `config`.
    pub fn reload_with(&self, config: Config) -> Result<u64, ReloadError> {
        self.publish_or_count(Ok(config))
    }

    fn publish_or_count(&self, config: Result<Config, ReloadError>) -> Result<u64, ReloadError> {
        let result = config.and_then(|c| self.publish(c, None));
        match &result {
            Ok(number) => {
                tracing::info!(generation = number, "configuration reloaded");
            }
            Err(e) => {
                self.stats.failures.inc();
                self.stats.set_last_error(&e.to_string());
                tracing::error!(error = %e, "reload refused; the running configuration stays");
            }
        }
        result
    }

    fn publish(&self, config: Config, pinned: Option<Modules>) -> Result<u64, ReloadError> {
        let _reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        self.publish_locked(config, pinned)
    }

    /// [`publish`](Self::publish), for a caller that holds `reloading`.
    fn publish_locked(&self, config: Config, pinned: Option<Modules>) -> Result<u64, ReloadError> {
        let rollback = pinned.is_some();
        let (running, number) = {
            let mut state = self.state();
            state.building = true;
            (self.current.load_full(), state.next_number)
        };
        // However the build ends, a rollback at a fault may go ahead again.
        let building = Building(self);
        if config.server.workers != running.config.server.workers {
            tracing::warn!("server.workers changed; it takes effect at the next start");
        }
        let mut built = Generation::build_with(
            config,
            &self.engine,
            &self.cache,
            number,
            Some(&running),
            pinned.unwrap_or_default(),
        )?;
        bind_listeners(&mut built, Some(&running))?;
        self.spools.attach(&mut built)?;
        // The configuration being replaced, built again and kept ready before the new one is
        // published, so that a rollback is a swap at the fault: otherwise the requests that
        // fault while a rollback is built are not bounded by `rollback_faults`.
        let standby = if rollback || built.config.plugins.rollback_faults == 0 {
            None
        } else {
            Generation::build_with(
                running.config.clone(),
                &self.engine,
                &self.cache,
                0,
                Some(&running),
                running.modules.clone(),
            )
            .map_err(ReloadError::from)
            // Its spools are the running generation's: attaching finds them open.
            .and_then(|mut standby| {
                self.spools.attach(&mut standby)?;
                Ok(standby)
            })
            .inspect_err(|e| {
                tracing::warn!(error = %e, "cannot keep the previous configuration ready to roll back to; a rollback will build it then");
            })
            .ok()
        };
        let mut state = self.state();
        state.next_number += 1;
        // The standby it replaces (an instance per node per worker) is freed after the lock.
        let replaced = std::mem::replace(&mut state.standby, standby);
        if !rollback {
            state.previous = Some((running.config.clone(), running.modules.clone()));
            self.stats.reloads.inc();
            self.stats.last_success.store(unix_now(), Ordering::Relaxed);
            self.stats.rolled_back_from.store(0, Ordering::Relaxed);
            self.stats.set_last_error("");
        }
        self.store(built);
        // In the same hold as the store: the first fault of `built` may roll it back.
        state.building = false;
        drop(state);
        drop(building);
        drop(replaced);
        Ok(number)
    }

    /// The state shared with rollbacks at a fault.
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes `built`: workers take it at their next request.
    fn store(&self, mut built: Generation) {
        // A node's faults from now on are this generation's (its stats may be carried over).
        for node in &mut built.nodes {
            node.faults_before = node.stats.faults();
        }
        crate::spool::Spools::publish(&built);
        log_serving(&built);
        let number = built.number;
        let built = Arc::new(built);
        {
            let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
            published.retain(|g| g.strong_count() > 0);
            published.push(Arc::downgrade(&built));
        }
        if let Some(alarm) = self.alarm.get() {
            let _ = built.alarm.set(alarm.clone());
        }
        if let Some(this) = self.this.get() {
            let _ = built.control.set(this.clone());
        }
        self.current.store(built);
        self.stats.loaded_at.store(unix_now(), Ordering::Relaxed);
        self.announce.send_replace(number);
    }

    /// Rolls `bad` back at once by publishing the previous configuration kept ready, if `bad`
    /// is still the running generation, one is ready, and no reload is building (this runs on
    /// the worker whose request fault reached `rollback_faults`: it never waits for a build,
    /// only for the state lock, which nothing holds through one; so a reload's thread
    /// descheduled just after publishing `bad` delays the rollback instead of letting more
    /// requests fault). Says whether it did; if not, the watcher rolls back, building the
    /// configuration then.
    pub(crate) fn roll_back_now(&self, bad: &Generation) -> bool {
        let mut state = self.state();
        let current = self.current.load_full();
        if state.building || current.number != bad.number {
            return false;
        }
        // Only some tenants' files to put back: the watcher builds that. And when the watcher
        // has taken the previous configuration, it is rolling back already.
        let Some((previous, _)) = state.previous.as_ref() else {
            return false;
        };
        if partial::tenants(bad, previous).is_some() {
            return false;
        }
        let Some(mut standby) = state.standby.take() else {
            return false;
        };
        standby.number = state.next_number;
        standby.loaded_at = std::time::SystemTime::now();
        if let Err(e) = bind_listeners(&mut standby, Some(&current)) {
            tracing::error!(error = %e, "cannot roll back at once; the watcher rebuilds the previous configuration");
            return false;
        }
        state.next_number += 1;
        state.previous = None;
        let number = standby.number;
        self.store(standby);
        self.rolled_back
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.rolled_back_to(&current, number, Duration::ZERO, &[]);
        true
    }

    /// Counts and logs a rollback from `bad` to generation `number`: of the files of
    /// `tenants` alone (`reload/partial.rs`), or of the whole configuration when none.
    fn rolled_back_to(&self, bad: &Generation, number: u64, took: Duration, tenants: &[String]) {
        self.stats.rollbacks.inc();
        self.stats
            .rolled_back_from
            .store(bad.number, Ordering::Relaxed);
        let (faults, took_ms) = (bad.faults.get(), took.as_millis() as u64);
        if tenants.is_empty() {
            tracing::error!(
                bad = bad.number,
                generation = number,
                faults,
                took_ms,
                "generation {} kept faulting; rolled back to the previous configuration, \
                 which stays until a watched file changes",
                bad.number
            );
        } else {
            tracing::error!(
                bad = bad.number,
                generation = number,
                faults,
                took_ms,
                tenants = %tenants.join(","),
                "the routes of tenant {} kept faulting; rolled back to that tenant's previous \
                 file, the rest of the configuration stays until a watched file changes",
                tenants.join(" and tenant ")
            );
        }
    }

    /// Whether a worker rolled back since the last call.
    fn take_rolled_back(&self) -> bool {
        self.rolled_back
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// If the current generation came from a reload and its plugins have faulted past the
    /// threshold, replaces it with a fresh build of the configuration before it. Says whether
    /// it did.
    pub fn roll_back_if_crash_looping(&self) -> bool {
        // Held from the look at the current generation to the publish: a reload that lands in
        // between (an operator's fix) is then never replaced by the configuration before the
        // one it replaced.
        let _reloading = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.current.load_full();
        let threshold = current.config.plugins.rollback_faults;
        if threshold == 0 || current.faults.get() < threshold {
            return false;
        }
        let previous = {
            let mut state = self.state();
            match state.previous.take() {
                Some(p) => p,
                None => return false,
            }
        };
        let started = std::time::Instant::now();
        let (published, tenants) = match partial::plan(&current, &previous) {
            Some(plan) => {
                let published = self.publish_locked(plan.config, Some(plan.modules));
                // If the faults go on, the whole configuration before can still come back.
                self.state().previous = Some(previous);
                (published, plan.tenants)
            }
            None => {
                let (config, modules) = previous;
                (self.publish_locked(config, Some(modules)), Vec::new())
            }
        };
        match published {
            Ok(number) => {
                self.rolled_back_to(&current, number, started.elapsed(), &tenants);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "rollback failed; the faulting generation stays");
                false
            }
        }
    }

    /// Generations still in memory: the current one plus any still finishing requests.
    pub fn generations_alive(&self) -> usize {
        let published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        published.iter().filter(|g| g.strong_count() > 0).count()
    }

    /// The delete spools and their counters.
    pub fn spools(&self) -> &crate::spool::Spools {
        &self.spools
    }

    /// Compiled plugin modules in use.
    pub fn modules_cached(&self) -> usize {
        self.cache.len()
    }
}

/// A reload building; dropped on a failed build, it lets rollbacks at a fault go ahead again.
struct Building<'a>(&'a Control);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        self.0.state().building = false;
    }
}

/// Gives `generation` its listening sockets: the running generation's socket for an address
/// both configs name (so its accepted connections and backlog are untouched), a new socket for
/// an address only the new config names. Sockets only the old config names close when the old
/// generation is freed and the workers have stopped accepting on them.
fn bind_listeners(
    generation: &mut Generation,
    running: Option<&Generation>,
) -> Result<(), ReloadError> {
    let mut sockets = Vec::with_capacity(generation.config.listeners.len());
    let mut addrs = Vec::with_capacity(sockets.capacity());
    // Each running socket goes to one listener: two listeners on `127.0.0.1:0` keep theirs.
    let mut taken = vec![false; running.map_or(0, |r| r.config.listeners.len())];
    for l in &generation.config.listeners {
        let reused = running.and_then(|r| {
            let i = r
                .config
                .listeners
                .iter()
                .enumerate()
                .position(|(i, old)| old.address == l.address && !taken[i])?;
            taken[i] = true;
            Some((r.sockets.get(i)?.clone(), *r.listen_addrs.get(i)?))
        });
        let (socket, local) = match reused {
            Some(pair) => pair,
            None => {
                let bind = |source| ReloadError::Bind {
                    address: l.address,
                    source,
                };
                let socket = std::net::TcpListener::bind(l.address).map_err(bind)?;
                socket.set_nonblocking(true).map_err(bind)?;
                let local = socket.local_addr().map_err(bind)?;
                (Arc::new(socket), local)
            }
        };
        sockets.push(socket);
        addrs.push(local);
    }
    generation.sockets = sockets;
    generation.listen_addrs = addrs;
    Ok(())
}

/// Watches the files of the configuration: the config file, every plugin file the running
/// configuration names, and every plugin file the config file on disk names (so that a file a
/// refused reload needed is noticed when it appears or is fixed). A change is a change of
/// content (a hash), not of modification time, and one look every [`WATCH_INTERVAL`] sees a
/// burst of writes as one change. After a rollback the files as they are then count as seen:
/// the router stays on the rolled-back configuration until a file changes again.
pub fn watch(control: Arc<Control>, start: Watched, signal: mpsc::Receiver<WatchSignal>) {
    let Watched {
        mut files,
        hashes: mut seen,
    } = start;
    loop {
        match signal.recv_timeout(WATCH_INTERVAL) {
            Err(mpsc::RecvTimeoutError::Timeout) | Ok(WatchSignal::Faults) => {}
            Ok(WatchSignal::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let rolled_back = control.roll_back_if_crash_looping() | control.take_rolled_back();
        let config = control.current.load().config.clone();
        let now = files.look(&config);
        if rolled_back || !config.server.watch {
            seen = now;
            continue;
        }
        if now != seen {
            // A burst of writes (an editor's, a deploy's, a file written in pieces) is one
            // change: wait until the files hold still for a moment, so that a half-written
            // file is not reloaded (and refused) on the way.
            let mut now = now;
            for _ in 0..MAX_SETTLE_LOOKS {
                std::thread::sleep(SETTLE);
                let again = files.look(&config);
                if again == now {
                    break;
                }
                now = again;
            }
            tracing::info!(file = %config.origin.display(), "change detected; reloading");
            // A refused reload is logged and counted; the files are looked at again when they
            // change.
            let _ = control.reload();
            seen = now;
        }
    }
}

/// How long watched files must hold still after a change before it is reloaded.
const SETTLE: Duration = Duration::from_millis(30);
/// Looks the watcher takes at most waiting for files to hold still (a file rewritten without
/// end is reloaded anyway after them).
const MAX_SETTLE_LOOKS: usize = 20;

/// Content hashes of watched files, by path (`None`: missing or unreadable).
type Hashes = HashMap<PathBuf, Option<u64>>;

/// The watched files as the watcher starts from them.
#[derive(Debug)]
pub struct Watched {
    files: WatchedFiles,
    hashes: Hashes,
}

impl Watched {
    /// The files of `control`'s running configuration as they are now.
    pub fn now(control: &Control) -> Watched {
        let mut files = WatchedFiles::default();
        let hashes = files.look(&control.current.load().config);
        Watched { files, hashes }
    }
}

/// What the watcher knows of the files: each file's size, modification time and content hash,
/// so that a file is read and hashed again only when its size or time changed; and the other
/// files the config file names (plugins, TLS files), parsed again only when its content changed.
#[derive(Debug, Default)]
struct WatchedFiles {
    stamps: HashMap<PathBuf, (u64, SystemTime, u64)>,
    config_hash: Option<u64>,
    config_files: Vec<PathBuf>,
}

impl WatchedFiles {
    /// The content hash of every watched file, for the running configuration `running`.
    fn look(&mut self, running: &Config) -> Hashes {
        let origin = running.origin.clone();
        let config_hash = self.hash(&origin);
        if config_hash != self.config_hash {
            self.config_hash = config_hash;
            // A config file that does not parse names no plugin files; the running ones and the
            // config file itself are still watched.
            self.config_files = Config::load(&origin)
                .map(|c| watched_files(&c).collect())
                .unwrap_or_default();
        }
        let mut hashes = Hashes::new();
        hashes.insert(origin, config_hash);
        let names: Vec<PathBuf> = watched_files(running)
            .chain(self.config_files.iter().cloned())
            .collect();
        for path in names {
            if let std::collections::hash_map::Entry::Vacant(slot) = hashes.entry(path) {
                let hash = self.hash(slot.key());
                slot.insert(hash);
            }
        }
        self.stamps.retain(|path, _| hashes.contains_key(path));
        hashes
    }

    /// `path`'s content hash, read again only if its size or modification time changed.
    fn hash(&mut self, path: &std::path::Path) -> Option<u64> {
        let meta = std::fs::metadata(path).ok()?;
        let stamp = (meta.len(), meta.modified().ok()?);
        if let Some((len, time, hash)) = self.stamps.get(path)
            && (*len, *time) == stamp
        {
            return Some(*hash);
        }
        let bytes = std::fs::read(path).ok()?;
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        };
        self.stamps
            .insert(path.to_path_buf(), (stamp.0, stamp.1, hash));
        Some(hash)
    }
}

/// The file a reload's error is in, when it names one: a config error's, or a plugin's node's.
fn blamed_file(error: &ReloadError) -> Option<PathBuf> {
    match error {
        ReloadError::Config(e) => Some(e.file.clone()),
        ReloadError::Build(BuildError::Plugin { file, .. }) => Some(PathBuf::from(file)),
        _ => None,
    }
}

/// The files `config` names besides itself: plugin files, the certificates, keys and CA
/// bundles of its TLS listeners and pools (a rotated certificate is a change like any other),
/// its tenants' files and its credentials file.
fn watched_files(config: &Config) -> impl Iterator<Item = PathBuf> + '_ {
    let plugins = config
        .routes
        .iter()
        .map(|r| &r.plugin)
        .chain(config.pools.iter().map(|p| &p.hash))
        .filter_map(|s| match s {
            PluginSource::File(path) => Some(path.clone()),
            PluginSource::Bundled(_) => None,
        });
    let listeners = config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_ref())
        .flat_map(|t| [Some(&t.cert), Some(&t.key), t.client_ca.as_ref()])
        .flatten()
        .cloned();
    let pools = config
        .pools
        .iter()
        .filter_map(|p| p.tls.as_ref())
        .flat_map(|t| {
            let (cert, key) = t.client_cert.as_ref().map(|(c, k)| (c, k)).unzip();
            [Some(&t.ca), cert, key]
        })
        .flatten()
        .cloned();
    // The tenants' own files and the users of `[auth]`.
    let tenants = config
        .includes
        .iter()
        .map(|i| i.path.clone())
        .chain(config.auth.iter().map(|a| a.credentials.clone()));
    plugins.chain(listeners).chain(pools).chain(tenants)
}

/// One line per generation published (at start, by a reload, by a rollback): what it
/// serves, and which module, by hash, each plugin node runs.
fn log_serving(generation: &Generation) {
    let plugins: Vec<String> = generation
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{}={} {}",
                n.context.label,
                n.module.name(),
                n.module.hash()
            )
        })
        .collect();
    tracing::info!(
        generation = generation.number,
        config = %generation.config.origin.display(),
        listeners = ?generation.listen_addrs,
        plugins = ?plugins,
        "generation {} serving",
        generation.number
    );
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
