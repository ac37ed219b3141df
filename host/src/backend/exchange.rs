//! One request and its reply on a connection of its own: a health probe's `version`, the reply
//! to a long value streamed to its server. The pipelined connections (`connection.rs`) read
//! many replies in order; everything else that reads a memcached reply reads it here, with the
//! same parser and the same errors.

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{ReplyKind, ReplyParsed, ReplyStatus, parse_reply};
use tokio::io::AsyncWriteExt;

use super::BackendError;
use super::link::Link;

/// Initial room for a reply: a status line, a `VERSION`.
const REPLY_BUF: usize = 256;

/// Reads the one reply to what was just sent on `conn`, by `deadline`. Anything after the
/// reply is an answer to nothing: a protocol error.
pub(crate) async fn read_reply(
    conn: &mut Link,
    kind: ReplyKind,
    deadline: tokio::time::Instant,
) -> Result<(Bytes, ReplyStatus), BackendError> {
    let mut reply = BytesMut::with_capacity(REPLY_BUF);
    loop {
        match parse_reply(&reply, kind) {
            ReplyParsed::Reply { consumed, .. } if consumed != reply.len() => {
                return Err(BackendError::Protocol("reply to no request"));
            }
            ReplyParsed::Reply { consumed, status } => {
                return Ok((reply.split_to(consumed).freeze(), status));
            }
            ReplyParsed::Malformed => return Err(BackendError::Protocol("malformed reply")),
            ReplyParsed::Incomplete => {}
        }
        match tokio::time::timeout_at(deadline, conn.read_some(&mut reply)).await {
            Err(_) => return Err(BackendError::Timeout),
            Ok(Ok(0)) => return Err(BackendError::Closed),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(super::io_error(&e)),
        }
    }
}

/// Sends `request` on a fresh connection to `address` (over TLS when `tls` says so) and reads
/// its one reply, all by `deadline`.
pub(crate) async fn exchange(
    address: std::net::SocketAddr,
    tls: Option<&crate::tls::Connector>,
    request: &[u8],
    kind: ReplyKind,
    deadline: tokio::time::Instant,
) -> Result<(Bytes, ReplyStatus), BackendError> {
    let budget = deadline.saturating_duration_since(tokio::time::Instant::now());
    let mut conn = Link::connect(address, tls, budget).await?;
    let written = async {
        conn.write_all(request).await?;
        conn.flush().await
    };
    match tokio::time::timeout_at(deadline, written).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(super::io_error(&e)),
        Err(_) => return Err(BackendError::Timeout),
    }
    read_reply(&mut conn, kind, deadline).await
}
