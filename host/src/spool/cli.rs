//! `switchyard spool show DIR` and `switchyard spool replay DIR`: a delete spool directory as
//! an operator sees it, and replaying it by hand (a router whose configuration no longer names
//! the spool, a router that is gone for good).
//!
//! `show` reads without locking or changing anything. `replay` takes each file's lock, so it
//! refuses a spool a running router holds (that router replays it itself), and moves the
//! checkpoint as the router would: run it again and it goes on where it stopped.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::file::{self, SpoolFile};
use super::format;
use super::replay::{batch_size, connect, send_batch};
use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_DELETE_SPOOL_REPLAY_RATE, DEFAULT_REQUEST_TIMEOUT,
};

/// The spool commands' usage, for `--help` and errors.
pub const USAGE: &str = "switchyard spool show DIR\n       \
     switchyard spool replay DIR [--server HOST:PORT] [--rate N]";

/// What to do with a spool directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpoolCommand {
    /// Print what each server's spool holds.
    Show(PathBuf),
    /// Replay the spools (only `server`'s, if given) at `rate` deletes a second.
    Replay {
        /// The directory.
        dir: PathBuf,
        /// Only this server's spool.
        server: Option<SocketAddr>,
        /// Deletes a second.
        rate: u32,
    },
}

/// Parses what follows `switchyard spool`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<SpoolCommand> {
    let usage = || format!("usage: {USAGE}");
    let command = args.next().with_context(usage)?;
    let dir = PathBuf::from(
        args.next()
            .with_context(|| format!("spool {command} needs a directory; {}", usage()))?,
    );
    match command.as_str() {
        "show" => {
            if let Some(extra) = args.next() {
                bail!("spool show: unexpected `{extra}`; {}", usage());
            }
            Ok(SpoolCommand::Show(dir))
        }
        "replay" => {
            let (mut server, mut rate) = (None, DEFAULT_DELETE_SPOOL_REPLAY_RATE);
            while let Some(flag) = args.next() {
                let mut value = || {
                    args.next()
                        .with_context(|| format!("spool replay: {flag} needs a value"))
                };
                match flag.as_str() {
                    "--server" => {
                        let text = value()?;
                        server = Some(
                            text.to_socket_addrs()
                                .ok()
                                .and_then(|mut a| a.next())
                                .with_context(|| {
                                    format!("spool replay --server: `{text}` is not a host:port")
                                })?,
                        );
                    }
                    "--rate" => {
                        let text = value()?;
                        rate = text
                            .parse::<u32>()
                            .ok()
                            .filter(|r| (1..=1_000_000).contains(r))
                            .with_context(|| {
                                format!(
                                    "spool replay --rate: `{text}` is not a number from 1 to 1000000"
                                )
                            })?;
                    }
                    other => bail!("spool replay: unexpected `{other}`; {}", usage()),
                }
            }
            Ok(SpoolCommand::Replay { dir, server, rate })
        }
        other => bail!("no spool command `{other}`; {}", usage()),
    }
}

/// Runs `command`, printing a line per server to standard output.
pub fn run(command: SpoolCommand) -> anyhow::Result<()> {
    match command {
        SpoolCommand::Show(dir) => show(&dir),
        SpoolCommand::Replay { dir, server, rate } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(replay(&dir, server, rate))
        }
    }
}

/// The spool files in `dir`, by name.
fn spool_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == format::LOG_EXTENSION))
        .collect();
    files.sort();
    Ok(files)
}

/// What a file's line names it by: its records' server, else its name.
fn label(path: &Path, scan: &file::Scan) -> String {
    scan.server.clone().unwrap_or_else(|| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    })
}

