//! Client requests: what a client may send, and [`parse_request`], which reads one request from
//! the bytes received so far and says what memcached 1.6 would do with anything else.
//!
//! memcached's behaviour on bad input is part of the protocol clients see, so it is reproduced
//! exactly: the reply, and how many bytes are dropped before the next command is read. A storage
//! command with a bad line does *not* drop its data block (that is then read as commands); a
//! bad data block drops exactly the announced length plus two; a value over the size limit has
//! its data swallowed ([`Parsed::Swallow`]). Errors on a line ending in `noreply` are silent.
//! The meta commands differ: see `request/meta.rs`.

mod admin;
mod command;
mod keyed;
mod line;
mod meta;
mod number;
mod retrieval;
mod storage;
mod tokens;

use std::ops::Range;

pub use command::Command;

use crate::base64::{self, DECODED_KEY_BUF};
use crate::limits::Limits;
use crate::replies;
use line::Framed;
use tokens::Tokens;

/// One well-formed request. Every range indexes the buffer given to [`parse_request`].
///
/// A field a command does not have is zero, `false`, `None`, or an empty range at `line.end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub command: Command,
    /// The command line as memcached reads it: without its `\r\n` or `\n`, and cut at a NUL
    /// byte if it has one (memcached ignores the rest of such a line).
    pub line: Range<usize>,
    /// The key; for the get family, the first key. A `gat`/`gats` may have no key at all
    /// (memcached answers `END`): then this is empty, as it is for `mn`. For a meta command
    /// with the `b` flag, the key as sent, in base64: see [`Request::routing_key`].
    pub key: Range<usize>,
    /// Get family: from the first key to the end of the last, split by [`Request::keys`].
    /// Other commands: the same as `key`.
    pub keys: Range<usize>,
    /// Storage commands: the client flags; meta commands: the `F` flag's.
    pub flags: u32,
    /// Storage commands, `touch`, `gat`, `gats`: the expiry time; `flush_all`: its delay;
    /// meta commands: the `T` flag's TTL. Always within `i32` (memcached truncates larger
    /// numbers to 32 bits, and so does this).
    pub exptime: i64,
    /// `cas`: the CAS unique; meta commands: the `C` flag's.
    pub cas: u64,
    /// `incr`/`decr`: the amount; `ma`: the `D` flag's, 1 without one.
    pub delta: u64,
    /// `verbosity`: the level.
    pub level: u32,
    /// `stats`: its arguments (`items`, `slabs`, `reset` ...), empty for plain `stats`.
    pub args: Range<usize>,
    /// Storage commands and `ms`: the data, without its trailing `\r\n`.
    pub value: Range<usize>,
    /// The client asked for no reply. memcached then also keeps its error replies to itself.
    /// Never set for a meta command, whose `q` flag hushes only some replies: see `quiet`.
    pub noreply: bool,
    /// Where ` noreply` starts (an index of the buffer, like the ranges): the line up to here is
    /// the line without it, as `noreply` is always the last token. The router forwards that, so
    /// that it always sees the backend's reply.
    pub noreply_at: Option<usize>,
    /// Meta commands: the flag tokens, from the first one's start to the last one's end, split
    /// by [`Request::meta_flags`]. For `me`, everything after the key (memcached only looks at
    /// a `b` right after it).
    pub meta_flags: Range<usize>,
    /// Meta commands: the `b` flag, the key is base64; memcached stores and the router routes
    /// it by its decoded bytes ([`crate::decode_key`], [`Request::routing_key`]).
    pub base64: bool,
    /// Meta commands: the `q` flag. memcached then hushes the nominal reply only (`EN` to `mg`,
    /// `HD` to `ms`, `md`, `ma`): see [`Command::quiet_hides`].
    pub quiet: bool,
    /// Meta commands with `q`: the `q` token and the spaces before it, the part of the line the
    /// router cuts out when it forwards the request ([`Request::forwarded_pieces`]), so that
    /// the backend answers every outcome.
    pub quiet_span: Option<Range<usize>>,
    /// Meta commands: the `O` flag's opaque token (without the `O`, up to 31 bytes, possibly
    /// empty), which memcached copies into its reply.
    pub opaque: Option<Range<usize>>,
    /// `ms`, `ma`: the `M` flag's mode character (`ms`: `E` add, `A` append, `P` prepend, `R`
    /// replace, `S` set; `ma`: `I`/`+` incr, `D`/`-` decr). Given to other meta commands too,
    /// which ignore it.
    pub mode: Option<u8>,
}

