//! Carrying out a resolved route (`route.rs`): a send to one server, or a plugin's plan — a
//! fan-out (`fan_out.rs`), a `call` continued in `on_reply`, a rewrite (`rewrite.rs`),
//! background sends (`background.rs`).
//!
//! A request becomes a [`Pending`]: already sent wherever it must go, waiting only for replies.
//! Connections queue `Pending`s in request order (`reply/queue.rs`) and write each reply when
//! it is in.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{Command, ReplyKind, Request};

mod background;
mod experiments;
mod fan_out;
mod rewrite;

pub(crate) use experiments::Marks;

pub(crate) use rewrite::{KeyRestore, now_for, rewritten_key};

use crate::error::{PlanProblem, PluginCall, RequestError};
use crate::generation::Target;
use crate::plugin::{Decision, OwnedBackground, RouteInput, Wait};
use crate::reply::{Outcome, Pending};
use crate::route::{Recovery, Resolved};
use crate::wire::Wire;
use crate::worker::LocalGeneration;

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
    /// What every key the request is sent with must begin with: its tenant's namespace once
    /// the key carries it (empty otherwise). A plan's rewrite whose key does not is refused
    /// (`rewrite::new_key`), so a tenant's own plugin cannot send its requests into another
    /// tenant's keys.
    pub namespace: &'a [u8],
    /// Its tenant, by index into the generation's tenants ([`crate::tenant::Tenant::index`]):
    /// its sends are counted in the tenant's traffic to each server.
    pub tenant: Option<usize>,
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

impl LocalGeneration {
    /// Routes one request from `target` and sends it.
    pub fn execute(self: &Rc<Self>, target: Target, req: &Req<'_>) -> Pending {
        if self.shared.experiments.is_empty() {
            let resolved = self.resolve(target, &req.input);
            return self.run(resolved, req);
        }
        let (resolved, marks) = self.resolve_marked(target, req);
        if marks.is_empty() {
            return self.run(resolved, req);
        }
        let sent = std::time::Instant::now();
        let pending = self.run(resolved, req);
        self.observe(marks, sent, req, pending)
    }

    /// Routes and sends a tenant's one-key request `req` with its key in its namespace
    /// (`namespace`, the rewrite that puts it in front of a key): the request goes on
    /// rewritten (as a plan's rewrite sends it: the plugins from `target` down see that key,
    /// and so does every server), and the reply comes back with the client's key (`VALUE`
    /// lines, a meta `k` flag, `me`). `for_client`: the reply goes straight to the client's
    /// writer, so a long value may stream (`execute_for_client`).
    pub fn execute_in(
        self: &Rc<Self>,
        target: Target,
        req: &Req<'_>,
        namespace: &crate::plugin::OwnedRewrite,
        prefix: &[u8],
        for_client: bool,
    ) -> Pending {
        let rewritten = match rewrite::rewrite(req, namespace) {
            Ok(rewritten) => rewritten,
            // The tenant's key checks (`dispatch::admit`) leave room for the namespace, so
            // only a request a rewrite cannot carry gets here.
            Err(problem) => {
                return Pending::Ready(
                    RequestError::Plan {
                        node: "namespace".into(),
                        call: PluginCall::Route,
                        problem,
                    }
                    .answer(&self.stats),
                );
            }
        };
        let sent = Req {
            namespace: prefix,
            ..rewritten.req(req)
        };
        let reply = if for_client {
            self.execute_for_client(target, &sent)
        } else {
            self.execute(target, &sent)
        };
        reply.restored(rewrite::KeyRestore::new(req, &rewritten))
    }

