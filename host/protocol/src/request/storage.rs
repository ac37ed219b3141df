//! `set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply]`,
//! `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]`, each followed by a data block
//! of `<bytes>` bytes and `\r\n`.
//!
//! memcached checks, in this order: the token count (`ERROR`, even with `noreply`), the key
//! length, then flags, exptime, length and CAS unique (all `CLIENT_ERROR bad command line
//! format`). Those errors drop only the line: the data block is then read as commands. Past
//! them it reads exactly `<bytes>` + 2 bytes whatever they hold, and answers `CLIENT_ERROR bad
//! data chunk` if they do not end in `\r\n`. A value over the size limit is answered at once
//! and its data swallowed; for a `set`, memcached also deletes the key's old value.

use super::{Command, Line, Parsed, Request, number};
use crate::limits::Limits;
use crate::replies;

/// The largest length memcached accepts on a storage line (`INT_MAX - 2`); larger ones are a
/// bad command line rather than too large.
const MAX_ANNOUNCED_LEN: i32 = i32::MAX - 2;

/// Parses a storage command and waits for its data block.
pub(super) fn parse(line: &Line<'_>, command: Command, limits: &Limits) -> Parsed {
    let with_cas = command == Command::Cas;
    let tokens = &line.tokens;
    let fields = if with_cas { 6 } else { 5 };
    if tokens.len() != fields && tokens.len() != fields + 1 {
        return line.error(replies::ERROR);
    }
    let noreply_at = line.noreply_at();
    let noreply = noreply_at.is_some();
    let bad_line = line.error_unless(noreply, replies::BAD_FORMAT);
    let key = tokens.span(1);
    if key.len() > limits.max_key_len {
        return bad_line;
    }
    let (Some(flags), Some(exptime), Some(len)) = (
        number::strtoul32(tokens.get(2)),
        number::strtol32(tokens.get(3)),
        data_len(tokens.get(4)),
    ) else {
        return bad_line;
    };
    let cas = if with_cas {
        let Some(cas) = number::strtoull(tokens.get(5)) else {
            return bad_line;
        };
        cas
    } else {
        0
    };
    if len > limits.max_value_len {
        let delete = (command == Command::Set).then_some(key);
        return line.swallow(len, (!noreply).then_some(replies::TOO_LARGE), delete, false);
    }
    let mut request = Request::new(command, line.range.clone());
    request.keys = key.clone();
    request.key = key;
    request.flags = flags;
    request.exptime = exptime.into();
    request.cas = cas;
    request.noreply = noreply;
    request.noreply_at = noreply_at;
    line.with_data(request, len, noreply, limits)
}

