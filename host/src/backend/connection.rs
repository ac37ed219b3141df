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
//!
//! Who is to blame for a timeout depends on what the connection was doing when it passed:
//! - **Silence** (no byte of the oldest job's reply yet, or none for the last quarter of its
//!   timeout): the server's. Every job in flight fails with `timed out`, and it counts towards
//!   `failure_limit`.
//! - **A reply still arriving** (part of it in, and bytes within the last quarter of its
//!   timeout): the request's own, as with a multi-get of a thousand long values. The server is
//!   alive and busy sending what it was asked for. That job fails with `reply from <addr>
//!   exceeded ... while still arriving`, and the connection is reset (draining the rest of a
//!   reply nobody wants would hold up everything behind it for as long as it takes). The jobs
//!   behind it lose only their place: classic retrievals are sent again, once, on the next
//!   connection with a fresh timeout (a read sent twice does no harm); anything else may have
//!   been applied already and can no longer be told its reply, so it fails with `connection to
//!   <addr> reset behind a reply that was cut off`. Nothing counts against the server.
//! - A reply gathered whole (anything but a long value streamed to one client: a multi-get's,
//!   say) that grows past the pool's `max_reply_bytes` before its end is cut off the same way,
//!   with `reply from <addr> exceeded max_reply_bytes (N) before its end`: a `get` of two
//!   thousand copies of a 500 kB key costs the router that bound (its read buffer grows no
//!   further; see [`make_room`]), not a 1 GB buffer.
//!
//! A long value in a reply to a job that allows streaming is not held whole: the job completes
//! with the header line as soon as it is in, and the reader passes the value on in chunks as
//! they arrive. At most [`STREAM_WINDOW`] chunks wait for the client; beyond that the reader
//! waits for it too, as the other requests on this connection must then, but for no longer
//! than a quarter of the request's timeout (so the requests queued behind keep most of
//! theirs): a client that falls that far behind is cut off (the rest of its value is read and
//! dropped, and its connection closed) rather than stall the others.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{
    ReplyKind, ReplyParsed, ReplyStatus, ValueHead, parse_reply, value_head, values,
};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, mpsc};

use super::jobs::{Job, JobQueue, Reply};
use super::link::{Link, LinkRead, LinkWrite};
use super::{BackendError, BackendReply, Body, DestinationSpec};
use crate::stats::WorkerStats;
use crate::wire::{Wire, WriteQueue};

/// Jobs taken from the queue per `writev` batch: enough to amortise the syscall under load,
/// few enough that the first reply is not held back behind a huge batch.
const MAX_BATCH: usize = 128;
/// Initial and minimum free space of the read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Free space of the read buffer while a long value streams through.
const STREAM_CHUNK: usize = 256 * 1024;
/// Chunks of a streamed value (each one read, at most [`STREAM_CHUNK`] and a bit) that may wait
/// for the client: up to about 4 MiB, which covers a client's pauses without holding up the
/// connection.
const STREAM_WINDOW: usize = 16;

/// A job whose bytes have been (or are being) written: what reading its reply needs.
struct InFlight {
    kind: ReplyKind,
    /// A classic retrieval's request: its line (the first part) to check that the values in
    /// its reply are for the keys it asked for (a value for another key is a reply out of step,
    /// a stray or extra reply from the server, and every reply behind it would go to the wrong
    /// request), and the whole of it to send again if a reply ahead of it is cut off.
    asked: Option<Wire>,
    stream_from: usize,
    queued: tokio::time::Instant,
    deadline: tokio::time::Instant,
    /// Sent once already, before a reply ahead of it was cut off: not sent a third time.
    resent: bool,
    reply: Reply,
}

impl InFlight {
    /// The job again, to be sent on the next connection with a fresh timeout, if it is a
    /// classic retrieval not sent again before; else where its reply (an error now) goes.
    fn resend(self, now: tokio::time::Instant) -> Result<Job, Reply> {
        let Some(wire) = self.asked.filter(|_| !self.resent) else {
            return Err(self.reply);
        };
        Ok(Job {
            wire,
            kind: self.kind,
            stream_from: self.stream_from,
            queued: now,
            deadline: now + self.deadline.saturating_duration_since(self.queued),
            resent: true,
            reply: self.reply,
        })
    }
}

