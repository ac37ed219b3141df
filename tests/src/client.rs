//! A tiny blocking memcached text-protocol client for tests.
//!
//! It sends raw bytes and reads raw replies, so a test compares exactly what a client would see.
//! Every read has a deadline: a router that never answers fails the test with what arrived so
//! far instead of hanging it.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one reply may take before the test fails. Generous: CI machines are slow, and the
/// slowest reply a test waits for on purpose (a backend timeout) is well under a second.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);

/// How long to keep trying to connect before giving up.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// One client connection to a memcached, a twemproxy or a Switchyard listener.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// Bytes read from the socket but not yet handed out as part of a reply.
    pending: Vec<u8>,
    deadline: Duration,
}

impl Client {
    /// Connects, panicking if `addr` does not accept within [`CONNECT_DEADLINE`].
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_DEADLINE)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream
            .set_nodelay(true)
            .unwrap_or_else(|e| panic!("set TCP_NODELAY on {addr}: {e}"));
        Client {
            stream,
            peer: addr,
            pending: Vec::new(),
            deadline: REPLY_DEADLINE,
        }
    }

    /// The address this client talks to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// A second handle on the same socket, to write from another thread while this one reads
    /// (a pipeline larger than the socket buffers would otherwise deadlock the test).
    pub fn writer(&self) -> TcpStream {
        self.stream
            .try_clone()
            .unwrap_or_else(|e| panic!("clone socket to {}: {e}", self.peer))
    }

    /// Changes how long one read may wait (default [`REPLY_DEADLINE`]).
    pub fn with_deadline(mut self, deadline: Duration) -> Client {
        self.deadline = deadline;
        self
    }

    /// Writes `bytes` in one `write_all`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to {}: {e}", self.peer));
    }

    /// Sends `bytes` and reads exactly one reply.
    pub fn request(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.send(bytes);
        self.reply()
    }

    /// Sends `bytes` and reads one reply, as a string (lossy) for readable assertions.
    pub fn request_str(&mut self, text: &str) -> String {
        String::from_utf8_lossy(&self.request(text.as_bytes())).into_owned()
    }

    /// `set key 0 0 len\r\nvalue\r\n`, asserting `STORED`.
    pub fn set(&mut self, key: &str, value: &[u8]) {
        let mut cmd = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        cmd.extend_from_slice(value);
        cmd.extend_from_slice(b"\r\n");
        let reply = self.request(&cmd);
        assert_eq!(
            reply,
            b"STORED\r\n",
            "set {key} via {}: got {}",
            self.peer,
            show(&reply)
        );
    }

    /// `get key`: the value, or `None` on a miss. Panics on any other reply.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        let reply = self.request(format!("get {key}\r\n").as_bytes());
        let mut values = parse_values(&reply)
            .unwrap_or_else(|| panic!("get {key} via {}: got {}", self.peer, show(&reply)));
        match values.len() {
            0 => None,
            1 => Some(values.remove(0).1),
            _ => panic!("get {key} via {}: got {}", self.peer, show(&reply)),
        }
    }

    /// The value of `STAT <name>` in this server's `stats` reply, if it has one.
    pub fn stat(&mut self, name: &str) -> Option<u64> {
        self.send(b"stats\r\n");
        let reply = self.read_until(b"END\r\n");
        let prefix = format!("STAT {name} ");
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
    }

    /// Every `STAT name value` of `stats GROUP` (plain `stats` for `""`), and the length of
    /// the reply it was read from.
    pub fn stats_group(&mut self, group: &str) -> (BTreeMap<String, String>, u64) {
        let request = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        self.send(request.as_bytes());
        let raw = self.read_until(b"END\r\n");
        let stats = String::from_utf8_lossy(&raw)
            .lines()
            .filter_map(|line| {
                let (name, value) = line.strip_prefix("STAT ")?.split_once(' ')?;
                Some((name.to_string(), value.to_string()))
            })
            .collect();
        (stats, raw.len() as u64)
    }

    /// One value of `stats backends` for the server at `address` (`name` as in
    /// `STAT <address>:<name> <value>`).
    pub fn backend_stat(&mut self, address: &str, name: &str) -> Option<String> {
        self.send(b"stats backends\r\n");
        let reply = self.read_until(b"END\r\n");
        let prefix = format!("STAT {address}:{name} ");
        String::from_utf8_lossy(&reply)
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    /// Reads exactly one reply: a single line (`STORED`, `SERVER_ERROR ...`, a number, ...), or
    /// for retrievals every `VALUE` block up to and including `END`.
    pub fn reply(&mut self) -> Vec<u8> {
        let started = Instant::now();
        let mut reply = Vec::new();
        loop {
            let line = self.read_line(started);
            reply.extend_from_slice(&line);
            if !line.starts_with(b"VALUE ") {
                return reply;
            }
            let len = value_len(&line).unwrap_or_else(|| {
                panic!("malformed VALUE line from {}: {}", self.peer, show(&line))
            });
            let data = self.read_exact(len + 2, started);
            assert!(
                data.ends_with(b"\r\n"),
                "value from {} not followed by CRLF: {}",
                self.peer,
                show(&data)
            );
            reply.extend_from_slice(&data);
        }
    }

    /// Reads `n` replies, as for `n` pipelined requests.
    pub fn replies(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|_| self.reply()).collect()
    }

    /// Reads until `terminator` has been seen; returns everything up to and including it.
    pub fn read_until(&mut self, terminator: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        loop {
            if let Some(at) = find(&self.pending, terminator) {
                return self.pending.drain(..at + terminator.len()).collect();
            }
            self.fill(started, terminator);
        }
    }

    /// Waits for the peer to close the connection, failing if it sends anything or stays open
    /// past the deadline.
    pub fn expect_closed(&mut self) {
        let started = Instant::now();
        assert!(
            self.pending.is_empty(),
            "expected {} to close, but it sent {}",
            self.peer,
            show(&self.pending)
        );
        let mut buf = [0u8; 256];
        loop {
            self.arm_timeout(started, b"<close>");
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => panic!(
                    "expected {} to close, but it sent {}",
                    self.peer,
                    show(&buf[..n])
                ),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
                Err(e) if is_timeout(&e) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read from {}: {e}", self.peer),
            }
        }
    }

    /// Writes `bytes`, returning the error instead of failing: for input the peer may close the
    /// connection on before reading it all.
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads until `terminator` has been seen, the peer closes, or the deadline passes, and
    /// says which; never fails. For tests whose subject is exactly what arrives, however
    /// malformed, and whether the connection stays open. The bytes are everything read, the
    /// terminator included if it came; bytes after it stay for the next read.
    pub fn read_through(&mut self, terminator: &[u8]) -> (Vec<u8>, Ending) {
        let started = Instant::now();
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(at) = find(&self.pending, terminator) {
                let bytes = self.pending.drain(..at + terminator.len()).collect();
                return (bytes, Ending::Terminator);
            }
            let left = self.deadline.saturating_sub(started.elapsed());
            if left.is_zero() {
                return (std::mem::take(&mut self.pending), Ending::TimedOut);
            }
            self.stream
                .set_read_timeout(Some(left))
                .unwrap_or_else(|e| panic!("set read timeout on {}: {e}", self.peer));
            match self.stream.read(&mut buf) {
                Ok(0) => return (std::mem::take(&mut self.pending), Ending::Closed),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                    return (std::mem::take(&mut self.pending), Ending::Closed);
                }
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read from {}: {e}", self.peer),
            }
        }
    }

    fn read_line(&mut self, started: Instant) -> Vec<u8> {
        loop {
            if let Some(at) = find(&self.pending, b"\r\n") {
                return self.pending.drain(..at + 2).collect();
            }
            self.fill(started, b"\\r\\n");
        }
    }

    fn read_exact(&mut self, n: usize, started: Instant) -> Vec<u8> {
        while self.pending.len() < n {
            self.fill(started, b"<value bytes>");
        }
        self.pending.drain(..n).collect()
    }

    fn arm_timeout(&mut self, started: Instant, waiting_for: &[u8]) {
        let left = self.deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            panic!(
                "no complete reply from {} within {:?} (waiting for {}); received so far: {}",
                self.peer,
                self.deadline,
                String::from_utf8_lossy(waiting_for),
                show(&self.pending)
            );
        }
        self.stream
            .set_read_timeout(Some(left))
            .unwrap_or_else(|e| panic!("set read timeout on {}: {e}", self.peer));
    }

    /// One `read` into `pending`, or a panic naming what was awaited.
    fn fill(&mut self, started: Instant, waiting_for: &[u8]) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            self.arm_timeout(started, waiting_for);
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "{} closed the connection (waiting for {}); received so far: {}",
                    self.peer,
                    String::from_utf8_lossy(waiting_for),
                    show(&self.pending)
                ),
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    return;
                }
                Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("read from {}: {e}", self.peer),
            }
        }
    }
}

