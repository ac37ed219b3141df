//! Experiments on a route node (`[experiments.NAME]`, `configs/README.md`, "Experiments").
//!
//! Three kinds, each comparing the node (the live side) with a candidate pool or route that no
//! listener or tenant reaches, on live requests:
//!
//! - `dry_run`: both are dry-run for a sampled request (their plugins called, nothing sent) and
//!   the servers each would reach compared.
//! - `shadow`: a sampled request is also sent to the candidate in the background, and its reply
//!   compared with the node's (status, flags, a hash of the value) and timed.
//! - `canary`: a growing fraction of keys is routed through the candidate instead of the node;
//!   the candidate's errors and p99 are compared with the node's, step by step, and the rollout
//!   undone when they pass the configured bounds.
//!
//! What an experiment found ([`State`]) is shared by every worker (atomics: it is no
//! per-request path but for a canary's routing check, which is one load), bounded by its
//! configuration, and carried over a reload that leaves the experiment, its node and its
//! candidate as they were; any change to them starts it afresh. Whether it runs can be changed
//! while it does (`experiment start|stop NAME` on the admin listener).

mod canary;
pub mod cli;
mod dry_run;
mod render;
mod report;
mod shadow;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use canary::{Rollout, Side, Stage};
pub use dry_run::Decisions;
pub use render::{json, render};
pub use report::html;
pub use shadow::{Comparison, Mismatch, Summary};

use crate::config::{ExperimentConfig, ExperimentKind};
use crate::generation::{Node, Target};

/// Parts per million of keys a sample of 1 takes: the resolution of `sample` and of a
/// canary's steps.
const PPM: u64 = 1_000_000;

/// How often an experiment adds a point to its history, and how many it keeps (an hour's).
const HISTORY_EVERY: Duration = Duration::from_secs(5);
const HISTORY_POINTS: usize = 720;

/// One experiment as a generation runs it.
#[derive(Debug)]
pub struct Experiment {
    /// Its configuration.
    pub config: ExperimentConfig,
    /// The live node, by index into the generation's nodes.
    pub node: usize,
    /// The candidate node.
    pub candidate: usize,
    /// What it found so far, and whether it runs: kept over reloads that leave it unchanged.
    pub state: Arc<State>,
    /// A dry run's: each destination's row and column in its matrix (`u32::MAX`: neither node
    /// reaches it).
    cell_of: Box<[u32]>,
}

/// What an experiment found, and whether it runs.
#[derive(Debug)]
pub struct State {
    /// Runs (config `enabled`, then `experiment start|stop`).
    enabled: AtomicBool,
    /// What the node and the candidate were when it started: a reload that changes either
    /// starts it afresh.
    fingerprint: String,
    /// When it started (seconds since the epoch).
    pub started: u64,
    /// Its kind's findings.
    pub findings: Findings,
    /// Its totals every [`HISTORY_EVERY`], the newest [`HISTORY_POINTS`].
    history: Mutex<std::collections::VecDeque<Point>>,
    /// When the next point is due (seconds since the epoch).
    next_point: AtomicU64,
}

/// One kind's findings.
#[derive(Debug)]
pub enum Findings {
    /// A dry run's.
    DryRun(Decisions),
    /// A shadow's.
    Shadow(Comparison),
    /// A canary's.
    Canary(Rollout),
}

/// An experiment's totals at one moment, for `switchyard experiment report`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Seconds since the epoch.
    pub at: u64,
    /// Requests compared (a canary's: the candidate's).
    pub compared: u64,
    /// Of those, moved (dry run), mismatched (shadow) or failed (a canary's candidate).
    pub differing: u64,
    /// A canary's fraction of keys on the candidate then; a sample's for the others.
    pub fraction: f64,
}

