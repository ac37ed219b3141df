//! One server's spool on disk: the append-only file of its failed deletes (`format.rs`) and
//! its checkpoint, the offset replayed through.
//!
//! Durability, in order:
//! - an append is one `pwrite` at the end of the records, then `fdatasync` (by the writer, once
//!   for every append of a batch: `writer.rs`); a failed write or sync is cut off again, so the
//!   file only ever holds whole records past a crash's torn tail;
//! - a replayed batch moves the checkpoint (one `pwrite`, not synced: a checkpoint lost in a
//!   crash replays deletes again, which deletes nothing more);
//! - once everything is replayed, the checkpoint is reset to 0 and synced *before* the file is
//!   truncated, so a crash between the two replays the old records again rather than skipping
//!   new ones.
//!
//! The checkpoint file is also the lock (`flock`, exclusive): a router and `switchyard spool
//! replay` never work on one spool at once.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::{self, Item, Reader, Record};

/// One server's spool file, open and locked.
#[derive(Debug)]
pub struct SpoolFile {
    path: PathBuf,
    log: File,
    checkpoint_file: File,
    /// Bytes of whole records (the file's length).
    len: u64,
    /// Bytes replayed: where the next replay starts.
    checkpoint: u64,
}

/// What a spool file holds from its checkpoint on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Deletes still to replay.
    pub records: u64,
    /// When the oldest of them was spooled, Unix milliseconds.
    pub oldest_ms: Option<u64>,
    /// The server the first of them names.
    pub server: Option<String>,
    /// Bytes between records that are no record (skipped).
    pub skipped: u64,
    /// Bytes at the end that are no whole record (a write cut short), ignored.
    pub torn: u64,
    /// The file's length.
    pub len: u64,
    /// Its checkpoint.
    pub checkpoint: u64,
}

/// Deletes read for a replay.
#[derive(Debug)]
pub struct Batch {
    /// Each delete and the offset just past its record.
    pub records: Vec<(Record, u64)>,
    /// How far the read went (past any bytes skipped after the last record).
    pub through: u64,
}

