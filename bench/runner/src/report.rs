//! Medians and ranges over rounds, and the three outputs: the terminal table, the CSV of every
//! sample, and `bench/RESULTS.md`.

use std::fmt::Write as _;

use crate::drive::Measured;
use crate::workloads::{Kind, Workload};

/// What is measured: direct memcached, twemproxy, Switchyard; and for the TLS workloads,
/// memcached with TLS (`-Z`) directly and Switchyard with TLS on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Memcached,
    Twemproxy,
    Switchyard,
    /// Switchyard with `[stats] timings` and `hotkeys` off: what the latency histograms and
    /// the hot key sampling cost, measured beside it.
    SwitchyardBare,
    /// Switchyard as a two-tenant gateway, the load through one tenant (its namespace, its
    /// ACL, its request and byte buckets and requests in flight, set far above the load, its
    /// traffic counted apart): what tenancy costs.
    SwitchyardTenants,
    /// Switchyard running a dry-run experiment on its pool over a tenth of the keys: the
    /// candidate the same pool with one more server (never contacted).
    SwitchyardDryRun10,
    /// The same over every key.
    SwitchyardDryRun100,
    /// Switchyard running a shadow experiment on its pool over a tenth of the keys: the
    /// candidate a second pool over the same servers, each sampled single-key request sent to
    /// it too in the background and the replies compared.
    SwitchyardShadow10,
    /// The same over every key.
    SwitchyardShadow100,
    /// memcached `-Z`, loadgen speaking TLS to it directly.
    MemcachedTls,
    /// Switchyard with a TLS listener and a TLS pool to memcached `-Z`.
    SwitchyardTls,
}

impl Target {
    pub const ALL: [Target; 11] = [
        Target::Memcached,
        Target::Twemproxy,
        Target::Switchyard,
        Target::SwitchyardBare,
        Target::SwitchyardTenants,
        Target::SwitchyardDryRun10,
        Target::SwitchyardDryRun100,
        Target::SwitchyardShadow10,
        Target::SwitchyardShadow100,
        Target::MemcachedTls,
        Target::SwitchyardTls,
    ];
    /// The targets of a plaintext workload.
    pub const PLAINTEXT: [Target; 9] = [
        Target::Memcached,
        Target::Twemproxy,
        Target::Switchyard,
        Target::SwitchyardBare,
        Target::SwitchyardTenants,
        Target::SwitchyardDryRun10,
        Target::SwitchyardDryRun100,
        Target::SwitchyardShadow10,
        Target::SwitchyardShadow100,
    ];
    /// The targets of a TLS workload: twemproxy has no TLS. `Switchyard` is plaintext there,
    /// over the same memcached as the other two.
    pub const TLS: [Target; 3] = [
        Target::Switchyard,
        Target::MemcachedTls,
        Target::SwitchyardTls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Memcached => "memcached",
            Target::Twemproxy => "twemproxy",
            Target::Switchyard => "switchyard",
            Target::SwitchyardBare => "switchyard-bare",
            Target::SwitchyardTenants => "switchyard-tenants",
            Target::SwitchyardDryRun10 => "switchyard-dryrun-10",
            Target::SwitchyardDryRun100 => "switchyard-dryrun-100",
            Target::SwitchyardShadow10 => "switchyard-shadow-10",
            Target::SwitchyardShadow100 => "switchyard-shadow-100",
            Target::MemcachedTls => "memcached-tls",
            Target::SwitchyardTls => "switchyard-tls",
        }
    }

    pub fn parse(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// One run of one workload against one target.
#[derive(Debug, Clone)]
pub struct Sample {
    pub workload: &'static str,
    pub target: Target,
    pub round: usize,
    pub m: Measured,
}

/// Median, min and max of one figure over the rounds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }
}

