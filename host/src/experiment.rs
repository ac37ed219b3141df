//! Experiments on a route node (`[experiments.NAME]`, `configs/README.md`, "Experiments").
//!
//! A dry run compares a live node's decisions with a candidate's on live requests: for each
//! sampled request that reaches the node, both are dry-run from there (`LocalGeneration::reach`:
//! their plugins are called as for a request, nothing is sent) and the servers each would reach
//! are compared. The candidate is a pool or route no listener or tenant reaches, with its own
//! instances and sandbox budget; its faults count in the experiment's results and its node's
//! `stats plugins`, never towards the generation's rollback, and never change the request.
//! Results are kept per generation, in atomics every worker shares (an experiment compares a
//! sample: it is no per-request path), bounded by the configuration (a from→to cell per pair of
//! the servers the two nodes can reach). `compared` counts the node's routing calls: each key of
//! a multi-get, and a background send or fan-out child that passes the node, is one. A policy
//! that draws at random (or keeps state between calls) draws again for the comparison, so its
//! `moved` counts its own randomness too.

use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{ExperimentConfig, ExperimentKind};
use crate::generation::Generation;
use crate::stats::registry::{self, StatDef};
use crate::stats::{Counter, Histogram, Snapshot};

/// Parts per million of keys a sample of 1 takes: the resolution of `sample`.
const PPM: u64 = 1_000_000;

/// One experiment as a generation runs it.
#[derive(Debug)]
pub struct Experiment {
    /// Its configuration.
    pub config: ExperimentConfig,
    /// The live node, by index into the generation's nodes.
    pub node: usize,
    /// The candidate node.
    pub candidate: usize,
    /// What it found so far.
    pub results: Results,
}

/// An experiment's results.
#[derive(Debug)]
pub struct Results {
    /// Requests compared.
    compared: Counter,
    /// Of those, requests whose servers would differ.
    moved: Counter,
    /// Candidate dry runs in which a plugin faulted.
    faults: Counter,
    /// Time of the candidate's dry run.
    time: Histogram,
    /// Requests by (first live server, first candidate server), row-major, over the servers
    /// the two nodes can reach; the last row and column are "no server" (the router would
    /// answer itself).
    matrix: Box<[Counter]>,
    width: usize,
    /// A destination's row and column in `matrix` (`u32::MAX`: neither node reaches it).
    cell_of: Box<[u32]>,
    /// The destination of each row and column.
    servers: Box<[usize]>,
}

impl Experiment {
    /// An experiment on a generation of `nodes` and `destinations` servers.
    pub fn new(
        config: ExperimentConfig,
        node: usize,
        candidate: usize,
        nodes: &[crate::generation::Node],
        destinations: usize,
    ) -> Self {
        // The servers either node can reach: the matrix's rows and columns.
        let mut servers: Vec<usize> = Vec::new();
        let mut seen = vec![false; nodes.len()];
        let mut stack = vec![node, candidate];
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            for child in &nodes[n].children {
                match *child {
                    crate::generation::Target::Node(c) => stack.push(c),
                    crate::generation::Target::Server { dest, .. } => servers.push(dest),
                }
            }
        }
        servers.sort_unstable();
        servers.dedup();
        let mut cell_of = vec![u32::MAX; destinations].into_boxed_slice();
        for (i, &d) in servers.iter().enumerate() {
            if let Some(cell) = cell_of.get_mut(d) {
                *cell = i as u32;
            }
        }
        let width = servers.len() + 1;
        Experiment {
            config,
            node,
            candidate,
            results: Results {
                compared: Counter::default(),
                moved: Counter::default(),
                faults: Counter::default(),
                time: Histogram::default(),
                matrix: (0..width * width).map(|_| Counter::default()).collect(),
                width,
                cell_of,
                servers: servers.into_boxed_slice(),
            },
        }
    }

    /// Whether a request with `key` is compared: it runs, and the key's hash falls in its
    /// sample (a key is always in or always out).
    pub fn samples(&self, key: &[u8]) -> bool {
        if !self.config.enabled {
            return false;
        }
        if self.config.sample >= 1.0 {
            return true;
        }
        let at = switchyard_sdk::hash::fnv1a_64(key) % PPM;
        (at as f64) < self.config.sample * PPM as f64
    }

    /// Counts one comparison: the servers the live node and the candidate would reach (by
    /// destination index, sorted), whether a candidate plugin faulted, and how long its dry
    /// run took.
    pub fn record(&self, live: &[usize], candidate: &[usize], faulted: bool, took: Duration) {
        let r = &self.results;
        r.compared.inc();
        if live != candidate {
            r.moved.inc();
        }
        if faulted {
            r.faults.inc();
        }
        r.time.record(took);
        let cell = |servers: &[usize]| {
            servers
                .first()
                .and_then(|&d| r.cell_of.get(d))
                .map_or(r.width - 1, |&c| (c as usize).min(r.width - 1))
        };
        if let Some(c) = r.matrix.get(cell(live) * r.width + cell(candidate)) {
            c.inc();
        }
    }

    /// Requests compared and moved.
    pub fn totals(&self) -> (u64, u64) {
        (self.results.compared.get(), self.results.moved.get())
    }
}

