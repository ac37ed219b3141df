//! The plan executor: walks the route tree for one request (plugin calls, tail-call forwards),
//! sends to backends, and turns what comes back into the client's reply.
//!
//! A request becomes a [`Pending`]: already sent wherever it must go, waiting only for replies.
//! Sessions queue `Pending`s in request order and write each reply when it is ready.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{Command, ReplyKind, ReplyStatus, values};
use tokio::sync::oneshot;

mod fan_out;
mod render;

use render::render_plugin_reply;

use crate::backend::BackendResult;
use crate::generation::Target;
use crate::plugin::{Plan, RouteInput, Wait};
use crate::wire::{Wire, WriteQueue};
use crate::worker::LocalGeneration;

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

    /// `SERVER_ERROR <message>`.
    pub fn server_error(message: &str) -> Outcome {
        Outcome {
            frame: Bytes::from(format!("SERVER_ERROR {message}\r\n")),
            status: ReplyStatus::ServerError,
        }
    }

    fn is_error(&self) -> bool {
        matches!(
            self.status,
            ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
        )
    }
}

/// Where one key's route ends, before anything is sent.
#[derive(Debug)]
pub enum Resolved {
    /// A single backend server: the common case, and the one multi-key gets batch.
    Server {
        /// Destination index in the generation.
        dest: usize,
        /// Request timeout of the pool that chose it.
        timeout: Duration,
    },
    /// A reply decided without a backend (plugin reply or plugin fault).
    Reply(Outcome),
    /// Several targets at once; `wait` decides which reply the client gets.
    FanOut(Vec<Target>, Wait),
    /// Send to `target`, then let node `node`'s `on_reply` decide, handing it `cookie`.
    Call {
        /// The node whose plugin planned the call.
        node: usize,
        /// Where the request goes first.
        target: Target,
        /// The plugin's token for its continuation.
        cookie: u32,
    },
}

/// A request that has been sent and awaits its reply.
pub enum Pending {
    /// Already answered.
    Ready(Outcome),
    /// Waiting for one backend.
    Backend {
        /// Completes with the backend's reply.
        rx: oneshot::Receiver<BackendResult>,
        /// Who was asked, for the error message.
        dest: Rc<crate::backend::Destination>,
    },
    /// A reply that needs more than one backend reply: a fan-out or a `call` continuation.
    Combined(Pin<Box<dyn Future<Output = Outcome>>>),
    /// A multi-key retrieval merged from several parts, as chunks for the client.
    Merged(Pin<Box<dyn Future<Output = Vec<Bytes>>>>),
    /// A meta command with `q`: its reply is written only if `q` does not hide it.
    Quiet(Box<Pending>, Command),
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
            Pending::Quiet(inner, _) => f.debug_tuple("Quiet").field(inner).finish(),
        }
    }
}

impl Pending {
    /// Waits for the reply.
    pub async fn outcome(self) -> Outcome {
        match self {
            Pending::Ready(o) => o,
            Pending::Backend { rx, dest } => backend_outcome(rx.await, &dest),
            Pending::Combined(fut) => fut.await,
            Pending::Merged(fut) => Outcome {
                frame: Bytes::from(fut.await.concat()),
                status: ReplyStatus::Hit,
            },
            Pending::Quiet(inner, _) => Box::pin(inner.outcome()).await,
        }
    }

    /// Waits for the reply and queues its bytes for the client.
    pub async fn write_into(self, out: &mut WriteQueue) {
        match self {
            Pending::Merged(fut) => {
                for chunk in fut.await {
                    out.push(chunk);
                }
            }
            Pending::Quiet(inner, command) => {
                let outcome = inner.outcome().await;
                if !command.quiet_hides(outcome.status) {
                    out.push(outcome.frame);
                }
            }
            other => out.push(other.outcome().await.frame),
        }
    }

    /// Whether the reply is already there, so a writer can batch it with earlier replies
    /// without waiting. Polls once; never blocks.
    pub fn is_ready(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let done = match self {
            Pending::Ready(_) => return true,
            Pending::Quiet(inner, _) => return inner.is_ready(),
            Pending::Backend { rx, dest } => match Pin::new(rx).poll(&mut cx) {
                Poll::Ready(result) => Pending::Ready(backend_outcome(result, dest)),
                Poll::Pending => return false,
            },
            Pending::Combined(fut) => match fut.as_mut().poll(&mut cx) {
                Poll::Ready(outcome) => Pending::Ready(outcome),
                Poll::Pending => return false,
            },
            Pending::Merged(fut) => match fut.as_mut().poll(&mut cx) {
                Poll::Ready(chunks) => Pending::Merged(Box::pin(std::future::ready(chunks))),
                Poll::Pending => return false,
            },
        };
        *self = done;
        true
    }
}

