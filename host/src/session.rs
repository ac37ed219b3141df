//! One client connection: a reader that parses and dispatches requests as fast as they arrive
//! (pipelining), and a writer that answers them strictly in request order.
//!
//! ```text
//!  socket ─▶ read buffer ─▶ parse ─▶ dispatch ─▶ Pending ─▶ [ in-order queue ] ─▶ writer ─▶ socket
//! ```
//! The queue is bounded: a client that pipelines faster than replies come back stops being read
//! until the writer catches up. Replies that are already complete when the writer looks are
//! gathered into one `writev`.
//!
//! Long values (`server.stream_from_bytes` and up) are not held whole when their route ends at
//! one server: a store's value goes to the server as it arrives (`upload.rs`), and a retrieved
//! one is written to the client as it arrives from the server (`executor/body.rs`).

mod queue;
mod upload;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use switchyard_protocol::{Limits, Parsed, ReplyKind, parse_request};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::dispatch::{Next, StreamRoute, answer, dispatch, forwarded_line, stream_route};
use crate::executor::{Outcome, Pending};
use crate::wire::WriteQueue;
use crate::worker::Worker;
use queue::ReplyQueue;
use upload::{Uploaded, upload};

/// Initial and minimum free space of a client's read buffer.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// Room beyond the largest value a client's unparsed input may take: a multi-key `get` line of
/// several thousand keys.
const MAX_EXTRA_BUFFER: usize = 1 << 20;
/// Ready replies gathered before a write is issued anyway.
const MAX_WRITE_BATCH: usize = 256 * 1024;
/// Long values one worker streams to servers at once, each over a connection of its own;
/// more are buffered whole, so that clients cannot open server connections without bound.
const MAX_UPLOADS: usize = 64;

/// Serves one client until it quits, disconnects or sends something memcached would close on.
pub async fn run(stream: TcpStream, worker: Rc<Worker>, listener: SocketAddr) {
    let _ = stream.set_nodelay(true);
    worker.stats.curr_connections.inc();
    worker.stats.total_connections.inc();
    let (rd, wr) = stream.into_split();
    let queue = ReplyQueue::default();
    // Read once, without keeping the generation: a connection must not hold it after a reload.
    let limits = {
        let generation = worker.generation();
        let server = &generation.shared.config.server;
        Limits {
            max_value_len: server.max_value_bytes,
            stream_from: server.stream_from_bytes,
            ..Limits::default()
        }
    };
    let reader = async {
        read_requests(rd, &worker, listener, &queue, &limits).await;
        queue.close();
    };
    let writer = write_replies(wr, &queue);
    tokio::pin!(reader, writer);
    tokio::select! {
        // The reader is done (quit, close, end of input): answer what it queued.
        () = &mut reader => writer.await,
        // The writer stops first only when the client can no longer be answered (a write
        // failed, or a streamed value broke off): stop reading too, closing the connection.
        () = &mut writer => {}
    }
    worker.stats.curr_connections.dec();
}

