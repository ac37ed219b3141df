//! The plan executor: walks the route tree for one request (plugin calls, tail-call forwards),
//! sends to backends, and turns what comes back into the client's reply.
//!
//! A request becomes a [`Pending`]: already sent wherever it must go, waiting only for replies.
//! Sessions queue `Pending`s in request order and write each reply when it is ready.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{Command, ReplyKind, ReplyStatus, Request, values};

mod background;
mod body;
mod fan_out;
mod render;
mod rewrite;

pub(crate) use body::pass as pass_body;
use render::render_plugin_reply;

use crate::backend::{BackendResult, Body};
use crate::error::{PlanProblem, PluginCall, RequestError};
use crate::generation::Target;
use crate::plugin::{OwnedBackground, OwnedReply, Plan, RouteInput, Wait};
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

    fn is_error(&self) -> bool {
        matches!(
            self.status,
            ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
        )
    }
}

/// Where a request's bytes and fields come from, for rewriting it (`rewrite.rs`).
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// A client's request; its ranges index `frame`.
    Client {
        /// The parsed request.
        request: &'a Request,
        /// The bytes it was parsed from.
        frame: &'a Bytes,
    },
    /// A request the router built itself (a background store, the delete after a refused
    /// value): this command, with its data block, if any, as the wire's last chunk.
    Built(Command),
}

/// One request on its way through the route tree: what plugins see, what a backend is sent,
/// the kind of reply to expect, and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Req<'a> {
    /// What a plugin's `route` is given.
    pub input: RouteInput<'a>,
    /// The bytes a backend receives.
    pub wire: &'a Wire,
    /// How to read the backend's reply.
    pub kind: ReplyKind,
    /// Where the request came from.
    pub origin: Origin<'a>,
}

impl Origin<'_> {
    /// The command.
    pub fn command(&self) -> Command {
        match self {
            Origin::Client { request, .. } => request.command,
            Origin::Built(command) => *command,
        }
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
    /// A reply decided without a backend (a plugin's reply, or why the request failed).
    Reply(Outcome),
    /// Node `node` planned more than a forward: a fan-out, a call, an extended plan.
    Plan {
        /// The node whose plugin made the plan.
        node: usize,
        /// The plan, checked.
        plan: Plan,
    },
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
    /// A multi-key retrieval merged from several parts, as chunks for the client.
    Merged(Pin<Box<dyn Future<Output = Vec<Bytes>>>>),
    /// A merged multi-key retrieval that is in.
    Chunks(Vec<Bytes>),
    /// A meta command with `q`: its reply is written only if `q` does not hide it.
    Quiet(Box<Pending>, Command),
    /// A reply whose long value is still arriving: its header line, and the rest to come
    /// (boxed: rare, and inline it would grow every queued reply).
    Streaming(Outcome, Box<Body>),
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
            other @ (Pending::Backend { .. } | Pending::Combined(_) | Pending::Merged(_)) => {
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
                Poll::Ready(chunks) => Pending::Chunks(chunks),
                Poll::Pending => return false,
            },
        };
        *self = done;
        true
    }

    /// This reply, once it is in, passed through `f` first.
    fn map(self, f: impl FnOnce(Outcome) -> Outcome + 'static) -> Pending {
        match self {
            Pending::Ready(outcome) => Pending::Ready(f(outcome)),
            other => Pending::Combined(Box::pin(async move { f(other.outcome().await) })),
        }
    }
}

impl LocalGeneration {
    /// Follows `target` through plugins until it ends at a server, a reply or a plan that
    /// needs more than one send.
    pub fn resolve(&self, mut target: Target, input: &RouteInput<'_>) -> Resolved {
        loop {
            match target {
                Target::Server { dest, timeout } => return Resolved::Server { dest, timeout },
                Target::Node(n) => match self.route(n, input) {
                    Ok(Plan::Forward(child)) => {
                        target = self.shared.nodes[n].children[child as usize];
                    }
                    Ok(Plan::Reply(r)) => {
                        return Resolved::Reply(self.plugin_reply(
                            n,
                            &r,
                            input.op,
                            PluginCall::Route,
                        ));
                    }
                    Ok(plan) if *plan.primary() == Plan::Pass => {
                        let problem = PlanProblem::MisplacedPass;
                        return Resolved::Reply(self.plan_failed(n, PluginCall::Route, problem));
                    }
                    Ok(plan) => return Resolved::Plan { node: n, plan },
                    Err(error) => return Resolved::Reply(error.answer(&self.stats)),
                },
            }
        }
    }

    /// Routes one request from `target` and sends it.
    pub fn execute(self: &Rc<Self>, target: Target, req: &Req<'_>) -> Pending {
        let resolved = self.resolve(target, &req.input);
        self.run(resolved, req)
    }

    /// Carries out a resolved route.
    pub fn run(self: &Rc<Self>, resolved: Resolved, req: &Req<'_>) -> Pending {
        match resolved {
            Resolved::Server { dest, timeout } => self.send(dest, timeout, req.wire, req.kind),
            Resolved::Reply(outcome) => Pending::Ready(outcome),
            Resolved::Plan { node, plan } => self.carry_out(node, plan, req, None, 0),
        }
    }