/// How long a reply may go without a byte and still count as arriving: a quarter of its
/// request's timeout (the share a streamed value's client may stall for, too).
fn arriving_window(timeout: Duration) -> Duration {
    timeout / 4
}

pub(super) async fn drive(
    spec: DestinationSpec,
    jobs: Rc<JobQueue>,
    worker: usize,
    stats: Arc<WorkerStats>,
) {
    // However the driver ends (its handle gone, or the worker's runtime dropping it), nothing
    // queued is left waiting.
    struct Stop<'a>(&'a JobQueue);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }
    let _stop = Stop(&jobs);
    while let Some(first) = jobs.pop().await {
        let link = match Link::connect(spec.address, spec.tls.as_ref(), spec.connect_timeout).await
        {
            Ok(link) => link,
            Err(err @ BackendError::Local(what)) => {
                // The router's own shortage: the server is not to blame.
                spec.health.local_shortage(what);
                first.reply.send(Err(err.clone()));
                jobs.fail_all(&err);
                continue;
            }
            Err(err) => {
                if let BackendError::Tls(_) = err {
                    spec.health.tls_failed(&err);
                }
                // A refused connect is unambiguous: nothing listens there.
                let refused = super::refused(&err);
                fail_queued(first, &jobs, &err, &spec, refused);
                continue;
            }
        };
        let (err, lost) = serve(link, first, &jobs, &spec, worker, &stats).await;
        match err {
            BackendError::Shutdown => return,
            BackendError::Timeout => spec.health.counters.timeouts.inc(),
            BackendError::StillArriving { .. } | BackendError::TooLarge { .. } => {
                // The request's doing, not the server's: see the module's notes on blame.
                spec.health.counters.replies_cut.inc();
                tracing::debug!(backend = %spec.address, error = %err, "reply cut off");
                continue;
            }
            _ => {}
        }
        tracing::debug!(backend = %spec.address, error = %err, "backend connection ended");
        // A server may close a connection it has answered everything on (memcached's
        // `idle_timeout`, a restart between requests): the next job reconnects, and nothing
        // failed.
        if lost || err != BackendError::Closed {
            note_failure(&spec, &err, false);
        }
    }
}

/// Counts a failure; starts the prober when it marks the server down.
fn note_failure(spec: &DestinationSpec, err: &BackendError, immediate: bool) {
    if spec.health.record_failure(&spec.policy, err, immediate) && spec.health.claim_prober() {
        let probe =
            super::health::probe_until_up(spec.health.clone(), spec.policy, spec.tls.clone());
        tokio::task::spawn_local(probe);
    }
}

fn fail_queued(
    first: Job,
    jobs: &JobQueue,
    err: &BackendError,
    spec: &DestinationSpec,
    immediate: bool,
) {
    note_failure(spec, err, immediate);
    first.reply.send(Err(err.clone()));
    jobs.fail_all(err);
}

/// Runs one connection until it fails; every job it took is completed one way or the other.
/// Returns why it ended, and whether any request was in flight then.
async fn serve(
    mut link: Link,
    first: Job,
    jobs: &JobQueue,
    spec: &DestinationSpec,
    worker: usize,
    stats: &WorkerStats,
) -> (BackendError, bool) {
    let health = &*spec.health;
    let (rd, wr) = link.split();
    let inflight = RefCell::new(VecDeque::<InFlight>::new());
    let wake = Notify::new();
    let err = tokio::select! {
        // The writer first: its first poll records `first` in flight before anything can end
        // the connection, so that `first` is failed with the connection's error, not dropped.
        biased;
        e = write_jobs(wr, first, jobs, &inflight, &wake) => e,
        e = read_replies(rd, &inflight, &wake, spec, worker, stats) => e,
    };
    let mut inflight = inflight.into_inner();
    let lost = !inflight.is_empty();
    if let BackendError::StillArriving { .. } | BackendError::TooLarge { .. } = err {
        // The oldest job's reply outlasted its timeout or its size bound: it fails alone.
        // Those behind it lose their place on the connection; reads are sent again on the
        // next one.
        if let Some(f) = inflight.pop_front() {
            f.reply.send(Err(err.clone()));
        }
        let now = tokio::time::Instant::now();
        let mut again = Vec::new();
        for f in inflight {
            match f.resend(now) {
                Ok(job) => {
                    health.counters.resent.inc();
                    again.push(job);
                }
                Err(reply) => {
                    health.counters.cut_behind.inc();
                    reply.send(Err(BackendError::CutBehind));
                }
            }
        }
        jobs.requeue(again);
        return (err, false);
    }
    for f in inflight {
        f.reply.send(Err(err.clone()));
    }
    (err, lost)
}

