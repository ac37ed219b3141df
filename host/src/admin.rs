//! The admin listeners, kept off the memcached ports so that a client of the cache cannot reload
//! the router: a line protocol (`[admin] address`, this file) and HTTP (`[admin.http] address`,
//! [`http`]: `/metrics`, `/healthz`, `/readyz`, `/config`, `POST /reload`).
//!
//! Line protocol, one command per line:
//! - `reload`: re-read the config file and publish it; answers `OK <generation>` or
//!   `SERVER_ERROR reload failed: <reason>` (the running generation stays).
//! - `stats`: the same counters as `stats` on a memcached port.
//! - `tap start NAME [EVERY] [MAX_BYTES]`, `tap stop`, `tap`: a capture of client requests to
//!   the file NAME beside the config file (`tap.rs`).
//! - `version`, `quit`.
//!
//! Admin traffic is rare, and kept off the workers: one thread of its own runs a small
//! current-thread runtime serving both listeners, with one task per connection and at most
//! [`MAX_CONNECTIONS`] of them over both (the next is refused: memcached's `ERROR Too many
//! open connections` on the command port, `503` on the HTTP one, then closed), so a flood of
//! admin connections costs tasks, never threads. A reload, which compiles plugins, runs on the
//! runtime's one blocking thread, so `stats` or a scrape on another connection is not held up
//! by it.

mod http;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::reload::Control;
use crate::server::{AcceptBackoff, EveryInterval, StartError};
use crate::stats::RouterStats;

/// How long an admin connection may sit idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest admin command line.
const MAX_LINE: u64 = 256;
/// Admin connections served at once, over both listeners. Operators and metrics scrapers open
/// a handful; 64 leaves room for a burst of them while bounding what a flood can cost (a small
/// task and a socket each, for at most [`IDLE_TIMEOUT`] when idle).
pub const MAX_CONNECTIONS: usize = 64;

/// The running admin listeners.
#[derive(Debug)]
pub struct Admin {
    addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    /// Where the command listener listens, if configured.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Where the HTTP listener listens, if configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
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

/// Binds `address` (the command listener) and `http` (the HTTP listener), those given, and
/// serves them on a thread of its own.
pub fn start(
    address: Option<SocketAddr>,
    http: Option<SocketAddr>,
    control: Arc<Control>,
    stats: Arc<RouterStats>,
) -> Result<Admin, StartError> {
    let bind = |address: SocketAddr| {
        let error = |source| StartError::Admin { address, source };
        let listener = std::net::TcpListener::bind(address).map_err(error)?;
        listener.set_nonblocking(true).map_err(error)?;
        let addr = listener.local_addr().unwrap_or(address);
        Ok::<_, StartError>((listener, addr))
    };
    let text = address.map(bind).transpose()?;
    let web = http.map(bind).transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .thread_name("switchyard-admin-reload")
        .build()
        .map_err(|source| StartError::Admin {
            address: address
                .or(http)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })?;
    let (addr, http_addr) = (text.as_ref().map(|t| t.1), web.as_ref().map(|w| w.1));
    let (stop, stopped) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("switchyard-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
                let commands = {
                    let (control, stats, open) = (control.clone(), stats.clone(), open.clone());
                    async move {
                        let Some((listener, _)) = text else {
                            return std::future::pending().await;
                        };
                        accept(listener, open, crate::server::refuse, move |stream| {
                            let (control, stats) = (control.clone(), stats.clone());
                            async move { serve(stream, &control, &stats).await }
                        })
                        .await;
                    }
                };
                let web = async move {
                    let Some((listener, _)) = web else {
                        return std::future::pending().await;
                    };
                    let shared = Arc::new(http::Shared::new(control, stats));
                    accept(listener, open, http::refuse, move |stream| {
                        http::serve(stream, shared.clone())
                    })
                    .await;
                };
                tokio::select! {
                    () = commands => {}
                    () = web => {}
                    _ = stopped => {}
                }
            });
            // Connections still open are dropped with their tasks; a reload in progress
            // finishes on its thread.
            runtime.shutdown_background();
        })
        .map_err(StartError::Thread)?;
    if let Some(addr) = addr {
        tracing::info!(%addr, "admin listener started");
    }
    if let Some(addr) = http_addr {
        tracing::info!(%addr, "admin HTTP listener started");
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "the admin HTTP listener is not on loopback: anyone who reaches it can read the \
                 config and reload the router"
            );
        }
    }
    Ok(Admin {
        addr,
        http_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Accepts connections on `listener` and serves each with `serve` on a task of its own while
/// `open` has a permit for it; one past that is handed to `refuse` and closed.
async fn accept<F>(
    listener: std::net::TcpListener,
    open: Arc<Semaphore>,
    refuse: fn(std::net::TcpStream),
    serve: impl Fn(TcpStream) -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let local = listener.local_addr().ok();
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(addr = ?local, error = %e, "cannot accept admin connections");
            return std::future::pending().await;
        }
    };
    // A failing accept (out of descriptors, say) backs off and is logged as the listeners' is.
    let mut backoff = AcceptBackoff::default();
    let reports = EveryInterval::new();
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
                refuse(stream);
            }
            continue;
        };
        let served = serve(stream);
        tokio::spawn(async move {
            served.await;
            drop::<OwnedSemaphorePermit>(permit);
        });
    }
}