/// The rounds of one workload on one target, summarised.
#[derive(Debug, Clone)]
pub struct Summary {
    pub workload: &'static str,
    pub target: Target,
    pub throughput: Option<Spread>,
    pub p50: Option<Spread>,
    pub p99: Option<Spread>,
    pub p999: Option<Spread>,
    pub proxy_cpu: Option<Spread>,
    pub server_cpu: Option<Spread>,
    pub loadgen_cpu: Option<Spread>,
    pub peak_rss: Option<Spread>,
    pub idle_conn_bytes: Option<Spread>,
    pub allocs: Option<Spread>,
    pub errors: u64,
    /// What loadgen's TLS handshakes settled on, over the rounds (empty in plaintext).
    pub tls: String,
}

pub fn summarise(samples: &[Sample], workload: &'static str, target: Target) -> Option<Summary> {
    let mine: Vec<&Measured> = samples
        .iter()
        .filter(|s| s.workload == workload && s.target == target)
        .map(|s| &s.m)
        .collect();
    if mine.is_empty() {
        return None;
    }
    let spread = |f: &dyn Fn(&Measured) -> Option<f64>| {
        Spread::of(mine.iter().filter_map(|m| f(m)).collect())
    };
    Some(Summary {
        workload,
        target,
        throughput: spread(&|m| (m.throughput > 0.0).then_some(m.throughput)),
        p50: spread(&|m| m.p50_us),
        p99: spread(&|m| m.p99_us),
        p999: spread(&|m| m.p999_us),
        proxy_cpu: spread(&|m| m.proxy_cpu_us),
        server_cpu: spread(&|m| m.server_cpu_us),
        loadgen_cpu: spread(&|m| m.loadgen_cpu_us),
        peak_rss: spread(&|m| m.proxy_peak_rss.map(|b| b as f64)),
        idle_conn_bytes: spread(&|m| m.idle_conn_bytes),
        allocs: spread(&|m| m.allocs_per_request),
        errors: mine.iter().map(|m| m.errors).sum(),
        tls: {
            let mut seen: Vec<&str> = mine.iter().filter_map(|m| m.tls.as_deref()).collect();
            seen.sort_unstable();
            seen.dedup();
            seen.join("; ")
        },
    })
}

fn ratio(a: Option<Spread>, b: Option<Spread>) -> Option<f64> {
    let (a, b) = (a?.median, b?.median);
    (b > 0.0).then(|| a / b)
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn with_range(s: Option<Spread>, show: fn(f64) -> String) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.min == s.max => show(s.median),
        Some(s) => format!("{} ({}–{})", show(s.median), show(s.min), show(s.max)),
    }
}

fn plain(s: Option<Spread>, show: fn(f64) -> String) -> String {
    s.map_or_else(|| "-".into(), |s| show(s.median))
}

