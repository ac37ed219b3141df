//! A canary's rollout: the keys in the first fraction of the hash space (a key stays on one
//! side) are routed through the candidate instead of the node; the fraction grows step by step
//! (`steps`, each lasting `step_seconds` at least). Each step, the candidate's requests are
//! compared with as many of the node's, the keys next to them on the hash (the node's other
//! requests cost nothing to measure): once both sides have answered `min_requests`, a
//! candidate whose error rate is more than `max_error_rate_increase` above the node's, or whose
//! p99 is more than `max_p99_ratio` times the node's (and a millisecond more: less is no
//! signal on any network), is rolled back at once: no key goes to it any more. A candidate that
//! stays within the bounds for a whole step moves to the next; after the last (or on reaching
//! every key, when the node has no side left to compare with) it is done.
//!
//! The judging is done by whichever request finds it due (one at a time, a few times a
//! second), so a rollout moves with traffic: with none, there is nothing to judge it by.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{PPM, key_point};
use crate::config::CanaryConfig;
use crate::stats::{Counter, Histogram, Snapshot};

/// How often a step is judged, at most.
const JUDGE_EVERY: Duration = Duration::from_millis(100);

/// A p99 this much above the node's is noise, whatever the ratio.
const P99_SLACK: Duration = Duration::from_millis(1);

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Growing, at one of its steps.
    Ramping,
    /// At its last step, for good.
    Done,
    /// Undone: every key on the node.
    RolledBack,
}

impl Stage {
    /// Its name in stats and reports.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Ramping => "ramping",
            Stage::Done => "done",
            Stage::RolledBack => "rolled-back",
        }
    }
}

/// Which side a request was measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The node.
    Live = 0,
    /// The candidate.
    Candidate = 1,
}

/// One side's counts (cumulative; a step judges what came since it began).
#[derive(Debug, Default)]
struct Counts {
    requests: Counter,
    errors: Counter,
    time: Histogram,
}

/// A side's counts at the start of the step.
#[derive(Debug, Clone, Default)]
struct Mark {
    requests: u64,
    errors: u64,
    time: Snapshot,
}

/// The step being judged.
#[derive(Debug)]
struct Step {
    /// When it began.
    began: Instant,
    /// Each side's counts then.
    marks: [Mark; 2],
}

/// A canary's rollout.
#[derive(Debug)]
pub struct Rollout {
    config: CanaryConfig,
    /// Index into `config.steps`.
    step: AtomicUsize,
    /// The fraction of keys on the candidate, in parts per million (0 once rolled back).
    fraction_ppm: AtomicU64,
    stage: AtomicU8,
    sides: [Counts; 2],
    /// When the next judging is due, in microseconds since `origin`.
    next_judging: AtomicU64,
    origin: Instant,
    current: Mutex<Step>,
    /// Why it was rolled back.
    reason: Mutex<Option<String>>,
}

impl Rollout {
    /// A rollout at its first step.
    pub fn new(config: CanaryConfig) -> Rollout {
        let first = config.steps.first().copied().unwrap_or(0.0);
        let origin = Instant::now();
        Rollout {
            step: AtomicUsize::new(0),
            fraction_ppm: AtomicU64::new(ppm(first)),
            // A single step of every key has nothing left to compare with.
            stage: AtomicU8::new(if first >= 1.0 {
                Stage::Done as u8
            } else {
                Stage::Ramping as u8
            }),
            sides: Default::default(),
            next_judging: AtomicU64::new(0),
            origin,
            current: Mutex::new(Step {
                began: origin,
                marks: Default::default(),
            }),
            reason: Mutex::new(None),
            config,
        }
    }

    /// Whether `key`'s requests go to the candidate, and if not, whether they are measured as
    /// the node's side of the comparison: the keys just past the candidate's, as many.
    pub fn side_of(&self, key: &[u8]) -> Option<Side> {
        let fraction = self.fraction_ppm.load(Ordering::Relaxed);
        if fraction == 0 {
            return None;
        }
        let at = key_point(key);
        if at < fraction {
            Some(Side::Candidate)
        } else if at < fraction.saturating_mul(2) {
            Some(Side::Live)
        } else {
            None
        }
    }

    /// Counts a reply on `side` that took `took`, and judges the step when that is due.
    pub fn record(&self, side: Side, error: bool, took: Duration) {
        let counts = &self.sides[side as usize];
        counts.requests.inc();
        if error {
            counts.errors.inc();
        }
        counts.time.record(took);
        if self.stage() != Stage::Ramping {
            return;
        }
        let now = self.origin.elapsed().as_micros() as u64;
        let due = self.next_judging.load(Ordering::Relaxed);
        if now >= due
            && self
                .next_judging
                .compare_exchange(
                    due,
                    now + JUDGE_EVERY.as_micros() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            self.judge();
        }
    }

