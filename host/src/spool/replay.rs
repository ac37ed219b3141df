//! Replaying a spool: its deletes sent again, in the order they were spooled, once the server
//! answers.
//!
//! Per spool, one task of the spool thread: when the file has deletes to replay and the server
//! is up by the router's shared health state (`Health::is_up`), it reads a batch from the
//! checkpoint, sends it pipelined on a connection of its own, and moves the checkpoint past
//! every delete answered `DELETED` or `NOT_FOUND` (`HD`/`NF` to `md`): either way the key is
//! gone. Batches are paced so that at most `delete_spool_replay_rate` deletes a second reach
//! the server. Any other answer, or none, stops the replay there: it tries again after the
//! pool's probe floor, doubling up to its ceiling, as the health prober does. A `CLIENT_ERROR`
//! (the server will never take that delete) is logged, counted as dropped and passed.
//!
//! `switchyard spool replay` (`cli.rs`) sends batches the same way ([`send_batch`]).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::link::Link;
use bytes::BytesMut;
use switchyard_protocol::limits::DEFAULT_MAX_KEY_LEN;
use switchyard_protocol::{ReplyKind, ReplyParsed, ReplyStatus, parse_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::format::Record;
use super::writer::Entry;
use super::{Settings, SpoolStats};
use crate::backend::BackendError;

/// How often an idle replay task looks whether its spool is still in use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Most deletes in one batch.
const MAX_BATCH: usize = 1000;

/// Deletes per batch at `rate` a second: a tenth of a second's worth, so pacing is smooth.
pub fn batch_size(rate: u32) -> usize {
    ((rate / 10) as usize).clamp(1, MAX_BATCH)
}

/// The replay task of one spool; ends when the spool is closed or no longer in use.
pub async fn replay(entry: Rc<Entry>, stats: Arc<SpoolStats>) {
    let mut conn: Option<Link> = None;
    // The wait before the next try while replays fail.
    let mut failing: Option<Duration> = None;
    let mut idle = true;
    loop {
        let Some(spool) = entry.spool.upgrade() else {
            return;
        };
        let (settings, address, health) = (spool.settings(), spool.address, spool.health.clone());
        let tls = spool.tls();
        drop(spool);
        let pending = match entry.file.borrow().as_ref() {
            None => return,
            Some(file) => file.has_pending(),
        };
        if !pending {
            conn = None;
            idle = true;
            let _ = tokio::time::timeout(IDLE_CHECK, entry.notify.notified()).await;
            continue;
        }
        if idle || !health.is_up() {
            // A delete was just spooled (the server has just failed), or the router holds
            // the server down: give it the probe floor.
            idle = false;
            tokio::time::sleep(settings.retry_floor).await;
            continue;
        }
        let started = Instant::now();
        match replay_batch(&entry, &mut conn, address, tls.as_ref(), &settings, &stats).await {
            Ok(sent) => {
                if failing.take().is_some() {
                    tracing::info!(backend = %address, "replaying the delete spool");
                }
                let pace = Duration::from_secs(sent as u64) / settings.replay_rate.max(1);
                tokio::time::sleep_until(started + pace).await;
            }
            Err(error) => {
                conn = None;
                let wait = failing.map_or(settings.retry_floor, |w| {
                    (w * 2).min(settings.retry_ceiling)
                });
                if failing.is_none() {
                    tracing::warn!(backend = %address, %error, "cannot replay the delete spool; trying again");
                } else {
                    tracing::debug!(backend = %address, %error, next_in = ?wait, "delete spool replay failed");
                }
                failing = Some(wait);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Replays one batch from the checkpoint and moves the checkpoint past what the server took;
/// the number of deletes sent.
async fn replay_batch(
    entry: &Entry,
    conn: &mut Option<Link>,
    address: SocketAddr,
    tls: Option<&crate::tls::Connector>,
    settings: &Settings,
    stats: &SpoolStats,
) -> Result<usize, String> {
    let read = match entry.file.borrow().as_ref() {
        None => return Ok(0),
        Some(file) => file.read(batch_size(settings.replay_rate)),
    };
    let batch = read.map_err(|e| format!("cannot read the spool: {e}"))?;
    if batch.records.is_empty() {
        // Only bytes that are no record were left.
        advance(entry, batch.through, stats)?;
        return Ok(0);
    }
    let stream = match conn {
        Some(stream) => stream,
        None => conn.insert(
            connect(address, tls, settings.connect_timeout)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    let sent = send_batch(stream, &batch.records, settings.timeout).await;
    let through = match sent.done {
        n if n == batch.records.len() => batch.through,
        0 => return Err(sent.error.unwrap_or_default()),
        n => batch.records[n - 1].1,
    };
    advance(entry, through, stats)?;
    stats.replayed.add(sent.applied as u64);
    stats.dropped.add(sent.refused as u64);
    match sent.error {
        None => Ok(sent.done),
        Some(error) => Err(error),
    }
}

/// Moves the checkpoint of `entry`'s file to `through`.
fn advance(entry: &Entry, through: u64, stats: &SpoolStats) -> Result<(), String> {
    let mut file = entry.file.borrow_mut();
    if let Some(file) = file.as_mut() {
        let freed = file
            .advance(through)
            .map_err(|e| format!("cannot move the spool's checkpoint: {e}"))?;
        stats.sub_bytes(freed);
    }
    Ok(())
}

/// A connection for replaying to `address`, over TLS when its pool has it.
pub async fn connect(
    address: SocketAddr,
    tls: Option<&crate::tls::Connector>,
    timeout: Duration,
) -> Result<Link, BackendError> {
    Link::connect(address, tls, timeout).await
}

/// What became of a batch.
#[derive(Debug, Default)]
pub struct Sent {
    /// Deletes answered, from the first: the checkpoint may move past these.
    pub done: usize,
    /// Of those, deletes the server applied (`DELETED`/`NOT_FOUND`, `HD`/`NF`).
    pub applied: usize,
    /// Of those, deletes the server refused (`CLIENT_ERROR`, `ERROR`): never to be applied.
    pub refused: usize,
    /// Why the rest were not answered.
    pub error: Option<String>,
}

/// Sends a delete of each record's key on `stream`, pipelined, and reads the replies; each
/// reply must come within `timeout` of the one before.
pub async fn send_batch(stream: &mut Link, records: &[(Record, u64)], timeout: Duration) -> Sent {
    let mut out = Vec::with_capacity(records.len() * 32);
    let kinds: Vec<ReplyKind> = records
        .iter()
        .map(|(r, _)| request(&r.key, &mut out))
        .collect();
    let mut sent = Sent::default();
    let written = async {
        stream.write_all(&out).await?;
        stream.flush().await
    };
    match tokio::time::timeout(timeout, written).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            sent.error = Some(BackendError::Io(e.kind().to_string()).to_string());
            return sent;
        }
        Err(_) => {
            sent.error = Some(BackendError::Timeout.to_string());
            return sent;
        }
    }
    let mut buf = BytesMut::with_capacity(1024);
    let mut deadline = Instant::now() + timeout;
    while sent.done < records.len() {
        match parse_reply(&buf, kinds[sent.done]) {
            ReplyParsed::Reply { consumed, status } => {
                let reply = buf.split_to(consumed);
                match status {
                    ReplyStatus::Deleted | ReplyStatus::NotFound => sent.applied += 1,
                    ReplyStatus::ClientError | ReplyStatus::Error => {
                        sent.refused += 1;
                        tracing::warn!(
                            key = %String::from_utf8_lossy(&records[sent.done].0.key),
                            reply = %String::from_utf8_lossy(&reply).trim_end(),
                            "the server refused a spooled delete; it is dropped"
                        );
                    }
                    _ => {
                        sent.error = Some(format!(
                            "answered {:?}",
                            String::from_utf8_lossy(&reply).trim_end()
                        ));
                        return sent;
                    }
                }
                sent.done += 1;
                deadline = Instant::now() + timeout;
                continue;
            }
            ReplyParsed::Malformed => {
                sent.error = Some(BackendError::Protocol("malformed reply").to_string());
                return sent;
            }
            ReplyParsed::Incomplete => {}
        }
        let error = match tokio::time::timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Ok(Ok(0)) => BackendError::Closed,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => BackendError::Io(e.kind().to_string()),
            Err(_) => BackendError::Timeout,
        };
        sent.error = Some(error.to_string());
        return sent;
    }
    sent
}

/// Appends the request that deletes `key` to `out`: `delete <key>`, or for a key no text
/// command can carry (a binary key an `md ... b` deleted) `md <base64> b`. Its reply's kind.
fn request(key: &[u8], out: &mut Vec<u8>) -> ReplyKind {
    let text = !key.is_empty()
        && key.len() <= DEFAULT_MAX_KEY_LEN
        && key.iter().all(|&b| b > b' ' && b != 0x7f);
    if text {
        out.extend_from_slice(b"delete ");
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
        ReplyKind::Line
    } else {
        out.extend_from_slice(b"md ");
        switchyard_protocol::encode_key(key, out);
        out.extend_from_slice(b" b\r\n");
        ReplyKind::MetaDelete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_keys_use_delete_and_binary_ones_md() {
        let mut out = Vec::new();
        assert_eq!(request(b"user:1", &mut out), ReplyKind::Line);
        assert_eq!(out, b"delete user:1\r\n");
        out.clear();
        assert_eq!(request(b"a b", &mut out), ReplyKind::MetaDelete);
        assert_eq!(out, b"md YSBi b\r\n");
    }

    #[test]
    fn batches_are_a_tenth_of_a_second() {
        assert_eq!(batch_size(1), 1);
        assert_eq!(batch_size(1000), 100);
        assert_eq!(batch_size(1_000_000), MAX_BATCH);
    }
}
