//! Writing request lines for a backend: a client's line without `noreply` (or a meta
//! command's without `q`), the keys of a multi-get batched per server, a request rewritten by
//! a plugin's plan (another command, exptime or key). Each function appends one line and its
//! `\r\n` to `out`; the data block of a storage command or `ms` (the value and `\r\n`) is the
//! caller's to append, so that a value can be sent straight from the buffer it arrived in.
//!
//! Nothing is checked: keys are written as given (a key with a space, or over 250 bytes after a
//! prefix was added, is for the server to refuse).

use crate::request::{Command, Request};

/// [`Request::forwarded_pieces`] and `\r\n`: the client's line minus ` noreply`, or minus a
/// meta command's `q` flag.
pub fn forwarded_line(out: &mut Vec<u8>, buf: &[u8], request: &Request) {
    for piece in request.forwarded_pieces() {
        out.extend_from_slice(buf.get(piece).unwrap_or_default());
    }
    out.extend_from_slice(b"\r\n");
}

/// `<mg|ms|md|ma|mn|me> <key> [<datalen>] <flag>*`: a meta command, e.g. `md <key> b` to
/// delete a base64 key. `len` is written for `ms` only (its data block is to follow).
pub fn meta<'f>(
    out: &mut Vec<u8>,
    command: Command,
    key: &[u8],
    len: usize,
    flags: impl IntoIterator<Item = &'f [u8]>,
) {
    out.extend_from_slice(command.name().as_bytes());
    if command != Command::MetaNoop {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    if command == Command::MetaSet {
        out.push(b' ');
        push_u64(out, len as u64);
    }
    for flag in flags {
        out.push(b' ');
        out.extend_from_slice(flag);
    }
    out.extend_from_slice(b"\r\n");
}

/// `get|gets|gat|gats [<exptime>] <key>*`: `exptime` is written for `gat`/`gats` only.
pub fn retrieval<'k>(
    out: &mut Vec<u8>,
    command: Command,
    exptime: i64,
    keys: impl IntoIterator<Item = &'k [u8]>,
) {
    out.extend_from_slice(command.name().as_bytes());
    if matches!(command, Command::Gat | Command::Gats) {
        out.push(b' ');
        push_i64(out, exptime);
    }
    for key in keys {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    out.extend_from_slice(b"\r\n");
}

/// The line of a storage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storage<'a> {
    /// `set add replace append prepend cas`.
    pub command: Command,
    /// The key.
    pub key: &'a [u8],
    /// Client flags.
    pub flags: u32,
    /// Expiry time.
    pub exptime: i64,
    /// The length of the value that will follow.
    pub len: usize,
    /// The CAS unique, written for `cas` only.
    pub cas: u64,
    /// Whether to add `noreply`.
    pub noreply: bool,
}

