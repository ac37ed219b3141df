//! One connection's requests in flight and its buffers, without the socket: requests are
//! written into an output buffer the socket drains, replies are read from an input buffer the
//! socket fills, and each is matched, in order, with the request it answers.

use std::time::Instant;

use crate::reply::{Expect, Malformed, Progress, ReplyReader, malformed};
use crate::rng::Rng;
use crate::stats::Recorder;
use crate::workload::{Next, Op, Workload};

/// Bytes a connection reads at most at once. Replies stream through it (a value is consumed as
/// it arrives), so it bounds a connection's input memory whatever the value size; it must hold
/// a whole reply line ([`crate::reply::MAX_LINE`]) with room to spare.
pub const READ_BUFFER: usize = 64 * 1024;

/// Output bytes already written, past which they are dropped from the front of the buffer
/// before more are added (smaller amounts wait until the whole buffer has been written).
const COMPACT_AFTER: usize = 64 * 1024;

/// A request in flight.
#[derive(Debug)]
struct Slot {
    op: Op,
    /// Whence its latency counts: when it was written (closed loop), or when it was scheduled
    /// to be (open loop).
    start: Instant,
    /// The keys a get asked for, in order; empty for a set.
    keys: Vec<u32>,
}

#[derive(Debug)]
pub struct Pipeline {
    input: Box<[u8]>,
    /// `input[read..filled]` are received bytes not yet consumed.
    read: usize,
    filled: usize,
    output: Vec<u8>,
    /// `output[..written]` are on the socket already.
    written: usize,
    /// A ring of slots: `in_flight` of them from `head`, oldest first.
    slots: Vec<Slot>,
    head: usize,
    in_flight: usize,
    reader: ReplyReader,
}

