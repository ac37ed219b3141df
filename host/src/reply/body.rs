//! The rest of a streamed reply ([`Body`]): passed on to the client as it arrives, or gathered
//! whole for anyone else.

use bytes::BytesMut;
use tokio::io::AsyncWrite;

use super::Outcome;
use crate::backend::{BackendError, Body};
use crate::error::RequestError;
use crate::wire::WriteQueue;

/// Bytes gathered before a write is issued while a value streams through.
const FLUSH_AT: usize = 256 * 1024;

/// Passes `body` on after what `out` holds (which ends with the reply's header), writing to
/// `wr` whenever no chunk is waiting or enough has gathered, so that the router holds little of
/// a value a client reads as fast as the server sends it. An error means the value broke off
/// part way, or the client accepted no bytes for `body.stall`: the client must be disconnected
/// (which also releases every stream queued behind this one).
pub(crate) async fn pass<W: AsyncWrite + Unpin>(
    mut body: Body,
    out: &mut WriteQueue,
    wr: &mut W,
) -> std::io::Result<()> {
    let mut left = body.len;
    while left > 0 {
        let chunk = match body.chunks.recv().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(std::io::Error::other(e)),
            None => return Err(std::io::Error::other("value stream ended early")),
        };
        left = left.saturating_sub(chunk.len());
        out.push(chunk);
        if body.chunks.is_empty() || out.len() >= FLUSH_AT {
            out.flush_within(wr, body.stall).await?;
        }
    }
    Ok(())
}

/// The whole reply: `head` and every chunk of `body`; a server error, counted against the
/// server's worker, if it broke off.
pub(super) async fn gather(head: Outcome, mut body: Body) -> Outcome {
    let mut frame = BytesMut::with_capacity(head.frame.len() + body.len);
    frame.extend_from_slice(&head.frame);
    let mut left = body.len;
    while left > 0 {
        match body.chunks.recv().await {
            Some(Ok(chunk)) => {
                left = left.saturating_sub(chunk.len());
                frame.extend_from_slice(&chunk);
            }
            Some(Err(e)) => return broken(&body, Some(e)),
            None => return broken(&body, None),
        }
    }
    Outcome {
        frame: frame.freeze(),
        status: head.status,
    }
}

/// The reply to a value that broke off part way, for `cause`.
fn broken(body: &Body, cause: Option<BackendError>) -> Outcome {
    let error = RequestError::StreamBroken { cause };
    match &body.holder {
        Some(dest) => error.answer(dest.stats()),
        // Never so: the reply that brought the body set its holder (`backend_settled`).
        None => error.reply(),
    }
}
