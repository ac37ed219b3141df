//! The flag tokens of `mg ms md ma`, read as memcached's `_meta_flag_preparse` reads them.
//!
//! A flag is a token's first byte; the rest of the token is its argument, if it takes one.
//! memcached knows one set of flags for all four commands (an `mg` may carry an `ms`-only flag,
//! which it then ignores): `b N T R l O P L k s t c f v h u q F C M J D I`. It reads them in
//! order and:
//! - stops at once at a flag seen before, or whose first byte is not ASCII
//!   (`CLIENT_ERROR duplicate flag`), or at a flag it does not know (`CLIENT_ERROR invalid
//!   flag`);
//! - otherwise notes a bad argument and reads on: the reply is then that of the last bad
//!   argument (`N T R C`: bad token; `M`: incorrect length; `J`: initial value; `D`: delta;
//!   `b`: the key does not decode), except that a bad `F` says `CLIENT_ERROR bad command line
//!   format` only if no other argument was bad.
//!
//! Arguments are numbers read as memcached reads them (see `number.rs`); `O P L` take anything.

use std::ops::Range;

use super::super::{Line, number};
use crate::base64;
use crate::replies;

/// The most tokens memcached reads on an `mg ms md ma` line, command and key included; more is
/// `CLIENT_ERROR options flags (are) too long`.
pub(super) const MAX_TOKENS: usize = 19;

/// The longest `O` token memcached copies back, its `O` included.
const MAX_OPAQUE_TOKEN: usize = 32;

/// What the flags say. Ranges index the parsed buffer.
#[derive(Debug, Default)]
pub(super) struct Flags {
    /// From the first flag token's start to the last one's end.
    pub(super) span: Range<usize>,
    /// `b`.
    pub(super) base64: bool,
    /// `q`, with the spaces before it.
    pub(super) quiet_span: Option<Range<usize>>,
    /// The whole `O` token.
    pub(super) opaque: Option<Range<usize>>,
    /// `M`'s character.
    pub(super) mode: Option<u8>,
    /// `T`.
    pub(super) ttl: Option<i32>,
    /// `F`.
    pub(super) client_flags: Option<u32>,
    /// `C`.
    pub(super) cas: Option<u64>,
    /// `D`.
    pub(super) delta: Option<u64>,
}

impl Flags {
    /// An `O` token memcached refuses to copy back (it says so once it has looked the key up).
    pub(super) fn opaque_too_long(&self) -> bool {
        self.opaque
            .as_ref()
            .is_some_and(|o| o.len() > MAX_OPAQUE_TOKEN)
    }
}

/// Reads the flags of `line` from token `first` on (the caller checked there are at most
/// [`MAX_TOKENS`] tokens); `Err` with what memcached answers.
pub(super) fn read(line: &Line<'_>, first: usize) -> Result<Flags, &'static [u8]> {
    let tokens = &line.tokens;
    let count = tokens.len();
    let mut flags = Flags {
        span: if first < count {
            tokens.span(first).start..tokens.span(count - 1).end
        } else {
            line.range.end..line.range.end
        },
        ..Flags::default()
    };
    let mut seen = 0u128;
    let mut failed = false;
    let mut reply = replies::BAD_FORMAT;
    for i in first..count {
        let token = tokens.get(i);
        let Some((&flag, arg)) = token.split_first() else {
            continue;
        };
        if flag >= 127 || seen & (1 << flag) != 0 {
            return Err(replies::DUPLICATE_FLAG);
        }
        seen |= 1 << flag;
        let mut fail = |why: &'static [u8]| {
            failed = true;
            reply = why;
        };
        match flag {
            b'b' => {
                flags.base64 = true;
                if base64::decoded_len(tokens.get(1)).is_none() {
                    fail(replies::BAD_KEY_ENCODING);
                }
            }
            b'N' | b'R' => {
                if number::strtol32(arg).is_none() {
                    fail(replies::BAD_TOKEN);
                }
            }
            b'T' => match number::strtol32(arg) {
                Some(ttl) => flags.ttl = Some(ttl),
                None => fail(replies::BAD_TOKEN),
            },
            b'C' => match number::strtoull(arg) {
                Some(cas) => flags.cas = Some(cas),
                None => fail(replies::BAD_TOKEN),
            },
            b'F' => match number::strtoul32(arg) {
                Some(client_flags) => flags.client_flags = Some(client_flags),
                None => failed = true,
            },
            b'M' => match arg {
                &[mode] => flags.mode = Some(mode),
                _ => fail(replies::BAD_MODE_LENGTH),
            },
            b'J' => {
                if number::strtoull(arg).is_none() {
                    fail(replies::BAD_INITIAL);
                }
            }
            b'D' => match number::strtoull(arg) {
                Some(delta) => flags.delta = Some(delta),
                None => fail(replies::BAD_META_DELTA),
            },
            b'O' => flags.opaque = Some(tokens.span(i)),
            // The flag before it always exists: flags start after the key.
            b'q' => flags.quiet_span = Some(tokens.span(i - 1).end..tokens.span(i).end),
            b'I' | b'L' | b'P' | b'c' | b'f' | b'h' | b'k' | b'l' | b's' | b't' | b'u' | b'v' => {}
            _ => return Err(replies::INVALID_FLAG),
        }
    }
    if failed { Err(reply) } else { Ok(flags) }
}

#[cfg(test)]
mod tests {
    use super::super::super::{Line, Tokens};
    use super::*;

