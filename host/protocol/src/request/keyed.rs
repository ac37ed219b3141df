//! `delete <key> [0] [noreply]`, `incr|decr <key> <delta> [noreply]`, `touch <key> <exptime>
//! [noreply]`: one key, no data block.
//!
//! Each checks its token count first (`ERROR`, even with `noreply`); `noreply` is the last
//! token when it is exactly `noreply`, and then hushes every later error. A token memcached
//! does not look at (`incr k 1 junk`) is ignored.

use super::{Command, Line, Parsed, Request, number};
use crate::limits::Limits;
use crate::replies;

/// `delete`: the only optional argument memcached still takes is a hold time of `0`.
pub(super) fn delete(line: &Line<'_>, limits: &Limits) -> Parsed {
    let count = line.tokens.len();
    if !(2..=4).contains(&count) {
        return line.error(replies::ERROR);
    }
    let mut noreply_at = None;
    if count > 2 {
        let hold_is_zero = line.tokens.get(2) == b"0";
        noreply_at = line.noreply_at();
        let noreply = noreply_at.is_some();
        let valid =
            (count == 3 && (hold_is_zero || noreply)) || (count == 4 && hold_is_zero && noreply);
        if !valid {
            return line.error_unless(noreply, replies::BAD_DELETE);
        }
    }
    match keyed(line, Command::Delete, noreply_at, limits) {
        Some(request) => line.request(request),
        None => line.error_unless(noreply_at.is_some(), replies::BAD_FORMAT),
    }
}

/// `incr`/`decr`: an unsigned 64-bit delta.
pub(super) fn arithmetic(line: &Line<'_>, command: Command, limits: &Limits) -> Parsed {
    if !(3..=4).contains(&line.tokens.len()) {
        return line.error(replies::ERROR);
    }
    let noreply_at = line.noreply_at();
    let Some(mut request) = keyed(line, command, noreply_at, limits) else {
        return line.error_unless(noreply_at.is_some(), replies::BAD_FORMAT);
    };
    let Some(delta) = number::strtoull(line.tokens.get(2)) else {
        return line.error_unless(request.noreply, replies::BAD_DELTA);
    };
    request.delta = delta;
    line.request(request)
}

/// `touch`: a new exptime.
pub(super) fn touch(line: &Line<'_>, limits: &Limits) -> Parsed {
    if !(3..=4).contains(&line.tokens.len()) {
        return line.error(replies::ERROR);
    }
    let noreply_at = line.noreply_at();
    let Some(mut request) = keyed(line, Command::Touch, noreply_at, limits) else {
        return line.error_unless(noreply_at.is_some(), replies::BAD_FORMAT);
    };
    let Some(exptime) = number::strtol32(line.tokens.get(2)) else {
        return line.error_unless(request.noreply, replies::BAD_EXPTIME);
    };
    request.exptime = exptime.into();
    line.request(request)
}

/// The request with its key and noreply; `None` for a key over the limit.
fn keyed(
    line: &Line<'_>,
    command: Command,
    noreply_at: Option<usize>,
    limits: &Limits,
) -> Option<Request> {
    let key = line.tokens.span(1);
    if key.len() > limits.max_key_len {
        return None;
    }
    let mut request = Request::new(command, line.range.clone());
    request.keys = key.clone();
    request.key = key;
    request.noreply = noreply_at.is_some();
    request.noreply_at = noreply_at;
    Some(request)
}

#[cfg(test)]
mod tests {
    use crate::request::test_support::{parse, request};
    use crate::{Command, Parsed, replies};

    fn invalid(reply: Option<&'static [u8]>, line: &[u8]) -> Parsed {
        Parsed::Invalid {
            reply,
            consumed: line.len(),
        }
    }

    #[test]
    fn delete_takes_a_key_a_zero_and_noreply() {
        let buf = b"delete k\r\n";
        let r = request(buf);
        assert_eq!(
            (r.command, &buf[r.key.clone()], r.noreply),
            (Command::Delete, &b"k"[..], false)
        );
        assert!(!request(b"delete k 0\r\n").noreply);
        assert!(request(b"delete k 0 noreply\r\n").noreply);
        let buf = b"delete k noreply\r\n";
        let r = request(buf);
        assert!(r.noreply);
        assert_eq!(&buf[r.forwarded_line()], b"delete k");
        // A lone "noreply" is the key.
        let buf = b"delete noreply\r\n";
        assert_eq!(&buf[request(buf).key], b"noreply");
    }

