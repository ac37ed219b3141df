//! The reply a client gets: a request's [`Pending`] reply, waited for in request order by the
//! connection's [`queue::ReplyQueue`], and the bytes it finally writes.
//!
//! - [`Outcome`]: a finished reply (its bytes and what kind of answer it is).
//! - [`Pending`]: a request already sent wherever it must go, waiting only for replies; polled
//!   in place by the queue ([`Pending::poll_settle`]) and taken as a [`Settled`] once in.
//! - `queue.rs`: the in-order queue between a connection's reader and writer.
//! - `render.rs`: a plugin's own reply (`Plan::Reply`) as memcached bytes.
//! - `body.rs`: the rest of a streamed long value, passed on or gathered whole.
//! - [`merge_retrieval`]: the parts of a multi-key get merged back into the client's key order.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use switchyard_protocol::{Command, ReplyStatus, values};

mod body;
pub(crate) mod queue;
mod render;

pub(crate) use body::pass as pass_body;
pub(crate) use render::render_plugin_reply;

use crate::backend::{BackendResult, Body};
use crate::error::RequestError;
use crate::wire::WriteQueue;

/// A finished reply: its bytes and what kind of answer it is.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The reply exactly as the client will see it (for a retrieval, `VALUE`s and `END`).
    pub frame: Bytes,
    /// What kind of answer it is, for combining fan-out replies.
    pub status: ReplyStatus,
}

impl Outcome {
    /// A reply known without asking anyone.
    pub fn fixed(frame: &'static [u8], status: ReplyStatus) -> Outcome {
        Outcome {
            frame: Bytes::from_static(frame),
            status,
        }
    }

    pub(crate) fn is_error(&self) -> bool {
        matches!(
            self.status,
            ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
        )
    }
}

/// A request that has been sent and awaits its reply.
pub enum Pending {
    /// Already answered.
    Ready(Outcome),
    /// Waiting for one backend.
    Backend {
        /// Completes with the backend's reply.
        rx: crate::backend::ReplyReceiver,
        /// Who was asked, for the error message.
        dest: Rc<crate::backend::Destination>,
    },
    /// A reply that needs more than one backend reply: a fan-out or a `call` continuation.
    Combined(Pin<Box<dyn Future<Output = Outcome>>>),
    /// A multi-key retrieval merged from several parts, as chunks for the client, or the
    /// error of a part that failed.
    Merged(Pin<Box<dyn Future<Output = Result<Vec<Bytes>, Outcome>>>>),
    /// A merged multi-key retrieval that is in.
    Chunks(Vec<Bytes>),
    /// A meta command with `q`: its reply is written only if `q` does not hide it.
    Quiet(Box<Pending>, Command),
    /// A reply whose long value is still arriving: its header line, and the rest to come
    /// (boxed: rare, and inline it would grow every queued reply).
    Streaming(Outcome, Box<Body>),
    /// A reply whose keys are put back as the client sent them once it is in (a tenant's
    /// namespace, a plan's rewrite).
    Restored(Box<Restoring>),
}

/// A reply on its way and how to put its keys back ([`Pending::Restored`]).
#[derive(Debug)]
pub struct Restoring {
    inner: Pending,
    restore: crate::execute::KeyRestore,
}

/// A reply that has arrived: whole, as chunks, or as the start of a stream.
#[derive(Debug)]
pub enum Settled {
    /// One frame.
    Whole(Outcome),
    /// A merged multi-key retrieval.
    Chunks(Vec<Bytes>),
    /// The header of a long value, and the rest to pass on as it comes.
    Streaming(Outcome, Box<Body>),
    /// A meta command's reply its `q` flag hushes: nothing for the client.
    Hidden,
}

impl Settled {
    /// What kind of answer it is (a merged retrieval counts as a hit).
    pub fn status(&self) -> ReplyStatus {
        match self {
            Settled::Whole(o) | Settled::Streaming(o, _) => o.status,
            Settled::Chunks(_) | Settled::Hidden => ReplyStatus::Hit,
        }
    }

    /// Its length in bytes as it is in now (a streamed value's header only: the rest passes
    /// through as it arrives).
    pub fn len(&self) -> usize {
        match self {
            Settled::Whole(o) | Settled::Streaming(o, _) => o.frame.len(),
            Settled::Chunks(chunks) => chunks.iter().map(Bytes::len).sum(),
            Settled::Hidden => 0,
        }
    }