    /// Carries out node `node`'s `plan` for `req`. `at_hand` is the reply a continuation just
    /// received (what `pass` passes and a background store may store); `calls` is how many
    /// calls the request has made through this node so far.
    fn carry_out(
        self: &Rc<Self>,
        node: usize,
        plan: Plan,
        req: &Req<'_>,
        at_hand: Option<&Outcome>,
        calls: usize,
    ) -> Pending {
        let children = &self.shared.nodes[node].children;
        // A continuation's plan comes with the reply its `call` received: the request was sent.
        let stage = if at_hand.is_some() {
            PluginCall::OnReply
        } else {
            PluginCall::Route
        };
        match plan {
            Plan::Forward(child) => self.execute(children[child as usize], req),
            Plan::Reply(r) => Pending::Ready(self.plugin_reply(node, &r, req.input.op, stage)),
            Plan::FanOut {
                children: chosen,
                wait: Wait::None,
            } => {
                // Nothing waits for these: they are background sends, bounded as such.
                let copies: Vec<OwnedBackground> = chosen
                    .iter()
                    .map(|&child| OwnedBackground {
                        child,
                        store: None,
                        compare: false,
                        rewrite: Default::default(),
                    })
                    .collect();
                let mut reply = match fan_out::combine(Vec::new(), Wait::None, req.input.op) {
                    Ok(reply) => reply,
                    Err(problem) => return Pending::Ready(self.plan_failed(node, stage, problem)),
                };
                self.background(node, &copies, req, at_hand, &mut reply);
                reply
            }
            Plan::FanOut {
                children: chosen,
                wait,
            } => {
                let parts = chosen
                    .iter()
                    .map(|&c| self.execute(children[c as usize], req))
                    .collect();
                match fan_out::combine(parts, wait, req.input.op) {
                    Ok(reply) => reply,
                    Err(problem) => Pending::Ready(self.plan_failed(node, stage, problem)),
                }
            }
            // Checked before sending: a refused call must not reach a backend.
            Plan::Call { .. } if calls >= MAX_CALLS => {
                Pending::Ready(self.plan_failed(node, stage, PlanProblem::TooManyCalls))
            }
            Plan::Call { child, cookie } => {
                let first = self.execute(children[child as usize], req);
                let call = Continuation {
                    generation: self.clone(),
                    node,
                    request: OwnedReq::new(req),
                    calls: calls + 1,
                };
                Pending::Combined(Box::pin(call.run(first, cookie)))
            }
            Plan::Pass => match at_hand {
                Some(outcome) => Pending::Ready(outcome.clone()),
                None => Pending::Ready(self.plan_failed(node, stage, PlanProblem::MisplacedPass)),
            },
            Plan::Extended {
                primary,
                rewrite,
                background,
            } => {
                let rewritten = if rewrite.is_identity() {
                    None
                } else {
                    match rewrite::rewrite(req, &rewrite) {
                        Ok(rewritten) => Some(rewritten),
                        Err(problem) => {
                            return Pending::Ready(self.plan_failed(node, stage, problem));
                        }
                    }
                };
                let sent = rewritten.as_ref().map_or(*req, |r| r.req(req));
                let mut reply = self.carry_out(node, *primary, &sent, at_hand, calls);
                if let Some(rewritten) = &rewritten
                    && rewrite.changes_key()
                {
                    let restore = rewrite::KeyRestore::new(req, rewritten);
                    reply = reply.map(move |outcome| restore.apply(outcome));
                }
                self.background(node, &background, req, at_hand, &mut reply);
                reply
            }
            // The decoder never returns anything else.
            _ => Pending::Ready(
                RequestError::Internal("plugin plan not supported").answer(&self.stats),
            ),
        }
    }

    /// Node `n`'s direct reply `r` to operation `op`; a failure when the reply makes no sense
    /// for the operation.
    fn plugin_reply(&self, n: usize, r: &OwnedReply, op: u32, call: PluginCall) -> Outcome {
        render_plugin_reply(r, op).unwrap_or_else(|problem| self.plan_failed(n, call, problem))
    }

    /// Fails a request node `n`'s plan from `call` cannot be carried out for: counted, and
    /// logged when the plugin should not have made the plan.
    fn plan_failed(&self, n: usize, call: PluginCall, problem: PlanProblem) -> Outcome {
        let label = &self.shared.nodes[n].context.label;
        match problem {
            PlanProblem::MisplacedPass => {
                tracing::warn!(node = %label, "plugin returned pass from route; request failed");
            }
            PlanProblem::TooManyCalls => {
                tracing::warn!(node = %label, "plugin chained more than {MAX_CALLS} calls; request failed");
            }
            _ => {}
        }
        let error = RequestError::Plan {
            node: label.clone(),
            call,
            problem,
        };
        error.answer(&self.stats)
    }

    /// Counts keys looked up by a retrieval.
    pub fn stats_keys(&self, n: u64) {
        self.stats.get_keys.add(n);
    }