    #[test]
    fn delete_with_anything_but_a_zero_shows_its_usage() {
        for line in [
            &b"delete k 1\r\n"[..],
            b"delete k 00\r\n",
            b"delete k 0 x\r\n",
            b"delete k x 0\r\n",
            b"delete k noreply 0\r\n",
        ] {
            assert_eq!(
                parse(line),
                invalid(Some(replies::BAD_DELETE), line),
                "{line:?}"
            );
        }
    }

    #[test]
    fn delete_usage_errors_ending_in_noreply_are_silent() {
        for line in [
            &b"delete k 1 noreply\r\n"[..],
            b"delete k noreply noreply\r\n",
        ] {
            assert_eq!(parse(line), invalid(None, line), "{line:?}");
        }
    }

    #[test]
    fn delete_token_count() {
        for line in [&b"delete\r\n"[..], b"delete k 0 noreply x\r\n"] {
            assert_eq!(parse(line), invalid(Some(replies::ERROR), line), "{line:?}");
        }
    }

    #[test]
    fn delete_checks_usage_before_the_key() {
        let line = format!("delete {} 1\r\n", "k".repeat(251));
        assert_eq!(
            parse(line.as_bytes()),
            invalid(Some(replies::BAD_DELETE), line.as_bytes())
        );
        let line = format!("delete {} 0\r\n", "k".repeat(251));
        assert_eq!(
            parse(line.as_bytes()),
            invalid(Some(replies::BAD_FORMAT), line.as_bytes())
        );
    }

    #[test]
    fn incr_and_decr_take_an_unsigned_64_bit_delta() {
        let r = request(b"incr k 18446744073709551615\r\n");
        assert_eq!((r.command, r.delta), (Command::Incr, u64::MAX));
        let r = request(b"decr k 5 noreply\r\n");
        assert_eq!((r.command, r.delta, r.noreply), (Command::Decr, 5, true));
        assert_eq!(request(b"incr k -18446744073709551615\r\n").delta, 1);
        assert!(!request(b"incr k 1 junk\r\n").noreply);
    }

    #[test]
    fn a_bad_delta() {
        for line in [
            &b"incr k -1\r\n"[..],
            b"incr k x\r\n",
            b"incr k 1.5\r\n",
            b"decr k 18446744073709551616\r\n",
        ] {
            assert_eq!(
                parse(line),
                invalid(Some(replies::BAD_DELTA), line),
                "{line:?}"
            );
        }
        assert_eq!(
            parse(b"incr k x noreply\r\n"),
            invalid(None, b"incr k x noreply\r\n")
        );
        let line = format!("incr {} x\r\n", "k".repeat(251));
        assert_eq!(
            parse(line.as_bytes()),
            invalid(Some(replies::BAD_FORMAT), line.as_bytes())
        );
    }

    #[test]
    fn incr_token_count() {
        for line in [&b"incr k\r\n"[..], b"incr k 1 noreply x\r\n", b"decr\r\n"] {
            assert_eq!(parse(line), invalid(Some(replies::ERROR), line), "{line:?}");
        }
    }

    #[test]
    fn touch_takes_an_exptime() {
        let r = request(b"touch k -1 noreply\r\n");
        assert_eq!(
            (r.command, r.exptime, r.noreply),
            (Command::Touch, -1, true)
        );
        assert_eq!(
            parse(b"touch k x\r\n"),
            invalid(Some(replies::BAD_EXPTIME), b"touch k x\r\n")
        );
        assert_eq!(
            parse(b"touch k x noreply\r\n"),
            invalid(None, b"touch k x noreply\r\n")
        );
        assert_eq!(
            parse(b"touch k\r\n"),
            invalid(Some(replies::ERROR), b"touch k\r\n")
        );
        assert_eq!(
            parse(b"touch k 1 noreply x\r\n"),
            invalid(Some(replies::ERROR), b"touch k 1 noreply x\r\n")
        );
        let line = format!("touch {} x\r\n", "k".repeat(251));
        assert_eq!(
            parse(line.as_bytes()),
            invalid(Some(replies::BAD_FORMAT), line.as_bytes())
        );
    }
}
