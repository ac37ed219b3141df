//! A shadow's findings: each sampled request that reaches the node is also sent to the
//! candidate in the background (`execute/experiments.rs`; never delaying or changing the
//! client's reply, and within `server.max_background`), and the two replies are compared by
//! [`Summary`]: status, flags, and a hash of the value, so that no value is held past its
//! reply. Mismatches are counted by kind, and the newest few kept as samples with both sides'
//! statuses.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use switchyard_protocol::{ReplyStatus, values};
use switchyard_sdk::Op;

use crate::reply::Outcome;
use crate::stats::{Counter, Histogram, Snapshot};

/// Ops counted apart by `agreement_by_command` (the ABI's op codes are below this; the rest
/// count as code 0).
const OPS: usize = 20;

/// What one side answered, without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The reply's status.
    pub status: ReplyStatus,
    /// The first value's client flags, for a `VALUE` hit.
    pub flags: Option<u32>,
    /// A hash of what the reply says: the values' data of a `VALUE` or `VA` hit, the whole
    /// reply of a number (or another hit); 0 for the rest, whose status says it all.
    pub value: u64,
}

impl Summary {
    /// The summary of `outcome`.
    pub fn of(outcome: &Outcome) -> Summary {
        let frame = &outcome.frame;
        let (flags, value) = match outcome.status {
            ReplyStatus::Hit if frame.starts_with(b"VALUE ") => {
                let mut hash = FNV_OFFSET;
                let mut flags = None;
                for v in values(frame) {
                    // The first value's flags are compared apart; a later one's with its data.
                    if flags.is_some() {
                        hash = fnv(hash, &v.flags.to_le_bytes());
                    }
                    flags.get_or_insert(v.flags);
                    hash = fnv(hash, &frame[v.data]);
                }
                (flags, hash)
            }
            // A meta hit: its data, and its `f` flag; the rest of its flags (a CAS unique, a
            // TTL left, an opaque) differ between healthy servers and are not compared.
            ReplyStatus::Hit if frame.starts_with(b"VA ") || frame.starts_with(b"HD") => {
                let head_end = frame
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .unwrap_or(frame.len());
                let head = &frame[..head_end];
                let flags = head
                    .split(|&b| b == b' ')
                    .skip(1)
                    .find_map(|t| t.strip_prefix(b"f"))
                    .and_then(|f| std::str::from_utf8(f).ok()?.parse().ok());
                let data = frame
                    .get(head_end + 2..frame.len().saturating_sub(2))
                    .unwrap_or_default();
                let value = if frame.starts_with(b"VA ") {
                    fnv(FNV_OFFSET, data)
                } else {
                    0
                };
                (flags, value)
            }
            ReplyStatus::Hit | ReplyStatus::Number => (None, fnv(FNV_OFFSET, frame)),
            _ => (None, 0),
        };
        Summary {
            status: outcome.status,
            flags,
            value,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// How two replies to one request differ, the first way found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Different statuses (a hit and a miss, stored and an error).
    Status,
    /// The same status, different values.
    Value,
    /// The same status and value, different client flags.
    Flags,
}

impl Mismatch {
    /// Its name in stats and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mismatch::Status => "status",
            Mismatch::Value => "value",
            Mismatch::Flags => "flags",
        }
    }

    /// How `live` and `candidate` differ, if they do.
    pub fn between(live: &Summary, candidate: &Summary) -> Option<Mismatch> {
        if live.status != candidate.status {
            Some(Mismatch::Status)
        } else if live.value != candidate.value {
            Some(Mismatch::Value)
        } else if live.flags != candidate.flags {
            Some(Mismatch::Flags)
        } else {
            None
        }
    }
}

/// A request whose replies differed, kept as a sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When (seconds since the epoch).
    pub at: u64,
    /// The command.
    pub op: Op,
    /// The key as the node saw it (lossy UTF-8).
    pub key: String,
    /// How they differed.
    pub mismatch: Mismatch,
    /// The node's status.
    pub live: ReplyStatus,
    /// The candidate's.
    pub candidate: ReplyStatus,
}

/// What a shadow found.
#[derive(Debug)]
pub struct Comparison {
    /// Requests whose two replies were compared.
    compared: Counter,
    /// Of those, replies that said the same.
    agreed: Counter,
    /// Compared and agreed, by op code.
    by_op: [(Counter, Counter); OPS],
    /// Mismatches by kind: status, value, flags.
    mismatches: [Counter; 3],
    /// The candidate's error replies.
    candidate_errors: Counter,
    /// Copies not sent: over the background limit.
    dropped: Counter,
    /// Copies whose node reply never came (the client's connection closed first).
    unanswered: Counter,
    /// Time to each side's reply, from when the request was sent.
    live_time: Histogram,
    candidate_time: Histogram,
    /// The newest mismatches, at most `keep`.
    samples: Mutex<VecDeque<Sample>>,
    keep: usize,
}

impl Comparison {
    /// Findings keeping `keep` samples.
    pub fn new(keep: usize) -> Comparison {
        Comparison {
            compared: Counter::default(),
            agreed: Counter::default(),
            by_op: Default::default(),
            mismatches: Default::default(),
            candidate_errors: Counter::default(),
            dropped: Counter::default(),
            unanswered: Counter::default(),
            live_time: Histogram::default(),
            candidate_time: Histogram::default(),
            samples: Mutex::new(VecDeque::with_capacity(keep.min(64))),
            keep,
        }
    }