    /// Queues the reply's bytes for the client; the rest of a streamed value is the caller's to
    /// pass on after them.
    pub fn queue_into(self, out: &mut WriteQueue) -> Option<Box<Body>> {
        match self {
            Settled::Whole(outcome) => out.push(outcome.frame),
            Settled::Chunks(chunks) => out.push_all(chunks),
            Settled::Streaming(head, body) => {
                out.push(head.frame);
                return Some(body);
            }
            Settled::Hidden => {}
        }
        None
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Ready(o) => f.debug_tuple("Ready").field(o).finish(),
            Pending::Backend { dest, .. } => f
                .debug_struct("Backend")
                .field("dest", &dest.address())
                .finish(),
            Pending::Combined(_) => f.write_str("Combined"),
            Pending::Merged(_) => f.write_str("Merged"),
            Pending::Chunks(c) => f.debug_tuple("Chunks").field(&c.len()).finish(),
            Pending::Quiet(inner, _) => f.debug_tuple("Quiet").field(inner).finish(),
            Pending::Streaming(head, _) => f.debug_tuple("Streaming").field(head).finish(),
            Pending::Restored(r) => f.debug_tuple("Restored").field(&r.inner).finish(),
        }
    }
}

impl Pending {
    /// Waits for the whole reply (a streamed one is gathered whole: only the client's writer
    /// passes streams on).
    pub async fn outcome(mut self) -> Outcome {
        let settled = std::future::poll_fn(|cx| self.poll_settle(cx)).await;
        match settled {
            Settled::Whole(outcome) => outcome,
            Settled::Chunks(chunks) => Outcome {
                frame: Bytes::from(chunks.concat()),
                status: ReplyStatus::Hit,
            },
            Settled::Streaming(head, body) => Box::pin(body::gather(head, *body)).await,
            Settled::Hidden => Outcome {
                frame: Bytes::new(),
                status: ReplyStatus::Hit,
            },
        }
    }

    /// Polls for the reply in place, and takes it once it is in (leaving an empty reply
    /// behind). Holding no future of its own, a writer waiting on this costs its connection
    /// only the `Pending` itself.
    pub fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<Settled> {
        if !self.poll_ready(cx) {
            return Poll::Pending;
        }
        Poll::Ready(match std::mem::replace(self, Pending::Chunks(Vec::new())) {
            Pending::Ready(outcome) => Settled::Whole(outcome),
            Pending::Chunks(chunks) => Settled::Chunks(chunks),
            Pending::Streaming(head, body) => Settled::Streaming(head, body),
            Pending::Quiet(mut inner, command) => match inner.poll_settle(cx) {
                Poll::Ready(settled) if command.quiet_hides(settled.status()) => Settled::Hidden,
                Poll::Ready(settled) => settled,
                Poll::Pending => {
                    *self = Pending::Quiet(inner, command);
                    return Poll::Pending;
                }
            },
            // `poll_ready` leaves none of these behind; should one be, it is not in yet.
            other @ (Pending::Backend { .. }
            | Pending::Combined(_)
            | Pending::Merged(_)
            | Pending::Restored(_)) => {
                *self = other;
                return Poll::Pending;
            }
        })
    }

    /// Polls once; if the reply is in, turns this into `Ready`, `Chunks` or `Streaming` (or a
    /// `Quiet` around one of them) and says so.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> bool {
        let done = match self {
            Pending::Ready(_) | Pending::Chunks(_) | Pending::Streaming(..) => return true,
            Pending::Quiet(inner, _) => return inner.poll_ready(cx),
            Pending::Backend { rx, dest } => match Pin::new(rx).poll(cx) {
                Poll::Ready(result) => match backend_settled(result, dest) {
                    Settled::Streaming(head, body) => Pending::Streaming(head, body),
                    Settled::Whole(outcome) => Pending::Ready(outcome),
                    Settled::Chunks(chunks) => Pending::Chunks(chunks),
                    Settled::Hidden => Pending::Chunks(Vec::new()),
                },
                Poll::Pending => return false,
            },
            Pending::Combined(fut) => match fut.as_mut().poll(cx) {
                Poll::Ready(outcome) => Pending::Ready(outcome),
                Poll::Pending => return false,
            },
            Pending::Merged(fut) => match fut.as_mut().poll(cx) {
                Poll::Ready(Ok(chunks)) => Pending::Chunks(chunks),
                Poll::Ready(Err(failed)) => Pending::Ready(failed),
                Poll::Pending => return false,
            },
            Pending::Restored(r) => {
                if !r.inner.poll_ready(cx) {
                    return false;
                }
                match std::mem::replace(&mut r.inner, Pending::Chunks(Vec::new())) {
                    Pending::Ready(outcome) => r.restore.settle(outcome),
                    // A long value passes on as it arrives: only its header has the key.
                    Pending::Streaming(head, body) => {
                        Pending::Streaming(r.restore.settle_head(head), body)
                    }
                    // Nothing else is left in once in (a quiet reply is wrapped outside).
                    other => other,
                }
            }
        };
        *self = done;
        true
    }

    /// This reply with its keys put back by `restore` once it is in.
    pub(crate) fn restored(self, restore: crate::execute::KeyRestore) -> Pending {
        match self {
            Pending::Ready(outcome) => restore.settle(outcome),
            other => Pending::Restored(Box::new(Restoring {
                inner: other,
                restore,
            })),
        }
    }

    /// This reply, once it is in, passed through `f` first.
    pub(crate) fn map(self, f: impl FnOnce(Outcome) -> Outcome + 'static) -> Pending {
        match self {
            Pending::Ready(outcome) => Pending::Ready(f(outcome)),
            other => Pending::Combined(Box::pin(async move { f(other.outcome().await) })),
        }
    }
}

