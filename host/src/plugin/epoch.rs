//! The engine's epoch ticker: the clock that plugin deadlines are counted on, running only
//! while a plugin might be running.
//!
//! wasmtime interrupts a guest whose store's epoch deadline has passed, and the epoch advances
//! only when something calls `Engine::increment_epoch`. A thread does that every
//! [`EPOCH_TICK`](super::EPOCH_TICK), but an idle router has no deadline to enforce, so the
//! thread parks once no plugin call has started or been in progress for [`PARK_AFTER`] ticks,
//! and the next call wakes it.
//!
//! Each plugin instance has a [`CallGauge`]: a counter only its own worker writes, odd while a
//! call is in progress, on a cache line of its own. Parking is a handshake on sequentially
//! consistent atomics: the ticker sets `parked`, then reads every gauge; a call stores its
//! gauge, then reads `parked`. In the single order of those operations one side sees the
//! other's write, so either the ticker finds the call and does not park, or the call finds the
//! ticker parked and wakes it: no call ever runs without a clock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{JoinHandle, Thread};

use super::EPOCH_TICK;

/// Ticks without any call before the ticker parks: short enough that an idle router is
/// quiet within a tenth of a second, long enough that steady traffic never pays for a wake-up.
pub(crate) const PARK_AFTER: u32 = 100;

/// One instance's count of calls: odd while a call is in progress.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Gauge {
    calls: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    engine: wasmtime::Engine,
    parked: AtomicBool,
    stop: AtomicBool,
    /// The ticker thread, for `unpark`; set by the thread itself before it can park.
    thread: OnceLock<Thread>,
    gauges: Mutex<Vec<Weak<Gauge>>>,
    /// Epoch increments so far.
    ticks: AtomicU64,
}

impl Shared {
    /// Sum of every live gauge, and whether any call is in progress; forgets dropped gauges.
    fn survey(&self) -> (u64, bool) {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        let (mut sum, mut busy) = (0u64, false);
        gauges.retain(|g| match g.upgrade() {
            Some(g) => {
                let calls = g.calls.load(Ordering::SeqCst);
                sum = sum.wrapping_add(calls);
                busy |= calls % 2 == 1;
                true
            }
            None => false,
        });
        (sum, busy)
    }

    fn wake(&self) {
        if self.parked.swap(false, Ordering::SeqCst)
            && let Some(t) = self.thread.get()
        {
            t.unpark();
        }
    }

    fn run(&self) {
        let _ = self.thread.set(std::thread::current());
        let (mut last, mut idle) = (self.survey().0, 0u32);
        while !self.stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            self.engine.increment_epoch();
            self.ticks.fetch_add(1, Ordering::Relaxed);
            let (sum, busy) = self.survey();
            if busy || sum != last {
                (last, idle) = (sum, 0);
                continue;
            }
            idle += 1;
            if idle < PARK_AFTER {
                continue;
            }
            self.parked.store(true, Ordering::SeqCst);
            let (sum, busy) = self.survey();
            if busy || sum != last {
                self.parked.store(false, Ordering::SeqCst);
                (last, idle) = (sum, 0);
                continue;
            }
            while self.parked.load(Ordering::SeqCst) && !self.stop.load(Ordering::SeqCst) {
                std::thread::park();
            }
            idle = 0;
        }
    }
}

/// The ticker thread; stopped and joined when dropped.
#[derive(Debug)]
pub(crate) struct Ticker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts the thread that advances `engine`'s epoch.
    pub(crate) fn start(engine: wasmtime::Engine) -> std::io::Result<Ticker> {
        let shared = Arc::new(Shared {
            engine,
            parked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            thread: OnceLock::new(),
            gauges: Mutex::new(Vec::new()),
            ticks: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("switchyard-epoch".into())
                .spawn(move || shared.run())?
        };
        Ok(Ticker {
            shared,
            thread: Some(thread),
        })
    }

    /// What a compiled module keeps to give its instances gauges.
    pub(crate) fn handle(&self) -> TickerHandle {
        TickerHandle(self.shared.clone())
    }

    /// Whether the thread is parked (or about to park).
    #[cfg(test)]
    fn parked(&self) -> bool {
        self.shared.parked.load(Ordering::SeqCst)
    }

    /// Epoch increments so far.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake();
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// The ticker as a compiled module sees it.
#[derive(Debug, Clone)]
pub(crate) struct TickerHandle(Arc<Shared>);

impl TickerHandle {
    /// A gauge for one new instance.
    pub(crate) fn gauge(&self) -> CallGauge {
        let gauge = Arc::new(Gauge::default());
        self.0
            .gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&gauge));
        CallGauge {
            gauge,
            shared: self.0.clone(),
        }
    }
}

/// One instance's gauge: [`CallGauge::enter`] around every call into the guest.
#[derive(Debug)]
pub(crate) struct CallGauge {
    gauge: Arc<Gauge>,
    shared: Arc<Shared>,
}

impl CallGauge {
    /// Marks a call in progress until the returned guard drops, waking the ticker if it parked.
    pub(crate) fn enter(&self) -> Running<'_> {
        let calls = self.gauge.calls.load(Ordering::Relaxed);
        self.gauge.calls.store(calls + 1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) {
            self.shared.wake();
        }
        Running(&self.gauge)
    }
}

/// A call in progress.
pub(crate) struct Running<'a>(&'a Gauge);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let calls = self.0.calls.load(Ordering::Relaxed);
        self.0.calls.store(calls + 1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn engine() -> wasmtime::Engine {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        wasmtime::Engine::new(&config).expect("engine")
    }

    #[test]
    fn an_idle_ticker_parks_and_a_call_wakes_it_for_as_long_as_it_runs() {
        let ticker = Ticker::start(engine()).expect("ticker");
        let gauge = ticker.handle().gauge();
        until("the idle ticker parks", || ticker.parked());
        let parked_at = ticker.ticks();
        std::thread::sleep(EPOCH_TICK * 20);
        assert_eq!(ticker.ticks(), parked_at, "a parked ticker does not tick");

        let call = gauge.enter();
        until("a call wakes the ticker", || ticker.ticks() > parked_at);
        let woke_at = ticker.ticks();
        // A call in progress keeps it ticking past the idle threshold.
        until("it keeps ticking during a long call", || {
            ticker.ticks() > woke_at + u64::from(PARK_AFTER) * 2
        });
        assert!(!ticker.parked());
        drop(call);
        until("it parks again once the call is over", || ticker.parked());
    }

    #[test]
    fn a_parked_ticker_stops_at_once() {
        let ticker = Ticker::start(engine()).expect("ticker");
        until("the idle ticker parks", || ticker.parked());
        let started = std::time::Instant::now();
        drop(ticker);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
