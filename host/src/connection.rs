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
//! one is written to the client as it arrives from the server (`reply/body.rs`).
//!
//! In a drain (`server.rs`) a connection reads on while its client has input already sent, or
//! a request half-read, and stops at the first moment it has neither: its replies are written,
//! it says end of stream, and it closes without resetting ([`close_gently`]).

mod transport;
mod upload;

use std::net::SocketAddr;
use std::task::Poll;

use bytes::{Buf, BytesMut};
use switchyard_protocol::{Framed, Framer, Limits, Parsed, ReplyKind};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::dispatch::{
    Caller, HeldRoute, Next, StreamRoute, answer, dispatch, dispatch_held, forwarded_line,
    stream_route,
};
use crate::drain::Admitted;
use crate::reply::queue::ReplyQueue;
use crate::reply::{Outcome, Pending};
use crate::stats::tally::Tally;
use crate::wire::WriteQueue;
use crate::worker::Worker;
use transport::{Halves, Input};
use upload::{Uploaded, upload};

/// Initial and minimum free space of a client's read buffer.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// Ready replies gathered before a write is issued anyway.
const MAX_WRITE_BATCH: usize = 256 * 1024;
/// Long values one worker streams to servers at once, each over a connection of its own;
/// more are buffered whole, so that clients cannot open server connections without bound.
pub(crate) const MAX_UPLOADS: usize = 64;

/// Serves one client until it quits, disconnects or sends something memcached would close on.
///
/// This future, and the ones below it, are written as functions returning `async move` blocks:
/// an `async fn` keeps its arguments twice in its state (as passed, and moved into the body),
/// and this state is what every connection costs while idle.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state (see `run`)"
)]
pub fn run(mut stream: TcpStream, caller: Caller) -> impl std::future::Future<Output = ()> {
    async move {
        let _ = stream.set_nodelay(true);
        serve(&mut stream, &caller).await;
        if caller.admitted().worker().connections.draining() {
            close_gently(&stream);
        }
    }
}

/// How long a client has to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`run`] for a client of a TLS listener: the handshake first (a failed one is logged with the
/// peer and the reason, counted as `tls_handshake_errors`, and ends the connection), then the
/// same service over the session, and a `close_notify` at the end.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state (see `run`)"
)]
pub fn run_tls(
    stream: TcpStream,
    acceptor: crate::tls::Acceptor,
    admitted: Admitted,
    listener: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    async move {
        let _ = stream.set_nodelay(true);
        let peer = stream.peer_addr().ok();
        let stats = &admitted.worker().stats;
        // A connect that sends nothing and closes (a load balancer's TCP health check) is no
        // TLS client: it is neither counted nor logged as a failed handshake.
        let mut byte = [0u8; 1];
        let first = tokio::select! {
            first = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut byte)) => first,
            () = std::future::poll_fn(|cx| admitted.poll_drain(cx)) => return,
        };
        if let Ok(Ok(0)) = first {
            tracing::debug!(%listener, "connection to a TLS listener closed before a byte");
            return;
        }
        let accept = tokio_rustls::TlsAcceptor::from(acceptor.config).accept(stream);
        let handshake = tokio::select! {
            done = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept) => done,
            // A drain does not wait for a handshake.
            () = std::future::poll_fn(|cx| admitted.poll_drain(cx)) => return,
        };
        let session = match handshake {
            Ok(Ok(session)) => session,
            failed => {
                stats.tls_handshake_errors.inc();
                let reason = match failed {
                    Ok(Err(e)) => crate::tls::reason(&e),
                    _ => format!("no handshake within {} s", HANDSHAKE_TIMEOUT.as_secs()),
                };
                tracing::warn!(
                    peer = %peer.map_or_else(|| "unknown".into(), |p| p.to_string()),
                    %listener,
                    mutual = acceptor.mutual,
                    "TLS handshake failed: {reason}"
                );
                return;
            }
        };
        stats.tls_connections.inc();
        let identity = crate::tls::identity(session.get_ref().1.peer_certificates());
        tracing::debug!(
            peer = %peer.map_or_else(|| "unknown".into(), |p| p.to_string()),
            %listener,
            identity = identity.as_ref().map_or("-", |id| id.as_str()),
            "TLS client connected"
        );
        let router_stats = admitted.worker().router_stats.clone();
        let _counted = identity
            .as_ref()
            .map(|id| router_stats.identities.connected(id));
        // Boxed: a session is kilobytes, and only TLS connections pay for it.
        let mut session = Box::new(std::cell::RefCell::new(session));
        let caller = Caller::new(listener, identity, admitted);
        serve(&mut *session, &caller).await;
        let mut session = session.into_inner();
        // Says `close_notify`, so the client can tell the end from a truncation.
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            tokio::io::AsyncWriteExt::shutdown(&mut session),
        )
        .await;
        if caller.admitted().worker().connections.draining() {
            close_gently(session.get_ref().0);
        }
    }
}