async fn write_jobs(
    mut wr: LinkWrite<'_>,
    first: Job,
    jobs: &JobQueue,
    inflight: &RefCell<VecDeque<InFlight>>,
    wake: &Notify,
) -> BackendError {
    let mut out = WriteQueue::default();
    let mut next = Some(first);
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.pop().await {
                Some(job) => job,
                None => return BackendError::Shutdown,
            },
        };
        let now = tokio::time::Instant::now();
        let mut batch = 0;
        let mut job = Some(job);
        while let Some(j) = job.take() {
            if j.deadline <= now {
                // It waited its whole timeout behind a server that was not reading: sent now,
                // its reply would come too late, and its deadline would reset the connection.
                j.reply.send(Err(BackendError::Timeout));
            } else {
                let Job {
                    wire,
                    kind,
                    stream_from,
                    queued,
                    deadline,
                    resent,
                    reply,
                } = j;
                let asked = (kind == ReplyKind::Retrieval).then(|| wire.clone());
                out.push_wire(wire);
                inflight.borrow_mut().push_back(InFlight {
                    kind,
                    asked,
                    stream_from,
                    queued,
                    deadline,
                    resent,
                    reply,
                });
                batch += 1;
            }
            if batch < MAX_BATCH {
                job = jobs.try_pop();
            }
        }
        if out.is_empty() {
            continue;
        }
        wake.notify_one();
        if let Err(e) = out.flush_to(&mut wr).await {
            return super::io_error(&e);
        }
    }
}

async fn read_replies(
    mut rd: LinkRead<'_>,
    inflight: &RefCell<VecDeque<InFlight>>,
    wake: &Notify,
    spec: &DestinationSpec,
    worker: usize,
    stats: &WorkerStats,
) -> BackendError {
    let health = &*spec.health;
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // One timer for the connection, armed at the oldest request's deadline and re-armed only
    // when it fires early or a request with an earlier deadline becomes the oldest: a timer per
    // read would cost a timer-wheel insert and removal per reply.
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<tokio::time::Instant> = None;
    // When the last read returned: replies parsed from it arrived by then.
    let mut now = tokio::time::Instant::now();
    loop {
        // Complete every job whose reply is already buffered.
        loop {
            let Some((kind, stream_from)) =
                inflight.borrow().front().map(|f| (f.kind, f.stream_from))
            else {
                break;
            };
            match parse_reply(&buf, kind) {
                ReplyParsed::Incomplete => {
                    // Only an incomplete reply may be a long value to stream.
                    let Some(head) = (stream_from != usize::MAX)
                        .then(|| value_head(&buf, kind))
                        .flatten()
                        .filter(|head| head.len >= stream_from)
                    else {
                        break;
                    };
                    let Some(f) = inflight.borrow_mut().pop_front() else {
                        break;
                    };
                    let stall = f.deadline.saturating_duration_since(f.queued);
                    f.reply.record(
                        health,
                        worker,
                        spec.timings
                            .then(|| now.saturating_duration_since(f.queued)),
                    );
                    stats.streamed_values.inc();
                    let (tx, chunks) = mpsc::channel(STREAM_WINDOW);
                    let frame = buf.split_to(head.line).freeze();
                    let body = Body {
                        chunks,
                        len: head.total() - head.line,
                        holder: None,
                        stall,
                    };
                    f.reply.send(Ok(BackendReply {
                        frame,
                        status: ReplyStatus::Hit,
                        body: Some(body),
                    }));
                    if let Err(e) = pass_value(&mut rd, &mut buf, &head, tx, stall, stats).await {
                        return e;
                    }
                }
                ReplyParsed::Malformed => return BackendError::Protocol("malformed reply"),
                ReplyParsed::Reply { consumed, status } => {
                    let answers = inflight.borrow().front().is_none_or(|f| {
                        f.asked
                            .as_ref()
                            .and_then(|wire| wire.parts().first())
                            .is_none_or(|line| values_answer(line, &buf[..consumed]))
                    });
                    if !answers {
                        return BackendError::Protocol("reply for a key not asked for");
                    }
                    let frame = buf.split_to(consumed).freeze();
                    let done = inflight.borrow_mut().pop_front();
                    if let Some(f) = done {
                        f.reply.record(
                            health,
                            worker,
                            spec.timings
                                .then(|| now.saturating_duration_since(f.queued)),
                        );
                        f.reply.send(Ok(BackendReply {
                            frame,
                            status,
                            body: None,
                        }));
                    }
                }
            }
        }
        // Whole replies are split off above: what is left is part of the oldest job's.
        if buf.len() >= spec.max_reply_bytes {
            return BackendError::TooLarge {
                limit: spec.max_reply_bytes,
            };
        }
        make_room(&mut buf, spec.max_reply_bytes);
        let front = inflight.borrow().front().map(|f| (f.deadline, f.queued));
        match front {
            Some((deadline, queued)) => {
                if armed.is_none_or(|at| deadline < at) {
                    timer.as_mut().reset(deadline);
                    armed = Some(deadline);
                }
                tokio::select! {
                    biased;
                    r = rd.read_some(&mut buf) => match r {
                        Ok(0) => return BackendError::Closed,
                        Ok(_) => now = tokio::time::Instant::now(),
                        Err(e) => return super::io_error(&e),
                    },
                    () = &mut timer => {
                        armed = None;
                        let at = tokio::time::Instant::now();
                        if at >= deadline {
                            // Part of the reply is in (whole replies are split off above), and
                            // the last read was recent: the server is busy sending it.
                            let timeout = deadline.saturating_duration_since(queued);
                            let arriving = !buf.is_empty()
                                && at.saturating_duration_since(now) <= arriving_window(timeout);
                            if arriving {
                                return BackendError::StillArriving {
                                    received: buf.len(),
                                    timeout_ms: timeout.as_millis() as u64,
                                };
                            }
                            return BackendError::Timeout;
                        }
                    }
                }
            }
            None => {
                if !buf.is_empty() {
                    return BackendError::Protocol("reply to no request");
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    r = rd.read_some(&mut buf) => match r {
                        Ok(0) => return BackendError::Closed,
                        Ok(_) => now = tokio::time::Instant::now(),
                        Err(e) => return super::io_error(&e),
                    },
                }
            }
        }
    }
}

