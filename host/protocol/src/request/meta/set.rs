//! `ms <key> <datalen> <flag>*`, followed by a data block of `<datalen>` bytes and `\r\n`.
//!
//! What memcached drops on an error depends on how far it got. It checks, in this order:
//! 1. at least a key (`ERROR`);
//! 2. the key's length, as sent (`CLIENT_ERROR bad command line format`);
//! 3. a data length token (`CLIENT_ERROR bad command line format`);
//! 4. at most 19 tokens (`CLIENT_ERROR options flags too long`);
//! 5. the data length, a number from 0 to 2^31 - 3 (`CLIENT_ERROR bad command line format`).
//!
//! Those errors drop only the line: the data block is then read as commands. Past them,
//! memcached knows how long the data is and swallows it whatever else is wrong:
//! 6. the flags (what is wrong with them, as for `mg`);
//! 7. the mode (`CLIENT_ERROR invalid mode for ms M token`), which comes before
//! 8. an `O` token over 32 bytes (`CLIENT_ERROR opaque token too long`);
//! 9. a value over the size limit (`SERVER_ERROR object too large for cache`), which also
//!    deletes the key's old value, in every mode (an add or append too), by its decoded bytes
//!    for a base64 key.
//!
//! Then it reads exactly `<datalen>` + 2 bytes and answers `CLIENT_ERROR bad data chunk` if
//! they do not end in `\r\n`. No error is hushed by `q`, which hushes only `HD`.

use super::super::storage::data_len;
use super::super::{Command, Line, Parsed};
use super::flags;
use crate::limits::Limits;
use crate::replies;

/// Parses an `ms` and waits for its data block.
pub(super) fn parse(line: &Line<'_>, limits: &Limits) -> Parsed {
    if let Some(refused) = super::refuse_key_or_count(line, limits, replies::META_TOO_LONG) {
        return refused;
    }
    let tokens = &line.tokens;
    if tokens.len() == 2 {
        return line.error(replies::BAD_FORMAT);
    }
    let Some(len) = data_len(tokens.get(2)) else {
        return line.error(replies::BAD_FORMAT);
    };
    let refuse = |reply: &'static [u8]| line.swallow(len, Some(reply), None, false);
    let flags = match flags::read(line, 3) {
        Ok(flags) => flags,
        Err(reply) => return refuse(reply),
    };
    if !matches!(flags.mode, None | Some(b'E' | b'A' | b'P' | b'R' | b'S')) {
        return refuse(replies::BAD_SET_MODE);
    }
    if flags.opaque_too_long() {
        return refuse(replies::OPAQUE_TOO_LONG);
    }
    if len > limits.max_value_len {
        let key = tokens.span(1);
        return line.swallow(len, Some(replies::TOO_LARGE), Some(key), flags.base64);
    }
    line.with_data(
        super::request(line, Command::MetaSet, &flags),
        len,
        false,
        limits,
    )
}

#[cfg(test)]
mod tests {
    use crate::request::test_support::{parse, request};
    use crate::{Command, Limits, Parsed, parse_request, replies};

    fn invalid(reply: &'static [u8], consumed: usize) -> Parsed {
        Parsed::Invalid {
            reply: Some(reply),
            consumed,
        }
    }

    fn swallow(reply: &'static [u8], line: &[u8], discard: usize) -> Parsed {
        deleting(reply, line, discard, None, false)
    }

    fn deleting(
        reply: &'static [u8],
        line: &[u8],
        discard: usize,
        delete: Option<std::ops::Range<usize>>,
        delete_base64: bool,
    ) -> Parsed {
        Parsed::Swallow {
            reply: Some(reply),
            consumed: line.len(),
            discard,
            delete,
            delete_base64,
        }
    }

    #[test]
    fn ms_reads_its_key_length_flags_and_data() {
        let buf = b"ms k 3 T-1 F5 C9 MA q k O7\r\na\r\n\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::MetaSet);
        assert_eq!(&buf[r.key.clone()], b"k");
        assert_eq!(&buf[r.value.clone()], b"a\r\n");
        assert_eq!(&buf[r.data_block()], b"a\r\n\r\n");
        assert_eq!(&buf[r.meta_flags.clone()], b"T-1 F5 C9 MA q k O7");
        assert_eq!((r.exptime, r.flags, r.cas, r.mode), (-1, 5, 9, Some(b'A')));
        assert_eq!(&buf[r.opaque.clone().expect("opaque")], b"7");
        assert!(r.quiet && !r.noreply);
        let [first, second] = r.forwarded_pieces();
        assert_eq!(
            [&buf[first], &buf[second]],
            [&b"ms k 3 T-1 F5 C9 MA"[..], b" k O7"]
        );
    }

