//! Combining the replies of a fan-out by its wait policy (`sdk/ABI.md`, mcrouter's AllSync,
//! AllFastest, AllMajority and AllAsync routes).
//!
//! Every part has been sent before any of this runs. A policy that answers before every part
//! is back drops the rest: their backend requests still complete, and their replies are read
//! and discarded by the connection that owns them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::worst_of;
use crate::error::PlanProblem;
use crate::plugin::{OwnedReply, Wait};
use crate::reply::{Outcome, Pending, render_plugin_reply};

type Part = Pin<Box<dyn Future<Output = Outcome>>>;

/// The client's reply to a fan-out of `parts` under `wait`, for operation `op`; why there can
/// be none (no parts to wait for, an operation with no default reply).
pub(super) fn combine(parts: Vec<Pending>, wait: Wait, op: u32) -> Result<Pending, PlanProblem> {
    match wait {
        Wait::All => worst_of(parts).ok_or(PlanProblem::NoChildren),
        Wait::None => {
            drop(parts);
            render_plugin_reply(&OwnedReply::Miss, op).map(Pending::Ready)
        }
        Wait::First | Wait::FirstGood | Wait::Majority if parts.is_empty() => {
            Err(PlanProblem::NoChildren)
        }
        Wait::First | Wait::FirstGood | Wait::Majority => {
            let parts: Vec<Option<Part>> = parts
                .into_iter()
                .map(|p| Some(Box::pin(p.outcome()) as Part))
                .collect();
            Ok(Pending::Combined(Box::pin(Race {
                total: parts.len(),
                parts,
                wait,
                done: Vec::new(),
            })))
        }
    }
}

/// Polls every part and answers as soon as the policy can.
struct Race {
    parts: Vec<Option<Part>>,
    total: usize,
    wait: Wait,
    /// Replies in, in arrival order.
    done: Vec<Outcome>,
}

impl Race {
    /// The reply to give now, if the policy has decided.
    fn decide(&mut self) -> Option<Outcome> {
        let newest = self.done.last()?;
        let all_in = self.done.len() == self.total;
        let good = |o: &Outcome| !o.status.is_error();
        match self.wait {
            Wait::First => Some(newest.clone()),
            Wait::FirstGood if good(newest) => Some(newest.clone()),
            Wait::Majority => {
                let need = self.total / 2 + 1;
                let agreeing = self
                    .done
                    .iter()
                    .filter(|o| good(o) && o.status == newest.status);
                if good(newest) && agreeing.count() >= need {
                    return Some(newest.clone());
                }
                // Could any status still reach a majority with the replies not yet in?
                let pending = self.total - self.done.len();
                let best = self
                    .done
                    .iter()
                    .filter(|o| good(o))
                    .map(|o| {
                        self.done
                            .iter()
                            .filter(|x| good(x) && x.status == o.status)
                            .count()
                    })
                    .max()
                    .unwrap_or(0);
                (all_in || best + pending < need)
                    .then(|| self.worst())
                    .flatten()
            }
            // No good reply yet: the worst once all are in. (`All` and `None` never race.)
            Wait::FirstGood | Wait::All | Wait::None => all_in.then(|| self.worst()).flatten(),
        }
    }

    /// The worst reply in (the last of the worst); `None` before any is.
    fn worst(&self) -> Option<Outcome> {
        self.done
            .iter()
            .max_by_key(|o| o.status.severity())
            .cloned()
    }
}

impl Future for Race {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        for i in 0..this.parts.len() {
            let Some(part) = this.parts[i].as_mut() else {
                continue;
            };
            if let Poll::Ready(outcome) = part.as_mut().poll(cx) {
                this.parts[i] = None;
                this.done.push(outcome);
                if let Some(reply) = this.decide() {
                    return Poll::Ready(reply);
                }
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use switchyard_protocol::ReplyStatus;

    use super::*;

    fn ready(frame: &'static str, status: ReplyStatus) -> Pending {
        Pending::Ready(Outcome {
            frame: Bytes::from_static(frame.as_bytes()),
            status,
        })
    }

    fn answer(parts: Vec<Pending>, wait: Wait) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let reply = combine(parts, wait, switchyard_sdk::abi::op::SET).expect("a reply");
        rt.block_on(reply.outcome()).frame
    }

    #[test]
    fn each_policy_picks_its_reply() {
        let err = || ready("SERVER_ERROR down\r\n", ReplyStatus::ServerError);
        let stored = || ready("STORED\r\n", ReplyStatus::Stored);
        let not_stored = || ready("NOT_STORED\r\n", ReplyStatus::NotStored);

        assert_eq!(
            answer(vec![err(), stored()], Wait::First),
            "SERVER_ERROR down\r\n"
        );
        assert_eq!(answer(vec![err(), stored()], Wait::FirstGood), "STORED\r\n");
        assert_eq!(
            answer(vec![err(), err()], Wait::FirstGood),
            "SERVER_ERROR down\r\n"
        );
        assert_eq!(
            answer(vec![err(), stored(), stored()], Wait::Majority),
            "STORED\r\n"
        );
        assert_eq!(
            answer(vec![stored(), not_stored(), err()], Wait::Majority),
            "SERVER_ERROR down\r\n",
            "no status reaches two of three: the worst reply"
        );
        assert_eq!(
            answer(vec![err(), stored()], Wait::All),
            "SERVER_ERROR down\r\n"
        );
        assert_eq!(answer(vec![err(), stored()], Wait::None), "NOT_STORED\r\n");
    }
}