/// One connection's service, plaintext or TLS.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state (see `run`)"
)]
fn serve<'a, S: Halves>(
    stream: &'a mut S,
    caller: &'a Caller,
) -> impl std::future::Future<Output = ()> + 'a {
    async move {
        caller.admitted().worker().stats.curr_connections.inc();
        caller.admitted().worker().stats.total_connections.inc();
        // Read once, without keeping the generation: a connection must not hold it after a
        // reload.
        let (framer, queue) = {
            let generation = caller.admitted().worker().generation();
            let server = &generation.shared.config.server;
            let framer = Framer::new(Limits {
                max_value_len: server.max_value_bytes,
                stream_from: server.stream_from_bytes,
                ..Limits::default()
            });
            // A reply is at most a value and its `VALUE` line (a longer one streams).
            let largest = server.max_value_bytes.min(server.stream_from_bytes) + 300;
            (
                framer,
                ReplyQueue::new(server.max_client_reply_bytes, largest),
            )
        };
        {
            let (rd, wr) = stream.halves();
            let reader = async {
                read_requests(rd, caller, &queue, framer).await;
                queue.close();
            };
            let writer = write_replies(wr, &queue, caller);
            tokio::pin!(reader, writer);
            tokio::select! {
                // The reader is done (quit, close, end of input): answer what it queued.
                () = &mut reader => writer.await,
                // The writer stops first only when the client can no longer be answered (a
                // write failed, or a streamed value broke off): stop reading too, closing the
                // connection.
                () = &mut writer => {}
            }
        }
        caller.admitted().worker().stats.curr_connections.dec();
    }
}