impl Request {
    /// A request for `command` on `line`, its other fields still empty.
    fn new(command: Command, line: Range<usize>) -> Request {
        let none = line.end..line.end;
        Request {
            command,
            key: none.clone(),
            keys: none.clone(),
            flags: 0,
            exptime: 0,
            cas: 0,
            delta: 0,
            level: 0,
            args: none.clone(),
            value: none.clone(),
            noreply: false,
            noreply_at: None,
            meta_flags: none,
            base64: false,
            quiet: false,
            quiet_span: None,
            opaque: None,
            mode: None,
            line,
        }
    }

    /// Each key, in the client's order (duplicates kept). `buf` is the parsed buffer, or any
    /// buffer starting with the same bytes.
    pub fn keys<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = Range<usize>> + use<'b> {
        tokens::words(buf, self.keys.clone())
    }

    /// Meta commands: each flag token, in the client's order.
    pub fn meta_flags<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = Range<usize>> + use<'b> {
        tokens::words(buf, self.meta_flags.clone())
    }

    /// Meta commands: the flag tokens a backend is sent, all but `q`.
    pub fn forwarded_flags<'b>(
        &self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = Range<usize>> + use<'b> {
        let quiet = self.quiet_span.clone().unwrap_or_default();
        self.meta_flags(buf)
            .filter(move |flag| !quiet.contains(&flag.start))
    }

    /// The key a request is routed by: the key, or for a meta command with the `b` flag the key
    /// decoded into `out`. (A request [`parse_request`] accepted always decodes; should it not,
    /// this is the key as sent.)
    pub fn routing_key<'a>(&self, buf: &'a [u8], out: &'a mut [u8; DECODED_KEY_BUF]) -> &'a [u8] {
        let key = buf.get(self.key.clone()).unwrap_or_default();
        if !self.base64 {
            return key;
        }
        match base64::decode_key(key, out) {
            Some(decoded) => decoded,
            None => key,
        }
    }

    /// What a backend is sent of the command line, in two pieces to be sent one after the
    /// other (the second is often empty), then `\r\n`: the line without ` noreply`, and for a
    /// meta command without its `q` flag, which may be anywhere among the flags. See
    /// [`crate::compose::forwarded_line`] to write them out.
    pub fn forwarded_pieces(&self) -> [Range<usize>; 2] {
        match &self.quiet_span {
            Some(q) => [self.line.start..q.start, q.end..self.line.end],
            None => [self.forwarded_line(), self.line.end..self.line.end],
        }
    }

    /// The command line without ` noreply`. This is the whole forwarded line except for a meta
    /// command with `q`, where it is only the first of [`Request::forwarded_pieces`], which
    /// is what to forward in general.
    pub fn forwarded_line(&self) -> Range<usize> {
        match &self.quiet_span {
            Some(q) => self.line.start..q.start,
            None => self.line.start..self.noreply_at.unwrap_or(self.line.end),
        }
    }

    /// Storage commands and `ms`: the data block as sent, `value` and its `\r\n`; empty
    /// otherwise.
    pub fn data_block(&self) -> Range<usize> {
        if self.command.has_data_block() {
            self.value.start..self.value.end + 2
        } else {
            self.value.clone()
        }
    }
}

