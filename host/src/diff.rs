//! `switchyard diff OLD.toml NEW.toml`: what a configuration change does to where requests go,
//! before it is made. Both configurations are built as `switchyard route` builds one (plugins
//! compiled and `init`ed, nothing bound, nothing sent), the same requests are dry-run through
//! both route trees (`LocalGeneration::reach`), and the servers each request reaches are
//! compared: the fraction that moved, and a from→to matrix by server. With `--max-moved PCT` it
//! is a check for a pipeline: the exit status is 1 when more than PCT percent moved.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use switchyard_sdk::Op;

use crate::config::Config;
use crate::generation::{Generation, Target};
use crate::plugin::{ModuleCache, PluginEngine, RouteInput};
use crate::worker::LocalGeneration;

/// The command's usage, for `--help` and errors.
pub const USAGE: &str = "switchyard diff OLD.toml NEW.toml [--route NAME | --tenant NAME | \
                         --listener N] [--op OP] [--keys FILE | --trace FILE | --sample N] \
                         [--max-moved PCT] [--show-moved]";

/// How many keys `--sample` takes when no source is named.
const DEFAULT_SAMPLE: usize = 10_000;

/// A `switchyard diff` command line.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffCommand {
    /// The configuration as it runs.
    pub old: PathBuf,
    /// The configuration proposed.
    pub new: PathBuf,
    /// Where the requests start, in both.
    pub from: Start,
    /// The operation of `--keys` and `--sample` keys.
    pub op: Op,
    /// The requests.
    pub source: Source,
    /// Fail (exit status 1) when more than this percentage of requests moved.
    pub max_moved: Option<f64>,
    /// Print each request that moved.
    pub show_moved: bool,
}

/// Where the compared requests start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A pool or route, by name.
    Route(String),
    /// A tenant's root, its keys in its namespace.
    Tenant(String),
    /// A listener's route, by index in file order.
    Listener(usize),
}

impl Start {
    /// The start a command's `--route`, `--tenant` or `--listener` (`flag`) names.
    pub(crate) fn parse(command: &str, flag: &str, value: String) -> anyhow::Result<Start> {
        Ok(match flag {
            "--route" => Start::Route(value),
            "--tenant" => Start::Tenant(value),
            _ => Start::Listener(value.parse().ok().with_context(|| {
                format!("{command} --listener: `{value}` is not a listener index (0, 1, ...)")
            })?),
        })
    }
}

/// What requests are compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Keys, one per line (`-`: standard input).
    Keys(PathBuf),
    /// A recorded trace (`trace.rs`): each request with its own operation.
    Trace(PathBuf),
    /// `key:0` to `key:<N-1>`.
    Sample(usize),
}

/// Parses what follows `switchyard diff`.
pub fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<DiffCommand> {
    let usage = || format!("usage: {USAGE}");
    let mut files = Vec::new();
    let mut from = Start::Listener(0);
    let (mut op, mut source, mut max_moved, mut show_moved) = (Op::Get, None, None, false);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("diff: {arg} needs a value; {}", usage()))
        };
        match arg.as_str() {
            "--route" | "--tenant" | "--listener" => from = Start::parse("diff", &arg, value()?)?,
            "--op" => {
                let name = value()?;
                op = crate::introspect::op_named(&name).with_context(|| {
                    format!(
                        "diff --op: unknown operation `{name}` (one of {})",
                        crate::introspect::op_names().join(" ")
                    )
                })?;
            }
            "--keys" | "--trace" | "--sample" => {
                let text = value()?;
                if source.is_some() {
                    bail!(
                        "diff takes one of --keys, --trace and --sample; {}",
                        usage()
                    );
                }
                source = Some(match arg.as_str() {
                    "--keys" => Source::Keys(PathBuf::from(text)),
                    "--trace" => Source::Trace(PathBuf::from(text)),
                    _ => Source::Sample(
                        text.parse()
                            .ok()
                            .filter(|n| *n > 0)
                            .with_context(|| format!("diff --sample: `{text}` is no count"))?,
                    ),
                });
            }
            "--max-moved" => {
                let text = value()?;
                let pct = text.trim_end_matches('%');
                max_moved = Some(
                    pct.parse::<f64>()
                        .ok()
                        .filter(|p| (0.0..=100.0).contains(p))
                        .with_context(|| {
                            format!("diff --max-moved: `{text}` is no percentage (0 to 100)")
                        })?,
                );
            }
            "--show-moved" => show_moved = true,
            flag if flag.starts_with('-') && flag != "-" => {
                bail!("diff: unknown flag `{flag}`; {}", usage())
            }
            _ => files.push(PathBuf::from(arg)),
        }
    }
    let [old, new]: [PathBuf; 2] = files
        .try_into()
        .map_err(|_| anyhow::anyhow!("diff needs two config files; {}", usage()))?;
    Ok(DiffCommand {
        old,
        new,
        from,
        op,
        source: source.unwrap_or(Source::Sample(DEFAULT_SAMPLE)),
        max_moved,
        show_moved,
    })
}