/// A data length token: a number from 0 to [`MAX_ANNOUNCED_LEN`], or `None`.
pub(super) fn data_len(token: &[u8]) -> Option<usize> {
    number::strtol32(token)
        .filter(|len| (0..=MAX_ANNOUNCED_LEN).contains(len))
        .and_then(|len| usize::try_from(len).ok())
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

    fn silent(consumed: usize) -> Parsed {
        Parsed::Invalid {
            reply: None,
            consumed,
        }
    }

    #[test]
    fn set_reads_its_fields_and_data() {
        let buf = b"set k 5 -1 3\r\na\r\n\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::Set);
        assert_eq!(&buf[r.key.clone()], b"k");
        assert_eq!(r.keys, r.key);
        assert_eq!((r.flags, r.exptime, r.cas), (5, -1, 0));
        assert_eq!(&buf[r.value.clone()], b"a\r\n");
        assert_eq!(r.line, 0..12);
        assert!(!r.noreply);
    }

    #[test]
    fn each_storage_command_has_its_name() {
        for (name, command) in [
            ("add", Command::Add),
            ("replace", Command::Replace),
            ("append", Command::Append),
            ("prepend", Command::Prepend),
        ] {
            let buf = format!("{name} k 0 0 1\nx\r\n");
            assert_eq!(request(buf.as_bytes()).command, command);
        }
    }

    #[test]
    fn cas_reads_its_unique() {
        let buf = b"cas k 0 0 1 18446744073709551615 noreply\r\nx\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::Cas);
        assert_eq!(r.cas, u64::MAX);
        assert!(r.noreply);
        assert_eq!(
            &buf[r.forwarded_line()],
            b"cas k 0 0 1 18446744073709551615"
        );
    }

    #[test]
    fn noreply_is_found_as_the_last_token() {
        let buf = b"set k 0 0 1   noreply \r\nx\r\n";
        let r = request(buf);
        assert!(r.noreply);
        assert_eq!(r.noreply_at, Some(13));
        assert_eq!(&buf[r.forwarded_line()], b"set k 0 0 1  ");
        // memcached ignores anything else in that place, and noreply must be spelled exactly so.
        assert!(!request(b"set k 0 0 1 garbage\r\nx\r\n").noreply);
        assert!(!request(b"set k 0 0 1 NOREPLY\r\nx\r\n").noreply);
        assert!(!request(b"set k 0 0 1 noreply\r\r\nx\r\n").noreply);
    }

    #[test]
    fn numbers_are_read_like_memcached_does() {
        let r = request(b"set k 4294967296 4294967296 4294967297\r\nx\r\n");
        assert_eq!((r.flags, r.exptime, r.value.len()), (0, 0, 1));
        let r = request(b"set k -18446744073709551615 +1 -4294967295\r\nx\r\n");
        assert_eq!((r.flags, r.exptime, r.value.len()), (1, 1, 1));
        let r = request(b"set k 0 \t0 1\tjunk\r\nx\r\n");
        assert_eq!(r.value.len(), 1);
        // The length token "1\rx" reads as 1: "\r" is whitespace to strtol.
        assert_eq!(request(b"set k 0 0 1\rx\r\nx\r\n").value.len(), 1);
    }

    #[test]
    fn the_wrong_number_of_tokens_is_an_error_even_with_noreply() {
        for line in [
            &b"set k 0 0\r\n"[..],
            b"set k 0 0 1 noreply x\r\n",
            b"cas k 0 0 1\r\n",
            b"set a 0 0\t1\r\n",
        ] {
            assert_eq!(parse(line), invalid(replies::ERROR, line.len()), "{line:?}");
        }
    }

    #[test]
    fn a_bad_line_drops_only_the_line() {
        for line in [
            &b"set k x 0 1\r\n"[..],
            b"set k -1 0 1\r\n",
            b"set k 0 x 1\r\n",
            b"set k 0 0 x\r\n",
            b"set k 0 0 -1\r\n",
            b"set k 0 0 1x\r\n",
            b"set k 0 0 2147483646\r\n",
            b"set k 0 0 -2147483648\r\n",
            b"cas k 0 0 1 -1\r\n",
            b"cas k 0 0 1 18446744073709551616\r\n",
        ] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"x\r\n");
            assert_eq!(
                parse(&buf),
                invalid(replies::BAD_FORMAT, line.len()),
                "{line:?}"
            );
        }
        let long = format!("set {} 0 0 1\r\n", "k".repeat(251));
        assert_eq!(
            parse(long.as_bytes()),
            invalid(replies::BAD_FORMAT, long.len())
        );
    }

    #[test]
    fn the_key_is_checked_before_the_numbers() {
        let line = format!("set {} x x x\r\n", "k".repeat(251));
        assert_eq!(
            parse(line.as_bytes()),
            invalid(replies::BAD_FORMAT, line.len())
        );
    }

    #[test]
    fn a_bad_line_ending_in_noreply_is_silent() {
        for line in [
            &b"set k 0 0 -1 noreply\r\n"[..],
            b"set k 0 0 noreply\r\n",
            b"cas k 0 0 1 noreply\r\n",
        ] {
            assert_eq!(parse(line), silent(line.len()), "{line:?}");
        }
    }

    #[test]
    fn the_data_block_waits_for_all_its_bytes() {
        assert_eq!(parse(b"set k 0 0 3\r\n"), Parsed::Incomplete);
        assert_eq!(parse(b"set k 0 0 3\r\nabc"), Parsed::Incomplete);
        assert_eq!(parse(b"set k 0 0 3\r\nabc\r"), Parsed::Incomplete);
    }

    #[test]
    fn a_data_block_not_ending_in_crlf_drops_the_announced_length_plus_two() {
        // "ab\r" is read as the block; the "\n" after it is then an empty command line.
        assert_eq!(
            parse(b"set k 0 0 1\r\nab\r\n"),
            invalid(replies::BAD_DATA_CHUNK, 16)
        );
        // "x\ng" is the block; "et a" is then an unknown command.
        assert_eq!(
            parse(b"set k 0 0 1\r\nx\nget a\r\n"),
            invalid(replies::BAD_DATA_CHUNK, 16)
        );
        assert_eq!(parse(b"set k 0 0 1 noreply\r\nxy\r\n"), silent(24));
    }

    #[test]
    fn a_value_over_the_limit_is_refused_at_once_and_swallowed() {
        let limits = Limits {
            max_value_len: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"add k 0 0 11\r\n", &limits),
            Parsed::Swallow {
                reply: Some(replies::TOO_LARGE),
                consumed: 14,
                discard: 13,
                delete: None,
                delete_base64: false,
            },
        );
        assert_eq!(
            parse_request(b"append k 0 0 11 noreply\r\n", &limits),
            Parsed::Swallow {
                reply: None,
                consumed: 25,
                discard: 13,
                delete: None,
                delete_base64: false,
            },
        );
        let Parsed::Request { request, .. } =
            parse_request(b"set k 0 0 10\r\n0123456789\r\n", &limits)
        else {
            panic!("a value of exactly the limit is fine");
        };
        assert_eq!(request.value.len(), 10);
        // The largest length memcached reads, far over any limit.
        assert_eq!(
            parse(b"cas k 0 0 2147483645 1\r\n"),
            Parsed::Swallow {
                reply: Some(replies::TOO_LARGE),
                consumed: 24,
                discard: 2147483647,
                delete: None,
                delete_base64: false,
            },
        );
    }

    #[test]
    fn a_long_value_still_arriving_is_handed_over_for_streaming() {
        let limits = Limits {
            stream_from: 4,
            ..Limits::default()
        };
        let whole = b"set k 0 0 5 noreply\r\nabcde\r\n";
        for cut in 21..whole.len() {
            let Parsed::Stream {
                request,
                line,
                block,
            } = parse_request(&whole[..cut], &limits)
            else {
                panic!("{cut}: {:?}", parse_request(&whole[..cut], &limits));
            };
            assert_eq!((line, block), (21, 7));
            assert_eq!(request.value, 21..26);
            assert!(request.noreply);
            assert_eq!(&whole[request.key], b"k");
        }
        // Once it is all there, it is an ordinary request.
        assert!(matches!(
            parse_request(whole, &limits),
            Parsed::Request { consumed: 28, .. }
        ));
        // Shorter values are never streamed.
        assert_eq!(
            parse_request(b"set k 0 0 3\r\nab", &limits),
            Parsed::Incomplete
        );
    }

    #[test]
    fn a_set_over_the_limit_also_deletes_the_old_value() {
        let limits = Limits {
            max_value_len: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(b"set key 0 0 11 noreply\r\n", &limits),
            Parsed::Swallow {
                reply: None,
                consumed: 24,
                discard: 13,
                delete: Some(4..7),
                delete_base64: false,
            },
        );
    }
}
