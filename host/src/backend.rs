//! Backend memcached servers as seen from one worker.
//!
//! Each worker has one [`Destination`] per server address: a handle that queues requests for a
//! driver task owning one pipelined TCP connection (`connection`). Requests are written in
//! batches as they arrive and replies are matched to them in order (memcached answers a
//! connection's requests in the order it received them).

mod connection;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{ReplyKind, ReplyStatus};
use tokio::sync::{mpsc, oneshot};

use crate::wire::Wire;

/// One complete reply from a backend.
#[derive(Debug, Clone)]
pub struct BackendReply {
    /// The reply's bytes, exactly as the server sent them (a slice of the connection's read
    /// buffer: passing it on to the client copies nothing).
    pub frame: Bytes,
    /// What kind of answer it is.
    pub status: ReplyStatus,
}

/// Why a backend request produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The TCP connect failed (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Connect(String),
    /// The TCP connect did not finish within the pool's connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// No reply within the pool's request timeout; the connection is reset.
    #[error("timed out")]
    Timeout,
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
}

/// The result a request's sender receives.
pub type BackendResult = Result<BackendReply, BackendError>;

/// Settings of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationSpec {
    /// Where the server listens.
    pub address: SocketAddr,
    /// Connect timeout (the smallest of the pools that list this server).
    pub connect_timeout: Duration,
}

/// A request queued for a destination.
#[derive(Debug)]
pub(crate) struct Job {
    wire: Wire,
    kind: ReplyKind,
    deadline: tokio::time::Instant,
    reply: Option<oneshot::Sender<BackendResult>>,
}

impl Job {
    fn finish(self, result: BackendResult) {
        if let Some(tx) = self.reply {
            // The client may have gone; its reply is then simply dropped.
            let _ = tx.send(result);
        }
    }
}

/// One worker's handle on one memcached server.
#[derive(Debug)]
pub struct Destination {
    spec: DestinationSpec,
    tx: mpsc::UnboundedSender<Job>,
    up: Rc<Cell<bool>>,
}

impl Destination {
    /// Creates the handle and spawns its driver on the current `LocalSet`.
    pub fn spawn(spec: DestinationSpec) -> Rc<Destination> {
        let (tx, rx) = mpsc::unbounded_channel();
        let up = Rc::new(Cell::new(true));
        tokio::task::spawn_local(connection::drive(spec.clone(), rx, up.clone()));
        Rc::new(Destination { spec, tx, up })
    }

    /// Where this destination connects.
    pub fn address(&self) -> SocketAddr {
        self.spec.address
    }

    /// Whether the last attempt to reach the server worked.
    pub fn is_up(&self) -> bool {
        self.up.get()
    }

    /// Queues a request; the receiver yields its reply or why there is none.
    pub fn send(
        &self,
        wire: Wire,
        kind: ReplyKind,
        timeout: Duration,
    ) -> oneshot::Receiver<BackendResult> {
        let (tx, rx) = oneshot::channel();
        self.queue(wire, kind, timeout, Some(tx));
        rx
    }

    /// Queues a request whose reply nobody waits for (a client's `noreply`): it is still read,
    /// to keep the connection's replies in step, and then dropped.
    pub fn send_and_forget(&self, wire: Wire, kind: ReplyKind, timeout: Duration) {
        self.queue(wire, kind, timeout, None);
    }

    fn queue(
        &self,
        wire: Wire,
        kind: ReplyKind,
        timeout: Duration,
        reply: Option<oneshot::Sender<BackendResult>>,
    ) {
        let job = Job {
            wire,
            kind,
            deadline: tokio::time::Instant::now() + timeout,
            reply,
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            job.finish(Err(BackendError::Shutdown));
        }
    }
}
