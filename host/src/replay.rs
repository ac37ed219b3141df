//! `switchyard replay FILE --config F`: a recorded trace (`switchyard tap`'s capture, or any
//! file `trace.rs` reads) routed through a configuration's route tree as `switchyard route`
//! routes one request (plugins called, nothing sent): each request's servers, and how many went
//! to each. Routed through the configuration it was captured on, it gives the decisions the
//! router made.
//!
//! `switchyard replay FILE --router HOST:PORT` sends the trace to a running router (or any
//! memcached) instead, one request at a time, as a client would (a storage command with a value
//! of its recorded size), and counts the replies by kind: real traffic for a candidate
//! configuration or an experiment, replayed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::diff::{Side, Source, Start};
use crate::plugin::PluginEngine;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str = "switchyard replay FILE --config F [--route NAME | --tenant NAME | \
                         --listener N] [--summary]\n       switchyard replay FILE --router \
                         HOST:PORT";

/// A `switchyard replay` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCommand {
    /// The trace.
    pub trace: PathBuf,
    /// The configuration, whose route tree it runs through.
    pub config: Option<PathBuf>,
    /// A router to send it to instead.
    pub router: Option<String>,
    /// Where the requests start.
    pub from: Start,
    /// Only the count per place.
    pub summary: bool,
}

/// Parses what follows `switchyard replay`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<ReplayCommand> {
    let usage = || format!("usage: {USAGE}");
    let (mut trace, mut config, mut from, mut summary) = (None, None, Start::Listener(0), false);
    let mut router = None;
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("replay: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value()?)),
            "--router" => router = Some(value()?),
            "--route" | "--tenant" | "--listener" => {
                from = Start::parse("replay", &arg, value()?)?;
            }
            "--summary" => summary = true,
            flag if flag.starts_with('-') && flag != "-" => {
                bail!("replay: unknown flag `{flag}`; {}", usage())
            }
            _ if trace.is_none() => trace = Some(PathBuf::from(arg)),
            _ => bail!("replay takes one trace file; {}", usage()),
        }
    }
    if config.is_some() == router.is_some() {
        bail!("replay needs --config F or --router HOST:PORT; {}", usage());
    }
    Ok(ReplayCommand {
        trace: trace.with_context(|| format!("replay needs a trace FILE; {}", usage()))?,
        config,
        router,
        from,
        summary,
    })
}

/// Routes every request of the trace and prints where each goes, then the count per place;
/// or sends them to `--router`.
pub fn run(command: &ReplayCommand) -> anyhow::Result<()> {
    let Some(config) = &command.config else {
        let router = command.router.as_deref().unwrap_or_default();
        return drive(&command.trace, router);
    };
    let engine = PluginEngine::new()?;
    let side = Side::build(config, &command.from, &engine)?;
    let probes = crate::diff::probes(
        &Source::Trace(command.trace.clone()),
        switchyard_sdk::Op::Get,
    )?;
    let mut out = String::new();
    let mut by_place: BTreeMap<String, usize> = BTreeMap::new();
    let mut key = Vec::with_capacity(256);
    for probe in &probes {
        let place = side.place(probe, &mut key);
        if !command.summary {
            let _ = writeln!(
                out,
                "{} {} {place}",
                probe.op.name().unwrap_or("unknown"),
                String::from_utf8_lossy(&probe.key)
            );
        }
        *by_place.entry(place).or_default() += 1;
    }
    if !command.summary {
        out.push('\n');
    }
    let _ = writeln!(out, "requests {}", probes.len());
    for (place, n) in &by_place {
        let _ = writeln!(
            out,
            "{place} {n} ({:.1}%)",
            100.0 * *n as f64 / probes.len().max(1) as f64
        );
    }
    crate::cli::out(&out);
    Ok(())
}

