//! `bench/run`: direct memcached, twemproxy and Switchyard under identical load, in one run,
//! interleaved over rounds, reported as medians with their range and as ratios; and over TLS,
//! memcached `-Z` directly against Switchyard with TLS on both sides and in plaintext.
//!
//! - [`procs`]: the processes under test (three memcached, nutcracker, Switchyard; for the TLS
//!   workloads three memcached `-Z` and Switchyard twice) and what `/proc` says they spend.
//! - [`certs`]: the TLS workloads' throwaway CA, server and client certificates (rcgen).
//! - [`workloads`]: what each workload sends and with which driver.
//! - [`drive`]: one workload against one target: `loadgen`, memcaslap, idle connections.
//! - [`report`]: medians and ranges, the terminal and Markdown tables, the CSV.
//! - [`chart`]: the PNG.

mod certs;
mod chart;
mod drive;
mod procs;
mod report;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use certs::Certs;
use drive::{Endpoint, Measured};
use report::{Sample, Summary, Target};
use workloads::{Kind, Rate, Workload};

const USAGE: &str = "\
usage: bench/run [--quick] [options]

Starts three memcached, twemproxy (nutcracker, ketama/md5) and Switchyard (ketama plugin) over
them, drives all three with the same load, interleaved over rounds, and reports medians,
ranges and ratios. Writes bench/results/<date>.csv and .png.

The tls-* workloads run on three memcached with TLS (-Z, mutual TLS, certificates made for the
run), each also listening in plaintext: loadgen over TLS to them directly (memcached-tls),
Switchyard with a TLS listener and a TLS pool (switchyard-tls), and Switchyard in plaintext on
both sides (switchyard). twemproxy has no TLS and is not measured there.

  --quick               smoke run, under a minute: 1 round of 1 s, the quick workloads
  --rounds N            rounds; each runs every target once, in a rotated order (default 3)
  --duration SECS       measured seconds per run (default 5)
  --warmup SECS         unmeasured seconds before each run (default 1)
  --workers N           Switchyard worker threads (default 1: twemproxy has one thread)
  --workloads a,b       only these workloads (default: all; see the list below)
  --targets a,b         only these of memcached, twemproxy, switchyard, switchyard-bare
                        (stats timings and hot keys off), switchyard-tenants (a two-tenant
                        gateway, the load through one), switchyard-dryrun-10 and
                        switchyard-dryrun-100 (a dry-run experiment on the pool at 10% and
                        100% of the keys), switchyard-shadow-10 and switchyard-shadow-100
                        (a shadow experiment copying 10% and 100% of the keys' requests to
                        a second pool over the same servers), memcached-tls, switchyard-tls
                        (default: all)
  --record              also write bench/RESULTS.md from this run
  --results DIR         where the CSV and PNG go (default bench/results)
  --switchyard PATH     the router binary (default target/release/switchyard)
  --loadgen PATH        the load generator (default target/release/loadgen)
  -h, --help            print this
";

#[derive(Debug)]
struct Options {
    quick: bool,
    rounds: usize,
    duration: f64,
    warmup: f64,
    workers: usize,
    workloads: Option<Vec<String>>,
    targets: Vec<Target>,
    record: bool,
    results: PathBuf,
    switchyard: PathBuf,
    loadgen: PathBuf,
}

fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        quick: false,
        rounds: 3,
        duration: 5.0,
        warmup: 1.0,
        workers: 1,
        workloads: None,
        targets: Target::ALL.to_vec(),
        record: false,
        results: PathBuf::from("bench/results"),
        switchyard: PathBuf::from("target/release/switchyard"),
        loadgen: PathBuf::from("target/release/loadgen"),
    };
    let (mut rounds, mut duration, mut warmup) = (None, None, None);
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--rounds" => rounds = Some(number::<usize>(&arg, &value()?)?.max(1)),
            "--duration" => duration = Some(number::<f64>(&arg, &value()?)?),
            "--warmup" => warmup = Some(number::<f64>(&arg, &value()?)?),
            "--workers" => o.workers = number::<usize>(&arg, &value()?)?.max(1),
            "--workloads" => {
                o.workloads = Some(value()?.split(',').map(str::to_string).collect());
            }
            "--targets" => {
                o.targets = value()?
                    .split(',')
                    .map(|t| {
                        Target::parse(t).with_context(|| format!("--targets: no target `{t}`"))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--record" => o.record = true,
            "--results" => o.results = PathBuf::from(value()?),
            "--switchyard" => o.switchyard = PathBuf::from(value()?),
            "--loadgen" => o.loadgen = PathBuf::from(value()?),
            "-h" | "--help" => {
                print!("{USAGE}\nworkloads:\n");
                let all = workloads::all();
                let width = all.iter().map(|w| w.name.len()).max().unwrap_or(0);
                for w in all {
                    println!(
                        "  {:<width$} {}{}",
                        w.name,
                        w.about,
                        if w.quick { " (quick)" } else { "" }
                    );
                }
                return Ok(None);
            }
            other => bail!("unknown argument `{other}` (--help lists them)"),
        }
    }
    if o.quick {
        (o.rounds, o.duration, o.warmup) = (1, 1.0, 0.3);
    }
    o.rounds = rounds.unwrap_or(o.rounds);
    o.duration = duration.unwrap_or(o.duration);
    o.warmup = warmup.unwrap_or(o.warmup);
    if !(o.duration > 0.0 && o.warmup >= 0.0) {
        bail!("--duration must be above 0 and --warmup at least 0");
    }
    Ok(Some(o))
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> anyhow::Result<T> {
    v.parse()
        .ok()
        .with_context(|| format!("{flag}: `{v}` is not a number"))
}

/// The workloads to run, in run order; `fixed-rate` brings in `get-set`, whose peak it needs.
fn selected(o: &Options) -> anyhow::Result<Vec<Workload>> {
    let all = workloads::all();
    let names: Vec<String> = match &o.workloads {
        None if o.quick => all
            .iter()
            .filter(|w| w.quick)
            .map(|w| w.name.to_string())
            .collect(),
        None => all.iter().map(|w| w.name.to_string()).collect(),
        Some(names) => {
            for n in names {
                if !all.iter().any(|w| w.name == n) {
                    bail!("--workloads: no workload `{n}` (--help lists them)");
                }
            }
            let mut names = names.clone();
            if names.iter().any(|n| n == "fixed-rate") && !names.iter().any(|n| n == "get-set") {
                names.push("get-set".into());
            }
            names
        }
    };
    Ok(all
        .into_iter()
        .filter(|w| names.iter().any(|n| n == w.name))
        .collect())
}

/// The soft limit on open files, from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Connections each memcached takes: all the idle-connection runs need, within the open-file
/// limit it inherits.
fn memcached_conns(files: u64) -> u64 {
    files.saturating_sub(64).clamp(1024, 32_768)
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The processes of a run.
struct Fleet {
    servers: Vec<procs::Service>,
    twemproxy: Option<procs::Service>,
    switchyard: Option<procs::Service>,
    /// Switchyard with `[stats] timings` and `hotkeys` off.
    switchyard_bare: Option<procs::Service>,
    /// Switchyard as a two-tenant gateway.
    switchyard_tenants: Option<procs::Service>,
    /// Switchyard running a dry-run experiment on its pool, at 10% and 100% of the keys.
    switchyard_dry_run_10: Option<procs::Service>,
    switchyard_dry_run_100: Option<procs::Service>,
    /// Switchyard running a shadow experiment on its pool, at 10% and 100% of the keys.
    switchyard_shadow_10: Option<procs::Service>,
    switchyard_shadow_100: Option<procs::Service>,
}

impl Fleet {
    /// Three memcached, and the proxies among `targets` in front of them; Switchyard is the
    /// `switchyard` binary.
    fn start(
        o: &Options,
        switchyard: &Path,
        targets: &[Target],
        files: u64,
        dir: &Path,
    ) -> anyhow::Result<Fleet> {
        let servers = (0..3)
            .map(|_| procs::memcached(memcached_conns(files)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let addrs: Vec<_> = servers.iter().map(|s| s.addr).collect();
        let twemproxy = targets
            .contains(&Target::Twemproxy)
            .then(|| procs::nutcracker(&addrs, dir))
            .transpose()?;
        let switchyard_bare = targets
            .contains(&Target::SwitchyardBare)
            .then(|| procs::switchyard_bare(switchyard, &addrs, o.workers, dir))
            .transpose()?;
        let switchyard_tenants = targets
            .contains(&Target::SwitchyardTenants)
            .then(|| procs::switchyard_tenants(switchyard, &addrs, o.workers, dir))
            .transpose()?;
        // Switchyard running a `kind` experiment at `sample` of the keys.
        let experiment = |target: Target, kind: procs::ExperimentKind, sample: f64| {
            targets
                .contains(&target)
                .then(|| {
                    procs::switchyard_experiment(
                        target.name(),
                        switchyard,
                        &addrs,
                        o.workers,
                        dir,
                        kind,
                        sample,
                    )
                })
                .transpose()
        };
        let switchyard_dry_run_10 = experiment(
            Target::SwitchyardDryRun10,
            procs::ExperimentKind::DryRun,
            0.1,
        )?;
        let switchyard_dry_run_100 = experiment(
            Target::SwitchyardDryRun100,
            procs::ExperimentKind::DryRun,
            1.0,
        )?;
        let switchyard_shadow_10 = experiment(
            Target::SwitchyardShadow10,
            procs::ExperimentKind::Shadow,
            0.1,
        )?;
        let switchyard_shadow_100 = experiment(
            Target::SwitchyardShadow100,
            procs::ExperimentKind::Shadow,
            1.0,
        )?;
        let switchyard = targets
            .contains(&Target::Switchyard)
            .then(|| procs::switchyard(switchyard, &addrs, o.workers, dir))
            .transpose()?;
        Ok(Fleet {
            servers,
            twemproxy,
            switchyard,
            switchyard_bare,
            switchyard_tenants,
            switchyard_dry_run_10,
            switchyard_dry_run_100,
            switchyard_shadow_10,
            switchyard_shadow_100,
        })
    }

    fn endpoint(&self, t: Target) -> anyhow::Result<Endpoint<'_>> {
        let servers = &self.servers[..];
        let proxy = match t {
            Target::Memcached => {
                return Ok(Endpoint {
                    addrs: servers.iter().map(|s| s.addr).collect(),
                    proxy: None,
                    servers,
                    count_allocations: false,
                    tls: None,
                });
            }
            Target::Twemproxy => self.twemproxy.as_ref(),
            Target::Switchyard => self.switchyard.as_ref(),
            Target::SwitchyardBare => self.switchyard_bare.as_ref(),
            Target::SwitchyardTenants => self.switchyard_tenants.as_ref(),
            Target::SwitchyardDryRun10 => self.switchyard_dry_run_10.as_ref(),
            Target::SwitchyardDryRun100 => self.switchyard_dry_run_100.as_ref(),
            Target::SwitchyardShadow10 => self.switchyard_shadow_10.as_ref(),
            Target::SwitchyardShadow100 => self.switchyard_shadow_100.as_ref(),
            Target::MemcachedTls | Target::SwitchyardTls => {
                bail!("{} belongs to the TLS workloads", t.name())
            }
        };
        Ok(Endpoint {
            addrs: proxy.map(|p| p.addr).into_iter().collect(),
            proxy,
            servers,
            count_allocations: false,
            tls: None,
        })
    }
}

/// The processes of the TLS workloads: three memcached with TLS (`-Z`), each also listening in
/// plaintext, and in front of them Switchyard twice: with TLS on both sides (a TLS listener,
/// a TLS pool to their TLS ports) and in plaintext on both sides (to their plaintext ports),
/// so that the two differ in TLS alone.
struct TlsFleet {
    certs: Certs,
    servers: Vec<procs::Service>,
    /// Plaintext on both sides.
    switchyard: Option<procs::Service>,
    /// TLS on both sides.
    switchyard_tls: Option<procs::Service>,
}

impl TlsFleet {
    /// The certificates (in `dir/tls`), the servers, and the Switchyards among `targets`.
    fn start(o: &Options, targets: &[Target], files: u64, dir: &Path) -> anyhow::Result<TlsFleet> {
        let certs = Certs::generate(&dir.join("tls"))?;
        let servers = (0..3)
            .map(|_| procs::memcached_tls(memcached_conns(files), &certs))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let plain: Vec<_> = servers.iter().map(|s| s.addr).collect();
        let tls: Vec<_> = servers.iter().filter_map(|s| s.tls_addr).collect();
        let switchyard = targets
            .contains(&Target::Switchyard)
            .then(|| {
                procs::switchyard_as(
                    "switchyard-plaintext",
                    &o.switchyard,
                    &plain,
                    o.workers,
                    dir,
                    None,
                )
            })
            .transpose()?;
        let switchyard_tls = targets
            .contains(&Target::SwitchyardTls)
            .then(|| {
                procs::switchyard_as(
                    "switchyard-tls",
                    &o.switchyard,
                    &tls,
                    o.workers,
                    dir,
                    Some(&certs),
                )
            })
            .transpose()?;
        Ok(TlsFleet {
            certs,
            servers,
            switchyard,
            switchyard_tls,
        })
    }

    fn endpoint(&self, t: Target) -> anyhow::Result<Endpoint<'_>> {
        let servers = &self.servers[..];
        let (proxy, tls) = match t {
            Target::MemcachedTls => {
                return Ok(Endpoint {
                    addrs: servers.iter().filter_map(|s| s.tls_addr).collect(),
                    proxy: None,
                    servers,
                    count_allocations: false,
                    tls: Some(&self.certs),
                });
            }
            Target::Switchyard => (self.switchyard.as_ref(), None),
            Target::SwitchyardTls => (self.switchyard_tls.as_ref(), Some(&self.certs)),
            Target::Memcached
            | Target::Twemproxy
            | Target::SwitchyardBare
            | Target::SwitchyardTenants
            | Target::SwitchyardDryRun10
            | Target::SwitchyardDryRun100
            | Target::SwitchyardShadow10
            | Target::SwitchyardShadow100 => {
                bail!("{} is not measured over TLS", t.name())
            }
        };
        Ok(Endpoint {
            addrs: proxy.map(|p| p.addr).into_iter().collect(),
            proxy,
            servers,
            count_allocations: false,
            tls,
        })
    }
}

fn run(o: &Options) -> anyhow::Result<()> {
    let workloads = selected(o)?;
    for (what, path) in [("switchyard", &o.switchyard), ("loadgen", &o.loadgen)] {
        if !path.is_file() {
            bail!(
                "{} does not exist: build it with `cargo build --release -p {}` (bench/run does)",
                path.display(),
                if what == "loadgen" {
                    "switchyard-loadgen"
                } else {
                    "switchyard"
                }
            );
        }
    }
    let files = open_file_limit().unwrap_or(1024);
    let dir = procs::scratch_dir()?;

    let fleet = Fleet::start(o, &o.switchyard, &o.targets, files, &dir)?;
    // Started at the first TLS workload.
    let mut tls_fleet: Option<TlsFleet> = None;

    let date = command_output("date", &["-u", "+%Y-%m-%d-%H%M"]);
    eprintln!(
        "bench: {} rounds × {} s (+{} s warm-up); targets {}; Switchyard workers {}",
        o.rounds,
        o.duration,
        o.warmup,
        o.targets
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        o.workers
    );

    let mut samples: Vec<Sample> = Vec::new();
    for w in &workloads {
        if let Kind::IdleMemory { conns } = w.kind
            && (conns as u64) + 4096 > files
        {
            eprintln!(
                "bench: skipping {}: needs {conns} open files and `ulimit -n` is {files}",
                w.name
            );
            continue;
        }
        let rate = match &w.kind {
            Kind::Load(l) => match l.rate {
                Rate::Closed => None,
                Rate::OfPeak(fraction) => {
                    let peak = [Target::Twemproxy, Target::Switchyard]
                        .into_iter()
                        .find_map(|t| {
                            report::summarise(&samples, "get-set", t).and_then(|s| s.throughput)
                        });
                    let Some(peak) = peak else {
                        eprintln!(
                            "bench: skipping {}: no get-set peak to take a fraction of",
                            w.name
                        );
                        continue;
                    };
                    Some(peak.median * fraction)
                }
            },
            _ => None,
        };
        let targets: Vec<Target> = o
            .targets
            .iter()
            .copied()
            .filter(|t| w.targets().contains(t))
            .collect();
        if targets.is_empty() {
            eprintln!(
                "bench: skipping {}: none of its targets ({}) is among --targets{}",
                w.name,
                w.targets()
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                if w.tls { " (twemproxy has no TLS)" } else { "" }
            );
            continue;
        }
        if w.tls && tls_fleet.is_none() {
            tls_fleet = Some(TlsFleet::start(o, &o.targets, files, &dir)?);
        }
        for round in 0..o.rounds {
            // Rotated each round (ABC, BCA, CAB), so no target always runs first or last.
            let mut order = targets.clone();
            let turn = round % order.len().max(1);
            order.rotate_left(turn);
            for target in order {
                let endpoint = if w.tls {
                    tls_fleet
                        .as_ref()
                        .context("the TLS workloads' processes")?
                        .endpoint(target)?
                } else {
                    fleet.endpoint(target)?
                };
                procs::flush_all(endpoint.servers)?;
                let m = match &w.kind {
                    Kind::Load(load) => {
                        drive::loadgen(&o.loadgen, &endpoint, load, rate, o.duration, o.warmup)
                    }
                    Kind::Memcaslap { conns } => drive::memcaslap(&endpoint, *conns, o.duration),
                    // On processes of its own: memory freed by earlier workloads' connections
                    // would be reused and hide the cost.
                    Kind::IdleMemory { conns } => {
                        Fleet::start(o, &o.switchyard, &[target], files, &dir)
                            .and_then(|fresh| drive::idle_memory(&fresh.endpoint(target)?, *conns))
                    }
                }
                .with_context(|| format!("{} on {}, round {}", w.name, target.name(), round + 1))?;
                eprintln!(
                    "bench: {:<14} {:<14} round {}: {}",
                    w.name,
                    target.name(),
                    round + 1,
                    brief(&m)
                );
                samples.push(Sample {
                    workload: w.name,
                    target,
                    round: round + 1,
                    m,
                });
            }
        }
    }
    drop(fleet);
    drop(tls_fleet);

    // Heap allocations per request, in a build of Switchyard that counts them: after the
    // runs above, so its counting costs none of their figures.
    let counting = std::env::current_exe()?.with_file_name("switchyard-count-allocs");
    if o.targets.contains(&Target::Switchyard) && counting.is_file() {
        let m = allocations(o, &counting, files, &dir)?;
        eprintln!("bench: allocations per request: {}", brief(&m));
        samples.push(Sample {
            workload: "allocations",
            target: Target::Switchyard,
            round: 1,
            m,
        });
    }

    let mut summaries: Vec<Summary> = Vec::new();
    for w in workloads.iter().map(|w| w.name).chain(["allocations"]) {
        for t in Target::ALL {
            summaries.extend(report::summarise(&samples, w, t));
        }
    }
    let mut text = String::new();
    for w in &workloads {
        let mine: Vec<Summary> = summaries
            .iter()
            .filter(|s| s.workload == w.name)
            .cloned()
            .collect();
        if !mine.is_empty() {
            text.push_str(&report::workload_table(w, &mine));
            text.push('\n');
        }
    }
    let ratios = report::ratio_table(&workloads, &summaries);
    println!("{text}## Ratios (medians)\n\n{ratios}");

    std::fs::create_dir_all(&o.results)
        .with_context(|| format!("create {}", o.results.display()))?;
    let csv_path = o.results.join(format!("{date}.csv"));
    std::fs::write(&csv_path, report::csv(&date, &samples))
        .with_context(|| format!("write {}", csv_path.display()))?;
    let png_path = o.results.join(format!("{date}.png"));
    let order: Vec<&str> = workloads
        .iter()
        .filter(|w| matches!(w.kind, Kind::Load(_) | Kind::Memcaslap { .. }))
        .map(|w| w.name)
        .collect();
    let title = format!(
        "Switchyard vs twemproxy vs direct memcached — {date}, {} rounds × {} s",
        o.rounds, o.duration
    );
    if let Err(e) = chart::draw(&png_path, &title, &order, &summaries) {
        eprintln!("bench: no chart: {e:#}");
    }
    eprintln!(
        "bench: wrote {} and {}",
        csv_path.display(),
        png_path.display()
    );

    if o.record {
        let tls = workloads.iter().any(|w| w.tls);
        let md = results_md(o, &date, &png_path, &text, &ratios, tls);
        std::fs::write("bench/RESULTS.md", md).context("write bench/RESULTS.md")?;
        eprintln!("bench: wrote bench/RESULTS.md");
    }
    router_logs(&dir);
    let _removed = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Says what the routers logged (at `warn` and above), before the scratch directory goes: a
/// TLS error under load shows up here rather than only as loadgen's error count.
fn router_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "log")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("switchyard"))
        })
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        eprintln!(
            "bench: {} logged {} line(s); the first:",
            log.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            lines.len()
        );
        for line in lines.iter().take(5) {
            eprintln!("bench:   {}", strip_ansi(line));
        }
    }
}

