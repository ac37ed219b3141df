//! One connection under load: the socket loop around a [`Pipeline`], and reopening the
//! connection when it fails.
//!
//! The loop is generic over the [`Transport`] (a socket, or a TLS session over one), so each
//! is compiled on its own: a plaintext connection pays nothing for TLS, not even a branch per
//! read or write.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{sleep, sleep_until, timeout};
use tokio_rustls::client::TlsStream;

use crate::pacer::{EARLY, PaceSleep, PacerHandle};
use crate::pipeline::Pipeline;
use crate::reply::Malformed;
use crate::rng::Rng;
use crate::stats::{ErrorKind, Recorder};
use crate::tls::Tls;
use crate::workload::{Next, Workload};

/// How long a connection may take to open before it counts as failed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between attempts to reopen a failed connection: a server that is down is not hammered
/// with connects, and the connect errors stay countable.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// What every connection of a run shares.
#[derive(Debug)]
pub struct Context {
    /// The servers; connection `id` uses `addrs[id % addrs.len()]`.
    pub addrs: Vec<SocketAddr>,
    pub workload: Arc<Workload>,
    /// Requests in flight and no byte moving for this long: the connection is given up.
    pub timeout: Duration,
    /// Open loop only.
    pub pacer: Option<PacerHandle>,
    /// TLS to the servers (`--tls-ca`); plaintext without it.
    pub tls: Option<Tls>,
}

impl Context {
    /// The server connection `id` talks to.
    pub fn addr(&self, id: usize) -> SocketAddr {
        self.addrs[id % self.addrs.len()]
    }

    /// Opens connection `id`: TCP, then the TLS handshake if the run speaks TLS, within
    /// [`CONNECT_TIMEOUT`] in all.
    pub async fn open(&self, id: usize) -> io::Result<Stream> {
        let server = id % self.addrs.len();
        let opening = async {
            let tcp = TcpStream::connect(self.addrs[server]).await?;
            tcp.set_nodelay(true)?;
            Ok(match &self.tls {
                None => Stream::Plain(tcp),
                Some(tls) => Stream::Tls(Box::new(tls.connect(server, tcp).await?)),
            })
        };
        timeout(CONNECT_TIMEOUT, opening)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }

    /// Where connection `id` stands among the connections to its server: (its position,
    /// how many there are), so that a prefill gives each server every key.
    pub fn place(&self, id: usize, conns: usize) -> (u64, u64) {
        let servers = self.addrs.len();
        let siblings = (conns - id % servers).div_ceil(servers);
        ((id / servers) as u64, siblings.max(1) as u64)
    }
}

/// When requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// As soon as a slot is free.
    Closed,
    /// At `next`, then every `interval`; latency counts from the scheduled time.
    Open { next: Instant, interval: Duration },
}

/// Which requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// Drawn from the mix, until the phase ends.
    Mix,
    /// A `set` of each key `next, next + step, ...` below `end`, then done (prefill).
    Keys { next: u64, step: u64, end: u64 },
}

impl Source {
    fn take(&mut self) -> Option<Next> {
        match self {
            Source::Mix => Some(Next::Drawn),
            Source::Keys { next, step, end } => {
                let key = u32::try_from(*next).ok().filter(|_| *next < *end)?;
                *next += *step;
                Some(Next::SetKey(key))
            }
        }
    }

    fn exhausted(&self) -> bool {
        matches!(self, Source::Keys { next, end, .. } if next >= end)
    }
}

/// A stretch of work for one connection.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// When it ends: no request is written after, nor a reply waited for. `None`: when the
    /// source is exhausted and every reply is in.
    pub end: Option<Instant>,
    /// Requests in flight at most.
    pub depth: usize,
    pub pacing: Pacing,
    pub source: Source,
}

impl Phase {
    /// Open loop: requests scheduled before the end and never written.
    fn backlog(&self) -> u64 {
        match (self.pacing, self.end) {
            (Pacing::Open { next, interval }, Some(end)) if next < end => {
                let behind = (end - next).as_nanos();
                let backlog = behind.div_ceil(interval.as_nanos().max(1));
                u64::try_from(backlog).unwrap_or(u64::MAX)
            }
            _ => 0,
        }
    }
}

/// Why an exchange stopped before its phase ended.
#[derive(Debug)]
enum Failure {
    Malformed(Malformed),
    Closed,
    Io(io::Error),
    Timeout(Duration),
}

impl Failure {
    fn kind(&self) -> ErrorKind {
        match self {
            Failure::Malformed(_) => ErrorKind::Malformed,
            Failure::Closed => ErrorKind::Closed,
            Failure::Io(_) => ErrorKind::Io,
            Failure::Timeout(_) => ErrorKind::Timeout,
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Malformed(m) => format!("malformed reply: {m}"),
            Failure::Closed => "the server closed the connection".into(),
            Failure::Io(e) => format!("i/o error: {e}"),
            Failure::Timeout(t) => format!("no byte moved for {t:?} with requests in flight"),
        }
    }
}

