//! Backend replies: what a memcached server answers the router, framed by [`parse_reply`] so
//! that a pipelined connection can hand each request its own reply.
//!
//! The router only ever sends well-formed requests, so a reply that memcached would never send
//! is [`ReplyParsed::Malformed`]: the connection is out of step or not talking to memcached,
//! and must be closed. Lines end in `\r\n`, never a bare `\n`.

mod meta;
mod values;

/// What a reply says: the one status type of the router and its plugins, owned by
/// `switchyard-sdk` (with its ABI code) and re-exported here for the parser that produces it.
pub use switchyard_sdk::ReplyStatus;
pub use values::{ValueEntry, values};

/// How the reply to a command is framed: see [`crate::Command::reply_kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyKind {
    /// `get gets gat gats`: `VALUE` entries then `END`, or one error line.
    Retrieval,
    /// Everything else but `stats`: one line (`STORED`, `NOT_FOUND`, a number, `VERSION ...`,
    /// `OK`, an error ...).
    Line,
    /// `stats`: lines up to `END`, or one line (`RESET`, `OK`, an error).
    Stats,
    /// `mg`: `VA <size> <flag>*` and a data block, `HD <flag>*`, `EN <flag>*`, or an error.
    MetaGet,
    /// `ms`: `HD`, `NS`, `EX` or `NF`, each with `<flag>*`; or an error.
    MetaSet,
    /// `md`: `HD`, `NF` or `EX`, each with `<flag>*`; or an error.
    MetaDelete,
    /// `ma`: `VA <size> <flag>*` and the number as a data block, `HD`, `NF`, `NS` or `EX`,
    /// each with `<flag>*`; or an error.
    MetaArithmetic,
    /// `mn`: `MN`.
    MetaNoop,
    /// `me`: `ME <key> <name>=<value>*`, `EN`, or an error.
    MetaDebug,
}

/// What the start of a backend's byte stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyParsed {
    /// Need more bytes.
    Incomplete,
    /// One complete reply occupying `buf[..consumed]`.
    Reply {
        /// Its length.
        consumed: usize,
        /// What it says.
        status: ReplyStatus,
    },
    /// Not something memcached sends in that place: close the connection.
    Malformed,
}

/// Longest reply line accepted. memcached's lines are short (a `VALUE` line is under 300 bytes,
/// a `STAT` line well under 1 KiB); a line longer than this is not from memcached.
pub const MAX_REPLY_LINE: usize = 8192;

/// Frames the reply at the start of `buf`, a reply of `kind`. Never panics; a `Reply`
/// consumes at least one byte.
pub fn parse_reply(buf: &[u8], kind: ReplyKind) -> ReplyParsed {
    let scanned = match kind {
        ReplyKind::Line => line_reply(buf),
        ReplyKind::Retrieval => retrieval_reply(buf),
        ReplyKind::Stats => stats_reply(buf),
        ReplyKind::MetaGet
        | ReplyKind::MetaSet
        | ReplyKind::MetaDelete
        | ReplyKind::MetaArithmetic
        | ReplyKind::MetaNoop
        | ReplyKind::MetaDebug => meta::reply(buf, kind),
    };
    match scanned {
        Ok(Some((consumed, status))) => ReplyParsed::Reply { consumed, status },
        Ok(None) => ReplyParsed::Incomplete,
        Err(Malformed) => ReplyParsed::Malformed,
    }
}

/// The start of a reply that carries one value, whose data may still be arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueHead {
    /// The header line's length, with its `\r\n`.
    pub line: usize,
    /// The value's length.
    pub len: usize,
    /// What follows the value and ends the reply: `\r\nEND\r\n` for a retrieval of one key,
    /// `\r\n` for `mg`.
    pub tail: &'static [u8],
}

impl ValueHead {
    /// The whole reply's length.
    pub fn total(&self) -> usize {
        self.line + self.len + self.tail.len()
    }
}

