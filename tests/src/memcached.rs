//! Real `memcached` processes on free loopback ports, plaintext or TLS (`-Z`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::{Client, Ending};
use crate::ports::{POLL_INTERVAL, STARTUP_DEADLINE, free_port, loopback, poll_until};
use crate::tls::{CA, Certs, SERVER_CERT, SERVER_KEY, TlsOptions};

/// How many fresh ports to try when another process takes the one we picked first.
const PORT_ATTEMPTS: usize = 10;

/// A memcached server owned by one test, killed when dropped.
///
/// Started as `memcached -U 0 -l 127.0.0.1 -p PORT -u nobody -t 1 -m 64`: UDP off, loopback
/// only, `-u nobody` because memcached refuses to run as root without it (and ignores it
/// otherwise), one worker thread and a small cache because tests run many of these on two cores.
/// [`Memcached::start_tls`] adds `-Z -o ssl_chain_cert=...,ssl_key=...`.
#[derive(Debug)]
pub struct Memcached {
    child: Option<Child>,
    port: u16,
    /// Options after the defaults (later ones win), kept for restarts.
    extra: Vec<String>,
    /// How to reach it when it speaks TLS only.
    tls: Option<TlsOptions>,
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
        Memcached::start_on_a_free_port(extra, None)
    }

    /// Starts memcached speaking TLS only (`-Z`) with the server certificate and key of
    /// `certs` (`server.pem`, `server-key.pem`), not asking for client certificates; returns
    /// once it answers `stats` over TLS. [`Memcached::client`] then connects over TLS, trusting
    /// `certs`' CA.
    pub fn start_tls(certs: &Certs) -> Memcached {
        Memcached::start_tls_with(certs, false)
    }

    /// As [`Memcached::start_tls`], and requiring a client certificate signed by `certs`' CA
    /// (`ssl_ca_cert=ca.pem,ssl_verify_mode=2`): a client without one fails its handshake.
    /// [`Memcached::client`] shows `certs`' client certificate.
    pub fn start_tls_verifying_clients(certs: &Certs) -> Memcached {
        Memcached::start_tls_with(certs, true)
    }

    fn start_tls_with(certs: &Certs, verify_clients: bool) -> Memcached {
        // `-o` splits its value at commas: the paths must have none.
        let path = |name: &str| {
            let path = certs.path(name).display().to_string();
            assert!(!path.contains(','), "memcached cannot take {path} in -o");
            path
        };
        let mut settings = format!(
            "ssl_chain_cert={},ssl_key={}",
            path(SERVER_CERT),
            path(SERVER_KEY)
        );
        if verify_clients {
            settings.push_str(&format!(",ssl_ca_cert={},ssl_verify_mode=2", path(CA)));
        }
        let extra = vec!["-Z".to_owned(), "-o".to_owned(), settings];
        Memcached::start_on_a_free_port(extra, Some(certs.as_client()))
    }

    fn start_on_a_free_port(extra: Vec<String>, tls: Option<TlsOptions>) -> Memcached {
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            match spawn(port, &extra, tls.as_ref()) {
                Ok(child) => {
                    return Memcached {
                        child: Some(child),
                        port,
                        extra,
                        tls,
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

    /// A new client connection to this server (over TLS if it speaks TLS).
    pub fn client(&self) -> Client {
        match &self.tls {
            None => Client::connect(self.addr()),
            Some(options) => options
                .connect(self.addr())
                .unwrap_or_else(|e| panic!("TLS client of memcached: {e}"))
                .into_client(),
        }
    }

    /// Whether it speaks TLS only (`-Z`).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
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
        let tls = self.tls.as_ref();
        let child = poll_until(STARTUP_DEADLINE, || {
            match spawn(self.port, &self.extra, tls) {
                Ok(child) => Some(child),
                Err(e) => {
                    last_error = e;
                    None
                }
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
/// different process that happens to hold the port is not mistaken for ours), over TLS with
/// `tls` when given.
fn spawn(port: u16, extra: &[String], tls: Option<&TlsOptions>) -> Result<Child, String> {
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
        let answered = match tls {
            None => stats_pid(loopback(port)),
            Some(options) => stats_pid_tls(loopback(port), options),
        };
        (answered == Some(pid)).then_some(true)
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
    pid_of(&reply)
}

/// The `STAT pid` of whatever memcached answers on `addr` over TLS, if any answers.
fn stats_pid_tls(addr: SocketAddr, options: &TlsOptions) -> Option<u32> {
    let mut client = options
        .connect(addr)
        .ok()?
        .into_client()
        .with_deadline(Duration::from_secs(1));
    client.try_send(b"stats\r\n").ok()?;
    match client.read_through(b"END\r\n") {
        (reply, Ending::Terminator) => pid_of(&reply),
        _ => None,
    }
}

/// The `STAT pid` line of a `stats` reply.
fn pid_of(reply: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(reply)
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
    fn a_tls_memcached_answers_over_tls_only_and_restarts_with_tls() {
        let dir = crate::TestDir::new("memcached-tls");
        let certs = Certs::generate(dir.path());
        let mut server = Memcached::start_tls(&certs);
        assert!(server.is_tls());
        let mut client = server.client();
        let version = client.request_str("version\r\n");
        assert!(version.starts_with("VERSION "), "{version:?}");
        client.set("k", b"v");
        assert_eq!(client.get("k"), Some(b"v".to_vec()));
        assert_eq!(server.holds(&["k".to_owned()]), [true]);

        // Plaintext gets no memcached reply: the TLS handshake fails and memcached closes.
        let mut plain = Client::connect(server.addr()).with_deadline(Duration::from_secs(5));
        let _ = plain.try_send(b"version\r\n");
        let (bytes, ending) = plain.read_through(b"VERSION");
        assert_ne!(ending, Ending::Terminator, "{}", crate::show(&bytes));

        server.restart();
        assert_eq!(server.client().get("k"), None, "restarted with TLS, empty");
    }

    #[test]
    fn a_tls_memcached_verifying_clients_refuses_one_without_a_certificate() {
        let dir = crate::TestDir::new("memcached-mtls");
        let certs = Certs::generate(dir.path());
        let server = Memcached::start_tls_verifying_clients(&certs);
        server.client().set("k", b"v");
        let refused = match certs.trust().connect(server.addr()) {
            Err(_) => true,
            Ok(mut client) => {
                let _ = client.try_send(b"get k\r\n");
                client.read_through(b"END\r\n").1 == Ending::Closed
            }
        };
        assert!(refused, "memcached served a client without a certificate");
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
