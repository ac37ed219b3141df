//! The sans-IO protocol code on its own, per command family: [`parse_request`] on one whole
//! client request (`get` of 1 and 10 keys, `set` of a 64 B and a 100 KiB value, `incr`, `decr`,
//! `delete`, `touch`, `gat`, `mg`, `ms`, `md`); composing the line a backend is sent for that
//! request with [`compose`], from the parsed request's fields as a plan's rewrite does; and
//! [`parse_reply`] on one whole backend reply (a one-key `VALUE ... END` hit of 64 B and of
//! 100 KiB, a miss, `STORED`, and the reply to a 10-key `get`), plus walking that 10-key reply's
//! entries with [`values`] as a multi-get merge does. Throughput is in bytes of the message.
//!
//! `compose` writes the command line only: the data block of a `set` or `ms` is sent from the
//! buffer it arrived in, never copied, so its throughput counts the line's bytes. The parsers
//! read a value's announced length and its last two bytes, never the value itself: the 100 KiB
//! cases' bytes per second are accordingly huge, and their time is the figure to read.
//!
//! `cargo bench -p switchyard-protocol --bench protocol` (about a minute); add a filter such as
//! `-- request_parse/get` to run a part, or `-- --quick` for a rough pass.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_protocol::compose::{self, Storage};
use switchyard_protocol::{Command, Limits, Parsed, ReplyKind, ReplyParsed, Request};
use switchyard_protocol::{parse_reply, parse_request, values};

/// Key of every single-key case: the length of a typical application key.
const KEY: &str = "user:1000:profile";

/// `n` bytes of printable data.
fn value(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

/// `line`, `\r\n`, and for a storage command its data block.
fn wire(line: &str, data: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{line}\r\n").into_bytes();
    if let Some(data) = data {
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One whole client request per case, as a client sends it.
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let ten_keys: Vec<String> = (1000..1010).map(|i| format!("user:{i}:profile")).collect();
    let small = value(64);
    let large = value(100 * 1024);
    vec![
        ("get_1_key", wire(&format!("get {KEY}"), None)),
        (
            "get_10_keys",
            wire(&format!("get {}", ten_keys.join(" ")), None),
        ),
        ("set_64B", wire(&format!("set {KEY} 0 0 64"), Some(&small))),
        (
            "set_100KiB",
            wire(&format!("set {KEY} 0 0 {}", large.len()), Some(&large)),
        ),
        ("incr", wire("incr counter:1000 5", None)),
        ("decr", wire("decr counter:1000 5", None)),
        ("delete", wire(&format!("delete {KEY} noreply"), None)),
        ("touch", wire(&format!("touch {KEY} 3600"), None)),
        ("gat", wire(&format!("gat 3600 {KEY}"), None)),
        ("mg", wire(&format!("mg {KEY} v f t"), None)),
        ("ms", wire(&format!("ms {KEY} 64 T3600 F5"), Some(&small))),
        ("md", wire(&format!("md {KEY} q"), None)),
    ]
}

/// One whole backend reply per case, with the kind of request it answers.
fn replies() -> Vec<(&'static str, ReplyKind, Vec<u8>)> {
    let hit = |key: &str, data: &[u8]| {
        let mut out = format!("VALUE {key} 0 {}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    };
    let small = value(64);
    let one_key = |data: &[u8]| [hit(KEY, data), b"END\r\n".to_vec()].concat();
    let mut ten_keys: Vec<u8> = (1000..1010)
        .flat_map(|i| hit(&format!("user:{i}:profile"), &small))
        .collect();
    ten_keys.extend_from_slice(b"END\r\n");
    vec![
        ("get_hit_64B", ReplyKind::Retrieval, one_key(&small)),
        (
            "get_hit_100KiB",
            ReplyKind::Retrieval,
            one_key(&value(100 * 1024)),
        ),
        ("get_miss", ReplyKind::Retrieval, b"END\r\n".to_vec()),
        ("stored", ReplyKind::Line, b"STORED\r\n".to_vec()),
        ("get_10_keys_hit_64B", ReplyKind::Retrieval, ten_keys),
    ]
}

/// Parses `buf`, which must hold exactly one well-formed request.
fn parsed(name: &str, buf: &[u8]) -> Request {
    match parse_request(buf, &Limits::default()) {
        Parsed::Request { request, consumed } if consumed == buf.len() => request,
        other => panic!("{name}: not one whole request: {other:?}"),
    }
}

/// Writes the line a backend is sent for `request` (parsed from `buf`) with the compose
/// function of its family: without `noreply` or a meta `q`, as the router forwards it.
fn compose_line(out: &mut Vec<u8>, buf: &[u8], request: &Request) {
    let key = &buf[request.key.clone()];
    match request.command {
        Command::Get | Command::Gets | Command::Gat | Command::Gats => compose::retrieval(
            out,
            request.command,
            request.exptime,
            request.keys(buf).map(|k| &buf[k]),
        ),
        Command::Set
        | Command::Add
        | Command::Replace
        | Command::Append
        | Command::Prepend
        | Command::Cas => compose::storage(
            out,
            &Storage {
                command: request.command,
                key,
                flags: request.flags,
                exptime: request.exptime,
                len: request.value.len(),
                cas: request.cas,
                noreply: false,
            },
        ),
        Command::Delete => compose::delete(out, key, false),
        Command::Incr | Command::Decr => {
            compose::arithmetic(out, request.command, key, request.delta, false);
        }
        Command::Touch => compose::touch(out, key, request.exptime, false),
        Command::MetaGet
        | Command::MetaSet
        | Command::MetaDelete
        | Command::MetaArithmetic
        | Command::MetaNoop
        | Command::MetaDebug => compose::meta(
            out,
            request.command,
            key,
            request.value.len(),
            request.forwarded_flags(buf).map(|f| &buf[f]),
        ),
        other => panic!("no compose case for {}", other.name()),
    }
}

fn request_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("request_parse");
    for (name, buf) in requests() {
        parsed(name, &buf);
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| parse_request(black_box(&buf), &limits));
        });
    }
    group.finish();
}

fn request_compose(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_compose");
    for (name, buf) in requests() {
        let request = parsed(name, &buf);
        // What the router forwards of the client's own line must be what compose writes.
        let mut forwarded = Vec::new();
        compose::forwarded_line(&mut forwarded, &buf, &request);
        let mut out = Vec::with_capacity(512);
        compose_line(&mut out, &buf, &request);
        assert_eq!(
            out,
            forwarded,
            "{name}: composed {:?}, forwarded {:?}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&forwarded)
        );
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                compose_line(&mut out, black_box(&buf), black_box(&request));
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn reply_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("reply_parse");
    for (name, kind, buf) in replies() {
        match parse_reply(&buf, kind) {
            ReplyParsed::Reply { consumed, .. } if consumed == buf.len() => {}
            other => panic!("{name}: not one whole reply: {other:?}"),
        }
        group.throughput(Throughput::Bytes(buf.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_reply(black_box(&buf), kind)));
    }
    group.finish();

    let mut group = c.benchmark_group("reply_values");
    let (name, _, buf) = replies()
        .into_iter()
        .find(|(name, ..)| *name == "get_10_keys_hit_64B")
        .expect("the 10-key reply is a case");
    assert_eq!(values(&buf).count(), 10, "{name}: ten entries");
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| values(black_box(&buf)).map(|e| e.data.len()).sum::<usize>());
    });
    group.finish();
}

/// Nanosecond-scale functions: short windows are plenty.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = request_parse, request_compose, reply_parse
}
criterion_main!(benches);
