//! Scratch directories under the system temp dir, removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A directory that exists for one test: config files, `.wasm` plugins, twemproxy's YAML and
/// log. Unique per process and call; deleted when dropped (kept if `SWITCHYARD_KEEP_TMP` is
/// set, for debugging a failure).
#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// Creates `<temp>/switchyard-test-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> TestDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "switchyard-test-{}-{n}-{label}",
            std::process::id()
        ));
        if path.exists() {
            // Left over from an earlier process with our pid; nothing of ours is in it.
            std::fs::remove_dir_all(&path)
                .unwrap_or_else(|e| panic!("remove stale {}: {e}", path.display()));
        }
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TestDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Replaces `name` with `contents` at once, as editors and configuration management do:
    /// written beside it, then renamed over it, so no reader ever sees it half written.
    pub fn replace(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path.join(name);
        let staged = self.path.join(format!(".{name}.staged"));
        std::fs::write(&staged, contents)
            .unwrap_or_else(|e| panic!("write {}: {e}", staged.display()));
        std::fs::rename(&staged, &path)
            .unwrap_or_else(|e| panic!("rename onto {}: {e}", path.display()));
        path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("SWITCHYARD_KEEP_TMP").is_none()
            && let Err(e) = std::fs::remove_dir_all(&self.path)
        {
            eprintln!("warning: could not remove {}: {e}", self.path.display());
        }
    }
}
