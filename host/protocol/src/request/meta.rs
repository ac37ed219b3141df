//! The meta commands, as memcached 1.6.18 reads them: `mg <key> <flag>*`, `ms <key> <datalen>
//! <flag>*` and a data block (`request/meta/set.rs`), `md <key> <flag>*`, `ma <key> <flag>*`,
//! `mn`, `me <key> [b]`. The flags are read in `request/meta/flags.rs`.
//!
//! `mg`, `md`, `ma` check, in this order, each failure answered and only the line dropped:
//! 1. at least a key (`ERROR`);
//! 2. the key's length, as sent (base64 or not) (`CLIENT_ERROR bad command line format`);
//! 3. at most 19 tokens (`CLIENT_ERROR options flags are too long` for `mg`, `... flags too
//!    long` for the others);
//! 4. the flags: `mg` says what is wrong with them, `md` and `ma` only `CLIENT_ERROR invalid or
//!    duplicate flag`;
//! 5. `ma`: its mode (`CLIENT_ERROR invalid mode for ma M token`);
//! 6. an `O` token of at most 32 bytes (`CLIENT_ERROR opaque token too long`). memcached finds
//!    this out only after the `mg` or `ma` has done its work (a touch, an increment); the
//!    router refuses the request before any backend sees it.
//!
//! Errors are always answered: `q` hushes only the nominal outcome, which is for the backend to
//! say (see [`Command::quiet_hides`]). `mn` takes no arguments and ignores any. `me` is an
//! older code path: it wants a key (`CLIENT_ERROR bad command line format` without one, unlike
//! the others), reads `b` only right after the key (then failing to decode is a bad command
//! line format too), and ignores any other token.

mod flags;
mod set;

use super::{Command, Line, Parsed, Request};
use crate::base64;
use crate::limits::Limits;
use crate::replies;
use flags::Flags;

/// Parses a line whose command has two letters and starts with `m`.
pub(super) fn parse(line: &Line<'_>, limits: &Limits) -> Parsed {
    match line.tokens.get(0) {
        b"mg" => keyed(line, Command::MetaGet, limits),
        b"md" => keyed(line, Command::MetaDelete, limits),
        b"ma" => keyed(line, Command::MetaArithmetic, limits),
        b"ms" => set::parse(line, limits),
        b"mn" => line.request(Request::new(Command::MetaNoop, line.range.clone())),
        b"me" => debug(line, limits),
        _ => line.error(replies::ERROR),
    }
}

/// `mg`, `md`, `ma`: a key and flags.
fn keyed(line: &Line<'_>, command: Command, limits: &Limits) -> Parsed {
    let too_long = if command == Command::MetaGet {
        replies::META_GET_TOO_LONG
    } else {
        replies::META_TOO_LONG
    };
    if let Some(refused) = refuse_key_or_count(line, limits, too_long) {
        return refused;
    }
    let flags = match flags::read(line, 2) {
        Ok(flags) => flags,
        Err(reply) if command == Command::MetaGet => return line.error(reply),
        Err(_) => return line.error(replies::INVALID_OR_DUPLICATE_FLAG),
    };
    if command == Command::MetaArithmetic
        && !matches!(flags.mode, None | Some(b'I' | b'+' | b'D' | b'-'))
    {
        return line.error(replies::BAD_ARITHMETIC_MODE);
    }
    if flags.opaque_too_long() {
        return line.error(replies::OPAQUE_TOO_LONG);
    }
    line.request(request(line, command, &flags))
}

