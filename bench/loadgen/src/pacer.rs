//! A timer with microsecond-scale precision for the open loop.
//!
//! tokio's timer wheel ticks in milliseconds: a request scheduled 300 µs from now would leave up
//! to a millisecond late, and since open-loop latency is measured from the *scheduled* time,
//! that lateness would be reported as server latency. The pacer is one thread that sleeps on a
//! condition variable (a futex with a high-resolution timeout) until the earliest deadline any
//! connection waits for, then wakes the connections that are due. How late the requests really
//! left is measured and reported (`schedule_lag_us`).
//!
//! The kernel lets a timed wait overrun by up to a thread's timer slack (50 µs by default on
//! Linux; [`reduce_timer_slack`] lowers it for the threads started after it), and waking a task
//! on another thread takes some microseconds more, so deadlines are treated as due [`EARLY`]
//! ahead of time: a request then leaves at most that early, and its latency counts from when it
//! really left (see `conn.rs`), never from a later scheduled time.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// How far ahead of its deadline a wait counts as over: Linux's default timer slack.
pub const EARLY: Duration = Duration::from_micros(50);

/// The timer slack [`reduce_timer_slack`] asks for: a microsecond.
const TIMER_SLACK_NS: u64 = 1_000;

/// Lowers the timer slack of the calling thread (the process's main thread: the only one
/// `/proc/self/timerslack_ns` reaches), which threads started afterwards inherit, so that the
/// pacer's timed waits end within microseconds of their deadline rather than up to 50 µs after.
/// Best effort: returns the slack now in force, in nanoseconds, if it could be read.
pub fn reduce_timer_slack() -> Option<u64> {
    const PATH: &str = "/proc/self/timerslack_ns";
    // Without it (not Linux, or not allowed) waits are less precise, and EARLY covers that.
    std::fs::write(PATH, TIMER_SLACK_NS.to_string()).ok();
    std::fs::read_to_string(PATH).ok()?.trim().parse().ok()
}

/// A deadline and the task to wake at it.
#[derive(Debug)]
struct Entry {
    at: Instant,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the max-heap gives the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.cmp(&self.at)
    }
}

#[derive(Debug, Default)]
struct Deadlines {
    heap: BinaryHeap<Entry>,
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    deadlines: Mutex<Deadlines>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Deadlines> {
        self.deadlines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The pacer thread; stopped when this is dropped.
#[derive(Debug)]
pub struct Pacer {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

/// What connections hold to register deadlines.
#[derive(Debug, Clone)]
pub struct PacerHandle {
    shared: Arc<Shared>,
}

impl Pacer {
    pub fn start() -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = thread::Builder::new().name("loadgen-pacer".into()).spawn({
            let shared = Arc::clone(&shared);
            move || pace(&shared)
        })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> PacerHandle {
        PacerHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            // A panic in the pacer has already been reported on stderr; nothing to add.
            thread.join().ok();
        }
    }
}

/// The pacer thread: wakes each registered task once its deadline has passed.
fn pace(shared: &Shared) {
    let mut due = Vec::new();
    let mut deadlines = shared.lock();
    loop {
        if deadlines.stop {
            return;
        }
        let now = Instant::now();
        while deadlines.heap.peek().is_some_and(|e| e.at <= now + EARLY) {
            if let Some(entry) = deadlines.heap.pop() {
                due.push(entry.waker);
            }
        }
        if !due.is_empty() {
            drop(deadlines);
            due.drain(..).for_each(Waker::wake);
            deadlines = shared.lock();
            continue;
        }
        deadlines = match deadlines.heap.peek() {
            None => shared
                .changed
                .wait(deadlines)
                .unwrap_or_else(PoisonError::into_inner),
            Some(first) => {
                let wait = first.at.saturating_duration_since(now + EARLY);
                shared
                    .changed
                    .wait_timeout(deadlines, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

impl PacerHandle {
    fn register(&self, at: Instant, waker: Waker) {
        let mut deadlines = self.shared.lock();
        let earliest = deadlines.heap.peek().is_none_or(|first| at < first.at);
        deadlines.heap.push(Entry { at, waker });
        drop(deadlines);
        if earliest {
            self.shared.changed.notify_one();
        }
    }
}

/// A future ready [`EARLY`] before a deadline that can be moved ([`PaceSleep::set`]); without
/// a pacer it never is. A deadline is registered once, on the first poll that finds it in the future, so
/// polling it again (as `select!` does whenever another branch wakes the task) costs only a
/// clock read.
#[derive(Debug)]
pub struct PaceSleep {
    pacer: Option<PacerHandle>,
    at: Option<Instant>,
    registered: bool,
}

impl PaceSleep {
    pub fn new(pacer: Option<PacerHandle>) -> Self {
        Self {
            pacer,
            at: None,
            registered: false,
        }
    }

    pub fn set(&mut self, at: Instant) {
        if self.at != Some(at) {
            self.at = Some(at);
            self.registered = false;
        }
    }
}

impl Future for PaceSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (Some(pacer), Some(at)) = (&this.pacer, this.at) else {
            return Poll::Pending;
        };
        if Instant::now() + EARLY >= at {
            return Poll::Ready(());
        }
        if !this.registered {
            pacer.register(at, cx.waker().clone());
            this.registered = true;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn wakes_close_to_the_deadline() {
        let pacer = Pacer::start().expect("a thread");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            let mut sleep = PaceSleep::new(Some(pacer.handle()));
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                let at = Instant::now() + Duration::from_micros(300);
                sleep.set(at);
                (&mut sleep).await;
                let now = Instant::now();
                assert!(now + EARLY >= at, "woken {:?} early", at - now);
                worst = worst.max(now.saturating_duration_since(at));
            }
            // tokio's own timer would be up to a millisecond late; a loaded machine can still
            // delay a thread, so the bound is loose.
            assert!(worst < Duration::from_millis(20), "{worst:?} late");
        });
    }
}