    #[test]
    fn ms_needs_no_flags_and_reads_its_length_like_set() {
        assert_eq!(request(b"ms k 0\r\n\r\n").value, 8..8);
        for buf in [
            &b"ms k 01\r\nx\r\n"[..],
            b"ms k +1\nx\r\n",
            b"ms k 1\tjunk\r\nx\r\n",
            b"ms k 4294967297\r\nx\r\n",
        ] {
            assert_eq!(request(buf).value.len(), 1, "{buf:?}");
        }
    }

    #[test]
    fn every_mode_is_accepted() {
        for mode in [b'E', b'A', b'P', b'R', b'S'] {
            let buf = [&b"ms k 1 M"[..], &[mode], b"\r\nx\r\n"].concat();
            assert_eq!(request(&buf).mode, Some(mode));
        }
    }

    #[test]
    fn errors_before_the_length_is_known_drop_only_the_line() {
        let long = format!("ms {} 1\r\n", "k".repeat(251));
        let many = format!("ms k 1{}\r\n", " v".repeat(17));
        let many_without_length = format!("ms k{}\r\n", " v".repeat(18));
        for (line, reply) in [
            (&b"ms k\r\n"[..], replies::BAD_FORMAT),
            (long.as_bytes(), replies::BAD_FORMAT),
            (b"ms k x\r\n", replies::BAD_FORMAT),
            (b"ms k S1\r\n", replies::BAD_FORMAT),
            (b"ms k 0x1\r\n", replies::BAD_FORMAT),
            (b"ms k -1 q\r\n", replies::BAD_FORMAT),
            (b"ms k 2147483646\r\n", replies::BAD_FORMAT),
            (many.as_bytes(), replies::META_TOO_LONG),
            (many_without_length.as_bytes(), replies::META_TOO_LONG),
        ] {
            let buf = [line, b"x\r\n"].concat();
            assert_eq!(parse(&buf), invalid(reply, line.len()), "{line:?}");
        }
        // 19 tokens get as far as the flags.
        let just_fits = format!("ms k 1{}\r\n", " v".repeat(16));
        let just_fits = just_fits.as_bytes();
        assert_eq!(
            parse(just_fits),
            swallow(replies::DUPLICATE_FLAG, just_fits, 3)
        );
    }

    #[test]
    fn errors_once_the_length_is_known_swallow_the_data() {
        for (line, reply) in [
            (&b"ms k 5 Z\r\n"[..], replies::INVALID_FLAG),
            (b"ms k 5 v v q\r\n", replies::DUPLICATE_FLAG),
            (b"ms k 5 T\r\n", replies::BAD_TOKEN),
            (b"ms k 5 Fx\r\n", replies::BAD_FORMAT),
            (b"ms k 5 M\r\n", replies::BAD_MODE_LENGTH),
            (b"ms k 5 b\r\n", replies::BAD_KEY_ENCODING),
            (b"ms k 5 Ms\r\n", replies::BAD_SET_MODE),
        ] {
            assert_eq!(parse(line), swallow(reply, line, 7), "{line:?}");
        }
        let opaque = format!("ms k 0 O{}\r\n", "1".repeat(32));
        let opaque = opaque.as_bytes();
        assert_eq!(parse(opaque), swallow(replies::OPAQUE_TOO_LONG, opaque, 2));
        let both = format!("ms k 0 O{} MX\r\n", "1".repeat(32));
        let both = both.as_bytes();
        assert_eq!(parse(both), swallow(replies::BAD_SET_MODE, both, 2));
    }

    #[test]
    fn a_value_over_the_limit_deletes_the_old_one_in_every_mode() {
        let limits = Limits {
            max_value_len: 10,
            ..Limits::default()
        };
        for line in [&b"ms key 11 q\r\n"[..], b"ms key 11 ME\r\n"] {
            assert_eq!(
                parse_request(line, &limits),
                deleting(replies::TOO_LARGE, line, 13, Some(3..6), false)
            );
        }
        let line = b"ms YWJj 11 b MA\r\n";
        assert_eq!(
            parse_request(line, &limits),
            deleting(replies::TOO_LARGE, line, 13, Some(3..7), true)
        );
        // Bad flags are found first.
        let line = b"ms k 11 Z\r\n";
        assert_eq!(
            parse_request(line, &limits),
            swallow(replies::INVALID_FLAG, line, 13)
        );
    }

    #[test]
    fn the_data_block_waits_for_all_its_bytes() {
        for cut in [
            &b"ms k 3"[..],
            b"ms k 3 q\r\n",
            b"ms k 3\r\nabc",
            b"ms k 3\r\nabc\r",
        ] {
            assert_eq!(parse(cut), Parsed::Incomplete, "{cut:?}");
        }
    }

    #[test]
    fn a_bad_data_block_is_answered_even_when_quiet() {
        assert_eq!(
            parse(b"ms k 1 q\r\nab\r\n"),
            invalid(replies::BAD_DATA_CHUNK, 13)
        );
        assert_eq!(
            parse(b"ms k 1\r\nx\r\rget k\r\n"),
            invalid(replies::BAD_DATA_CHUNK, 11)
        );
    }
}
