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
            match try_read_some(stream, buf) {
                // Readiness was cleared: wait for the next event.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return Poll::Ready(read),
            }
        }
    })
    .await
}

/// One read of what `stream` has into `buf`'s free space, without waiting: `WouldBlock` (and
/// the readiness cleared) when it has nothing. Clears the readiness too when the read drained
/// the socket (see [`read_some`]). For a caller that polls the readiness itself.
pub fn try_read_some(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    if buf.capacity() == buf.len() {
        buf.reserve(READ_RESERVE);
    }
    let room = buf.capacity() - buf.len();
    let n = stream.try_read_buf(buf)?;
    if n > 0 && n < room {
        let _ = stream.try_io(Interest::READABLE, || {
            Err::<(), _>(io::ErrorKind::WouldBlock.into())
        });
    }
    Ok(n)
}

/// Room made in a full buffer before a read.
const READ_RESERVE: usize = 4096;

/// Chunks waiting to be written, oldest first.
#[derive(Debug, Default)]
pub struct WriteQueue {
    pieces: SmallDeque<Piece>,
    bytes: usize,
}

/// What the queue holds: a chunk, or the chunks of one reply as they came (a merged multi-get),
/// queued as one piece so that they need no room of their own in the queue.
#[derive(Debug)]
enum Piece {
    One(Bytes),
    /// Never empty, and no chunk in it is empty; `next` is the first not yet written.
    Many {
        chunks: Vec<Bytes>,
        next: usize,
    },
}

impl Piece {
    /// The chunks not yet written.
    fn chunks(&self) -> &[Bytes] {
        match self {
            Piece::One(b) => std::slice::from_ref(b),
            Piece::Many { chunks, next } => chunks.get(*next..).unwrap_or_default(),
        }
    }
}

impl WriteQueue {
    /// Queues a chunk (empty chunks are dropped).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.pieces.push_back(Piece::One(b));
        }
    }

    /// Queues the chunks of one reply, in order, as one piece.
    pub fn push_all(&mut self, mut chunks: Vec<Bytes>) {
        chunks.retain(|c| !c.is_empty());
        if !chunks.is_empty() {
            self.bytes += chunks.iter().map(Bytes::len).sum::<usize>();
            self.pieces.push_back(Piece::Many { chunks, next: 0 });
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
        self.pieces.release();
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
        while !self.pieces.is_empty() {
            std::task::ready!(self.poll_write_some(w, cx))?;
        }
        // A TLS writer holds what it encrypted until flushed; a socket's flush does nothing.
        Pin::new(w).poll_flush(cx)
    }

    /// Writes everything queued, failing with `TimedOut` if the writer accepts nothing for
    /// `stall` at any point (however slowly it takes the rest).
    pub async fn flush_within<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        stall: std::time::Duration,
    ) -> io::Result<()> {
        while !self.pieces.is_empty() {
            let written = std::future::poll_fn(|cx| self.poll_write_some(w, cx));
            match tokio::time::timeout(stall, written).await {
                Ok(written) => written?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        let flushed = std::future::poll_fn(|cx| Pin::new(&mut *w).poll_flush(cx));
        match tokio::time::timeout(stall, flushed).await {
            Ok(flushed) => flushed,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
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
            let chunks = self.pieces.iter().flat_map(Piece::chunks);
            let mut n = 0;
            for (slot, chunk) in slices.iter_mut().zip(chunks) {
                *slot = IoSlice::new(chunk);
                n += 1;
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
            let Some(front) = self.pieces.front_mut() else {
                return;
            };
            let (chunk, last) = match front {
                Piece::One(b) => (b, true),
                Piece::Many { chunks, next } => {
                    let last = *next + 1 >= chunks.len();
                    let Some(chunk) = chunks.get_mut(*next) else {
                        self.pieces.pop_front();
                        continue;
                    };
                    (chunk, last)
                }
            };
            if n < chunk.len() {
                chunk.advance(n);
                return;
            }
            n -= chunk.len();
            if last {
                self.pieces.pop_front();
            } else if let Piece::Many { next, .. } = front {
                *next += 1;
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
        let first = q.pieces.iter().flat_map(Piece::chunks).next();
        assert_eq!(first.map(|c| &c[..]), Some(&b"ef"[..]));
    }

    #[tokio::test]
    async fn a_replys_chunks_are_written_in_order_whatever_the_write_sizes() {
        let chunks = || {
            vec![
                Bytes::from_static(b"VALUE a 0 1\r\nx\r\n"),
                Bytes::new(),
                Bytes::from_static(b"VALUE b 0 2\r\nyy\r\n"),
                Bytes::from_static(b"END\r\n"),
            ]
        };
        let whole: Vec<u8> = chunks().concat();
        for step in 1..=whole.len() {
            let mut q = WriteQueue::default();
            q.push(Bytes::from_static(b"STORED\r\n"));
            q.push_all(chunks());
            q.push(Bytes::from_static(b"END\r\n"));
            let mut expected = b"STORED\r\n".to_vec();
            expected.extend_from_slice(&whole);
            expected.extend_from_slice(b"END\r\n");
            assert_eq!(q.len(), expected.len());
            let mut out = Vec::new();
            while !q.is_empty() {
                let take = step.min(q.len());
                let mut written = Vec::new();
                for c in q.pieces.iter().flat_map(Piece::chunks) {
                    written.extend_from_slice(c);
                }
                out.extend_from_slice(&written[..take]);
                q.advance(take);
            }
            assert_eq!(out, expected, "writes of {step} bytes");
            q.release();
        }
    }
}
