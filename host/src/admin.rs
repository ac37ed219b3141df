//! The admin listener: a separate socket (`[admin] address`) for commands that change the
//! router, kept off the memcached port so that a client of the cache cannot reload it.
//!
//! Line protocol, one command per line:
//! - `reload`: re-read the config file and publish it; answers `OK <generation>` or
//!   `SERVER_ERROR reload failed: <reason>` (the running generation stays).
//! - `stats`: the same counters as `stats` on a memcached port.
//! - `version`, `quit`.
//!
//! Admin traffic is rare, and kept off the workers: one thread of its own runs a small
//! current-thread runtime, with one task per connection and at most [`MAX_CONNECTIONS`] of
//! them (the next gets memcached's `ERROR Too many open connections` and is closed), so a flood
//! of admin connections costs tasks, never threads. A reload, which compiles plugins, runs on
//! the runtime's one blocking thread, so `stats` on another connection is not held up by it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};

use crate::reload::Control;
use crate::server::{AcceptBackoff, EveryInterval, StartError};
use crate::stats::RouterStats;

/// How long an admin connection may sit idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest admin command line.
const MAX_LINE: u64 = 256;
/// Admin connections served at once. Operators and metrics scrapers open a handful; 64 leaves
/// room for a burst of them while bounding what a flood can cost (a small task and a socket
/// each, for at most [`IDLE_TIMEOUT`] when idle).
pub const MAX_CONNECTIONS: usize = 64;

/// A running admin listener.
#[derive(Debug)]
pub struct Admin {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every admin connection and joins the admin thread. A reload in
    /// progress finishes on its own.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
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
    let error = |source| StartError::Admin { address, source };
    let listener = std::net::TcpListener::bind(address).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    let addr = listener.local_addr().unwrap_or(address);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .thread_name("switchyard-admin-reload")
        .build()
        .map_err(error)?;
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("switchyard-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(%addr, error = %e, "cannot accept admin connections");
                        return;
                    }
                };
                tokio::select! {
                    () = accept(listener, control, stats) => {}
                    _ = stopped => {}
                }
            });
            // Connections still open are dropped with their tasks; a reload in progress
            // finishes on its thread.
            runtime.shutdown_background();
        })
        .map_err(StartError::Thread)?;
    tracing::info!(%addr, "admin listener started");
    Ok(Admin {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn accept(listener: TcpListener, control: Arc<Control>, stats: Arc<RouterStats>) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // A failing accept (out of descriptors, say) backs off and is logged as the listeners' is.
    let mut backoff = AcceptBackoff::default();
    let reports = EveryInterval::new();
    let local = listener.local_addr().ok();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => {
                backoff.reset();
                stream
            }
            Err(e) => {
                let local = local.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
                if let Some(pause) = backoff.failed(&e, local, &reports) {
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            if let Ok(stream) = stream.into_std() {
                crate::server::refuse(stream);
            }
            continue;
        };
        let (control, stats) = (control.clone(), stats.clone());
        tokio::spawn(async move {
            serve(stream, &control, &stats).await;
            drop(permit);
        });
    }
}

async fn serve(mut conn: TcpStream, control: &Arc<Control>, stats: &RouterStats) {
    let (rd, mut out) = conn.split();
    let mut reader = BufReader::new(rd);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(MAX_LINE);
        match tokio::time::timeout(IDLE_TIMEOUT, limited.read_line(&mut line)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(_)) => {}
        }
        let reply = match line.trim() {
            "reload" => {
                let control = control.clone();
                match tokio::task::spawn_blocking(move || control.reload()).await {
                    Ok(Ok(generation)) => format!("OK {generation}\r\n"),
                    Ok(Err(e)) => format!(
                        "SERVER_ERROR reload failed: {}\r\n",
                        e.to_string().replace(['\r', '\n'], " ")
                    ),
                    Err(e) => format!(
                        "SERVER_ERROR reload failed: {}\r\n",
                        e.to_string().replace(['\r', '\n'], " ")
                    ),
                }
            }
            "stats" => stats.render(),
            "version" => format!("VERSION {}\r\n", crate::VERSION_STRING),
            "quit" => return,
            "" => continue,
            _ => "ERROR\r\n".to_string(),
        };
        if out.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}