/// What woke the socket loop.
#[derive(Debug)]
enum Event {
    Read(io::Result<usize>),
    Wrote(io::Result<usize>),
    /// A TLS session sent what it held back.
    Flushed(io::Result<()>),
    Stall,
    Pace,
    End,
}

/// A connection's bytes: a TCP socket (no Nagle delay, since latency is what is measured), or
/// a TLS session over one.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    /// Boxed: a session holds kilobytes of state, and only TLS connections pay for them.
    Tls(Box<TlsStream<TcpStream>>),
}

/// What the socket loop reads from and writes to.
pub trait Transport: AsyncRead + AsyncWrite + Unpin {
    /// A write may leave bytes that only a flush sends: a TLS session accepts plaintext and
    /// holds the records it could not write while the socket was full. A socket holds nothing
    /// back, and for it the loop never flushes.
    const HOLDS_BACK: bool;
}

impl Transport for TcpStream {
    const HOLDS_BACK: bool = false;
}

impl Transport for TlsStream<TcpStream> {
    const HOLDS_BACK: bool = true;
}

/// A connection, open or waiting to be reopened.
#[derive(Debug)]
pub struct Conn {
    /// Its index among the run's load connections.
    pub id: usize,
    stream: Option<Stream>,
    pipeline: Pipeline,
    rng: Rng,
}

impl Conn {
    /// Opens connection `id`; its requests are drawn from `rng`, `slots` at most in flight.
    pub async fn connect(id: usize, ctx: &Context, rng: Rng, slots: usize) -> io::Result<Self> {
        let stream = ctx.open(id).await?;
        Ok(Self {
            id,
            stream: Some(stream),
            pipeline: Pipeline::new(slots, &ctx.workload),
            rng,
        })
    }

    /// Carries out `phase`, reopening the connection as often as it fails, and records into
    /// `rec`. On return `phase` tells how far it got.
    pub async fn run(&mut self, phase: &mut Phase, ctx: &Context, rec: &RefCell<Recorder>) {
        loop {
            let mut stream = match self.stream.take() {
                Some(stream) => stream,
                None => match self.reconnect(phase, ctx, rec).await {
                    Some(stream) => stream,
                    None => break,
                },
            };
            let exchanged = match &mut stream {
                Stream::Plain(tcp) => self.exchange(tcp, phase, ctx, rec).await,
                Stream::Tls(tls) => self.exchange(&mut **tls, phase, ctx, rec).await,
            };
            match exchanged {
                Ok(()) => {
                    self.stream = Some(stream);
                    break;
                }
                Err(failure) => {
                    let lost = self.pipeline.reset();
                    let mut rec = rec.borrow_mut();
                    rec.lost += lost as u64;
                    rec.error(failure.kind(), || failure.describe());
                }
            }
        }
        let mut rec = rec.borrow_mut();
        rec.backlog_at_end += phase.backlog();
        if self.pipeline.in_flight() > 0 {
            // Their replies would arrive in the next phase: this connection is done.
            rec.in_flight_at_end += self.pipeline.reset() as u64;
            self.stream = None;
        }
    }

    /// Reopens the connection, retrying until the phase ends (or, for a phase without an end,
    /// for `ctx.timeout`); `None` if it could not.
    async fn reconnect(
        &mut self,
        phase: &Phase,
        ctx: &Context,
        rec: &RefCell<Recorder>,
    ) -> Option<Stream> {
        let give_up = phase.end.unwrap_or_else(|| Instant::now() + ctx.timeout);
        loop {
            if Instant::now() >= give_up {
                return None;
            }
            match ctx.open(self.id).await {
                Ok(stream) => return Some(stream),
                Err(e) => rec.borrow_mut().error(ErrorKind::Connect, || {
                    format!("reconnect to {}: {e}", ctx.addr(self.id))
                }),
            }
            let retry = Instant::now() + RECONNECT_DELAY;
            if retry >= give_up {
                return None;
            }
            sleep_until(retry.into()).await;
        }
    }

