//! Traffic capture: `tap start NAME [EVERY] [MAX_BYTES]` on the admin listener writes one in
//! EVERY client requests, as the client sent its command line (no value: a storage line carries
//! the value's length), to `NAME` in the config file's directory, until `tap stop` or until
//! MAX_BYTES are written. Lines of commands no plugin routes are left out, and a `# ms N` line
//! marks each millisecond (since the start) in which requests were captured. The file is a
//! trace (`trace.rs`): `switchyard replay` and `switchyard plugin test --trace` read it.
//!
//! While no tap runs, a request pays one relaxed load. A captured request takes the tap's
//! lock for one buffered write: a tap is a diagnostic, sampled and bounded in bytes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Default bound of a capture file.
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// Hard bound of a capture file.
pub const MAX_BYTES_CEILING: u64 = 4 << 30;

/// The router's tap: none running, or one writing a file.
#[derive(Debug, Default)]
pub struct Tap {
    /// A capture runs: the one thing a request reads when none does.
    on: AtomicBool,
    /// Requests seen while it runs, to take one in `every`.
    seen: AtomicU64,
    capture: Mutex<Option<Capture>>,
}

#[derive(Debug)]
struct Capture {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    every: u64,
    max_bytes: u64,
    written: u64,
    requests: u64,
    started: Instant,
    /// The last `# ms` line written.
    last_ms: Option<u128>,
}

/// What a stopped capture wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The file.
    pub path: PathBuf,
    /// Requests written.
    pub requests: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl Tap {
    /// Starts capturing one in `every` requests to `name` in `dir`, at most `max_bytes`. The
    /// name is a file name alone (letters, digits, `.`, `_`, `-`), and the file must not exist.
    pub fn start(
        &self,
        dir: &Path,
        name: &str,
        every: u64,
        max_bytes: u64,
    ) -> Result<PathBuf, String> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(format!(
                "`{name}` is no file name: letters, digits, `.`, `_` and `-`, not starting with `.`"
            ));
        }
        if every == 0 || max_bytes == 0 || max_bytes > MAX_BYTES_CEILING {
            return Err(format!(
                "EVERY is at least 1 and MAX_BYTES 1 to {MAX_BYTES_CEILING}"
            ));
        }
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = capture.as_ref() {
            return Err(format!(
                "a tap is writing {} already",
                running.path.display()
            ));
        }
        let path = dir.join(name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        let mut file = std::io::BufWriter::new(file);
        let header = format!(
            "# switchyard tap: one in {every} requests, command lines as sent, values left out\n"
        );
        file.write_all(header.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        *capture = Some(Capture {
            path: path.clone(),
            file,
            every,
            max_bytes,
            written: header.len() as u64,
            requests: 0,
            started: Instant::now(),
            last_ms: None,
        });
        self.seen.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Release);
        Ok(path)
    }

    /// Stops the capture, flushing its file; `None` when none ran.
    pub fn stop(&self) -> Option<Captured> {
        self.on.store(false, Ordering::Release);
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        let mut c = capture.take()?;
        let _ = c.file.flush();
        Some(Captured {
            path: c.path,
            requests: c.requests,
            bytes: c.written,
        })
    }

    /// What the running capture wrote so far.
    pub fn status(&self) -> Option<Captured> {
        let capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        capture.as_ref().map(|c| Captured {
            path: c.path.clone(),
            requests: c.requests,
            bytes: c.written,
        })
    }

    /// A request with command line `line` came: captured if a tap runs and takes it.
    #[inline]
    pub fn request(&self, line: &[u8]) {
        if self.on.load(Ordering::Relaxed) {
            self.capture_line(line);
        }
    }

    #[cold]
    fn capture_line(&self, line: &[u8]) {
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let mut capture = self.capture.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = capture.as_mut() else {
            return;
        };
        if !n.is_multiple_of(c.every) {
            return;
        }
        let ms = c.started.elapsed().as_millis();
        let mark = (c.last_ms != Some(ms)).then(|| format!("# ms {ms}\n"));
        let need = mark.as_ref().map_or(0, String::len) as u64 + line.len() as u64 + 1;
        if c.written + need > c.max_bytes {
            // Full: the capture ends here.
            self.on.store(false, Ordering::Release);
            let _ = c.file.flush();
            return;
        }
        let mut ok = true;
        if let Some(mark) = mark {
            ok &= c.file.write_all(mark.as_bytes()).is_ok();
            c.last_ms = Some(ms);
        }
        ok &= c.file.write_all(line).is_ok() && c.file.write_all(b"\n").is_ok();
        if !ok {
            self.on.store(false, Ordering::Release);
            tracing::warn!(file = %c.path.display(), "tap: a write failed; the capture stops");
            return;
        }
        c.written += need;
        c.requests += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tap_writes_one_in_every_line_within_its_bound() {
        let dir = std::env::temp_dir().join(format!("switchyard-tap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let tap = Tap::default();
        assert!(tap.start(&dir, "../x", 1, 100).is_err());
        assert!(tap.start(&dir, "t", 0, 100).is_err());
        let path = tap.start(&dir, "t.trace", 2, 1 << 20).expect("start");
        assert!(
            tap.start(&dir, "u.trace", 1, 100).is_err(),
            "one tap at a time"
        );
        for i in 0..10 {
            tap.request(format!("get k{i}").as_bytes());
        }
        let done = tap.stop().expect("stopped");
        assert_eq!(done.requests, 5);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["get k0", "get k2", "get k4", "get k6", "get k8"]);
        assert!(
            tap.start(&dir, "t.trace", 1, 100).is_err(),
            "the file exists"
        );
        // A bound of a few lines: the capture ends at it.
        let small = tap.start(&dir, "small.trace", 1, 120).expect("start");
        for i in 0..100 {
            tap.request(format!("get key-number-{i}").as_bytes());
        }
        let done = tap.stop().expect("stopped");
        assert!(done.bytes <= 120, "{done:?}");
        assert_eq!(
            std::fs::metadata(&small).map(|m| m.len()).ok(),
            Some(done.bytes)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `switchyard tap`'s usage.
pub const USAGE: &str = "switchyard tap --admin HOST:PORT NAME [--every N] [--max-bytes N] \
                         [--seconds S]";

/// A `switchyard tap` command line: a capture through a running router's admin listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TapCommand {
    /// The admin listener (`[admin] address`).
    pub admin: String,
    /// The capture file's name, beside the router's config file.
    pub name: String,
    /// One request in this many.
    pub every: u64,
    /// The file's bound.
    pub max_bytes: u64,
    /// How long to capture.
    pub seconds: f64,
}

/// Parses what follows `switchyard tap`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<TapCommand> {
    use anyhow::Context as _;
    let usage = || format!("usage: {USAGE}");
    let mut command = TapCommand {
        admin: String::new(),
        name: String::new(),
        every: 1,
        max_bytes: DEFAULT_MAX_BYTES,
        seconds: 10.0,
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("tap: {arg} needs a value; {}", usage()))
        };
        let number = |v: String, what: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .with_context(|| format!("tap {what}: `{v}` is no positive number"))
        };
        match arg.as_str() {
            "--admin" => command.admin = value()?,
            "--every" => command.every = number(value()?, "--every")? as u64,
            "--max-bytes" => command.max_bytes = number(value()?, "--max-bytes")? as u64,
            "--seconds" => command.seconds = number(value()?, "--seconds")?,
            flag if flag.starts_with('-') => {
                anyhow::bail!("tap: unknown flag `{flag}`; {}", usage())
            }
            _ if command.name.is_empty() => command.name = arg,
            _ => anyhow::bail!("tap takes one NAME; {}", usage()),
        }
    }
    if command.admin.is_empty() || command.name.is_empty() {
        anyhow::bail!("tap needs --admin HOST:PORT and a NAME; {}", usage());
    }
    Ok(command)
}