/// How a [`Client::read_through`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The terminator arrived.
    Terminator,
    /// The peer closed the connection (or reset it) first.
    Closed,
    /// The deadline passed first, the connection still open.
    TimedOut,
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `<bytes>` field of `VALUE <key> <flags> <bytes> [<cas>]\r\n`.
fn value_len(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    text.trim_end().split(' ').nth(3)?.parse().ok()
}

/// Splits a complete retrieval reply (`VALUE ...` blocks then `END\r\n`) into (header line
/// without CRLF, value) pairs; `None` if it is anything else (an error line, say).
pub fn parse_values(reply: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut rest = reply;
    loop {
        let eol = find(rest, b"\r\n")?;
        let line = &rest[..eol];
        if line == b"END" {
            return (eol + 2 == rest.len()).then_some(out);
        }
        if !line.starts_with(b"VALUE ") {
            return None;
        }
        let len = value_len(line)?;
        let data_start = eol + 2;
        let data_end = data_start.checked_add(len)?;
        if rest.get(data_end..data_end + 2)? != b"\r\n" {
            return None;
        }
        out.push((
            String::from_utf8_lossy(line).into_owned(),
            rest[data_start..data_end].to_vec(),
        ));
        rest = &rest[data_end + 2..];
    }
}

/// The keys of a retrieval reply, in the order they came back.
pub fn reply_keys(reply: &[u8]) -> Vec<String> {
    parse_values(reply)
        .unwrap_or_else(|| panic!("not a retrieval reply: {}", show(reply)))
        .into_iter()
        .map(|(header, _)| header.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect()
}

/// Bytes as a readable, escaped string for assertion messages (long ones are cut).
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 600;
    let mut s: String = bytes
        .iter()
        .take(LIMIT)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > LIMIT {
        s.push_str(&format!("... ({} bytes in all)", bytes.len()));
    }
    format!("\"{s}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_retrieval_replies() {
        let reply = b"VALUE a 0 3\r\nx\r\n\r\nVALUE b 5 0 17\r\n\r\nEND\r\n";
        let values = parse_values(reply).expect("a valid reply");
        assert_eq!(values.len(), 2);
        assert_eq!(values[0], ("VALUE a 0 3".to_owned(), b"x\r\n".to_vec()));
        assert_eq!(values[1], ("VALUE b 5 0 17".to_owned(), Vec::new()));
        assert_eq!(reply_keys(reply), ["a", "b"]);
        assert_eq!(parse_values(b"END\r\n"), Some(Vec::new()));
        assert_eq!(parse_values(b"SERVER_ERROR x\r\n"), None);
        assert_eq!(parse_values(b"VALUE a 0 3\r\nxy\r\nEND\r\n"), None);
        assert_eq!(parse_values(b"END\r\nEND\r\n"), None);
    }
}
