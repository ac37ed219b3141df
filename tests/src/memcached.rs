//! Real `memcached` processes on free loopback ports.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::Client;
use crate::ports::{POLL_INTERVAL, STARTUP_DEADLINE, free_port, loopback, poll_until};

/// How many fresh ports to try when another process takes the one we picked first.
const PORT_ATTEMPTS: usize = 10;

/// A memcached server owned by one test, killed when dropped.
///
/// Started as `memcached -U 0 -l 127.0.0.1 -p PORT -u nobody -t 1 -m 64`: UDP off, loopback
/// only, `-u nobody` because memcached refuses to run as root without it (and ignores it
/// otherwise), one worker thread and a small cache because tests run many of these on two cores.
#[derive(Debug)]
pub struct Memcached {
    child: Option<Child>,
    port: u16,
    /// Options after the defaults (later ones win), kept for restarts.
    extra: Vec<String>,
}

impl Memcached {
    /// Starts memcached on a free port and returns once it answers on it.
    ///
    /// Panics (failing the test, never skipping it) if `memcached` is not installed.
    pub fn start() -> Memcached {
        Memcached::start_with(&[])
    }

    /// Starts memcached with `extra` options after the defaults, which they override (as
    /// `-I 64m -m 256` for large items).
    pub fn start_with(extra: &[&str]) -> Memcached {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(port, &extra) {
                Ok(child) => {
                    return Memcached {
                        child: Some(child),
                        port,
                        extra,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("memcached did not start after {PORT_ATTEMPTS} ports; last: {last_error}");
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT` as a socket address.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// `127.0.0.1:PORT`, as written in configs.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT:1`: a twemproxy (and Switchyard) server spec with weight 1.
    pub fn spec(&self) -> String {
        format!("127.0.0.1:{}:1", self.port)
    }

    /// A new client connection to this server.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL) and waits for it: its port refuses connections afterwards.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Err(e) = child.kill() {
                panic!("kill memcached on port {}: {e}", self.port);
            }
            if let Err(e) = child.wait() {
                panic!("reap memcached on port {}: {e}", self.port);
            }
        }
    }

    /// Kills the process if it runs, then starts a new, empty one on the same port.
    pub fn restart(&mut self) {
        self.kill();
        // Our own old socket is gone (memcached sets SO_REUSEADDR); retry briefly in case the
        // kernel needs a moment, but fail if someone else took the port.
        let mut last_error = String::new();
        let child = poll_until(STARTUP_DEADLINE, || match spawn(self.port, &self.extra) {
            Ok(child) => Some(child),
            Err(e) => {
                last_error = e;
                None
            }
        });
        match child {
            Some(child) => self.child = Some(child),
            None => panic!(
                "memcached did not restart on port {}: {last_error}",
                self.port
            ),
        }
    }

    /// Stops the process (SIGSTOP) without closing its sockets: connects still succeed, requests
    /// are never answered. The way to make a backend time out rather than refuse.
    ///
    /// Returns once every thread of the process is stopped: `kill` returns when the signal is
    /// queued, and a thread already running could otherwise still answer a request sent right
    /// after.
    pub fn pause(&self) {
        crate::process::pause(self.running_pid(), "memcached");
    }

    /// Resumes a paused process (SIGCONT).
    pub fn resume(&self) {
        crate::process::resume(self.running_pid());
    }

    fn running_pid(&self) -> u32 {
        self.pid()
            .unwrap_or_else(|| panic!("memcached on port {} is not running", self.port))
    }

    /// `flush_all` on this server, asserting `OK`.
    pub fn flush_all(&self) {
        let reply = self.client().request(b"flush_all\r\n");
        assert_eq!(reply, b"OK\r\n", "flush_all on {}", self.address());
    }

    /// For each key, whether this server holds it (asked directly, in batched `get`s).
    pub fn holds(&self, keys: &[String]) -> Vec<bool> {
        let mut client = self.client();
        let mut held = Vec::with_capacity(keys.len());
        for batch in keys.chunks(50) {
            let reply = client.request(format!("get {}\r\n", batch.join(" ")).as_bytes());
            let found = crate::client::reply_keys(&reply);
            held.extend(batch.iter().map(|key| found.contains(key)));
        }
        held
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a SIGSTOPped process. Errors here mean it is already gone.
            if child.kill().is_ok()
                && let Err(e) = child.wait()
            {
                eprintln!("warning: reaping memcached on port {}: {e}", self.port);
            }
        }
    }
}