fn micros(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn cpu(v: f64) -> String {
    format!("{v:.2}")
}

fn kib(v: f64) -> String {
    format!("{:.1} KiB", v / 1024.0)
}

fn mib(v: f64) -> String {
    format!("{:.1} MiB", v / (1024.0 * 1024.0))
}

fn count(v: f64) -> String {
    format!("{v:.1}")
}

/// The table of one workload, Markdown (which reads well on a terminal too).
pub fn workload_table(w: &Workload, summaries: &[Summary]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "### {}\n\n{}\n", w.name, w.about);
    if let Kind::IdleMemory { conns } = w.kind {
        t.push_str("| target | memory per idle connection |\n| --- | --- |\n");
        for s in summaries {
            let _ = writeln!(
                t,
                "| {} | {} |",
                s.target.name(),
                with_range(s.idle_conn_bytes, kib)
            );
        }
        let _ = writeln!(
            t,
            "\n(RSS growth of freshly started processes over {conns} connections that each sent `version`; for memcached, the three servers' together.)"
        );
        return t;
    }
    t.push_str("| target | requests/s, median (min–max) | p50 µs | p99 µs | p99.9 µs | proxy CPU µs/request | memcached CPU µs/request | proxy peak RSS | errors |\n");
    t.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for s in summaries {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.target.name(),
            with_range(s.throughput, thousands),
            plain(s.p50, micros),
            plain(s.p99, micros),
            plain(s.p999, micros),
            plain(s.proxy_cpu, cpu),
            plain(s.server_cpu, cpu),
            plain(s.peak_rss, mib),
            s.errors
        );
    }
    if w.tls {
        t.push('\n');
        t.push_str(TLS_TARGETS);
        t.push('\n');
        for s in summaries.iter().filter(|s| !s.tls.is_empty()) {
            let _ = writeln!(t, "- loadgen to {}: {}", s.target.name(), s.tls);
        }
        let _ = writeln!(
            t,
            "- loadgen CPU µs/request (the client shares the machine, and encrypts over TLS): {}",
            summaries
                .iter()
                .map(|s| format!("{} {}", s.target.name(), plain(s.loadgen_cpu, cpu)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    t
}

/// What the rows of a TLS workload are, and why twemproxy has none.
const TLS_TARGETS: &str = "`memcached-tls`: loadgen speaks TLS to three memcached `-Z` directly. \
`switchyard-tls`: Switchyard with a TLS listener and a TLS pool to the same memcached. \
`switchyard`: Switchyard in plaintext on both sides, over the same memcached (each also listens \
in plaintext). Mutual TLS on every TLS leg. twemproxy has no TLS: not measured here.\n";

/// The headline: Switchyard's figures as ratios to twemproxy's and direct memcached's.
pub fn ratio_table(workloads: &[Workload], summaries: &[Summary]) -> String {
    let find = |w: &str, t: Target| summaries.iter().find(|s| s.workload == w && s.target == t);
    let mut t = String::from(
        "| workload | throughput Switchyard / twemproxy | throughput Switchyard / direct | p99 Switchyard / twemproxy | proxy CPU per request Switchyard / twemproxy |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    let fmt = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{r:.2}"));
    let mut extra = String::new();
    for w in workloads.iter().filter(|w| !w.tls) {
        let (Some(s), tw, direct) = (
            find(w.name, Target::Switchyard),
            find(w.name, Target::Twemproxy),
            find(w.name, Target::Memcached),
        ) else {
            continue;
        };
        if let Kind::IdleMemory { conns } = w.kind {
            let _ = writeln!(
                extra,
                "- memory per idle client connection ({conns}): Switchyard {}, twemproxy {}, memcached {}",
                plain(s.idle_conn_bytes, kib),
                plain(tw.and_then(|t| t.idle_conn_bytes), kib),
                plain(direct.and_then(|t| t.idle_conn_bytes), kib),
            );
            continue;
        }
        if w.name == "round-trip" {
            let added = |x: Option<&Summary>| -> String {
                match (x.and_then(|x| x.p50), direct.and_then(|d| d.p50)) {
                    (Some(x), Some(d)) => format!("{:+.1} µs", x.median - d.median),
                    _ => "-".into(),
                }
            };
            let _ = writeln!(
                extra,
                "- latency added at p50, one client, one request at a time: Switchyard {}, twemproxy {}",
                added(Some(s)),
                added(tw)
            );
        }
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} |",
            w.name,
            fmt(ratio(s.throughput, tw.and_then(|t| t.throughput))),
            fmt(ratio(s.throughput, direct.and_then(|d| d.throughput))),
            fmt(ratio(s.p99, tw.and_then(|t| t.p99))),
            fmt(ratio(s.proxy_cpu, tw.and_then(|t| t.proxy_cpu))),
        );
    }
    t.push_str(&stats_cost_table(workloads, summaries));
    t.push_str(&tenancy_cost_table(workloads, summaries));
    t.push_str(&experiment_cost_table(
        workloads,
        summaries,
        "dry-run",
        [
            (Target::SwitchyardDryRun10, "10%"),
            (Target::SwitchyardDryRun100, "100%"),
        ],
        "the pool's ketama decision compared on each sampled request with a candidate pool of \
         one more server (both dry-run, nothing sent)",
    ));
    t.push_str(&experiment_cost_table(
        workloads,
        summaries,
        "shadow",
        [
            (Target::SwitchyardShadow10, "10%"),
            (Target::SwitchyardShadow100, "100%"),
        ],
        "each sampled single-key request also sent in the background to a candidate pool over \
         the same servers and the two replies compared",
    ));
    if let Some(a) = summaries.iter().find(|s| s.workload == "allocations") {
        let _ = writeln!(
            extra,
            "- heap allocations per request in Switchyard (get-set, counting build): {}",
            plain(a.allocs, count)
        );
    }
    if !extra.is_empty() {
        t.push('\n');
        t.push_str(&extra);
    }
    t.push_str(&tls_ratio_table(workloads, summaries));
    t
}

