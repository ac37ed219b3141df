//! Backend memcached servers as seen from one worker.
//!
//! Each worker has one [`Destination`] per server address: a handle that queues requests for a
//! driver task owning one pipelined TCP connection (`connection`). Requests are written in
//! batches as they arrive and replies are matched to them in order (memcached answers a
//! connection's requests in the order it received them).

mod connection;
mod exchange;
mod health;
mod jobs;
pub(crate) mod link;
mod slots;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use exchange::read_reply;
pub use health::{Health, HealthCounters, HealthPolicy};
pub use slots::{Canceled, ReplyReceiver};

use bytes::Bytes;
use switchyard_protocol::{ReplyKind, ReplyStatus};
use tokio::sync::mpsc;

use jobs::JobQueue;

use crate::stats::WorkerStats;
use crate::tenant::servers::Tap;
use crate::wire::Wire;

/// One reply from a backend.
#[derive(Debug)]
pub struct BackendReply {
    /// The reply's bytes, exactly as the server sent them (a slice of the connection's read
    /// buffer: passing it on to the client copies nothing). For a streamed reply, its header
    /// line only.
    pub frame: Bytes,
    /// What kind of answer it is.
    pub status: ReplyStatus,
    /// A long value still arriving (only for a request sent with a `stream_from` its value
    /// reached): the rest of the reply, to pass on as it comes.
    pub body: Option<Body>,
}

/// The rest of a streamed reply: the value, then the reply's end (`\r\n`, and `END\r\n` after
/// a `VALUE`), in chunks as they arrive from the server.
#[derive(Debug)]
pub struct Body {
    /// The chunks, or why the rest will not come.
    pub chunks: mpsc::Receiver<Result<Bytes, BackendError>>,
    /// How many bytes the chunks add up to: fewer means the stream broke.
    pub len: usize,
    /// The server's handle, held until the stream ends: its connection must outlive a reload
    /// that drops the server, as any request's does.
    pub holder: Option<Rc<Destination>>,
    /// How long the client may take to accept the next bytes before it is disconnected.
    pub stall: Duration,
}

/// Why a backend request produced no reply. Most are the server's doing; the exceptions are
/// named as such ([`BackendError::StillArriving`], [`BackendError::TooLarge`],
/// [`BackendError::CutBehind`], [`BackendError::Local`]), and `error::RequestError` blames them
/// elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Connect(String),
    /// The router could not attempt the connect for want of a local resource: its own
    /// failure, not the server's, which is not marked down for it.
    #[error("{0}")]
    Local(LocalShortage),
    /// The TCP connect did not finish within the pool's connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The TLS handshake with the server failed (its certificate did not verify, it does not
    /// speak TLS, ...): why, in rustls's words.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// No reply within the pool's request timeout, the server silent; the connection is reset.
    #[error("timed out")]
    Timeout,
    /// The reply was still arriving when the request's timeout passed: the server was busy
    /// sending what it was asked for (a multi-get of many long values, say). The request's
    /// doing, not the server's; the connection is reset.
    #[error(
        "exceeded its {timeout_ms} ms timeout while still arriving ({received} bytes received)"
    )]
    StillArriving {
        /// Bytes of the reply received by then.
        received: usize,
        /// The request's timeout.
        timeout_ms: u64,
    },
    /// The reply grew past the pool's `max_reply_bytes` before its end (a multi-get of more
    /// long values than that): the request's doing, not the server's. Holding it whole would
    /// cost the router memory without bound; the connection is reset.
    #[error("exceeded max_reply_bytes ({limit}) before its end")]
    TooLarge {
        /// The pool's `max_reply_bytes`.
        limit: usize,
    },
    /// The request was in flight behind a reply cut off (as [`BackendError::StillArriving`]
    /// or [`BackendError::TooLarge`]), and is not one that can be sent again (it may have been
    /// applied): its reply can no longer be told apart.
    #[error("reset behind a reply that was cut off")]
    CutBehind,
    /// The server closed the connection.
    #[error("connection closed")]
    Closed,
    /// Reading or writing the socket failed.
    #[error("i/o error: {0}")]
    Io(String),
    /// The server sent something that is not a memcached reply.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The worker is shutting down.
    #[error("router shutting down")]
    Shutdown,
    /// The server is marked down; nothing was sent.
    #[error("is down")]
    Down,
    /// This worker already has the pool's `max_outstanding_bytes` of requests queued or in
    /// flight at the server: it has stopped reading, or answers far slower than it is asked.
    #[error("has more than {0} bytes of requests outstanding")]
    Overloaded(usize),
}

/// The result a request's sender receives.
pub type BackendResult = Result<BackendReply, BackendError>;

