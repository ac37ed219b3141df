//! What a client connection does with its input, minus the I/O: which bytes at the front of
//! its buffer form the next request, which must be dropped unread (the rest of a refused data
//! block, memcached's "swallow"), and when the input can no longer be framed.
//!
//! The connection owns the buffer and the socket; it asks [`Framer::next`] what the front of
//! the buffer holds and takes what the answer says. Property tests feed a [`Framer`] input in
//! pieces (`tests/properties.rs`, `fuzz/invariants/request.rs`) and check it frames the same
//! requests as input fed whole.
//!
//! A connection whose first byte is `0x80` speaks memcached's binary protocol, which the router
//! does not serve. memcached started with `-B ascii` reads such bytes as a text line: it waits
//! for a newline (a binary request rarely has one, so the client hangs) and then answers
//! `ERROR`. The framer gives that answer at once and closes ([`Parsed::Close`]), so a binary
//! client learns at its first request that it has the wrong protocol instead of hanging. A
//! first byte `0x16` is a TLS client's handshake ([`Framed::TlsHello`]): the connection closes
//! at once, where memcached would wait for a newline.

use crate::limits::Limits;
use crate::replies;
use crate::request::{Parsed, parse_request};

/// The magic byte that starts every memcached binary-protocol request.
pub const BINARY_REQUEST_MAGIC: u8 = 0x80;

/// The byte that starts a TLS handshake record: a connection that opens with it is a TLS
/// client (its `ClientHello`) on a listener that does not speak TLS. No text command starts
/// with this control character.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// One connection's framing state. Every client connection holds one for life, idle or not,
/// so it is kept small: 40 bytes.
#[derive(Debug, Clone)]
pub struct Framer {
    limits: PackedLimits,
    /// Bytes still to drop as they arrive: the rest of a refused data block.
    discard: usize,
    /// The request at the front cannot be passed on as it arrives (see [`Framer::hold_whole`]):
    /// parse it whole.
    whole: bool,
    /// Some input has been seen (its first byte told the protocol).
    started: bool,
}

/// [`Limits`] in 24 bytes rather than 40: a length limit past `u32::MAX` (4 GiB) means no
/// limit, as `usize::MAX` does.
#[derive(Debug, Clone, Copy)]
struct PackedLimits {
    max_key_len: u32,
    max_value_len: u32,
    max_line_len: u32,
    line_cap: u32,
    stream_from: usize,
}

impl PackedLimits {
    fn pack(limits: &Limits) -> PackedLimits {
        let pack = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        PackedLimits {
            max_key_len: pack(limits.max_key_len),
            max_value_len: pack(limits.max_value_len),
            max_line_len: pack(limits.max_line_len),
            line_cap: pack(limits.line_cap),
            stream_from: limits.stream_from,
        }
    }

    fn unpack(self) -> Limits {
        let unpack = |n: u32| match n {
            u32::MAX => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        Limits {
            max_key_len: unpack(self.max_key_len),
            max_value_len: unpack(self.max_value_len),
            max_line_len: unpack(self.max_line_len),
            line_cap: unpack(self.line_cap),
            stream_from: self.stream_from,
        }
    }
}

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per request and taken apart at once, never stored; boxing would allocate per request"
)]
pub enum Framed {
    /// Nothing complete: read more.
    Incomplete,
    /// Drop this many bytes from the front of the buffer (part of a refused data block), then
    /// ask again.
    Discard(usize),
    /// The connection's first byte starts a TLS handshake: a TLS client on a plaintext
    /// listener. Nothing can answer it (it cannot read a text reply); the connection closes.
    TlsHello,
    /// The parser's outcome for the request at the front. The caller takes the bytes it says it
    /// consumed; a [`Parsed::Swallow`]'s data block then comes back as [`Framed::Discard`]s,
    /// however it arrives. A [`Parsed::Stream`] is the caller's to pass on, hold whole
    /// ([`Framer::hold_whole`]) or refuse ([`Framer::refuse_stream`]).
    Parsed(Parsed),
}