/// What the latency histograms and hot key sampling cost: Switchyard as configured by default
/// against `switchyard-bare` (both off), workload by workload. Empty when the run has no
/// `switchyard-bare`.
fn stats_cost_table(workloads: &[Workload], summaries: &[Summary]) -> String {
    cost_table(
        workloads,
        summaries,
        (Target::Switchyard, Target::SwitchyardBare),
        "What the stats cost: Switchyard as configured by default (latency histograms of \
         servers, plugin calls and routes; hot key sampling) against `switchyard-bare`, the same \
         router with `[stats] timings = false` and `hotkeys = false`. Counters are on in both.",
        ("Switchyard / bare", "Switchyard − bare"),
    )
}

/// What tenancy costs: the load through one tenant of a two-tenant gateway (namespace, ACL,
/// buckets) against Switchyard without tenants, workload by workload. Empty when the run has no
/// `switchyard-tenants`.
fn tenancy_cost_table(workloads: &[Workload], summaries: &[Summary]) -> String {
    cost_table(
        workloads,
        summaries,
        (Target::SwitchyardTenants, Target::Switchyard),
        "What tenancy costs: `switchyard-tenants`, a gateway of two tenants whose load goes \
         through one of them (its key namespace, its command ACL, request and byte buckets and \
         a max_outstanding set far above the load, its traffic counted apart), against `switchyard`, the same router and pool without tenants.",
        ("tenants / plain", "tenants − plain"),
    )
}

/// What a running experiment of `kind` costs, each of `targets` (one running it at the share of
/// the keys named beside it) against Switchyard without it; `what` says what the experiment
/// does per request. Empty when the run has none of them.
fn experiment_cost_table(
    workloads: &[Workload],
    summaries: &[Summary],
    kind: &str,
    targets: [(Target, &str); 2],
    what: &str,
) -> String {
    let mut out = String::new();
    for (target, share) in targets {
        out.push_str(&cost_table(
            workloads,
            summaries,
            (target, Target::Switchyard),
            &format!(
                "What a {kind} experiment costs at {share} of the keys: `{}`, {what}, against \
                 `switchyard` without it.",
                target.name()
            ),
            ("with / without", "with − without"),
        ));
    }
    out
}

/// A feature's cost: target `with` against target `without`, over the plaintext load
/// workloads both ran (throughput and CPU per request as ratios, p50 as a difference), under
/// `intro`; `(ratio, difference)` name the columns. Empty when no workload has both.
fn cost_table(
    workloads: &[Workload],
    summaries: &[Summary],
    (with, without): (Target, Target),
    intro: &str,
    (ratio_name, difference_name): (&str, &str),
) -> String {
    let find = |w: &str, t: Target| summaries.iter().find(|s| s.workload == w && s.target == t);
    let fmt = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{r:.2}"));
    let mut rows = String::new();
    for w in workloads.iter().filter(|w| !w.tls) {
        if !matches!(w.kind, Kind::Load(_)) {
            continue;
        }
        let (Some(on), Some(off)) = (find(w.name, with), find(w.name, without)) else {
            continue;
        };
        let added = match (on.p50, off.p50) {
            (Some(a), Some(b)) => format!("{:+.1} µs", a.median - b.median),
            _ => "-".into(),
        };
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} |",
            w.name,
            fmt(ratio(on.throughput, off.throughput)),
            fmt(ratio(on.proxy_cpu, off.proxy_cpu)),
            added,
        );
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\n{intro}\n\n\
         | workload | throughput {ratio_name} | proxy CPU per request {ratio_name} | p50 {difference_name} |\n\
         | --- | --- | --- | --- |\n{rows}"
    )
}

