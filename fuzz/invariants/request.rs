//! The properties of `parse_request` on arbitrary bytes, under memcached's limits and under
//! tiny ones (so that the size checks, the swallowing of large values and the runaway-line
//! close are reached with short inputs). Beyond "never panics", each input checks:
//!
//! 1. every outcome but `Incomplete`/`Close` consumes at least one byte and at most the input,
//!    and a request's ranges lie inside what it consumed;
//! 2. the bytes of the first outcome alone give the same outcome, and one byte fewer is
//!    `Incomplete` (or `Close`, for a long line whose newline has not arrived);
//! 3. split in two anywhere, the first part gives either `Incomplete` or the same first
//!    outcome as the whole (a `Close` of an unterminated long line is the one exception: that
//!    depends on how the line arrives, in memcached too);
//! 4. a request's forwarded bytes (line without `noreply` or a meta command's `q` flag, then
//!    its data block) parse back to the same request, `noreply` and `q` aside: the router always
//!    sees the backend's reply;
//! 5. a session (the router's own `Framer`) fed the input in two pieces sees the same outcomes
//!    as one fed it whole;
//! 6. with streaming on (`Limits::stream_from`), the outcome is the one without it, except
//!    that a long value still arriving is a `Stream` where it was `Incomplete`; and that
//!    stream's request is the one parsed once its data block has arrived.
//!
//! Shared by the fuzz target (`fuzz_targets/parse_request.rs`) and the regression test that
//! replays kept inputs (`host/protocol/tests/regressions.rs`), which include this file by path.

use std::ops::Range;

use switchyard_protocol::{
    Command, DECODED_KEY_BUF, Framed, Framer, Limits, Parsed, Request, compose, parse_request,
};

/// Small enough that short inputs reach every limit.
const TINY: Limits = Limits {
    max_key_len: 8,
    max_value_len: 16,
    max_line_len: 64,
    line_cap: 128,
    stream_from: usize::MAX,
};

/// [`TINY`], streaming values of four bytes and more.
const STREAMING: Limits = Limits {
    stream_from: 4,
    ..TINY
};

/// Checks every property of `buf`, under memcached's limits and under [`TINY`] ones; panics
/// on a violation.
pub fn check(buf: &[u8]) {
    for limits in [Limits::default(), TINY] {
        check_with(buf, &limits);
    }
    check_streaming(buf);
}

/// Property 6.
fn check_streaming(buf: &[u8]) {
    let streaming = parse_request(buf, &STREAMING);
    check_outcome(buf, &streaming, &STREAMING);
    let whole = parse_request(buf, &TINY);
    let Parsed::Stream {
        request,
        line,
        block,
    } = streaming
    else {
        assert_eq!(streaming, whole, "streaming changed a non-stream outcome");
        return;
    };
    assert_eq!(
        whole,
        Parsed::Incomplete,
        "a stream whose block had arrived"
    );
    let mut arrived = buf[..line].to_vec();
    arrived.resize(line + block - 2, b'v');
    arrived.extend_from_slice(b"\r\n");
    match parse_request(&arrived, &TINY) {
        Parsed::Request {
            request: later,
            consumed,
        } => {
            assert_eq!(consumed, line + block);
            assert_eq!(
                later, request,
                "the stream's request differs once its block arrived"
            );
        }
        other => panic!("a stream's request, its block arrived, parses as {other:?}"),
    }
}

fn check_with(buf: &[u8], limits: &Limits) {
    let whole = parse_request(buf, limits);
    check_outcome(buf, &whole, limits);
    check_prefixes(buf, &whole, limits);
    if let Parsed::Request { request, .. } = &whole {
        check_forwarded(buf, request, limits);
    }
    check_session(buf, limits);
}