/// Spawns memcached on `port` and waits until it answers `stats` with its own pid (so a
/// different process that happens to hold the port is not mistaken for ours).
fn spawn(port: u16, extra: &[String]) -> Result<Child, String> {
    let mut child = Command::new("memcached")
        .args(["-U", "0", "-l", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", "nobody", "-t", "1", "-m", "64"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run memcached ({e}): install it (`apt-get install memcached`; .ci/run does)"
            )
        });
    let pid = child.id();
    let mut exited = None;
    let ready = poll_until(STARTUP_DEADLINE, || {
        match child.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                return Some(false);
            }
            Ok(None) => {}
            Err(e) => panic!("wait for memcached: {e}"),
        }
        (stats_pid(loopback(port)) == Some(pid)).then_some(true)
    });
    match (ready, exited) {
        (Some(true), _) => Ok(child),
        (_, Some(status)) => {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take()
                && let Err(e) = pipe.read_to_string(&mut stderr)
            {
                stderr = format!("<unreadable stderr: {e}>");
            }
            Err(format!(
                "memcached on port {port} exited with {status}: {}",
                stderr.trim()
            ))
        }
        _ => {
            // It never answered; whether it is still there to kill does not matter.
            let _killed = child.kill();
            let _reaped = child.wait();
            Err(format!(
                "memcached on port {port} did not answer within {STARTUP_DEADLINE:?}"
            ))
        }
    }
}

/// The `STAT pid` of whatever memcached answers on `addr`, if any answers.
fn stats_pid(addr: SocketAddr) -> Option<u32> {
    let mut stream = TcpStream::connect_timeout(&addr, POLL_INTERVAL * 20).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(b"stats\r\n").ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        reply.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&reply)
        .lines()
        .find_map(|line| line.strip_prefix("STAT pid "))
        .and_then(|pid| pid.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::accepts;
    use std::io::ErrorKind;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() {
        let mut server = Memcached::start();
        let port = server.port();
        let mut client = server.client();
        client.set("k", b"v");
        assert_eq!(client.get("k"), Some(b"v".to_vec()));

        server.kill();
        assert!(!accepts(server.addr()), "killed server still accepts");

        server.restart();
        assert_eq!(server.port(), port);
        assert_eq!(server.client().get("k"), None, "restarted server is empty");
    }

    #[test]
    fn a_paused_server_accepts_but_answers_only_after_resume() {
        let server = Memcached::start();
        server.pause();
        let mut stream = TcpStream::connect(server.addr()).expect("connect to paused server");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("set read timeout");
        stream.write_all(b"version\r\n").expect("write");
        let mut buf = [0u8; 64];
        let err = stream
            .read(&mut buf)
            .expect_err("a paused server must not answer");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );

        server.resume();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set read timeout");
        let n = stream.read(&mut buf).expect("reply after resume");
        assert!(
            buf[..n].starts_with(b"VERSION "),
            "{}",
            crate::show(&buf[..n])
        );
    }

    #[test]
    fn locates_keys_on_the_server_that_holds_them() {
        let (a, b) = (Memcached::start(), Memcached::start());
        a.client().set("on-a", b"1");
        b.client().set("on-b", b"2");
        let keys = ["on-b".to_owned(), "on-a".to_owned()];
        assert_eq!(crate::locate(&[&a, &b], &keys), [1, 0]);
    }
}