    /// Judges the current step: rolls back, moves on, or waits.
    fn judge(&self) {
        let mut step = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if self.stage() != Stage::Ramping {
            return;
        }
        let [live, candidate] = [Side::Live, Side::Candidate].map(|s| self.since(s, &step));
        let min = self.config.min_requests;
        if live.requests >= min && candidate.requests >= min {
            if let Some(reason) = self.worse(&live, &candidate) {
                self.fraction_ppm.store(0, Ordering::Relaxed);
                self.stage.store(Stage::RolledBack as u8, Ordering::Relaxed);
                tracing::warn!(
                    step = self.step.load(Ordering::Relaxed) + 1,
                    reason = %reason,
                    "canary rolled back: every key goes to the node again"
                );
                *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                return;
            }
            if step.began.elapsed() >= self.config.step {
                let next = self.step.load(Ordering::Relaxed) + 1;
                let Some(&fraction) = self.config.steps.get(next) else {
                    // The last step has lasted its time within the bounds.
                    self.stage.store(Stage::Done as u8, Ordering::Relaxed);
                    tracing::info!("canary done: it stays at its last step");
                    return;
                };
                self.step.store(next, Ordering::Relaxed);
                self.fraction_ppm.store(ppm(fraction), Ordering::Relaxed);
                // At every key there is no node's side left to judge by.
                if fraction >= 1.0 {
                    self.stage.store(Stage::Done as u8, Ordering::Relaxed);
                }
                tracing::info!(step = next + 1, fraction, "canary moves to its next step");
                *step = Step {
                    began: Instant::now(),
                    marks: [Side::Live, Side::Candidate].map(|s| self.mark(s)),
                };
            }
        }
    }

    /// Why `candidate` did worse than `live` by more than the bounds allow, if it did.
    fn worse(&self, live: &Mark, candidate: &Mark) -> Option<String> {
        let rate = |m: &Mark| m.errors as f64 / m.requests.max(1) as f64;
        let (live_rate, candidate_rate) = (rate(live), rate(candidate));
        if candidate_rate - live_rate > self.config.max_error_rate_increase {
            return Some(format!(
                "the candidate's error rate {:.2}% passed the node's {:.2}% by more than {:.2} \
                 points ({} of {} requests)",
                100.0 * candidate_rate,
                100.0 * live_rate,
                100.0 * self.config.max_error_rate_increase,
                candidate.errors,
                candidate.requests
            ));
        }
        let (live_p99, candidate_p99) = (
            live.time.quantile_us(0.99),
            candidate.time.quantile_us(0.99),
        );
        let bound = (live_p99 as f64 * self.config.max_p99_ratio)
            .max((live_p99 + P99_SLACK.as_micros() as u64) as f64);
        if candidate_p99 as f64 > bound {
            return Some(format!(
                "the candidate's p99 {candidate_p99}us passed {:.1} times the node's {live_p99}us",
                self.config.max_p99_ratio
            ));
        }
        None
    }

    /// `side`'s counts now.
    fn mark(&self, side: Side) -> Mark {
        let c = &self.sides[side as usize];
        Mark {
            requests: c.requests.get(),
            errors: c.errors.get(),
            time: Snapshot::of(std::iter::once(&c.time)),
        }
    }

    /// `side`'s counts since the step began.
    fn since(&self, side: Side, step: &Step) -> Mark {
        let now = self.mark(side);
        let then = &step.marks[side as usize];
        Mark {
            requests: now.requests.saturating_sub(then.requests),
            errors: now.errors.saturating_sub(then.errors),
            time: now.time.minus(&then.time),
        }
    }

    /// Starts the current step's time and counts afresh: when the canary is started, what
    /// came before is no evidence.
    pub fn restart_step(&self) {
        let mut step = self.current.lock().unwrap_or_else(|e| e.into_inner());
        *step = Step {
            began: Instant::now(),
            marks: [Side::Live, Side::Candidate].map(|s| self.mark(s)),
        };
    }

    /// Where it stands.
    pub fn stage(&self) -> Stage {
        match self.stage.load(Ordering::Relaxed) {
            0 => Stage::Ramping,
            1 => Stage::Done,
            _ => Stage::RolledBack,
        }
    }

