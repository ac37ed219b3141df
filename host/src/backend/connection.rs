//! The driver of one destination on one worker: a single task that owns the TCP connection.
//!
//! ```text
//!            job arrives                    connect ok
//!   Idle ─────────────────▶ Connecting ─────────────────▶ Serving
//!    ▲                          │                            │
//!    │      connect failed:     │     timeout, EOF, i/o or   │
//!    │      fail queued jobs    │     protocol error: fail   │
//!    └──────────────────────────┘     in-flight jobs         │
//!    └───────────────────────────────────────────────────────┘
//! ```
//! - **Idle**: no connection; waits for the next job.
//! - **Connecting**: one attempt bounded by the connect timeout. On failure every job queued
//!   so far fails at once (the server is unreachable), and the next job tries again.
//! - **Serving**: a writer half batches queued jobs into `writev` calls and records each in the
//!   in-flight queue before its bytes leave; a reader half parses replies and completes the
//!   oldest in-flight job with each. If the oldest job passes its deadline the connection is
//!   reset: replies behind a hung request would arrive no sooner, and dropping the socket is the
//!   only way to bound what the server can make us hold.

use std::cell::RefCell;
use std::collections::VecDeque;

use bytes::BytesMut;
use switchyard_protocol::{ReplyKind, ReplyParsed, parse_reply};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};

use super::{BackendError, BackendReply, DestinationSpec, Health, Job};
use crate::wire::WriteQueue;

/// Jobs taken from the queue per `writev` batch: enough to amortise the syscall under load,
/// few enough that the first reply is not held back behind a huge batch.
const MAX_BATCH: usize = 128;
/// Initial and minimum free space of the read buffer.
const READ_CHUNK: usize = 16 * 1024;

/// A job whose bytes have been (or are being) written.
struct InFlight {
    kind: ReplyKind,
    deadline: tokio::time::Instant,
    job: Job,
}

pub(super) async fn drive(
    spec: DestinationSpec,
    mut rx: mpsc::UnboundedReceiver<Job>,
    worker: usize,
) {
    while let Some(first) = rx.recv().await {
        let connect =
            tokio::time::timeout(spec.connect_timeout, TcpStream::connect(spec.address)).await;
        let stream = match connect {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                // A refused connect is unambiguous: nothing listens there.
                let refused = e.kind() == std::io::ErrorKind::ConnectionRefused;
                let err = BackendError::Connect(e.kind().to_string());
                fail_queued(first, &mut rx, &err, &spec, refused);
                continue;
            }
            Err(_) => {
                fail_queued(first, &mut rx, &BackendError::ConnectTimeout, &spec, false);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let err = serve(stream, first, &mut rx, &spec.health, worker).await;
        match err {
            BackendError::Shutdown => return,
            BackendError::Timeout => spec.health.timeouts.inc(),
            _ => {}
        }
        tracing::debug!(backend = %spec.address, error = %err, "backend connection ended");
        note_failure(&spec, &err, false);
    }
}

/// Counts a failure; starts the prober when it marks the server down.
fn note_failure(spec: &DestinationSpec, err: &BackendError, immediate: bool) {
    if spec.health.record_failure(&spec.policy, err, immediate) && spec.health.claim_prober() {
        let probe = super::health::probe_until_up(spec.health.clone(), spec.policy);
        tokio::task::spawn_local(probe);
    }
}

fn fail_queued(
    first: Job,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    err: &BackendError,
    spec: &DestinationSpec,
    immediate: bool,
) {
    note_failure(spec, err, immediate);
    first.finish(Err(err.clone()));
    while let Ok(job) = rx.try_recv() {
        job.finish(Err(err.clone()));
    }
}

/// Runs one connection until it fails; every job it took is completed one way or the other.
async fn serve(
    stream: TcpStream,
    first: Job,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    health: &Health,
    worker: usize,
) -> BackendError {
    let (rd, wr) = stream.into_split();
    let inflight = RefCell::new(VecDeque::<InFlight>::new());
    let wake = Notify::new();
    let err = tokio::select! {
        e = write_jobs(wr, first, rx, &inflight, &wake) => e,
        e = read_replies(rd, &inflight, &wake, health, worker) => e,
    };
    for f in inflight.borrow_mut().drain(..) {
        f.job.finish(Err(err.clone()));
    }
    err
}

async fn write_jobs(
    mut wr: OwnedWriteHalf,
    first: Job,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    inflight: &RefCell<VecDeque<InFlight>>,
    wake: &Notify,
) -> BackendError {
    let mut out = WriteQueue::default();
    let mut next = Some(first);
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return BackendError::Shutdown,
            },
        };
        let mut batch = 0;
        let mut job = Some(job);
        while let Some(mut j) = job.take() {
            out.push_wire(std::mem::take(&mut j.wire));
            inflight.borrow_mut().push_back(InFlight {
                kind: j.kind,
                deadline: j.deadline,
                job: j,
            });
            batch += 1;
            if batch < MAX_BATCH {
                job = rx.try_recv().ok();
            }
        }
        wake.notify_one();
        if let Err(e) = out.flush_to(&mut wr).await {
            return BackendError::Io(e.kind().to_string());
        }
    }
}

async fn read_replies(
    mut rd: OwnedReadHalf,
    inflight: &RefCell<VecDeque<InFlight>>,
    wake: &Notify,
    health: &Health,
    worker: usize,
) -> BackendError {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        // Complete every job whose reply is already buffered.
        loop {
            let Some(kind) = inflight.borrow().front().map(|f| f.kind) else {
                break;
            };
            match parse_reply(&buf, kind) {
                ReplyParsed::Incomplete => break,
                ReplyParsed::Malformed => return BackendError::Protocol("malformed reply"),
                ReplyParsed::Reply { consumed, status } => {
                    let frame = buf.split_to(consumed).freeze();
                    let done = inflight.borrow_mut().pop_front();
                    if let Some(f) = done {
                        health.record_reply(worker, f.job.queued.elapsed());
                        f.job.finish(Ok(BackendReply { frame, status }));
                    }
                }
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let deadline = inflight.borrow().front().map(|f| f.deadline);
        match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, rd.read_buf(&mut buf)).await {
                    Err(_) => return BackendError::Timeout,
                    Ok(Ok(0)) => return BackendError::Closed,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return BackendError::Io(e.kind().to_string()),
                }
            }
            None => {
                if !buf.is_empty() {
                    return BackendError::Protocol("reply to no request");
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    r = rd.read_buf(&mut buf) => match r {
                        Ok(0) => return BackendError::Closed,
                        Ok(_) => {}
                        Err(e) => return BackendError::Io(e.kind().to_string()),
                    },
                }
            }
        }
    }
}
