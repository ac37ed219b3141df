//! Wire cases verified against memcached 1.6.18: what a client sends, cut into the pieces
//! memcached consumes one at a time, with what memcached answers to each.
//!
//! `the_parser_reproduces_memcached` checks that `parse_request` consumes the same pieces and
//! gives the same error replies. `memcached_still_agrees` replays every case against a real
//! memcached (`MEMCACHED=/path/to/memcached`, default `memcached` on `PATH`):
//! `cargo test -p switchyard-protocol --test memcached`.
//!
//! Where memcached's answer holds a number that differs from run to run (a CAS unique, the
//! seconds since last access), the expected answer says `{n}`: any run of digits.
//!
//! Deliberate differences from memcached are not here: the admin commands the router does not
//! serve (`ERROR`, see the unit tests in `src/request.rs`), memcached's loss of the replies
//! still queued on a connection when a multi-get holds a key over 250 bytes (which is why such
//! cases stand alone in their stream), and the work an `mg` or `ma` with an over-long `O` token
//! does in memcached before it refuses it.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use switchyard_protocol::{
    Command, DECODED_KEY_BUF, Limits, Parsed, decode_key, parse_request, replies,
};

/// What the parser must make of one piece.
#[derive(Debug)]
enum Expect {
    /// A request memcached serves.
    Request(Command),
    /// An error, with its reply unless hushed by `noreply`.
    Invalid(Option<&'static [u8]>),
    /// A refused line whose data block, `discard` bytes, is thrown away unread.
    Swallow {
        discard: usize,
        reply: Option<&'static [u8]>,
        /// The key whose old value memcached deletes (a `set`'s or an `ms`'s), decoded.
        delete: Option<&'static str>,
    },
    /// memcached closes the connection.
    Close,
}

/// One piece of a client's stream.
#[derive(Debug)]
struct Step {
    /// The bytes memcached consumes for it (for a swallow, the line; the data is generated).
    sent: Vec<u8>,
    expect: Expect,
    /// What memcached answers.
    answer: Vec<u8>,
}

fn request(command: Command, sent: impl AsRef<[u8]>, answer: &[u8]) -> Step {
    Step {
        sent: sent.as_ref().to_vec(),
        expect: Expect::Request(command),
        answer: answer.to_vec(),
    }
}

fn invalid(sent: impl AsRef<[u8]>, reply: &'static [u8]) -> Step {
    Step {
        sent: sent.as_ref().to_vec(),
        expect: Expect::Invalid(Some(reply)),
        answer: reply.to_vec(),
    }
}

fn silent(sent: impl AsRef<[u8]>) -> Step {
    Step {
        sent: sent.as_ref().to_vec(),
        expect: Expect::Invalid(None),
        answer: Vec::new(),
    }
}

fn swallow(
    line: impl AsRef<[u8]>,
    discard: usize,
    reply: Option<&'static [u8]>,
    delete: Option<&'static str>,
) -> Step {
    Step {
        sent: line.as_ref().to_vec(),
        expect: Expect::Swallow {
            discard,
            reply,
            delete,
        },
        answer: reply.unwrap_or_default().to_vec(),
    }
}

fn close(sent: impl AsRef<[u8]>) -> Step {
    Step {
        sent: sent.as_ref().to_vec(),
        expect: Expect::Close,
        answer: Vec::new(),
    }
}

/// Swallowed data that would be commands, were it read.
fn swallowed(len: usize) -> Vec<u8> {
    b"delete victim\r\n"
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

#[path = "memcached/meta.rs"]
mod meta;

const BAD_DETAIL: &[u8] = b"CLIENT_ERROR usage: stats detail on|off|dump\r\n";

#[rustfmt::skip] // A table: one step a line.
fn cases() -> Vec<(&'static str, Vec<Step>)> {
    use Command::*;
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    let many_keys: String = (0..40).map(|i| format!(" k{i}")).collect();
    vec![
        ("empty and blank lines", vec![
            invalid("\r\n", replies::ERROR),
            invalid("\n", replies::ERROR),
            invalid("   \r\n", replies::ERROR),
            invalid("\r\r\n", replies::ERROR),
        ]),
        ("unknown commands", vec![
            invalid("a\r\n", replies::ERROR),
            invalid("GET a\r\n", replies::ERROR),
            invalid("gxx a HTTP/1.1\r\n", replies::ERROR),
            invalid("sxx / HTTP/1.1\r\n", replies::ERROR),
            invalid("xx HTTP/ a\r\n", replies::ERROR),
            invalid("x HTTP/1.1\r\n", replies::ERROR),
        ]),
        ("an http request closes after earlier replies", vec![
            request(Get, "get a\r\n", b"END\r\n"),
            close("GET / HTTP/1.1\r\n"),
        ]),
        ("any unknown name before HTTP/ closes", vec![close("xx a HTTP/1.0\n")]),
        ("a nul byte ends the line", vec![
            request(Get, "get a\0b c\r\n", b"END\r\n"),
            invalid("\0get a\r\n", replies::ERROR),
            invalid("set a\0 0 0 1\r\n", replies::ERROR),
            invalid("x\r\n", replies::ERROR),
        ]),
        ("get family", vec![
            request(Get, " get a  b \r\n", b"END\r\n"),
            request(Gets, "gets a\n", b"END\r\n"),
            request(Get, "bget a\r\n", b"END\r\n"),
            request(Get, format!("get{many_keys}\r\n"), b"END\r\n"),
            request(Gat, "gat 10\r\n", b"END\r\n"),
            request(Gats, "gats 10 a b\r\n", b"END\r\n"),
            request(Gat, "gat 4294967296 a\r\n", b"END\r\n"),
            invalid("get\r\n", replies::ERROR),
            invalid("get \r\n", replies::ERROR),
            invalid("gat\r\n", replies::ERROR),
            invalid("gat abc a\r\n", replies::BAD_EXPTIME),
            invalid("gat 1.5 a\r\n", replies::BAD_EXPTIME),
            invalid(format!("gat x {k251}\r\n"), replies::BAD_EXPTIME),
        ]),
        // Each alone: memcached drops replies still queued when a get meets a long key.
        ("a long key fails a get", vec![invalid(format!("get {k251}\r\n"), replies::BAD_FORMAT)]),
        ("a long key fails a gets", vec![invalid(format!("gets a {k251} b\r\n"), replies::BAD_FORMAT)]),
        ("a long key fails a get of many", vec![invalid(format!("get{many_keys} {k251}\r\n"), replies::BAD_FORMAT)]),
        ("keys are any bytes but space", vec![
            request(Set, "set a\tb 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Get, "get a\tb\r\n", b"VALUE a\tb 0 1\r\nx\r\nEND\r\n"),
            request(Set, b"set a\x01\x7f\xff 0 0 1\r\ny\r\n", b"STORED\r\n"),
            request(Get, b"get a\x01\x7f\xff\r\n", b"VALUE a\x01\x7f\xff 0 1\r\ny\r\nEND\r\n"),
            request(Set, "set c\r 0 0 1\r\nz\r\n", b"STORED\r\n"),
            request(Get, "get c\r\r\n", b"VALUE c\r 0 1\r\nz\r\nEND\r\n"),
            request(Get, "get c\r\n", b"END\r\n"),
        ]),
        ("key length", vec![
            request(Set, format!("set {k250} 0 0 1\r\nx\r\n"), b"STORED\r\n"),
            invalid(format!("set {k251} 0 0 1\r\n"), replies::BAD_FORMAT),
            invalid("x\r\n", replies::ERROR),
            silent(format!("set {k251} 0 0 1 noreply\r\n")),
            invalid("x\r\n", replies::ERROR),
            invalid(format!("incr {k251} x\r\n"), replies::BAD_FORMAT),
            invalid(format!("touch {k251} x\r\n"), replies::BAD_FORMAT),
            invalid(format!("delete {k251} 1\r\n"), replies::BAD_DELETE),
            invalid(format!("delete {k251}\r\n"), replies::BAD_FORMAT),
        ]),
        ("storage commands", vec![
            request(Set, "set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 5 0 1\nx\r\n", b"STORED\r\n"),
            request(Get, "get a\r\n", b"VALUE a 5 1\r\nx\r\nEND\r\n"),
            request(Add, "add a 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            request(Add, "add b 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Replace, "replace c 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            request(Append, "append a 0 0 2\r\nyz\r\n", b"STORED\r\n"),
            request(Prepend, "prepend c 0 0 1\r\nx\r\n", b"NOT_STORED\r\n"),
            request(Cas, "cas c 0 0 1 5\r\nx\r\n", b"NOT_FOUND\r\n"),
            request(Cas, "cas a 0 0 1 18446744073709551615\r\nx\r\n", b"EXISTS\r\n"),
            request(Set, "set a 0 0 1 garbage\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 0 0 1 noreply\r\nx\r\n", b""),
            request(Cas, "cas c 0 0 1 5 noreply\r\nx\r\n", b""),
            request(Set, "set a 0 0 1 NOREPLY\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 0 0 1 noreply\r\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 0 0 0\r\n\r\n", b"STORED\r\n"),
        ]),
        ("storage numbers are read like strtol", vec![
            request(Set, "set a 4294967296 4294967296 4294967297\r\nx\r\n", b"STORED\r\n"),
            request(Get, "get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
            request(Set, "set a -18446744073709551615 +0 -4294967295\r\nx\r\n", b"STORED\r\n"),
            request(Get, "get a\r\n", b"VALUE a 1 1\r\nx\r\nEND\r\n"),
            request(Set, "set a 0 \t0 1\tjunk\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 0 0 1\rx\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set a 0 0 01\x0b\r\nx\r\n", b"STORED\r\n"),
            request(Cas, "cas a 0 0 1 -18446744073709551615\r\nx\r\n", b"EXISTS\r\n"),
        ]),
        ("the wrong number of storage tokens is ERROR, noreply or not", vec![
            invalid("set a 0 0\r\n", replies::ERROR),
            invalid("set a 0 0 1 noreply extra\r\n", replies::ERROR),
            invalid("x\r\n", replies::ERROR),
            invalid("cas a 0 0 1\r\n", replies::ERROR),
            invalid("x\r\n", replies::ERROR),
            invalid("set a 0 0\t1\r\n", replies::ERROR),
            invalid("x\r\n", replies::ERROR),
        ]),
        ("a bad storage line leaves its data to be read as commands", vec![
            invalid("set a 0 0 -1\r\n", replies::BAD_FORMAT),
            invalid("set a x 0 1\r\n", replies::BAD_FORMAT),
            invalid("x\r\n", replies::ERROR),
            invalid("set a -1 0 1\r\n", replies::BAD_FORMAT),
            invalid("set a 0 x 1\r\n", replies::BAD_FORMAT),
            invalid("set a 0 0 1x\r\n", replies::BAD_FORMAT),
            invalid("set a 0 0 +-1\r\n", replies::BAD_FORMAT),
            invalid("set a 0 0 2147483646\r\n", replies::BAD_FORMAT),
            invalid("set a 0 0 -2147483648\r\n", replies::BAD_FORMAT),
            invalid("cas a 0 0 1 abc\r\n", replies::BAD_FORMAT),
            invalid("cas a 0 0 1 -1\r\n", replies::BAD_FORMAT),
            invalid("cas a 0 0 1 18446744073709551616\r\n", replies::BAD_FORMAT),
            request(Get, "get a\r\n", b"END\r\n"),
        ]),
        ("a bad storage line ending in noreply is silent", vec![
            silent("set a 0 0 -1 noreply\r\n"),
            silent("set a 0 0 noreply\r\n"),
            silent("cas a 0 0 1 noreply\r\n"),
            invalid("x\r\n", replies::ERROR),
        ]),
        ("a bad data block drops its announced length plus two", vec![
            invalid("set a 0 0 1\r\nab\r", replies::BAD_DATA_CHUNK),
            invalid("\n", replies::ERROR),
            invalid("set a 0 0 1\r\nx\ng", replies::BAD_DATA_CHUNK),
            invalid("et a\r\n", replies::ERROR),
            invalid("set a 0 0 1\r\nx\r\r", replies::BAD_DATA_CHUNK),
            invalid("\n", replies::ERROR),
            silent("set a 0 0 1 noreply\r\nxy\r"),
            invalid("\n", replies::ERROR),
            request(Get, "get a\r\n", b"END\r\n"),
        ]),
        ("a value over the limit is swallowed whatever its data holds", vec![
            request(Set, "set victim 0 0 1\r\nv\r\n", b"STORED\r\n"),
            swallow("set big 0 0 2000000\r\n", 2_000_002, Some(replies::TOO_LARGE), Some("big")),
            swallow("append big 0 0 1048577 noreply\r\n", 1_048_579, None, None),
            request(Get, "get victim\r\n", b"VALUE victim 0 1\r\nv\r\nEND\r\n"),
        ]),
        ("a set over the limit deletes the old value, an add does not", vec![
            request(Set, "set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Set, "set b 0 0 1\r\ny\r\n", b"STORED\r\n"),
            swallow("add a 0 0 2000000\r\n", 2_000_002, Some(replies::TOO_LARGE), None),
            swallow("set b 0 0 2000000 noreply\r\n", 2_000_002, None, Some("b")),
            request(Get, "get a b\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
        ]),
        ("delete", vec![
            request(Set, "set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Delete, "delete a\r\n", b"DELETED\r\n"),
            request(Delete, "delete a 0\r\n", b"NOT_FOUND\r\n"),
            request(Delete, "delete a 0 noreply\r\n", b""),
            request(Delete, "delete a noreply\r\n", b""),
            request(Delete, "delete noreply\r\n", b"NOT_FOUND\r\n"),
            invalid("delete\r\n", replies::ERROR),
            invalid("delete a 0 noreply x\r\n", replies::ERROR),
        ]),
        ("delete with anything but 0", vec![
            request(Set, "set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            invalid("delete a 1\r\n", replies::BAD_DELETE),
            invalid("delete a 00\r\n", replies::BAD_DELETE),
            invalid("delete a 0 x\r\n", replies::BAD_DELETE),
            invalid("delete a x 0\r\n", replies::BAD_DELETE),
            invalid("delete a noreply 0\r\n", replies::BAD_DELETE),
            silent("delete a 1 noreply\r\n"),
            silent("delete a noreply noreply\r\n"),
            request(Get, "get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
        ]),
        ("incr and decr", vec![
            request(Incr, "incr a 1\r\n", b"NOT_FOUND\r\n"),
            request(Set, "set a 0 0 3\r\n100\r\n", b"STORED\r\n"),
            request(Decr, "decr a 95\r\n", b"5\r\n"),
            request(Get, "get a\r\n", b"VALUE a 0 3\r\n5  \r\nEND\r\n"),
            request(Incr, "incr a 18446744073709551615\r\n", b"4\r\n"),
            request(Incr, "incr a -18446744073709551615\r\n", b"5\r\n"),
            request(Incr, "incr a 1 junk\r\n", b"6\r\n"),
            request(Incr, "incr a 1 noreply\r\n", b""),
            request(Decr, "decr a  1\r\n", b"6\r\n"),
            invalid("incr a\r\n", replies::ERROR),
            invalid("incr a 1 noreply x\r\n", replies::ERROR),
            invalid("incr a -1\r\n", replies::BAD_DELTA),
            invalid("incr a abc\r\n", replies::BAD_DELTA),
            invalid("incr a 1.5\r\n", replies::BAD_DELTA),
            invalid("incr a 0x10\r\n", replies::BAD_DELTA),
            invalid("incr a 18446744073709551616\r\n", replies::BAD_DELTA),
            invalid("decr a x\r\n", replies::BAD_DELTA),
            silent("incr a abc noreply\r\n"),
            request(Set, "set b 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Incr, "incr b 1\r\n", b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
        ]),
        ("touch", vec![
            request(Touch, "touch a 1\r\n", b"NOT_FOUND\r\n"),
            request(Set, "set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
            request(Touch, "touch a 100 junk\r\n", b"TOUCHED\r\n"),
            request(Touch, "touch a 100 noreply\r\n", b""),
            invalid("touch a\r\n", replies::ERROR),
            invalid("touch a 1 noreply junk\r\n", replies::ERROR),
            invalid("touch a x\r\n", replies::BAD_EXPTIME),
            silent("touch a x noreply\r\n"),
        ]),
        ("verbosity", vec![
            request(Verbosity, "verbosity 0\r\n", b"OK\r\n"),
            request(Verbosity, "verbosity 0 2\r\n", b"OK\r\n"),
            request(Verbosity, "verbosity 0 noreply\r\n", b""),
            invalid("verbosity\r\n", replies::ERROR),
            invalid("verbosity 1 2 3\r\n", replies::ERROR),
            invalid("verbosity x\r\n", replies::BAD_FORMAT),
            invalid("verbosity -1\r\n", replies::BAD_FORMAT),
            silent("verbosity noreply\r\n"),
        ]),
        ("flush_all", vec![
            request(FlushAll, "flush_all\r\n", b"OK\r\n"),
            request(FlushAll, "flush_all 0\r\n", b"OK\r\n"),
            request(FlushAll, "flush_all -1\r\n", b"OK\r\n"),
            request(FlushAll, "flush_all noreply\r\n", b""),
            request(FlushAll, "flush_all 0 noreply\r\n", b""),
            invalid("flush_all 1 2 3\r\n", replies::ERROR),
            invalid("flush_all abc\r\n", replies::BAD_EXPTIME),
            invalid("flush_all noreply 10\r\n", replies::BAD_EXPTIME),
            invalid("flush_all HTTP/1.1\r\n", replies::BAD_EXPTIME),
            silent("flush_all abc noreply\r\n"),
        ]),
        ("stats arguments are the server's business", vec![
            request(Stats, "stats reset\r\n", b"RESET\r\n"),
            request(Stats, "stats reset x y\r\n", b"RESET\r\n"),
            request(Stats, "stats detail\r\n", BAD_DETAIL),
            request(Stats, "stats foo\r\n", b"ERROR\r\n"),
        ]),
        ("quit closes after earlier replies", vec![
            request(Get, "get a\r\n", b"END\r\n"),
            request(Quit, "quit now\r\n", b""),
        ]),
        ("an unterminated line over 2048 bytes closes", vec![close(format!("set {}", "a".repeat(2045)))]),
        ("but not a get", vec![request(Get, format!("get {}\r\n", "a ".repeat(1500)), b"END\r\n")]),
        ("a long line that arrives whole is read", vec![
            invalid(format!("set {} 0 0 1\r\n", "a".repeat(3000)), replies::BAD_FORMAT),
            invalid("x\r\n", replies::ERROR),
        ]),
    ]
}

/// The classic cases, then the meta ones.
fn all_cases() -> impl Iterator<Item = (&'static str, Vec<Step>)> {
    cases().into_iter().chain(meta::cases())
}

/// The whole stream a case sends.
fn stream(steps: &[Step]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for step in steps {
        bytes.extend_from_slice(&step.sent);
        if let Expect::Swallow { discard, .. } = step.expect {
            bytes.extend(swallowed(discard));
        }
    }
    bytes
}

/// Whether memcached closes the connection at the end of the case.
fn closes(steps: &[Step]) -> bool {
    matches!(
        steps.last().map(|s| &s.expect),
        Some(Expect::Close | Expect::Request(Command::Quit))
    )
}

#[test]
fn the_parser_reproduces_memcached() {
    let limits = Limits::default();
    for (name, steps) in all_cases() {
        let input = stream(&steps);
        let mut at = 0;
        for step in &steps {
            let rest = &input[at..];
            let len = step.sent.len();
            match (parse_request(rest, &limits), &step.expect) {
                (Parsed::Request { request, consumed }, Expect::Request(command))
                    if request.command == *command && consumed == len => {}
                (Parsed::Invalid { reply, consumed }, Expect::Invalid(expected))
                    if reply == *expected && consumed == len => {}
                (
                    Parsed::Swallow {
                        reply,
                        consumed,
                        discard,
                        delete,
                        delete_base64,
                    },
                    Expect::Swallow {
                        discard: d,
                        reply: r,
                        delete: key,
                    },
                ) if reply == *r
                    && consumed == len
                    && discard == *d
                    && deleted(rest, delete.clone(), delete_base64)
                        == key.map(|k| k.as_bytes().to_vec()) =>
                {
                    at += discard;
                }
                (Parsed::Close { reply: None }, Expect::Close) => {}
                (got, expected) => panic!(
                    "{name}: {:?}: expected {expected:?}, got {got:?}",
                    String::from_utf8_lossy(&step.sent[..len.min(80)])
                ),
            }
            at += len;
        }
        assert_eq!(at, input.len(), "{name}");
    }
}

/// The key a `Parsed::Swallow` deletes, decoded.
fn deleted(buf: &[u8], key: Option<std::ops::Range<usize>>, base64: bool) -> Option<Vec<u8>> {
    let key = &buf[key?];
    if !base64 {
        return Some(key.to_vec());
    }
    decode_key(key, &mut [0; DECODED_KEY_BUF]).map(<[u8]>::to_vec)
}

/// Whether `got` is `expected`, where `{n}` in `expected` stands for one or more digits.
fn matches(expected: &[u8], got: &[u8]) -> bool {
    match expected.strip_prefix(b"{n}") {
        Some(rest) => {
            let digits = got.iter().take_while(|b| b.is_ascii_digit()).count();
            digits > 0 && matches(rest, &got[digits..])
        }
        None => match (expected.split_first(), got.split_first()) {
            (Some((e, rest)), Some((g, got_rest))) => e == g && matches(rest, got_rest),
            (None, None) => true,
            _ => false,
        },
    }
}

/// Needs a memcached binary (`MEMCACHED=path`, or `memcached` on `PATH`); CI installs it, and
/// without it this fails rather than skips.
#[test]
fn memcached_still_agrees() {
    let server = Memcached::start();
    let mut failures = Vec::new();
    for (name, steps) in all_cases() {
        let expected: Vec<u8> = steps
            .iter()
            .flat_map(|s| s.answer.iter().copied())
            .collect();
        let noops = expected.windows(4).filter(|w| w == b"MN\r\n").count();
        let got = server.exchange(&stream(&steps), closes(&steps), noops);
        if !matches(&expected, &got) {
            failures.push(format!(
                "{name}:\n  expected {:?}\n  got      {:?}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&got)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A memcached process on a free loopback port, killed on drop.
struct Memcached {
    child: Child,
    port: u16,
}

impl Memcached {
    fn start() -> Memcached {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = std::env::var("MEMCACHED").unwrap_or_else(|_| "memcached".into());
        let child = Process::new(binary)
            .args([
                "-u",
                "nobody",
                "-U",
                "0",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("memcached starts");
        let server = Memcached { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "memcached did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    /// Sends `input` on a fresh connection to an emptied cache and returns what comes back:
    /// everything up to the close if `closes`, else up to the reply to a trailing `mn` (the
    /// one after the `noops` replies to the case's own).
    fn exchange(&self, input: &[u8], closes: bool, noops: usize) -> Vec<u8> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        conn.write_all(b"flush_all\r\n").expect("write");
        let mut ok = [0; 4];
        conn.read_exact(&mut ok).expect("flush_all reply");
        assert_eq!(&ok, b"OK\r\n");
        // memcached may close before reading everything: a failed write is then expected.
        let _ = conn.write_all(input);
        if !closes {
            conn.write_all(b"mn\r\n").expect("write");
        }
        let mut got = Vec::new();
        let mut chunk = [0; 4096];
        loop {
            match conn.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => {
                    got.extend_from_slice(format!("<{e}>").as_bytes());
                    break;
                }
            }
            if !closes
                && got.ends_with(b"MN\r\n")
                && got.windows(4).filter(|w| w == b"MN\r\n").count() > noops
            {
                got.truncate(got.len() - 4);
                break;
            }
        }
        got
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