/// Ends a connection a drain closes without resetting it: closing a socket with unread input
/// resets the connection, and a reset can lose replies still on their way to the client. So
/// say end of stream first (after the replies), then drop whatever the client sent since (it
/// is not answered), then close.
fn close_gently(stream: &TcpStream) {
    use rustix::net::{RecvFlags, Shutdown, recv, shutdown};
    let _ = shutdown(stream, Shutdown::Write);
    let mut sink = [0u8; 4096];
    // At most 1 MiB: a client that keeps sending is reset after all.
    for _ in 0..256 {
        match recv(stream, &mut sink[..], RecvFlags::DONTWAIT) {
            Ok((_, n)) if n > 0 => {}
            _ => break,
        }
    }
}

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state (see `run`)"
)]
fn read_requests<'a, R: Input + 'a>(
    mut rd: R,
    caller: &'a Caller,
    queue: &'a ReplyQueue,
    mut framer: Framer,
) -> impl std::future::Future<Output = ()> + 'a {
    async move {
        // Lent by the worker only while the client has sent something: an idle connection
        // holds no read buffer.
        let mut buf = BytesMut::new();
        // The buffer grew past the usual size since it was lent (a long value came through).
        let mut grew = false;
        // The route of a long value being buffered whole, decided when its line came.
        let mut held: Option<Box<HeldRoute>> = None;
        loop {
            // Every request complete in the buffer, in order. What is held across an await
            // here is a reply or a boxed upload, never a parsed request.
            loop {
                // A tenant over its rate that waits rather than refuses: its next request is
                // read once the wait is over. Boxed, as a timer is large and rarely needed.
                if let Some(until) = caller.take_wait() {
                    Box::pin(tokio::time::sleep_until(until.into())).await;
                }
                // Room first: the step's reply is then queued without waiting.
                queue.room().await;
                // The step is matched in a statement of its own: only an upload's box is held
                // across the await below, not the step.
                let upload = match next_step(
                    &mut framer,
                    &mut held,
                    &mut buf,
                    caller.admitted().worker(),
                    caller,
                ) {
                    Step::Reply(pending, tally) => {
                        queue.push(pending, tally);
                        continue;
                    }
                    Step::Next => continue,
                    Step::Read => break,
                    Step::Close => return,
                    Step::TlsHello => {
                        caller.admitted().worker().stats.tls_on_plain_listener.inc();
                        caller.admitted().worker().stats.client_errors.inc();
                        tracing::warn!(
                            peer = %rd.peer().map_or_else(|| "unknown".into(), |p| p.to_string()),
                            listener = %caller.listener,
                            "TLS client on a plaintext listener: connection closed"
                        );
                        return;
                    }
                    Step::Last(pending, tally) => {
                        queue.push(pending, tally);
                        return;
                    }
                    Step::Upload(upload) => upload,
                };
                // Boxed: rare, and large enough to double every connection's task if held
                // inline.
                let reply = Box::pin(upload.run(
                    caller.admitted().worker(),
                    &mut framer,
                    &mut buf,
                    &mut rd,
                ))
                .await;
                match reply {
                    Some(Next::Reply(pending, tally)) => queue.push(pending, tally),
                    Some(Next::Silent) => {}
                    Some(Next::Last(pending, tally)) => {
                        queue.push(pending, tally);
                        return;
                    }
                    Some(Next::Close) | None => return,
                }
            }
            if framer.overflows(buf.len()) {
                // The parser refuses a line over the cap itself (with memcached's error); this
                // only bounds what it might wait on by mistake.
                caller.client_error(caller.admitted().worker());
                return;
            }
            if buf.is_empty() {
                // Nothing half-read: the buffer goes back to the worker while the client is
                // quiet, and one is lent again when it has sent something.
                caller
                    .admitted()
                    .worker()
                    .return_read_buffer(std::mem::take(&mut buf), grew);
                grew = false;
                // Polled in place: `readable()` would add its own future to every connection.
                // A buffer is lent for the read only; a drain ends the wait, unless the client
                // had already sent more (whose readiness then comes). 0: end of input, or of
                // the wait.
                let read = std::future::poll_fn(|cx| {
                    match rd.poll_ready(cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(0),
                        Poll::Pending => {
                            return match caller.admitted().poll_drain(cx) {
                                Poll::Ready(()) if !rd.has_input() => Poll::Ready(0),
                                _ => Poll::Pending,
                            };
                        }
                    }
                    let mut lent = caller.admitted().worker().read_buffer();
                    match rd.poll_read_some(cx, &mut lent) {
                        Poll::Ready(Ok(n)) => {
                            buf = lent;
                            Poll::Ready(n)
                        }
                        Poll::Ready(Err(_)) => {
                            caller.admitted().worker().return_read_buffer(lent, false);
                            Poll::Ready(0)
                        }
                        // Nothing after all (and the task will be woken when there is).
                        Poll::Pending => {
                            caller.admitted().worker().return_read_buffer(lent, false);
                            match caller.admitted().poll_drain(cx) {
                                Poll::Ready(()) if !rd.has_input() => Poll::Ready(0),
                                _ => Poll::Pending,
                            }
                        }
                    }
                })
                .await;
                if read == 0 {
                    return;
                }
                caller.admitted().worker().stats.bytes_read.add(read as u64);
                caller.read(caller.admitted().worker().id, read as u64);
                continue;
            }
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            grew |= buf.capacity() > 2 * READ_CHUNK;
            match rd.read_some(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    caller.admitted().worker().stats.bytes_read.add(n as u64);
                    caller.read(caller.admitted().worker().id, n as u64);
                }
            }
        }
    }
}

