//! Replies to the meta commands: a two-letter code and the flags memcached returns (each one
//! token, single spaces between, none after the last), then for `VA` a data block of the
//! announced size and `\r\n`.
//!
//! | reply             | `mg` | `ms`        | `md`     | `ma`        | `mn` | `me` |
//! |-------------------|------|-------------|----------|-------------|------|------|
//! | `VA <size> <f>*`  | Hit  |             |          | Number      |      |      |
//! | `HD <f>*`         | Hit  | Stored      | Deleted  | Number      |      |      |
//! | `EN <f>*`         | Miss |             |          |             |      |      |
//! | `NS <f>*`         |      | NotStored   |          | NotStored   |      |      |
//! | `EX <f>*`         |      | Exists      | Exists   | Exists      |      |      |
//! | `NF <f>*`         |      | NotFound    | NotFound | NotFound    |      |      |
//! | `MN`              |      |             |          |             | Ok   |      |
//! | `ME <key> <k=v>*` |      |             |          |             |      | Hit  |
//! | `EN`              |      |             |          |             |      | Miss |
//!
//! Any of them may instead be answered with an error line. Anything else is malformed.

use super::values::decimal;
use super::{Malformed, ReplyKind, ReplyStatus, Scan, error_status, line_at};

/// Frames the reply at the start of `buf` to a meta command of `kind`.
pub(super) fn reply(buf: &[u8], kind: ReplyKind) -> Scan<(usize, ReplyStatus)> {
    use ReplyKind::*;
    use ReplyStatus as S;
    let Some((line, next)) = line_at(buf, 0)? else {
        return Ok(None);
    };
    if let Some(status) = error_status(line) {
        return Ok(Some((next, status)));
    }
    let (code, rest) = line.split_at_checked(2).ok_or(Malformed)?;
    let status = match (kind, code) {
        (MetaGet, b"VA") => return value(buf, rest, next, S::Hit),
        (MetaArithmetic, b"VA") => return value(buf, rest, next, S::Number),
        (MetaNoop, b"MN") if rest.is_empty() => return Ok(Some((next, S::Ok))),
        (MetaDebug, b"EN") if rest.is_empty() => return Ok(Some((next, S::Miss))),
        (MetaDebug, b"ME") if rest.len() > 1 && rest.starts_with(b" ") => {
            return Ok(Some((next, S::Hit)));
        }
        (MetaGet, b"HD") => S::Hit,
        (MetaGet, b"EN") => S::Miss,
        (MetaSet, b"HD") => S::Stored,
        (MetaDelete, b"HD") => S::Deleted,
        (MetaArithmetic, b"HD") => S::Number,
        (MetaSet | MetaArithmetic, b"NS") => S::NotStored,
        (MetaSet | MetaDelete | MetaArithmetic, b"EX") => S::Exists,
        (MetaSet | MetaDelete | MetaArithmetic, b"NF") => S::NotFound,
        _ => return Err(Malformed),
    };
    if !is_flags(rest) {
        return Err(Malformed);
    }
    Ok(Some((next, status)))
}

/// `VA` and what follows its code on the line, `rest`; the data block starts at `next`.
fn value(buf: &[u8], rest: &[u8], next: usize, status: ReplyStatus) -> Scan<(usize, ReplyStatus)> {
    let len = va_len(rest)?;
    let end = next + len + 2;
    let Some(block) = buf.get(next..end) else {
        return Ok(None);
    };
    if !block.ends_with(b"\r\n") {
        return Err(Malformed);
    }
    Ok(Some((end, status)))
}

/// The value length a `VA` line announces, `rest` being what follows its code.
pub(super) fn va_len(rest: &[u8]) -> Result<usize, Malformed> {
    let rest = rest.strip_prefix(b" ").ok_or(Malformed)?;
    let (size, flags) = rest.split_at(rest.iter().position(|&b| b == b' ').unwrap_or(rest.len()));
    // memcached's item lengths are C ints.
    let len = decimal(size)
        .and_then(|len| usize::try_from(len).ok())
        .filter(|&len| len <= i32::MAX as usize)
        .ok_or(Malformed)?;
    if !is_flags(flags) {
        return Err(Malformed);
    }
    Ok(len)
}