/// `<command> <key> <flags> <exptime> <bytes> [<cas unique>] [noreply]`; the value and its
/// `\r\n` are to follow.
pub fn storage(out: &mut Vec<u8>, line: &Storage<'_>) {
    out.extend_from_slice(line.command.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(line.key);
    out.push(b' ');
    push_u64(out, line.flags.into());
    out.push(b' ');
    push_i64(out, line.exptime);
    out.push(b' ');
    push_u64(out, line.len as u64);
    if line.command == Command::Cas {
        out.push(b' ');
        push_u64(out, line.cas);
    }
    end(out, line.noreply);
}

/// `delete <key> [noreply]`.
pub fn delete(out: &mut Vec<u8>, key: &[u8], noreply: bool) {
    out.extend_from_slice(b"delete ");
    out.extend_from_slice(key);
    end(out, noreply);
}

/// `incr|decr <key> <delta> [noreply]`.
pub fn arithmetic(out: &mut Vec<u8>, command: Command, key: &[u8], delta: u64, noreply: bool) {
    out.extend_from_slice(command.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b' ');
    push_u64(out, delta);
    end(out, noreply);
}

/// `touch <key> <exptime> [noreply]`.
pub fn touch(out: &mut Vec<u8>, key: &[u8], exptime: i64, noreply: bool) {
    out.extend_from_slice(b"touch ");
    out.extend_from_slice(key);
    out.push(b' ');
    push_i64(out, exptime);
    end(out, noreply);
}

/// `flush_all [<delay>] [noreply]`, the delay left out when 0.
pub fn flush_all(out: &mut Vec<u8>, delay: i64, noreply: bool) {
    out.extend_from_slice(b"flush_all");
    if delay != 0 {
        out.push(b' ');
        push_i64(out, delay);
    }
    end(out, noreply);
}

/// `verbosity <level> [noreply]`.
pub fn verbosity(out: &mut Vec<u8>, level: u32, noreply: bool) {
    out.extend_from_slice(b"verbosity ");
    push_u64(out, level.into());
    end(out, noreply);
}

/// `stats [<args>]`.
pub fn stats(out: &mut Vec<u8>, args: &[u8]) {
    out.extend_from_slice(b"stats");
    if !args.is_empty() {
        out.push(b' ');
        out.extend_from_slice(args);
    }
    out.extend_from_slice(b"\r\n");
}

/// A command without arguments: `version`, `quit`.
pub fn bare(out: &mut Vec<u8>, command: Command) {
    out.extend_from_slice(command.name().as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn end(out: &mut Vec<u8>, noreply: bool) {
    if noreply {
        out.extend_from_slice(b" noreply");
    }
    out.extend_from_slice(b"\r\n");
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Parsed, parse_request};

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        write(&mut out);
        out
    }

    #[test]
    fn numbers() {
        for (n, text) in [
            (0, "0"),
            (-1, "-1"),
            (i64::MIN, "-9223372036854775808"),
            (i64::MAX, "9223372036854775807"),
        ] {
            assert_eq!(written(|o| push_i64(o, n)), text.as_bytes());
        }
        assert_eq!(written(|o| push_u64(o, u64::MAX)), b"18446744073709551615");
    }

    #[test]
    fn the_forwarded_line_drops_noreply() {
        let buf = b"incr k 5 noreply\r\n";
        let Parsed::Request { request, .. } = parse_request(buf, &Limits::default()) else {
            panic!()
        };
        assert_eq!(
            written(|o| forwarded_line(o, buf, &request)),
            b"incr k 5\r\n"
        );
    }

    #[test]
    fn lines() {
        assert_eq!(
            written(|o| retrieval(o, Command::Get, 9, [&b"a"[..], b"b"])),
            b"get a b\r\n"
        );
        assert_eq!(
            written(|o| retrieval(o, Command::Gats, -1, [&b"a"[..]])),
            b"gats -1 a\r\n"
        );
        let set = Storage {
            command: Command::Set,
            key: b"k",
            flags: 3,
            exptime: 0,
            len: 5,
            cas: 7,
            noreply: true,
        };
        assert_eq!(written(|o| storage(o, &set)), b"set k 3 0 5 noreply\r\n");
        let cas = Storage {
            command: Command::Cas,
            noreply: false,
            ..set
        };
        assert_eq!(written(|o| storage(o, &cas)), b"cas k 3 0 5 7\r\n");
        assert_eq!(written(|o| delete(o, b"k", false)), b"delete k\r\n");
        assert_eq!(
            written(|o| arithmetic(o, Command::Decr, b"k", 2, true)),
            b"decr k 2 noreply\r\n"
        );
        assert_eq!(written(|o| touch(o, b"k", 10, false)), b"touch k 10\r\n");
        assert_eq!(written(|o| flush_all(o, 0, true)), b"flush_all noreply\r\n");
        assert_eq!(written(|o| flush_all(o, 5, false)), b"flush_all 5\r\n");
        assert_eq!(written(|o| verbosity(o, 1, false)), b"verbosity 1\r\n");
        assert_eq!(written(|o| stats(o, b"")), b"stats\r\n");
        assert_eq!(written(|o| stats(o, b"items")), b"stats items\r\n");
        assert_eq!(written(|o| bare(o, Command::Version)), b"version\r\n");
        assert_eq!(
            written(|o| meta(o, Command::MetaDelete, b"YQ==", 0, [&b"b"[..]])),
            b"md YQ== b\r\n"
        );
        assert_eq!(
            written(|o| meta(o, Command::MetaSet, b"k", 5, [&b"T0"[..], b"q"])),
            b"ms k 5 T0 q\r\n"
        );
        assert_eq!(
            written(|o| meta(o, Command::MetaNoop, b"", 0, [])),
            b"mn\r\n"
        );
    }

    #[test]
    fn the_forwarded_meta_line_drops_q() {
        let buf = b"ms k 1 q T0\r\nx\r\n";
        let Parsed::Request { request, .. } = parse_request(buf, &Limits::default()) else {
            panic!()
        };
        assert_eq!(
            written(|o| forwarded_line(o, buf, &request)),
            b"ms k 1 T0\r\n"
        );
    }
}