/// What the reader does next with the front of its buffer.
enum Step {
    /// Queue this reply, then look again.
    Reply(Pending, Tally),
    /// Something was taken (a `noreply` request, bytes of a refused block); look again.
    Next,
    /// Nothing complete: read more.
    Read,
    /// Close the connection once the queued replies are written.
    Close,
    /// Queue this reply, then close.
    Last(Pending, Tally),
    /// A long value to pass to its server as it arrives.
    Upload(Box<Upload>),
    /// A TLS client on this plaintext listener: close at once.
    TlsHello,
}

/// Takes the next request (or the next bytes to drop) from the front of `buf` and dispatches
/// it. No I/O: a reply still to come is a [`Pending`].
fn next_step(
    framer: &mut Framer,
    hold: &mut Option<Box<HeldRoute>>,
    buf: &mut BytesMut,
    worker: &Worker,
    caller: &Caller,
) -> Step {
    let parsed = match framer.next(buf) {
        Framed::Incomplete => return Step::Read,
        Framed::TlsHello => return Step::TlsHello,
        Framed::Discard(n) => {
            buf.advance(n);
            return Step::Next;
        }
        Framed::Parsed(parsed) => parsed,
    };
    // A route decided for a long value held whole belongs to the request completed now, and
    // so does its admission: anything else the framer finds ends that request.
    let held = hold.take();
    if !matches!(parsed, Parsed::Request { .. }) {
        caller.forget_early_admission();
    }
    let ready = |reply| Step::Reply(Pending::Ready(error_reply(reply)), Tally::UNPARSED);
    match parsed {
        // The framer never returns this; reading more is the answer anyway.
        Parsed::Incomplete => Step::Read,
        Parsed::Request { request, consumed } => {
            let frame = buf.split_to(consumed).freeze();
            let next = match held {
                Some(route) => dispatch_held(worker, &request, frame, caller, *route),
                None => dispatch(worker, &request, frame, caller),
            };
            match next {
                Next::Reply(p, tally) => Step::Reply(p, tally),
                Next::Silent => Step::Next,
                Next::Close => Step::Close,
                Next::Last(p, tally) => Step::Last(p, tally),
            }
        }
        Parsed::Invalid { reply, consumed } => {
            caller.client_error(worker);
            buf.advance(consumed.min(buf.len()));
            reply.map_or(Step::Next, ready)
        }
        Parsed::Swallow {
            reply,
            consumed,
            delete,
            delete_base64,
            ..
        } => {
            // memcached reads and drops the refused data block (the framer drops it as it
            // arrives); a refused `set` also deletes the old value, as memcached does.
            caller.client_error(worker);
            let line = buf.split_to(consumed.min(buf.len())).freeze();
            if let Some(key) = delete {
                let key = line.slice(key);
                crate::dispatch::delete_quietly(worker, key, delete_base64, caller);
            }
            reply.map_or(Step::Next, ready)
        }
        Parsed::Close { reply } => {
            caller.client_error(worker);
            match reply {
                Some(reply) => Step::Last(Pending::Ready(error_reply(reply)), Tally::UNPARSED),
                None => Step::Close,
            }
        }
        Parsed::Stream {
            request,
            line,
            block,
        } => {
            let route = if worker.uploads.get() < MAX_UPLOADS {
                stream_route(worker, &request, &buf[..line], caller)
            } else {
                // Enough connections of its own to servers already: buffer this one.
                StreamRoute::Whole(None)
            };
            match route {
                StreamRoute::Whole(route) => {
                    *hold = route;
                    framer.hold_whole();
                    Step::Read
                }
                StreamRoute::Close => Step::Close,
                StreamRoute::Answer(outcome, tally) => {
                    buf.advance(line);
                    framer.refuse_stream(block);
                    match answer(&request, Pending::Ready(outcome), tally) {
                        Next::Reply(p, tally) => Step::Reply(p, tally),
                        Next::Silent => Step::Next,
                        Next::Close => Step::Close,
                        Next::Last(p, tally) => Step::Last(p, tally),
                    }
                }
                StreamRoute::Server(target) => {
                    let line = buf.split_to(line).freeze();
                    let wire = forwarded_line(&request, &line);
                    let kind = request.command.reply_kind().unwrap_or(ReplyKind::Line);
                    worker.stats.streamed_stores.inc();
                    Step::Upload(Box::new(Upload {
                        request,
                        target,
                        wire,
                        kind,
                        block,
                    }))
                }
            }
        }
    }
}

