//! Free loopback ports and readiness polling.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// How long a freshly spawned server may take to accept connections.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between two readiness probes: short, so a test waits about as long as the server takes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A loopback port that was free a moment ago. Another process may take it before ours binds
/// it; callers notice (their server exits) and try again with a new one.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Polls `probe` every [`POLL_INTERVAL`] until it returns `Some`, or `None` once `deadline`
/// has passed. This is how tests wait for something to happen: never a fixed sleep.
pub fn poll_until<T>(deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if started.elapsed() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Whether something accepts TCP connections on `addr` right now.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