impl Results {
    /// The address of the matrix's row or column `i` (`-`: no server), `servers` the
    /// generation's addresses.
    fn place<'s>(&self, i: usize, servers: &'s [String]) -> &'s str {
        self.servers
            .get(i)
            .and_then(|&d| servers.get(d))
            .map_or("-", String::as_str)
    }

    /// Candidate dry runs with a fault.
    pub fn faults(&self) -> u64 {
        self.faults.get()
    }

    /// The candidate's dry-run times.
    pub fn time(&self) -> Snapshot {
        Snapshot::of(std::iter::once(&self.time))
    }
}

/// The name of a kind, as `kind` spells it.
pub fn kind_name(kind: ExperimentKind) -> &'static str {
    match kind {
        ExperimentKind::DryRun => "dry-run",
    }
}

/// `stats experiments`: every experiment of `generation`, as `STAT <experiment>:<name> value`,
/// and each from→to cell of its matrix that moved requests.
pub fn render(generation: &Generation) -> String {
    let mut out = String::with_capacity(512 * generation.experiments.len() + 8);
    let servers: Vec<String> = generation
        .destinations
        .iter()
        .map(|d| d.address.to_string())
        .collect();
    for e in &generation.experiments {
        let (compared, moved) = e.totals();
        let time = e.results.time();
        let pct = if compared == 0 {
            0.0
        } else {
            100.0 * moved as f64 / compared as f64
        };
        let mut line = |def: &StatDef, value: &dyn std::fmt::Display| {
            let name = def.name.replacen("<experiment>", &e.config.name, 1);
            let _ = write!(out, "STAT {name} {value}\r\n");
        };
        line(&registry::EXPERIMENT_KIND, &kind_name(e.config.kind));
        line(&registry::EXPERIMENT_ENABLED, &u8::from(e.config.enabled));
        line(&registry::EXPERIMENT_SAMPLE, &e.config.sample);
        line(&registry::EXPERIMENT_COMPARED, &compared);
        line(&registry::EXPERIMENT_MOVED, &moved);
        line(&registry::EXPERIMENT_MOVED_PCT, &format!("{pct:.2}"));
        line(&registry::EXPERIMENT_FAULTS, &e.results.faults());
        line(&registry::EXPERIMENT_TIME_MEAN, &time.mean_us());
        line(&registry::EXPERIMENT_TIME_P50, &time.quantile_us(0.5));
        line(&registry::EXPERIMENT_TIME_P99, &time.quantile_us(0.99));
        let width = e.results.width;
        let place = |i: usize| e.results.place(i, &servers);
        for (i, cell) in e.results.matrix.iter().enumerate() {
            let (from, to) = (i / width, i % width);
            let n = cell.get();
            if from == to || n == 0 {
                continue;
            }
            let name = registry::EXPERIMENT_MOVED_FROM_TO
                .name
                .replacen("<experiment>", &e.config.name, 1)
                .replacen("<from>", place(from), 1)
                .replacen("<to>", place(to), 1);
            let _ = write!(out, "STAT {name} {n}\r\n");
        }
    }
    out.push_str("END\r\n");
    out
}

/// `GET /experiments`: every experiment of `generation` as one JSON object: its settings, its
/// counts, the candidate's dry-run time and each from→to cell that moved requests.
pub fn json(generation: &Generation) -> String {
    let servers: Vec<String> = generation
        .destinations
        .iter()
        .map(|d| d.address.to_string())
        .collect();
    let label = |n: usize| {
        generation
            .nodes
            .get(n)
            .map_or(String::new(), |node| node.context.label.clone())
    };
    let mut out = format!("{{\"generation\":{},\"experiments\":[", generation.number);
    for (i, e) in generation.experiments.iter().enumerate() {
        let (compared, moved) = e.totals();
        let time = e.results.time();
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"kind\":\"{}\",\"enabled\":{},\"sample\":{},\"node\":{},\
             \"candidate\":{},\"compared\":{compared},\"moved\":{moved},\
             \"moved_fraction\":{:.6},\"candidate_faults\":{},\
             \"candidate_time_us\":{{\"mean\":{},\"p50\":{},\"p99\":{}}},\"moved_by_server\":[",
            quoted(&e.config.name),
            kind_name(e.config.kind),
            e.config.enabled,
            e.config.sample,
            quoted(&label(e.node)),
            quoted(&label(e.candidate)),
            if compared == 0 {
                0.0
            } else {
                moved as f64 / compared as f64
            },
            e.results.faults(),
            time.mean_us(),
            time.quantile_us(0.5),
            time.quantile_us(0.99),
        );
        let width = e.results.width;
        let place = |i: usize| e.results.place(i, &servers);
        let mut first = true;
        for (i, cell) in e.results.matrix.iter().enumerate() {
            let (from, to, n) = (i / width, i % width, cell.get());
            if from == to || n == 0 {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(
                out,
                "{{\"from\":{},\"to\":{},\"requests\":{n}}}",
                quoted(place(from)),
                quoted(place(to))
            );
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
