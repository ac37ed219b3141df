//! The reliable delete stream (mcrouter's asynchronous delete log): a delete that a server of a
//! pool with `delete_spool` fails (down, unreachable, timed out, reset: any
//! [`BackendError`]) is written durably to that server's spool file before the client is
//! answered, and replayed, in order, once the server answers again. An invalidation is then
//! never lost to an outage; deleting twice is harmless, so a replay may repeat some.
//!
//! - Request path ([`send`], called by `execute` where a route ends at a server): the delete is
//!   sent as any request; if it fails, its key goes to the spool thread and the reply waits
//!   for the record to be durable. Durable: `NOT_FOUND` (`NF` to `md`), what mcrouter answers,
//!   a success to any client that deletes to invalidate. Not durable (spool full, a write
//!   error): the original `SERVER_ERROR`. A task of the worker waits for all this, so a
//!   client that leaves (or sent `noreply`) does not stop its delete from being spooled.
//! - `writer.rs`: the one `switchyard-spool` thread of a router, started with the first spool
//!   a configuration names. It owns every spool file and appends with group commit: it takes
//!   every append waiting (up to 1024), writes them, syncs each file once, then answers them
//!   all. No timer: a lone delete waits one write and one `fdatasync`, and appends that arrive
//!   during a sync share the next one.
//! - `replay.rs`: per spool, a task of that thread replays deletes when the server is up by
//!   the router's health state, in batches paced to `delete_spool_replay_rate`, and moves the
//!   checkpoint past each batch; on a failure it stops and tries again after the pool's probe
//!   floor, doubling to its ceiling.
//! - `file.rs`, `format.rs`: the files (one per server address, checksummed records, a
//!   checkpoint that is also a lock), and reading them back past a torn tail.
//! - `cli.rs`: `switchyard spool show|replay DIR`.
//!
//! Spools live as long as some generation names them ([`Spools::attach`], called where a
//! generation about to be published gets its listening sockets), and are found again by path
//! across reloads; a restarted router reopens the files and replays what they hold.

pub(crate) mod cli;
mod file;
mod format;
mod replay;
mod writer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{Command, ReplyStatus};
use tokio::sync::mpsc;

use crate::backend::{BackendError, Health};
use crate::error::RequestError;
use crate::execute::{Origin, Req};
use crate::generation::Generation;
use crate::reply::{Outcome, Pending};
use crate::stats::Counter;
use crate::worker::LocalGeneration;

use writer::Msg;

/// Appends one router may have waiting for the spool thread: far more than a disk that syncs
/// at all falls behind by, few enough to bound what a stuck disk holds in memory (at most a
/// record of ~300 bytes each). Past it deletes are not spooled (`delete_spool_dropped`).
const MAX_QUEUED: usize = 65536;

/// Every spool of one router: the spool thread, the spools by path, and their counters.
#[derive(Debug, Default)]
pub struct Spools {
    stats: Arc<SpoolStats>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    thread: Option<(mpsc::UnboundedSender<Msg>, std::thread::JoinHandle<()>)>,
    /// Spools in use, by file: a new generation naming the same file gets the same spool.
    live: HashMap<PathBuf, Weak<ServerSpool>>,
    next_id: u64,
}

/// The delete stream's counters, for `stats`.
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Failed deletes written to a spool (their clients got `NOT_FOUND`).
    pub spooled: Counter,
    /// Spooled deletes a server has since applied (`DELETED` or `NOT_FOUND`).
    pub replayed: Counter,
    /// Failed deletes not spooled (the spool full, a write error, the spool thread behind) and
    /// spooled ones a server refused on replay (`CLIENT_ERROR`): lost invalidations.
    pub dropped: Counter,
    /// Bytes in the spool files open now.
    bytes: AtomicU64,
    /// Appends sent to the spool thread and not yet taken.
    queued: AtomicUsize,
}

impl SpoolStats {
    /// Bytes in the spool files open now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn sub_bytes(&self, n: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }
}

/// Why a spool could not be opened: the start or the reload that names it fails.
#[derive(Debug, thiserror::Error)]
#[error("delete spool for {server}: {message}")]
pub struct SpoolError {
    server: SocketAddr,
    message: String,
}