async fn read_requests(
    mut rd: OwnedReadHalf,
    worker: &Worker,
    listener: SocketAddr,
    queue: &ReplyQueue,
    limits: &Limits,
) {
    // Lent by the worker only while the client has sent something: an idle connection holds
    // no read buffer.
    let mut buf = BytesMut::new();
    // The buffer grew past the usual size since it was lent (a long value came through).
    let mut grew = false;
    // Bytes of a refused data block still to be dropped as they arrive.
    let mut swallow = 0usize;
    // The request at the front cannot stream (its route needs the whole value): parse it whole.
    let mut whole = false;
    let whole_limits = Limits {
        stream_from: usize::MAX,
        ..*limits
    };
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
            let parsed = parse_request(&buf, if whole { &whole_limits } else { limits });
            if !matches!(parsed, Parsed::Incomplete) {
                whole = false;
            }
            match parsed {
                Parsed::Incomplete => break,
                Parsed::Stream {
                    request,
                    line,
                    block,
                } => {
                    let route = if worker.uploads.get() < MAX_UPLOADS {
                        stream_route(worker, &request, &buf[..line], listener)
                    } else {
                        // Enough connections of its own to servers already: buffer this one.
                        StreamRoute::Whole
                    };
                    let outcome = match route {
                        StreamRoute::Whole => {
                            whole = true;
                            break;
                        }
                        StreamRoute::Close => return,
                        StreamRoute::Answer(outcome) => {
                            buf.advance(line);
                            swallow = block;
                            outcome
                        }
                        StreamRoute::Server(target) => {
                            let line = buf.split_to(line).freeze();
                            let wire = forwarded_line(&request, &line);
                            let kind = request.command.reply_kind().unwrap_or(ReplyKind::Line);
                            worker.stats.streamed_stores.inc();
                            let slot = UploadSlot::take(&worker.uploads);
                            let uploaded =
                                // Boxed: rare, and large enough to double every connection's
                                // task if held inline.
                                Box::pin(upload(&target, wire, kind, &mut buf, &mut rd, block))
                                    .await;
                            drop(slot);
                            match uploaded {
                                Uploaded::Reply(outcome) => outcome,
                                Uploaded::Refused { outcome, unread } => {
                                    swallow = unread;
                                    outcome
                                }
                                Uploaded::ClientGone => {
                                    worker.stats.streams_broken.inc();
                                    return;
                                }
                            }
                        }
                    };
                    if let Next::Reply(pending) = answer(&request, Pending::Ready(outcome)) {
                        queue.push(pending).await;
                    }
                }
                Parsed::Request { request, consumed } => {
                    let frame = buf.split_to(consumed).freeze();
                    match dispatch(worker, &request, frame, listener) {
                        Next::Reply(p) => queue.push(p).await,
                        Next::Silent => {}
                        Next::Close => return,
                    }
                }
                Parsed::Invalid { reply, consumed } => {
                    worker.stats.client_errors.inc();
                    buf.advance(consumed.min(buf.len()));
                    if let Some(reply) = reply {
                        queue.push(Pending::Ready(error_reply(reply))).await;
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
                    if let Some(reply) = reply {
                        queue.push(Pending::Ready(error_reply(reply))).await;
                    }
                }
                Parsed::Close { reply } => {
                    worker.stats.client_errors.inc();
                    if let Some(reply) = reply {
                        queue.push(Pending::Ready(error_reply(reply))).await;
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
        if buf.is_empty() {
            // Nothing half-read: the buffer goes back to the worker while the client is quiet,
            // and one is lent again when it has sent something.
            worker.return_read_buffer(std::mem::take(&mut buf), grew);
            grew = false;
            if rd.readable().await.is_err() {
                return;
            }
            buf = worker.read_buffer();
            match rd.try_read_buf(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
            continue;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        grew |= buf.capacity() > 2 * READ_CHUNK;
        match rd.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// One of a worker's [`MAX_UPLOADS`], given back when dropped, however the upload ends.
struct UploadSlot<'a>(&'a std::cell::Cell<usize>);

impl<'a> UploadSlot<'a> {
    fn take(uploads: &'a std::cell::Cell<usize>) -> UploadSlot<'a> {
        uploads.set(uploads.get() + 1);
        UploadSlot(uploads)
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

fn error_reply(reply: &'static [u8]) -> Outcome {
    Outcome::fixed(reply, switchyard_protocol::ReplyStatus::ClientError)
}

async fn write_replies(mut wr: OwnedWriteHalf, queue: &ReplyQueue) {
    let mut out = WriteQueue::default();
    while let Some(pending) = queue.pop().await {
        if pending.write_into(&mut out, &mut wr).await.is_err() {
            return;
        }
        // Gather replies that are complete already into the same write.
        while out.len() < MAX_WRITE_BATCH {
            let Some(p) = queue.pop_ready() else {
                break;
            };
            if p.write_into(&mut out, &mut wr).await.is_err() {
                return;
            }
        }
        if out.flush_to(&mut wr).await.is_err() {
            return;
        }
    }
    let _ = out.flush_to(&mut wr).await;
}
