//! A node's plugin instance on one worker, and the circuit breaker in front of it.
//!
//! The breaker counts the node's consecutive traps, timeouts and failed re-creations on this
//! worker. At `[plugins] breaker_faults` of them it opens: for `breaker_backoff` the plugin is
//! not called and every request gets the node's `on_fault` at once, while a fresh instance is
//! made in the background, ready for when the breaker closes. The first call after that is a
//! trial: a success closes the breaker (and resets its backoff); a fault reopens it at once for
//! twice as long, up to `breaker_max_backoff`.

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::config::PluginSettings;
use crate::plugin::{PluginError, PluginInstance};

/// An instance made in the background, with how long it took, or why it could not be made.
pub(crate) type Made = Result<(PluginInstance, Duration), PluginError>;

/// A node's instance on one worker.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) instance: Option<PluginInstance>,
    /// Instances made for this slot so far (seeds the next one's `random`).
    pub(crate) created: u64,
    /// How long the last instance took to create.
    pub(crate) creation_time: Duration,
    /// A replacement being made in the background: where it arrives.
    pub(crate) incoming: Option<Receiver<Made>>,
    pub(crate) breaker: Breaker,
}

impl Slot {
    /// A slot holding `instance` (made when the generation was built, in `creation_time`), or
    /// none: made at first use.
    pub(crate) fn new(instance: Option<(PluginInstance, Duration)>) -> Slot {
        let (instance, creation_time) = match instance {
            Some((i, t)) => (Some(i), t),
            None => (None, Duration::ZERO),
        };
        Slot {
            created: u64::from(instance.is_some()),
            instance,
            creation_time,
            incoming: None,
            breaker: Breaker::default(),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Default)]
pub(crate) struct Breaker {
    /// Consecutive faults while closed.
    consecutive: u32,
    /// Open until then.
    open_until: Option<Instant>,
    /// Opened before and not closed by a success since: the next fault reopens it at once.
    tripped: bool,
    /// How long the next opening lasts (zero: not opened yet, the configured backoff).
    next_backoff: Duration,
}

/// What a fault did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tripped {
    /// Still closed.
    No,
    /// Opened, for this long.
    Open(Duration),
}

impl Breaker {
    /// Whether the plugin may be called at `now`: closed, or its open interval is over (the
    /// trial call).
    pub(crate) fn allows(&self, now: impl FnOnce() -> Instant) -> bool {
        self.open_until.is_none_or(|until| now() >= until)
    }

    /// A call succeeded: the breaker closes and forgets.
    pub(crate) fn success(&mut self) {
        if self.consecutive != 0 || self.tripped || self.open_until.is_some() {
            *self = Breaker::default();
        }
    }

    /// A trap, a timeout or a failed creation at `now`.
    pub(crate) fn fault(&mut self, now: Instant, settings: &PluginSettings) -> Tripped {
        if settings.breaker_faults == 0 {
            return Tripped::No;
        }
        self.consecutive += 1;
        if !self.tripped && self.consecutive < settings.breaker_faults {
            return Tripped::No;
        }
        let open_for = if self.next_backoff.is_zero() {
            settings.breaker_backoff
        } else {
            self.next_backoff
        };
        self.next_backoff = (open_for * 2).min(settings.breaker_max_backoff);
        self.open_until = Some(now + open_for);
        self.tripped = true;
        self.consecutive = 0;
        Tripped::Open(open_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(faults: u32) -> PluginSettings {
        PluginSettings {
            call_timeout: Duration::from_millis(10),
            init_timeout: Duration::from_secs(1),
            memory_limit_bytes: 1 << 20,
            rollback_faults: 0,
            breaker_faults: faults,
            breaker_backoff: Duration::from_millis(100),
            breaker_max_backoff: Duration::from_millis(350),
        }
    }

    #[test]
    fn opens_after_consecutive_faults_and_backs_off_exponentially() {
        let s = settings(3);
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert_eq!(b.fault(t0, &s), Tripped::No);
        assert_eq!(b.fault(t0, &s), Tripped::No);
        assert!(b.allows(|| t0));
        assert_eq!(b.fault(t0, &s), Tripped::Open(Duration::from_millis(100)));
        assert!(!b.allows(|| t0 + Duration::from_millis(99)));
        // The trial call after the interval faults: reopened at once, for twice as long.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.allows(|| t1));
        assert_eq!(b.fault(t1, &s), Tripped::Open(Duration::from_millis(200)));
        let t2 = t1 + Duration::from_millis(200);
        // Capped at the maximum.
        assert_eq!(b.fault(t2, &s), Tripped::Open(Duration::from_millis(350)));
        assert_eq!(b.fault(t2, &s), Tripped::Open(Duration::from_millis(350)));
        // A success closes it and resets the backoff.
        b.success();
        assert!(b.allows(|| t2));
        assert_eq!(b.fault(t2, &s), Tripped::No);
    }

    #[test]
    fn a_success_between_faults_keeps_it_closed() {
        let s = settings(3);
        let t = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..10 {
            assert_eq!(b.fault(t, &s), Tripped::No);
            assert_eq!(b.fault(t, &s), Tripped::No);
            b.success();
        }
        assert!(b.allows(|| t));
    }

    #[test]
    fn zero_faults_means_never_open() {
        let s = settings(0);
        let t = Instant::now();
        let mut b = Breaker::default();
        for _ in 0..100 {
            assert_eq!(b.fault(t, &s), Tripped::No);
        }
        assert!(b.allows(|| t));
    }
}
