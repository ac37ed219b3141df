//! Byte chunks on their way to a socket, written with vectored I/O so that values travel as the
//! `Bytes` they arrived in, never copied into a staging buffer.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;

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

/// Chunks waiting to be written, oldest first.
#[derive(Debug, Default)]
pub struct WriteQueue {
    chunks: VecDeque<Bytes>,
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

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Writes everything queued.
    pub async fn flush_to<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        while !self.chunks.is_empty() {
            self.write_some(w).await?;
        }
        Ok(())
    }

    /// Writes everything queued, failing with `TimedOut` if the writer accepts nothing for
    /// `stall` at any point (however slowly it takes the rest).
    pub async fn flush_within<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
        stall: std::time::Duration,
    ) -> io::Result<()> {
        while !self.chunks.is_empty() {
            match tokio::time::timeout(stall, self.write_some(w)).await {
                Ok(written) => written?,
                Err(_) => return Err(io::ErrorKind::TimedOut.into()),
            }
        }
        Ok(())
    }

    /// One `writev` of what is queued. The slices are built on the stack at each poll, so
    /// they never become part of a waiting future: a connection's task would otherwise carry a
    /// kilobyte of them even while idle.
    async fn write_some<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> io::Result<()> {
        let chunks = &self.chunks;
        let written = std::future::poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let n = chunks.len().min(MAX_IOVECS);
            for (slot, chunk) in slices.iter_mut().zip(chunks.iter()) {
                *slot = IoSlice::new(chunk);
            }
            Pin::new(&mut *w).poll_write_vectored(cx, &slices[..n])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        self.advance(written);
        Ok(())
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
        assert_eq!(&q.chunks[0][..], b"ef");
    }
}