fn backend_settled(
    result: Result<BackendResult, crate::backend::Canceled>,
    dest: &Rc<crate::backend::Destination>,
) -> Settled {
    match result {
        Ok(Ok(reply)) => {
            let head = Outcome {
                frame: reply.frame,
                status: reply.status,
            };
            match reply.body {
                None => Settled::Whole(head),
                Some(mut body) => {
                    body.holder = Some(dest.clone());
                    Settled::Streaming(head, Box::new(body))
                }
            }
        }
        Ok(Err(cause)) => {
            Settled::Whole(RequestError::backend(dest.address(), cause).answer(dest.stats()))
        }
        // Its reply slot dropped unanswered: a connection driver completes every job it takes,
        // unless its task is dropped part way (the worker's runtime going away).
        Err(_) => {
            Settled::Whole(RequestError::Internal("backend request dropped").answer(dest.stats()))
        }
    }
}

/// Merges the replies of a multi-key retrieval sent as several parts back into one reply in the
/// client's key order. `keys[i]` is the range in `frame` (the client's request) of the i-th key
/// the client asked for, and the index of the part that carried it; each part answers its keys
/// in the order it received them, leaving out misses, so one position per part is enough. If
/// any part failed, the client gets that error for the whole command, as memcached clients
/// expect one status per command. A tenant's keys were sent with its `namespace` in front: the
/// replies' keys carry it, and the client's reply has them without.
pub async fn merge_retrieval(
    frame: Bytes,
    keys: Vec<(std::ops::Range<usize>, usize)>,
    parts: Vec<Pending>,
    namespace: Bytes,
) -> Result<Vec<Bytes>, Outcome> {
    // Each part's reply, and how far into it the merge has come.
    let mut replies: Vec<(Outcome, usize)> = Vec::with_capacity(parts.len());
    for p in parts {
        replies.push((p.outcome().await, 0));
    }
    if let Some((failed, _)) = replies.iter().find(|(o, _)| o.is_error()) {
        return Err(failed.clone());
    }
    let mut out = Vec::with_capacity(keys.len() + 1);
    for (range, part) in &keys {
        let (Some((reply, at)), Some(key)) = (replies.get_mut(*part), frame.get(range.clone()))
        else {
            continue;
        };
        let rest = reply.frame.get(*at..).unwrap_or_default();
        if let Some(entry) = values(rest).next()
            && let Some(sent) = rest.get(entry.key.clone())
            && sent.strip_prefix(&namespace[..]) == Some(key)
        {
            let base = *at;
            if namespace.is_empty() {
                out.push(
                    reply
                        .frame
                        .slice(base + entry.whole.start..base + entry.whole.end),
                );
            } else {
                // `VALUE `, the client's key, and the rest as it came: no copy.
                out.push(
                    reply
                        .frame
                        .slice(base + entry.whole.start..base + entry.key.start),
                );
                out.push(frame.slice(range.clone()));
                out.push(
                    reply
                        .frame
                        .slice(base + entry.key.end..base + entry.whole.end),
                );
            }
            *at += entry.whole.end;
        }
    }
    out.push(Bytes::from_static(b"END\r\n"));
    Ok(out)
}