/// Makes room in the read buffer for the next read, growing it by doubling (so that a long
/// reply costs few copies) up to `limit` and no further: once it is that long and full, the
/// reply in it is cut off (a growth step holds the old buffer and the new one for a moment:
/// at most one and a half times `limit`).
fn make_room(buf: &mut BytesMut, limit: usize) {
    let capacity = buf.capacity();
    if capacity - buf.len() >= READ_CHUNK / 4 || capacity >= limit {
        return;
    }
    if capacity.saturating_mul(2) <= limit {
        buf.reserve(READ_CHUNK);
        return;
    }
    let mut last = BytesMut::with_capacity(limit);
    last.extend_from_slice(buf);
    *buf = last;
}

/// Passes on the rest of a reply whose header `head` has been taken from `buf`: the value and
/// the reply's end, in chunks as they arrive, checking that the end is what memcached sends.
/// `stall` bounds the wait for each read, and a quarter of it the wait for the client to make
/// room for a chunk; a client that has gone or is cut off gets nothing more, and the rest is
/// read and dropped.
/// An error ends the connection, and is passed to the client too.
async fn pass_value(
    rd: &mut LinkRead<'_>,
    buf: &mut BytesMut,
    head: &ValueHead,
    tx: mpsc::Sender<Result<Bytes, BackendError>>,
    stall: Duration,
    stats: &WorkerStats,
) -> Result<(), BackendError> {
    let total = head.len + head.tail.len();
    let mut passed = 0;
    let mut client = Some(tx);
    loop {
        if !buf.is_empty() {
            let n = (total - passed).min(buf.len());
            let chunk = buf.split_to(n).freeze();
            if !ends_as(&chunk, passed, head) {
                let e = BackendError::Protocol("malformed reply");
                broken(client, &e, stats);
                return Err(e);
            }
            passed += n;
            if let Some(tx) = &client {
                match tx.try_send(Ok(chunk)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => client = None,
                    Err(mpsc::error::TrySendError::Full(chunk)) => {
                        match tokio::time::timeout(stall / 4, tx.send(chunk)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => client = None,
                            Err(_) => {
                                // Dropping the sender tells the writer the value broke off.
                                stats.streams_broken.inc();
                                client = None;
                            }
                        }
                    }
                }
            }
            if passed == total {
                return Ok(());
            }
            // Let the client's writer take the chunk before more is read: a client that keeps
            // up then holds a chunk or two, not whatever a run of reads brought in.
            tokio::task::yield_now().await;
        }
        if buf.capacity() - buf.len() < READ_CHUNK {
            buf.reserve(STREAM_CHUNK);
        }
        let e = match tokio::time::timeout(stall, rd.read_buf(buf)).await {
            Ok(Ok(0)) => BackendError::Closed,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => super::io_error(&e),
            Err(_) => BackendError::Timeout,
        };
        broken(client, &e, stats);
        return Err(e);
    }
}