impl Framer {
    /// A framer for a connection with these limits.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits: PackedLimits::pack(&limits),
            discard: 0,
            whole: false,
            started: false,
        }
    }

    /// What the front of `buf` (the connection's unparsed input) holds.
    pub fn next(&mut self, buf: &[u8]) -> Framed {
        if !self.started {
            let Some(&first) = buf.first() else {
                return Framed::Incomplete;
            };
            self.started = true;
            if first == BINARY_REQUEST_MAGIC {
                return Framed::Parsed(Parsed::Close {
                    reply: Some(replies::ERROR),
                });
            }
            if first == TLS_HANDSHAKE_RECORD {
                return Framed::TlsHello;
            }
        }
        if self.discard > 0 {
            if buf.is_empty() {
                return Framed::Incomplete;
            }
            let n = self.discard.min(buf.len());
            self.discard -= n;
            return Framed::Discard(n);
        }
        let mut limits = self.limits.unpack();
        if self.whole {
            limits.stream_from = usize::MAX;
        }
        let parsed = parse_request(buf, &limits);
        match parsed {
            Parsed::Incomplete => Framed::Incomplete,
            parsed => {
                self.whole = false;
                if let Parsed::Swallow { discard, .. } = parsed {
                    self.discard = discard;
                }
                Framed::Parsed(parsed)
            }
        }
    }

    /// The [`Parsed::Stream`] just returned will not be passed on as it arrives: it stays in
    /// the buffer, and comes back as a whole [`Parsed::Request`] once its data is in.
    pub fn hold_whole(&mut self) {
        self.whole = true;
    }

    /// The [`Parsed::Stream`] just returned was answered without its data: the caller takes
    /// its `line`, and its data block (`block` bytes) comes back as [`Framed::Discard`]s.
    pub fn refuse_stream(&mut self, block: usize) {
        self.discard = block;
    }

    /// Bytes of a refused data block still to come.
    pub fn discarding(&self) -> usize {
        self.discard
    }

    /// Whether `buffered` bytes of incomplete input are more than any request may take (a line
    /// at the cap and the largest value): the parser refuses long lines itself
    /// ([`Limits::line_cap`]), so only a bug gets here, and the connection should be closed.
    pub fn overflows(&self, buffered: usize) -> bool {
        let limits = self.limits.unpack();
        buffered
            > limits
                .line_cap
                .saturating_add(limits.max_value_len)
                .saturating_add(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Limits {
        Limits {
            max_value_len: 4,
            stream_from: 3,
            ..Limits::default()
        }
    }

    #[test]
    fn a_framer_is_small_and_keeps_its_limits() {
        assert!(std::mem::size_of::<Framer>() <= 40);
        for limits in [Limits::default(), tiny()] {
            assert_eq!(PackedLimits::pack(&limits).unpack(), limits);
        }
        let unlimited = Limits {
            max_value_len: usize::MAX,
            line_cap: 5 << 30,
            ..Limits::default()
        };
        let unpacked = PackedLimits::pack(&unlimited).unpack();
        assert_eq!(
            (unpacked.max_value_len, unpacked.line_cap),
            (usize::MAX, usize::MAX)
        );
    }

    #[test]
    fn a_refused_data_block_is_discarded_however_it_arrives() {
        let mut framer = Framer::new(tiny());
        let input = b"set k 0 0 10\r\n0123456789\r\nget k\r\n";
        let Framed::Parsed(Parsed::Swallow { consumed, .. }) = framer.next(input) else {
            panic!("a value over max_value_len is swallowed");
        };
        let mut rest = &input[consumed..];
        assert_eq!(framer.discarding(), 12);
        // Three bytes now, the rest later.
        assert_eq!(framer.next(&rest[..3]), Framed::Discard(3));
        assert_eq!(framer.next(&[]), Framed::Incomplete);
        rest = &rest[3..];
        assert_eq!(framer.next(rest), Framed::Discard(9));
        rest = &rest[9..];
        assert!(matches!(
            framer.next(rest),
            Framed::Parsed(Parsed::Request { consumed: 7, .. })
        ));
    }

    #[test]
    fn a_held_stream_comes_back_whole() {
        let mut framer = Framer::new(tiny());
        let input = b"set k 0 0 4\r\nab";
        assert!(matches!(
            framer.next(input),
            Framed::Parsed(Parsed::Stream { block: 6, .. })
        ));
        framer.hold_whole();
        assert_eq!(framer.next(input), Framed::Incomplete);
        assert!(matches!(
            framer.next(b"set k 0 0 4\r\nabcd\r\n"),
            Framed::Parsed(Parsed::Request { consumed: 19, .. })
        ));
        // The next long value may stream again.
        assert!(matches!(
            framer.next(input),
            Framed::Parsed(Parsed::Stream { .. })
        ));
    }

    #[test]
    fn a_refused_stream_discards_its_block() {
        let mut framer = Framer::new(tiny());
        let Framed::Parsed(Parsed::Stream { line, block, .. }) = framer.next(b"set k 0 0 4\r\nab")
        else {
            panic!("stream");
        };
        framer.refuse_stream(block);
        assert_eq!(line, 13);
        assert_eq!(framer.next(b"ab"), Framed::Discard(2));
        assert_eq!(framer.next(b"cd\r\nget k\r\n"), Framed::Discard(4));
    }

    #[test]
    fn a_binary_protocol_client_is_answered_error_and_closed() {
        let mut framer = Framer::new(tiny());
        assert_eq!(framer.next(b""), Framed::Incomplete);
        // A binary `get` header, no newline anywhere.
        let request = [0x80, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3];
        assert_eq!(
            framer.next(&request),
            Framed::Parsed(Parsed::Close {
                reply: Some(replies::ERROR)
            })
        );
        // Only the first byte of a connection tells: later, 0x80 starts an unknown command.
        let mut framer = Framer::new(Limits::default());
        assert!(matches!(
            framer.next(b"version\r\n"),
            Framed::Parsed(Parsed::Request { consumed: 9, .. })
        ));
        assert!(matches!(
            framer.next(b"\x80x\r\n"),
            Framed::Parsed(Parsed::Invalid { .. })
        ));
    }

    #[test]
    fn a_line_over_the_cap_is_refused_whether_or_not_its_newline_came() {
        let limits = Limits {
            line_cap: 64,
            ..Limits::default()
        };
        let mut line = b"get".to_vec();
        while line.len() < 70 {
            line.extend_from_slice(b" k");
        }
        let refused = Framed::Parsed(Parsed::Close {
            reply: Some(replies::LINE_TOO_LONG),
        });
        assert_eq!(Framer::new(limits).next(&line), refused);
        line.extend_from_slice(b"\r\n");
        assert_eq!(Framer::new(limits).next(&line), refused);
    }

    #[test]
    fn only_more_than_a_value_and_a_long_get_line_overflows() {
        let framer = Framer::new(tiny());
        let cap = Limits::default().line_cap;
        assert!(!framer.overflows(cap + 4 + 2));
        assert!(framer.overflows(cap + 5 + 2));
    }
}