/// The TLS workloads' headline: TLS against plaintext through Switchyard, and Switchyard-TLS
/// against memcached `-Z` direct. A figure needs both of its sides measured in this run; `-`
/// otherwise. Empty without TLS workloads.
fn tls_ratio_table(workloads: &[Workload], summaries: &[Summary]) -> String {
    let find = |w: &str, t: Target| summaries.iter().find(|s| s.workload == w && s.target == t);
    let fmt = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{r:.2}"));
    let added = |a: Option<Spread>, b: Option<Spread>| match (a, b) {
        (Some(a), Some(b)) => format!("{:+.1} µs", a.median - b.median),
        _ => "-".into(),
    };
    let mut rows = String::new();
    let mut extra = String::new();
    for w in workloads.iter().filter(|w| w.tls) {
        let tls = find(w.name, Target::SwitchyardTls);
        let plain = find(w.name, Target::Switchyard);
        let direct = find(w.name, Target::MemcachedTls);
        if tls.is_none() && plain.is_none() && direct.is_none() {
            continue;
        }
        let get = |s: Option<&Summary>, f: fn(&Summary) -> Option<Spread>| s.and_then(f);
        let _ = writeln!(
            rows,
            "| {} | {} | {} | {} | {} | {} | {} |",
            w.name,
            fmt(ratio(
                get(tls, |s| s.throughput),
                get(plain, |s| s.throughput)
            )),
            fmt(ratio(
                get(tls, |s| s.throughput),
                get(direct, |s| s.throughput)
            )),
            added(get(tls, |s| s.p50), get(plain, |s| s.p50)),
            added(get(tls, |s| s.p50), get(direct, |s| s.p50)),
            fmt(ratio(get(tls, |s| s.p99), get(plain, |s| s.p99))),
            fmt(ratio(
                get(tls, |s| s.proxy_cpu),
                get(plain, |s| s.proxy_cpu)
            )),
        );
        if let Kind::Load(l) = &w.kind
            && l.conns == 1
            && l.depth == 1
        {
            let _ = writeln!(
                extra,
                "- latency TLS adds at p50, one client, one request at a time ({}): through Switchyard {} (Switchyard-TLS against Switchyard plaintext); Switchyard-TLS against memcached -Z direct {}",
                w.name,
                added(get(tls, |s| s.p50), get(plain, |s| s.p50)),
                added(get(tls, |s| s.p50), get(direct, |s| s.p50)),
            );
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\nOver TLS (memcached `-Z`; mutual TLS on every TLS leg). twemproxy has no TLS, so it is \
         not measured in these workloads and no figure here involves it.\n\n\
         | workload | throughput Switchyard-TLS / Switchyard plaintext | throughput Switchyard-TLS / memcached -Z direct | p50 added by TLS through Switchyard | p50 Switchyard-TLS − memcached -Z direct | p99 Switchyard-TLS / Switchyard plaintext | proxy CPU per request Switchyard-TLS / Switchyard plaintext |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n{rows}\n{extra}"
    )
}

/// Every sample, one line each.
pub fn csv(date: &str, samples: &[Sample]) -> String {
    let mut out = String::from(
        "date,workload,target,round,requests_per_s,requests,errors,p50_us,p99_us,p999_us,max_us,\
         proxy_cpu_us_per_request,memcached_cpu_us_per_request,proxy_peak_rss_bytes,\
         idle_connection_bytes,allocations_per_request,loadgen_cpu_us_per_request\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.3}"));
    for s in samples {
        let m = &s.m;
        let _ = writeln!(
            out,
            "{date},{},{},{},{:.1},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.workload,
            s.target.name(),
            s.round,
            m.throughput,
            m.requests,
            m.errors,
            opt(m.p50_us),
            opt(m.p99_us),
            opt(m.p999_us),
            opt(m.max_us),
            opt(m.proxy_cpu_us),
            opt(m.server_cpu_us),
            m.proxy_peak_rss.map_or_else(String::new, |b| b.to_string()),
            opt(m.idle_conn_bytes),
            opt(m.allocs_per_request),
            opt(m.loadgen_cpu_us),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_median_with_its_range() {
        let s = Spread::of(vec![3.0, 1.0, 2.0]).expect("three values");
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(vec![4.0, 1.0, 2.0, 3.0]).expect("four values");
        assert_eq!(s.median, 2.5);
        assert!(Spread::of(vec![f64::NAN]).is_none());
        assert!(Spread::of(Vec::new()).is_none());
    }

    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_000.0), "1,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    fn sample(workload: &'static str, target: Target, round: usize, rps: f64) -> Sample {
        Sample {
            workload,
            target,
            round,
            m: Measured {
                throughput: rps,
                requests: 10,
                p99_us: Some(rps / 10.0),
                ..Measured::default()
            },
        }
    }

    #[test]
    fn ratios_compare_medians_of_the_same_workload() {
        let samples = [
            sample("get-set", Target::Switchyard, 1, 90.0),
            sample("get-set", Target::Switchyard, 2, 100.0),
            sample("get-set", Target::Switchyard, 3, 500.0),
            sample("get-set", Target::Twemproxy, 1, 200.0),
            sample("get-set", Target::Memcached, 1, 400.0),
            sample("mget", Target::Twemproxy, 1, 1.0),
        ];
        let summaries: Vec<Summary> = Target::ALL
            .into_iter()
            .filter_map(|t| summarise(&samples, "get-set", t))
            .collect();
        let workloads: Vec<Workload> = crate::workloads::all()
            .into_iter()
            .filter(|w| w.name == "get-set")
            .collect();
        let table = ratio_table(&workloads, &summaries);
        assert!(
            table.contains("| get-set | 0.50 | 0.25 | 0.50 | - |"),
            "{table}"
        );
        let csv = csv("d", &samples);
        assert_eq!(csv.lines().count(), 1 + samples.len());
        assert!(
            csv.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("d,get-set,switchyard,1,90.0,10,0,"))
        );
        assert!(!table.contains("Over TLS"), "{table}");
    }

    #[test]
    fn tls_ratios_compare_tls_with_plaintext_and_never_name_twemproxy() {
        let timed = |target: Target, rps: f64, p50: f64| Sample {
            workload: "tls-get-set",
            target,
            round: 1,
            m: Measured {
                throughput: rps,
                requests: 10,
                p50_us: Some(p50),
                p99_us: Some(p50 * 2.0),
                ..Measured::default()
            },
        };
        let samples = [
            timed(Target::Switchyard, 100.0, 50.0),
            timed(Target::SwitchyardTls, 80.0, 62.5),
            timed(Target::MemcachedTls, 160.0, 40.0),
        ];
        let summaries: Vec<Summary> = Target::ALL
            .into_iter()
            .filter_map(|t| summarise(&samples, "tls-get-set", t))
            .collect();
        let workloads: Vec<Workload> = crate::workloads::all()
            .into_iter()
            .filter(|w| w.name == "tls-get-set" || w.name == "get-set")
            .collect();
        let table = ratio_table(&workloads, &summaries);
        assert!(
            table.contains("| tls-get-set | 0.80 | 0.50 | +12.5 µs | +22.5 µs | 1.25 | - |"),
            "{table}"
        );
        // The plaintext table has no row for it, and no blank stands for twemproxy.
        assert!(!table.contains("| tls-get-set | -"), "{table}");
        assert!(table.contains("twemproxy has no TLS"), "{table}");

        // Switchyard-TLS not measured: no ratio against it.
        let without: Vec<Summary> = summaries
            .iter()
            .filter(|s| s.target != Target::SwitchyardTls)
            .cloned()
            .collect();
        let table = ratio_table(&workloads, &without);
        assert!(
            table.contains("| tls-get-set | - | - | - | - | - | - |"),
            "{table}"
        );
        let w = workloads
            .iter()
            .find(|w| w.name == "tls-get-set")
            .expect("tls-get-set");
        let rows = workload_table(w, &summaries);
        assert!(rows.contains("| memcached-tls | 160 |"), "{rows}");
        assert!(!rows.contains("| twemproxy"), "{rows}");
    }
}