impl Experiment {
    /// An experiment on a generation of `nodes` and `destinations` servers (`addresses`, by
    /// destination); `previous` is the one of the same name in the generation before, whose
    /// findings it keeps if nothing it compares has changed.
    pub fn new(
        config: ExperimentConfig,
        node: usize,
        candidate: usize,
        nodes: &[Node],
        addresses: &[String],
        previous: Option<&Experiment>,
    ) -> Self {
        let (fingerprint, servers) = fingerprint(&config, node, candidate, nodes, addresses);
        let state = match previous {
            Some(p) if p.config.same_as(&config) && p.state.fingerprint == fingerprint => {
                p.state.clone()
            }
            _ => {
                let findings = match config.kind {
                    ExperimentKind::DryRun => Findings::DryRun(Decisions::new(
                        servers.iter().map(|&d| addresses[d].clone()).collect(),
                    )),
                    ExperimentKind::Shadow => {
                        Findings::Shadow(Comparison::new(config.keep_mismatches))
                    }
                    ExperimentKind::Canary => Findings::Canary(Rollout::new(
                        config
                            .canary
                            .clone()
                            .unwrap_or_else(|| unreachable!("a canary's config has its rollout")),
                    )),
                };
                let now = unix_now();
                Arc::new(State {
                    enabled: AtomicBool::new(config.enabled),
                    fingerprint,
                    started: now,
                    findings,
                    history: Mutex::new(std::collections::VecDeque::new()),
                    next_point: AtomicU64::new(now),
                })
            }
        };
        let mut cell_of = vec![u32::MAX; addresses.len()].into_boxed_slice();
        if let Findings::DryRun(d) = &state.findings {
            for (i, address) in d.servers().iter().enumerate() {
                if let Some(dest) = addresses.iter().position(|a| a == address) {
                    cell_of[dest] = i as u32;
                }
            }
        }
        Experiment {
            config,
            node,
            candidate,
            state,
            cell_of,
        }
    }

    /// Whether it runs.
    pub fn enabled(&self) -> bool {
        self.state.enabled.load(Ordering::Relaxed)
    }

    /// Starts or stops it; whether that changed anything.
    pub fn set_enabled(&self, on: bool) -> bool {
        self.state.enabled.swap(on, Ordering::Relaxed) != on
    }

    /// Whether a request with `key` is compared (a dry run's or a shadow's): it runs, and the
    /// key's hash falls in its sample, the first `sample` of its `key_range` (a key is always
    /// in or always out).
    pub fn samples(&self, key: &[u8]) -> bool {
        self.enabled() && in_band(key, self.config.sample, self.config.key_range)
    }

    /// A dry run's findings.
    pub fn decisions(&self) -> Option<&Decisions> {
        match &self.state.findings {
            Findings::DryRun(d) => Some(d),
            _ => None,
        }
    }

    /// A shadow's findings.
    pub fn comparison(&self) -> Option<&Comparison> {
        match &self.state.findings {
            Findings::Shadow(c) => Some(c),
            _ => None,
        }
    }

    /// A canary's rollout.
    pub fn rollout(&self) -> Option<&Rollout> {
        match &self.state.findings {
            Findings::Canary(r) => Some(r),
            _ => None,
        }
    }

    /// A dry run's comparison of one request: the servers the live node and the candidate
    /// would reach (by destination index, sorted), whether a candidate plugin faulted, and how
    /// long its dry run took.
    pub fn record(&self, live: &[usize], candidate: &[usize], faulted: bool, took: Duration) {
        if let Some(d) = self.decisions() {
            d.record(&self.cell_of, live, candidate, faulted, took);
            self.state.tick(self.config.sample);
        }
    }

    /// A dry run's sampled request whose live walk faulted: not compared.
    pub fn live_faulted(&self) {
        if let Some(d) = self.decisions() {
            d.live_faulted();
        }
    }

    /// Requests compared, and of those how many differed: moved (dry run), mismatched
    /// (shadow), or failed on the candidate (canary).
    pub fn totals(&self) -> (u64, u64) {
        self.state.totals()
    }
}

impl State {
    /// Requests compared and differing.
    fn totals(&self) -> (u64, u64) {
        match &self.findings {
            Findings::DryRun(d) => d.totals(),
            Findings::Shadow(c) => c.totals(),
            Findings::Canary(r) => r.candidate_totals(),
        }
    }

