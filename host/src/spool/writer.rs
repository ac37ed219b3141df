//! The spool thread: owns every spool file of a router, appends to them with group commit, and
//! runs their replays (`replay.rs`) as tasks of its own single-threaded runtime.
//!
//! Group commit: the thread takes every message waiting in its channel (up to [`MAX_BATCH`]
//! appends), writes each append to its file, then syncs each file it wrote once
//! (`fdatasync`), then answers the appends: durable, or not (the bytes of a failed write or
//! sync are cut off again). Nothing waits for a timer, so a lone delete costs one write and one
//! sync, and the appends that arrive while a sync runs share the next one. A sync may take
//! milliseconds; the workers never wait for it, only the clients of the deletes in question.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use super::file::SpoolFile;
use super::{ServerSpool, SpoolStats};

/// Appends written and synced together at most: bounds how long the first of them waits.
const MAX_BATCH: usize = 1024;

/// The same write error of one file is logged at most once per this.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// What the spool thread is asked.
#[derive(Debug)]
pub enum Msg {
    /// Open this spool's file and start replaying it; answer whether it opened.
    Open {
        spool: Arc<ServerSpool>,
        reply: std::sync::mpsc::Sender<Result<(), String>>,
    },
    /// Write a delete.
    Append(Append),
    /// The spool is no longer in use: close its file.
    Forget { id: u64, path: PathBuf },
    /// The router is going away.
    Stop,
}

/// One delete to write, and who waits for it to be durable.
#[derive(Debug)]
pub struct Append {
    pub spool: Arc<ServerSpool>,
    /// The encoded record.
    pub record: Vec<u8>,
    /// Told whether the record is durable.
    pub done: oneshot::Sender<bool>,
}

/// An open spool file, shared by the writer and the spool's replay task.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    /// `None` once closed: its replay task then ends.
    pub file: RefCell<Option<SpoolFile>>,
    /// Wakes the replay task: something was appended, or the file closed.
    pub notify: Notify,
    pub spool: Weak<ServerSpool>,
    /// Whether the file's being full was logged since it last took a record.
    full_logged: Cell<bool>,
    /// When a write error was last logged.
    error_logged: Cell<Option<Instant>>,
}

/// The thread's body.
pub fn run(rx: mpsc::UnboundedReceiver<Msg>, stats: Arc<SpoolStats>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the spool thread's runtime; deletes are not spooled");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve(rx, stats));
}

async fn serve(mut rx: mpsc::UnboundedReceiver<Msg>, stats: Arc<SpoolStats>) {
    let mut writer = Writer {
        entries: HashMap::new(),
        stats,
    };
    let mut batch: Vec<Append> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Append(append) => batch.push(append),
                Msg::Open { spool, reply } => {
                    let _ = reply.send(writer.open(&spool));
                }
                Msg::Forget { id, path } => writer.forget(id, &path),
                Msg::Stop => {
                    writer.commit(&mut batch);
                    return;
                }
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        writer.commit(&mut batch);
    }
}

struct Writer {
    entries: HashMap<PathBuf, Rc<Entry>>,
    stats: Arc<SpoolStats>,
}

impl Writer {
    fn open(&mut self, spool: &Arc<ServerSpool>) -> Result<(), String> {
        // A spool dropped whose `Forget` is still on its way holds the same file: close it.
        if let Some(old) = self.entries.remove(&spool.path) {
            self.close(&old);
        }
        let (file, scan) = SpoolFile::open(&spool.path)?;
        if scan.records > 0 {
            tracing::info!(
                spool = %spool.path.display(),
                backend = %spool.address,
                deletes = scan.records,
                "delete spool holds deletes to replay"
            );
        }
        self.stats.add_bytes(file.len());
        let pending = file.has_pending();
        let entry = Rc::new(Entry {
            id: spool.id,
            file: RefCell::new(Some(file)),
            notify: Notify::new(),
            spool: Arc::downgrade(spool),
            full_logged: Cell::new(false),
            error_logged: Cell::new(None),
        });
        if pending {
            entry.notify.notify_one();
        }
        tokio::task::spawn_local(super::replay::replay(entry.clone(), self.stats.clone()));
        self.entries.insert(spool.path.clone(), entry);
        Ok(())
    }

    fn forget(&mut self, id: u64, path: &Path) {
        if self.entries.get(path).is_some_and(|e| e.id == id)
            && let Some(entry) = self.entries.remove(path)
        {
            self.close(&entry);
        }
    }

    fn close(&self, entry: &Entry) {
        if let Some(file) = entry.file.borrow_mut().take() {
            self.stats.sub_bytes(file.len());
        }
        entry.notify.notify_one();
    }

