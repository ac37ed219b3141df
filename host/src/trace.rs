//! Request traces: what `switchyard plugin test --trace FILE` routes. A trace is the requests a
//! client sent, in memcached's text protocol, one command line per line of the file and no
//! data blocks (a trace records a value's size, which the storage command's line carries, not
//! the value): `get user:1 user:2`, `set user:1 0 300 512`, `mg dXNlcjox b v`, `delete k`.
//! Blank lines and lines starting with `#` are skipped, and so are commands no plugin routes
//! (`stats`, `version`, `flush_all`, `verbosity`, `mn`, `quit`). Each line is read by the
//! router's own request parser, so a line the router would answer with an error is an error
//! here, naming the line.

use switchyard_protocol::{Limits, Parsed, parse_request};
use switchyard_sdk::Op;

/// One request of a trace, as a plugin is asked to route it: a multi-key `get` is one request
/// per key, as the router routes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRequest {
    /// The line it came from, counting from 1.
    pub line: usize,
    /// The operation.
    pub op: Op,
    /// The key, base64 meta keys decoded.
    pub key: Vec<u8>,
    /// A storage command's client flags.
    pub flags: u32,
    /// A storage command's, `touch`'s or `gat`'s expiry.
    pub exptime: i64,
    /// A storage command's value length.
    pub value_len: u32,
}

/// What a trace holds: its requests, and how many lines were commands no plugin routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Every keyed request, in order.
    pub requests: Vec<TraceRequest>,
    /// Lines skipped as commands the router answers itself.
    pub unrouted: usize,
}

/// Reads a trace. `name` names it in errors (`FILE:LINE: ...`).
pub fn parse(name: &str, text: &[u8]) -> anyhow::Result<Trace> {
    // Every storage line is handed over before its (absent) data block.
    let limits = Limits {
        stream_from: 0,
        ..Limits::default()
    };
    let mut trace = Trace::default();
    let mut buf = Vec::with_capacity(256);
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let number = i + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) || line.starts_with(b"#") {
            continue;
        }
        let bad = |why: &str| {
            anyhow::anyhow!("{name}:{number}: `{}` {why}", String::from_utf8_lossy(line))
        };
        buf.clear();
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\r\n");
        let request = match parse_request(&buf, &limits) {
            Parsed::Request { request, .. } | Parsed::Stream { request, .. } => request,
            Parsed::Invalid {
                reply: Some(reply), ..
            }
            | Parsed::Swallow {
                reply: Some(reply), ..
            } => {
                let reply = String::from_utf8_lossy(reply);
                return Err(bad(&format!(
                    "is a request the router refuses ({})",
                    reply.trim_end()
                )));
            }
            _ => return Err(bad("is not a memcached request")),
        };
        let Some(op) = request.command.op() else {
            trace.unrouted += 1;
            continue;
        };
        let value_len = request.value.len() as u32;
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if request.base64 {
            let mut decoded = [0; switchyard_protocol::DECODED_KEY_BUF];
            keys.push(request.routing_key(&buf, &mut decoded).to_vec());
        } else {
            keys.extend(request.keys(&buf).map(|r| buf[r].to_vec()));
        }
        trace
            .requests
            .extend(keys.into_iter().map(|key| TraceRequest {
                line: number,
                op,
                key,
                flags: request.flags,
                exptime: request.exptime,
                value_len,
            }));
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_command_as_the_router_routes_it() {
        let text = b"# a trace\n\
            get a bb\r\n\
            set user:1 5 300 512\n\
            \n\
            stats\n\
            mg dXNlcjox b v\n\
            touch t 60\n\
            delete d noreply\n";
        let trace = parse("t.trace", text).expect("a valid trace");
        type Seen<'a> = (usize, Op, &'a [u8], u32, i64, u32);
        let got: Vec<Seen<'_>> = trace
            .requests
            .iter()
            .map(|r| (r.line, r.op, &r.key[..], r.flags, r.exptime, r.value_len))
            .collect();
        assert_eq!(
            got,
            [
                (2, Op::Get, &b"a"[..], 0, 0, 0),
                (2, Op::Get, b"bb", 0, 0, 0),
                (3, Op::Set, b"user:1", 5, 300, 512),
                (6, Op::MetaGet, b"user:1", 0, 0, 0),
                (7, Op::Touch, b"t", 0, 60, 0),
                (8, Op::Delete, b"d", 0, 0, 0),
            ]
        );
        assert_eq!(trace.unrouted, 1);
    }

    #[test]
    fn a_line_the_router_refuses_is_named() {
        let err = parse("t.trace", b"get a\nset k 0 0\n").expect_err("bad line");
        let message = err.to_string();
        assert!(
            message.contains("t.trace:2: `set k 0 0` is a request the router refuses (ERROR)"),
            "{message}"
        );
        let long = format!("get {}\n", "k".repeat(251));
        let err = parse("t.trace", long.as_bytes()).expect_err("key too long");
        assert!(err.to_string().contains("t.trace:1:"), "{err}");
        assert!(parse("t.trace", b"hello\n").is_err());
    }
}
