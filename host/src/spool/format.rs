//! The spool file format: one file per server address, appended to, one record per delete.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "SYd1"
//! 4       2     body length (u16, little endian)
//! 6       8       spooled at, Unix milliseconds (u64 LE)
//! 14      1       server address length
//! 15      n       server address, "host:port" (ASCII)
//! 15+n    2       key length (u16 LE)
//! 17+n    k       key (the bytes memcached stores the item under: a meta `b` key decoded)
//! 6+len   4     CRC-32 (IEEE) of the length and the body
//! ```
//!
//! A record is written whole with one `pwrite` and made durable with `fdatasync` before the
//! client is answered, but a crash can still leave a record cut short at the end of the file
//! (and a disk can corrupt anything). [`Reader`] checks each record's magic, length and CRC: a
//! record that fails is skipped up to the next one that passes, and what follows the last good
//! record ([`Item::TornTail`]) is ignored.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Starts every record.
pub const MAGIC: [u8; 4] = *b"SYd1";
/// Magic and body length.
const HEAD: usize = 6;
/// The CRC after the body.
const TAIL: usize = 4;
/// Longest key a record holds. memcached's keys are at most 250 bytes; a plugin's rewrite may
/// send a longer one, which memcached refuses, so a delete of it is never worth more room.
pub const MAX_KEY: usize = 1024;
/// Body without the server address and the key.
const FIXED_BODY: usize = 8 + 1 + 2;
/// Longest body: a server address is at most 255 bytes.
const MAX_BODY: usize = FIXED_BODY + 255 + MAX_KEY;
/// Longest record.
pub const MAX_RECORD: usize = HEAD + MAX_BODY + TAIL;

/// One spooled delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// When it was spooled, Unix milliseconds.
    pub time_ms: u64,
    /// The server it was meant for, as `host:port`.
    pub server: String,
    /// The key, as memcached stores it.
    pub key: Vec<u8>,
}

/// Appends the record of a delete of `key` on `server` at `time_ms` to `out`; `None` when the
/// key is longer than [`MAX_KEY`] (nothing is written then).
pub fn encode(time_ms: u64, server: &str, key: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if key.len() > MAX_KEY || server.len() > 255 {
        return None;
    }
    let body = FIXED_BODY + server.len() + key.len();
    let start = out.len();
    out.reserve(HEAD + body + TAIL);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(body as u16).to_le_bytes());
    out.extend_from_slice(&time_ms.to_le_bytes());
    out.push(server.len() as u8);
    out.extend_from_slice(server.as_bytes());
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    let crc = switchyard_sdk::hash::crc32(&out[start + MAGIC.len()..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Some(())
}

/// What the start of a buffer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A whole, valid record of this many bytes.
    Record(Record, usize),
    /// The start of what may be a record: more bytes are needed to tell.
    Incomplete,
    /// Not a valid record.
    Corrupt,
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded {
    let magic = &buf[..buf.len().min(MAGIC.len())];
    if magic != &MAGIC[..magic.len()] {
        return Decoded::Corrupt;
    }
    let Some(len) = buf.get(4..HEAD) else {
        return Decoded::Incomplete;
    };
    let body = usize::from(u16::from_le_bytes([len[0], len[1]]));
    if !(FIXED_BODY..=MAX_BODY).contains(&body) {
        return Decoded::Corrupt;
    }
    let total = HEAD + body + TAIL;
    let Some(record) = buf.get(..total) else {
        return Decoded::Incomplete;
    };
    let (covered, crc) = record.split_at(HEAD + body);
    let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if switchyard_sdk::hash::crc32(&covered[MAGIC.len()..]) != crc {
        return Decoded::Corrupt;
    }
    match parse_body(&covered[HEAD..]) {
        Some(r) => Decoded::Record(r, total),
        None => Decoded::Corrupt,
    }
}

fn parse_body(body: &[u8]) -> Option<Record> {
    let time_ms = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let server_len = usize::from(*body.get(8)?);
    let server = std::str::from_utf8(body.get(9..9 + server_len)?).ok()?;
    let at = 9 + server_len;
    let key_len = usize::from(u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?));
    let key = body.get(at + 2..)?;
    (key.len() == key_len && key_len <= MAX_KEY).then(|| Record {
        time_ms,
        server: server.to_string(),
        key: key.to_vec(),
    })
}

