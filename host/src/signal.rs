//! A wake-up between futures of one worker thread, where a channel would cost a heap node and
//! atomics per message: the waiter's waker, cloned once and kept, used only while it waits.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

/// A wake-up for one waiter at a time on this thread. A waiter always checks what it waits for
/// before it waits, with no await in between, so a notice given while nobody waits has nothing
/// to wake and is not kept (a kept one would cost the next wait a spurious round).
#[derive(Debug, Default)]
pub(crate) struct Signal {
    waiting: Cell<bool>,
    woken: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub(crate) fn notify(&self) {
        if self.waiting.replace(false) {
            self.woken.set(true);
            if let Some(waker) = self.waker.borrow().as_ref() {
                waker.wake_by_ref();
            }
        }
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| self.poll(cx)).await;
    }

    /// Ready once notified since the last time this returned ready; otherwise keeps `cx`'s
    /// waker to be woken by the next notice.
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.woken.replace(false) {
            return Poll::Ready(());
        }
        let mut waker = self.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        self.waiting.set(true);
        Poll::Pending
    }
}
