//! The admin listener: a separate socket (`[admin] address`) for commands that change the
//! router, kept off the memcached port so that a client of the cache cannot reload it.
//!
//! Line protocol, one command per line:
//! - `reload`: re-read the config file and publish it; answers `OK <generation>` or
//!   `SERVER_ERROR reload failed: <reason>` (the running generation stays).
//! - `stats`: the same counters as `stats` on a memcached port.
//! - `version`, `quit`.
//!
//! Admin traffic is rare: plain threads, one per connection, off the workers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::reload::Control;
use crate::server::StartError;
use crate::stats::RouterStats;

/// How long an admin connection may sit idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest admin command line.
const MAX_LINE: u64 = 256;

/// A running admin listener.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and joins the accept thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds `address` and serves admin commands on a thread of its own.
pub fn start(
    address: SocketAddr,
    control: Arc<Control>,
    stats: Arc<RouterStats>,
) -> Result<Admin, StartError> {
    let listener =
        TcpListener::bind(address).map_err(|source| StartError::Admin { address, source })?;
    let addr = listener.local_addr().unwrap_or(address);
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("switchyard-admin".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (control, stats) = (control.clone(), stats.clone());
                    let _ = std::thread::Builder::new()
                        .name("switchyard-admin-conn".into())
                        .spawn(move || serve(conn, &control, &stats));
                }
            })
            .map_err(StartError::Thread)?
    };
    tracing::info!(%addr, "admin listener started");
    Ok(Admin {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn serve(conn: TcpStream, control: &Control, stats: &RouterStats) {
    let _ = conn.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let reply = match line.trim() {
            "reload" => match control.reload() {
                Ok(generation) => format!("OK {generation}\r\n"),
                Err(e) => format!(
                    "SERVER_ERROR reload failed: {}\r\n",
                    e.to_string().replace(['\r', '\n'], " ")
                ),
            },
            "stats" => stats.render(),
            "version" => format!("VERSION {}\r\n", crate::VERSION_STRING),
            "quit" => return,
            "" => continue,
            _ => "ERROR\r\n".to_string(),
        };
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
