//! Requests a plan changes (`sdk/ABI.md`, `rewrite` and `background`): the request with another
//! key or exptime, or a store of the value at hand, composed for a backend; and the client's key
//! put back into the reply to a request whose key was rewritten.
//!
//! Only rewritten requests pay for this: a new line is composed (the value is never copied; it
//! travels as a slice of the client's or the backend's buffer). A reply whose key must be put
//! back keeps its bytes where it can: a `VALUE` hit goes out as three slices (its line up to
//! the key, the client's key, the rest), a streamed value's header alone is rewritten; any
//! other reply (a meta reply, whose `k` flag may sit anywhere on its line) is copied once.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use switchyard_protocol::compose::{self, Storage};
use switchyard_protocol::limits::DEFAULT_MAX_KEY_LEN;
use switchyard_protocol::{
    Command, DECODED_KEY_BUF, ReplyKind, ReplyStatus, decode_key, encode_key, values,
};
use switchyard_sdk::Exptime;

use super::{Origin, Req};
use crate::error::PlanProblem;
use crate::plugin::{OwnedBackground, OwnedRewrite, RouteInput};
use crate::reply::{Outcome, Pending};
use crate::wire::Wire;

/// A request a plan made: its fields (what the child's plugins see) and its bytes.
#[derive(Debug)]
pub(super) struct Rewritten {
    op: u32,
    key: Vec<u8>,
    flags: u32,
    exptime: i64,
    value_len: u32,
    wire: Wire,
    kind: ReplyKind,
    /// Set when the router composed a request of another command (a store).
    built: Option<Command>,
}

impl Rewritten {
    /// The request, on its way on from where `base` was.
    pub(super) fn req<'a>(&'a self, base: &Req<'a>) -> Req<'a> {
        Req {
            input: RouteInput {
                op: self.op,
                key: &self.key,
                flags: self.flags,
                exptime: self.exptime,
                value_len: self.value_len,
                listener: base.input.listener,
                identity: base.input.identity,
            },
            wire: &self.wire,
            kind: self.kind,
            origin: self.built.map_or(base.origin, Origin::Built),
            namespace: base.namespace,
            tenant: base.tenant,
        }
    }
}

/// `req` rewritten by a `rewrite` entry; why not if the rewritten key is not one memcached would
/// take, or the request cannot be rewritten.
pub(super) fn rewrite(req: &Req<'_>, rewrite: &OwnedRewrite) -> Result<Rewritten, PlanProblem> {
    let key = new_key(req, rewrite)?;
    let command = req.origin.command();
    let exptime = if carries_exptime(command) {
        rewrite
            .exptime
            .apply(req.input.exptime, now_for(rewrite.exptime))
    } else {
        req.input.exptime
    };
    let wire = compose_request(req, command, &key, exptime)?;
    Ok(Rewritten {
        op: req.input.op,
        key,
        flags: req.input.flags,
        exptime,
        value_len: req.input.value_len,
        wire,
        kind: req.kind,
        built: None,
    })
}

/// The request a `background` entry sends, when it is not the request itself; `None` when it
/// cannot be built (a store with no value at hand, a key memcached would refuse): the send is
/// skipped.
pub(super) fn background(
    req: &Req<'_>,
    send: &OwnedBackground,
    at_hand: Option<&Outcome>,
) -> Option<Rewritten> {
    let Some(store) = send.store else {
        return rewrite(req, &send.rewrite).ok();
    };
    let key = new_key(req, &send.rewrite).ok()?;
    let command = req.origin.command();
    let now = now_for(send.rewrite.exptime);
    let (flags, exptime, data) = match at_hand {
        // A retrieval hit just received: its first value, with its client flags. Meta replies
        // carry no flags unless the client asked for them, so only classic ones are stored.
        Some(hit) if hit.status == ReplyStatus::Hit => {
            let entry = values(&hit.frame).next()?;
            let data = hit.frame.slice(entry.data.start..entry.data.end + 2);
            (entry.flags, send.rewrite.exptime.apply(0, now), data)
        }
        _ if command.is_storage() => (
            req.input.flags,
            send.rewrite.exptime.apply(req.input.exptime, now),
            data_block(req)?,
        ),
        _ => return None,
    };
    let command = Command::from(store);
    let value_len = data.len().checked_sub(2)?;
    let mut line = Vec::with_capacity(48 + key.len());
    compose::storage(
        &mut line,
        &Storage {
            command,
            key: &key,
            flags,
            exptime,
            len: value_len,
            cas: 0,
            noreply: false,
        },
    );
    let mut wire = Wire::one(Bytes::from(line));
    wire.push(data);
    Some(Rewritten {
        op: store.op(),
        key,
        flags,
        exptime,
        value_len: value_len as u32,
        wire,
        kind: command.reply_kind().unwrap_or(ReplyKind::Line),
        built: Some(command),
    })
}

