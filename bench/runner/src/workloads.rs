//! The workloads of a run: what each sends, with which driver, and what it measures.

use crate::report::Target;

/// One workload: a name for the command line and the report, and how to drive it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    /// One line for the report.
    pub about: &'static str,
    pub kind: Kind,
    /// Part of `--quick`.
    pub quick: bool,
    /// Over TLS: measured on memcached with TLS (`-Z`) directly, on Switchyard with TLS on
    /// both sides, and on Switchyard in plaintext over the same memcached; twemproxy has no
    /// TLS.
    pub tls: bool,
}

impl Workload {
    /// The targets it is measured on, in [`Target::ALL`]'s order.
    pub fn targets(&self) -> &'static [Target] {
        if self.tls {
            &Target::TLS
        } else {
            &Target::PLAINTEXT
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// `loadgen` with these arguments.
    Load(Load),
    /// memcaslap, the independent second driver: 90/10 get/set of 64 B values.
    Memcaslap { conns: usize },
    /// Memory per idle client connection: RSS before and after this many connections that
    /// each sent one request and then stay open.
    IdleMemory { conns: usize },
}

/// The load `loadgen` puts on a target.
#[derive(Debug, Clone)]
pub struct Load {
    pub conns: usize,
    pub depth: usize,
    pub keys: u32,
    pub value_size: &'static str,
    pub mix: &'static str,
    pub idle_conns: usize,
    pub rate: Rate,
}

#[derive(Debug, Clone, Copy)]
pub enum Rate {
    /// Closed loop: each connection keeps `depth` requests in flight.
    Closed,
    /// Open loop at this fraction of twemproxy's median throughput in the `get-set`
    /// workload of the same run (Switchyard's when twemproxy is not measured).
    OfPeak(f64),
}

const fn load(
    conns: usize,
    depth: usize,
    keys: u32,
    value_size: &'static str,
    mix: &'static str,
) -> Load {
    Load {
        conns,
        depth,
        keys,
        value_size,
        mix,
        idle_conns: 0,
        rate: Rate::Closed,
    }
}

/// Every workload, in the order a run measures them (`fixed-rate` needs `get-set` first).
pub fn all() -> Vec<Workload> {
    vec![
        Workload {
            name: "get-set",
            about: "90/10 get/set, 64 B values, 32 connections, one request in flight each",
            kind: Kind::Load(load(32, 1, 10_000, "64", "get=90,set=10")),
            quick: true,
            tls: false,
        },
        Workload {
            name: "mget",
            about: "10-key multi-gets of 64 B values, 32 connections",
            kind: Kind::Load(load(32, 1, 10_000, "64", "get=0,set=0,mget=1")),
            quick: true,
            tls: false,
        },
        Workload {
            name: "pipeline-16",
            about: "90/10 get/set, 64 B, 32 connections with 16 requests in flight each",
            kind: Kind::Load(load(32, 16, 10_000, "64", "get=90,set=10")),
            quick: false,
            tls: false,
        },
        Workload {
            name: "100k-values",
            about: "90/10 get/set of 100 KiB values, 32 connections",
            kind: Kind::Load(load(32, 1, 1_000, "102400", "get=90,set=10")),
            quick: false,
            tls: false,
        },
        Workload {
            name: "4m-values",
            about: "90/10 get/set of 4 MiB values (streamed by Switchyard), 4 connections",
            kind: Kind::Load(load(4, 1, 32, "4194304", "get=90,set=10")),
            quick: false,
            tls: false,
        },
        Workload {
            name: "idle-1000",
            about: "get-set on 32 connections while 1,000 more stay open and idle",
            kind: Kind::Load(Load {
                idle_conns: 1_000,
                ..load(32, 1, 10_000, "64", "get=90,set=10")
            }),
            quick: false,
            tls: false,
        },
        Workload {
            name: "round-trip",
            about: "one client, one request at a time: the latency a proxy adds",
            kind: Kind::Load(load(1, 1, 10_000, "64", "get=90,set=10")),
            quick: true,
            tls: false,
        },
        Workload {
            name: "fixed-rate",
            about: "get-set, open loop at 50% of twemproxy's get-set peak: latency under moderate load",
            kind: Kind::Load(Load {
                rate: Rate::OfPeak(0.5),
                ..load(32, 1, 10_000, "64", "get=90,set=10")
            }),
            quick: false,
            tls: false,
        },
        Workload {
            name: "tls-get-set",
            about: "get-set over TLS: 90/10 get/set, 64 B values, 32 connections, one request in flight each",
            kind: Kind::Load(load(32, 1, 10_000, "64", "get=90,set=10")),
            quick: false,
            tls: true,
        },
        Workload {
            name: "tls-round-trip",
            about: "round-trip over TLS: one client, one request at a time: the latency TLS adds",
            kind: Kind::Load(load(1, 1, 10_000, "64", "get=90,set=10")),
            quick: true,
            tls: true,
        },
        Workload {
            name: "memcaslap",
            about: "memcaslap, 90/10 get/set of 64 B values, 32 connections (second driver)",
            kind: Kind::Memcaslap { conns: 32 },
            quick: true,
            tls: false,
        },
        Workload {
            name: "idle-mem-1k",
            about: "memory per idle client connection, over 1,000 connections",
            kind: Kind::IdleMemory { conns: 1_000 },
            quick: true,
            tls: false,
        },
        Workload {
            name: "idle-mem-10k",
            about: "memory per idle client connection, over 10,000 connections",
            kind: Kind::IdleMemory { conns: 10_000 },
            quick: false,
            tls: false,
        },
    ]
}