impl SpoolFile {
    /// Opens the spool file `path` (creating it and its directory), locks it, and checks every
    /// record from its checkpoint on: a torn tail is cut off, with a log line, and so is
    /// anything corrupt in between, skipped.
    pub fn open(path: &Path) -> Result<(SpoolFile, Scan), String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create delete spool directory {}: {e}",
                dir.display()
            )
        })?;
        let checkpoint_path = format::checkpoint_path(path);
        let created = !path.exists() || !checkpoint_path.exists();
        let open = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(p)
                .map_err(|e| format!("cannot open {}: {e}", p.display()))
        };
        let checkpoint_file = open(&checkpoint_path)?;
        match checkpoint_file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "{} is in use by another process (a router with this delete spool, or \
                     `switchyard spool replay`)",
                    path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", checkpoint_path.display()));
            }
        }
        let log = open(path)?;
        if created {
            // The new names must survive a crash as well as what is written to them.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", dir.display()))?;
        }
        let len = log
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        let checkpoint = read_checkpoint(&checkpoint_file, &checkpoint_path, len);
        let mut file = SpoolFile {
            path: path.to_path_buf(),
            log,
            checkpoint_file,
            len,
            checkpoint,
        };
        let scan = scan(&file.log, &file.path, len, checkpoint)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if scan.torn > 0 {
            let whole = len - scan.torn;
            tracing::warn!(
                spool = %path.display(),
                offset = whole,
                bytes = scan.torn,
                "delete spool ends in {} bytes that are no whole record (a write cut short); \
                 ignored and cut off",
                scan.torn
            );
            file.log
                .set_len(whole)
                .and_then(|()| file.log.sync_data())
                .map_err(|e| format!("cannot cut the torn tail off {}: {e}", path.display()))?;
            file.len = whole;
        }
        Ok((file, scan))
    }

    /// A spool file over `log` and `checkpoint_file` as they are: no lock, no check.
    #[cfg(test)]
    pub fn unchecked(path: &Path, log: File, checkpoint_file: File) -> SpoolFile {
        SpoolFile {
            path: path.to_path_buf(),
            log,
            checkpoint_file,
            len: 0,
            checkpoint: 0,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes on disk.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether deletes are left to replay.
    pub fn has_pending(&self) -> bool {
        self.checkpoint < self.len
    }

    /// Writes `record` after the last one (not yet synced: see [`SpoolFile::sync`]). A failed
    /// write is cut off again.
    pub fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        match self.log.write_all_at(record, self.len) {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.log.set_len(self.len);
                Err(e)
            }
        }
    }

    /// Makes every append so far durable (`fdatasync`).
    pub fn sync(&self) -> std::io::Result<()> {
        self.log.sync_data()
    }

    /// Cuts the file back to `len` bytes: the appends after it were not made durable.
    pub fn cut(&mut self, len: u64) {
        if let Err(e) = self.log.set_len(len) {
            tracing::warn!(spool = %self.path.display(), error = %e, "cannot cut off a failed append");
        }
        self.len = len;
    }

    /// Up to `max` deletes from the checkpoint on, skipping (and logging) bytes that are no
    /// record.
    pub fn read(&self, max: usize) -> std::io::Result<Batch> {
        let mut reader = Reader::new(&self.log, self.len);
        let mut at = self.checkpoint;
        let mut records = Vec::new();
        while records.len() < max {
            match reader.next(at)? {
                Item::Record { record, end } => {
                    records.push((record, end));
                    at = end;
                }
                Item::Skip { to } => {
                    tracing::warn!(spool = %self.path.display(), offset = at, bytes = to - at, "skipping bytes of the delete spool that are no record");
                    at = to;
                }
                Item::TornTail => {
                    tracing::warn!(spool = %self.path.display(), offset = at, bytes = self.len - at, "skipping the end of the delete spool: no whole record");
                    at = self.len;
                }
                Item::End => break,
            }
        }
        Ok(Batch {
            records,
            through: at,
        })
    }

    /// Records that everything before `to` is replayed. Once that is everything, the file is
    /// emptied (returns the bytes freed).
    pub fn advance(&mut self, to: u64) -> std::io::Result<u64> {
        if to < self.len {
            self.checkpoint = to;
            self.checkpoint_file
                .write_all_at(&format::encode_checkpoint(to), 0)?;
            return Ok(0);
        }
        // The checkpoint first, durably: a crash before the truncation replays the old records
        // again (harmless) instead of skipping new ones.
        self.checkpoint_file
            .write_all_at(&format::encode_checkpoint(0), 0)?;
        self.checkpoint_file.sync_data()?;
        self.checkpoint = 0;
        self.log.set_len(0)?;
        self.log.sync_data()?;
        let freed = self.len;
        self.len = 0;
        Ok(freed)
    }
}

/// The checkpoint in `file`, or 0 (everything is replayed again: deletes are idempotent) when it
/// is missing, damaged or past the end of the spool.
fn read_checkpoint(file: &File, path: &Path, len: u64) -> u64 {
    let mut bytes = [0u8; 12];
    let read = file.read_at(&mut bytes, 0).unwrap_or(0);
    if read == 0 {
        return 0;
    }
    match format::decode_checkpoint(&bytes[..read]) {
        Some(offset) if offset <= len => offset,
        _ => {
            tracing::warn!(checkpoint = %path.display(), "delete spool checkpoint unreadable or past the end; replaying the whole spool (deleting twice is harmless)");
            0
        }
    }
}