    /// Adds a point to the history when one is due.
    pub(crate) fn tick(&self, fraction: f64) {
        let now = unix_now();
        let due = self.next_point.load(Ordering::Relaxed);
        if now < due
            || self
                .next_point
                .compare_exchange(
                    due,
                    now + HISTORY_EVERY.as_secs(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return;
        }
        let (compared, differing) = self.totals();
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY_POINTS {
            history.pop_front();
        }
        history.push_back(Point {
            at: now,
            compared,
            differing,
            fraction,
        });
    }

    /// The history, oldest first, and a point for now.
    pub fn history(&self, fraction: f64) -> Vec<Point> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let (compared, differing) = self.totals();
        history
            .iter()
            .copied()
            .chain(std::iter::once(Point {
                at: unix_now(),
                compared,
                differing,
                fraction,
            }))
            .collect()
    }
}

/// Whether `key`'s hash falls in the first `fraction` of the hash space: the same keys are
/// in for every request, on every worker, in every generation.
pub fn in_fraction(key: &[u8], fraction: f64) -> bool {
    fraction >= 1.0 || key_point(key) < (fraction * PPM as f64) as u64
}

/// Whether `key`'s hash falls in the first `fraction` of the band `[start, end)` of the hash
/// space.
fn in_band(key: &[u8], fraction: f64, (start, end): (f64, f64)) -> bool {
    if start == 0.0 && end >= 1.0 {
        return in_fraction(key, fraction);
    }
    let at = key_point(key) as f64 / PPM as f64;
    at >= start && at < start + fraction * (end - start)
}

/// Where `key` falls in `[0, PPM)`.
fn key_point(key: &[u8]) -> u64 {
    switchyard_sdk::hash::fnv1a_64(key) % PPM
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The name of a kind, as `kind` spells it.
pub fn kind_name(kind: ExperimentKind) -> &'static str {
    match kind {
        ExperimentKind::DryRun => "dry-run",
        ExperimentKind::Shadow => "shadow",
        ExperimentKind::Canary => "canary",
    }
}

/// What the node and the candidate are: every node either reaches, with its plugin, module
/// and config, and every server by address; and the servers (destination indices, sorted).
fn fingerprint(
    config: &ExperimentConfig,
    node: usize,
    candidate: usize,
    nodes: &[Node],
    addresses: &[String],
) -> (String, Vec<usize>) {
    let mut text = format!("{}\n", kind_name(config.kind));
    let mut servers: Vec<usize> = Vec::new();
    let mut seen = vec![false; nodes.len()];
    let mut stack = vec![candidate, node];
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        let context = &nodes[n].context;
        text.push_str(&context.label);
        text.push(' ');
        text.push_str(&context.module);
        text.push('\n');
        text.push_str(&context.config_toml);
        for child in nodes[n].children.iter().rev() {
            match *child {
                Target::Node(c) => stack.push(c),
                Target::Server { dest, .. } => servers.push(dest),
            }
        }
        for child in &nodes[n].children {
            match *child {
                Target::Node(c) => text.push_str(&nodes[c].context.label),
                Target::Server { dest, timeout } => {
                    let address = addresses.get(dest).map_or("-", String::as_str);
                    text.push_str(&format!("{address}/{}ms", timeout.as_millis()));
                }
            }
            text.push(' ');
        }
        text.push('\n');
    }
    servers.sort_unstable();
    servers.dedup();
    (text, servers)
}

#[cfg(test)]
mod tests {
    use super::{in_band, in_fraction};

    #[test]
    fn a_band_takes_its_share_of_keys_and_the_same_keys_each_time() {
        let keys: Vec<String> = (0..20_000).map(|i| format!("key:{i}")).collect();
        let count = |f: &dyn Fn(&[u8]) -> bool| keys.iter().filter(|k| f(k.as_bytes())).count();
        let tenth = count(&|k| in_fraction(k, 0.1));
        assert!((1_800..2_200).contains(&tenth), "{tenth}");
        assert_eq!(count(&|k| in_band(k, 0.1, (0.0, 1.0))), tenth);
        let band = count(&|k| in_band(k, 1.0, (0.25, 0.5)));
        assert!((4_500..5_500).contains(&band), "{band}");
        let half_of_band = count(&|k| in_band(k, 0.5, (0.25, 0.5)));
        assert!((2_200..2_800).contains(&half_of_band), "{half_of_band}");
        // Disjoint bands take disjoint keys.
        assert!(
            keys.iter()
                .all(|k| !(in_band(k.as_bytes(), 1.0, (0.0, 0.25))
                    && in_band(k.as_bytes(), 1.0, (0.25, 0.5))))
        );
    }
}