/// Sends every request of `trace` to `router`, one at a time, and prints the replies by kind.
fn drive(trace: &std::path::Path, router: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let probes = crate::diff::probes(&Source::Trace(trace.to_path_buf()), switchyard_sdk::Op::Get)?;
    let stream = std::net::TcpStream::connect(router)
        .with_context(|| format!("replay: cannot connect to {router}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut writer = std::io::BufWriter::new(stream);
    let mut by_reply: BTreeMap<String, usize> = BTreeMap::new();
    let (mut sent, mut skipped) = (0usize, 0usize);
    let started = std::time::Instant::now();
    let mut request = Vec::with_capacity(512);
    for probe in &probes {
        request.clear();
        if !request_for(probe, &mut request) {
            skipped += 1;
            continue;
        }
        writer.write_all(&request)?;
        writer.flush()?;
        let kind =
            read_reply(&mut reader).with_context(|| format!("replay: reading {router}'s reply"))?;
        *by_reply.entry(kind).or_default() += 1;
        sent += 1;
    }
    let took = started.elapsed().as_secs_f64();
    let mut out = format!(
        "sent {sent} requests to {router} in {took:.2} s ({:.0}/s)",
        sent as f64 / took.max(1e-9)
    );
    if skipped > 0 {
        let _ = write!(out, "; skipped {skipped} (a key no text command can carry)");
    }
    out.push('\n');
    for (kind, n) in &by_reply {
        let _ = writeln!(out, "{kind} {n}");
    }
    crate::cli::out(&out);
    Ok(())
}

/// The text-protocol request for `probe` into `out` (a value of its recorded size, of `x`s);
/// `false` for a key no text command can carry (a space, a control or non-ASCII byte, over
/// 250 bytes).
fn request_for(probe: &crate::diff::Probe, out: &mut Vec<u8>) -> bool {
    use switchyard_sdk::Op;
    let key = &probe.key;
    if key.is_empty()
        || key.len() > 250
        || key
            .iter()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return false;
    }
    let (flags, exptime, len) = (probe.flags, probe.exptime, probe.value_len as usize);
    let mut line = |verb: &str, rest: String| {
        out.extend_from_slice(verb.as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.extend_from_slice(rest.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    match probe.op {
        Op::Set | Op::Add | Op::Replace | Op::Append | Op::Prepend => {
            line(
                probe.op.name().unwrap_or("set"),
                format!(" {flags} {exptime} {len}"),
            );
        }
        // A recorded `cas` has no unique this server would know: sent as a `set`.
        Op::Cas => line("set", format!(" {flags} {exptime} {len}")),
        Op::MetaSet => line("ms", format!(" {len} F{flags} T{exptime}")),
        Op::Delete => line("delete", String::new()),
        Op::MetaDelete => line("md", String::new()),
        Op::Incr | Op::Decr => line(probe.op.name().unwrap_or("incr"), " 1".into()),
        Op::MetaArithmetic => line("ma", String::new()),
        Op::Touch => line("touch", format!(" {exptime}")),
        Op::Gat | Op::Gats => line(probe.op.name().unwrap_or("gat"), String::new()),
        Op::MetaGet => line("mg", " v".into()),
        Op::MetaDebug => line("me", String::new()),
        _ => line(probe.op.name().unwrap_or("get"), String::new()),
    }
    if matches!(probe.op, Op::Gat | Op::Gats) {
        // `gat <exptime> <key>`: the exptime comes first.
        out.clear();
        out.extend_from_slice(
            format!("{} {exptime} ", probe.op.name().unwrap_or("gat")).as_bytes(),
        );
        out.extend_from_slice(key);
        out.extend_from_slice(b"\r\n");
    }
    if probe.op.is_storage() {
        out.resize(out.len() + len, b'x');
        out.extend_from_slice(b"\r\n");
    }
    true
}

/// Reads one whole reply; what kind it is: `hit` or `miss` for a retrieval, else its first
/// word (`STORED`, `DELETED`, `HD`, `SERVER_ERROR`, ...), a number's `number`.
fn read_reply(reader: &mut impl std::io::BufRead) -> anyhow::Result<String> {
    use std::io::{BufRead as _, Read as _};
    let mut line = Vec::with_capacity(128);
    let mut hit = false;
    loop {
        line.clear();
        // A line is bounded; a value is skipped, never held.
        if (&mut *reader).take(8192).read_until(b'\n', &mut line)? == 0 {
            bail!("the connection closed");
        }
        let text = String::from_utf8_lossy(&line);
        let words: Vec<&str> = text.split_whitespace().collect();
        let data = match words.as_slice() {
            ["VALUE", _, _, len, ..] => len.parse::<u64>().ok(),
            ["VA", len, ..] => len.parse::<u64>().ok(),
            _ => None,
        };
        if let Some(len) = data {
            let want = len.saturating_add(2);
            let skipped = std::io::copy(&mut (&mut *reader).take(want), &mut std::io::sink())?;
            if skipped < want {
                bail!("the connection closed in a value");
            }
            if words[0] == "VA" {
                return Ok("hit".into());
            }
            hit = true;
            continue;
        }
        let first = words.first().copied().unwrap_or("");
        return Ok(match first {
            "END" if hit => "hit".into(),
            "END" | "EN" => "miss".into(),
            n if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => "number".into(),
            other => other.to_string(),
        });
    }
}