impl Pipeline {
    /// Room for `depth` requests in flight (at least one).
    pub fn new(depth: usize, workload: &Workload) -> Self {
        let slots = (0..depth.max(1))
            .map(|_| Slot {
                op: Op::Get,
                start: Instant::now(),
                keys: Vec::with_capacity(workload.mget_keys),
            })
            .collect();
        Self {
            input: vec![0; READ_BUFFER].into_boxed_slice(),
            read: 0,
            filled: 0,
            output: Vec::new(),
            written: 0,
            slots,
            head: 0,
            in_flight: 0,
            reader: ReplyReader::new(workload.keys),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Adds the next request, counting its latency from `start`; false if every slot is taken.
    pub fn push(&mut self, workload: &Workload, next: Next, rng: &mut Rng, start: Instant) -> bool {
        if self.in_flight == self.slots.len() {
            return false;
        }
        if self.written >= COMPACT_AFTER && self.written * 2 >= self.output.len() {
            self.output.drain(..self.written);
            self.written = 0;
        }
        let index = (self.head + self.in_flight) % self.slots.len();
        let slot = &mut self.slots[index];
        slot.op = workload.write(next, rng, &mut slot.keys, &mut self.output);
        slot.start = start;
        self.in_flight += 1;
        true
    }

    /// Where the socket reads into, and what it has to write.
    pub fn buffers(&mut self) -> (&mut [u8], &[u8]) {
        (&mut self.input[self.filled..], &self.output[self.written..])
    }

    /// The socket wrote `n` bytes of the output.
    pub fn wrote(&mut self, n: usize) {
        self.written = (self.written + n).min(self.output.len());
        if self.written == self.output.len() {
            self.output.clear();
            self.written = 0;
        }
    }

    /// The socket read `n` bytes into the input at `now`: completes the replies they end,
    /// recording each in `rec`.
    pub fn received(
        &mut self,
        n: usize,
        now: Instant,
        rec: &mut Recorder,
    ) -> Result<(), Malformed> {
        self.filled = (self.filled + n).min(self.input.len());
        while self.read < self.filled {
            if self.in_flight == 0 {
                return Err(malformed(
                    "bytes received with no request in flight",
                    &self.input[self.read..self.filled],
                ));
            }
            let slot = &self.slots[self.head];
            let expect = match slot.op {
                Op::Set => Expect::Stored,
                Op::Get | Op::Mget => Expect::Values(&slot.keys),
            };
            let (used, progress) = self
                .reader
                .parse(&self.input[self.read..self.filled], expect)?;
            self.read += used;
            match progress {
                Progress::Incomplete => break,
                Progress::Complete(reply) => {
                    rec.reply(slot.op, slot.start, now, reply, self.reader.error_line());
                    self.head = (self.head + 1) % self.slots.len();
                    self.in_flight -= 1;
                }
            }
        }
        if self.read == self.filled {
            self.read = 0;
            self.filled = 0;
        } else if self.filled == self.input.len() {
            // What is left is the start of a line, shorter than MAX_LINE: move it to the front.
            self.input.copy_within(self.read..self.filled, 0);
            self.filled -= self.read;
            self.read = 0;
        }
        Ok(())
    }

    /// Drops everything in flight and in the buffers (the connection is being reopened);
    /// returns how many requests go unanswered.
    pub fn reset(&mut self) -> usize {
        let lost = self.in_flight;
        self.read = 0;
        self.filled = 0;
        self.output.clear();
        self.written = 0;
        self.head = 0;
        self.in_flight = 0;
        self.reader.reset();
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeySpace;
    use crate::workload::{Mix, SizeRange};

    fn workload(weights: [u32; 3], size: usize) -> Workload {
        Workload::new(
            KeySpace::new(10),
            Mix { weights },
            SizeRange {
                min: size,
                max: size,
            },
            3,
        )
    }

    /// Delivers `bytes` to the pipeline `piece` at a time, as a socket would.
    fn deliver(
        p: &mut Pipeline,
        bytes: &[u8],
        piece: usize,
        rec: &mut Recorder,
    ) -> Result<(), Malformed> {
        for chunk in bytes.chunks(piece) {
            let (space, _) = p.buffers();
            space[..chunk.len()].copy_from_slice(chunk);
            p.received(chunk.len(), Instant::now(), rec)?;
        }
        Ok(())
    }

    #[test]
    fn replies_are_matched_to_requests_in_order() {
        let w = workload([1, 1, 0], 2);
        let mut p = Pipeline::new(4, &w);
        let mut rng = Rng::new(1);
        for _ in 0..4 {
            assert!(p.push(&w, Next::SetKey(3), &mut rng, Instant::now()));
        }
        assert!(
            !p.push(&w, Next::SetKey(3), &mut rng, Instant::now()),
            "full"
        );
        let (_, out) = p.buffers();
        assert_eq!(out, b"set key:3 0 0 2\r\nab\r\n".repeat(4));
        let n = out.len();
        p.wrote(n);
        assert!(p.buffers().1.is_empty());

        let mut rec = Recorder::new(None);
        deliver(&mut p, &b"STORED\r\n".repeat(3), 5, &mut rec).expect("well-formed");
        assert_eq!((p.in_flight(), rec.requests), (1, [0, 3, 0]));
        let error =
            deliver(&mut p, b"STORED\r\nSTORED\r\n", 100, &mut rec).expect_err("one too many");
        assert_eq!(error.reason, "bytes received with no request in flight");
    }

    #[test]
    fn a_long_stream_of_large_replies_passes_through_the_fixed_buffer() {
        let w = workload([1, 0, 0], 1);
        let mut p = Pipeline::new(2, &w);
        let mut rng = Rng::new(2);
        let mut rec = Recorder::new(None);
        let value = vec![b'x'; 200_000];
        for _ in 0..10 {
            assert!(p.push(&w, Next::Drawn, &mut rng, Instant::now()));
            let line = p.buffers().1.to_vec();
            p.wrote(line.len());
            let key = &line[4..line.len() - 2];
            let mut reply = format!(
                "VALUE {} 0 {}\r\n",
                String::from_utf8_lossy(key),
                value.len()
            )
            .into_bytes();
            reply.extend_from_slice(&value);
            reply.extend_from_slice(b"\r\nEND\r\n");
            deliver(&mut p, &reply, 4_000, &mut rec).expect("well-formed");
        }
        assert_eq!((rec.requests[0], rec.hits, rec.misses), (10, 10, 0));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn reset_forgets_what_was_in_flight() {
        let w = workload([1, 0, 0], 1);
        let mut p = Pipeline::new(3, &w);
        let mut rng = Rng::new(3);
        for _ in 0..3 {
            p.push(&w, Next::Drawn, &mut rng, Instant::now());
        }
        assert_eq!(p.reset(), 3);
        assert_eq!(p.in_flight(), 0);
        assert!(p.buffers().1.is_empty());
        assert_eq!(p.capacity(), 3);
    }
}
