//! Sans-IO reader of memcached text-protocol replies to `set` and `get`.
//!
//! [`ReplyReader::parse`] takes the bytes received so far and the request the reply answers, and
//! says how many of those bytes it used and whether the reply is complete. It keeps its place
//! inside a reply, so a `VALUE` block is consumed as it streams in: a 4 MiB value never has to
//! sit whole in the caller's buffer, and no byte is looked at twice. "Incomplete" is an ordinary
//! outcome; anything that is not a well-formed answer to the request in flight is
//! [`Malformed`], after which the stream cannot be trusted and the caller reconnects.
//!
//! What is checked: every line ends in `\r\n`; a `set` gets `STORED`; a `get` gets `VALUE`
//! blocks only for keys it asked for, each at most once, each exactly as long as its header says
//! and followed by `\r\n`, then `END`. `ERROR`, `CLIENT_ERROR ...` and `SERVER_ERROR ...` end a
//! reply wherever they come (memcached ends a `get` it cannot finish with a `SERVER_ERROR`), and
//! leave the stream in step.

use std::fmt;
use std::fmt::Write as _;

use crate::keys::KeySpace;

/// The longest reply line accepted: a `VALUE` header (a key of at most 250 bytes and three
/// numbers) or an error message is far shorter; a longer line means the stream is lost.
pub const MAX_LINE: usize = 8192;

/// The largest value a `VALUE` header may announce: memcached's own ceiling (`-I 1024m`).
pub const MAX_VALUE_BYTES: usize = 1 << 30;

/// The request a reply answers.
#[derive(Debug, Clone, Copy)]
pub enum Expect<'a> {
    /// A `set`: `STORED`.
    Stored,
    /// A `get` of these keys: `VALUE` blocks for some of them, then `END`.
    Values(&'a [u32]),
}