/// Puts the client's key back into the reply to a request whose key was rewritten: the key of
/// each `VALUE` line, a meta reply's `k` flag and the key of an `me` reply.
#[derive(Debug)]
pub(crate) struct KeyRestore {
    /// The key as the client's reply must show it.
    client: Bytes,
    /// The key as the backend saw it.
    sent: Vec<u8>,
}

impl KeyRestore {
    /// For `req`, sent as `rewritten`. Keys are compared and restored as bytes; a key memcached
    /// echoes in base64 (a `k` flag or an `me` reply for an item stored with the `b` flag,
    /// whatever flags the request had) is decoded to compare and put back encoded.
    pub(super) fn new(req: &Req<'_>, rewritten: &Rewritten) -> KeyRestore {
        KeyRestore {
            client: Bytes::copy_from_slice(req.input.key),
            sent: rewritten.key.clone(),
        }
    }

    /// The reply, in, with the client's key: a `VALUE` hit for the key sent as chunks of its
    /// own bytes around the client's key (its value not copied), any other reply copied.
    pub(crate) fn settle(&self, outcome: Outcome) -> Pending {
        match self.spliced(&outcome.frame) {
            Some(chunks) => Pending::Chunks(chunks),
            None => Pending::Ready(self.apply(outcome)),
        }
    }

    /// The header line of a long value that streams (`VALUE <key> ...` or a meta `VA` line)
    /// with the client's key.
    pub(crate) fn settle_head(&self, head: Outcome) -> Outcome {
        let frame = &head.frame;
        let Some(line) = frame.strip_prefix(b"VALUE ") else {
            return self.apply(head);
        };
        let key_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        if line[..key_len] != self.sent[..] {
            return head;
        }
        let start = b"VALUE ".len();
        let mut out = BytesMut::with_capacity(frame.len() + self.client.len());
        out.extend_from_slice(&frame[..start]);
        out.extend_from_slice(&self.client);
        out.extend_from_slice(&frame[start + key_len..]);
        Outcome {
            frame: out.freeze(),
            status: head.status,
        }
    }

    /// `frame`, one `VALUE` for the key sent (and `END`), as its line up to the key, the
    /// client's key and the rest; `None` for any other reply.
    fn spliced(&self, frame: &Bytes) -> Option<Vec<Bytes>> {
        if !frame.starts_with(b"VALUE ") {
            return None;
        }
        let mut entries = values(frame);
        let entry = entries.next()?;
        if entries.next().is_some() || frame.get(entry.key.clone())? != &self.sent[..] {
            return None;
        }
        Some(vec![
            frame.slice(..entry.key.start),
            self.client.clone(),
            frame.slice(entry.key.end..),
        ])
    }

    /// What replaces `key`, a key a reply shows: the client's key if `key` is the one sent,
    /// plain or in base64.
    fn restored(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        if key == &self.sent[..] {
            return Some(std::borrow::Cow::Borrowed(&self.client));
        }
        let mut decoded = [0u8; DECODED_KEY_BUF];
        if decode_key(key, &mut decoded)? != &self.sent[..] {
            return None;
        }
        let mut encoded = Vec::with_capacity(self.client.len().div_ceil(3) * 4);
        encode_key(&self.client, &mut encoded);
        Some(std::borrow::Cow::Owned(encoded))
    }

