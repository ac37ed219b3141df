//! What is counted when a reply goes out to its client: the command's errors, the keys a
//! retrieval found and missed, the bytes written, and each route node's replies and latency
//! (`stats routes`).
//!
//! A request's [`Tally`] is made when it is dispatched and queued beside its reply; the
//! connection's writer hands both to [`WorkerStats::settled`] when the reply is in. It is 16
//! bytes, copied, never allocated: the route nodes the request passed through (the first
//! [`TRAIL_NODES`] of them), the command, the keys it looked up and when it was dispatched on
//! the worker's clock.

use std::cell::Cell;

use switchyard_protocol::{Command, ReplyStatus, values};

use super::WorkerStats;
use crate::reply::Settled;

/// Route nodes a request's tally remembers; nodes past them (deep trees, many keys of a
/// multi-get going different ways) are counted in their plugin's `calls` only.
pub const TRAIL_NODES: usize = 3;

/// Bits of `mark` that hold how many nodes are in use.
const LEN_BITS: u8 = 2;

/// What one request's reply is counted as when it goes out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// When the request was dispatched, microseconds on the worker's clock (wrapping; 0 when
    /// timings are off).
    started_us: u32,
    /// Keys a classic retrieval looked up (0 for any other command), and [`IN_FLIGHT`].
    keys: u32,
    /// The route nodes it passed through, by index in its generation.
    nodes: [u16; TRAIL_NODES],
    /// Nodes in use (the low two bits) and the generation's number modulo 64 (the rest): a
    /// node index means something only in the generation it was noted in.
    mark: u8,
    /// The command, if the request was understood.
    command: Option<Command>,
}

/// The bit of [`Tally`]'s `keys` that says it counts among its tenant's requests in flight
/// (`max_outstanding`) until its reply goes out: a tally is queued beside every reply, and
/// no request has 2^31 keys.
const IN_FLIGHT: u32 = 1 << 31;

impl Tally {
    /// A request that was not understood (a malformed line): only its bytes and any error
    /// are counted.
    pub const UNPARSED: Tally = Tally {
        started_us: 0,
        keys: 0,
        nodes: [0; TRAIL_NODES],
        mark: 0,
        command: None,
    };

    /// A request of `command` answered without a route (`version`, `stats`, ...).
    pub fn local(command: Command) -> Tally {
        Tally {
            command: Some(command),
            ..Tally::UNPARSED
        }
    }

    /// The command.
    pub fn command(&self) -> Option<Command> {
        self.command
    }

    /// The nodes noted, in the order the request reached them.
    pub fn nodes(&self) -> &[u16] {
        let len = usize::from(self.mark & ((1 << LEN_BITS) - 1));
        &self.nodes[..len.min(TRAIL_NODES)]
    }

    /// Whether its nodes belong to the generation numbered `number`.
    pub fn of_generation(&self, number: u64) -> bool {
        self.mark >> LEN_BITS == generation_tag(number)
    }

    /// Whether it counts among its tenant's requests in flight until its reply goes out.
    pub fn in_flight(&self) -> bool {
        self.keys & IN_FLIGHT != 0
    }

    /// Counts it among its tenant's requests in flight.
    pub fn mark_in_flight(&mut self) {
        self.keys |= IN_FLIGHT;
    }

    /// When it was dispatched (see [`Tally::started_us`]).
    pub fn started_us(&self) -> u32 {
        self.started_us
    }
}

fn generation_tag(number: u64) -> u8 {
    (number % (1 << (8 - LEN_BITS))) as u8
}

/// The route nodes a request reaches while it is dispatched, noted by `resolve` on the
/// worker's generation. Not noted: background sends (their nodes did not make the client's
/// reply) and the steps of a `call` continued after the request was dispatched.
#[derive(Debug, Default)]
pub struct Trail {
    nodes: Cell<[u16; TRAIL_NODES]>,
    len: Cell<u8>,
    paused: Cell<bool>,
}

impl Trail {
    /// Starts a request's trail.
    pub fn start(&self) {
        self.len.set(0);
        self.paused.set(false);
    }

    /// The request reached node `n`.
    pub fn note(&self, n: usize) {
        let len = usize::from(self.len.get());
        if self.paused.get() || len >= TRAIL_NODES {
            return;
        }
        let Ok(n) = u16::try_from(n) else {
            return;
        };
        let mut nodes = self.nodes.get();
        if nodes[..len].contains(&n) {
            return;
        }
        nodes[len] = n;
        self.nodes.set(nodes);
        self.len.set(len as u8 + 1);
    }

    /// Stops noting until [`Trail::resume`] (around background sends).
    pub fn pause(&self) -> bool {
        self.paused.replace(true)
    }

    /// Notes again if it did before the matching [`Trail::pause`] (which returned `was`).
    pub fn resume(&self, was: bool) {
        self.paused.set(was);
    }

    /// The tally of the request whose trail this is: `command`, looking up `keys` keys (a
    /// classic retrieval's), dispatched at `started_us`, in generation `generation`. The trail
    /// is then empty.
    pub fn take(&self, command: Command, keys: u32, started_us: u32, generation: u64) -> Tally {
        let len = self.len.replace(0);
        Tally {
            started_us,
            keys: keys.min(IN_FLIGHT - 1),
            nodes: self.nodes.get(),
            mark: generation_tag(generation) << LEN_BITS | len,
            command: Some(command),
        }
    }
}