/// Reads the header of a reply to a one-key retrieval (`kind` [`ReplyKind::Retrieval`]) or an
/// `mg` ([`ReplyKind::MetaGet`]) if `buf` starts with a complete, well-formed `VALUE` or `VA`
/// line: where the value is and how the reply ends, so that a caller may pass a long value on
/// as it arrives instead of waiting for [`parse_reply`] to frame the whole reply. `None` for
/// any other reply, an incomplete line, or another kind.
pub fn value_head(buf: &[u8], kind: ReplyKind) -> Option<ValueHead> {
    let (line, next) = line_at(buf, 0).ok()??;
    let (len, tail): (usize, &'static [u8]) = match kind {
        ReplyKind::Retrieval => (values::header(line).ok()?.len, b"\r\nEND\r\n"),
        ReplyKind::MetaGet => (meta::va_len(line.strip_prefix(b"VA")?).ok()?, b"\r\n"),
        _ => return None,
    };
    Some(ValueHead {
        line: next,
        len,
        tail,
    })
}

/// A reply that memcached would never send.
#[derive(Debug)]
struct Malformed;

/// `Ok(None)` while incomplete.
type Scan<T> = Result<Option<T>, Malformed>;

/// The line starting at `start`: its bytes without `\r\n`, and where the next one starts.
fn line_at(buf: &[u8], start: usize) -> Scan<(&[u8], usize)> {
    let rest = buf.get(start..).unwrap_or_default();
    let Some(newline) = rest.iter().take(MAX_REPLY_LINE).position(|&b| b == b'\n') else {
        return if rest.len() >= MAX_REPLY_LINE {
            Err(Malformed)
        } else {
            Ok(None)
        };
    };
    match rest.get(..newline).and_then(|l| l.strip_suffix(b"\r")) {
        Some(line) => Ok(Some((line, start + newline + 1))),
        None => Err(Malformed),
    }
}

/// `word` alone, or followed by a space (and a message).
fn is_word(line: &[u8], word: &[u8]) -> bool {
    line.strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b" "))
}

/// The status of an error line, which may answer any command.
fn error_status(line: &[u8]) -> Option<ReplyStatus> {
    if is_word(line, b"ERROR") || line.starts_with(b"ERROR:") {
        Some(ReplyStatus::Error)
    } else if is_word(line, b"CLIENT_ERROR") {
        Some(ReplyStatus::ClientError)
    } else if is_word(line, b"SERVER_ERROR") {
        Some(ReplyStatus::ServerError)
    } else {
        None
    }
}

