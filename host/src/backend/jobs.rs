//! The requests one worker has for one server, from [`Destination::send`](super::Destination::send)
//! until their replies arrive. Senders (client sessions) and the connection driver are tasks of
//! the same worker thread, so the queue is a `RefCell` and a [`Signal`]: no channel, no atomic
//! and no allocation per request.
//!
//! What the queue bounds is memory: the bytes of the requests queued or in flight, each counted
//! with a fixed overhead so that a flood of tiny requests is bounded too. A burst of ten
//! thousand one-line `get`s costs well under a megabyte and is simply queued, as memcached
//! would queue it; only a server that stops reading lets the bound be reached.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use switchyard_protocol::ReplyKind;

use super::health::Health;

use super::slots::ReplySender;
use super::{BackendError, BackendResult};
use crate::signal::Signal;
use crate::tenant::servers::Tap;
use crate::wire::Wire;

/// What a request costs on top of its bytes: the job itself and its reply slot.
pub(super) const JOB_OVERHEAD: usize = 128;

/// What a request counts against its destination's bound: its bytes and the overhead.
pub(super) fn cost(wire: &Wire) -> usize {
    wire.byte_len() + JOB_OVERHEAD
}

/// Capacity a queue keeps when it empties; a burst's larger buffer is given back.
const KEEP_CAPACITY: usize = 64;

/// A request queued for a destination.
#[derive(Debug)]
pub(crate) struct Job {
    pub(super) wire: Wire,
    pub(super) kind: ReplyKind,
    /// A value reply at least this long is streamed ([`BackendReply::body`](super::BackendReply));
    /// `usize::MAX` never.
    pub(super) stream_from: usize,
    pub(super) queued: tokio::time::Instant,
    pub(super) deadline: tokio::time::Instant,
    /// Sent once already, on a connection reset behind a reply cut off at its timeout: not
    /// sent a third time.
    pub(super) resent: bool,
    /// Where its reply goes.
    pub(super) reply: Reply,
}

/// Where a job's reply goes. It holds the job's share of its queue's outstanding bytes, given
/// back when the reply is sent or the job is gone however it goes.
#[derive(Debug)]
pub(crate) struct Reply {
    sender: ReplySender,
    charge: Charge,
}

impl Reply {
    /// The server replied after `latency` (`None`: not timed): counted in the server's
    /// replies by worker `worker`, and in its tenant's if the request has one.
    pub(super) fn record(&self, health: &Health, worker: usize, latency: Option<Duration>) {
        health.record_reply(worker, latency);
        if let Some(tap) = &self.charge.tenant {
            tap.replied(latency);
        }
    }

    /// Sends the reply (or why there is none). The client may have gone; its reply is then
    /// simply dropped.
    pub(super) fn send(self, result: BackendResult) {
        if let (Err(error), Some(tap)) = (&result, &self.charge.tenant) {
            tap.failed(error);
        }
        self.sender.send(result);
    }
}

/// A job's share of its queue's outstanding bytes (and of its tenant's there); given back
/// when dropped.
#[derive(Debug)]
struct Charge {
    cost: usize,
    outstanding: Rc<Outstanding>,
    /// The tenant whose request it is, counting it at the server (`tenant/servers.rs`).
    tenant: Option<Rc<Tap>>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.outstanding.sub(self.cost);
        if let Some(tap) = &self.tenant {
            tap.done(self.cost);
        }
    }
}

/// What a queue has outstanding: its bytes, which bound it, mirrored with the count of jobs
/// into the server's gauges for this worker (`stats backends`), which other threads read.
#[derive(Debug, Default)]
struct Outstanding {
    bytes: Cell<usize>,
    /// The server's health and this worker's index in it.
    gauges: Option<(Arc<Health>, usize)>,
}

impl Outstanding {
    fn add(&self, cost: usize) {
        self.bytes.set(self.bytes.get() + cost);
        if let Some((health, worker)) = &self.gauges {
            health.outstanding_added(*worker, cost);
        }
    }

    fn sub(&self, cost: usize) {
        self.bytes.set(self.bytes.get().saturating_sub(cost));
        if let Some((health, worker)) = &self.gauges {
            health.outstanding_removed(*worker, cost);
        }
    }
}

/// One destination's queue, shared by its [`Destination`](super::Destination) handle and its
/// connection driver.
#[derive(Debug, Default)]
pub(crate) struct JobQueue {
    jobs: RefCell<VecDeque<Job>>,
    /// Bytes of the jobs queued or in flight (not yet finished), overhead included.
    outstanding: Rc<Outstanding>,
    /// The handle is gone: the driver serves what is queued, then ends.
    closed: Cell<bool>,
    /// The driver has ended: nothing queued now will be served.
    stopped: Cell<bool>,
    /// Wakes the driver when a job is queued or the queue closes.
    arrived: Signal,
}

impl JobQueue {
    /// A queue for worker `worker`'s requests to the server whose `health` shows what it has
    /// outstanding.
    pub(super) fn new(health: Arc<Health>, worker: usize) -> JobQueue {
        JobQueue {
            outstanding: Rc::new(Outstanding {
                bytes: Cell::new(0),
                gauges: Some((health, worker)),
            }),
            ..JobQueue::default()
        }
    }

    /// Bytes queued or in flight.
    pub(super) fn outstanding(&self) -> usize {
        self.outstanding.bytes.get()
    }

