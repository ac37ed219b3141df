//! The replies a connection owes its client, oldest first. The reader pushes, the writer pops;
//! both are halves of the connection's one task, so the queue is a `RefCell` and a wake-up is a
//! flag and the task's own waker: no channel, no atomic, no allocation per request.

use std::cell::{Cell, RefCell};

use std::task::{Context, Poll, Waker};

use super::{Pending, Settled};
use crate::deque::SmallDeque;
use crate::signal::Signal;
use crate::stats::tally::Tally;

/// Requests a client may have outstanding before the router stops reading from it.
pub const MAX_PIPELINE: usize = 1024;

/// A connection's replies, and how many it may have outstanding.
///
/// The bound is in bytes (`[server] max_client_reply_bytes`): the router stops reading a
/// client's requests while its outstanding requests, each counted at the size of the largest
/// recent reply, would exceed it. A reply's size is known only once it is in, so the estimate
/// starts at the largest value a client may store (a new connection pipelining requests gets a
/// few in flight, then more as its replies prove small), jumps to any larger reply at once, and
/// halves toward each smaller one. A client that sends requests without reading the replies
/// thus holds about that many bytes of replies in the router (plus what its writer has taken
/// and cannot write), whatever their size: memcached, which answers one request at a time,
/// holds one.
#[derive(Debug)]
pub struct ReplyQueue {
    /// Each reply, with how it is counted when it goes out.
    pending: RefCell<SmallDeque<(Pending, Tally)>>,
    /// `max_client_reply_bytes` (at most 4 GiB: the queue is in every connection's task, and
    /// two `u32`s keep it a word smaller).
    budget: u32,
    /// The estimate of the next reply's size: the largest recent one (saturating).
    largest: Cell<u32>,
    /// The reader has stopped: no more replies will be queued.
    closed: Cell<bool>,
    /// Wakes the writer when a reply is queued or the reader stops.
    queued: Signal,
    /// Wakes the reader when the writer made room.
    drained: Signal,
}

impl ReplyQueue {
    /// A queue for a client that may be owed `budget` bytes of replies, whose replies may be
    /// up to `largest` bytes long.
    pub fn new(budget: usize, largest: usize) -> ReplyQueue {
        ReplyQueue {
            pending: RefCell::default(),
            budget: saturate(budget),
            largest: Cell::new(saturate(largest).max(1)),
            closed: Cell::default(),
            queued: Signal::default(),
            drained: Signal::default(),
        }
    }

    /// Requests that may be outstanding now: the budget over the estimated reply size, at
    /// least one, at most [`MAX_PIPELINE`].
    fn window(&self) -> usize {
        (self.budget / self.largest.get()).clamp(1, MAX_PIPELINE as u32) as usize
    }

    /// Waits while the client has as many requests outstanding as its reply budget allows
    /// ([`ReplyQueue::window`]). The caller then pushes with no await
    /// in between (the reader is the only pusher), so the reply itself is never held by a
    /// waiting future.
    pub async fn room(&self) {
        std::future::poll_fn(|cx| {
            while self.pending.borrow().len() >= self.window() {
                std::task::ready!(self.drained.poll(cx));
            }
            Poll::Ready(())
        })
        .await;
    }

    /// Queues a reply (after [`ReplyQueue::room`]), counted as `tally` says when it goes out.
    pub fn push(&self, reply: Pending, tally: Tally) {
        self.pending.borrow_mut().push_back((reply, tally));
        self.queued.notify();
    }

    /// No more replies will be queued; the writer ends once it has written the rest.
    pub fn close(&self) {
        self.closed.set(true);
        self.queued.notify();
    }

    /// The oldest reply once it is in, polled where it lies in the queue (so a waiting writer
    /// holds no reply of its own); `None` once the queue is closed and empty.
    pub fn poll_settled(&self, cx: &mut Context<'_>) -> Poll<Option<(Settled, Tally)>> {
        loop {
            let mut pending = self.pending.borrow_mut();
            if let Some((front, tally)) = pending.front_mut() {
                let tally = *tally;
                // The reply's own source wakes the writer when it is in.
                let settled = std::task::ready!(front.poll_settle(cx));
                pending.pop_front();
                self.popped(&mut pending, &settled);
                return Poll::Ready(Some((settled, tally)));
            }
            drop(pending);
            if self.closed.get() {
                return Poll::Ready(None);
            }
            // Empty: wait for a push (or the close); a notice already given is taken at once.
            std::task::ready!(self.queued.poll(cx));
        }
    }

    /// The oldest reply if it is in already, so a writer can batch it with the ones before it
    /// without waiting.
    pub fn pop_ready(&self) -> Option<(Settled, Tally)> {
        let mut pending = self.pending.borrow_mut();
        let (front, tally) = pending.front_mut()?;
        let tally = *tally;
        let Poll::Ready(settled) = front.poll_settle(&mut Context::from_waker(Waker::noop()))
        else {
            return None;
        };
        // What is left in its place is empty.
        pending.pop_front();
        self.popped(&mut pending, &settled);
        Some((settled, tally))
    }

    fn popped(&self, pending: &mut SmallDeque<(Pending, Tally)>, settled: &Settled) {
        let size = saturate(settled.len());
        let largest = self.largest.get();
        self.largest.set(if size >= largest {
            size.max(1)
        } else {
            largest - (largest - size) / 2
        });
        // One reply in flight lives inline; a pipelined burst's buffer goes once it is answered.
        pending.release();
        self.drained.notify();
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