/// What the start of a client's byte stream holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes; nothing consumed.
    Incomplete,
    /// One complete request occupying `buf[..consumed]`.
    Request {
        /// The request.
        request: Request,
        /// Its length: line, and data block if any.
        consumed: usize,
    },
    /// Bad input: send `reply` (if any: memcached is silent about errors on a `noreply` line),
    /// drop `consumed` bytes, and carry on parsing.
    Invalid {
        /// The exact reply memcached sends, e.g. `ERROR\r\n`; `None` when `noreply` hushes it.
        reply: Option<&'static [u8]>,
        /// How many bytes memcached drops: the line, or line and data block for a bad one.
        consumed: usize,
    },
    /// A storage command or `ms` refused before its data block arrived (a value over the size
    /// limit, or an `ms` with bad flags): send `reply` if any, drop `consumed` bytes (the line),
    /// then throw away the next `discard` bytes of the stream, some of which may not have
    /// arrived yet, before parsing again.
    Swallow {
        /// What memcached answers (it sends it once the swallowing is over), if anything.
        reply: Option<&'static [u8]>,
        /// The command line.
        consumed: usize,
        /// The announced data length plus two for its `\r\n`: dropped whatever it holds.
        discard: usize,
        /// A `set` or `ms` (in any mode) refused as too large also deletes the key's old value
        /// in memcached, so that a stale value does not outlive the failed store: the key to
        /// delete (with a `delete <key> noreply` routed like any request), for those only.
        delete: Option<Range<usize>>,
        /// The key to delete is an `ms` key in base64 (`b` flag): route it by its decoded bytes
        /// and delete it with `md <key> b` ([`crate::compose::meta`]), as `delete` cannot
        /// carry a binary key.
        delete_base64: bool,
    },
    /// A storage command or `ms` whose line is complete and whose value, of at least
    /// [`Limits::stream_from`] bytes, has not all arrived: the caller may pass the data block on
    /// as it arrives. `request.value` then reaches past the end of the buffer. Parsing again
    /// with more bytes gives the same answer, or [`Parsed::Request`] once the block is whole.
    /// The block's `\r\n` is not checked: whoever receives the block judges it, and memcached
    /// answers a bad one with `CLIENT_ERROR bad data chunk`, as it would to the client.
    Stream {
        /// The request; every range but `value` indexes the buffer.
        request: Request,
        /// The length of the command line with its terminator.
        line: usize,
        /// The length of the data block: the value and its `\r\n`.
        block: usize,
    },
    /// Close the connection, after writing the replies to earlier requests: an unterminated
    /// line over [`Limits::max_line_len`] that is not a `get`, an HTTP request line, or a line
    /// over [`Limits::line_cap`].
    Close {
        /// What to send before closing: nothing in the cases memcached closes on, and
        /// [`replies::LINE_TOO_LONG`] for a line over the cap.
        reply: Option<&'static [u8]>,
    },
}

/// Reads the request at the start of `buf`. Never panics, whatever `buf` holds; anything but
/// [`Parsed::Incomplete`] and [`Parsed::Close`] consumes at least one byte.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Parsed {
    let (range, consumed) = match line::frame(buf, limits.max_line_len, limits.line_cap) {
        Framed::Incomplete => return Parsed::Incomplete,
        Framed::Close => return Parsed::Close { reply: None },
        Framed::TooLong => {
            return Parsed::Close {
                reply: Some(replies::LINE_TOO_LONG),
            };
        }
        Framed::Line { line, consumed } => (line, consumed),
    };
    let line = Line {
        buf,
        tokens: Tokens::split(buf, range.clone()),
        range,
        consumed,
    };
    let name = line.tokens.get(0);
    // No command is shorter than two bytes; this also catches empty lines.
    if name.len() < 2 {
        return line.error(replies::ERROR);
    }
    // memcached dispatches on the first byte, and says ERROR to whatever it does not know in
    // a family; only names outside those families may be an HTTP request.
    match name {
        [b'm', _] => meta::parse(&line, limits),
        [b'g', ..] if line.tokens.len() < 2 => line.error(replies::ERROR),
        b"get" => retrieval::parse(&line, Command::Get, limits),
        b"gets" => retrieval::parse(&line, Command::Gets, limits),
        b"gat" => retrieval::parse(&line, Command::Gat, limits),
        b"gats" => retrieval::parse(&line, Command::Gats, limits),
        b"set" => storage::parse(&line, Command::Set, limits),
        b"add" => storage::parse(&line, Command::Add, limits),
        b"append" => storage::parse(&line, Command::Append, limits),
        b"cas" => storage::parse(&line, Command::Cas, limits),
        b"stats" => admin::stats(&line),
        b"incr" => keyed::arithmetic(&line, Command::Incr, limits),
        b"decr" => keyed::arithmetic(&line, Command::Decr, limits),
        b"delete" => keyed::delete(&line, limits),
        b"touch" => keyed::touch(&line, limits),
        [b'g' | b's' | b'a' | b'c' | b'i' | b'd' | b't', ..] => line.error(replies::ERROR),
        b"replace" => storage::parse(&line, Command::Replace, limits),
        b"prepend" => storage::parse(&line, Command::Prepend, limits),
        b"bget" if line.tokens.len() >= 2 => retrieval::parse(&line, Command::Get, limits),
        b"flush_all" => admin::flush_all(&line),
        b"version" => line.request(Request::new(Command::Version, line.range.clone())),
        b"quit" => line.request(Request::new(Command::Quit, line.range.clone())),
        b"verbosity" => admin::verbosity(&line),
        // memcached commands the router does not serve.
        b"bget" | b"lru_crawler" | b"watch" | b"lru" | b"extstore" | b"refresh_certs" => {
            line.error(replies::ERROR)
        }
        _ if line.tokens.last().starts_with(b"HTTP/") => Parsed::Close { reply: None },
        _ => line.error(replies::ERROR),
    }
}

