//! The replies a connection owes its client, oldest first. The reader pushes, the writer pops;
//! both are halves of the connection's one task, so the queue is a `RefCell` and a wake-up is a
//! flag and the task's own waker: no channel, no atomic, no allocation per request.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use crate::executor::Pending;
use crate::signal::Signal;

/// Requests a client may have outstanding before the router stops reading from it.
pub const MAX_PIPELINE: usize = 1024;

/// Queued replies bigger than this much capacity are given back when the queue empties, so a
/// burst of pipelined requests does not pin its peak on an idle connection.
const KEEP_CAPACITY: usize = 16;

#[derive(Debug, Default)]
pub struct ReplyQueue {
    pending: RefCell<VecDeque<Pending>>,
    /// The reader has stopped: no more replies will be queued.
    closed: Cell<bool>,
    /// Wakes the writer when a reply is queued or the reader stops.
    queued: Signal,
    /// Wakes the reader when the writer made room.
    drained: Signal,
}

impl ReplyQueue {
    /// Queues a reply, waiting first while [`MAX_PIPELINE`] are queued.
    pub async fn push(&self, reply: Pending) {
        while self.pending.borrow().len() >= MAX_PIPELINE {
            self.drained.wait().await;
        }
        self.pending.borrow_mut().push_back(reply);
        self.queued.notify();
    }

    /// No more replies will be queued; the writer ends once it has written the rest.
    pub fn close(&self) {
        self.closed.set(true);
        self.queued.notify();
    }

    /// The oldest reply, waiting for one; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<Pending> {
        loop {
            if let Some(reply) = self.pop_if(|_| true) {
                return Some(reply);
            }
            if self.closed.get() {
                return None;
            }
            self.queued.wait().await;
        }
    }

    /// The oldest reply if it is complete already, so a writer can batch it with the ones
    /// before it without waiting.
    pub fn pop_ready(&self) -> Option<Pending> {
        self.pop_if(Pending::is_ready)
    }

    fn pop_if(&self, take: impl FnOnce(&mut Pending) -> bool) -> Option<Pending> {
        let mut pending = self.pending.borrow_mut();
        if !take(pending.front_mut()?) {
            return None;
        }
        let reply = pending.pop_front()?;
        if pending.is_empty() && pending.capacity() > KEEP_CAPACITY {
            *pending = VecDeque::new();
        }
        drop(pending);
        self.drained.notify();
        Some(reply)
    }
}
