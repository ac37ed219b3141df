//! Where backend replies wait for their clients: what a oneshot channel per request would do,
//! without its allocation and atomics. A request takes a slot from its destination's table,
//! the connection driver fills it, the client's session takes the reply out. All three run on
//! the worker's one thread, so the table is a `RefCell`; a slot is reused once both its sender
//! and its receiver are gone. The table grows to what a burst has outstanding at once (bounded
//! by the pool's `max_outstanding_bytes`) and is given back once every slot is free again.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::BackendResult;

/// Slots a table keeps when all are free: what a busy connection has in flight, not a burst.
const KEEP_SLOTS: usize = 256;

/// The sender went away without a reply: the connection driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canceled;

/// One destination's reply slots.
#[derive(Debug, Default)]
pub struct Slots {
    inner: RefCell<Table>,
}

#[derive(Debug, Default)]
struct Table {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

#[derive(Debug, Default)]
struct Slot {
    reply: Option<BackendResult>,
    waker: Option<Waker>,
    sender: bool,
    receiver: bool,
}

impl Table {
    /// Returns slot `i` to the free list once neither side holds it; gives a burst's table
    /// back once every slot in it is free.
    fn release_if_done(&mut self, i: usize) {
        if let Some(slot) = self.slots.get_mut(i)
            && !slot.sender
            && !slot.receiver
        {
            *slot = Slot::default();
            self.free.push(i);
            if self.free.len() == self.slots.len() && self.slots.len() > KEEP_SLOTS {
                *self = Table::default();
            }
        }
    }
}

impl Slots {
    /// A slot for one request: the driver's end and the session's end.
    pub fn take(self: &Rc<Self>) -> (ReplySender, ReplyReceiver) {
        let mut table = self.inner.borrow_mut();
        let fresh = Slot {
            sender: true,
            receiver: true,
            ..Slot::default()
        };
        let index = match table.free.pop() {
            Some(i) => {
                table.slots[i] = fresh;
                i
            }
            None => {
                table.slots.push(fresh);
                table.slots.len() - 1
            }
        };
        (
            ReplySender {
                slots: self.clone(),
                index,
            },
            ReplyReceiver {
                slots: self.clone(),
                index,
            },
        )
    }

    /// Slots in the table (in use or free), for tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.borrow().slots.len()
    }
}

/// The connection driver's end of a slot.
#[derive(Debug)]
pub struct ReplySender {
    slots: Rc<Slots>,
    index: usize,
}

impl ReplySender {
    /// Fills the slot and wakes whoever waits on it; a reply nobody waits for any more is
    /// dropped.
    pub fn send(self, reply: BackendResult) {
        let waker = {
            let mut table = self.slots.inner.borrow_mut();
            let slot = &mut table.slots[self.index];
            if slot.receiver {
                slot.reply = Some(reply);
            }
            slot.waker.take()
        };
        // Dropping `self` releases the sender's hold.
        drop(self);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Drop for ReplySender {
    fn drop(&mut self) {
        let waker = {
            let mut table = self.slots.inner.borrow_mut();
            let slot = &mut table.slots[self.index];
            slot.sender = false;
            let waker = slot.waker.take();
            table.release_if_done(self.index);
            waker
        };
        // A receiver still waiting learns that no reply will come.
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The session's end of a slot: a future of the reply.
#[derive(Debug)]
pub struct ReplyReceiver {
    slots: Rc<Slots>,
    index: usize,
}

impl Future for ReplyReceiver {
    type Output = Result<BackendResult, Canceled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut table = self.slots.inner.borrow_mut();
        let slot = &mut table.slots[self.index];
        if let Some(reply) = slot.reply.take() {
            return Poll::Ready(Ok(reply));
        }
        if !slot.sender {
            return Poll::Ready(Err(Canceled));
        }
        match &slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for ReplyReceiver {
    fn drop(&mut self) {
        let mut table = self.slots.inner.borrow_mut();
        let slot = &mut table.slots[self.index];
        slot.receiver = false;
        slot.reply = None;
        slot.waker = None;
        table.release_if_done(self.index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendError;

    fn poll(rx: &mut ReplyReceiver) -> Poll<Result<BackendResult, Canceled>> {
        Pin::new(rx).poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_reply_sent_before_or_after_the_first_poll_arrives() {
        let slots = Rc::new(Slots::default());
        let (tx, mut rx) = slots.take();
        assert!(poll(&mut rx).is_pending());
        tx.send(Err(BackendError::Timeout));
        assert!(matches!(
            poll(&mut rx),
            Poll::Ready(Ok(Err(BackendError::Timeout)))
        ));

        let (tx, mut rx) = slots.take();
        tx.send(Err(BackendError::Down));
        assert!(matches!(
            poll(&mut rx),
            Poll::Ready(Ok(Err(BackendError::Down)))
        ));
    }

    #[test]
    fn a_sender_dropped_without_a_reply_cancels() {
        let slots = Rc::new(Slots::default());
        let (tx, mut rx) = slots.take();
        assert!(poll(&mut rx).is_pending());
        drop(tx);
        assert_eq!(
            poll(&mut rx).map(|r| r.map(|_| ())),
            Poll::Ready(Err(Canceled))
        );
    }

    #[test]
    fn slots_are_reused_once_both_ends_are_gone_in_either_order() {
        let slots = Rc::new(Slots::default());
        for _ in 0..100 {
            let (tx, rx) = slots.take();
            drop(rx);
            tx.send(Err(BackendError::Timeout));
            let (tx, mut rx) = slots.take();
            tx.send(Err(BackendError::Timeout));
            assert!(poll(&mut rx).is_ready());
            drop(rx);
        }
        assert_eq!(slots.len(), 1, "one slot at a time was outstanding");

        let held: Vec<_> = (0..10).map(|_| slots.take()).collect();
        assert_eq!(slots.len(), 10);
        drop(held);
        let _again: Vec<_> = (0..10).map(|_| slots.take()).collect();
        assert_eq!(slots.len(), 10, "freed slots are taken before new ones");
    }

    #[test]
    fn a_bursts_table_is_given_back_once_every_slot_is_free() {
        let slots = Rc::new(Slots::default());
        let burst: Vec<_> = (0..KEEP_SLOTS * 4).map(|_| slots.take()).collect();
        assert_eq!(slots.len(), KEEP_SLOTS * 4);
        let mut last = None;
        for (i, (tx, rx)) in burst.into_iter().enumerate() {
            if i == 0 {
                last = Some((tx, rx));
                continue;
            }
            drop((tx, rx));
        }
        assert_eq!(slots.len(), KEEP_SLOTS * 4, "one slot is still held");
        drop(last);
        assert_eq!(slots.len(), 0);
        let (tx, mut rx) = slots.take();
        tx.send(Err(BackendError::Down));
        assert!(poll(&mut rx).is_ready(), "the table works after it shrank");
    }

    #[test]
    fn a_waiting_receiver_is_woken_by_the_reply() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        #[derive(Default)]
        struct Count(AtomicUsize);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let slots = Rc::new(Slots::default());
        let (tx, mut rx) = slots.take();
        assert!(
            Pin::new(&mut rx)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        tx.send(Err(BackendError::Timeout));
        assert_eq!(count.0.load(Ordering::Relaxed), 1);
    }
}