/// A complete command line, as the command families see it.
#[derive(Debug)]
struct Line<'a> {
    buf: &'a [u8],
    /// What memcached reads of the line.
    range: Range<usize>,
    /// The line's length with its terminator.
    consumed: usize,
    tokens: Tokens<'a>,
}

impl Line<'_> {
    /// memcached's `set_noreply_maybe`: if the last token is `noreply`, where its space is.
    fn noreply_at(&self) -> Option<usize> {
        let last = self.tokens.len().checked_sub(1)?;
        (last > 0 && self.tokens.get(last) == b"noreply").then(|| self.tokens.span(last).start - 1)
    }

    /// Answers the line with `reply`, dropping only the line.
    fn error(&self, reply: &'static [u8]) -> Parsed {
        Parsed::Invalid {
            reply: Some(reply),
            consumed: self.consumed,
        }
    }

    /// Answers the line with `reply` unless it asked for no reply, dropping only the line.
    fn error_unless(&self, noreply: bool, reply: &'static [u8]) -> Parsed {
        Parsed::Invalid {
            reply: (!noreply).then_some(reply),
            consumed: self.consumed,
        }
    }

    /// A request of just this line.
    fn request(&self, request: Request) -> Parsed {
        Parsed::Request {
            request,
            consumed: self.consumed,
        }
    }

    /// From the start of token `first` to the end of the line's last word; the line has more
    /// than `first` tokens.
    fn words_from(&self, first: usize) -> Range<usize> {
        let start = self.tokens.span(first).start;
        let end = tokens::words(self.buf, start..self.range.end)
            .last()
            .map_or(start, |w| w.end);
        start..end
    }

    /// Answers the line with `reply` (if any) and drops it and the `len` bytes of data and
    /// `\r\n` after it, deleting the key at `delete` if there is one.
    fn swallow(
        &self,
        len: usize,
        reply: Option<&'static [u8]>,
        delete: Option<Range<usize>>,
        delete_base64: bool,
    ) -> Parsed {
        Parsed::Swallow {
            reply,
            consumed: self.consumed,
            discard: len + 2,
            delete,
            delete_base64,
        }
    }

    /// `request` with the data block of `len` bytes after the line, once all of it and its
    /// `\r\n` have arrived. Data that does not end in `\r\n` is a bad data chunk, answered
    /// unless `noreply`, and dropped with the line. A long value still arriving is a
    /// [`Parsed::Stream`] under `limits`.
    fn with_data(
        &self,
        mut request: Request,
        len: usize,
        noreply: bool,
        limits: &Limits,
    ) -> Parsed {
        let end = self.consumed + len + 2;
        let Some(block) = self.buf.get(self.consumed..end) else {
            if len >= limits.stream_from {
                request.value = self.consumed..self.consumed + len;
                return Parsed::Stream {
                    request,
                    line: self.consumed,
                    block: len + 2,
                };
            }
            return Parsed::Incomplete;
        };
        if !block.ends_with(b"\r\n") {
            return Parsed::Invalid {
                reply: (!noreply).then_some(replies::BAD_DATA_CHUNK),
                consumed: end,
            };
        }
        request.value = self.consumed..self.consumed + len;
        Parsed::Request {
            request,
            consumed: end,
        }
    }
}