/// What a settled reply adds to its command's counts: hits and misses of a retrieval, and
/// whether it is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Keys found.
    pub hits: u64,
    /// Keys not found.
    pub misses: u64,
    /// The reply is an error (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`).
    pub error: bool,
}

/// How `settled`, the reply to a request tallied as `tally`, counts.
pub(crate) fn count(tally: &Tally, settled: &Settled) -> Counted {
    let status = settled.status();
    let error = matches!(
        status,
        ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
    );
    let (mut hits, mut misses) = (0, 0);
    if !error && tally.command.is_some_and(Command::is_retrieval) {
        let keys = u64::from(tally.keys & !IN_FLIGHT);
        hits = match settled {
            // A value each, and `END`; a namespaced tenant's value is three (`VALUE `, the
            // client's key, the rest), of which only the first starts so.
            Settled::Chunks(chunks) => {
                chunks.iter().filter(|c| c.starts_with(b"VALUE ")).count() as u64
            }
            Settled::Streaming(..) => 1,
            Settled::Whole(_) if status == ReplyStatus::Hit && keys == 1 => 1,
            Settled::Whole(outcome) if status == ReplyStatus::Hit => {
                values(&outcome.frame).count() as u64
            }
            Settled::Whole(_) | Settled::Hidden => 0,
        };
        hits = hits.min(keys);
        misses = keys - hits;
    }
    Counted {
        hits,
        misses,
        error,
    }
}

impl WorkerStats {
    /// Counts the reply to a request tallied as `tally` going out to its client, as
    /// [`count`] made it: its command's hits, misses and errors. (Bytes are counted as they
    /// are written, route nodes by the caller, which knows the generation.)
    pub(crate) fn settled(&self, tally: &Tally, counted: &Counted) {
        if counted.hits != 0 {
            self.get_hits.add(counted.hits);
        }
        if counted.misses != 0 {
            self.get_misses.add(counted.misses);
        }
        if counted.error
            && let Some(command) = tally.command
        {
            self.command_errors[command.index()].inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Outcome;
    use bytes::Bytes;

    #[test]
    fn a_tally_is_sixteen_bytes() {
        // It is queued beside every reply, the oldest of them inline in each connection.
        assert_eq!(std::mem::size_of::<Tally>(), 16);
    }

    #[test]
    fn a_trail_keeps_the_first_nodes_once_each_and_none_while_paused() {
        let trail = Trail::default();
        trail.start();
        trail.note(4);
        trail.note(4);
        let was = trail.pause();
        trail.note(9);
        trail.resume(was);
        trail.note(2);
        trail.note(7);
        trail.note(8);
        let tally = trail.take(Command::Get, 1, 5, 70);
        assert_eq!(tally.nodes(), &[4, 2, 7]);
        assert!(tally.of_generation(70));
        assert!(tally.of_generation(6));
        assert!(!tally.of_generation(71));
        assert_eq!(trail.take(Command::Get, 1, 5, 70).nodes(), &[] as &[u16]);
    }

    #[test]
    fn hits_and_misses_come_from_the_values_in_the_reply() {
        let whole = |frame: &'static [u8], status| {
            Settled::Whole(Outcome {
                frame: Bytes::from_static(frame),
                status,
            })
        };
        let get = |keys| Tally {
            keys,
            command: Some(Command::Get),
            ..Tally::UNPARSED
        };
        let two = b"VALUE a 0 1\r\nx\r\nVALUE c 0 2\r\nyy\r\nEND\r\n";
        let counted = count(&get(3), &whole(two, ReplyStatus::Hit));
        assert_eq!((counted.hits, counted.misses, counted.error), (2, 1, false));
        let counted = count(&get(1), &whole(b"END\r\n", ReplyStatus::Miss));
        assert_eq!((counted.hits, counted.misses), (0, 1));
        let chunks = Settled::Chunks(vec![
            Bytes::from_static(b"VALUE a 0 1\r\nx\r\n"),
            Bytes::from_static(b"END\r\n"),
        ]);
        assert_eq!(count(&get(4), &chunks).hits, 1);
        assert_eq!(count(&get(4), &chunks).misses, 3);
        // A namespaced tenant's value comes in three pieces.
        let namespaced = Settled::Chunks(vec![
            Bytes::from_static(b"VALUE "),
            Bytes::from_static(b"a"),
            Bytes::from_static(b" 0 1\r\nx\r\n"),
            Bytes::from_static(b"END\r\n"),
        ]);
        assert_eq!(count(&get(2), &namespaced).hits, 1);
        assert_eq!(count(&get(2), &namespaced).misses, 1);
        let failed = count(
            &get(2),
            &whole(b"SERVER_ERROR down\r\n", ReplyStatus::ServerError),
        );
        assert_eq!((failed.hits, failed.misses, failed.error), (0, 0, true));
        let set = Tally::local(Command::Set);
        let stored = count(&set, &whole(b"STORED\r\n", ReplyStatus::Stored));
        assert_eq!((stored.hits, stored.misses, stored.error), (0, 0, false));
    }
}