/// The first checks of `mg`, `md`, `ma` and `ms`, each failure answered and only the line
/// dropped: at least a key (`ERROR`), the key's length, as sent (`CLIENT_ERROR bad command line
/// format`), at most [`flags::MAX_TOKENS`] tokens (`too_long`). `None` if the line passes.
fn refuse_key_or_count(
    line: &Line<'_>,
    limits: &Limits,
    too_long: &'static [u8],
) -> Option<Parsed> {
    let tokens = &line.tokens;
    if tokens.len() < 2 {
        return Some(line.error(replies::ERROR));
    }
    if tokens.span(1).len() > limits.max_key_len {
        return Some(line.error(replies::BAD_FORMAT));
    }
    if tokens.len() > flags::MAX_TOKENS {
        return Some(line.error(too_long));
    }
    None
}

/// The request of a meta line whose flags were read.
fn request(line: &Line<'_>, command: Command, flags: &Flags) -> Request {
    let mut request = Request::new(command, line.range.clone());
    request.key = line.tokens.span(1);
    request.keys = request.key.clone();
    request.meta_flags = flags.span.clone();
    request.base64 = flags.base64;
    request.quiet = flags.quiet_span.is_some();
    request.quiet_span = flags.quiet_span.clone();
    request.opaque = flags.opaque.as_ref().map(|o| o.start + 1..o.end);
    request.mode = flags.mode;
    request.exptime = flags.ttl.unwrap_or(0).into();
    request.flags = flags.client_flags.unwrap_or(0);
    request.cas = flags.cas.unwrap_or(0);
    let default_delta = u64::from(command == Command::MetaArithmetic);
    request.delta = flags.delta.unwrap_or(default_delta);
    request
}

/// `me <key> [b]`.
fn debug(line: &Line<'_>, limits: &Limits) -> Parsed {
    let tokens = &line.tokens;
    let key = tokens.span(1);
    if tokens.len() < 2 || key.len() > limits.max_key_len {
        return line.error(replies::BAD_FORMAT);
    }
    let base64 = tokens.get(2) == b"b";
    if base64 && base64::decoded_len(tokens.get(1)).is_none() {
        return line.error(replies::BAD_FORMAT);
    }
    let mut request = Request::new(Command::MetaDebug, line.range.clone());
    if tokens.len() > 2 {
        request.meta_flags = line.words_from(2);
    }
    request.keys = key.clone();
    request.key = key;
    request.base64 = base64;
    line.request(request)
}

#[cfg(test)]
mod tests {
    use crate::request::test_support::{parse, request};
    use crate::{Command, DECODED_KEY_BUF, Parsed, Request, replies};

    fn invalid(reply: &'static [u8], buf: &[u8]) -> Parsed {
        Parsed::Invalid {
            reply: Some(reply),
            consumed: buf.len(),
        }
    }