/// A store whose long value streams to its server (`upload.rs`), with what answering it needs.
struct Upload {
    request: switchyard_protocol::Request,
    target: crate::dispatch::StreamTarget,
    wire: crate::wire::Wire,
    kind: ReplyKind,
    block: usize,
}

impl Upload {
    /// Passes the value on; the reply to queue, or `None` when the client went away.
    async fn run<R: Input>(
        self,
        worker: &Worker,
        framer: &mut Framer,
        buf: &mut BytesMut,
        rd: &mut R,
    ) -> Option<Next> {
        let slot = UploadSlot::take(&worker.uploads);
        let Upload {
            request,
            target,
            wire,
            kind,
            block,
        } = self;
        let tally = target.tally;
        let uploaded = upload(&target, wire, kind, buf, rd, block).await;
        drop(slot);
        let outcome = match uploaded {
            Uploaded::Reply(outcome) => outcome,
            Uploaded::Refused { outcome, unread } => {
                framer.refuse_stream(unread);
                outcome
            }
            Uploaded::ClientGone => {
                worker.stats.streams_broken.inc();
                return None;
            }
        };
        Some(answer(&request, Pending::Ready(outcome), tally))
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

#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments twice in its state (see `run`)"
)]
fn write_replies<'a, W: AsyncWrite + Unpin + 'a>(
    mut wr: W,
    queue: &'a ReplyQueue,
    caller: &'a Caller,
) -> impl std::future::Future<Output = ()> + 'a {
    async move {
        let mut out = WriteQueue::default();
        loop {
            // In a block of its own: nothing of the reply but its body, if any, is held across
            // the awaits below (a local once borrowed is kept in the task until its scope ends).
            let mut body = {
                let Some((settled, tally)) =
                    std::future::poll_fn(|cx| queue.poll_settled(cx)).await
                else {
                    break;
                };
                caller
                    .admitted()
                    .worker()
                    .count_reply(&settled, &tally, caller);
                settled.queue_into(&mut out)
            };
            // Gather replies that are in already into the same write.
            loop {
                if let Some(body) = body.take() {
                    // Boxed: a streamed value is rare, and its state inline would make every
                    // connection's task that much bigger. An error means the value broke off part
                    // way: the client must be disconnected.
                    let passed = Box::pin(crate::reply::pass_body(*body, &mut out, &mut wr)).await;
                    if passed.is_err() {
                        return;
                    }
                }
                if out.len() >= MAX_WRITE_BATCH {
                    break;
                }
                match queue.pop_ready() {
                    Some((settled, tally)) => {
                        caller
                            .admitted()
                            .worker()
                            .count_reply(&settled, &tally, caller);
                        body = settled.queue_into(&mut out);
                    }
                    None => break,
                }
            }
            if out.flush_to(&mut wr).await.is_err() {
                return;
            }
            out.release();
        }
        let _ = out.flush_to(&mut wr).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Size of the future `f` returns, without calling it.
    fn future_size<A, B, R>(_: impl Fn(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every client connection is a task holding this future, idle or not: what it holds across
    /// an await (a parsed request, a reply, an iovec array, a nested future) is paid per
    /// connection. Within this budget the task (tokio rounds it to 128 bytes) is 896 bytes, and
    /// with the socket's registration an idle connection costs about 1.7 KiB of memory
    /// (`bench/run --workloads idle-mem-1k` measures the whole).
    #[test]
    fn a_connections_task_stays_small() {
        let size = future_size(run);
        println!("connection::run future: {size} bytes");
        assert!(
            size <= 768,
            "connection::run's future grew to {size} bytes; box what is rare, poll what waits in place"
        );
    }
}