/// What a spool does, from its pool's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Most bytes the file may hold.
    pub max_bytes: u64,
    /// Deletes replayed per second.
    pub replay_rate: u32,
    /// Connect timeout of a replay.
    pub connect_timeout: Duration,
    /// Time the server has to answer a replayed batch's next reply.
    pub timeout: Duration,
    /// First wait before replaying (after a delete was spooled, after a failed replay).
    pub retry_floor: Duration,
    /// Longest wait between failed replays.
    pub retry_ceiling: Duration,
}

/// One server's spool: a handle on its file, which the spool thread owns.
#[derive(Debug)]
pub struct ServerSpool {
    id: u64,
    path: PathBuf,
    address: SocketAddr,
    /// `address` as records name it.
    server: String,
    health: Arc<Health>,
    settings: Mutex<Settings>,
    /// TLS to the server, when its pool has it: the published generation's.
    tls: Mutex<Option<crate::tls::Connector>>,
    tx: mpsc::UnboundedSender<Msg>,
    stats: Arc<SpoolStats>,
}

impl ServerSpool {
    fn settings(&self) -> Settings {
        *self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tls(&self) -> Option<crate::tls::Connector> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes a delete of `key` to the spool; true once it is durable, false if it was not
    /// written (counted as dropped).
    async fn keep(self: &Arc<Self>, key: &[u8]) -> bool {
        let mut record = Vec::new();
        if format::encode(unix_ms(), &self.server, key, &mut record).is_none() {
            self.stats.dropped.inc();
            return false;
        }
        if self.stats.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.inc();
            return false;
        }
        let (done, durable) = tokio::sync::oneshot::channel();
        let append = writer::Append {
            spool: self.clone(),
            record,
            done,
        };
        if self.tx.send(Msg::Append(append)).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            self.stats.dropped.inc();
            return false;
        }
        durable.await.unwrap_or(false)
    }
}

impl Drop for ServerSpool {
    fn drop(&mut self) {
        // The thread closes the file (a stopped thread has closed it already).
        let _ = self.tx.send(Msg::Forget {
            id: self.id,
            path: std::mem::take(&mut self.path),
        });
    }
}