/// An unsigned decimal that fits in a `u64`, as `incr`/`decr` answer.
fn is_number(line: &[u8]) -> bool {
    !line.is_empty()
        && line.iter().all(u8::is_ascii_digit)
        && line
            .iter()
            .try_fold(0u64, |n, &d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .is_some()
}

fn line_reply(buf: &[u8]) -> Scan<(usize, ReplyStatus)> {
    let Some((line, next)) = line_at(buf, 0)? else {
        return Ok(None);
    };
    let status = match line {
        b"STORED" => ReplyStatus::Stored,
        b"NOT_STORED" => ReplyStatus::NotStored,
        b"EXISTS" => ReplyStatus::Exists,
        b"NOT_FOUND" => ReplyStatus::NotFound,
        b"DELETED" => ReplyStatus::Deleted,
        b"TOUCHED" => ReplyStatus::Touched,
        b"OK" => ReplyStatus::Ok,
        _ if line.starts_with(b"VERSION ") => ReplyStatus::Version,
        _ if is_number(line) => ReplyStatus::Number,
        _ => error_status(line).ok_or(Malformed)?,
    };
    Ok(Some((next, status)))
}

/// `VALUE` entries then `END`; or an error line, which memcached may also send after entries
/// (a key it refuses, running out of memory): the reply then ends there.
fn retrieval_reply(buf: &[u8]) -> Scan<(usize, ReplyStatus)> {
    let mut pos = 0;
    let mut hit = false;
    loop {
        let Some((line, next)) = line_at(buf, pos)? else {
            return Ok(None);
        };
        if line == b"END" {
            let status = if hit {
                ReplyStatus::Hit
            } else {
                ReplyStatus::Miss
            };
            return Ok(Some((next, status)));
        }
        if let Some(status) = error_status(line) {
            return Ok(Some((next, status)));
        }
        let Some(entry) = values::entry(buf, pos, line, next)? else {
            return Ok(None);
        };
        pos = entry.whole.end;
        hit = true;
    }
}

/// `STAT` (or `ITEM`, `PREFIX` ...) lines then `END`; or one line.
fn stats_reply(buf: &[u8]) -> Scan<(usize, ReplyStatus)> {
    let mut pos = 0;
    loop {
        let Some((line, next)) = line_at(buf, pos)? else {
            return Ok(None);
        };
        if pos == 0 {
            if let Some(status) = error_status(line) {
                return Ok(Some((next, status)));
            }
            if line == b"RESET" || line == b"OK" {
                return Ok(Some((next, ReplyStatus::Ok)));
            }
        }
        if line == b"END" {
            return Ok(Some((next, ReplyStatus::Ok)));
        }
        if line.is_empty() {
            return Err(Malformed);
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(consumed: usize, status: ReplyStatus) -> ReplyParsed {
        ReplyParsed::Reply { consumed, status }
    }

    #[test]
    fn one_line_replies() {
        for (line, status) in [
            (&b"STORED\r\n"[..], ReplyStatus::Stored),
            (b"NOT_STORED\r\n", ReplyStatus::NotStored),
            (b"EXISTS\r\n", ReplyStatus::Exists),
            (b"NOT_FOUND\r\n", ReplyStatus::NotFound),
            (b"DELETED\r\n", ReplyStatus::Deleted),
            (b"TOUCHED\r\n", ReplyStatus::Touched),
            (b"OK\r\n", ReplyStatus::Ok),
            (b"VERSION 1.6.18\r\n", ReplyStatus::Version),
            (b"0\r\n", ReplyStatus::Number),
            (b"18446744073709551615\r\n", ReplyStatus::Number),
            (b"ERROR\r\n", ReplyStatus::Error),
            (b"ERROR: shutdown not enabled\r\n", ReplyStatus::Error),
            (
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
                ReplyStatus::ClientError,
            ),
            (
                b"SERVER_ERROR out of memory storing object\r\n",
                ReplyStatus::ServerError,
            ),
        ] {
            let mut buf = line.to_vec();
            buf.extend_from_slice(b"STORED\r\n");
            assert_eq!(
                parse_reply(&buf, ReplyKind::Line),
                reply(line.len(), status),
                "{line:?}"
            );
        }
    }

    #[test]
    fn value_heads_say_where_the_value_is_and_how_the_reply_ends() {
        let get = b"VALUE key 5 10 77\r\n0123";
        assert_eq!(
            value_head(get, ReplyKind::Retrieval),
            Some(ValueHead {
                line: 19,
                len: 10,
                tail: b"\r\nEND\r\n"
            })
        );
        let mg = b"VA 10 s10 kkey\r\n";
        let head = value_head(mg, ReplyKind::MetaGet).expect("a VA line");
        assert_eq!((head.line, head.len, head.tail), (16, 10, &b"\r\n"[..]));
        assert_eq!(head.total(), 28);
        for (buf, kind) in [
            (&b"VALUE key 5 10"[..], ReplyKind::Retrieval),
            (b"END\r\n", ReplyKind::Retrieval),
            (b"VALUE key x 10\r\n", ReplyKind::Retrieval),
            (b"VA 10 s10\r\n", ReplyKind::MetaArithmetic),
            (b"HD\r\n", ReplyKind::MetaGet),
            (b"VA -1\r\n", ReplyKind::MetaGet),
            (b"VALUE k 0 1\r\n", ReplyKind::Line),
        ] {
            assert_eq!(value_head(buf, kind), None, "{buf:?}");
        }
    }

    #[test]
    fn a_line_is_incomplete_until_its_crlf() {
        for partial in [&b""[..], b"STO", b"STORED", b"STORED\r"] {
            assert_eq!(
                parse_reply(partial, ReplyKind::Line),
                ReplyParsed::Incomplete
            );
        }
    }

    #[test]
    fn lines_memcached_never_sends_are_malformed() {
        for line in [
            &b"STORED\n"[..],
            b"\r\n",
            b"stored\r\n",
            b"STORED \r\n",
            b"END\r\n",
            b"VALUE k 0 1\r\n",
            b"18446744073709551616\r\n",
            b"-1\r\n",
            b"ERRORS\r\n",
            b"VERSION\r\n",
        ] {
            assert_eq!(
                parse_reply(line, ReplyKind::Line),
                ReplyParsed::Malformed,
                "{line:?}"
            );
        }
        let endless = vec![b'1'; MAX_REPLY_LINE];
        assert_eq!(
            parse_reply(&endless, ReplyKind::Line),
            ReplyParsed::Malformed
        );
        assert_eq!(
            parse_reply(&endless[1..], ReplyKind::Line),
            ReplyParsed::Incomplete
        );
    }

    #[test]
    fn a_retrieval_miss_is_just_end() {
        assert_eq!(
            parse_reply(b"END\r\nEND\r\n", ReplyKind::Retrieval),
            reply(5, ReplyStatus::Miss)
        );
    }

    #[test]
    fn a_retrieval_hit_reads_data_by_its_announced_length() {
        let buf = b"VALUE a 0 7\r\n\r\nEND\r\n\r\nVALUE b 1 0 99\r\n\r\nEND\r\nVALUE";
        assert_eq!(
            parse_reply(buf, ReplyKind::Retrieval),
            reply(buf.len() - 5, ReplyStatus::Hit)
        );
    }

    #[test]
    fn a_retrieval_reply_may_be_an_error() {
        let buf = b"SERVER_ERROR out of memory writing get response\r\n";
        assert_eq!(
            parse_reply(buf, ReplyKind::Retrieval),
            reply(buf.len(), ReplyStatus::ServerError)
        );
        let buf = b"VALUE a 0 1\r\nx\r\nCLIENT_ERROR bad command line format\r\n";
        assert_eq!(
            parse_reply(buf, ReplyKind::Retrieval),
            reply(buf.len(), ReplyStatus::ClientError)
        );
        assert_eq!(
            parse_reply(b"ERROR\r\n", ReplyKind::Retrieval),
            reply(7, ReplyStatus::Error)
        );
    }

    #[test]
    fn a_retrieval_is_incomplete_until_end() {
        let whole = b"VALUE a 0 3\r\nabc\r\nVALUE b 0 0 5\r\n\r\nEND\r\n";
        for cut in 0..whole.len() {
            assert_eq!(
                parse_reply(&whole[..cut], ReplyKind::Retrieval),
                ReplyParsed::Incomplete,
                "{cut}"
            );
        }
        assert_eq!(
            parse_reply(whole, ReplyKind::Retrieval),
            reply(whole.len(), ReplyStatus::Hit)
        );
    }

    #[test]
    fn retrieval_replies_memcached_never_sends_are_malformed() {
        for buf in [
            &b"STORED\r\n"[..],
            b"VALUE a 0 1\r\nxy\r\nEND\r\n",
            b"VALUE a 0 1\r\nx\nEND\r\n",
            b"VALUE a 0\r\nEND\r\n",
            b"VALUE a 0 1 2 3\r\nx\r\nEND\r\n",
            b"VALUE a x 1\r\nx\r\nEND\r\n",
            b"VALUE a 0 -1\r\nEND\r\n",
            b"VALUE a 4294967296 1\r\nx\r\nEND\r\n",
            b"VALUE  a 0 1\r\nx\r\nEND\r\n",
            b"VALUE a 0 1 \r\nx\r\nEND\r\n",
            b"VALUE a 0 2147483648\r\n",
            b"END \r\n",
        ] {
            assert_eq!(
                parse_reply(buf, ReplyKind::Retrieval),
                ReplyParsed::Malformed,
                "{buf:?}"
            );
        }
        let long_key = format!("VALUE {} 0 1\r\nx\r\nEND\r\n", "k".repeat(251));
        assert_eq!(
            parse_reply(long_key.as_bytes(), ReplyKind::Retrieval),
            ReplyParsed::Malformed
        );
    }

    #[test]
    fn stats_run_to_end() {
        let buf = b"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\nSTAT";
        assert_eq!(
            parse_reply(buf, ReplyKind::Stats),
            reply(buf.len() - 4, ReplyStatus::Ok)
        );
        assert_eq!(
            parse_reply(b"END\r\n", ReplyKind::Stats),
            reply(5, ReplyStatus::Ok)
        );
        assert_eq!(
            parse_reply(b"STAT pid 1\r\n", ReplyKind::Stats),
            ReplyParsed::Incomplete
        );
        assert_eq!(
            parse_reply(b"RESET\r\n", ReplyKind::Stats),
            reply(7, ReplyStatus::Ok)
        );
        assert_eq!(
            parse_reply(b"ERROR\r\n", ReplyKind::Stats),
            reply(7, ReplyStatus::Error)
        );
        assert_eq!(
            parse_reply(b"STAT pid 1\n", ReplyKind::Stats),
            ReplyParsed::Malformed
        );
        assert_eq!(
            parse_reply(b"STAT pid 1\r\n\r\n", ReplyKind::Stats),
            ReplyParsed::Malformed
        );
    }
}
