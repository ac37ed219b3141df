//! `switchyard replay FILE --config F`: a recorded trace (`switchyard tap`'s capture, or any
//! file `trace.rs` reads) routed through a configuration's route tree as `switchyard route`
//! routes one request (plugins called, nothing sent): each request's servers, and how many went
//! to each. Routed through the configuration it was captured on, it gives the decisions the
//! router made.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::diff::{Side, Source, Start};
use crate::plugin::PluginEngine;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str = "switchyard replay FILE --config F [--route NAME | --tenant NAME | \
                         --listener N] [--summary]";

/// A `switchyard replay` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCommand {
    /// The trace.
    pub trace: PathBuf,
    /// The configuration.
    pub config: PathBuf,
    /// Where the requests start.
    pub from: Start,
    /// Only the count per place.
    pub summary: bool,
}

/// Parses what follows `switchyard replay`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<ReplayCommand> {
    let usage = || format!("usage: {USAGE}");
    let (mut trace, mut config, mut from, mut summary) = (None, None, Start::Listener(0), false);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("replay: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value()?)),
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
    Ok(ReplayCommand {
        trace: trace.with_context(|| format!("replay needs a trace FILE; {}", usage()))?,
        config: config.with_context(|| format!("replay needs --config F; {}", usage()))?,
        from,
        summary,
    })
}

/// Routes every request of the trace and prints where each goes, then the count per place.
pub fn run(command: &ReplayCommand) -> anyhow::Result<()> {
    let engine = PluginEngine::new()?;
    let side = Side::build(&command.config, &command.from, &engine)?;
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