    /// The reply with the client's key, copied.
    pub(crate) fn apply(&self, outcome: Outcome) -> Outcome {
        let frame = &outcome.frame;
        let mut out = BytesMut::with_capacity(frame.len() + self.client.len());
        let mut copied = 0;
        let mut replace = |range: std::ops::Range<usize>, with: &[u8], out: &mut BytesMut| {
            out.extend_from_slice(&frame[copied..range.start]);
            out.extend_from_slice(with);
            copied = range.end;
        };
        if frame.starts_with(b"VALUE ") {
            for entry in values(frame) {
                if frame[entry.key.clone()] == self.sent[..] {
                    replace(entry.key, &self.client, &mut out);
                }
            }
        } else {
            let line_end = frame
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(frame.len());
            let is_debug = frame.starts_with(b"ME ");
            let mut start = 0;
            for token in frame[..line_end].split(|&b| b == b' ') {
                let range = start..start + token.len();
                start = range.end + 1;
                if range.start == 0 {
                    continue;
                }
                // The key: a `k` flag's after its `k`; an `me` reply's first token.
                let key = match token.first() {
                    Some(b'k') => range.start + 1..range.end,
                    _ if is_debug && range.start == 3 => range,
                    _ => continue,
                };
                if let Some(with) = self.restored(&frame[key.clone()]) {
                    replace(key, &with, &mut out);
                }
            }
        }
        if copied == 0 {
            return outcome;
        }
        out.extend_from_slice(&frame[copied..]);
        Outcome {
            frame: out.freeze(),
            status: outcome.status,
        }
    }
}

/// The rewritten key; why not when it is not a key memcached takes. A meta request with the `b`
/// flag sends it in base64, and memcached's 250 bytes hold the encoded key: past them it
/// refuses the line without reading an `ms` value, and would take the value for a command.
fn new_key(req: &Req<'_>, rewrite: &OwnedRewrite) -> Result<Vec<u8>, PlanProblem> {
    let key = rewritten_key(req.input.key, rewrite)?;
    if rewrite.changes_key() && !key.starts_with(req.namespace) {
        return Err(PlanProblem::LeavesNamespace);
    }
    if let Origin::Client { request, .. } = req.origin
        && request.base64
        && rewrite.changes_key()
    {
        let encoded = key.len().div_ceil(3) * 4;
        if encoded > DEFAULT_MAX_KEY_LEN {
            return Err(PlanProblem::KeyLength(encoded));
        }
    }
    Ok(key)
}

/// `key` as `rewrite` changes it; why not when the result is not a key memcached takes. Also
/// what a dry run (`introspect.rs`) shows the children being sent.
pub(crate) fn rewritten_key(key: &[u8], rewrite: &OwnedRewrite) -> Result<Vec<u8>, PlanProblem> {
    if !rewrite.changes_key() {
        return Ok(key.to_vec());
    }
    let key = rewrite.key(key).ok_or(PlanProblem::StripsPastKey)?;
    if key.is_empty() || key.len() > DEFAULT_MAX_KEY_LEN {
        return Err(PlanProblem::KeyLength(key.len()));
    }
    Ok(key)
}