    /// Reads the flags of `line`, a whole `mg` line without its `\r\n`.
    fn flags(line: &[u8]) -> Result<Flags, &'static [u8]> {
        let range = 0..line.len();
        let line = Line {
            buf: line,
            tokens: Tokens::split(line, range.clone()),
            range,
            consumed: line.len() + 2,
        };
        read(&line, 2)
    }

    fn ok(line: &[u8]) -> Flags {
        match flags(line) {
            Ok(f) => f,
            Err(reply) => panic!("{line:?}: {}", String::from_utf8_lossy(reply)),
        }
    }

    fn error(line: &[u8]) -> &'static [u8] {
        match flags(line) {
            Err(reply) => reply,
            Ok(f) => panic!("{line:?}: {f:?}"),
        }
    }

    #[test]
    fn every_flag_memcached_knows_is_accepted_by_every_command() {
        let f = ok(b"mg YQ== b== N1 T2 R3 l O4 P5 L6 k s t c f v h u q F7 C8");
        assert!(f.base64);
        assert_eq!((f.ttl, f.client_flags, f.cas), (Some(2), Some(7), Some(8)));
        let f = ok(b"mg k M+ J9 D10 I");
        assert_eq!((f.mode, f.delta), (Some(b'+'), Some(10)));
    }

    #[test]
    fn the_span_runs_from_the_first_flag_to_the_last() {
        assert_eq!(ok(b"mg k  v  k ").span, 6..10);
        assert_eq!(ok(b"mg k").span, 4..4);
    }

    #[test]
    fn q_is_cut_with_the_spaces_before_it() {
        let line = b"mg k v  q k";
        let q = ok(line).quiet_span.expect("q");
        assert_eq!(&line[q], b"  q");
        assert_eq!(ok(b"mg k v").quiet_span, None);
    }

    #[test]
    fn only_the_first_byte_names_a_flag() {
        // "vx" is v; "q\t" is q; "O" alone is an empty opaque.
        let f = ok(b"mg k vx q\t O");
        assert_eq!(f.opaque, Some(11..12));
        assert!(f.quiet_span.is_some());
    }

    #[test]
    fn a_flag_twice_or_not_ascii_is_a_duplicate() {
        assert_eq!(error(b"mg k v v"), replies::DUPLICATE_FLAG);
        assert_eq!(error(b"mg k O1 O2"), replies::DUPLICATE_FLAG);
        assert_eq!(error(b"mg k \x7f"), replies::DUPLICATE_FLAG);
        assert_eq!(error(b"mg k \xff"), replies::DUPLICATE_FLAG);
    }

    #[test]
    fn an_unknown_flag_is_invalid() {
        for line in [
            &b"mg k Z"[..],
            b"mg k S1",
            b"mg k E5",
            b"mg k x",
            b"mg k \x01",
            b"mg k ~",
        ] {
            assert_eq!(error(line), replies::INVALID_FLAG, "{line:?}");
        }
    }

    #[test]
    fn duplicates_and_unknown_flags_stop_the_reading_at_once() {
        assert_eq!(error(b"mg k Nx v v"), replies::DUPLICATE_FLAG);
        assert_eq!(error(b"mg k Nx Z"), replies::INVALID_FLAG);
        assert_eq!(error(b"mg k Z v v"), replies::INVALID_FLAG);
    }

    #[test]
    fn a_bad_argument_says_which() {
        for (line, reply) in [
            (&b"mg k Nx"[..], replies::BAD_TOKEN),
            (b"mg k T", replies::BAD_TOKEN),
            (b"mg k R1.5", replies::BAD_TOKEN),
            (b"mg k C-1", replies::BAD_TOKEN),
            (b"mg k M", replies::BAD_MODE_LENGTH),
            (b"mg k MEE", replies::BAD_MODE_LENGTH),
            (b"mg k Jx", replies::BAD_INITIAL),
            (b"mg k D18446744073709551616", replies::BAD_META_DELTA),
            (b"mg k Fx", replies::BAD_FORMAT),
            (b"mg k F-1", replies::BAD_FORMAT),
            (b"mg a b", replies::BAD_KEY_ENCODING),
        ] {
            assert_eq!(error(line), reply, "{line:?}");
        }
    }

    #[test]
    fn the_last_bad_argument_is_the_one_reported_but_a_bad_f_yields() {
        assert_eq!(error(b"mg k Nx Jx"), replies::BAD_INITIAL);
        assert_eq!(error(b"mg k Jx Nx"), replies::BAD_TOKEN);
        assert_eq!(error(b"mg k Fx Nx"), replies::BAD_TOKEN);
        assert_eq!(error(b"mg k Nx Fx"), replies::BAD_TOKEN);
    }

    #[test]
    fn numbers_are_read_like_memcached_does() {
        let f = ok(b"mg k T4294967297 F4294967296 C-18446744073709551615");
        assert_eq!((f.ttl, f.client_flags, f.cas), (Some(1), Some(0), Some(1)));
        assert_eq!(ok(b"mg k T-1\tjunk").ttl, Some(-1));
    }

    #[test]
    fn an_opaque_token_may_have_32_bytes_with_its_o() {
        let fits = format!("mg k O{}", "1".repeat(31));
        assert!(!ok(fits.as_bytes()).opaque_too_long());
        let long = format!("mg k O{}", "1".repeat(32));
        assert!(ok(long.as_bytes()).opaque_too_long());
    }
}