    /// Routes a client's one-key request from `target` and sends it, letting a long value in
    /// the reply stream through when the route ends at a single server. Only for a pending
    /// reply that goes straight to the client's writer.
    pub fn execute_for_client(self: &Rc<Self>, target: Target, req: &Req<'_>) -> Pending {
        match self.resolve(target, &req.input) {
            Resolved::Server { dest, timeout } => {
                let stream_from = self.shared.config.server.stream_from_bytes;
                self.send_streaming(dest, timeout, req.wire, req.kind, stream_from)
            }
            other => self.run(other, req),
        }
    }

    /// Sends `wire` to destination `dest`.
    pub fn send(&self, dest: usize, timeout: Duration, wire: &Wire, kind: ReplyKind) -> Pending {
        self.send_streaming(dest, timeout, wire, kind, usize::MAX)
    }

    /// Sends `wire` to destination `dest`; a value reply of at least `stream_from` bytes may
    /// come back as [`Pending::Streaming`].
    fn send_streaming(
        &self,
        dest: usize,
        timeout: Duration,
        wire: &Wire,
        kind: ReplyKind,
        stream_from: usize,
    ) -> Pending {
        let Some(d) = self.destinations.get(dest) else {
            let error = RequestError::Internal("no such destination");
            return Pending::Ready(error.answer(&self.stats));
        };
        match d.send(wire.clone(), kind, timeout, stream_from) {
            Ok(rx) => Pending::Backend {
                rx,
                dest: d.clone(),
            },
            // Down or over its limit: answered now, nothing sent.
            Err(cause) => {
                Pending::Ready(RequestError::backend(d.address(), cause).answer(&self.stats))
            }
        }
    }
}

/// Waits for every part of a fan-out (all were sent already) and answers with the worst reply
/// (the first of the worst); `None` for no parts.
pub fn worst_of(parts: Vec<Pending>) -> Option<Pending> {
    let mut parts = parts.into_iter();
    let first = parts.next()?;
    Some(Pending::Combined(Box::pin(async move {
        let mut worst = first.outcome().await;
        for part in parts {
            let o = part.outcome().await;
            if o.status.severity() > worst.status.severity() {
                worst = o;
            }
        }
        worst
    })))
}

/// Calls a node may chain through `on_reply` for one request (ABI.md); a guard against a plugin
/// that would bounce a request between children forever.
const MAX_CALLS: usize = switchyard_sdk::abi::MAX_CALLS as usize;

/// A request that outlives the client's buffer: a `call` continuation's. The key is copied (at
/// most 250 bytes) and the request cloned (its ranges); only requests whose route plans a
/// `call` pay for it.
struct OwnedReq {
    op: u32,
    key: Bytes,
    flags: u32,
    exptime: i64,
    value_len: u32,
    listener: u32,
    wire: Wire,
    kind: ReplyKind,
    origin: OwnedOrigin,
}

enum OwnedOrigin {
    Client { request: Box<Request>, frame: Bytes },
    Built(Command),
}

impl OwnedReq {
    fn new(req: &Req<'_>) -> OwnedReq {
        let input = &req.input;
        OwnedReq {
            op: input.op,
            key: Bytes::copy_from_slice(input.key),
            flags: input.flags,
            exptime: input.exptime,
            value_len: input.value_len,
            listener: input.listener,
            wire: req.wire.clone(),
            kind: req.kind,
            origin: match req.origin {
                Origin::Client { request, frame } => OwnedOrigin::Client {
                    request: Box::new(request.clone()),
                    frame: frame.clone(),
                },
                Origin::Built(command) => OwnedOrigin::Built(command),
            },
        }
    }

    fn req(&self) -> Req<'_> {
        Req {
            input: RouteInput {
                op: self.op,
                key: &self.key,
                flags: self.flags,
                exptime: self.exptime,
                value_len: self.value_len,
                listener: self.listener,
            },
            wire: &self.wire,
            kind: self.kind,
            origin: match &self.origin {
                OwnedOrigin::Client { request, frame } => Origin::Client { request, frame },
                OwnedOrigin::Built(command) => Origin::Built(*command),
            },
        }
    }
}

/// A `call` in progress: the request, pinned to the generation it started on.
struct Continuation {
    generation: Rc<LocalGeneration>,
    node: usize,
    /// The request as it reached the node (before any rewrite of the node's own).
    request: OwnedReq,
    /// Calls made through the node so far, this one included.
    calls: usize,
}

impl Continuation {
    async fn run(self, pending: Pending, cookie: u32) -> Outcome {
        let g = &self.generation;
        let req = self.request.req();
        let outcome = pending.outcome().await;
        match g.on_reply(self.node, cookie, status_code(outcome.status), &req.input) {
            Ok(Plan::Pass) => outcome,
            Ok(plan) => {
                g.carry_out(self.node, plan, &req, Some(&outcome), self.calls)
                    .outcome()
                    .await
            }
            Err(error) => error.answer(&g.stats),
        }
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