/// Reads every record of `log` (`len` bytes) from `checkpoint` on.
fn scan(log: &File, path: &Path, len: u64, checkpoint: u64) -> std::io::Result<Scan> {
    let mut reader = Reader::new(log, len);
    let mut out = Scan {
        len,
        checkpoint,
        ..Scan::default()
    };
    let mut at = checkpoint;
    loop {
        match reader.next(at)? {
            Item::Record { record, end } => {
                out.records += 1;
                if out.server.is_none() {
                    out.server = Some(record.server.clone());
                }
                out.oldest_ms = Some(
                    out.oldest_ms
                        .map_or(record.time_ms, |t| t.min(record.time_ms)),
                );
                at = end;
            }
            Item::Skip { to } => {
                tracing::warn!(spool = %path.display(), offset = at, bytes = to - at, "bytes of the delete spool that are no record; they are skipped");
                out.skipped += to - at;
                at = to;
            }
            Item::TornTail => {
                out.torn = len - at;
                return Ok(out);
            }
            Item::End => return Ok(out),
        }
    }
}

/// What the spool file at `path` holds, read without locking or changing it (`switchyard spool
/// show`): a router may be appending, whose last record may then look torn.
pub fn inspect(path: &Path) -> std::io::Result<Scan> {
    let log = File::open(path)?;
    let len = log.metadata()?.len();
    let checkpoint = match File::open(format::checkpoint_path(path)) {
        Ok(f) => read_checkpoint(&f, path, len),
        Err(_) => 0,
    };
    scan(&log, path, len, checkpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "switchyard-spool-file-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn record(key: &str) -> Vec<u8> {
        let mut out = Vec::new();
        format::encode(7, "127.0.0.1:1", key.as_bytes(), &mut out).expect("fits");
        out
    }

    fn keys(batch: &Batch) -> Vec<String> {
        batch
            .records
            .iter()
            .map(|(r, _)| String::from_utf8_lossy(&r.key).into_owned())
            .collect()
    }

    #[test]
    fn appends_replay_in_order_and_survive_a_reopen() {
        let dir = Dir::new("order");
        let path = dir.0.join("s.spool");
        let (mut f, scan) = SpoolFile::open(&path).expect("open");
        assert_eq!(scan.records, 0);
        for k in ["a", "b", "c"] {
            f.append(&record(k)).expect("append");
        }
        f.sync().expect("sync");
        let batch = f.read(2).expect("read");
        assert_eq!(keys(&batch), ["a", "b"]);
        assert_eq!(f.advance(batch.through).expect("advance"), 0);
        assert!(f.has_pending());
        // A second open while this one holds the lock is refused.
        let refused = SpoolFile::open(&path).expect_err("locked");
        assert!(refused.contains("in use"), "{refused}");
        drop(f);

        let (mut f, scan) = SpoolFile::open(&path).expect("reopen");
        assert_eq!(scan.records, 1, "only c is left");
        let batch = f.read(10).expect("read");
        assert_eq!(keys(&batch), ["c"]);
        let len = f.len();
        assert_eq!(f.advance(batch.through).expect("advance"), len);
        assert_eq!(f.len(), 0);
        assert!(!f.has_pending());
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    }

    #[test]
    fn a_torn_tail_is_cut_off_at_open() {
        let dir = Dir::new("torn");
        let path = dir.0.join("s.spool");
        std::fs::create_dir_all(&dir.0).expect("mkdir");
        let mut bytes = record("a");
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&record("b")[..9]);
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(inspect(&path).expect("inspect").torn, 9);
        let (mut f, scan) = SpoolFile::open(&path).expect("open");
        assert_eq!((scan.records, scan.torn), (1, 9));
        assert_eq!(f.len(), whole);
        f.append(&record("c")).expect("append");
        assert_eq!(keys(&f.read(10).expect("read")), ["a", "c"]);
    }

    #[test]
    fn a_damaged_checkpoint_replays_everything() {
        let dir = Dir::new("checkpoint");
        let path = dir.0.join("s.spool");
        let (mut f, _) = SpoolFile::open(&path).expect("open");
        f.append(&record("a")).expect("append");
        f.append(&record("b")).expect("append");
        let first = f.read(1).expect("read").through;
        f.advance(first).expect("advance");
        drop(f);
        std::fs::write(format::checkpoint_path(&path), b"nonsense").expect("write");
        let (f, scan) = SpoolFile::open(&path).expect("open");
        assert_eq!(scan.records, 2);
        assert_eq!(keys(&f.read(10).expect("read")), ["a", "b"]);
    }
}