/// Property 1.
fn check_outcome(buf: &[u8], outcome: &Parsed, limits: &Limits) {
    match outcome {
        Parsed::Incomplete | Parsed::Close { .. } => {}
        Parsed::Stream {
            request,
            line,
            block,
        } => {
            assert!(*line > 0 && *line <= buf.len() && buf.len() < line + block);
            assert!(within(&request.line, &(0..*line)));
            assert_eq!(request.value, *line..line + block - 2);
            assert!(request.value.len() >= limits.stream_from);
        }
        Parsed::Invalid { consumed, .. } => assert!(*consumed > 0 && *consumed <= buf.len()),
        Parsed::Swallow {
            consumed,
            discard,
            delete,
            ..
        } => {
            assert!(*consumed > 0 && *consumed <= buf.len());
            assert!(*discard >= 2, "a data block is at least its \\r\\n");
            if let Some(key) = delete {
                assert!(within(key, &(0..*consumed)) && !key.is_empty());
            }
        }
        Parsed::Request {
            request: r,
            consumed,
        } => {
            assert!(*consumed > 0 && *consumed <= buf.len());
            let all = 0..*consumed;
            assert!(within(&r.line, &all));
            for range in [&r.key, &r.keys, &r.args] {
                assert!(within(range, &r.line), "{range:?} outside {:?}", r.line);
            }
            assert!(within(&r.key, &r.keys));
            assert!(within(&r.value, &all) && within(&r.data_block(), &all));
            assert!(within(&r.forwarded_line(), &r.line));
            assert!(!r.noreply || r.noreply_at.is_some(), "noreply, but nowhere");
            for key in r.keys(buf) {
                assert!(within(&key, &r.keys) && !key.is_empty());
                assert!(key.len() <= limits.max_key_len, "{key:?}");
            }
            if r.command.has_data_block() {
                assert!(r.value.len() <= limits.max_value_len);
                assert_eq!(r.data_block().end, *consumed);
            }
            // Meta commands.
            assert!(within(&r.meta_flags, &r.line));
            for range in r.quiet_span.iter().chain(&r.opaque) {
                assert!(within(range, &r.line), "{range:?} outside {:?}", r.line);
            }
            assert!(r.quiet_span.is_none() || r.quiet, "a q flag, but not quiet");
            assert!(
                !(r.noreply && r.command.is_meta()),
                "noreply on a meta command"
            );
            let [first, second] = r.forwarded_pieces();
            assert!(within(&first, &r.line) && within(&second, &r.line));
            assert!(first.end <= second.start);
            let mut decoded = [0; DECODED_KEY_BUF];
            let routing_key = r.routing_key(buf, &mut decoded);
            assert!(
                r.key.is_empty() || !routing_key.is_empty(),
                "an empty routing key"
            );
        }
    }
}

/// Properties 2 and 3.
fn check_prefixes(buf: &[u8], whole: &Parsed, limits: &Limits) {
    if let Some(consumed) = consumed(whole) {
        assert_eq!(
            &parse_request(&buf[..consumed], limits),
            whole,
            "cut at {consumed}"
        );
        let short = &buf[..consumed - 1];
        let outcome = parse_request(short, limits);
        assert!(
            outcome == Parsed::Incomplete || is_runaway(short, &outcome, limits),
            "one byte short of {whole:?}: {outcome:?}"
        );
    }
    let cut = split_point(buf);
    let first = parse_request(&buf[..cut], limits);
    if first != Parsed::Incomplete && !is_runaway(&buf[..cut], &first, limits) {
        assert_eq!(&first, whole, "cut at {cut}");
    }
}

/// Property 4.
fn check_forwarded(buf: &[u8], request: &Request, limits: &Limits) {
    let mut forwarded = Vec::new();
    compose::forwarded_line(&mut forwarded, buf, request);
    forwarded.extend_from_slice(&buf[request.data_block()]);
    let Parsed::Request {
        request: again,
        consumed,
    } = parse_request(&forwarded, limits)
    else {
        panic!(
            "forwarded bytes {:?} of {request:?} do not parse as a request: {:?}",
            String::from_utf8_lossy(&forwarded),
            parse_request(&forwarded, limits)
        );
    };
    assert_eq!(consumed, forwarded.len());
    assert_eq!(
        Fields::of(&again, &forwarded),
        Fields {
            noreply: false,
            quiet: false,
            ..Fields::of(request, buf)
        }
    );
}

/// Property 5: a session on a stream no longer than one line may be (beyond that, whether an
/// unterminated line closes the connection depends on how it arrives), fed whole and in two.
fn check_session(buf: &[u8], limits: &Limits) {
    let stream = &buf[..buf.len().min(limits.max_line_len)];
    let mut whole = Session::new(limits);
    whole.feed(stream);
    let cut = split_point(stream);
    let mut pieces = Session::new(limits);
    pieces.feed(&stream[..cut]);
    pieces.feed(&stream[cut..]);
    assert_eq!(pieces.events, whole.events, "cut at {cut}");
    if !whole.closed {
        assert_eq!(
            (&pieces.buf[pieces.start..], pieces.framer.discarding()),
            (&whole.buf[whole.start..], whole.framer.discarding())
        );
    }
}

/// The bytes the outcome takes from the stream, if it takes any.
fn consumed(outcome: &Parsed) -> Option<usize> {
    match outcome {
        // A stream's line is taken only by a caller that streams; these limits never do.
        Parsed::Incomplete | Parsed::Close { .. } | Parsed::Stream { .. } => None,
        Parsed::Request { consumed, .. }
        | Parsed::Invalid { consumed, .. }
        | Parsed::Swallow { consumed, .. } => Some(*consumed),
    }
}

