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

mod upload;

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Buf, BytesMut};
use switchyard_protocol::{Limits, Parsed, ReplyKind, parse_request};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::dispatch::{Next, StreamRoute, answer, dispatch, forwarded_line, stream_route};
use crate::executor::{Outcome, Pending};
use crate::wire::WriteQueue;
use crate::worker::Worker;
use upload::{Uploaded, upload};

/// Requests a client may have outstanding before the router stops reading from it.
const MAX_PIPELINE: usize = 1024;
/// Initial and minimum free space of a client's read buffer.
const READ_CHUNK: usize = 16 * 1024;
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
    let (tx, rx) = mpsc::channel(MAX_PIPELINE);
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
    let reader = read_requests(rd, &worker, listener, tx, &limits);
    let writer = write_replies(wr, rx);
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
    tx: mpsc::Sender<Pending>,
    limits: &Limits,
) {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
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
                                upload(&target, wire, kind, &mut buf, &mut rd, block).await;
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
                    if let Next::Reply(pending) = answer(&request, Pending::Ready(outcome))
                        && tx.send(pending).await.is_err()
                    {
                        return;
                    }
                }
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
        if pending.write_into(&mut out, &mut wr).await.is_err() {
            return;
        }
        // Gather replies that are complete already into the same write.
        while out.len() < MAX_WRITE_BATCH {
            match rx.try_recv() {
                Ok(mut p) => {
                    if p.is_ready() {
                        if p.write_into(&mut out, &mut wr).await.is_err() {
                            return;
                        }
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
