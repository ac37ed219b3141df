//! `get <key>+`, `gets <key>+`, `gat <exptime> <key>*`, `gats <exptime> <key>*`.
//!
//! Any number of keys: memcached reads on past the 23 tokens it looks at for other commands.
//! One key over the limit makes the whole command a `CLIENT_ERROR bad command line format`.
//! `gat` checks its exptime first, and may have no key at all (memcached then answers `END`).

use super::{Command, Line, Parsed, Request, number, tokens};
use crate::limits::Limits;
use crate::replies;

/// Parses a get-family line; the caller checked it has at least two tokens.
pub(super) fn parse(line: &Line<'_>, command: Command, limits: &Limits) -> Parsed {
    let mut request = Request::new(command, line.range.clone());
    let mut first = 1;
    if matches!(command, Command::Gat | Command::Gats) {
        let Some(exptime) = number::strtol32(line.tokens.get(1)) else {
            return line.error(replies::BAD_EXPTIME);
        };
        request.exptime = exptime.into();
        first = 2;
    }
    let from = if first < line.tokens.len() {
        line.tokens.span(first).start
    } else {
        line.range.end
    };
    let mut keys = tokens::words(line.buf, from..line.range.end);
    if let Some(key) = keys.next() {
        let mut last = key.clone();
        for next in keys {
            last = next;
            if last.len() > limits.max_key_len {
                return line.error(replies::BAD_FORMAT);
            }
        }
        if key.len() > limits.max_key_len {
            return line.error(replies::BAD_FORMAT);
        }
        request.keys = key.start..last.end;
        request.key = key;
    }
    line.request(request)
}

#[cfg(test)]
mod tests {
    use crate::request::test_support::request;
    use crate::{Command, Limits, Parsed, Request, parse_request, replies};

    fn keys<'b>(buf: &'b [u8], request: &Request) -> Vec<&'b [u8]> {
        request.keys(buf).map(|r| &buf[r]).collect()
    }

    #[test]
    fn get_reads_every_key_in_order() {
        let buf = b"get a bb  a ccc\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::Get);
        assert_eq!(&buf[r.key.clone()], b"a");
        assert_eq!(&buf[r.keys.clone()], b"a bb  a ccc");
        assert_eq!(keys(buf, &r), [&b"a"[..], b"bb", b"a", b"ccc"]);
        assert_eq!(r.line, 0..15);
    }

    #[test]
    fn keys_are_any_bytes_but_space() {
        let buf = b" gets a\tb \x01\x7f\xff c\rd  \n";
        let r = request(buf);
        assert_eq!(r.command, Command::Gets);
        assert_eq!(keys(buf, &r), [&b"a\tb"[..], b"\x01\x7f\xff", b"c\rd"]);
    }

    #[test]
    fn a_key_may_end_in_a_carriage_return_when_the_line_ends_in_two() {
        let buf = b"get a\r\r\n";
        assert_eq!(keys(buf, &request(buf)), [&b"a\r"[..]]);
    }

    #[test]
    fn a_nul_byte_ends_the_keys() {
        let buf = b"get a\0b c\r\n";
        let r = request(buf);
        assert_eq!(keys(buf, &r), [&b"a"[..]]);
        assert_eq!(r.line, 0..5);
    }

    #[test]
    fn there_is_no_limit_on_the_number_of_keys() {
        let mut buf = b"get".to_vec();
        for i in 0..1000 {
            buf.extend_from_slice(format!(" k{i}").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        let r = request(&buf);
        assert_eq!(r.keys(&buf).count(), 1000);
        assert_eq!(&buf[r.keys(&buf).last().expect("keys")], b"k999");
    }

    #[test]
    fn bget_is_get() {
        assert_eq!(request(b"bget a\r\n").command, Command::Get);
    }

    #[test]
    fn a_key_over_250_bytes_anywhere_fails_the_whole_command() {
        let long = "k".repeat(251);
        for line in [
            format!("get {long}\r\n"),
            format!("gets a {long} b\r\n"),
            format!("gat 0 {long}\r\n"),
        ] {
            assert_eq!(
                parse_request(line.as_bytes(), &Limits::default()),
                Parsed::Invalid {
                    reply: Some(replies::BAD_FORMAT),
                    consumed: line.len()
                },
            );
        }
        let ok = format!("get {}\r\n", "k".repeat(250));
        assert_eq!(request(ok.as_bytes()).key.len(), 250);
    }

    #[test]
    fn a_key_over_the_limit_after_23_tokens_still_counts() {
        let mut line = b"get".to_vec();
        for _ in 0..30 {
            line.extend_from_slice(b" k");
        }
        line.extend_from_slice(format!(" {}\r\n", "k".repeat(251)).as_bytes());
        assert_eq!(
            parse_request(&line, &Limits::default()),
            Parsed::Invalid {
                reply: Some(replies::BAD_FORMAT),
                consumed: line.len()
            },
        );
    }

    #[test]
    fn get_needs_a_key() {
        for line in [&b"get\r\n"[..], b"get \r\n", b"gat\r\n", b"bget\r\n"] {
            assert_eq!(
                parse_request(line, &Limits::default()),
                Parsed::Invalid {
                    reply: Some(replies::ERROR),
                    consumed: line.len()
                },
            );
        }
    }

    #[test]
    fn gat_reads_an_exptime_then_keys() {
        let buf = b"gats -5 a b\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::Gats);
        assert_eq!(r.exptime, -5);
        assert_eq!(keys(buf, &r), [&b"a"[..], b"b"]);
        // Truncated to 32 bits, as memcached does.
        assert_eq!(request(b"gat 4294967297 a\r\n").exptime, 1);
    }

    #[test]
    fn gat_without_keys_is_a_request_for_nothing() {
        let buf = b"gat 10\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::Gat);
        assert_eq!(r.keys(buf).count(), 0);
        assert_eq!(r.key, 6..6);
        assert_eq!(r.keys, 6..6);
    }

    #[test]
    fn gat_with_a_bad_exptime_says_so_before_looking_at_keys() {
        let line = format!("gat x {}\r\n", "k".repeat(251));
        assert_eq!(
            parse_request(line.as_bytes(), &Limits::default()),
            Parsed::Invalid {
                reply: Some(replies::BAD_EXPTIME),
                consumed: line.len()
            },
        );
        assert_eq!(
            parse_request(b"gat 1.5 a\r\n", &Limits::default()),
            Parsed::Invalid {
                reply: Some(replies::BAD_EXPTIME),
                consumed: 11
            },
        );
    }

    #[test]
    fn noreply_is_just_a_key_to_get() {
        let buf = b"get a noreply\r\n";
        let r = request(buf);
        assert!(!r.noreply);
        assert_eq!(keys(buf, &r), [&b"a"[..], b"noreply"]);
    }
}
