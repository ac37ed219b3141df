//! One client connection: a reader that parses and dispatches requests as fast as they arrive
//! (pipelining), and a writer that answers them strictly in request order.
//!
//! ```text
//!  socket ─▶ read buffer ─▶ parse ─▶ dispatch ─▶ Pending ─▶ [ in-order queue ] ─▶ writer ─▶ socket
//! ```
//! The queue is bounded: a client that pipelines faster than replies come back stops being read
//! until the writer catches up. Replies that are already complete when the writer looks are
//! gathered into one `writev`.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use switchyard_protocol::{Limits, Parsed, parse_request};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::dispatch::{Next, dispatch};
use crate::executor::{Outcome, Pending};
use crate::wire::WriteQueue;
use crate::worker::Worker;

/// Requests a client may have outstanding before the router stops reading from it.
const MAX_PIPELINE: usize = 1024;
/// Initial and minimum free space of a client's read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Room beyond the largest value a client's unparsed input may take: a multi-key `get` line of
/// several thousand keys.
const MAX_EXTRA_BUFFER: usize = 1 << 20;
/// Ready replies gathered before a write is issued anyway.
const MAX_WRITE_BATCH: usize = 256 * 1024;

/// Serves one client until it quits, disconnects or sends something memcached would close on.
pub async fn run(stream: TcpStream, worker: Rc<Worker>, listener: SocketAddr) {
    let _ = stream.set_nodelay(true);
    worker.stats.curr_connections.inc();
    worker.stats.total_connections.inc();
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(MAX_PIPELINE);
    let limits = Limits {
        max_value_len: worker.generation().shared.config.server.max_value_bytes,
        ..Limits::default()
    };
    tokio::join!(
        read_requests(rd, &worker, listener, tx, &limits),
        write_replies(wr, rx)
    );
    worker.stats.curr_connections.dec();
}

async fn read_requests(
    mut rd: OwnedReadHalf,
    worker: &Worker,
    listener: SocketAddr,
    tx: mpsc::Sender<Pending>,
    limits: &Limits,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // Bytes of a refused data block still to be dropped as they arrive.
    let mut swallow = 0usize;
    // The largest request is a maximal value and its line; anything beyond that is a get line
    // of unbounded length.
    let max_buffered = limits.max_value_len + MAX_EXTRA_BUFFER;
    loop {
        loop {
            if swallow > 0 {
                let n = swallow.min(buf.len());
                buf.advance(n);
                swallow -= n;
                if swallow > 0 {
                    break;
                }
            }
            match parse_request(&buf, limits) {
                Parsed::Incomplete => break,
                Parsed::Request { request, consumed } => {
                    let frame = buf.split_to(consumed).freeze();
                    match dispatch(worker, &request, frame, listener) {
                        Next::Reply(p) => {
                            if tx.send(p).await.is_err() {
                                return;
                            }
                        }
                        Next::Silent => {}
                        Next::Close => return,
                    }
                }
                Parsed::Invalid { reply, consumed } => {
                    worker.stats.client_errors.inc();
                    buf.advance(consumed.min(buf.len()));
                    if let Some(reply) = reply
                        && tx.send(Pending::Ready(error_reply(reply))).await.is_err()
                    {
                        return;
                    }
                }
                Parsed::Swallow {
                    reply,
                    consumed,
                    discard,
                    delete,
                    delete_base64,
                } => {
                    // memcached reads and drops the refused data block; so do we, including
                    // the part that has not arrived yet. A refused `set` also deletes the old
                    // value, as memcached does.
                    worker.stats.client_errors.inc();
                    let line = buf.split_to(consumed.min(buf.len())).freeze();
                    if let Some(key) = delete {
                        let key = line.slice(key);
                        crate::dispatch::delete_quietly(worker, key, delete_base64, listener);
                    }
                    swallow = discard;
                    if let Some(reply) = reply
                        && tx.send(Pending::Ready(error_reply(reply))).await.is_err()
                    {
                        return;
                    }
                }
                Parsed::Close { reply } => {
                    worker.stats.client_errors.inc();
                    if let Some(reply) = reply {
                        let _ = tx.send(Pending::Ready(error_reply(reply))).await;
                    }
                    return;
                }
            }
        }
        if buf.len() > max_buffered {
            // Only an endless multi-key get line gets here: memcached would grow without bound.
            worker.stats.client_errors.inc();
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn error_reply(reply: &'static [u8]) -> Outcome {
    Outcome::fixed(reply, switchyard_protocol::ReplyStatus::ClientError)
}

async fn write_replies(mut wr: OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>) {
    let mut out = WriteQueue::default();
    let mut next: Option<Pending> = None;
    loop {
        let pending = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => break,
            },
        };
        pending.write_into(&mut out).await;
        // Gather replies that are complete already into the same write.
        while out.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(mut p) => {
                    if p.is_ready() {
                        p.write_into(&mut out).await;
                    } else {
                        next = Some(p);
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if out.flush_to(&mut wr).await.is_err() {
            return;
        }
    }
    let _ = out.flush_to(&mut wr).await;
}
