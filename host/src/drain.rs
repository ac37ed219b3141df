//! One worker's client connections, as a graceful drain sees them: which are open, waking the
//! idle ones when the drain starts, and telling the worker when the last one has closed.
//!
//! A connection is entered when it is accepted ([`Connections::enter`], which also holds its
//! place under its listener's cap) and leaves when its task ends ([`Admitted`]'s drop). While it
//! waits for its client with nothing half-read, it parks its task's waker here
//! ([`Connections::poll_drain`]); [`Connections::start`] wakes them all, and each closes once it
//! has answered what it read (`connection.rs`). The worker waits for [`Connections::poll_idle`].
//!
//! Everything here is the worker's own (one thread, no locks): a slot per open connection, with
//! at most one waker in it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::server::ListenerCount;
use crate::worker::Worker;

/// One worker's open client connections.
#[derive(Debug, Default)]
pub struct Connections {
    draining: Cell<bool>,
    slots: RefCell<Vec<Slot>>,
    /// Indices of free slots.
    free: RefCell<Vec<usize>>,
    open: Cell<usize>,
    /// The worker waiting for the last connection to close.
    idle: RefCell<Option<Waker>>,
}

#[derive(Debug)]
enum Slot {
    Free,
    Open {
        /// The listener whose cap the connection counts against.
        listener: Arc<ListenerCount>,
        /// Its task, while it waits for its client with nothing half-read.
        parked: Option<Waker>,
    },
}

/// A client connection's place among its worker's [`Connections`], and under its listener's
/// cap: given back when dropped, however the connection ends.
#[derive(Debug)]
pub struct Admitted {
    worker: Rc<Worker>,
    key: usize,
}

impl Admitted {
    /// The worker serving the connection.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Whether the worker is draining; if not, the task of `cx` is woken when it starts. For a
    /// connection that waits for its client with nothing half-read.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.worker.connections.poll_drain(self.key, cx)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.worker.connections.leave(self.key);
    }
}

impl Connections {
    /// Counts a connection accepted on `worker` (already admitted under `listener`'s cap, which
    /// it releases when it leaves).
    pub(crate) fn enter(worker: &Rc<Worker>, listener: Arc<ListenerCount>) -> Admitted {
        let this = &worker.connections;
        let slot = Slot::Open {
            listener,
            parked: None,
        };
        let key = match this.free.borrow_mut().pop() {
            Some(key) => {
                this.slots.borrow_mut()[key] = slot;
                key
            }
            None => {
                let mut slots = this.slots.borrow_mut();
                slots.push(slot);
                slots.len() - 1
            }
        };
        this.open.set(this.open.get() + 1);
        Admitted {
            worker: worker.clone(),
            key,
        }
    }

    fn leave(&self, key: usize) {
        let slot = std::mem::replace(&mut self.slots.borrow_mut()[key], Slot::Free);
        if let Slot::Open { listener, .. } = slot {
            listener.release();
        }
        self.free.borrow_mut().push(key);
        let open = self.open.get().saturating_sub(1);
        self.open.set(open);
        if open == 0
            && let Some(waker) = self.idle.borrow_mut().take()
        {
            waker.wake();
        }
    }

    fn poll_drain(&self, key: usize, cx: &mut Context<'_>) -> Poll<()> {
        if self.draining.get() {
            return Poll::Ready(());
        }
        if let Some(Slot::Open { parked, .. }) = self.slots.borrow_mut().get_mut(key) {
            match parked {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *parked = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// Whether a drain has started.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts the drain: wakes every connection waiting for its client, so that it closes.
    pub fn start(&self) {
        self.draining.set(true);
        let parked: Vec<Waker> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|slot| match slot {
                Slot::Open { parked, .. } => parked.take(),
                Slot::Free => None,
            })
            .collect();
        for waker in parked {
            waker.wake();
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.get()
    }

    /// Ready once no connection is open.
    pub fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.open.get() == 0 {
            return Poll::Ready(());
        }
        *self.idle.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