impl LocalGeneration {
    /// Follows `target` through plugins until it ends at a server, a reply or a fan-out.
    pub fn resolve(&self, mut target: Target, input: &RouteInput<'_>) -> Resolved {
        loop {
            match target {
                Target::Server { dest, timeout } => return Resolved::Server { dest, timeout },
                Target::Node(n) => match self.route(n, input) {
                    Ok(Plan::Forward(child)) => target = self.shared.nodes[n].children[child],
                    Ok(Plan::Reply(r)) => {
                        return Resolved::Reply(render_plugin_reply(&r, input.op));
                    }
                    Ok(Plan::FanOut { children, wait }) => {
                        let node = &self.shared.nodes[n];
                        return Resolved::FanOut(
                            children.iter().map(|c| node.children[*c]).collect(),
                            wait,
                        );
                    }
                    Ok(Plan::Call { child, cookie }) => {
                        return Resolved::Call {
                            node: n,
                            target: self.shared.nodes[n].children[child],
                            cookie,
                        };
                    }
                    Ok(Plan::Pass) => return Resolved::Reply(self.misplaced_pass(n)),
                    Err(message) => return Resolved::Reply(Outcome::server_error(&message)),
                },
            }
        }
    }

    /// Routes one request from `target` and sends it: `wire` is what a backend receives.
    pub fn execute(
        self: &Rc<Self>,
        target: Target,
        input: &RouteInput<'_>,
        wire: &Wire,
        kind: ReplyKind,
    ) -> Pending {
        let resolved = self.resolve(target, input);
        self.run(resolved, input, wire, kind)
    }

    /// Carries out a resolved route.
    pub fn run(
        self: &Rc<Self>,
        resolved: Resolved,
        input: &RouteInput<'_>,
        wire: &Wire,
        kind: ReplyKind,
    ) -> Pending {
        match resolved {
            Resolved::Server { dest, timeout } => self.send(dest, timeout, wire, kind),
            Resolved::Reply(outcome) => Pending::Ready(outcome),
            Resolved::FanOut(targets, wait) => fan_out::combine(
                targets
                    .into_iter()
                    .map(|t| self.execute(t, input, wire, kind))
                    .collect(),
                wait,
                input.op,
            ),
            Resolved::Call {
                node,
                target,
                cookie,
            } => {
                let first = self.execute(target, input, wire, kind);
                let call = Continuation {
                    generation: self.clone(),
                    node,
                    request: OwnedInput::new(input),
                    wire: wire.clone(),
                    kind,
                };
                Pending::Combined(Box::pin(call.run(first, cookie)))
            }
        }
    }

    fn misplaced_pass(&self, n: usize) -> Outcome {
        self.stats.plugin_faults.inc();
        let label = &self.shared.nodes[n].context.label;
        tracing::warn!(node = %label, "plugin returned pass from route; request failed");
        Outcome::server_error(&format!("plugin {label} failed"))
    }

    /// Counts keys looked up by a retrieval.
    pub fn stats_keys(&self, n: u64) {
        self.stats.get_keys.add(n);
    }

    /// Sends `wire` to destination `dest`.
    pub fn send(&self, dest: usize, timeout: Duration, wire: &Wire, kind: ReplyKind) -> Pending {
        let Some(d) = self.destinations.get(dest) else {
            return Pending::Ready(Outcome::server_error("no such destination"));
        };
        match d.send(wire.clone(), kind, timeout) {
            Ok(rx) => Pending::Backend {
                rx,
                dest: d.clone(),
            },
            Err(e) => {
                // Down or over its limit: answered now, nothing sent.
                self.stats.backend_errors.inc();
                Pending::Ready(Outcome::server_error(&format!(
                    "backend {} {e}",
                    d.address()
                )))
            }
        }
    }
}

/// Waits for every part of a fan-out (all were sent already) and answers with the worst reply.
pub fn worst_of(parts: Vec<Pending>) -> Pending {
    Pending::Combined(Box::pin(async move {
        let mut worst: Option<Outcome> = None;
        for part in parts {
            let o = part.outcome().await;
            if worst
                .as_ref()
                .is_none_or(|w| o.status.severity() > w.status.severity())
            {
                worst = Some(o);
            }
        }
        worst.unwrap_or_else(|| Outcome::server_error("fan-out to no children"))
    }))
}

/// Calls a node may chain through `on_reply` for one request (ABI.md); a guard against a plugin
/// that would bounce a request between children forever.
const MAX_CALLS: usize = switchyard_sdk::abi::MAX_CALLS as usize;

/// The request fields a continuation needs after the client's buffer has moved on: the key is
/// copied (at most 250 bytes; only requests whose route plans a `call` pay for it).
struct OwnedInput {
    op: u32,
    key: Bytes,
    flags: u32,
    exptime: i64,
    value_len: u32,
    listener: u32,
}

impl OwnedInput {
    fn new(input: &RouteInput<'_>) -> OwnedInput {
        OwnedInput {
            op: input.op,
            key: Bytes::copy_from_slice(input.key),
            flags: input.flags,
            exptime: input.exptime,
            value_len: input.value_len,
            listener: input.listener,
        }
    }