    /// The socket loop: writes requests as the phase allows, reads replies, until the phase
    /// ends (`Ok`) or the connection fails.
    async fn exchange<S: Transport>(
        &mut self,
        stream: &mut S,
        phase: &mut Phase,
        ctx: &Context,
        rec: &RefCell<Recorder>,
    ) -> Result<(), Failure> {
        // Written bytes a TLS session may still hold (never set for a socket).
        let mut unflushed = false;
        let mut end = pin!(sleep_until(
            phase
                .end
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400))
                .into()
        ));
        let mut stall = pin!(sleep(ctx.timeout));
        let mut pace = PaceSleep::new(ctx.pacer.clone());
        let mut progress = Instant::now();
        loop {
            let now = Instant::now();
            if phase.end.is_some_and(|end| now >= end) {
                return Ok(());
            }
            if self.pipeline.in_flight() == 0 {
                progress = now;
            }
            self.fill(phase, ctx, rec, now);
            if phase.end.is_none() && phase.source.exhausted() && self.pipeline.in_flight() == 0 {
                return Ok(());
            }
            let pace_armed = match phase.pacing {
                Pacing::Open { next, .. }
                    if self.pipeline.in_flight() < phase.depth
                        && phase.end.is_none_or(|end| next < end) =>
                {
                    pace.set(next);
                    true
                }
                _ => false,
            };
            let busy = self.pipeline.in_flight() > 0;
            let (space, out) = self.pipeline.buffers();
            let flush = S::HOLDS_BACK && unflushed;
            let event = tokio::select! {
                biased;
                event = poll_fn(|cx| poll_io(cx, &mut *stream, &mut *space, out, flush)) => event,
                () = &mut pace, if pace_armed => Event::Pace,
                () = &mut stall, if busy => Event::Stall,
                () = &mut end, if phase.end.is_some() => Event::End,
            };
            match event {
                Event::Read(Ok(0)) => return Err(Failure::Closed),
                Event::Read(Ok(n)) => {
                    let now = Instant::now();
                    progress = now;
                    let mut rec = rec.borrow_mut();
                    rec.received(n, now);
                    self.pipeline
                        .received(n, now, &mut rec)
                        .map_err(Failure::Malformed)?;
                }
                Event::Wrote(Ok(0)) => return Err(Failure::Closed),
                Event::Wrote(Ok(n)) => {
                    let now = Instant::now();
                    progress = now;
                    self.pipeline.wrote(n);
                    rec.borrow_mut().sent(n, now);
                    unflushed = S::HOLDS_BACK;
                }
                Event::Flushed(Ok(())) => {
                    progress = Instant::now();
                    unflushed = false;
                }
                Event::Read(Err(e)) | Event::Wrote(Err(e)) | Event::Flushed(Err(e)) => {
                    return Err(Failure::Io(e));
                }
                Event::Stall => {
                    let quiet = progress.elapsed();
                    if quiet >= ctx.timeout {
                        return Err(Failure::Timeout(quiet));
                    }
                    stall.as_mut().reset((progress + ctx.timeout).into());
                }
                Event::Pace => {}
                Event::End => return Ok(()),
            }
        }
    }

    /// Adds requests while the phase allows and a slot is free.
    fn fill(&mut self, phase: &mut Phase, ctx: &Context, rec: &RefCell<Recorder>, now: Instant) {
        while self.pipeline.in_flight() < phase.depth.min(self.pipeline.capacity()) {
            let start = match phase.pacing {
                Pacing::Closed => now,
                Pacing::Open { next, .. } => {
                    if next > now + EARLY || phase.end.is_some_and(|end| next >= end) {
                        return;
                    }
                    // Late: latency counts from the schedule, so the wait is not hidden.
                    // Early (by at most EARLY): from now, when the request really leaves.
                    next.min(now)
                }
            };
            let Some(next) = phase.source.take() else {
                return;
            };
            if let Pacing::Open { next, interval } = &mut phase.pacing {
                rec.borrow_mut().lag(*next, now);
                *next += *interval;
            }
            self.pipeline
                .push(&ctx.workload, next, &mut self.rng, start);
        }
    }
}

/// One poll of the stream, reading before writing: a read into `space`; else a write of `out`
/// if it holds anything; else, if `flush`, a flush of what a TLS session held back.
fn poll_io<S: Transport>(
    cx: &mut TaskContext<'_>,
    stream: &mut S,
    space: &mut [u8],
    out: &[u8],
    flush: bool,
) -> Poll<Event> {
    let mut buf = ReadBuf::new(space);
    if let Poll::Ready(read) = Pin::new(&mut *stream).poll_read(cx, &mut buf) {
        return Poll::Ready(Event::Read(read.map(|()| buf.filled().len())));
    }
    if !out.is_empty() {
        if let Poll::Ready(wrote) = Pin::new(&mut *stream).poll_write(cx, out) {
            return Poll::Ready(Event::Wrote(wrote));
        }
    } else if flush && let Poll::Ready(flushed) = Pin::new(stream).poll_flush(cx) {
        return Poll::Ready(Event::Flushed(flushed));
    }
    Poll::Pending
}