/// A close because too much arrived without a newline.
fn is_runaway(buf: &[u8], outcome: &Parsed, limits: &Limits) -> bool {
    matches!(outcome, Parsed::Close { .. })
        && buf.len() > limits.max_line_len
        && !buf.contains(&b'\n')
}

/// Where to cut `buf` in two: anywhere, chosen by its contents (FNV-1a), so that the fuzzer
/// explores cut points as it explores inputs.
fn split_point(buf: &[u8]) -> usize {
    let hash = buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % (buf.len() as u64 + 1)) as usize
}

fn within(range: &Range<usize>, outer: &Range<usize>) -> bool {
    range.start <= range.end && outer.start <= range.start && range.end <= outer.end
}

/// A request's fields, owned, to compare requests parsed from different buffers.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    command: Command,
    keys: Vec<Vec<u8>>,
    flags: u32,
    exptime: i64,
    cas: u64,
    delta: u64,
    level: u32,
    args: Vec<u8>,
    value: Vec<u8>,
    noreply: bool,
    /// Meta commands: the flags a backend is sent (all but `q`).
    flags_forwarded: Vec<Vec<u8>>,
    routing_key: Vec<u8>,
    base64: bool,
    quiet: bool,
    opaque: Option<Vec<u8>>,
    mode: Option<u8>,
}

impl Fields {
    fn of(r: &Request, buf: &[u8]) -> Fields {
        let mut decoded = [0; DECODED_KEY_BUF];
        Fields {
            flags_forwarded: r.forwarded_flags(buf).map(|f| buf[f].to_vec()).collect(),
            routing_key: r.routing_key(buf, &mut decoded).to_vec(),
            base64: r.base64,
            quiet: r.quiet,
            opaque: r.opaque.clone().map(|o| buf[o].to_vec()),
            mode: r.mode,
            command: r.command,
            keys: r.keys(buf).map(|k| buf[k].to_vec()).collect(),
            flags: r.flags,
            exptime: r.exptime,
            cas: r.cas,
            delta: r.delta,
            level: r.level,
            args: buf[r.args.clone()].to_vec(),
            value: buf[r.value.clone()].to_vec(),
            noreply: r.noreply,
        }
    }
}

/// An outcome, owned, with the bytes it covered.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Request(Command, Vec<u8>),
    Invalid(Option<&'static [u8]>, Vec<u8>),
    /// Reply, line, bytes discarded, key deleted.
    Swallow(Option<&'static [u8]>, Vec<u8>, usize, Option<Vec<u8>>),
    Close,
}

/// What the router's session does with the parser's outcomes, minus the I/O: the real
/// [`Framer`], every outcome recorded.
#[derive(Debug)]
struct Session {
    buf: Vec<u8>,
    /// Where the unparsed bytes of `buf` start.
    start: usize,
    framer: Framer,
    closed: bool,
    events: Vec<Event>,
}

impl Session {
    fn new(limits: &Limits) -> Session {
        Session {
            buf: Vec::new(),
            start: 0,
            framer: Framer::new(*limits),
            closed: false,
            events: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        if self.closed {
            return;
        }
        self.buf.extend_from_slice(chunk);
        while !self.closed {
            let rest = &self.buf[self.start..];
            let taken = match self.framer.next(rest) {
                Framed::Incomplete => break,
                Framed::Discard(n) => n,
                Framed::Parsed(Parsed::Incomplete | Parsed::Stream { .. }) => break,
                Framed::Parsed(Parsed::Request { request, consumed }) => {
                    self.closed = request.command == Command::Quit;
                    let event = Event::Request(request.command, rest[..consumed].to_vec());
                    self.events.push(event);
                    consumed
                }
                Framed::Parsed(Parsed::Invalid { reply, consumed }) => {
                    self.events
                        .push(Event::Invalid(reply, rest[..consumed].to_vec()));
                    consumed
                }
                Framed::Parsed(Parsed::Swallow {
                    reply,
                    consumed,
                    discard,
                    delete,
                    ..
                }) => {
                    self.events.push(Event::Swallow(
                        reply,
                        rest[..consumed].to_vec(),
                        discard,
                        delete.map(|key| rest[key].to_vec()),
                    ));
                    consumed
                }
                Framed::Parsed(Parsed::Close { .. }) | Framed::TlsHello => {
                    self.events.push(Event::Close);
                    self.closed = true;
                    0
                }
            };
            self.start += taken;
        }
    }
}
