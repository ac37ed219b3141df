//! A store whose long value passes from the client to its server as it arrives, over a
//! connection of its own, so that the router holds no more than one read of it at a time and a
//! slow client holds up nobody else. A connection whose store ended cleanly is kept (two per
//! server and worker) for the next long value.
//!
//! ```text
//!  1. barrier: `version` on the shared connection (everything this client sent there before is done)
//!  2. a connection of its own (a spare, or new)  (refused: answer, drop the value as it arrives)
//!  3. command line, then the data block, read by read, client ─▶ server
//!  4. the server's reply                        (the session reads nothing else meanwhile)
//! ```
//! Steps 1 and 4 keep the client's order: its earlier requests to that server are answered
//! before the value is stored, and its later ones are sent after.

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{ReplyKind, ReplyStatus};

use crate::backend::{BackendError, read_reply};
use crate::dispatch::StreamTarget;
use crate::error::RequestError;
use crate::reply::Outcome;
use crate::wire::{Wire, WriteQueue};

/// Free space of the client's read buffer while a value streams through it.
const STREAM_CHUNK: usize = 256 * 1024;

/// How a streamed store ended.
#[derive(Debug)]
pub(super) enum Uploaded {
    /// The server's reply (or the router's error); the whole data block was read.
    Reply(Outcome),
    /// The reply; the rest of the data block, `unread` bytes from the front of the client's
    /// buffer on, must be dropped.
    Refused {
        /// What to answer.
        outcome: Outcome,
        /// Bytes of the data block not yet passed on (some may be in the buffer already).
        unread: usize,
    },
    /// The client went away part way through its value.
    ClientGone,
}

/// Sends the store whose command line is `line` and whose data block, `block` bytes long,
/// starts at the front of `buf` and goes on in `rd`. Takes from `buf` what it passes on; when
/// refused, the rest of the block is still at the front of `buf` or to come.
pub(super) async fn upload<R: super::transport::Input>(
    target: &StreamTarget,
    line: Wire,
    kind: ReplyKind,
    buf: &mut BytesMut,
    rd: &mut R,
    block: usize,
) -> Uploaded {
    let generation = &target.generation;
    let Some(dest) = generation.destinations.get(target.dest) else {
        let error = RequestError::Internal("no such destination");
        return refused(error.answer(&generation.stats), block);
    };
    // The server did not take the store, for `cause`.
    let failed = |cause| RequestError::backend(dest.address(), cause).answer(dest.stats());
    // Any command memcached answers in order would do; `version` is the one every server has.
    let barrier = generation
        .send(
            target.dest,
            target.timeout,
            &Wire::one(Bytes::from_static(b"version\r\n")),
            ReplyKind::Line,
            target.tenant,
        )
        .outcome()
        .await;
    match barrier.status {
        ReplyStatus::Version => {}
        ReplyStatus::ServerError => return refused(barrier, block),
        _ => {
            let cause = BackendError::Protocol("unexpected reply to version");
            return refused(failed(cause), block);
        }
    }
    let mut conn = match dest.dedicated().await {
        Ok(conn) => conn,
        Err(cause) => return refused(failed(cause), block),
    };
    let mut out = WriteQueue::default();
    out.push_wire(line);
    let timeout = target.timeout;
    let mut left = block;
    loop {
        let n = left.min(buf.len());
        if n > 0 {
            out.push(buf.split_to(n).freeze());
            left -= n;
        }
        match tokio::time::timeout(timeout, out.flush_to(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let cause = BackendError::Io(e.kind().to_string());
                return refused(failed(cause), left);
            }
            Err(_) => return refused(failed(BackendError::Timeout), left),
        }
        if left == 0 {
            break;
        }
        if buf.capacity() - buf.len() < STREAM_CHUNK / 4 {
            buf.reserve(STREAM_CHUNK);
        }
        match rd.read_some(buf).await {
            Ok(0) | Err(_) => return Uploaded::ClientGone,
            Ok(n) => generation.stats.bytes_read.add(n as u64),
        }
    }
    let deadline = tokio::time::Instant::now() + timeout;
    Uploaded::Reply(match read_reply(&mut conn, kind, deadline).await {
        Ok((frame, status)) => {
            dest.give_back(conn);
            Outcome { frame, status }
        }
        Err(cause) => failed(cause),
    })
}

/// Answers `outcome`; the `left` bytes of the data block still to come are the session's to
/// drop.
fn refused(outcome: Outcome, left: usize) -> Uploaded {
    Uploaded::Refused {
        outcome,
        unread: left,
    }
}