    /// Whether the driver has ended.
    pub(super) fn stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Queues a request for the driver; `cost` is [`cost`]`(&wire)`, computed once by the
    /// sender for its admission check.
    #[expect(
        clippy::too_many_arguments,
        reason = "a job's fields, each set once here"
    )]
    pub(super) fn push(
        &self,
        wire: Wire,
        cost: usize,
        kind: ReplyKind,
        stream_from: usize,
        queued: tokio::time::Instant,
        deadline: tokio::time::Instant,
        reply: ReplySender,
        tenant: Option<Rc<Tap>>,
    ) {
        self.outstanding.add(cost);
        if let Some(tap) = &tenant {
            tap.queued(cost);
        }
        self.jobs.borrow_mut().push_back(Job {
            wire,
            kind,
            stream_from,
            queued,
            deadline,
            resent: false,
            reply: Reply {
                sender: reply,
                charge: Charge {
                    cost,
                    outstanding: self.outstanding.clone(),
                    tenant,
                },
            },
        });
        self.arrived.notify();
    }

    /// The oldest queued job, without waiting.
    pub(super) fn try_pop(&self) -> Option<Job> {
        let mut jobs = self.jobs.borrow_mut();
        let job = jobs.pop_front();
        if jobs.is_empty() && jobs.capacity() > KEEP_CAPACITY {
            *jobs = VecDeque::new();
        }
        job
    }

    /// The oldest queued job, waiting for one; `None` once the handle is gone and the queue
    /// is empty.
    pub(super) async fn pop(&self) -> Option<Job> {
        loop {
            if let Some(job) = self.try_pop() {
                return Some(job);
            }
            if self.closed.get() {
                return None;
            }
            self.arrived.wait().await;
        }
    }

    /// Puts `again` (jobs taken from the queue before, in their order) back at its front, to be
    /// sent before anything queued since.
    pub(super) fn requeue(&self, again: Vec<Job>) {
        if again.is_empty() {
            return;
        }
        let mut jobs = self.jobs.borrow_mut();
        for job in again.into_iter().rev() {
            jobs.push_front(job);
        }
        drop(jobs);
        self.arrived.notify();
    }

    /// Fails every queued job with `err`.
    pub(super) fn fail_all(&self, err: &BackendError) {
        while let Some(job) = self.try_pop() {
            job.reply.send(Err(err.clone()));
        }
    }

    /// The handle is gone: no more jobs will be queued.
    pub(super) fn close(&self) {
        self.closed.set(true);
        self.arrived.notify();
    }

    /// The driver has ended: fails what is queued, and every later send at once.
    pub(super) fn stop(&self) {
        self.stopped.set(true);
        self.fail_all(&BackendError::Shutdown);
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;

    use super::*;
    use crate::backend::slots::{ReplyReceiver, Slots};

    fn job(queue: &JobQueue, slots: &Rc<Slots>, line: &'static [u8]) -> ReplyReceiver {
        let (tx, rx) = slots.take();
        let now = tokio::time::Instant::now();
        let wire = Wire::one(Bytes::from_static(line));
        let bytes = cost(&wire);
        queue.push(wire, bytes, ReplyKind::Line, usize::MAX, now, now, tx, None);
        rx
    }

    fn poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn bytes_count_from_queued_until_finished() {
        let (queue, slots) = (JobQueue::default(), Rc::new(Slots::default()));
        let _a = job(&queue, &slots, b"get a\r\n");
        let _b = job(&queue, &slots, b"get bb\r\n");
        assert_eq!(queue.outstanding(), 7 + 8 + 2 * JOB_OVERHEAD);
        let a = queue.try_pop().expect("queued");
        assert_eq!(
            queue.outstanding(),
            7 + 8 + 2 * JOB_OVERHEAD,
            "in flight still counts"
        );
        a.reply.send(Err(BackendError::Timeout));
        assert_eq!(queue.outstanding(), 8 + JOB_OVERHEAD);
        queue.fail_all(&BackendError::Closed);
        assert_eq!(queue.outstanding(), 0);
        assert!(queue.try_pop().is_none());

        // A job dropped without a reply (its driver's future dropped) gives its bytes back too.
        let _c = job(&queue, &slots, b"get c\r\n");
        drop(queue.try_pop());
        assert_eq!(queue.outstanding(), 0);
    }

    #[test]
    fn the_driver_waits_for_a_job_and_ends_once_closed_and_drained() {
        let (queue, slots) = (JobQueue::default(), Rc::new(Slots::default()));
        {
            let mut pop = pin!(queue.pop());
            assert!(poll(pop.as_mut()).is_pending());
            let _rx = job(&queue, &slots, b"get a\r\n");
            assert!(matches!(poll(pop.as_mut()), Poll::Ready(Some(_))));
        }
        let _rx = job(&queue, &slots, b"get b\r\n");
        queue.close();
        let mut pop = pin!(queue.pop());
        assert!(
            matches!(poll(pop.as_mut()), Poll::Ready(Some(_))),
            "what was queued before the close is still served"
        );
        let mut pop = pin!(queue.pop());
        assert!(matches!(poll(pop.as_mut()), Poll::Ready(None)));
    }

    #[test]
    fn a_stopped_driver_fails_what_is_queued() {
        let (queue, slots) = (JobQueue::default(), Rc::new(Slots::default()));
        let rx = job(&queue, &slots, b"get a\r\n");
        queue.stop();
        assert!(queue.stopped());
        let mut rx = pin!(rx);
        assert!(matches!(
            poll(rx.as_mut()),
            Poll::Ready(Ok(Err(BackendError::Shutdown)))
        ));
        assert_eq!(queue.outstanding(), 0);
    }
}