/// `line` without its terminal colour sequences (`ESC [ ... m`), which the router writes to
/// its log file too.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // The introducer's `[`, parameters, and the final byte (`@` to `~`).
            for c in chars.by_ref().skip(1) {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// get-set against the counting build: allocations during the measured window per request.
fn allocations(o: &Options, counting: &Path, files: u64, dir: &Path) -> anyhow::Result<Measured> {
    let fleet = Fleet::start(o, counting, &[Target::Switchyard], files, dir)?;
    let endpoint = Endpoint {
        count_allocations: true,
        ..fleet.endpoint(Target::Switchyard)?
    };
    let get_set = workloads::all()
        .into_iter()
        .find_map(|w| match w.kind {
            Kind::Load(l) if w.name == "get-set" => Some(l),
            _ => None,
        })
        .context("the get-set workload")?;
    drive::loadgen(&o.loadgen, &endpoint, &get_set, None, o.duration, o.warmup)
}

fn brief(m: &Measured) -> String {
    if let Some(b) = m.idle_conn_bytes {
        return format!("{:.0} bytes per idle connection", b);
    }
    let mut s = format!("{:.0} req/s", m.throughput);
    if let Some(p) = m.p99_us {
        s.push_str(&format!(", p99 {p:.0} µs"));
    }
    if let Some(c) = m.proxy_cpu_us {
        s.push_str(&format!(", proxy {c:.2} µs CPU/req"));
    }
    if let Some(a) = m.allocs_per_request {
        s.push_str(&format!(", {a:.1} allocations/req"));
    }
    if m.errors > 0 {
        s.push_str(&format!(", {} errors", m.errors));
    }
    s
}

fn results_md(
    o: &Options,
    date: &str,
    png: &Path,
    tables: &str,
    ratios: &str,
    tls: bool,
) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let png_name = png
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "# Benchmark results\n\n\
         The latest full run of `bench/run --record` ({date} UTC). Every figure is a median over \
         {rounds} rounds of {duration} s (after {warmup} s of warm-up), with its range; the \
         targets ran interleaved, in a rotated order each round, on one machine, so read the \
         ratios rather than the absolute numbers.\n\n\
         - machine: {cores} cores ({cpu}), Linux {kernel}\n\
         - memcached: {memcached} (three, one thread each); twemproxy: {nutcracker} (ketama/md5); \
         Switchyard: {switchyard}, {workers} worker(s), ketama plugin\n\
         - load: `loadgen` (bench/loadgen, in this repository) for every row but `memcaslap`\n\
         - direct memcached: connection i talks to server i mod 3, and every server holds every \
         key, so a multi-get goes whole to one server (through a proxy it is split over three)\n\
         {tls_note}\n\
         Reproduce: `bench/run --record` (after `scripts/setup`); `bench/run --quick` is a smoke run.\n\n\
         ![throughput and p99 per workload](results/{png_name})\n\n\
         ## Ratios (medians)\n\n{ratios}\n## Per workload\n\n{tables}",
        rounds = o.rounds,
        duration = o.duration,
        warmup = o.warmup,
        kernel = kernel.trim(),
        memcached = procs::version_line("memcached", "-V"),
        nutcracker = procs::version_line("nutcracker", "-V"),
        switchyard = procs::version_line(&o.switchyard.to_string_lossy(), "--version"),
        workers = o.workers,
        tls_note = if tls { TLS_NOTE } else { "" },
    )
}

/// The RESULTS.md line on the TLS workloads' setup.
const TLS_NOTE: &str = "- over TLS (`tls-*`): three more memcached with TLS (`-Z`, \
`ssl_verify_mode=2`, `ssl_session_cache`), each also listening in plaintext; certificates made \
for the run (rcgen, ECDSA P-256: a CA, a server certificate for 127.0.0.1 and localhost, a \
client certificate); mutual TLS on every TLS leg (loadgen to memcached or Switchyard, \
Switchyard to memcached). Targets: `memcached-tls` (loadgen over TLS to them directly), \
`switchyard-tls` (a TLS listener and a TLS pool), `switchyard` (plaintext on both sides, over \
the same memcached). twemproxy has no TLS and is not measured there. Every connection completes \
its handshake before the warm-up; loadgen shares the machine and encrypts too, so read the \
TLS throughput ratios beside the CPU figures.\n";

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_sequences_are_stripped_from_log_lines() {
        let line = "\u{1b}[2m2026-12-02T00:06:39Z\u{1b}[0m \u{1b}[33m WARN\u{1b}[0m backend TLS handshake failed";
        assert_eq!(
            super::strip_ansi(line),
            "2026-12-02T00:06:39Z  WARN backend TLS handshake failed"
        );
    }
}
