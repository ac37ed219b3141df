//! A dry run's findings: for each sampled request that reaches the node, both the node and the
//! candidate are dry-run from there (`LocalGeneration::reach`: their plugins are called as for
//! a request, nothing is sent) and the servers each would reach are compared. The candidate's
//! faults count here and in its node's `stats plugins`, never towards the generation's
//! rollback, and never change the request. A fault in the node's own dry walk (its plugin past
//! its deadline on a loaded worker, say) leaves nothing to compare against: it counts in
//! `live_faults`, not in `compared`. `compared` counts the node's routing calls: each key
//! of a multi-get, and a background send or fan-out child that passes the node, is one. A
//! policy that draws at random (or keeps state between calls) draws again for the comparison,
//! so its `moved` counts its own randomness too.

use std::time::Duration;

use crate::stats::{Counter, Histogram, Snapshot};

/// What a dry run found, bounded by the configuration: a from→to cell per pair of the servers
/// the two nodes can reach.
#[derive(Debug)]
pub struct Decisions {
    /// Requests compared.
    compared: Counter,
    /// Of those, requests whose servers would differ.
    moved: Counter,
    /// Candidate dry runs in which a plugin faulted.
    faults: Counter,
    /// Sampled requests not compared because the node's own dry walk faulted.
    live_faults: Counter,
    /// Time of the candidate's dry run.
    time: Histogram,
    /// Requests by (first live server, first candidate server), row-major, over `servers`;
    /// the last row and column are "no server" (the router would answer itself).
    matrix: Box<[Counter]>,
    width: usize,
    /// The address of each row and column but the last.
    servers: Box<[String]>,
}

impl Decisions {
    /// Findings over `servers`, the addresses of the servers either node can reach.
    pub fn new(servers: Vec<String>) -> Decisions {
        let width = servers.len() + 1;
        Decisions {
            compared: Counter::default(),
            moved: Counter::default(),
            faults: Counter::default(),
            live_faults: Counter::default(),
            time: Histogram::default(),
            matrix: (0..width * width).map(|_| Counter::default()).collect(),
            width,
            servers: servers.into_boxed_slice(),
        }
    }

    /// The addresses of the matrix's rows and columns.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Counts a sampled request the node's own dry walk faulted on: nothing to compare.
    pub(super) fn live_faulted(&self) {
        self.live_faults.inc();
    }

    /// Counts one comparison; `cell_of` maps a destination to its row and column.
    pub(super) fn record(
        &self,
        cell_of: &[u32],
        live: &[usize],
        candidate: &[usize],
        faulted: bool,
        took: Duration,
    ) {
        self.compared.inc();
        if live != candidate {
            self.moved.inc();
        }
        if faulted {
            self.faults.inc();
        }
        self.time.record(took);
        let cell = |servers: &[usize]| {
            servers
                .first()
                .and_then(|&d| cell_of.get(d))
                .map_or(self.width - 1, |&c| (c as usize).min(self.width - 1))
        };
        if let Some(c) = self.matrix.get(cell(live) * self.width + cell(candidate)) {
            c.inc();
        }
    }

    /// Requests compared and moved.
    pub fn totals(&self) -> (u64, u64) {
        (self.compared.get(), self.moved.get())
    }

    /// Candidate dry runs with a fault.
    pub fn faults(&self) -> u64 {
        self.faults.get()
    }

    /// Sampled requests left uncompared because the node's own dry walk faulted.
    pub fn live_faults(&self) -> u64 {
        self.live_faults.get()
    }

    /// The candidate's dry-run times.
    pub fn time(&self) -> Snapshot {
        Snapshot::of(std::iter::once(&self.time))
    }

    /// Every from→to cell that moved requests: (from, to, requests), `-` for no server.
    pub fn moved_cells(&self) -> Vec<(&str, &str, u64)> {
        let place = |i: usize| self.servers.get(i).map_or("-", String::as_str);
        self.matrix
            .iter()
            .enumerate()
            .filter_map(|(i, cell)| {
                let (from, to, n) = (i / self.width, i % self.width, cell.get());
                (from != to && n > 0).then(|| (place(from), place(to), n))
            })
            .collect()
    }
}