/// What the command families' unit tests share.
#[cfg(test)]
mod test_support {
    use super::{Parsed, Request, parse_request};
    use crate::limits::Limits;

    /// Parses `buf` with the default limits.
    pub(super) fn parse(buf: &[u8]) -> Parsed {
        parse_request(buf, &Limits::default())
    }

    /// The request `buf` holds, which is exactly the whole of `buf`.
    pub(super) fn request(buf: &[u8]) -> Request {
        match parse(buf) {
            Parsed::Request { request, consumed } => {
                assert_eq!(consumed, buf.len());
                request
            }
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::parse;
    use super::*;

    fn error(buf: &[u8]) -> Parsed {
        Parsed::Invalid {
            reply: Some(replies::ERROR),
            consumed: buf.len(),
        }
    }

    #[test]
    fn empty_blank_and_one_letter_lines_are_errors() {
        for line in [
            &b"\r\n"[..],
            b"\n",
            b"   \r\n",
            b"a\r\n",
            b"\0get a\r\n",
            b"\r\r\n",
        ] {
            assert_eq!(parse(line), error(line), "{line:?}");
        }
    }

    #[test]
    fn commands_are_case_sensitive() {
        assert_eq!(parse(b"GET a\r\n"), error(b"GET a\r\n"));
        assert_eq!(parse(b"Version\r\n"), error(b"Version\r\n"));
    }

    #[test]
    fn unknown_names_in_a_known_family_are_errors_even_for_http() {
        for line in [
            &b"gxx a HTTP/1.1\r\n"[..],
            b"sxx / HTTP/1.1\r\n",
            b"tx / HTTP/1.1\r\n",
            b"mx HTTP/1.1\r\n",
        ] {
            assert_eq!(parse(line), error(line), "{line:?}");
        }
    }

    #[test]
    fn an_http_request_line_closes_the_connection() {
        for line in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"xx a HTTP/\r\n",
            b"HTTP/1.1\r\n",
            b"mxx / HTTP/1.0\n",
        ] {
            assert_eq!(parse(line), Parsed::Close { reply: None }, "{line:?}");
        }
        // Only the last token counts.
        assert_eq!(parse(b"xx HTTP/ a\r\n"), error(b"xx HTTP/ a\r\n"));
    }

    #[test]
    fn memcached_commands_the_router_does_not_serve_are_errors() {
        for line in [
            &b"shutdown\r\n"[..],
            b"slabs automove 1\r\n",
            b"watch HTTP/1.1\r\n",
        ] {
            assert_eq!(parse(line), error(line), "{line:?}");
        }
    }

    #[test]
    fn version_and_quit_ignore_their_arguments() {
        let Parsed::Request {
            request,
            consumed: 13,
        } = parse(b"version a b\r\n")
        else {
            panic!()
        };
        assert_eq!(request, Request::new(Command::Version, 0..11));
        let Parsed::Request {
            request,
            consumed: 5,
        } = parse(b"quit\nget a\r\n")
        else {
            panic!()
        };
        assert_eq!(request.command, Command::Quit);
    }

    #[test]
    fn a_request_says_where_its_forwarded_line_and_data_block_are() {
        let buf = b"set k 0 0 2 noreply\r\nhi\r\n";
        let Parsed::Request { request, .. } = parse(buf) else {
            panic!()
        };
        assert_eq!(&buf[request.forwarded_line()], b"set k 0 0 2");
        assert_eq!(&buf[request.data_block()], b"hi\r\n");
        let Parsed::Request { request, .. } = parse(b"get a\r\n") else {
            panic!()
        };
        assert_eq!(request.forwarded_line(), 0..5);
        assert_eq!(request.data_block(), 5..5);
    }
}