/// What [`Reader::next`] finds at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A record, ending at `end`.
    Record {
        /// The record.
        record: Record,
        /// The offset just past it.
        end: u64,
    },
    /// Bytes that are no record, up to `to`, where a valid record starts.
    Skip {
        /// The offset of the next valid record.
        to: u64,
    },
    /// From here to the end, no valid record: a write cut short, or garbage.
    TornTail,
    /// The end of the file.
    End,
}

/// Bytes read from the file at a time.
const WINDOW: usize = 64 << 10;

/// Reads records from a spool file up to a given length, a window at a time.
#[derive(Debug)]
pub struct Reader<'f> {
    file: &'f File,
    /// Where the file's records end (what the writer has made durable).
    end: u64,
    /// File bytes from `base`.
    buf: Vec<u8>,
    base: u64,
}

impl<'f> Reader<'f> {
    /// A reader of `file`'s first `end` bytes.
    pub fn new(file: &'f File, end: u64) -> Reader<'f> {
        Reader {
            file,
            end,
            buf: Vec::new(),
            base: 0,
        }
    }

    /// The file's bytes from `at`: at least [`MAX_RECORD`] of them, or all up to the end.
    fn window(&mut self, at: u64) -> std::io::Result<&[u8]> {
        let want_end = (at + MAX_RECORD as u64).min(self.end);
        let have_end = self.base + self.buf.len() as u64;
        if at < self.base || want_end > have_end {
            let len = (self.end - at).min(WINDOW as u64) as usize;
            self.buf.resize(len, 0);
            self.file.read_exact_at(&mut self.buf, at)?;
            self.base = at;
        }
        let from = (at - self.base) as usize;
        Ok(&self.buf[from..])
    }

    /// What starts at `at`.
    pub fn next(&mut self, at: u64) -> std::io::Result<Item> {
        if at >= self.end {
            return Ok(Item::End);
        }
        match decode(self.window(at)?) {
            Decoded::Record(record, len) => Ok(Item::Record {
                record,
                end: at + len as u64,
            }),
            // Whole records only, up to `end`: a record cut short, or a length gone wrong.
            Decoded::Incomplete | Decoded::Corrupt => self.resync(at + 1),
        }
    }

    /// The next offset from `from` where a valid record starts.
    fn resync(&mut self, from: u64) -> std::io::Result<Item> {
        let (mut at, end) = (from, self.end);
        while at < end {
            let window = self.window(at)?;
            // Only a window's bytes whose record would fit in it are tried here; the rest wait
            // for the next window, which starts at the first of them.
            let tried = if window.len() as u64 == end - at {
                window.len()
            } else {
                window.len().saturating_sub(MAX_RECORD).max(1)
            };
            for i in 0..tried {
                if window[i] == MAGIC[0]
                    && let Decoded::Record(..) = decode(&window[i..])
                {
                    return Ok(Item::Skip { to: at + i as u64 });
                }
            }
            at += tried as u64;
        }
        Ok(Item::TornTail)
    }
}

/// The spool file of `server` in `dir`: `host_port.spool` (`:` and other bytes a file name
/// should not hold become `_`).
pub fn log_path(dir: &Path, server: SocketAddr) -> PathBuf {
    dir.join(format!("{}.{LOG_EXTENSION}", file_stem(server)))
}

/// The checkpoint beside a spool file: how far it has been replayed. Also what the router
/// locks, so that two processes never write one spool.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    log.with_extension(CHECKPOINT_EXTENSION)
}

/// The extension of spool files.
pub const LOG_EXTENSION: &str = "spool";
/// The extension of checkpoint files.
pub const CHECKPOINT_EXTENSION: &str = "done";