/// A local resource the router ran out of when it tried to connect to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalShortage {
    /// `EMFILE`: this process's limit on open files.
    #[error("out of file descriptors")]
    FileDescriptors,
    /// `ENFILE`: the system's limit on open files.
    #[error("out of file descriptors (system-wide limit)")]
    SystemFileDescriptors,
    /// `ENOMEM` or `ENOBUFS`: kernel memory for a socket.
    #[error("out of memory")]
    Memory,
    /// `EADDRNOTAVAIL`: no local port left to connect from.
    #[error("out of local ports")]
    LocalPorts,
}

impl LocalShortage {
    /// The shortage `e` reports, if it is one.
    pub fn of(e: &std::io::Error) -> Option<LocalShortage> {
        use rustix::io::Errno;
        let errno = Errno::from_io_error(e)?;
        if errno == Errno::MFILE {
            Some(LocalShortage::FileDescriptors)
        } else if errno == Errno::NFILE {
            Some(LocalShortage::SystemFileDescriptors)
        } else if errno == Errno::NOMEM || errno == Errno::NOBUFS {
            Some(LocalShortage::Memory)
        } else if errno == Errno::ADDRNOTAVAIL {
            Some(LocalShortage::LocalPorts)
        } else {
            None
        }
    }
}

/// What a failed connect means: a local shortage (the router's), or a connect failure.
pub(crate) fn connect_failed(e: &std::io::Error) -> BackendError {
    match LocalShortage::of(e) {
        Some(what) => BackendError::Local(what),
        None => BackendError::Connect(describe(e)),
    }
}

/// Whether a connect failed because nothing listens there (`connect_failed` of a
/// `ConnectionRefused`): unambiguous, so the server is marked down at once.
pub(crate) fn refused(err: &BackendError) -> bool {
    matches!(err, BackendError::Connect(why) if *why == std::io::ErrorKind::ConnectionRefused.to_string())
}

/// A failed read or write.
pub(crate) fn io_error(e: &std::io::Error) -> BackendError {
    BackendError::Io(describe(e))
}

/// An I/O error in a few words: its kind (`connection refused`), or the system's own words
/// when the kind says nothing (`uncategorized error`, `other error`).
fn describe(e: &std::io::Error) -> String {
    let kind = e.kind().to_string();
    if e.raw_os_error().is_some() && (kind == "uncategorized error" || kind == "other error") {
        e.to_string()
    } else {
        kind
    }
}

/// Settings of one destination. A server listed by several pools takes the first pool's
/// health settings and the smallest connect timeout.
#[derive(Debug, Clone)]
pub struct DestinationSpec {
    /// Where the server listens.
    pub address: SocketAddr,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// When the server counts as down and how it is probed back.
    pub policy: HealthPolicy,
    /// Bytes of requests one worker may have queued or in flight at this server.
    pub max_outstanding_bytes: usize,
    /// Bytes of one reply gathered whole before the request is failed and the reply cut off.
    pub max_reply_bytes: usize,
    /// TLS to the server, if its pool has it.
    pub tls: Option<crate::tls::Connector>,
    /// Whether reply latencies are recorded (`[stats] timings`).
    pub timings: bool,
    /// Shared by every worker.
    pub health: Arc<Health>,
}

/// One worker's handle on one memcached server.
#[derive(Debug)]
pub struct Destination {
    spec: DestinationSpec,
    /// The owning worker's counters: requests keep only an `Rc` of this handle, no `Arc`.
    stats: Arc<WorkerStats>,
    /// Requests queued or in flight, shared with the connection driver.
    jobs: Rc<JobQueue>,
    /// Where this worker's requests to the server wait for their replies.
    slots: Rc<slots::Slots>,
    /// Idle connections of their own ([`Destination::dedicated`]), kept for reuse.
    spares: std::cell::RefCell<Vec<link::Link>>,
}

/// Idle dedicated connections one worker keeps per server: enough to save the connect for the
/// next long value, few enough to hold no server connections worth mentioning.
const SPARE_CONNECTIONS: usize = 2;

impl Destination {
    /// Creates worker `worker`'s handle and spawns its driver on the current `LocalSet`.
    pub fn spawn(spec: DestinationSpec, worker: usize, stats: Arc<WorkerStats>) -> Rc<Destination> {
        let jobs = Rc::new(JobQueue::new(spec.health.clone(), worker));
        tokio::task::spawn_local(connection::drive(
            spec.clone(),
            jobs.clone(),
            worker,
            stats.clone(),
        ));
        Rc::new(Destination {
            spec,
            stats,
            jobs,
            slots: Rc::default(),
            spares: Default::default(),
        })
    }

    /// Where this destination connects.
    pub fn address(&self) -> SocketAddr {
        self.spec.address
    }

    /// Whether this driver can serve `spec` unchanged (same server, same settings), so that a
    /// new generation may reuse its connection.
    pub fn serves(&self, spec: &DestinationSpec) -> bool {
        let mine = &self.spec;
        mine.address == spec.address
            && mine.connect_timeout == spec.connect_timeout
            && mine.policy == spec.policy
            && mine.max_outstanding_bytes == spec.max_outstanding_bytes
            && mine.max_reply_bytes == spec.max_reply_bytes
            && mine.timings == spec.timings
            && crate::tls::same(&mine.tls, &spec.tls)
            && Arc::ptr_eq(&mine.health, &spec.health)
    }

