//! What a request's experiments do once it is routed (`experiment.rs`): a shadow sends a copy
//! to its candidate in the background and compares the two replies; a canary times the reply
//! on the side the key went to. Routing marks the request ([`Marks`], set while the tree is
//! walked); [`LocalGeneration::observe`] acts on the marks once the request is sent.
//!
//! Only requests that go through `execute` are observed: a single-key request, a plan's child
//! or background send. The keys of a multi-get follow a canary's split but are not measured,
//! nor shadowed, and neither is a long value streamed from its client nor a `noreply` request
//! (whose reply nobody reads). A canary's reply times are taken as the client's queue takes
//! the reply: a client that pipelines or reads slowly weighs on both sides alike, its keys
//! being split between them by hash.

use std::rc::Rc;
use std::time::{Duration, Instant};

use switchyard_sdk::Op;
use tokio::sync::watch;

use super::Req;
use crate::experiment::{Findings, Side, Summary};
use crate::generation::Target;
use crate::reply::{Outcome, Pending};
use crate::route::Resolved;
use crate::worker::LocalGeneration;

/// The experiments one request met while it was routed.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Marks {
    /// Shadows to copy it to, a bit per experiment index.
    shadows: u64,
    /// The canary that measures it, and on which side.
    canary: Option<(u8, Side)>,
}

impl Marks {
    /// Marks `self` for a copy to experiment `i`'s candidate.
    pub(crate) fn shadow(self, i: usize) -> Marks {
        Marks {
            shadows: self.shadows | 1u64.checked_shl(i as u32).unwrap_or(0),
            ..self
        }
    }

    /// Marks `self` as measured by canary `i`, on `side`.
    pub(crate) fn canary(self, i: usize, side: Side) -> Marks {
        Marks {
            canary: u8::try_from(i).ok().map(|i| (i, side)),
            ..self
        }
    }

    /// Whether it met none.
    pub(crate) fn is_empty(&self) -> bool {
        self.shadows == 0 && self.canary.is_none()
    }
}

impl LocalGeneration {
    /// Resolves `req` from `target`, with the marks the walk left.
    pub(super) fn resolve_marked(&self, target: Target, req: &Req<'_>) -> (Resolved, Marks) {
        // Whatever a walk that was not `execute`'s left (a multi-get's keys) is not this one's.
        self.marks.take();
        let resolved = self.resolve(target, &req.input);
        (resolved, self.marks.take())
    }

    /// Carries out `marks` for `req`, sent at `sent`, whose reply is `pending`: the reply the
    /// client gets, unchanged.
    pub(super) fn observe(
        self: &Rc<Self>,
        marks: Marks,
        sent: Instant,
        req: &Req<'_>,
        mut pending: Pending,
    ) -> Pending {
        if let Some((i, side)) = marks.canary
            && let Some(e) = self.shared.experiments.get(usize::from(i))
        {
            let state = e.state.clone();
            pending = pending.map(move |outcome| {
                if let Findings::Canary(rollout) = &state.findings {
                    rollout.record(side, outcome.is_error(), sent.elapsed());
                    state.tick(rollout.fraction());
                }
                outcome
            });
        }
        // A `noreply` request's reply is never read (`dispatch::answer` drops it): there is
        // nothing to compare a copy with.
        let noreply =
            matches!(req.origin, super::Origin::Client { request, .. } if request.noreply);
        if marks.shadows == 0 || noreply {
            return pending;
        }
        // The node's reply is awaited by a task of its own, which times it as it arrives (not
        // when the client's queue gets to it), hands it to the client, then publishes its
        // summary for the copies to be compared with.
        let (tx, live) = watch::channel(None::<(Summary, Duration)>);
        let (to_client, client) = tokio::sync::oneshot::channel::<Outcome>();
        tokio::task::spawn_local(async move {
            let outcome = pending.outcome().await;
            let took = sent.elapsed();
            let summary = Summary::of(&outcome);
            // Gone when the client's connection closed first.
            let _ = to_client.send(outcome);
            tx.send_replace(Some((summary, took)));
        });
        for (i, e) in self.shared.experiments.iter().enumerate() {
            if marks.shadows & 1u64.checked_shl(i as u32).unwrap_or(0) == 0 {
                continue;
            }
            self.shadow_copy(e, req, sent, live.clone());
        }
        Pending::Combined(Box::pin(async move {
            client.await.unwrap_or_else(|_| {
                Outcome::fixed(
                    b"SERVER_ERROR the reply was lost\r\n",
                    switchyard_protocol::ReplyStatus::ServerError,
                )
            })
        }))
    }

    /// Sends a copy of `req` to shadow `e`'s candidate, and compares its reply with the node's
    /// (from `live`) when both are in. Within the worker's background limits, as any
    /// background send.
    fn shadow_copy(
        self: &Rc<Self>,
        e: &crate::experiment::Experiment,
        req: &Req<'_>,
        sent: Instant,
        mut live: watch::Receiver<Option<(Summary, Duration)>>,
    ) {
        let Some(comparison) = e.comparison() else {
            return;
        };
        let stats = &self.stats;
        let server = &self.shared.config.server;
        let bytes = req.wire.byte_len() as u64 + 128;
        if stats.background_outstanding.get() >= server.max_background as u64
            || stats.background_bytes.get() + bytes > server.max_background_bytes as u64
        {
            stats.background_dropped.inc();
            comparison.dropped();
            return;
        }
        // The candidate's nodes do not make the client's reply: not on the request's trail.
        let was = self.trail.pause();
        let copy = self.execute(Target::Node(e.candidate), req);
        self.trail.resume(was);
        stats.background_sent.inc();
        stats.background_outstanding.inc();
        stats.background_bytes.add(bytes);
        let stats = self.stats.clone();
        let state = e.state.clone();
        let sample = e.config.sample;
        let op = Op::from_code(req.input.op);
        let key = req.input.key.to_vec();
        tokio::task::spawn_local(async move {
            let theirs = async {
                let outcome = copy.outcome().await;
                let took = sent.elapsed();
                // The background slot is free as soon as the copy is answered.
                stats.background_outstanding.dec();
                stats.background_bytes.sub(bytes);
                (Summary::of(&outcome), took)
            };
            let ours = async move {
                // Gone without a reply when the node's request was dropped.
                let guard = live.wait_for(Option::is_some).await.ok()?;
                *guard
            };
            let (theirs, ours) = tokio::join!(theirs, ours);
            let Findings::Shadow(comparison) = &state.findings else {
                return;
            };
            match ours {
                Some(ours) => comparison.record(op, &key, ours, theirs),
                None => comparison.unanswered(),
            }
            state.tick(sample);
        });
    }
}