/// One request to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub(crate) op: Op,
    pub(crate) key: Vec<u8>,
    pub(crate) flags: u32,
    pub(crate) exptime: i64,
    pub(crate) value_len: u32,
}

/// The requests of `source`.
pub(crate) fn probes(source: &Source, op: Op) -> anyhow::Result<Vec<Probe>> {
    let keyed = |key: Vec<u8>| Probe {
        op,
        key,
        flags: 0,
        exptime: 0,
        value_len: 0,
    };
    Ok(match source {
        Source::Sample(n) => (0..*n)
            .map(|i| keyed(format!("key:{i}").into_bytes()))
            .collect(),
        Source::Keys(file) => {
            let text = crate::plugin::cli::read_input(file)?;
            text.split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.is_empty())
                .map(|l| keyed(l.to_vec()))
                .collect()
        }
        Source::Trace(file) => {
            let text = crate::plugin::cli::read_input(file)?;
            crate::trace::parse(&file.display().to_string(), &text)?
                .requests
                .into_iter()
                .map(|r| Probe {
                    op: r.op,
                    key: r.key,
                    flags: r.flags,
                    exptime: r.exptime,
                    value_len: r.value_len,
                })
                .collect()
        }
    })
}

/// One configuration built for dry runs, and where the requests start in it.
pub(crate) struct Side {
    local: LocalGeneration,
    root: Target,
    /// A tenant's namespace, put in front of every key.
    namespace: Vec<u8>,
    listener: u32,
}

impl Side {
    pub(crate) fn build(
        path: &std::path::Path,
        from: &Start,
        engine: &PluginEngine,
    ) -> anyhow::Result<Side> {
        let mut config = Config::load(path)?;
        config.server.workers = 1;
        let generation = Generation::build(config, engine, &ModuleCache::default(), 0, None)
            .with_context(|| format!("{}", path.display()))?;
        let (root, namespace, listener) = match from {
            Start::Route(name) => {
                let found = generation.nodes.iter().position(|n| {
                    n.context.label == format!("routes.{name}")
                        || n.context.label == format!("pools.{name}")
                });
                let Some(n) = found else {
                    bail!(
                        "diff --route: {} has no pool or route `{name}`",
                        path.display()
                    );
                };
                (Target::Node(n), Vec::new(), 0)
            }
            Start::Tenant(name) => {
                let Some(tenant) = generation.tenants.iter().find(|t| *t.name == **name) else {
                    bail!("diff --tenant: {} has no tenant `{name}`", path.display());
                };
                (tenant.root, tenant.config.namespace.as_bytes().to_vec(), 0)
            }
            Start::Listener(i) => match generation.roots.get(*i) {
                Some(Some(root)) => (*root, Vec::new(), *i as u32),
                Some(None) => bail!(
                    "diff --listener {i}: in {} that listener serves tenants; name one with \
                     --tenant",
                    path.display()
                ),
                None => bail!(
                    "diff --listener {i}: {} has {} listener(s), numbered from 0",
                    path.display(),
                    generation.roots.len()
                ),
            },
        };
        Ok(Side {
            local: LocalGeneration::offline(Arc::new(generation)),
            root,
            namespace,
            listener,
        })
    }

    /// Where `probe` goes: the servers it reaches, as addresses joined by `+`, or `-` when
    /// the router would answer it without a server.
    pub(crate) fn place(&self, probe: &Probe, key: &mut Vec<u8>) -> String {
        key.clear();
        key.extend_from_slice(&self.namespace);
        key.extend_from_slice(&probe.key);
        let input = RouteInput {
            op: probe.op.code(),
            key,
            flags: probe.flags,
            exptime: probe.exptime,
            value_len: probe.value_len,
            listener: self.listener,
            identity: None,
        };
        let (reached, _) = self.local.reach(self.root, &input);
        if reached.is_empty() {
            return "-".into();
        }
        let destinations = &self.local.shared.destinations;
        // By address: the two configurations number their servers apart.
        let mut places: Vec<String> = reached
            .iter()
            .filter_map(|&d| destinations.get(d).map(|s| s.address.to_string()))
            .collect();
        places.sort_unstable();
        places.join("+")
    }
}

/// What the comparison found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Requests compared.
    pub requests: usize,
    /// Requests whose servers differ.
    pub moved: usize,
    /// (old place, new place) → requests, every request counted (the diagonal is what stayed).
    pub matrix: BTreeMap<(String, String), usize>,
    /// The requests that moved, with their old and new place, in order (with `--show-moved`).
    pub moved_keys: Vec<(String, String, String)>,
}