    /// Counts one compared request of `op` on `key`: each side's summary and time.
    pub fn record(
        &self,
        op: Op,
        key: &[u8],
        live: (Summary, Duration),
        candidate: (Summary, Duration),
    ) {
        self.compared.inc();
        let (op_compared, op_agreed) = &self.by_op[op_index(op)];
        op_compared.inc();
        self.live_time.record(live.1);
        self.candidate_time.record(candidate.1);
        if matches!(
            candidate.0.status,
            ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
        ) {
            self.candidate_errors.inc();
        }
        let Some(mismatch) = Mismatch::between(&live.0, &candidate.0) else {
            self.agreed.inc();
            op_agreed.inc();
            return;
        };
        self.mismatches[mismatch as usize].inc();
        if self.keep == 0 {
            return;
        }
        let sample = Sample {
            at: super::unix_now(),
            op,
            key: String::from_utf8_lossy(key).into_owned(),
            mismatch,
            live: live.0.status,
            candidate: candidate.0.status,
        };
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() == self.keep {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Counts a copy not sent for the background limit.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    /// Counts a copy whose node reply never came.
    pub fn unanswered(&self) {
        self.unanswered.inc();
    }

    /// Requests compared, and of those mismatched.
    pub fn totals(&self) -> (u64, u64) {
        let compared = self.compared.get();
        (compared, compared.saturating_sub(self.agreed.get()))
    }

    /// Mismatches by kind.
    pub fn mismatches(&self) -> [(Mismatch, u64); 3] {
        [Mismatch::Status, Mismatch::Value, Mismatch::Flags]
            .map(|m| (m, self.mismatches[m as usize].get()))
    }

    /// (candidate errors, copies dropped, copies unanswered).
    pub fn other_counts(&self) -> (u64, u64, u64) {
        (
            self.candidate_errors.get(),
            self.dropped.get(),
            self.unanswered.get(),
        )
    }

    /// Compared and agreed for each command that was compared.
    pub fn by_command(&self) -> Vec<(&'static str, u64, u64)> {
        self.by_op
            .iter()
            .enumerate()
            .filter(|(_, (c, _))| c.get() > 0)
            .map(|(i, (c, a))| {
                let name = Op::from_code(i as u32).name().unwrap_or("other");
                (name, c.get(), a.get())
            })
            .collect()
    }

    /// Each side's reply times: (live, candidate).
    pub fn times(&self) -> (Snapshot, Snapshot) {
        (
            Snapshot::of(std::iter::once(&self.live_time)),
            Snapshot::of(std::iter::once(&self.candidate_time)),
        )
    }

    /// The kept samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.iter().cloned().collect()
    }
}

/// Where `op` is counted in `by_op`.
fn op_index(op: Op) -> usize {
    let code = op.code() as usize;
    if code < OPS && op.name().is_some() {
        code
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn outcome(frame: &'static str, status: ReplyStatus) -> Outcome {
        Outcome {
            frame: Bytes::from_static(frame.as_bytes()),
            status,
        }
    }

    #[test]
    fn summaries_differ_by_status_then_value_then_flags() {
        let hit = |f| Summary::of(&outcome(f, ReplyStatus::Hit));
        let a = hit("VALUE a 1 2 10\r\nhi\r\nEND\r\n");
        // CAS uniques are not compared.
        assert_eq!(
            Mismatch::between(&a, &hit("VALUE a 1 2 99\r\nhi\r\nEND\r\n")),
            None
        );
        assert_eq!(
            Mismatch::between(&a, &hit("VALUE a 2 2\r\nhi\r\nEND\r\n")),
            Some(Mismatch::Flags)
        );
        assert_eq!(
            Mismatch::between(&a, &hit("VALUE a 1 2\r\nho\r\nEND\r\n")),
            Some(Mismatch::Value)
        );
        let miss = Summary::of(&outcome("END\r\n", ReplyStatus::Miss));
        assert_eq!(Mismatch::between(&a, &miss), Some(Mismatch::Status));
        // A meta hit's CAS unique and TTL are not compared; its data and `f` flag are.
        let meta = |f| Summary::of(&outcome(f, ReplyStatus::Hit));
        let m = meta("VA 2 c11 t-1 f5\r\nhi\r\n");
        assert_eq!(
            Mismatch::between(&m, &meta("VA 2 c99 t30 f5\r\nhi\r\n")),
            None
        );
        assert_eq!(
            Mismatch::between(&m, &meta("VA 2 c11 t-1 f5\r\nho\r\n")),
            Some(Mismatch::Value)
        );
        assert_eq!(
            Mismatch::between(&m, &meta("VA 2 c11 t-1 f6\r\nhi\r\n")),
            Some(Mismatch::Flags)
        );
        let number = |f| Summary::of(&outcome(f, ReplyStatus::Number));
        assert_eq!(
            Mismatch::between(&number("3\r\n"), &number("4\r\n")),
            Some(Mismatch::Value)
        );
    }

    #[test]
    fn a_comparison_keeps_the_newest_samples_and_counts_by_command() {
        let c = Comparison::new(2);
        let hit = Summary::of(&outcome("VALUE k 0 1\r\nx\r\nEND\r\n", ReplyStatus::Hit));
        let miss = Summary::of(&outcome("END\r\n", ReplyStatus::Miss));
        let t = Duration::from_micros(100);
        for i in 0..5 {
            let key = format!("k{i}");
            c.record(Op::Get, key.as_bytes(), (hit, t), (miss, t));
        }
        c.record(Op::Set, b"s", (hit, t), (hit, t));
        assert_eq!(c.totals(), (6, 5));
        let keys: Vec<String> = c.samples().into_iter().map(|s| s.key).collect();
        assert_eq!(keys, ["k3", "k4"]);
        assert_eq!(c.by_command(), [("get", 5, 0), ("set", 1, 1)]);
        assert_eq!(c.mismatches()[0], (Mismatch::Status, 5));
    }
}