impl Spools {
    /// The delete stream's counters.
    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    /// Gives `generation` a spool for each server of a pool with `delete_spool`: the one
    /// already open for that file, else opened now (its directory created, its file locked
    /// and checked, its replay started). Called for every generation about to be published,
    /// and for the standby kept to roll back to; an error fails the start or the reload. A
    /// spool already open keeps its settings until [`Spools::publish`].
    pub(crate) fn attach(&self, generation: &mut Generation) -> Result<(), SpoolError> {
        let wanted = wanted(generation);
        if wanted.iter().all(Option::is_none) {
            generation.spools = Vec::new();
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut spools = Vec::with_capacity(wanted.len());
        for (spec, wanted) in generation.destinations.iter().zip(wanted) {
            let Some((path, settings)) = wanted else {
                spools.push(None);
                continue;
            };
            if let Some(live) = inner.live.get(&path).and_then(Weak::upgrade) {
                spools.push(Some(live));
                continue;
            }
            let failed = |message: String| SpoolError {
                server: spec.address,
                message,
            };
            let tx = inner.sender(&self.stats).map_err(failed)?;
            inner.next_id += 1;
            let spool = Arc::new(ServerSpool {
                id: inner.next_id,
                path: path.clone(),
                address: spec.address,
                server: spec.address.to_string(),
                health: spec.health.clone(),
                settings: Mutex::new(settings),
                tls: Mutex::new(spec.tls.clone()),
                tx: tx.clone(),
                stats: self.stats.clone(),
            });
            let (reply, opened) = std::sync::mpsc::channel();
            tx.send(Msg::Open {
                spool: spool.clone(),
                reply,
            })
            .map_err(|_| failed("the spool thread has stopped".into()))?;
            opened
                .recv()
                .unwrap_or_else(|_| Err("the spool thread has stopped".into()))
                .map_err(failed)?;
            inner.live.insert(path, Arc::downgrade(&spool));
            spools.push(Some(spool));
        }
        inner.live.retain(|_, spool| spool.strong_count() > 0);
        generation.spools = spools;
        Ok(())
    }

    /// Gives the spools of `generation`, which is being published, its settings (bound, replay
    /// rate, timeouts): a spool named by several generations follows the published one.
    pub(crate) fn publish(generation: &Generation) {
        for (spool, wanted) in generation.spools.iter().zip(wanted(generation)) {
            if let (Some(spool), Some((_, settings))) = (spool, wanted) {
                *spool.settings.lock().unwrap_or_else(|e| e.into_inner()) = settings;
            }
        }
        for (spool, spec) in generation.spools.iter().zip(&generation.destinations) {
            if let Some(spool) = spool {
                *spool.tls.lock().unwrap_or_else(|e| e.into_inner()) = spec.tls.clone();
            }
        }
    }
}

/// For each destination of `generation`, its spool file and settings, if a pool spools it.
fn wanted(generation: &Generation) -> Vec<Option<(PathBuf, Settings)>> {
    generation
        .destinations
        .iter()
        .map(|spec| {
            generation.config.pools.iter().find_map(|pool| {
                let spool = pool.delete_spool.as_ref()?;
                pool.servers
                    .iter()
                    .any(|s| s.address == spec.address)
                    .then(|| {
                        let settings = Settings {
                            max_bytes: spool.max_bytes,
                            replay_rate: spool.replay_rate,
                            connect_timeout: spec.connect_timeout,
                            timeout: pool.timeout,
                            retry_floor: spec.policy.probe_floor,
                            retry_ceiling: spec.policy.probe_ceiling,
                        };
                        (format::log_path(&spool.dir, spec.address), settings)
                    })
            })
        })
        .collect()
}

impl Inner {
    /// The spool thread's channel, starting the thread the first time.
    fn sender(&mut self, stats: &Arc<SpoolStats>) -> Result<mpsc::UnboundedSender<Msg>, String> {
        if let Some((tx, _)) = &self.thread {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = stats.clone();
        let handle = std::thread::Builder::new()
            .name("switchyard-spool".into())
            .spawn(move || writer::run(rx, stats))
            .map_err(|e| format!("cannot start the spool thread: {e}"))?;
        self.thread = Some((tx.clone(), handle));
        Ok(tx)
    }
}

impl Drop for Spools {
    /// Stops the spool thread once every append sent before is written, and waits for it: its
    /// files are closed (and unlocked) when the router is gone.
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((tx, handle)) = inner.thread.take() {
            let _ = tx.send(Msg::Stop);
            let _ = handle.join();
        }
    }
}

impl LocalGeneration {
    /// The spool of destination `dest`, if it has one and `req` is a delete it keeps.
    pub(crate) fn delete_spool(&self, dest: usize, req: &Req<'_>) -> Option<&Arc<ServerSpool>> {
        let spool = self.shared.spools.get(dest)?.as_ref()?;
        spooled(req).then_some(spool)
    }
}

/// Whether a failed `req` is spooled: `delete`, and `md` unless it compares a CAS value (`C`),
/// a condition a later replay cannot check. An `md` is replayed as a plain delete of its key:
/// an invalidation (`I`) or a value removal (`x`) becomes a delete, which invalidates no less.
fn spooled(req: &Req<'_>) -> bool {
    match req.origin {
        Origin::Client { request, frame } => match request.command {
            Command::Delete => true,
            Command::MetaDelete => !request
                .meta_flags(frame)
                .any(|flag| frame.get(flag.start) == Some(&b'C')),
            _ => false,
        },
        Origin::Built(command) => matches!(command, Command::Delete | Command::MetaDelete),
    }
}

/// Sends the delete `req` to destination `dest` like any request; if the server fails it, the
/// delete goes to `spool` and the reply waits for it to be durable.
pub(crate) fn send(
    generation: &LocalGeneration,
    spool: &Arc<ServerSpool>,
    dest: usize,
    timeout: Duration,
    req: &Req<'_>,
) -> Pending {
    let Some(d) = generation.destinations.get(dest).cloned() else {
        return generation.send(dest, timeout, req.wire, req.kind, req.tenant);
    };
    let spooled = spooled_reply(req);
    let key = req.input.key.to_vec();
    let tap = generation.tap(req.tenant, dest);
    let sent = d.send(req.wire.clone(), req.kind, timeout, usize::MAX, tap);
    let (spool, stats) = (spool.clone(), generation.stats.clone());
    // A task, not the client's pending reply: it runs to the end even if nobody waits for it.
    let task = tokio::task::spawn_local(async move {
        let cause: BackendError = match sent {
            Ok(rx) => match rx.await {
                Ok(Ok(reply)) => {
                    return Outcome {
                        frame: reply.frame,
                        status: reply.status,
                    };
                }
                Ok(Err(cause)) => cause,
                Err(_) => return RequestError::Internal("backend request dropped").answer(&stats),
            },
            Err(cause) => cause,
        };
        // Every backend failure: nothing says the delete was applied.
        if spool.keep(&key).await {
            tracing::debug!(backend = %d.address(), error = %cause, "delete spooled");
            spooled
        } else {
            RequestError::backend(d.address(), cause).answer(&stats)
        }
    });
    Pending::Combined(Box::pin(async move {
        task.await
            .unwrap_or_else(|_| RequestError::Internal("spooled delete dropped").reply())
    }))
}

/// What a spooled delete's client gets: `NOT_FOUND`, or for `md` `NF` with the flags memcached
/// would return (`O` opaque, `k` key, `b`).
fn spooled_reply(req: &Req<'_>) -> Outcome {
    let meta = match req.origin {
        Origin::Client { request, frame } if request.command == Command::MetaDelete => {
            Some((request, frame))
        }
        Origin::Built(Command::MetaDelete) => None,
        _ => {
            return Outcome::fixed(b"NOT_FOUND\r\n", ReplyStatus::NotFound);
        }
    };
    let mut line = b"NF".to_vec();
    if let Some((request, frame)) = meta {
        for flag in request.meta_flags(frame) {
            let token = &frame[flag];
            match token.first() {
                Some(b'O' | b'b') => {
                    line.push(b' ');
                    line.extend_from_slice(token);
                }
                Some(b'k') => {
                    line.extend_from_slice(b" k");
                    line.extend_from_slice(&frame[request.key.clone()]);
                }
                _ => {}
            }
        }
    }
    line.extend_from_slice(b"\r\n");
    Outcome {
        frame: Bytes::from(line),
        status: ReplyStatus::NotFound,
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::RouteInput;
    use crate::wire::Wire;
    use switchyard_protocol::{Limits, Parsed, ReplyKind, parse_request};

    fn with_request<T>(line: &str, f: impl FnOnce(&Req<'_>) -> T) -> T {
        let frame = Bytes::copy_from_slice(line.as_bytes());
        let Parsed::Request { request, .. } = parse_request(&frame, &Limits::default()) else {
            panic!("{line} does not parse");
        };
        let wire = Wire::one(frame.clone());
        let req = Req {
            input: RouteInput {
                op: 0,
                key: b"k",
                flags: 0,
                exptime: 0,
                value_len: 0,
                listener: 0,
                identity: None,
            },
            wire: &wire,
            kind: ReplyKind::Line,
            origin: Origin::Client {
                request: &request,
                frame: &frame,
            },
            namespace: b"",
            tenant: None,
        };
        f(&req)
    }

    #[test]
    fn deletes_are_spooled_but_not_conditional_ones() {
        for (line, spool) in [
            ("delete k\r\n", true),
            ("delete k noreply\r\n", true),
            ("md k\r\n", true),
            ("md k q O12 I T30\r\n", true),
            ("md k C1234\r\n", false),
            ("get k\r\n", false),
            ("set k 0 0 1\r\nv\r\n", false),
            ("mg k v\r\n", false),
        ] {
            assert_eq!(with_request(line, spooled), spool, "{line:?}");
        }
    }

    #[test]
    fn a_spooled_delete_is_answered_as_not_found() {
        let reply = |line: &str| with_request(line, spooled_reply);
        assert_eq!(reply("delete k\r\n").frame, "NOT_FOUND\r\n");
        assert_eq!(reply("md k\r\n").frame, "NF\r\n");
        assert_eq!(reply("md k O99 k q\r\n").frame, "NF O99 kk\r\n");
        assert_eq!(reply("md aw== b k\r\n").frame, "NF b kaw==\r\n");
        assert_eq!(reply("md k\r\n").status, ReplyStatus::NotFound);
    }
}
