//! What a client connection reads its requests from: a plaintext socket, read by readiness
//! into a buffer the worker lends only while there is input, or a TLS session, which decrypts
//! into it. Replies are written through `tokio`'s `AsyncWrite` either way ([`TlsWrite`] for a
//! session).
//!
//! A TLS session is one object with both directions in it; the connection's reader and writer
//! are two futures of one task, polled in turn, never at once. So the two halves share the
//! session through a `RefCell` borrowed only inside each poll: no lock, no `Arc`.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio::net::tcp::ReadHalf;
use tokio_rustls::server::TlsStream;

/// A client's session, when its listener speaks TLS.
pub(crate) type Session = TlsStream<TcpStream>;

/// A client connection's stream, as the two halves its reader and writer use.
pub(crate) trait Halves {
    /// The reading half.
    type Read<'a>: Input
    where
        Self: 'a;
    /// The writing half.
    type Write<'a>: AsyncWrite + Unpin
    where
        Self: 'a;

    /// Both halves, borrowed.
    fn halves(&mut self) -> (Self::Read<'_>, Self::Write<'_>);
}

impl Halves for TcpStream {
    type Read<'a> = ReadHalf<'a>;
    type Write<'a> = tokio::net::tcp::WriteHalf<'a>;

    /// Borrowed halves: `into_split` would allocate an `Arc` per connection.
    fn halves(&mut self) -> (ReadHalf<'_>, tokio::net::tcp::WriteHalf<'_>) {
        self.split()
    }
}

impl Halves for RefCell<Session> {
    type Read<'a> = TlsRead<'a>;
    type Write<'a> = TlsWrite<'a>;

    fn halves(&mut self) -> (TlsRead<'_>, TlsWrite<'_>) {
        (TlsRead(self), TlsWrite(self))
    }
}

/// The reading side of a client connection.
pub(crate) trait Input {
    /// Ready when a read may find input (a plaintext socket's readiness; a TLS session is
    /// always asked, since it may hold decrypted bytes the socket no longer shows).
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;

    /// One read into `buf`'s free space (0: end of input); `Pending`, with the task to be
    /// woken, when there is nothing.
    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;

    /// Whether the client has sent bytes not read yet, asked of the socket itself.
    fn has_input(&self) -> bool;

    /// The client's address, for a log line.
    fn peer(&self) -> Option<std::net::SocketAddr>;

    /// Reads into `buf`'s free space, waiting for input.
    fn read_some(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> {
        std::future::poll_fn(move |cx| self.poll_read_some(cx, buf))
    }
}

impl Input for ReadHalf<'_> {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.as_ref().poll_read_ready(cx)
    }

    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        loop {
            std::task::ready!(self.as_ref().poll_read_ready(cx))?;
            match crate::wire::try_read_some(self.as_ref(), buf) {
                // The readiness was stale (and is cleared now): wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return Poll::Ready(read),
            }
        }
    }

    fn has_input(&self) -> bool {
        peek(self.as_ref())
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.as_ref().peer_addr().ok()
    }
}

/// The reading half of a client's TLS session.
#[derive(Debug)]
pub(crate) struct TlsRead<'a>(pub(crate) &'a RefCell<Session>);

impl Input for TlsRead<'_> {
    fn poll_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        if buf.capacity() == buf.len() {
            buf.reserve(4096);
        }
        let mut session = self.0.borrow_mut();
        let read = session.read_buf(buf);
        std::pin::pin!(read).poll(cx)
    }

    fn has_input(&self) -> bool {
        peek(self.0.borrow().get_ref().0)
    }

    fn peer(&self) -> Option<std::net::SocketAddr> {
        self.0.borrow().get_ref().0.peer_addr().ok()
    }
}

/// The writing half of a client's TLS session.
#[derive(Debug)]
pub(crate) struct TlsWrite<'a>(pub(crate) &'a RefCell<Session>);

impl AsyncWrite for TlsWrite<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_shutdown(cx)
    }
}

/// Whether `stream` has bytes not read yet, asked of the socket itself (tokio's readiness may
/// not have caught up with them).
pub(crate) fn peek(stream: &TcpStream) -> bool {
    use rustix::net::{RecvFlags, recv};
    let mut byte = [0u8; 1];
    matches!(
        recv(stream, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT),
        Ok((_, n)) if n > 0
    )
}