    fn flags<'b>(buf: &'b [u8], request: &Request) -> Vec<&'b [u8]> {
        request.meta_flags(buf).map(|f| &buf[f]).collect()
    }

    fn forwarded(buf: &[u8], request: &Request) -> Vec<u8> {
        request
            .forwarded_pieces()
            .iter()
            .flat_map(|piece| buf[piece.clone()].to_vec())
            .collect()
    }

    #[test]
    fn mg_reads_its_key_and_flags() {
        let buf = b"mg foo v k O123 T30 q\r\n";
        let r = request(buf);
        assert_eq!(r.command, Command::MetaGet);
        assert_eq!(&buf[r.key.clone()], b"foo");
        assert_eq!(r.keys, r.key);
        assert_eq!(flags(buf, &r), [&b"v"[..], b"k", b"O123", b"T30", b"q"]);
        assert_eq!(&buf[r.opaque.clone().expect("opaque")], b"123");
        assert_eq!(
            (r.exptime, r.quiet, r.base64, r.noreply),
            (30, true, false, false)
        );
        assert_eq!(r.line, 0..21);
    }

    #[test]
    fn mg_md_ma_need_no_flags() {
        for (buf, command) in [
            (&b"mg k\r\n"[..], Command::MetaGet),
            (b"md k\r\n", Command::MetaDelete),
            (b"ma k\n", Command::MetaArithmetic),
        ] {
            let r = request(buf);
            assert_eq!(r.command, command);
            assert_eq!(r.meta_flags, r.line.end..r.line.end);
            assert_eq!(
                r.forwarded_pieces(),
                [r.line.clone(), r.line.end..r.line.end]
            );
        }
    }

    #[test]
    fn the_line_a_backend_is_sent_has_no_q() {
        let buf = b"mg k v  q O1\r\n";
        let r = request(buf);
        assert_eq!(forwarded(buf, &r), b"mg k v O1");
        assert_eq!(&buf[r.forwarded_line()], b"mg k v");
        let forwarded_flags: Vec<_> = r.forwarded_flags(buf).map(|f| &buf[f]).collect();
        assert_eq!(forwarded_flags, [&b"v"[..], b"O1"]);
        let buf = b"md k q\r\n";
        assert_eq!(forwarded(buf, &request(buf)), b"md k");
        let buf = b"ma k v\r\n";
        assert_eq!(forwarded(buf, &request(buf)), b"ma k v");
    }

    #[test]
    fn a_base64_key_is_routed_by_its_decoded_bytes() {
        let buf = b"mg AP8gCg== b v\r\n";
        let r = request(buf);
        assert!(r.base64);
        assert_eq!(&buf[r.key.clone()], b"AP8gCg==");
        let mut out = [0; DECODED_KEY_BUF];
        assert_eq!(r.routing_key(buf, &mut out), [0, 0xff, b' ', b'\n']);
        let buf = b"mg plain v\r\n";
        assert_eq!(request(buf).routing_key(buf, &mut out), b"plain");
    }

    #[test]
    fn ma_takes_a_delta_of_one_unless_told_otherwise() {
        let r = request(b"ma k\r\n");
        assert_eq!((r.delta, r.mode), (1, None));
        let r = request(b"ma k D5 MD N0 J7 C9 T-1\r\n");
        assert_eq!((r.delta, r.mode, r.cas, r.exptime), (5, Some(b'D'), 9, -1));
        assert_eq!(request(b"mg k D5\r\n").delta, 5);
        assert_eq!(request(b"md k\r\n").delta, 0);
    }

    #[test]
    fn a_meta_command_needs_a_key() {
        for buf in [&b"mg\r\n"[..], b"md \r\n", b"ma\n", b"ms\r\n"] {
            assert_eq!(parse(buf), invalid(replies::ERROR, buf), "{buf:?}");
        }
        for buf in [&b"mx k\r\n"[..], b"mG k\r\n", b"mgg k\r\n", b"m k\r\n"] {
            assert_eq!(parse(buf), invalid(replies::ERROR, buf), "{buf:?}");
        }
    }

    #[test]
    fn the_key_is_checked_before_the_number_of_tokens() {
        let long = "k".repeat(251);
        let many = " v".repeat(30);
        for name in ["mg", "md", "ma"] {
            let buf = format!("{name} {long}{many}\r\n");
            assert_eq!(
                parse(buf.as_bytes()),
                invalid(replies::BAD_FORMAT, buf.as_bytes())
            );
            // Encoded length counts, even for a key that would decode short enough.
            let buf = format!("{name} {} b\r\n", "A".repeat(252));
            assert_eq!(
                parse(buf.as_bytes()),
                invalid(replies::BAD_FORMAT, buf.as_bytes())
            );
        }
    }

    #[test]
    fn at_most_19_tokens() {
        let flags = [
            "v", "k", "s", "t", "c", "f", "h", "l", "u", "P", "L", "N1", "T1", "R1",
        ];
        let ok = format!("mg k {} O1 F1 q\r\n", flags.join(" "));
        assert_eq!(request(ok.as_bytes()).meta_flags(ok.as_bytes()).count(), 17);
        let over = format!("mg k {} O1 F1 q C1\r\n", flags.join(" "));
        let over = over.as_bytes();
        assert_eq!(parse(over), invalid(replies::META_GET_TOO_LONG, over));
        let over = format!("md k {} O1 F1 q C1\r\n", flags.join(" "));
        let over = over.as_bytes();
        assert_eq!(parse(over), invalid(replies::META_TOO_LONG, over));
    }

    #[test]
    fn mg_says_what_is_wrong_with_its_flags_md_and_ma_do_not() {
        for (flag, reply) in [
            ("v v", replies::DUPLICATE_FLAG),
            ("Z", replies::INVALID_FLAG),
            ("Tx", replies::BAD_TOKEN),
            ("Fx", replies::BAD_FORMAT),
            ("b", replies::BAD_KEY_ENCODING),
        ] {
            let buf = format!("mg a {flag}\r\n");
            assert_eq!(parse(buf.as_bytes()), invalid(reply, buf.as_bytes()));
            for name in ["md", "ma"] {
                let buf = format!("{name} a {flag} q\r\n");
                let buf = buf.as_bytes();
                assert_eq!(parse(buf), invalid(replies::INVALID_OR_DUPLICATE_FLAG, buf));
            }
        }
    }

    #[test]
    fn ma_checks_its_mode_and_others_ignore_theirs() {
        for mode in ["MI", "M+", "MD", "M-"] {
            request(format!("ma k {mode}\r\n").as_bytes());
        }
        let buf = b"ma k MX q\r\n";
        assert_eq!(parse(buf), invalid(replies::BAD_ARITHMETIC_MODE, buf));
        assert_eq!(request(b"md k MX\r\n").mode, Some(b'X'));
        assert_eq!(request(b"mg k MX\r\n").mode, Some(b'X'));
    }

    #[test]
    fn an_opaque_token_over_32_bytes_is_refused_last() {
        let ok = format!("mg k O{}\r\n", "1".repeat(31));
        assert_eq!(request(ok.as_bytes()).opaque, Some(6..37));
        for name in ["mg", "md", "ma"] {
            let buf = format!("{name} k q O{}\r\n", "1".repeat(32));
            assert_eq!(
                parse(buf.as_bytes()),
                invalid(replies::OPAQUE_TOO_LONG, buf.as_bytes())
            );
        }
        let buf = format!("ma k O{} MX\r\n", "1".repeat(32));
        assert_eq!(
            parse(buf.as_bytes()),
            invalid(replies::BAD_ARITHMETIC_MODE, buf.as_bytes())
        );
        assert_eq!(request(b"mg k O\r\n").opaque, Some(6..6));
    }

    #[test]
    fn mn_ignores_its_arguments() {
        let r = request(b"mn\r\n");
        assert_eq!(
            (r.command, r.key.clone(), r.quiet),
            (Command::MetaNoop, 2..2, false)
        );
        assert_eq!(request(b"mn q x HTTP/1.1\r\n").command, Command::MetaNoop);
    }

    #[test]
    fn me_wants_a_key_and_reads_b_right_after_it_only() {
        let buf = b"me YQ== b x\r\n";
        let r = request(buf);
        assert_eq!(
            (r.command, r.base64, r.quiet),
            (Command::MetaDebug, true, false)
        );
        assert_eq!(&buf[r.key.clone()], b"YQ==");
        assert_eq!(&buf[r.meta_flags.clone()], b"b x");
        assert!(!request(b"me YQ== x b\r\n").base64);
        assert!(!request(b"me k q\r\n").quiet);
        let many = format!("me k{}\r\n", " Z".repeat(30));
        assert_eq!(request(many.as_bytes()).meta_flags.len(), 59);
        let long = format!("me {}\r\n", "k".repeat(251));
        for buf in [&b"me\r\n"[..], b"me  \r\n", b"me ! b\r\n", long.as_bytes()] {
            assert_eq!(parse(buf), invalid(replies::BAD_FORMAT, buf), "{buf:?}");
        }
    }
}