    /// Writes `batch`, syncs each file written once, and answers every append.
    fn commit(&mut self, batch: &mut Vec<Append>) {
        if batch.is_empty() {
            return;
        }
        self.stats.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        // Each file written: its length before the batch, and the appends waiting on its sync.
        let mut written: Vec<(Rc<Entry>, u64, Vec<oneshot::Sender<bool>>)> = Vec::new();
        for append in batch.drain(..) {
            let Some(entry) = self
                .entries
                .get(&append.spool.path)
                .filter(|e| e.id == append.spool.id)
                .cloned()
            else {
                self.refuse(append.done);
                continue;
            };
            let max_bytes = append.spool.settings().max_bytes;
            let mut file = entry.file.borrow_mut();
            let Some(file) = file.as_mut() else {
                self.refuse(append.done);
                continue;
            };
            if file.len() + append.record.len() as u64 > max_bytes {
                if !entry.full_logged.replace(true) {
                    tracing::warn!(
                        spool = %file.path().display(),
                        backend = %append.spool.address,
                        max_bytes,
                        "delete spool full: further deletes to this server are not spooled \
                         (delete_spool_dropped) until it is replayed"
                    );
                }
                self.refuse(append.done);
                continue;
            }
            let at = match written.iter().position(|(e, ..)| Rc::ptr_eq(e, &entry)) {
                Some(at) => at,
                None => {
                    written.push((entry.clone(), file.len(), Vec::new()));
                    written.len() - 1
                }
            };
            match file.append(&append.record) {
                Ok(()) => written[at].2.push(append.done),
                Err(e) => {
                    log_error(&entry, file.path(), "write", &e);
                    self.refuse(append.done);
                }
            }
        }
        for (entry, before, waiting) in written {
            if waiting.is_empty() {
                continue;
            }
            let mut file = entry.file.borrow_mut();
            let Some(file) = file.as_mut() else {
                continue;
            };
            let durable = match file.sync() {
                Ok(()) => true,
                Err(e) => {
                    log_error(&entry, file.path(), "sync", &e);
                    file.cut(before);
                    false
                }
            };
            let n = waiting.len() as u64;
            if durable {
                self.stats.add_bytes(file.len() - before);
                self.stats.spooled.add(n);
                entry.full_logged.set(false);
                entry.notify.notify_one();
            } else {
                self.stats.dropped.add(n);
            }
            for done in waiting {
                let _ = done.send(durable);
            }
        }
    }

    fn refuse(&self, done: oneshot::Sender<bool>) {
        self.stats.dropped.inc();
        let _ = done.send(false);
    }
}

fn log_error(entry: &Entry, path: &Path, what: &str, error: &std::io::Error) {
    let now = Instant::now();
    if entry
        .error_logged
        .get()
        .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
    {
        return;
    }
    entry.error_logged.set(Some(now));
    tracing::error!(
        spool = %path.display(),
        error = %error,
        "cannot {what} the delete spool: failed deletes get their SERVER_ERROR \
         (delete_spool_dropped)"
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::backend::Health;
    use crate::spool::Settings;

    /// A writer with one spool whose file is `log`, bounded to `max_bytes`.
    fn writer_over(log: &str, max_bytes: u64) -> (Writer, Arc<ServerSpool>) {
        let stats = Arc::new(SpoolStats::default());
        let address = "127.0.0.1:1".parse().expect("address");
        let (tx, _) = mpsc::unbounded_channel();
        let path = PathBuf::from(log);
        let spool = Arc::new(ServerSpool {
            id: 1,
            path: path.clone(),
            address,
            server: address.to_string(),
            health: Arc::new(Health::new(address, 1)),
            settings: Mutex::new(Settings {
                max_bytes,
                replay_rate: 1,
                connect_timeout: Duration::from_millis(1),
                timeout: Duration::from_millis(1),
                retry_floor: Duration::from_millis(1),
                retry_ceiling: Duration::from_millis(1),
            }),
            tls: Mutex::new(None),
            tx,
            stats: stats.clone(),
        });
        let open = |p: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .expect("open")
        };
        let file = SpoolFile::unchecked(&path, open(log), open("/dev/null"));
        let entry = Rc::new(Entry {
            id: 1,
            file: RefCell::new(Some(file)),
            notify: Notify::new(),
            spool: Arc::downgrade(&spool),
            full_logged: Cell::new(false),
            error_logged: Cell::new(None),
        });
        let writer = Writer {
            entries: HashMap::from([(path, entry)]),
            stats,
        };
        (writer, spool)
    }

    /// Commits one append of `record` to `spool`; whether it was durable.
    fn commit_one(writer: &mut Writer, spool: &Arc<ServerSpool>, record: &[u8]) -> bool {
        let (done, mut durable) = oneshot::channel();
        writer.stats.queued.fetch_add(1, Ordering::Relaxed);
        writer.commit(&mut vec![Append {
            spool: spool.clone(),
            record: record.to_vec(),
            done,
        }]);
        durable.try_recv().expect("answered")
    }

    #[test]
    fn a_failed_write_is_answered_not_durable_and_counted() {
        // Every write to /dev/full fails with ENOSPC: a full disk.
        let (mut writer, spool) = writer_over("/dev/full", 1 << 20);
        assert!(!commit_one(&mut writer, &spool, b"record"));
        let stats = &writer.stats;
        assert_eq!((stats.spooled.get(), stats.dropped.get()), (0, 1));
        assert_eq!(stats.bytes(), 0);
        assert_eq!(stats.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn past_the_bound_appends_are_refused() {
        let log = std::env::temp_dir().join(format!(
            "switchyard-spool-writer-{}.spool",
            std::process::id()
        ));
        std::fs::write(&log, b"").expect("create");
        let (mut writer, spool) = writer_over(&log.display().to_string(), 10);
        assert!(commit_one(&mut writer, &spool, b"0123456789"));
        assert!(!commit_one(&mut writer, &spool, b"x"));
        let stats = &writer.stats;
        assert_eq!((stats.spooled.get(), stats.dropped.get()), (1, 1));
        assert_eq!(stats.bytes(), 10);
        assert_eq!(std::fs::read(&log).expect("read"), b"0123456789");
        let _ = std::fs::remove_file(&log);
    }
}