/// `tap start NAME [EVERY] [MAX_BYTES]`, `tap stop` and `tap` (what the running capture wrote):
/// `OK <file> <requests> <bytes>`, or `CLIENT_ERROR` with the reason (`tap.rs`).
fn tap(command: &str, control: &Control, stats: &RouterStats) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let done = |c: Option<crate::tap::Captured>| match c {
        Some(c) => format!("OK {} {} {}\r\n", c.path.display(), c.requests, c.bytes),
        None => "CLIENT_ERROR no tap runs\r\n".to_string(),
    };
    match words.as_slice() {
        ["tap"] => done(stats.tap.status()),
        ["tap", "stop"] => done(stats.tap.stop()),
        ["tap", "start", name, rest @ ..] if rest.len() <= 2 => {
            let number = |i: usize, default: u64| {
                rest.get(i)
                    .map_or(Some(default), |v: &&str| v.parse::<u64>().ok())
            };
            let (Some(every), Some(max_bytes)) =
                (number(0, 1), number(1, crate::tap::DEFAULT_MAX_BYTES))
            else {
                return "CLIENT_ERROR usage: tap start NAME [EVERY] [MAX_BYTES]\r\n".into();
            };
            let dir = control.current().load().config.base_dir().to_path_buf();
            match stats.tap.start(&dir, name, every, max_bytes) {
                Ok(path) => format!("OK {} 0 0\r\n", path.display()),
                Err(why) => format!("CLIENT_ERROR {}\r\n", why.replace(['\r', '\n'], " ")),
            }
        }
        _ => "CLIENT_ERROR usage: tap start NAME [EVERY] [MAX_BYTES] | tap stop | tap\r\n".into(),
    }
}

/// `experiment start NAME` and `experiment stop NAME`: starts or stops a configured experiment
/// of the running generation (a reload keeps that while the experiment is unchanged):
/// `OK <name> running|stopped`, or `CLIENT_ERROR` with the reason.
fn experiment(command: &str, control: &Control) -> String {
    let words: Vec<&str> = command.split_whitespace().collect();
    let (on, name) = match words.as_slice() {
        ["experiment", "start", name] => (true, *name),
        ["experiment", "stop", name] => (false, *name),
        _ => return "CLIENT_ERROR usage: experiment start NAME | experiment stop NAME\r\n".into(),
    };
    let generation = control.current().load_full();
    let Some(e) = generation
        .experiments
        .iter()
        .find(|e| e.config.name == name)
    else {
        return format!("CLIENT_ERROR no experiment is named `{name}`\r\n");
    };
    if let Some(rollout) = e.rollout() {
        if on && rollout.stage() == crate::experiment::Stage::RolledBack {
            return format!(
                "CLIENT_ERROR canary `{name}` was rolled back ({}); a reload that changes its \
                 candidate starts it over\r\n",
                rollout
                    .reason()
                    .unwrap_or_default()
                    .replace(['\r', '\n'], " ")
            );
        }
        if on && !e.enabled() {
            rollout.restart_step();
        }
    }
    if e.set_enabled(on) {
        tracing::info!(
            experiment = name,
            "experiment {}",
            if on { "started" } else { "stopped" }
        );
    }
    format!("OK {name} {}\r\n", if on { "running" } else { "stopped" })
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
            command if command == "tap" || command.starts_with("tap ") => {
                tap(command, control, stats)
            }
            command if command.starts_with("experiment ") => experiment(command, control),
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