/// An error reply from the server: well-formed, and the stream is still in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReply {
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR <message>`.
    ClientError,
    /// `SERVER_ERROR <message>`.
    ServerError,
}

/// A complete reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// `STORED`, to a `set`.
    Stored,
    /// `VALUE` blocks and `END`, to a `get`: how many of its keys were found and not.
    Values { hits: u32, misses: u32 },
    /// An error line, to either.
    Failed(ErrorReply),
}

/// How far [`ReplyReader::parse`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The reply goes on past the bytes given.
    Incomplete,
    /// The reply ended within them.
    Complete(Reply),
}

/// Bytes that are not a well-formed reply to the request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// What was wrong.
    pub reason: &'static str,
    /// The start of the offending bytes, escaped.
    pub near: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: \"{}\"", self.reason, self.near)
    }
}

impl std::error::Error for Malformed {}

/// How many of the offending bytes a [`Malformed`] quotes.
const QUOTED: usize = 60;

pub fn malformed(reason: &'static str, near: &[u8]) -> Malformed {
    let quoted = &near[..near.len().min(QUOTED)];
    Malformed {
        reason,
        near: quoted.escape_ascii().to_string(),
    }
}

/// Where the reader is in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between replies: the next line starts a new one.
    Start,
    /// Inside a `get` reply, at the start of a line: `VALUE`, `END` or an error.
    Line,
    /// Inside a value block: `left` bytes to go, the last two of which must be `\r\n`.
    Data { left: usize },
}

/// Reads the replies of one connection, one after the other.
#[derive(Debug)]
pub struct ReplyReader {
    keys: KeySpace,
    state: State,
    /// `VALUE` blocks so far in the current reply.
    hits: u32,
    /// Which of the requested keys have had their `VALUE` block (reused from reply to reply).
    seen: Vec<bool>,
    /// The last error line, escaped and cut short (reused, so errors do not allocate).
    error_line: String,
}

impl ReplyReader {
    pub fn new(keys: KeySpace) -> Self {
        Self {
            keys,
            state: State::Start,
            hits: 0,
            seen: Vec::new(),
            error_line: String::new(),
        }
    }

    /// The line of the last [`Reply::Failed`], for reports: `SERVER_ERROR out of memory`.
    pub fn error_line(&self) -> &str {
        &self.error_line
    }

    /// Forgets a reply half read (after a reconnect).
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.hits = 0;
    }

    /// Reads on in the current reply, which answers `expect`, from `buf`: the bytes received
    /// after those already consumed. Returns how many bytes of `buf` it consumed (a partial line
    /// is left for the next call, with more bytes after it) and whether the reply ended. The
    /// caller passes the same `expect` until the reply is complete.
    pub fn parse(
        &mut self,
        buf: &[u8],
        expect: Expect<'_>,
    ) -> Result<(usize, Progress), Malformed> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Data { mut left } => {
                    let body = left.saturating_sub(2).min(buf.len() - pos);
                    pos += body;
                    left -= body;
                    while (1..=2).contains(&left) && pos < buf.len() {
                        if buf[pos] != b"\r\n"[2 - left] {
                            return Err(malformed(
                                "value length differs from its VALUE header",
                                &buf[pos..],
                            ));
                        }
                        pos += 1;
                        left -= 1;
                    }
                    if left > 0 {
                        self.state = State::Data { left };
                        return Ok((pos, Progress::Incomplete));
                    }
                    self.state = State::Line;
                }
                State::Start | State::Line => {
                    let rest = &buf[pos..];
                    let window = &rest[..rest.len().min(MAX_LINE)];
                    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
                        if rest.len() >= MAX_LINE {
                            return Err(malformed("reply line longer than 8192 bytes", rest));
                        }
                        return Ok((pos, Progress::Incomplete));
                    };
                    let Some(line) = rest[..newline].strip_suffix(b"\r") else {
                        return Err(malformed("reply line not ended by \\r\\n", rest));
                    };
                    if self.state == State::Start {
                        self.begin(expect);
                    }
                    pos += newline + 1;
                    if let Some(reply) = self.line(line, expect)? {
                        self.state = State::Start;
                        return Ok((pos, Progress::Complete(reply)));
                    }
                }
            }
        }
    }

    fn begin(&mut self, expect: Expect<'_>) {
        self.state = State::Line;
        self.hits = 0;
        self.seen.clear();
        if let Expect::Values(keys) = expect {
            self.seen.resize(keys.len(), false);
        }
    }

    /// One whole line (without its `\r\n`): the reply if it ends here.
    fn line(&mut self, line: &[u8], expect: Expect<'_>) -> Result<Option<Reply>, Malformed> {
        if let Some(error) = error_reply(line) {
            self.error_line.clear();
            let quoted = &line[..line.len().min(QUOTED)];
            write!(self.error_line, "{}", quoted.escape_ascii()).ok();
            return Ok(Some(Reply::Failed(error)));
        }
        match expect {
            Expect::Stored if line == b"STORED" => Ok(Some(Reply::Stored)),
            Expect::Stored => Err(malformed("not a reply to a set", line)),
            Expect::Values(keys) if line == b"END" => {
                let requested = u32::try_from(keys.len()).unwrap_or(u32::MAX);
                Ok(Some(Reply::Values {
                    hits: self.hits,
                    misses: requested.saturating_sub(self.hits),
                }))
            }
            Expect::Values(keys) => match line.strip_prefix(b"VALUE ") {
                Some(header) => {
                    let left = self.value_header(header, keys, line)?;
                    self.state = State::Data { left };
                    Ok(None)
                }
                None => Err(malformed("not a reply to a get", line)),
            },
        }
    }

    /// Checks `VALUE <key> <flags> <bytes> [<cas>]` against the keys requested; returns the
    /// length of the block that follows, `\r\n` included.
    fn value_header(
        &mut self,
        header: &[u8],
        keys: &[u32],
        line: &[u8],
    ) -> Result<usize, Malformed> {
        let mut fields = header.split(|&b| b == b' ');
        let key = fields.next().unwrap_or_default();
        let flags = fields.next().and_then(parse_u64);
        if flags.is_none_or(|flags| flags > u64::from(u32::MAX)) {
            return Err(malformed("VALUE with bad flags", line));
        }
        let Some(bytes) = fields
            .next()
            .and_then(parse_u64)
            .and_then(|bytes| usize::try_from(bytes).ok())
            .filter(|&bytes| bytes <= MAX_VALUE_BYTES)
        else {
            return Err(malformed("VALUE with a bad length", line));
        };
        if let Some(cas) = fields.next()
            && parse_u64(cas).is_none()
        {
            return Err(malformed("VALUE with a bad cas", line));
        }
        if fields.next().is_some() {
            return Err(malformed("VALUE with extra fields", line));
        }
        let Some(n) = self.keys.parse(key) else {
            return Err(malformed("VALUE for a key that was not requested", line));
        };
        let slot = keys
            .iter()
            .zip(self.seen.iter_mut())
            .find(|(k, seen)| **k == n && !**seen);
        match slot {
            Some((_, seen)) => *seen = true,
            None if keys.contains(&n) => {
                return Err(malformed("VALUE for the same key twice", line));
            }
            None => return Err(malformed("VALUE for a key that was not requested", line)),
        }
        self.hits = self.hits.saturating_add(1);
        Ok(bytes + 2)
    }
}

/// The error a line reports, if it is an error line.
fn error_reply(line: &[u8]) -> Option<ErrorReply> {
    let word = line.split(|&b| b == b' ').next().unwrap_or_default();
    match word {
        b"ERROR" => Some(ErrorReply::Error),
        b"CLIENT_ERROR" => Some(ErrorReply::ClientError),
        b"SERVER_ERROR" => Some(ErrorReply::ServerError),
        _ => None,
    }
}

/// A decimal number of digits only (no sign, no spaces), if it fits a `u64`.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests;
