//! The `VALUE <key> <flags> <bytes> [<cas unique>]\r\n<data>\r\n` entries of a retrieval reply.
//! The data may hold anything, `\r\nEND\r\n` included: only the announced length delimits it.

use std::ops::Range;

use super::{Malformed, Scan, line_at};
use crate::limits::DEFAULT_MAX_KEY_LEN;

/// One `VALUE` entry. Ranges index the reply given to [`values`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueEntry {
    /// The key.
    pub key: Range<usize>,
    /// The client flags.
    pub flags: u32,
    /// The CAS unique, in a `gets`/`gats` reply.
    pub cas: Option<u64>,
    /// The data, without its `\r\n`.
    pub data: Range<usize>,
    /// The whole entry, `VALUE` line to the data's `\r\n`: what a merged reply copies.
    pub whole: Range<usize>,
}

/// The entries of a retrieval reply, in order. Stops at `END`, at an error line, or at
/// anything that is not a complete entry: meant for replies [`super::parse_reply`] accepted.
pub fn values(reply: &[u8]) -> impl Iterator<Item = ValueEntry> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (line, next) = line_at(reply, pos).ok()??;
        let entry = entry(reply, pos, line, next).ok()??;
        pos = entry.whole.end;
        Some(entry)
    })
}

/// The entry whose `VALUE` line, `line`, starts at `start` and ends before `next`.
pub(super) fn entry(buf: &[u8], start: usize, line: &[u8], next: usize) -> Scan<ValueEntry> {
    let head = header(line)?;
    let data = next..next + head.len;
    let Some(block) = buf.get(data.start..data.end + 2) else {
        return Ok(None);
    };
    if !block.ends_with(b"\r\n") {
        return Err(Malformed);
    }
    let key_start = start + b"VALUE ".len();
    Ok(Some(ValueEntry {
        key: key_start..key_start + head.key_len,
        flags: head.flags,
        cas: head.cas,
        whole: start..data.end + 2,
        data,
    }))
}

/// The fields of a `VALUE <key> <flags> <bytes> [<cas>]` line.
pub(super) struct Header {
    pub(super) key_len: usize,
    pub(super) flags: u32,
    pub(super) len: usize,
    pub(super) cas: Option<u64>,
}

/// Reads a `VALUE` line (without its `\r\n`).
pub(super) fn header(line: &[u8]) -> Result<Header, Malformed> {
    let mut fields = line.split(|&b| b == b' ');
    if fields.next() != Some(b"VALUE") {
        return Err(Malformed);
    }
    let key = fields.next().ok_or(Malformed)?;
    let flags = fields.next().and_then(decimal).ok_or(Malformed)?;
    let len = fields.next().and_then(decimal).ok_or(Malformed)?;
    let cas = fields
        .next()
        .map(|cas| decimal(cas).ok_or(Malformed))
        .transpose()?;
    if fields.next().is_some() || key.is_empty() || key.len() > DEFAULT_MAX_KEY_LEN {
        return Err(Malformed);
    }
    let flags = u32::try_from(flags).map_err(|_| Malformed)?;
    // memcached's item lengths are C ints.
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= i32::MAX as usize)
        .ok_or(Malformed)?;
    Ok(Header {
        key_len: key.len(),
        flags,
        len,
        cas,
    })
}

/// Digits only, as memcached prints numbers; `None` past `u64::MAX`.
pub(super) fn decimal(field: &[u8]) -> Option<u64> {
    if field.is_empty() {
        return None;
    }
    field.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then_some(())?;
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_in_order_with_their_parts() {
        let reply = b"VALUE a 5 3\r\nabc\r\nVALUE bb 0 7 42\r\n\r\nEND\r\n\r\nEND\r\n";
        let entries: Vec<_> = values(reply).collect();
        assert_eq!(entries.len(), 2);
        let a = &entries[0];
        assert_eq!(
            (&reply[a.key.clone()], a.flags, a.cas),
            (&b"a"[..], 5, None)
        );
        assert_eq!(&reply[a.data.clone()], b"abc");
        assert_eq!(&reply[a.whole.clone()], b"VALUE a 5 3\r\nabc\r\n");
        let b = &entries[1];
        assert_eq!(
            (&reply[b.key.clone()], b.flags, b.cas),
            (&b"bb"[..], 0, Some(42))
        );
        assert_eq!(&reply[b.data.clone()], b"\r\nEND\r\n");
        assert_eq!(b.whole.end, reply.len() - 5);
    }

    #[test]
    fn a_miss_or_an_error_has_no_entries() {
        assert_eq!(values(b"END\r\n").count(), 0);
        assert_eq!(values(b"SERVER_ERROR out of memory\r\n").count(), 0);
    }

    #[test]
    fn iteration_stops_at_anything_unexpected() {
        assert_eq!(values(b"VALUE a 0 1\r\nx\r\nVALUE b 0 5\r\nabc").count(), 1);
        assert_eq!(
            values(b"VALUE a 0 1\r\nx\r\nVALUE b x 1\r\ny\r\nEND\r\n").count(),
            1
        );
        assert_eq!(values(b"VALUE a 0 1\r\nxy\r\nEND\r\n").count(), 0);
    }

    #[test]
    fn numbers_are_plain_digits() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 ",
            b"18446744073709551616",
            b"\t1",
        ] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