/// Starts a capture on the router at `--admin`, waits `--seconds` (or until the file is full),
/// stops it and prints what was written.
pub fn run(command: &TapCommand) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::{BufRead as _, BufReader};
    let stream = std::net::TcpStream::connect(&command.admin)
        .with_context(|| format!("tap: cannot reach the admin listener {}", command.admin))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut ask = |line: String| -> anyhow::Result<String> {
        (&stream).write_all(line.as_bytes())?;
        let mut reply = String::new();
        reader.read_line(&mut reply)?;
        let reply = reply.trim_end().to_string();
        if !reply.starts_with("OK ") {
            anyhow::bail!("tap: the router answered `{reply}`");
        }
        Ok(reply)
    };
    let started = ask(format!(
        "tap start {} {} {}\n",
        command.name, command.every, command.max_bytes
    ))?;
    let path = started.split(' ').nth(1).unwrap_or_default().to_string();
    eprintln!("tap: capturing to {path} for {} s", command.seconds);
    std::thread::sleep(std::time::Duration::from_secs_f64(command.seconds));
    let done = ask("tap stop\n".into())?;
    let words: Vec<&str> = done.split(' ').collect();
    crate::cli::out(&format!(
        "{} requests, {} bytes in {}\n",
        words.get(2).unwrap_or(&"?"),
        words.get(3).unwrap_or(&"?"),
        words.get(1).unwrap_or(&"?")
    ));
    Ok(())
}