fn file_stem(server: SocketAddr) -> String {
    server
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A checkpoint's bytes: the offset replayed through, and a CRC of it.
pub fn encode_checkpoint(offset: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&offset.to_le_bytes());
    let crc = switchyard_sdk::hash::crc32(&out[..8]);
    out[8..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The offset a checkpoint's bytes hold, if they are whole and valid.
pub fn decode_checkpoint(bytes: &[u8]) -> Option<u64> {
    let offset: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let crc: [u8; 4] = bytes.get(8..12)?.try_into().ok()?;
    (switchyard_sdk::hash::crc32(&offset) == u32::from_le_bytes(crc))
        .then(|| u64::from_le_bytes(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(1_700_000_000_000, "127.0.0.1:11211", key, &mut out).expect("fits");
        out
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let bytes = record(b"user:42");
        match decode(&bytes) {
            Decoded::Record(r, len) => {
                assert_eq!(len, bytes.len());
                assert_eq!(r.key, b"user:42");
                assert_eq!(r.server, "127.0.0.1:11211");
                assert_eq!(r.time_ms, 1_700_000_000_000);
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Decoded::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = record(b"k");
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(decode(&bad), Decoded::Record(..)),
                "byte {i} flipped still decodes"
            );
        }
    }

    #[test]
    fn keys_too_long_are_refused() {
        let mut out = Vec::new();
        assert!(encode(0, "s", &[b'k'; MAX_KEY + 1], &mut out).is_none());
        assert!(out.is_empty());
        assert!(encode(0, "s", &[b'k'; MAX_KEY], &mut out).is_some());
        assert!(matches!(decode(&out), Decoded::Record(..)));
    }

    fn items(bytes: &[u8]) -> Vec<Item> {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-spool-format-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&dir, bytes).expect("write");
        let file = File::open(&dir).expect("open");
        let mut reader = Reader::new(&file, bytes.len() as u64);
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            let item = reader.next(at).expect("read");
            at = match &item {
                Item::Record { end, .. } => *end,
                Item::Skip { to } => *to,
                Item::TornTail | Item::End => {
                    out.push(item);
                    break;
                }
            };
            out.push(item);
        }
        let _ = std::fs::remove_file(&dir);
        out
    }

    #[test]
    fn a_torn_tail_and_corrupt_middle_are_skipped() {
        let (a, b) = (record(b"a"), record(b"b"));
        let mut bytes = a.clone();
        bytes.extend_from_slice(&b[..b.len() - 3]);
        let found = items(&bytes);
        assert!(matches!(&found[0], Item::Record { record, .. } if record.key == b"a"));
        assert_eq!(found[1], Item::TornTail);

        let mut bytes = a.clone();
        bytes.extend_from_slice(b"garbage\xffSYd1\x00");
        let garbage_end = bytes.len() as u64;
        bytes.extend_from_slice(&b);
        let found = items(&bytes);
        assert!(matches!(&found[0], Item::Record { record, .. } if record.key == b"a"));
        assert_eq!(found[1], Item::Skip { to: garbage_end });
        assert!(matches!(&found[2], Item::Record { record, .. } if record.key == b"b"));
        assert_eq!(found[3], Item::End);
    }

    #[test]
    fn records_past_a_window_are_found() {
        let mut bytes = Vec::new();
        let mut n = 0;
        while bytes.len() < 3 * WINDOW {
            bytes.extend_from_slice(&record(format!("key-{n}").as_bytes()));
            n += 1;
        }
        // Garbage longer than a window, then one more record.
        bytes.extend(std::iter::repeat_n(0xA5u8, WINDOW + 17));
        bytes.extend_from_slice(&record(b"last"));
        let found = items(&bytes);
        let records = found
            .iter()
            .filter(|i| matches!(i, Item::Record { .. }))
            .count();
        assert_eq!(records, n + 1);
        assert!(matches!(found[n], Item::Skip { .. }));
    }

    #[test]
    fn checkpoints_round_trip_and_reject_damage() {
        let bytes = encode_checkpoint(12345);
        assert_eq!(decode_checkpoint(&bytes), Some(12345));
        let mut bad = bytes;
        bad[3] ^= 1;
        assert_eq!(decode_checkpoint(&bad), None);
        assert_eq!(decode_checkpoint(&bytes[..11]), None);
    }

    #[test]
    fn file_names_are_safe() {
        let v4: SocketAddr = "127.0.0.1:11211".parse().expect("addr");
        let v6: SocketAddr = "[::1]:11211".parse().expect("addr");
        assert_eq!(
            log_path(Path::new("/d"), v4),
            Path::new("/d/127.0.0.1_11211.spool")
        );
        assert_eq!(
            log_path(Path::new("/d"), v6),
            Path::new("/d/___1__11211.spool")
        );
        assert_eq!(
            checkpoint_path(&log_path(Path::new("/d"), v4)),
            Path::new("/d/127.0.0.1_11211.done")
        );
    }
}