impl Diff {
    /// The share of requests that moved, in percent.
    pub fn moved_pct(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            100.0 * self.moved as f64 / self.requests as f64
        }
    }

    /// The report: the moved fraction, where the moved requests went, and the matrix.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "moved {:.1}% ({} of {} requests)",
            self.moved_pct(),
            self.moved,
            self.requests
        );
        let olds: Vec<&String> = unique(self.matrix.keys().map(|(o, _)| o));
        let news: Vec<&String> = unique(self.matrix.keys().map(|(_, n)| n));
        // Where the moved requests went, largest first, and whether each place is new.
        let mut to: BTreeMap<&String, usize> = BTreeMap::new();
        for ((o, n), count) in &self.matrix {
            if o != n {
                *to.entry(n).or_default() += count;
            }
        }
        let mut to: Vec<(&String, usize)> = to.into_iter().collect();
        to.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (place, count) in &to {
            let fresh = if olds.contains(place) { "" } else { " (new)" };
            let _ = writeln!(
                out,
                "  to {place}{fresh}: {count} ({:.1}% of those moved)",
                100.0 * *count as f64 / self.moved.max(1) as f64
            );
        }
        let width = olds
            .iter()
            .chain(&news)
            .map(|s| s.len())
            .max()
            .unwrap_or(1)
            .max("from \\ to".len());
        let _ = write!(out, "\n{:<width$}", "from \\ to");
        for n in &news {
            let _ = write!(out, "  {n:>width$}");
        }
        out.push('\n');
        for o in &olds {
            let _ = write!(out, "{o:<width$}");
            for n in &news {
                let count = self
                    .matrix
                    .get(&((*o).clone(), (*n).clone()))
                    .copied()
                    .unwrap_or(0);
                let _ = write!(out, "  {count:>width$}");
            }
            out.push('\n');
        }
        if !self.moved_keys.is_empty() {
            out.push('\n');
            for (key, o, n) in &self.moved_keys {
                let _ = writeln!(out, "{key} {o} -> {n}");
            }
        }
        out
    }
}

/// Each value once, in first-seen order sorted.
fn unique<'a>(values: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut all: Vec<&String> = values.collect();
    all.sort();
    all.dedup();
    all
}

/// Compares where `probes` go through `old` and `new`.
fn compare(old: &Side, new: &Side, probes: &[Probe], show_moved: bool) -> Diff {
    let mut diff = Diff::default();
    let mut key = Vec::with_capacity(256);
    for probe in probes {
        let before = old.place(probe, &mut key);
        let after = new.place(probe, &mut key);
        diff.requests += 1;
        if before != after {
            diff.moved += 1;
            if show_moved {
                diff.moved_keys.push((
                    String::from_utf8_lossy(&probe.key).into_owned(),
                    before.clone(),
                    after.clone(),
                ));
            }
        }
        *diff.matrix.entry((before, after)).or_default() += 1;
    }
    diff
}

/// Builds both configurations, compares, prints the report; `Ok(false)` when more moved than
/// `--max-moved` allows.
pub fn run(command: DiffCommand) -> anyhow::Result<bool> {
    let engine = PluginEngine::new()?;
    let old = Side::build(&command.old, &command.from, &engine)?;
    let new = Side::build(&command.new, &command.from, &engine)?;
    let probes = probes(&command.source, command.op)?;
    if probes.is_empty() {
        bail!("diff: no requests to compare");
    }
    let diff = compare(&old, &new, &probes, command.show_moved);
    let mut report = diff.render();
    let within = command.max_moved.is_none_or(|max| diff.moved_pct() <= max);
    if let Some(max) = command.max_moved {
        report.push_str(&if within {
            format!("\nwithin --max-moved {max}%\n")
        } else {
            format!(
                "\nover --max-moved {max}%: {:.1}% moved\n",
                diff.moved_pct()
            )
        });
    }
    crate::cli::out(&report);
    Ok(within)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> anyhow::Result<DiffCommand> {
        parse(line.split_whitespace().map(str::to_string))
    }

    #[test]
    fn reads_a_command_line() {
        let command =
            args("a.toml b.toml --route main --sample 500 --max-moved 30%").expect("valid");
        assert_eq!(command.from, Start::Route("main".into()));
        assert_eq!(command.source, Source::Sample(500));
        assert_eq!(command.max_moved, Some(30.0));
        let command = args("a.toml b.toml").expect("valid");
        assert_eq!(command.source, Source::Sample(DEFAULT_SAMPLE));
        assert_eq!(command.from, Start::Listener(0));
        for (line, error) in [
            ("a.toml", "two config files"),
            ("a.toml b.toml c.toml", "two config files"),
            ("a.toml b.toml --keys k --sample 3", "one of --keys"),
            ("a.toml b.toml --max-moved 120", "no percentage"),
            ("a.toml b.toml --sample 0", "no count"),
            ("a.toml b.toml --bogus", "unknown flag"),
        ] {
            let e = args(line).expect_err(line).to_string();
            assert!(e.contains(error), "{line}: {e}");
        }
    }

    #[test]
    fn the_report_names_where_moved_requests_went() {
        let mut diff = Diff::default();
        for (o, n, count) in [("a", "a", 3), ("b", "b", 3), ("a", "c", 1), ("b", "c", 1)] {
            diff.matrix.insert((o.into(), n.into()), count);
            diff.requests += count;
            if o != n {
                diff.moved += count;
            }
        }
        let report = diff.render();
        assert!(
            report.starts_with("moved 25.0% (2 of 8 requests)\n"),
            "{report}"
        );
        assert!(
            report.contains("  to c (new): 2 (100.0% of those moved)\n"),
            "{report}"
        );
    }
}
