//! Plugin faults in the log without flooding it: per node and fault kind, the first fault is
//! logged at once, the rest are counted, and the next line after [`INTERVAL`] says how many
//! were not logged. Shared by every worker; lock-free.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::FaultKind;

/// At most one line per node and fault kind this often.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Entry {
    /// Milliseconds (on [`now_ms`]'s clock) before which the next fault is only counted.
    quiet_until: AtomicU64,
    /// Faults counted but not logged since the last line.
    suppressed: AtomicU64,
}

/// One node's fault log limiter.
#[derive(Debug, Default)]
pub(crate) struct FaultLog {
    kinds: [Entry; FaultKind::ALL.len()],
}

impl FaultLog {
    /// Whether a fault of `kind` at `now_ms` is logged: `Some(faults not logged since the last
    /// line of this kind)` if so, `None` if it is only counted.
    pub(crate) fn admit(&self, kind: FaultKind, now_ms: u64) -> Option<u64> {
        let entry = &self.kinds[kind.index()];
        let quiet_until = entry.quiet_until.load(Ordering::Relaxed);
        let next = now_ms.saturating_add(INTERVAL.as_millis() as u64);
        if now_ms >= quiet_until
            && entry
                .quiet_until
                .compare_exchange(quiet_until, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(entry.suppressed.swap(0, Ordering::Relaxed))
        } else {
            entry.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// Milliseconds since the first call, on a monotonic clock (never 0 at a first fault: the
/// limiter's initial state lets it through).
pub(crate) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_the_count_of_the_rest() {
        let log = FaultLog::default();
        let gap = INTERVAL.as_millis() as u64;
        assert_eq!(log.admit(FaultKind::Trap, 5), Some(0));
        for t in 6..1000 {
            assert_eq!(log.admit(FaultKind::Trap, t), None);
        }
        // Another kind has its own line.
        assert_eq!(log.admit(FaultKind::Timeout, 10), Some(0));
        assert_eq!(log.admit(FaultKind::Trap, 5 + gap - 1), None);
        assert_eq!(log.admit(FaultKind::Trap, 5 + gap), Some(995));
        assert_eq!(log.admit(FaultKind::Trap, 6 + gap), None);
    }
}
