//! What a run measured: one [`Recorder`] per worker thread, shared by that thread's
//! connections, merged at the end.
//!
//! Only replies that arrive inside the measurement window (after the warmup, before the end)
//! count as requests, in the latency histograms and in the byte counts; errors are counted over
//! the whole run, warmup included, so that none goes unseen.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::reply::{ErrorReply, Reply};
use crate::workload::Op;

/// The longest latency a histogram holds: longer ones are recorded as this. An hour is beyond
/// any run this tool makes.
const HISTOGRAM_MAX_NS: u64 = 3_600_000_000_000;

/// Significant figures the histograms keep: three digits (0.1%) at any magnitude.
const HISTOGRAM_SIGFIG: u8 = 3;

/// What can go wrong, one counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// An `ERROR` reply.
    Error,
    /// A `CLIENT_ERROR ...` reply.
    ClientError,
    /// A `SERVER_ERROR ...` reply.
    ServerError,
    /// Bytes that are not an answer to the request in flight; the connection is reopened.
    Malformed,
    /// The server closed the connection.
    Closed,
    /// A read or a write failed.
    Io,
    /// Requests in flight and no byte received for `--timeout`; the connection is reopened.
    Timeout,
    /// Reopening a connection failed.
    Connect,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Error,
        ErrorKind::ClientError,
        ErrorKind::ServerError,
        ErrorKind::Malformed,
        ErrorKind::Closed,
        ErrorKind::Io,
        ErrorKind::Timeout,
        ErrorKind::Connect,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Error => "error",
            ErrorKind::ClientError => "client_error",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Closed => "closed",
            ErrorKind::Io => "io",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<ErrorReply> for ErrorKind {
    fn from(reply: ErrorReply) -> Self {
        match reply {
            ErrorReply::Error => ErrorKind::Error,
            ErrorReply::ClientError => ErrorKind::ClientError,
            ErrorReply::ServerError => ErrorKind::ServerError,
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_NS, HISTOGRAM_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Counters and histograms (latencies in nanoseconds).
#[derive(Debug)]
pub struct Recorder {
    /// Replies arriving in `from..to` are recorded; `None`: all are (prefill).
    window: Option<(Instant, Instant)>,
    /// Successful replies, by [`Op::index`].
    pub requests: [u64; 3],
    /// Their latencies, by [`Op::index`].
    pub latency: [Histogram<u64>; 3],
    /// Open loop: how late each request was written, after its scheduled time.
    pub lag: Histogram<u64>,
    /// Keys found and not found by `get`s and multi-gets.
    pub hits: u64,
    pub misses: u64,
    /// By [`ErrorKind`].
    pub errors: [u64; 8],
    /// The first error, in words.
    pub error_sample: Option<String>,
    /// Requests in flight on a connection that had to be reopened: never answered.
    pub lost: u64,
    /// Requests written and not answered when the run ended.
    pub in_flight_at_end: u64,
    /// Open loop: requests scheduled before the end and never written.
    pub backlog_at_end: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

impl Recorder {
    pub fn new(window: Option<(Instant, Instant)>) -> Self {
        Self {
            window,
            requests: [0; 3],
            latency: [histogram(), histogram(), histogram()],
            lag: histogram(),
            hits: 0,
            misses: 0,
            errors: [0; 8],
            error_sample: None,
            lost: 0,
            in_flight_at_end: 0,
            backlog_at_end: 0,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }

    pub fn in_window(&self, at: Instant) -> bool {
        self.window.is_none_or(|(from, to)| from <= at && at < to)
    }

    /// A reply to `op`, sent (or scheduled) at `start`, complete at `now`; `error_line` is
    /// what a [`Reply::Failed`] said.
    pub fn reply(&mut self, op: Op, start: Instant, now: Instant, reply: Reply, error_line: &str) {
        let (hits, misses) = match reply {
            Reply::Failed(error) => {
                self.error(error.into(), || {
                    format!("reply to a {}: {error_line}", op.name())
                });
                return;
            }
            Reply::Stored => (0, 0),
            Reply::Values { hits, misses } => (hits, misses),
        };
        if !self.in_window(now) {
            return;
        }
        self.requests[op.index()] += 1;
        self.latency[op.index()].saturating_record(nanos(now.saturating_duration_since(start)));
        self.hits += u64::from(hits);
        self.misses += u64::from(misses);
    }

    /// Open loop: a request scheduled at `scheduled` was written at `now`.
    pub fn lag(&mut self, scheduled: Instant, now: Instant) {
        if self.in_window(now) {
            self.lag
                .saturating_record(nanos(now.saturating_duration_since(scheduled)));
        }
    }

    pub fn sent(&mut self, bytes: usize, now: Instant) {
        if self.in_window(now) {
            self.bytes_sent += bytes as u64;
        }
    }

    pub fn received(&mut self, bytes: usize, now: Instant) {
        if self.in_window(now) {
            self.bytes_received += bytes as u64;
        }
    }

    /// Counts an error; `describe` says what happened, and is called only for the first.
    pub fn error(&mut self, kind: ErrorKind, describe: impl FnOnce() -> String) {
        self.errors[kind.index()] += 1;
        if self.error_sample.is_none() {
            self.error_sample = Some(describe());
        }
    }

    pub fn error_count(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn total_requests(&self) -> u64 {
        self.requests.iter().sum()
    }

    /// The latencies of every operation together.
    pub fn all_latencies(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = histogram();
        for h in &self.latency {
            all.add(h)?;
        }
        Ok(all)
    }

    /// Adds `other`'s counts to these (the first error sample wins).
    pub fn merge(&mut self, other: &Recorder) -> anyhow::Result<()> {
        for op in Op::ALL {
            let i = op.index();
            self.requests[i] += other.requests[i];
            self.latency[i].add(&other.latency[i])?;
        }
        self.lag.add(&other.lag)?;
        self.hits += other.hits;
        self.misses += other.misses;
        for (mine, theirs) in self.errors.iter_mut().zip(other.errors) {
            *mine += theirs;
        }
        if self.error_sample.is_none() {
            self.error_sample.clone_from(&other.error_sample);
        }
        self.lost += other.lost;
        self.in_flight_at_end += other.in_flight_at_end;
        self.backlog_at_end += other.backlog_at_end;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        Ok(())
    }
}

/// A duration in whole nanoseconds, at least 1 (the histograms' floor).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_replies_inside_the_window_count_but_every_error_does() {
        let t0 = Instant::now();
        let (from, to) = (t0 + Duration::from_secs(1), t0 + Duration::from_secs(2));
        let mut rec = Recorder::new(Some((from, to)));
        let hit = Reply::Values { hits: 1, misses: 0 };
        rec.reply(Op::Get, t0, t0 + Duration::from_millis(500), hit, "");
        rec.reply(Op::Get, from, from + Duration::from_micros(250), hit, "");
        rec.reply(Op::Get, to, to, hit, "");
        let failed = Reply::Failed(ErrorReply::ServerError);
        rec.reply(Op::Set, t0, t0, failed, "SERVER_ERROR out of memory");
        assert_eq!(rec.requests, [1, 0, 0]);
        assert_eq!((rec.hits, rec.misses), (1, 0));
        assert_eq!(
            rec.latency[0].max(),
            rec.latency[0].highest_equivalent(250_000)
        );
        assert_eq!(rec.error_count(ErrorKind::ServerError), 1);
        assert_eq!(
            rec.error_sample.as_deref(),
            Some("reply to a set: SERVER_ERROR out of memory")
        );
    }

    #[test]
    fn merge_adds_up() {
        let now = Instant::now();
        let mut a = Recorder::new(None);
        let mut b = Recorder::new(None);
        a.reply(Op::Mget, now, now, Reply::Values { hits: 3, misses: 7 }, "");
        b.reply(Op::Mget, now, now, Reply::Values { hits: 1, misses: 9 }, "");
        b.error(ErrorKind::Timeout, || "late".into());
        a.merge(&b).expect("same bounds");
        assert_eq!(a.requests, [0, 0, 2]);
        assert_eq!((a.hits, a.misses), (4, 16));
        assert_eq!(a.total_errors(), 1);
        assert_eq!(a.error_sample.as_deref(), Some("late"));
        assert_eq!(a.all_latencies().expect("same bounds").len(), 2);
    }
}