/// Nothing, or returned flags: ` <token>` any number of times, each token non-empty.
fn is_flags(rest: &[u8]) -> bool {
    rest.is_empty()
        || rest
            .strip_prefix(b" ")
            .is_some_and(|flags| flags.split(|&b| b == b' ').all(|flag| !flag.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::super::{ReplyParsed, parse_reply};
    use super::*;
    use ReplyKind::*;

    fn reply(consumed: usize, status: ReplyStatus) -> ReplyParsed {
        ReplyParsed::Reply { consumed, status }
    }

    #[test]
    fn each_command_has_its_codes() {
        use ReplyStatus::*;
        for (kind, line, status) in [
            (MetaGet, &b"HD\r\n"[..], Hit),
            (MetaGet, b"HD c38 ka O99 W\r\n", Hit),
            (MetaGet, b"EN\r\n", Miss),
            (MetaGet, b"EN kYQ== b O1\r\n", Miss),
            (MetaSet, b"HD c88 kYQ== b O5\r\n", Stored),
            (MetaSet, b"NS\r\n", NotStored),
            (MetaSet, b"EX\r\n", Exists),
            (MetaSet, b"NF ka\r\n", NotFound),
            (MetaDelete, b"HD ka O9\r\n", Deleted),
            (MetaDelete, b"NF O1 ka\r\n", NotFound),
            (MetaDelete, b"EX\r\n", Exists),
            (MetaArithmetic, b"HD\r\n", Number),
            (MetaArithmetic, b"NF\r\n", NotFound),
            (MetaArithmetic, b"NS\r\n", NotStored),
            (MetaArithmetic, b"EX O1\r\n", Exists),
            (MetaNoop, b"MN\r\n", Ok),
            (
                MetaDebug,
                b"ME a exp=-1 la=0 cas=176 fetch=no cls=1 size=61\r\n",
                Hit,
            ),
            (MetaDebug, b"EN\r\n", Miss),
        ] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"HD\r\n");
            assert_eq!(
                parse_reply(&buf, kind),
                reply(line.len(), status),
                "{line:?}"
            );
        }
    }

    #[test]
    fn any_command_may_be_answered_with_an_error() {
        for kind in [
            MetaGet,
            MetaSet,
            MetaDelete,
            MetaArithmetic,
            MetaNoop,
            MetaDebug,
        ] {
            for (line, status) in [
                (&b"ERROR\r\n"[..], ReplyStatus::Error),
                (b"CLIENT_ERROR bad data chunk\r\n", ReplyStatus::ClientError),
                (
                    b"SERVER_ERROR object too large for cache\r\n",
                    ReplyStatus::ServerError,
                ),
            ] {
                assert_eq!(parse_reply(line, kind), reply(line.len(), status));
            }
        }
    }

    #[test]
    fn va_reads_its_data_by_the_announced_size() {
        let buf = b"VA 8 s8 O1\r\nEN\r\nHD\r\n\r\nEN\r\n";
        assert_eq!(
            parse_reply(buf, MetaGet),
            reply(buf.len() - 4, ReplyStatus::Hit)
        );
        let buf = b"VA 20 c149 t-1\r\n18446744073709551615\r\n";
        assert_eq!(
            parse_reply(buf, MetaArithmetic),
            reply(buf.len(), ReplyStatus::Number)
        );
        assert_eq!(
            parse_reply(b"VA 0\r\n\r\n", MetaGet),
            reply(8, ReplyStatus::Hit)
        );
    }

    #[test]
    fn a_reply_is_incomplete_until_its_last_crlf() {
        let whole = b"VA 3 kabc\r\nxyz\r\n";
        for cut in 0..whole.len() {
            assert_eq!(
                parse_reply(&whole[..cut], MetaGet),
                ReplyParsed::Incomplete,
                "{cut}"
            );
        }
        for partial in [&b"H"[..], b"HD", b"HD\r", b"HD k"] {
            assert_eq!(parse_reply(partial, MetaSet), ReplyParsed::Incomplete);
        }
    }

    #[test]
    fn codes_a_command_never_gets_are_malformed() {
        for (kind, line) in [
            (MetaGet, &b"NF\r\n"[..]),
            (MetaSet, b"EN\r\n"),
            (MetaSet, b"VA 1\r\nx\r\n"),
            (MetaDelete, b"NS\r\n"),
            (MetaDelete, b"VA 1\r\nx\r\n"),
            (MetaNoop, b"HD\r\n"),
            (MetaNoop, b"MN x\r\n"),
            (MetaDebug, b"HD\r\n"),
            (MetaDebug, b"EN kfoo\r\n"),
            (MetaDebug, b"ME\r\n"),
            (MetaDebug, b"ME \r\n"),
            (MetaGet, b"END\r\n"),
            (MetaGet, b"VALUE a 0 1\r\nx\r\nEND\r\n"),
            (MetaSet, b"STORED\r\n"),
            (MetaGet, b"OK\r\n"),
        ] {
            assert_eq!(
                parse_reply(line, kind),
                ReplyParsed::Malformed,
                "{kind:?} {line:?}"
            );
        }
    }

    #[test]
    fn flags_are_single_space_separated_tokens() {
        for line in [
            &b"HD \r\n"[..],
            b"HD  k\r\n",
            b"HD k \r\n",
            b"HDk\r\n",
            b"hd\r\n",
            b"H\r\n",
            b"\r\n",
            b"HD\n",
        ] {
            assert_eq!(
                parse_reply(line, MetaGet),
                ReplyParsed::Malformed,
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_bad_va_is_malformed() {
        for buf in [
            &b"VA\r\n"[..],
            b"VA \r\n",
            b"VA x\r\n",
            b"VA -1\r\n",
            b"VA +1\r\nx\r\n",
            b"VA 1  s1\r\nx\r\n",
            b"VA 1 \r\nx\r\n",
            b"VA 2147483648\r\n",
            b"VA 1\r\nxy\r\n",
            b"VA 1\r\nx\n\r\n",
        ] {
            assert_eq!(parse_reply(buf, MetaGet), ReplyParsed::Malformed, "{buf:?}");
        }
    }
}