fn show(dir: &Path) -> anyhow::Result<()> {
    let now_ms = super::unix_ms();
    let mut total = 0;
    for path in spool_files(dir)? {
        let scan =
            file::inspect(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut line = format!(
            "{} pending {} bytes {}",
            label(&path, &scan),
            scan.records,
            scan.len
        );
        if let Some(oldest) = scan.oldest_ms {
            line.push_str(&format!(
                " oldest_age_s {}",
                now_ms.saturating_sub(oldest) / 1000
            ));
        }
        if scan.skipped > 0 {
            line.push_str(&format!(" skipped_bytes {}", scan.skipped));
        }
        if scan.torn > 0 {
            line.push_str(&format!(" torn_bytes {}", scan.torn));
        }
        println!("{line}");
        total += scan.records;
    }
    println!("total pending {total}");
    Ok(())
}

async fn replay(dir: &Path, only: Option<SocketAddr>, rate: u32) -> anyhow::Result<()> {
    let (mut replayed, mut refused, mut left) = (0, 0, 0);
    for path in spool_files(dir)? {
        let scan =
            file::inspect(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let Some(server) = scan.server.clone() else {
            continue;
        };
        let address: SocketAddr = server
            .parse()
            .with_context(|| format!("{}: `{server}` is not an address", path.display()))?;
        if only.is_some_and(|o| o != address) {
            continue;
        }
        let (mut file, scan) = SpoolFile::open(&path).map_err(anyhow::Error::msg)?;
        let done = replay_file(&mut file, address, rate).await;
        let this_left = scan.records.saturating_sub(done.applied + done.refused);
        let mut line = format!(
            "{server} replayed {} refused {} left {this_left}",
            done.applied, done.refused
        );
        if let Some(error) = &done.error {
            line.push_str(&format!(" error {error}"));
        }
        println!("{line}");
        replayed += done.applied;
        refused += done.refused;
        left += this_left;
    }
    println!("total replayed {replayed} refused {refused} left {left}");
    if left > 0 {
        bail!("{left} deletes are left in {}", dir.display());
    }
    Ok(())
}

/// What a replay of one file did.
#[derive(Debug, Default)]
struct Replayed {
    applied: u64,
    refused: u64,
    error: Option<String>,
}

/// Replays `file` to `address` until it is empty or a batch fails.
async fn replay_file(file: &mut SpoolFile, address: SocketAddr, rate: u32) -> Replayed {
    let mut out = Replayed::default();
    let mut conn = None;
    loop {
        let batch = match file.read(batch_size(rate)) {
            Ok(batch) => batch,
            Err(e) => {
                out.error = Some(format!("cannot read {}: {e}", file.path().display()));
                return out;
            }
        };
        let started = tokio::time::Instant::now();
        let through = if batch.records.is_empty() {
            batch.through
        } else {
            let stream = match &mut conn {
                Some(stream) => stream,
                None => match connect(address, None, DEFAULT_CONNECT_TIMEOUT).await {
                    Ok(stream) => conn.insert(stream),
                    Err(e) => {
                        out.error = Some(e.to_string());
                        return out;
                    }
                },
            };
            let sent = send_batch(stream, &batch.records, DEFAULT_REQUEST_TIMEOUT).await;
            out.applied += sent.applied as u64;
            out.refused += sent.refused as u64;
            out.error = sent.error;
            match sent.done {
                n if n == batch.records.len() => batch.through,
                0 => return out,
                n => batch.records[n - 1].1,
            }
        };
        if let Err(e) = file.advance(through) {
            out.error = Some(format!("cannot move the checkpoint: {e}"));
            return out;
        }
        if out.error.is_some() || batch.records.is_empty() {
            return out;
        }
        let pace = Duration::from_secs(batch.records.len() as u64) / rate;
        tokio::time::sleep_until(started + pace).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> anyhow::Result<SpoolCommand> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn commands_parse_with_their_flags() {
        assert_eq!(
            parsed(&["show", "d"]).expect("show"),
            SpoolCommand::Show("d".into())
        );
        assert_eq!(
            parsed(&["replay", "d", "--server", "127.0.0.1:11211", "--rate", "5"]).expect("replay"),
            SpoolCommand::Replay {
                dir: "d".into(),
                server: Some("127.0.0.1:11211".parse().expect("addr")),
                rate: 5,
            }
        );
        for bad in [
            &["show"][..],
            &["frob", "d"],
            &["show", "d", "x"],
            &["replay", "d", "--rate", "0"],
            &["replay", "d", "--server"],
            &["replay", "d", "--server", "nope"],
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} parsed");
        }
    }
}