    /// A connection of its own to the server, for one request that should not share the
    /// pipelined one (a long value passed on as it arrives): a spare one given back by an
    /// earlier such request if it is still open, else a new one. Fails at once when the server
    /// is marked down.
    pub async fn dedicated(&self) -> Result<link::Link, BackendError> {
        if !self.spec.health.is_up() {
            self.refused_down();
            return Err(BackendError::Down);
        }
        while let Some(spare) = self.spares.borrow_mut().pop() {
            // An open, idle connection has nothing to read; one the server closed reads EOF.
            if spare.is_idle() {
                return Ok(spare);
            }
        }
        let connected = link::Link::connect(
            self.spec.address,
            self.spec.tls.as_ref(),
            self.spec.connect_timeout,
        )
        .await;
        match &connected {
            Err(BackendError::Local(what)) => self.spec.health.local_shortage(*what),
            Err(e @ BackendError::Tls(_)) => self.spec.health.tls_failed(e),
            _ => {}
        }
        connected
    }

    /// A request is refused because the server is down: counted, and the prober told that
    /// the server is wanted.
    fn refused_down(&self) {
        self.spec.health.counters.fast_failed.inc();
        self.spec.health.wanted(&self.spec.policy);
    }

    /// Keeps a connection from [`Destination::dedicated`] whose request is complete (its
    /// reply read whole) for the next one, up to [`SPARE_CONNECTIONS`].
    pub fn give_back(&self, conn: link::Link) {
        let mut spares = self.spares.borrow_mut();
        if spares.len() < SPARE_CONNECTIONS {
            spares.push(conn);
        }
    }

    /// The owning worker's counters.
    pub fn stats(&self) -> &WorkerStats {
        &self.stats
    }

    /// Queues a request; the receiver yields its reply or why there is none. Fails at once,
    /// sending nothing, when the server is down or this worker already has the pool's
    /// `max_outstanding_bytes` queued or in flight there. A reply to a one-key retrieval or
    /// `mg` whose value is at least `stream_from` bytes long comes with a [`Body`]
    /// (`usize::MAX`: never); only a caller that passes the reply straight to its client should
    /// ask for that. A tenant's request carries the tenant's `tap` on this server, which counts
    /// it as the server's own counters do.
    pub fn send(
        &self,
        wire: Wire,
        kind: ReplyKind,
        timeout: Duration,
        stream_from: usize,
        tenant: Option<&Rc<Tap>>,
    ) -> Result<ReplyReceiver, BackendError> {
        if !self.spec.health.is_up() {
            self.refused_down();
            if let Some(tap) = tenant {
                tap.fast_failed();
            }
            return Err(BackendError::Down);
        }
        if self.jobs.stopped() {
            return Err(BackendError::Shutdown);
        }
        let limit = self.spec.max_outstanding_bytes;
        // Always admit one request when none is outstanding, whatever its size.
        let cost = jobs::cost(&wire);
        let outstanding = self.jobs.outstanding();
        if outstanding > 0 && outstanding + cost > limit {
            self.spec.health.counters.fast_failed.inc();
            if let Some(tap) = tenant {
                tap.fast_failed();
            }
            return Err(BackendError::Overloaded(limit));
        }
        let (tx, rx) = self.slots.take();
        let now = tokio::time::Instant::now();
        self.jobs.push(
            wire,
            cost,
            kind,
            stream_from,
            now,
            now + timeout,
            tx,
            tenant.cloned(),
        );
        Ok(rx)
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        // The driver serves what is queued, then ends.
        self.jobs.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::Errno;

    #[test]
    fn local_shortages_are_told_apart_from_connect_failures() {
        let os = |e: Errno| std::io::Error::from_raw_os_error(e.raw_os_error());
        let cases = [
            (Errno::MFILE, "router out of file descriptors"),
            (Errno::NFILE, "out of file descriptors (system-wide limit)"),
            (Errno::NOMEM, "out of memory"),
            (Errno::NOBUFS, "out of memory"),
            (Errno::ADDRNOTAVAIL, "out of local ports"),
        ];
        for (errno, text) in cases {
            let err = connect_failed(&os(errno));
            assert!(matches!(err, BackendError::Local(_)), "{errno:?}: {err:?}");
            assert!(format!("router {err}").ends_with(text), "{errno:?}: {err}");
        }
        assert_eq!(
            connect_failed(&os(Errno::CONNREFUSED)),
            BackendError::Connect("connection refused".into())
        );
        // A kind that says nothing gives way to the system's words.
        let odd = connect_failed(&os(Errno::NOTSOCK));
        assert!(
            matches!(&odd, BackendError::Connect(why) if why.contains("os error")),
            "{odd:?}"
        );
    }
}