    fn input(&self) -> RouteInput<'_> {
        RouteInput {
            op: self.op,
            key: &self.key,
            flags: self.flags,
            exptime: self.exptime,
            value_len: self.value_len,
            listener: self.listener,
        }
    }
}

/// A `call` in progress: the request, pinned to the generation it started on.
struct Continuation {
    generation: Rc<LocalGeneration>,
    node: usize,
    request: OwnedInput,
    wire: Wire,
    kind: ReplyKind,
}

impl Continuation {
    async fn run(self, mut pending: Pending, mut cookie: u32) -> Outcome {
        let g = &self.generation;
        let input = self.request.input();
        let children = &g.shared.nodes[self.node].children;
        for made in 1.. {
            let outcome = pending.outcome().await;
            let plan = g.on_reply(self.node, cookie, status_code(outcome.status), &input);
            let send = |target: Target| g.execute(target, &input, &self.wire, self.kind);
            match plan {
                Ok(Plan::Pass) => return outcome,
                Ok(Plan::Reply(r)) => return render_plugin_reply(&r, input.op),
                Ok(Plan::Forward(c)) => return send(children[c]).outcome().await,
                Ok(Plan::FanOut { children: cs, wait }) => {
                    let parts = cs.iter().map(|c| send(children[*c])).collect();
                    return fan_out::combine(parts, wait, input.op).outcome().await;
                }
                // Checked before sending: a refused call must not reach a backend.
                Ok(Plan::Call { .. }) if made >= MAX_CALLS => break,
                Ok(Plan::Call {
                    child,
                    cookie: next,
                }) => {
                    cookie = next;
                    pending = send(children[child]);
                }
                Err(message) => return Outcome::server_error(&message),
            }
        }
        g.stats.plugin_faults.inc();
        let label = &g.shared.nodes[self.node].context.label;
        tracing::warn!(node = %label, "plugin chained more than {MAX_CALLS} calls; request failed");
        Outcome::server_error(&format!("plugin {label} failed"))
    }
}

/// The ABI's reply status code (`switchyard_sdk::abi::status`) for a reply.
fn status_code(status: ReplyStatus) -> u32 {
    use switchyard_sdk::abi::status;
    match status {
        ReplyStatus::Hit => status::HIT,
        ReplyStatus::Miss => status::MISS,
        ReplyStatus::Stored => status::STORED,
        ReplyStatus::NotStored => status::NOT_STORED,
        ReplyStatus::Exists => status::EXISTS,
        ReplyStatus::NotFound => status::NOT_FOUND,
        ReplyStatus::Deleted => status::DELETED,
        ReplyStatus::Touched => status::TOUCHED,
        ReplyStatus::Number => status::NUMBER,
        ReplyStatus::Ok => status::OK,
        ReplyStatus::Version => status::VERSION,
        ReplyStatus::Error => status::ERROR,
        ReplyStatus::ClientError => status::CLIENT_ERROR,
        ReplyStatus::ServerError => status::SERVER_ERROR,
    }
}

fn backend_outcome(
    result: Result<BackendResult, oneshot::error::RecvError>,
    dest: &crate::backend::Destination,
) -> Outcome {
    match result {
        Ok(Ok(reply)) => Outcome {
            frame: reply.frame,
            status: reply.status,
        },
        Ok(Err(e)) => {
            dest.stats().backend_errors.inc();
            Outcome::server_error(&format!("backend {} {e}", dest.address()))
        }
        Err(_) => Outcome::server_error("backend request dropped"),
    }
}

/// Merges the replies of a multi-key retrieval sent as several parts back into one reply in the
/// client's key order. `keys[i]` is the i-th key the client asked for and the index of the part
/// that carried it; each part answers its keys in the order it received them, leaving out
/// misses, so one cursor per part is enough. If any part failed, the client gets that error for
/// the whole command, as memcached clients expect one status per command.
pub async fn merge_retrieval(keys: Vec<(Bytes, usize)>, parts: Vec<Pending>) -> Vec<Bytes> {
    let mut outcomes = Vec::with_capacity(parts.len());
    for p in parts {
        outcomes.push(p.outcome().await);
    }
    if let Some(failed) = outcomes.iter().find(|o| o.is_error()) {
        return vec![failed.frame.clone()];
    }
    let mut cursors: Vec<_> = outcomes
        .iter()
        .map(|o| values(&o.frame).peekable())
        .collect();
    let mut out = Vec::with_capacity(keys.len() + 1);
    for (key, part) in &keys {
        let (Some(cursor), Some(outcome)) = (cursors.get_mut(*part), outcomes.get(*part)) else {
            continue;
        };
        if let Some(entry) = cursor.next_if(|e| outcome.frame.get(e.key.clone()) == Some(&key[..]))
        {
            out.push(outcome.frame.slice(entry.whole));
        }
    }
    out.push(Bytes::from_static(b"END\r\n"));
    out
}