/// Unix time in seconds, when `exptime` needs it (capping an absolute time); 0 otherwise, so
/// the clock is read only for a cap.
pub(crate) fn now_for(exptime: Exptime) -> i64 {
    if !matches!(exptime, Exptime::Cap(_)) {
        return 0;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Commands whose exptime a rewrite may change (meta commands through their `T` flag).
fn carries_exptime(command: Command) -> bool {
    command.is_storage()
        || matches!(
            command,
            Command::Touch
                | Command::Gat
                | Command::Gats
                | Command::MetaGet
                | Command::MetaSet
                | Command::MetaDelete
                | Command::MetaArithmetic
        )
}

/// The data block (value and `\r\n`) of a storage request.
fn data_block(req: &Req<'_>) -> Option<Bytes> {
    match req.origin {
        Origin::Client { request, frame } => Some(frame.slice(request.data_block())),
        Origin::Built(_) => req.wire.parts().last().cloned(),
    }
}

/// `req` as `command` with `key` and `exptime`, the rest as the client sent it.
fn compose_request(
    req: &Req<'_>,
    command: Command,
    key: &[u8],
    exptime: i64,
) -> Result<Wire, PlanProblem> {
    let (cas, delta) = match req.origin {
        Origin::Client { request, .. } => (request.cas, request.delta),
        Origin::Built(_) => (0, 1),
    };
    let mut line = Vec::with_capacity(64 + key.len());
    match command {
        Command::Get | Command::Gets | Command::Gat | Command::Gats => {
            compose::retrieval(&mut line, command, exptime, [key]);
        }
        c if c.is_storage() => compose::storage(
            &mut line,
            &Storage {
                command,
                key,
                flags: req.input.flags,
                exptime,
                len: req.input.value_len as usize,
                cas,
                noreply: false,
            },
        ),
        Command::Delete => compose::delete(&mut line, key, false),
        Command::Incr | Command::Decr => compose::arithmetic(&mut line, command, key, delta, false),
        Command::Touch => compose::touch(&mut line, key, exptime, false),
        Command::MetaGet
        | Command::MetaSet
        | Command::MetaDelete
        | Command::MetaArithmetic
        | Command::MetaDebug => compose_meta(req, command, key, exptime, &mut line)?,
        other => return Err(PlanProblem::NotRewritable(other.name())),
    }
    let mut wire = Wire::one(Bytes::from(line));
    if command.has_data_block()
        && let Some(data) = data_block(req)
    {
        wire.push(data);
    }
    Ok(wire)
}

/// A meta command's line with `key` (base64-encoded again if the client's was) and its `T` flag
/// set to `exptime` when that changed (added to an `ms` without one; a `T` added to `mg` would
/// turn it into a touch, so other commands only have an existing `T` changed).
fn compose_meta(
    req: &Req<'_>,
    command: Command,
    key: &[u8],
    exptime: i64,
    line: &mut Vec<u8>,
) -> Result<(), PlanProblem> {
    let Origin::Client { request, frame } = req.origin else {
        return Err(PlanProblem::BuiltMeta);
    };
    let mut encoded = Vec::new();
    let key = if request.base64 {
        encode_key(key, &mut encoded);
        &encoded[..]
    } else {
        key
    };
    let new_ttl = (exptime != req.input.exptime).then(|| format!("T{exptime}").into_bytes());
    let mut has_ttl = false;
    let flags: Vec<&[u8]> = request
        .forwarded_flags(frame)
        .map(|range| {
            let flag = &frame[range];
            match &new_ttl {
                Some(ttl) if flag.first() == Some(&b'T') => {
                    has_ttl = true;
                    &ttl[..]
                }
                _ => flag,
            }
        })
        .collect();
    let extra = match &new_ttl {
        Some(ttl) if !has_ttl && command == Command::MetaSet => Some(&ttl[..]),
        _ => None,
    };
    compose::meta(
        line,
        command,
        key,
        req.input.value_len as usize,
        flags.into_iter().chain(extra),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(client: &str, sent: &str, frame: &'static str) -> String {
        let r = KeyRestore {
            client: Bytes::copy_from_slice(client.as_bytes()),
            sent: sent.as_bytes().to_vec(),
        };
        let out = r.apply(Outcome {
            frame: Bytes::from_static(frame.as_bytes()),
            status: ReplyStatus::Hit,
        });
        String::from_utf8(out.frame.to_vec()).expect("ascii")
    }

    #[test]
    fn restores_the_clients_key() {
        assert_eq!(
            restore("a", "p:a", "VALUE p:a 5 2\r\nhi\r\nEND\r\n"),
            "VALUE a 5 2\r\nhi\r\nEND\r\n"
        );
        assert_eq!(
            restore("a", "p:a", "VALUE p:a 5 2 77\r\nhi\r\nEND\r\n"),
            "VALUE a 5 2 77\r\nhi\r\nEND\r\n"
        );
        assert_eq!(restore("a", "p:a", "END\r\n"), "END\r\n");
        assert_eq!(
            restore("a", "p:a", "VA 2 kp:a f3\r\nhi\r\n"),
            "VA 2 ka f3\r\nhi\r\n"
        );
        assert_eq!(restore("a", "p:a", "HD kp:a\r\n"), "HD ka\r\n");
        assert_eq!(
            restore("a", "p:a", "ME p:a exp=-1 la=1\r\n"),
            "ME a exp=-1 la=1\r\n"
        );
        assert_eq!(restore("a", "p:a", "STORED\r\n"), "STORED\r\n");
        // Another key, or a flag that only looks like one, is left alone.
        assert_eq!(restore("a", "p:a", "HD kp:b Op:a\r\n"), "HD kp:b Op:a\r\n");
        assert_eq!(restore("a", "p:a", "ME p:b p:a\r\n"), "ME p:b p:a\r\n");
    }

    /// A `VALUE` hit settles as three slices: its own bytes around the client's key, the
    /// value never copied; every other reply as one copied frame.
    #[test]
    fn a_value_hit_is_spliced_and_the_rest_copied() {
        let r = KeyRestore {
            client: Bytes::from_static(b"a"),
            sent: b"p:a".to_vec(),
        };
        let frame = Bytes::from_static(b"VALUE p:a 5 5\r\nhello\r\nEND\r\n");
        let hit = Outcome {
            frame: frame.clone(),
            status: ReplyStatus::Hit,
        };
        let Pending::Chunks(chunks) = r.settle(hit) else {
            panic!("a hit is not spliced");
        };
        assert_eq!(chunks.concat(), b"VALUE a 5 5\r\nhello\r\nEND\r\n");
        // The value is the frame's own bytes.
        let rest = &chunks[2];
        assert_eq!(rest.as_ptr(), frame[b"VALUE p:a".len()..].as_ptr());
        // A streamed value's header.
        let head = |frame: &'static str| {
            let out = r.settle_head(Outcome {
                frame: Bytes::from_static(frame.as_bytes()),
                status: ReplyStatus::Hit,
            });
            String::from_utf8(out.frame.to_vec()).expect("ascii")
        };
        assert_eq!(head("VALUE p:a 0 300000\r\n"), "VALUE a 0 300000\r\n");
        assert_eq!(head("VALUE p:a 0 300000 9\r\n"), "VALUE a 0 300000 9\r\n");
        assert_eq!(head("VA 300000 kp:a f0\r\n"), "VA 300000 ka f0\r\n");
        assert_eq!(head("VALUE p:b 0 1\r\n"), "VALUE p:b 0 1\r\n");
        for (frame, status) in [
            ("END\r\n", ReplyStatus::Miss),
            ("VA 2 kp:a\r\nhi\r\n", ReplyStatus::Hit),
            ("VALUE p:b 0 1\r\nx\r\nEND\r\n", ReplyStatus::Hit),
        ] {
            let outcome = Outcome {
                frame: Bytes::from_static(frame.as_bytes()),
                status,
            };
            assert!(matches!(r.settle(outcome), Pending::Ready(_)), "{frame}");
        }
    }

    /// memcached 1.6 echoes the key of an item stored with the `b` flag in base64.
    #[test]
    fn restores_the_clients_key_in_base64() {
        // "alpha:n" is YWxwaGE6bg==, "n" is bg==.
        assert_eq!(
            restore("n", "alpha:n", "HD kYWxwaGE6bg== b\r\n"),
            "HD kbg== b\r\n"
        );
        assert_eq!(
            restore("n", "alpha:n", "VA 1 kYWxwaGE6bg== b f0\r\nv\r\n"),
            "VA 1 kbg== b f0\r\nv\r\n"
        );
        assert_eq!(
            restore("n", "alpha:n", "EN kYWxwaGE6bg== b\r\n"),
            "EN kbg== b\r\n"
        );
        assert_eq!(
            restore("n", "alpha:n", "ME YWxwaGE6bg== exp=-1 la=1\r\n"),
            "ME bg== exp=-1 la=1\r\n"
        );
        // Base64 of another key stays.
        assert_eq!(
            restore("n", "alpha:n", "HD kYmV0YTpu b\r\n"),
            "HD kYmV0YTpu b\r\n"
        );
    }
}
