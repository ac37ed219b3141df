//! Background sends (`sdk/ABI.md`, `background`; and the children of a `fan_out` with wait
//! `none`): requests sent on the side of a plan. Their replies are read and dropped, so they
//! never delay or change the client's reply; each worker keeps at most
//! `server.max_background` of them in flight, holding at most `server.max_background_bytes` of
//! requests (a copied `set` keeps its value), and drops (and counts) what is over.
//!
//! A send goes out when the plan is carried out, through the child's own route like any
//! request, and a small local task waits for its reply to count it. A compared send (shadowing)
//! also waits for the node's reply, which the client's pending reply hands over when it
//! completes, and counts a mismatch.

use std::rc::Rc;

use switchyard_protocol::ReplyStatus;
use tokio::sync::watch;

use super::{Req, rewrite};
use crate::plugin::OwnedBackground;
use crate::reply::{Outcome, Pending};
use crate::worker::LocalGeneration;

impl LocalGeneration {
    /// Sends `sends` for node `node`'s plan on `req`. `at_hand` is the reply a continuation
    /// just received (what a store may store); `reply` is the node's reply, which compared
    /// sends wait for.
    pub(super) fn background(
        self: &Rc<Self>,
        node: usize,
        sends: &[OwnedBackground],
        req: &Req<'_>,
        at_hand: Option<&Outcome>,
        reply: &mut Pending,
    ) {
        if sends.is_empty() {
            return;
        }
        let node_reply = sends.iter().any(|s| s.compare).then(|| hand_over(reply));
        let server = &self.shared.config.server;
        let (limit, byte_limit) = (server.max_background as u64, server.max_background_bytes);
        let stats = &self.stats;
        // What one copy holds: the request's bytes (a store's value with it) and a request's
        // worth of bookkeeping.
        let bytes = req.wire.byte_len() as u64 + 128;
        for send in sends {
            if stats.background_outstanding.get() >= limit
                || stats.background_bytes.get() + bytes > byte_limit as u64
            {
                stats.background_dropped.inc();
                continue;
            }
            let target = self.shared.nodes[node].children[send.child as usize];
            // Its nodes do not make the client's reply: not on the request's trail.
            let was = self.trail.pause();
            let pending = if send.store.is_none() && send.rewrite.is_identity() {
                Some(self.execute(target, req))
            } else {
                rewrite::background(req, send, at_hand)
                    .map(|built| self.execute(target, &built.req(req)))
            };
            self.trail.resume(was);
            let Some(pending) = pending else {
                stats.background_skipped.inc();
                continue;
            };
            stats.background_sent.inc();
            stats.background_outstanding.inc();
            stats.background_bytes.add(bytes);
            let stats = self.stats.clone();
            let compare_with = node_reply.clone().filter(|_| send.compare);
            tokio::task::spawn_local(async move {
                let mine = pending.outcome().await;
                stats.background_outstanding.dec();
                stats.background_bytes.sub(bytes);
                if mine.is_error() {
                    stats.background_failed.inc();
                }
                let Some(mut theirs) = compare_with else {
                    return;
                };
                // Gone without a reply when the client's connection closed first.
                if let Ok(theirs) = theirs.wait_for(Option::is_some).await
                    && let Some(theirs) = theirs.as_ref()
                    && !same_reply(&mine, theirs)
                {
                    stats.shadow_mismatches.inc();
                }
            });
        }
    }
}

/// Makes `reply` hand its outcome over when it completes; returns where it will be.
fn hand_over(reply: &mut Pending) -> watch::Receiver<Option<Outcome>> {
    let (tx, rx) = watch::channel(None);
    let inner = std::mem::replace(reply, Pending::Ready(Outcome::fixed(b"", ReplyStatus::Ok)));
    *reply = inner.map(move |outcome| {
        tx.send_replace(Some(outcome.clone()));
        outcome
    });
    rx
}

/// Whether two replies to the same request say the same, as a shadow experiment compares
/// them (`experiment/shadow.rs`): the same status, and for a hit the same values and client
/// flags (CAS uniques differ between servers and are not compared), for a number the same
/// number.
fn same_reply(a: &Outcome, b: &Outcome) -> bool {
    use crate::experiment::{Mismatch, Summary};
    Mismatch::between(&Summary::of(a), &Summary::of(b)).is_none()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn outcome(frame: &'static str, status: ReplyStatus) -> Outcome {
        Outcome {
            frame: Bytes::from_static(frame.as_bytes()),
            status,
        }
    }

    #[test]
    fn replies_compare_by_status_and_value() {
        let hit = |f| outcome(f, ReplyStatus::Hit);
        assert!(same_reply(
            &hit("VALUE a 1 2 10\r\nhi\r\nEND\r\n"),
            &hit("VALUE a 1 2 99\r\nhi\r\nEND\r\n")
        ));
        assert!(!same_reply(
            &hit("VALUE a 1 2\r\nhi\r\nEND\r\n"),
            &hit("VALUE a 2 2\r\nhi\r\nEND\r\n")
        ));
        assert!(!same_reply(
            &hit("VALUE a 1 2\r\nhi\r\nEND\r\n"),
            &hit("VALUE a 1 2\r\nho\r\nEND\r\n")
        ));
        assert!(!same_reply(
            &hit("VALUE a 1 2\r\nhi\r\nEND\r\n"),
            &outcome("END\r\n", ReplyStatus::Miss)
        ));
        assert!(same_reply(
            &outcome("STORED\r\n", ReplyStatus::Stored),
            &outcome("STORED\r\n", ReplyStatus::Stored)
        ));
        assert!(!same_reply(
            &outcome("3\r\n", ReplyStatus::Number),
            &outcome("4\r\n", ReplyStatus::Number)
        ));
    }
}
