//! A connection to a server, plaintext or TLS: what the pipelined driver (`connection.rs`),
//! a long value's connection of its own, a health probe and the delete spool's replay all
//! connect with, so that a pool with `tls` is reached over TLS by every one of them.
//!
//! A plaintext link is read by readiness straight into the caller's buffer (`wire::read_some`);
//! a TLS link through rustls, which decrypts into it. The pipelined driver reads and writes at
//! once: [`Link::split`] gives it two halves, which for TLS share the session through a
//! `RefCell` borrowed only inside each poll (both halves are polled by the driver's one task,
//! never at once).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio_rustls::client::TlsStream;

use super::{BackendError, connect_failed};
use crate::tls::Connector;

/// One connection to a server.
#[derive(Debug)]
pub(crate) enum Link {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP: boxed, a session is a few kilobytes.
    Tls(Box<RefCell<TlsStream<TcpStream>>>),
}

impl Link {
    /// Connects to `address`, with a TLS handshake when `tls` says so, all within `timeout`.
    pub(crate) async fn connect(
        address: std::net::SocketAddr,
        tls: Option<&Connector>,
        timeout: Duration,
    ) -> Result<Link, BackendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(connect_failed(&e)),
            Err(_) => return Err(BackendError::ConnectTimeout),
        };
        let _ = stream.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok(Link::Plain(stream));
        };
        let fresh = tls.no_resumption.load(Ordering::Relaxed);
        let config = if fresh { &tls.fresh } else { &tls.config };
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let handshake = connector.connect(tls.server_name.clone(), stream);
        let failed = match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(session)) => return Ok(Link::Tls(Box::new(RefCell::new(session)))),
            Ok(Err(e)) => crate::tls::reason(&e),
            Err(_) => {
                return Err(BackendError::Tls(format!(
                    "no handshake within the connect timeout ({} ms)",
                    timeout.as_millis()
                )));
            }
        };
        if fresh {
            return Err(BackendError::Tls(failed));
        }
        // The handshake may have failed because the server cannot resume the session it was
        // offered: once more, a full handshake, on a new connection.
        let retry = async {
            let stream = TcpStream::connect(address).await?;
            let _ = stream.set_nodelay(true);
            tokio_rustls::TlsConnector::from(tls.fresh.clone())
                .connect(tls.server_name.clone(), stream)
                .await
        };
        match tokio::time::timeout_at(deadline, retry).await {
            Ok(Ok(session)) => {
                if !tls.no_resumption.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        backend = %address,
                        first = %failed,
                        "a resumed TLS handshake failed and a full one succeeded: this server \
                         is reached without session resumption from now on"
                    );
                }
                Ok(Link::Tls(Box::new(RefCell::new(session))))
            }
            // The full handshake failed too: the first reason is the one to tell.
            _ => Err(BackendError::Tls(failed)),
        }
    }

    /// Whether the link is open and has nothing to read, as an idle connection kept for reuse
    /// should: one the server closed reads end of stream, one it wrote to is out of step.
    pub(crate) fn is_idle(&self) -> bool {
        let idle = |tcp: &TcpStream| matches!(tcp.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
        match self {
            Link::Plain(s) => idle(s),
            Link::Tls(s) => idle(s.borrow().get_ref().0),
        }
    }

    /// Reads what the server sent into `buf`'s free space, waiting for some.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Link::Plain(s) => crate::wire::read_some(s, buf).await,
            Link::Tls(s) => tls_read_some(s, buf).await,
        }
    }

    /// The two halves, for reading and writing at once from one task.
    pub(crate) fn split(&mut self) -> (LinkRead<'_>, LinkWrite<'_>) {
        match self {
            Link::Plain(s) => {
                let (r, w) = s.split();
                (LinkRead::Plain(r), LinkWrite::Plain(w))
            }
            Link::Tls(s) => (LinkRead::Tls(s), LinkWrite::Tls(s)),
        }
    }
}

/// Reads what a TLS session has (decrypting what has arrived) into `buf`'s free space,
/// borrowing the session only while polled.
async fn tls_read_some(
    session: &RefCell<TlsStream<TcpStream>>,
    buf: &mut BytesMut,
) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        buf.reserve(4096);
    }
    std::future::poll_fn(|cx| {
        let mut s = session.borrow_mut();
        let read = s.read_buf(&mut *buf);
        std::pin::pin!(read).poll(cx)
    })
    .await
}

/// The reading half of a [`Link`].
#[derive(Debug)]
pub(crate) enum LinkRead<'a> {
    Plain(ReadHalf<'a>),
    Tls(&'a RefCell<TlsStream<TcpStream>>),
}

impl LinkRead<'_> {
    /// Reads what the server sent into `buf`'s free space, waiting for some.
    pub(crate) async fn read_some(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            LinkRead::Plain(r) => crate::wire::read_some(r.as_ref(), buf).await,
            LinkRead::Tls(s) => tls_read_some(s, buf).await,
        }
    }
}

impl AsyncRead for LinkRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LinkRead::Plain(r) => Pin::new(r).poll_read(cx, buf),
            LinkRead::Tls(s) => Pin::new(&mut *s.borrow_mut()).poll_read(cx, buf),
        }
    }
}

/// The writing half of a [`Link`].
#[derive(Debug)]
pub(crate) enum LinkWrite<'a> {
    Plain(WriteHalf<'a>),
    Tls(&'a RefCell<TlsStream<TcpStream>>),
}

impl AsyncWrite for LinkWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            LinkWrite::Plain(w) => Pin::new(w).poll_write(cx, buf),
            LinkWrite::Tls(s) => Pin::new(&mut *s.borrow_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            LinkWrite::Plain(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            LinkWrite::Tls(s) => Pin::new(&mut *s.borrow_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LinkWrite::Plain(w) => Pin::new(w).poll_flush(cx),
            LinkWrite::Tls(s) => Pin::new(&mut *s.borrow_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LinkWrite::Plain(w) => Pin::new(w).poll_shutdown(cx),
            LinkWrite::Tls(s) => Pin::new(&mut *s.borrow_mut()).poll_shutdown(cx),
        }
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Link::Tls(s) => Pin::new(s.get_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Link::Tls(s) => Pin::new(s.get_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Link::Tls(s) => Pin::new(s.get_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_flush(cx),
            Link::Tls(s) => Pin::new(s.get_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Link::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Link::Tls(s) => Pin::new(s.get_mut()).poll_shutdown(cx),
        }
    }
}