    /// The step it is at (from 1), and how many there are.
    pub fn step(&self) -> (usize, usize) {
        (
            self.step.load(Ordering::Relaxed) + 1,
            self.config.steps.len(),
        )
    }

    /// The fraction of keys on the candidate now.
    pub fn fraction(&self) -> f64 {
        self.fraction_ppm.load(Ordering::Relaxed) as f64 / PPM as f64
    }

    /// Why it was rolled back.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// `side`'s requests, errors and reply times, in all.
    pub fn side(&self, side: Side) -> (u64, u64, Snapshot) {
        let m = self.mark(side);
        (m.requests, m.errors, m.time)
    }

    /// The candidate's requests and errors, in all.
    pub fn candidate_totals(&self) -> (u64, u64) {
        let c = &self.sides[Side::Candidate as usize];
        (c.requests.get(), c.errors.get())
    }
}

/// `fraction` in parts per million.
fn ppm(fraction: f64) -> u64 {
    (fraction.clamp(0.0, 1.0) * PPM as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(steps: &[f64]) -> Rollout {
        Rollout::new(CanaryConfig {
            steps: steps.to_vec(),
            step: Duration::ZERO,
            min_requests: 10,
            max_error_rate_increase: 0.01,
            max_p99_ratio: 2.0,
        })
    }

    fn feed(r: &Rollout, side: Side, n: usize, error: bool) {
        for _ in 0..n {
            r.record(side, error, Duration::from_micros(200));
        }
    }

    /// Waits out the judging interval and records once more, so the step is judged.
    fn judge_now(r: &Rollout) {
        r.next_judging.store(0, Ordering::Relaxed);
        r.judge();
    }

    #[test]
    fn a_healthy_canary_ramps_to_its_last_step() {
        let r = rollout(&[0.1, 0.5, 1.0]);
        assert_eq!((r.stage(), r.fraction()), (Stage::Ramping, 0.1));
        for expected in [0.5, 1.0] {
            feed(&r, Side::Live, 10, false);
            feed(&r, Side::Candidate, 10, false);
            judge_now(&r);
            assert_eq!(r.fraction(), expected);
        }
        assert_eq!(r.stage(), Stage::Done);
    }

    #[test]
    fn a_canary_with_more_errors_is_rolled_back_and_sends_no_key() {
        let r = rollout(&[0.5, 1.0]);
        feed(&r, Side::Live, 10, false);
        feed(&r, Side::Candidate, 9, false);
        feed(&r, Side::Candidate, 1, true);
        judge_now(&r);
        assert_eq!(r.stage(), Stage::RolledBack);
        assert!(r.reason().is_some_and(|w| w.contains("error rate")));
        assert!((0..100).all(|i| r.side_of(format!("k{i}").as_bytes()).is_none()));
    }

    #[test]
    fn a_last_step_short_of_every_key_is_judged_too() {
        let r = rollout(&[0.1, 0.5]);
        feed(&r, Side::Live, 10, false);
        feed(&r, Side::Candidate, 10, false);
        judge_now(&r);
        assert_eq!((r.stage(), r.fraction()), (Stage::Ramping, 0.5));
        feed(&r, Side::Live, 10, false);
        feed(&r, Side::Candidate, 10, true);
        judge_now(&r);
        assert_eq!(r.stage(), Stage::RolledBack);
        let single = rollout(&[0.2]);
        feed(&single, Side::Live, 10, false);
        feed(&single, Side::Candidate, 10, false);
        judge_now(&single);
        assert_eq!((single.stage(), single.fraction()), (Stage::Done, 0.2));
    }

    #[test]
    fn a_step_waits_for_min_requests_on_both_sides() {
        let r = rollout(&[0.5, 1.0]);
        feed(&r, Side::Candidate, 50, true);
        judge_now(&r);
        assert_eq!(r.stage(), Stage::Ramping);
    }

    #[test]
    fn keys_stick_to_a_side_and_the_live_side_is_as_large() {
        let r = rollout(&[0.25, 1.0]);
        let sides: Vec<Option<Side>> = (0..10_000)
            .map(|i| r.side_of(format!("key:{i}").as_bytes()))
            .collect();
        let count = |s| sides.iter().filter(|x| **x == Some(s)).count();
        let (candidate, live) = (count(Side::Candidate), count(Side::Live));
        assert!((2200..2800).contains(&candidate), "{candidate}");
        assert!((2200..2800).contains(&live), "{live}");
        assert_eq!(r.side_of(b"key:7"), sides[7]);
    }
}
