//! `version`, `quit`, `stats [args]`, `flush_all [delay] [noreply]`, `verbosity <level>
//! [noreply]`: commands about the server rather than a key.

use super::{Command, Line, Parsed, Request, number};
use crate::replies;

/// `stats` with any arguments: what they mean is for whoever answers.
pub(super) fn stats(line: &Line<'_>) -> Parsed {
    let mut request = Request::new(Command::Stats, line.range.clone());
    if line.tokens.len() > 1 {
        request.args = line.words_from(1);
    }
    line.request(request)
}

/// `flush_all`: a delay is read unless the line is just `flush_all [noreply]`; a token after
/// the delay that is not `noreply` is ignored.
pub(super) fn flush_all(line: &Line<'_>) -> Parsed {
    let count = line.tokens.len();
    if !(1..=3).contains(&count) {
        return line.error(replies::ERROR);
    }
    let mut request = Request::new(Command::FlushAll, line.range.clone());
    request.noreply_at = line.noreply_at();
    request.noreply = request.noreply_at.is_some();
    if count != if request.noreply { 2 } else { 1 } {
        let Some(delay) = number::strtol32(line.tokens.get(1)) else {
            return line.error_unless(request.noreply, replies::BAD_EXPTIME);
        };
        request.exptime = delay.into();
    }
    line.request(request)
}

/// `verbosity`: a level, and one more token that is ignored unless it is `noreply`.
pub(super) fn verbosity(line: &Line<'_>) -> Parsed {
    if !(2..=3).contains(&line.tokens.len()) {
        return line.error(replies::ERROR);
    }
    let mut request = Request::new(Command::Verbosity, line.range.clone());
    request.noreply_at = line.noreply_at();
    request.noreply = request.noreply_at.is_some();
    let Some(level) = number::strtoul32(line.tokens.get(1)) else {
        return line.error_unless(request.noreply, replies::BAD_FORMAT);
    };
    request.level = level;
    line.request(request)
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
    fn stats_keeps_its_arguments() {
        let buf = b"stats\r\n";
        let r = request(buf);
        assert_eq!((r.command, r.args.clone()), (Command::Stats, 5..5));
        let buf = b"stats  detail dump \r\n";
        assert_eq!(&buf[request(buf).args], b"detail dump");
        let buf: Vec<u8> = b"stats"
            .iter()
            .chain(" a".repeat(30).as_bytes())
            .chain(b"\r\n")
            .copied()
            .collect();
        assert_eq!(request(&buf).args.len(), 59);
    }

    #[test]
    fn flush_all_takes_an_optional_delay() {
        assert_eq!(request(b"flush_all\r\n").exptime, 0);
        assert_eq!(request(b"flush_all -1\r\n").exptime, -1);
        let buf = b"flush_all 10 noreply\r\n";
        let r = request(buf);
        assert_eq!((r.exptime, r.noreply), (10, true));
        assert_eq!(&buf[r.forwarded_line()], b"flush_all 10");
        let r = request(b"flush_all noreply\r\n");
        assert_eq!((r.exptime, r.noreply), (0, true));
        assert_eq!(request(b"flush_all 10 20\r\n").exptime, 10);
    }

    #[test]
    fn flush_all_with_a_bad_delay() {
        for line in [
            &b"flush_all x\r\n"[..],
            b"flush_all noreply 10\r\n",
            b"flush_all HTTP/1.1\r\n",
        ] {
            assert_eq!(
                parse(line),
                invalid(Some(replies::BAD_EXPTIME), line),
                "{line:?}"
            );
        }
        assert_eq!(
            parse(b"flush_all x noreply\r\n"),
            invalid(None, b"flush_all x noreply\r\n")
        );
        assert_eq!(
            parse(b"flush_all 1 2 3\r\n"),
            invalid(Some(replies::ERROR), b"flush_all 1 2 3\r\n")
        );
    }

    #[test]
    fn verbosity_takes_a_level() {
        let r = request(b"verbosity 1\r\n");
        assert_eq!(
            (r.command, r.level, r.noreply),
            (Command::Verbosity, 1, false)
        );
        assert!(request(b"verbosity 1 noreply\r\n").noreply);
        assert_eq!(request(b"verbosity 1 2\r\n").level, 1);
        assert_eq!(
            parse(b"verbosity x\r\n"),
            invalid(Some(replies::BAD_FORMAT), b"verbosity x\r\n")
        );
        assert_eq!(
            parse(b"verbosity -1\r\n"),
            invalid(Some(replies::BAD_FORMAT), b"verbosity -1\r\n")
        );
        // "noreply" is both the level and the noreply: silent.
        assert_eq!(
            parse(b"verbosity noreply\r\n"),
            invalid(None, b"verbosity noreply\r\n")
        );
        for line in [&b"verbosity\r\n"[..], b"verbosity 1 2 3\r\n"] {
            assert_eq!(parse(line), invalid(Some(replies::ERROR), line), "{line:?}");
        }
    }
}