/// Tells the client, if it is still listening, that its value broke off with `e`.
fn broken(
    client: Option<mpsc::Sender<Result<Bytes, BackendError>>>,
    e: &BackendError,
    stats: &WorkerStats,
) {
    stats.streams_broken.inc();
    if let Some(tx) = client {
        // The writer reads this error or, if the window is full, finds the channel closed
        // before the whole value: either way it closes the client's connection.
        let _ = tx.try_send(Err(e.clone()));
    }
}

/// Whether every `VALUE` in `reply` is for a key of the retrieval line `line`, in the line's
/// order (memcached answers a multi-get's keys in order, leaving out misses). The tokens after
/// the command are the candidates: `gat`'s exptime among them only makes this more lenient.
fn values_answer(line: &[u8], reply: &[u8]) -> bool {
    // The line as memcached reads it: up to its newline (`\r\n` or a bare `\n`), and cut at
    // a NUL byte.
    let end = line
        .iter()
        .position(|&b| b == b'\n' || b == 0)
        .unwrap_or(line.len());
    let line = line.get(..end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut asked = line.split(|&b| b == b' ').skip(1).filter(|t| !t.is_empty());
    values(reply).all(|entry| {
        let key = reply.get(entry.key).unwrap_or_default();
        asked.any(|t| t == key)
    })
}

/// Whether `chunk`, found at `at` bytes past the header of the reply `head` begins, agrees
/// with the reply's fixed end (`head.tail`, right after the value) wherever the two overlap.
fn ends_as(chunk: &[u8], at: usize, head: &ValueHead) -> bool {
    let start = at.max(head.len);
    let end = (at + chunk.len()).min(head.len + head.tail.len());
    (start..end).all(|i| chunk.get(i - at) == head.tail.get(i - head.len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_must_answer_the_keys_asked_in_order() {
        let v = |k: &str| format!("VALUE {k} 0 1\r\nx\r\n");
        let reply = |ks: &[&str]| {
            let mut r: String = ks.iter().map(|k| v(k)).collect();
            r.push_str("END\r\n");
            r.into_bytes()
        };
        assert!(values_answer(b"get a\r\n", &reply(&["a"])));
        assert!(values_answer(b"get a\r\n", b"END\r\n"));
        assert!(!values_answer(b"get a\r\n", &reply(&["zzz"])));
        assert!(values_answer(b"get a b c\r\n", &reply(&["a", "c"])));
        assert!(!values_answer(b"get a b c\r\n", &reply(&["c", "a"])));
        assert!(values_answer(b"gats 100 k\r\n", &reply(&["k"])));
        assert!(values_answer(b"gets  a  b\r\n", &reply(&["b"])));
        assert!(values_answer(b"get a\n", &reply(&["a"])), "a bare newline");
        assert!(
            values_answer(b"get a\0b c\r\n", &reply(&["a"])),
            "cut at NUL"
        );
        assert!(!values_answer(b"get a\0b c\r\n", &reply(&["c"])));
    }

    #[test]
    fn the_end_of_a_streamed_value_is_checked_wherever_it_falls() {
        let head = ValueHead {
            line: 20,
            len: 4,
            tail: b"\r\nEND\r\n",
        };
        let reply = b"abcd\r\nEND\r\n";
        for cut in 0..=reply.len() {
            let (a, b) = reply.split_at(cut);
            assert!(ends_as(a, 0, &head) && ends_as(b, cut, &head), "{cut}");
        }
        assert!(!ends_as(b"abcd\r\nEMD\r\n", 0, &head));
        assert!(!ends_as(b"X", 5, &head));
        assert!(ends_as(b"abc", 0, &head));
    }
}
