//! Byte chunks on their way to a socket, written with vectored I/O so that values travel as the
//! `Bytes` they arrived in, never copied into a staging buffer.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncWrite, Interest};
use tokio::net::TcpStream;

use crate::deque::SmallDeque;

/// Slices handed to one `writev`; Linux accepts 1024, and 64 already amortises the syscall.
const MAX_IOVECS: usize = 64;

/// The bytes of one request to a backend: at most four chunks (the line in up to two pieces
/// around a dropped `noreply` or `q`, its terminator, the data block) so that building one never
/// allocates.
#[derive(Debug, Clone, Default)]
pub struct Wire {
    parts: [Bytes; 4],
    len: u8,
}

impl Wire {
    /// A request made of one chunk.
    pub fn one(b: Bytes) -> Wire {
        let mut w = Wire::default();
        w.push(b);
        w
    }

    /// Appends a chunk. More than four is a bug in the caller and panics in debug builds;
    /// release builds keep the first four.
    pub fn push(&mut self, b: Bytes) {
        debug_assert!(
            (self.len as usize) < self.parts.len(),
            "Wire holds four chunks"
        );
        if let Some(slot) = self.parts.get_mut(self.len as usize) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The chunks, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.parts[..self.len as usize]
    }

    /// How many bytes the chunks add up to.
    pub fn byte_len(&self) -> usize {
        self.parts().iter().map(Bytes::len).sum()
    }
}

/// Reads what `stream` has into `buf`'s free space (at least some, waiting for it).
///
/// A read that leaves room in the buffer has drained the socket: this says so to tokio instead
/// of letting the next read find out with an `EAGAIN` (one wasted `recvfrom` per request on
/// each side of the router). Safe because the socket is registered edge-triggered: data that
/// arrives after this read raises a new readiness event.
pub async fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    std::future::poll_fn(|cx| {
        loop {
            std::task::ready!(stream.poll_read_ready(cx))?;
            if buf.capacity() == buf.len() {
                buf.reserve(READ_RESERVE);
            }
            let room = buf.capacity() - buf.len();
            match stream.try_read_buf(buf) {
                Ok(n) => {
                    if n > 0 && n < room {
                        let _ = stream.try_io(Interest::READABLE, || {
                            Err::<(), _>(io::ErrorKind::WouldBlock.into())
                        });
                    }
                    return Poll::Ready(Ok(n));
                }
                // Readiness was cleared: wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    })
    .await
}

/// Room made in a full buffer before a read.
const READ_RESERVE: usize = 4096;

/// Chunks waiting to be written, oldest first.
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: SmallDeque<Bytes>,
    bytes: usize,
}

impl WriteQueue {
    /// Queues a chunk (empty chunks are dropped).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.chunks.push_back(b);
        }
    }

    /// Queues every chunk of a request.
    pub fn push_wire(&mut self, w: Wire) {
        for p in w.parts {
            self.push(p);
        }
    }

    /// Gives back the buffer a burst of chunks needed, once everything is written: what a
    /// client connection does when it has caught up, so an idle one holds none.
    pub fn release(&mut self) {
        self.chunks.release();
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Writes everything queued. The future holds only its two references: it is part of
    /// every connection's task.
    pub async fn flush_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_flush(w, cx)).await
    }

    /// Writes until everything queued is written or the writer would block.
    pub fn poll_flush<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.chunks.is_empty() {
            std::task::ready!(self.poll_write_some(w, cx))?;
        }
        Poll::Ready(Ok(()))
    }

    /// Writes everything queued, failing with `TimedOut` if the writer accepts nothing for
    /// `stall` at any point (however slowly it takes the rest).
    pub async fn flush_within<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        stall: std::time::Duration,
    ) -> io::Result<()> {
        while !self.chunks.is_empty() {
            let written = std::future::poll_fn(|cx| self.poll_write_some(w, cx));
            match tokio::time::timeout(stall, written).await {
                Ok(written) => written?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        Ok(())
    }

    /// One `writev` of what is queued. The slices are built on the stack at each poll, so
    /// they never become part of a waiting future: a connection's task would otherwise carry a
    /// kilobyte of them even while idle.
    fn poll_write_some<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = self.chunks.len().min(MAX_IOVECS);
            for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                *slot = IoSlice::new(chunk);
            }
            std::task::ready!(Pin::new(&mut *w).poll_write_vectored(cx, &slices[..n]))?
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.advance(written);
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if n >= front.len() {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn flush_writes_every_chunk_in_order() {
        let mut q = WriteQueue::default();
        q.push(Bytes::from_static(b"get a"));
        q.push(Bytes::new());
        q.push(Bytes::from_static(b"\r\n"));
        assert_eq!(q.len(), 7);
        let mut out = Vec::new();
        q.flush_to(&mut out).await.expect("vec write");
        assert_eq!(out, b"get a\r\n");
        assert!(q.is_empty());
    }

    #[test]
    fn advance_splits_a_partly_written_chunk() {
        let mut q = WriteQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"def"));
        q.advance(4);
        assert_eq!(q.len(), 2);
        assert_eq!(&q.chunks.iter().next().expect("a chunk")[..], b"ef");
    }
}