    /// Carries out a resolved route.
    pub fn run(self: &Rc<Self>, resolved: Resolved, req: &Req<'_>) -> Pending {
        match resolved {
            Resolved::Server { dest, timeout } => match self.delete_spool(dest, req) {
                // A delete its server fails is kept on disk and replayed (`spool.rs`).
                Some(spool) => crate::spool::send(self, spool, dest, timeout, req),
                None => self.send(dest, timeout, req.wire, req.kind, req.tenant),
            },
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
        plan: Decision,
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
            Decision::Forward(child) => self.execute(children[child as usize], req),
            Decision::Reply(r) => {
                self.recover(self.plugin_reply(node, &r, req.input.op, stage), req)
            }
            Decision::FanOut {
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
                    Err(problem) => {
                        return self.recover(self.plan_failed(node, stage, problem), req);
                    }
                };
                self.background(node, &copies, req, at_hand, &mut reply);
                reply
            }
            Decision::FanOut {
                children: chosen,
                wait,
            } => {
                let parts = chosen
                    .iter()
                    .map(|&c| self.execute(children[c as usize], req))
                    .collect();
                match fan_out::combine(parts, wait, req.input.op) {
                    Ok(reply) => reply,
                    Err(problem) => self.recover(self.plan_failed(node, stage, problem), req),
                }
            }
            // Checked before sending: a refused call must not reach a backend.
            Decision::Call { .. } if calls >= MAX_CALLS => self.recover(
                self.plan_failed(node, stage, PlanProblem::TooManyCalls),
                req,
            ),
            Decision::Call { child, cookie } => {
                let first = self.execute(children[child as usize], req);
                let call = Continuation {
                    generation: self.clone(),
                    node,
                    request: OwnedReq::new(req),
                    calls: calls + 1,
                };
                Pending::Combined(Box::pin(call.run(first, cookie)))
            }
            Decision::Pass => match at_hand {
                Some(outcome) => Pending::Ready(outcome.clone()),
                None => self.recover(
                    self.plan_failed(node, stage, PlanProblem::MisplacedPass),
                    req,
                ),
            },
            Decision::Extended {
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
                            return self.recover(self.plan_failed(node, stage, problem), req);
                        }
                    }
                };
                let sent = rewritten.as_ref().map_or(*req, |r| r.req(req));
                let mut reply = self.carry_out(node, *primary, &sent, at_hand, calls);
                if let Some(rewritten) = &rewritten
                    && rewrite.changes_key()
                {
                    reply = reply.restored(rewrite::KeyRestore::new(req, rewritten));
                }
                self.background(node, &background, req, at_hand, &mut reply);
                reply
            }
        }
    }

    /// Carries out what a failed step left: its answer, or the rest of the route from where
    /// the node's `on_fault` sent the request.
    fn recover(self: &Rc<Self>, recovery: Recovery, req: &Req<'_>) -> Pending {
        match recovery {
            Recovery::Answer(outcome) => Pending::Ready(outcome),
            Recovery::Reroute(target) => self.execute(target, req),
        }
    }

    /// Counts keys looked up by a retrieval.
    pub fn stats_keys(&self, n: u64) {
        self.stats.get_keys.add(n);
    }

    /// Routes a client's one-key request from `target` and sends it, letting a long value in
    /// the reply stream through when the route ends at a single server. Only for a pending
    /// reply that goes straight to the client's writer.
    pub fn execute_for_client(self: &Rc<Self>, target: Target, req: &Req<'_>) -> Pending {
        let resolved = if self.shared.experiments.is_empty() {
            self.resolve(target, &req.input)
        } else {
            let (resolved, marks) = self.resolve_marked(target, req);
            if !marks.is_empty() {
                // An experiment's comparison takes the reply whole.
                let sent = std::time::Instant::now();
                let pending = self.run(resolved, req);
                return self.observe(marks, sent, req, pending);
            }
            resolved
        };
        match resolved {
            Resolved::Server { dest, timeout } => {
                let stream_from = self.shared.config.server.stream_from_bytes;
                self.send_streaming(dest, timeout, req.wire, req.kind, stream_from, req.tenant)
            }
            other => self.run(other, req),
        }
    }

    /// Sends `wire` to destination `dest`, for tenant `tenant` (its index,
    /// [`Req::tenant`]) if any.
    pub fn send(
        &self,
        dest: usize,
        timeout: Duration,
        wire: &Wire,
        kind: ReplyKind,
        tenant: Option<usize>,
    ) -> Pending {
        self.send_streaming(dest, timeout, wire, kind, usize::MAX, tenant)
    }

    /// This worker's tap on tenant `tenant`'s traffic to destination `dest` (none for a
    /// request of no tenant).
    pub(crate) fn tap(
        &self,
        tenant: Option<usize>,
        dest: usize,
    ) -> Option<&Rc<crate::tenant::servers::Tap>> {
        self.tenant_taps.get(tenant?)?.get(dest)?.as_ref()
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
        tenant: Option<usize>,
    ) -> Pending {
        let Some(d) = self.destinations.get(dest) else {
            let error = RequestError::Internal("no such destination");
            return Pending::Ready(error.answer(&self.stats));
        };
        match d.send(
            wire.clone(),
            kind,
            timeout,
            stream_from,
            self.tap(tenant, dest),
        ) {
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
pub(crate) const MAX_CALLS: usize = switchyard_sdk::abi::MAX_CALLS as usize;

/// A request that outlives the client's buffer: a `call` continuation's. The key is copied (at
/// most 250 bytes) and the request cloned (its ranges); only requests whose route plans a
/// `call` pay for it.
struct OwnedReq {
    /// The request's route input, its key aside (`key`).
    input: RouteInput<'static>,
    key: Bytes,
    identity: Option<crate::tls::Identity>,
    wire: Wire,
    kind: ReplyKind,
    origin: OwnedOrigin,
    namespace: Bytes,
    tenant: Option<usize>,
}

enum OwnedOrigin {
    Client { request: Box<Request>, frame: Bytes },
    Built(Command),
}

impl OwnedReq {
    fn new(req: &Req<'_>) -> OwnedReq {
        OwnedReq {
            input: req.input.detached(),
            key: Bytes::copy_from_slice(req.input.key),
            identity: req.input.identity.cloned(),
            wire: req.wire.clone(),
            kind: req.kind,
            namespace: Bytes::copy_from_slice(req.namespace),
            tenant: req.tenant,
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
                identity: self.identity.as_ref(),
                ..self.input.with_key(&self.key)
            },
            wire: &self.wire,
            kind: self.kind,
            namespace: &self.namespace,
            tenant: self.tenant,
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
        // Routed on from here at once; what it sends is awaited with no tenant served.
        let next = {
            let _serving = g.serving(req.tenant);
            match g.on_reply(self.node, cookie, outcome.status, &req.input) {
                Ok(Decision::Pass) => None,
                Ok(plan) => Some(g.carry_out(self.node, plan, &req, Some(&outcome), self.calls)),
                Err(error) => Some(g.recover(g.plugin_failed(self.node, error), &req)),
            }
        };
        match next {
            None => outcome,
            Some(next) => next.outcome().await,
        }
    }
}
