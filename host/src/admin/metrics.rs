//! `GET /metrics`: every stat of `stats` and its groups in the Prometheus text exposition
//! format (version 0.0.4), read from the same counters when scraped and encoded by
//! `prometheus-client` through a [`Collector`]. Names, kinds, units and help texts come from
//! the declarations in `stats/registry.rs` (and the per-worker structs' `DEFS`), so a stat
//! cannot be in `stats` with another meaning here.
//!
//! Naming ([`metric`]): `switchyard_`, the group (`backend_`, `plugin_`, `tls_`; none for
//! plain `stats` and `stats config`), the stat's name without its `<placeholder>` (which
//! becomes a label: `server`, `node`, `command`, `identity`), the unit as a suffix in its base
//! unit (`_bytes`, `_seconds`: milliseconds and microseconds are converted), and `_total` on
//! counters (`total_connections` is `switchyard_connections_total`). Text facts are `_info`
//! gauges of value 1 with the text as a label; a server's state is one gauge per state
//! (`switchyard_backend_state{server,state="up"}` 1 or 0). The latency quantiles of `stats`
//! (mean, p50, p99) are one Prometheus histogram each (`switchyard_backend_latency_seconds`,
//! `switchyard_plugin_call_seconds`) with a bucket at every power of two of microseconds from
//! 1 µs to [`HISTOGRAM_TOP_US`]: each is an edge of the router's own buckets, so the counts are
//! exact.
//!
//! A plugin's own metrics (ABI.md, "Plugin metrics") are two families: its counters are
//! `switchyard_plugin_events_total{node,counter}`, its histograms
//! `switchyard_plugin_values{node,histogram}` (buckets at powers of two from 1 to 2^26).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit as PromUnit};
use switchyard_protocol::Command;

use crate::generation::{Generation, Target};
use crate::stats::registry::{self, Kind, StatDef, Unit};
use crate::stats::{RouterStats, Snapshot, WorkerStats};

/// What `/metrics` answers with: Prometheus' text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The highest histogram bucket bound below `+Inf`, microseconds: 2^26 µs, about 67 s, above
/// any request timeout a pool is likely to set (values above it count in `+Inf` only).
pub const HISTOGRAM_TOP_US: u64 = 1 << 26;

/// Longest text a label of an `_info` metric carries (a reload error can be long); the rest is
/// cut, as a label is no place for a paragraph.
const MAX_LABEL_CHARS: usize = 512;

/// A registry holding one collector that reads `stats` when scraped.
pub fn registry(stats: Arc<RouterStats>) -> Registry {
    let mut registry = Registry::with_prefix("switchyard");
    registry.register_collector(Box::new(Scrape(stats)));
    registry
}

/// `/metrics`'s body.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 << 10);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

/// Reads the router's stats at each scrape.
#[derive(Debug)]
struct Scrape(Arc<RouterStats>);

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for family in collect(&self.0) {
            family.encode(&mut encoder)?;
        }
        Ok(())
    }
}

/// How a stat is exposed: its name (without prefix, unit and `_total`, which the encoder adds),
/// unit, type, and the factor from its value to the base unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name between `switchyard_` and the unit suffix.
    pub name: String,
    /// The base unit, when it has one.
    pub unit: Option<PromUnit>,
    /// Counter, gauge, info or histogram.
    pub kind: MetricType,
    /// What one of the stat's units is in the base unit (`1e-3` for milliseconds).
    pub scale: f64,
    /// The label the stat's `<placeholder>` becomes, if it has one.
    pub label: Option<&'static str>,
}

impl Metric {
    /// Its full name as `/metrics` prints it.
    #[cfg(test)]
    pub fn full_name(&self) -> String {
        let mut name = format!("switchyard_{}", self.name);
        if let Some(unit) = &self.unit {
            name.push('_');
            name.push_str(unit.as_str());
        }
        match self.kind {
            MetricType::Counter => name.push_str("_total"),
            MetricType::Info => name.push_str("_info"),
            _ => {}
        }
        name
    }
}

/// How `def` is exposed (see the module's documentation for the rules).
pub fn metric(def: &StatDef) -> Metric {
    let mut label = None;
    let mut plain = String::with_capacity(def.name.len());
    let mut placeholder = None;
    for (i, c) in def.name.char_indices() {
        match c {
            '<' => placeholder = Some(i + 1),
            // The first placeholder is the label; a second (`<status>`) is the series' own.
            '>' => {
                let name = placeholder.take().map(|start| &def.name[start..i]);
                label = label.or(name);
            }
            _ if placeholder.is_some() => {}
            c => plain.push(c),
        }
    }
    // A server's counters are declared with their struct, by bare name (`timeouts`): `stats
    // backends` prints them as `<server>:timeouts`.
    if label.is_none() && def.group == "backends" {
        label = Some("server");
    }
    // So are a tenant's (`<tenant>:requests`).
    if label.is_none() && def.group == "tenants" {
        label = Some("tenant");
    }
    let mut words: Vec<&str> = plain.split([':', '_']).filter(|w| !w.is_empty()).collect();
    let (unit, scale, suffix) = match def.unit {
        Unit::Bytes => (Some(PromUnit::Bytes), 1.0, Some("bytes")),
        Unit::Seconds => (Some(PromUnit::Seconds), 1.0, Some("seconds")),
        Unit::UnixSeconds => (Some(PromUnit::Seconds), 1.0, None),
        Unit::Milliseconds | Unit::UnixMilliseconds => (Some(PromUnit::Seconds), 1e-3, Some("ms")),
        Unit::Microseconds => (Some(PromUnit::Seconds), 1e-6, Some("us")),
        Unit::Count | Unit::Text => (None, 1.0, None),
    };
    if let Some(i) = suffix.and_then(|s| words.iter().rposition(|w| *w == s))
        && words.len() > 1
    {
        words.remove(i);
    }
    let kind = match def.kind {
        // One gauge per state, 1 for the one the server is in.
        _ if def.name == registry::BACKEND_STATE.name => MetricType::Gauge,
        Kind::Counter => MetricType::Counter,
        Kind::Gauge => MetricType::Gauge,
        Kind::Quantile => MetricType::Histogram,
        Kind::Info if def.unit == Unit::Text => MetricType::Info,
        Kind::Info => MetricType::Gauge,
    };
    // The encoder ends a counter's name with `_total`: `total_connections` is
    // `connections_total`.
    if let Some(i) = words.iter().position(|w| *w == "total")
        && kind == MetricType::Counter
        && words.len() > 1
    {
        words.remove(i);
    }
    if kind == MetricType::Histogram {
        words.retain(|w| !matches!(*w, "mean" | "p50" | "p99"));
    }
    let group = match def.group {
        "" | "config" => None,
        "backends" => Some("backend"),
        "plugins" => Some("plugin"),
        "routes" => Some("route"),
        "hotkeys" => Some("hotkey"),
        "tenants" => Some("tenant"),
        "experiments" => Some("experiment"),
        other => Some(other),
    };
    // `hotkeys_sampled` in group `hotkeys` is `hotkey_sampled`.
    if let Some(group) = group
        && words.len() > 1
        && words
            .first()
            .is_some_and(|w| w.trim_end_matches('s') == group)
    {
        words.remove(0);
    }
    let mut name = group.into_iter().chain(words).collect::<Vec<_>>().join("_");
    // A plugin's own metrics are named for what they hold, not their type (which promtool
    // refuses in a name): `plugin_events_total{counter}`, `plugin_values{histogram}`.
    if def.name == registry::PLUGIN_COUNTER.name {
        name = "plugin_events".into();
    } else if def.name == registry::PLUGIN_HISTOGRAM_MEAN.name {
        name = "plugin_values".into();
    } else if def.name == registry::PLUGIN_TENANT_COUNTER.name {
        name = "plugin_tenant_events".into();
    } else if def.name == registry::PLUGIN_TENANT_HISTOGRAM_MEAN.name {
        name = "plugin_tenant_values".into();
    }
    Metric {
        name,
        unit,
        kind,
        scale,
        label,
    }
}

/// The label an `_info` metric carries its text in: the stat's name without placeholder
/// (`version`, `config_file`, `module`).
fn info_label(def: &StatDef) -> String {
    let name = def.name.rsplit(':').next().unwrap_or(def.name);
    name.to_string()
}

/// A histogram's help: the help of its mean, without "Mean" (the histogram is the times
/// themselves).
fn histogram_help(def: &StatDef) -> String {
    let help = def.help();
    match help.strip_prefix("Mean ") {
        Some(rest) => {
            let mut chars = rest.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        }
        None => help,
    }
}

/// One metric family: a stat and its series.
struct Family {
    def: &'static StatDef,
    series: Vec<Series>,
}

/// One series: the placeholder's value, if the stat has one, and what it measures.
struct Series {
    label: Option<String>,
    /// The tenant a node's series is for (`NodeContext::tenant`), or a tenant's series at a
    /// server is of: a `tenant` label.
    tenant: Option<String>,
    value: Value,
}

enum Value {
    /// A count or a level in the stat's own unit.
    Int(u64),
    /// A level that is no whole number (a fraction).
    Float(f64),
    /// A text fact.
    Text(String),
    /// A server's state: up or not.
    State(bool),
    /// A latency histogram, microseconds.
    Histogram(Snapshot),
    /// Replies by status (`ReplyStatus::NAMES` order): one series per status, labelled
    /// `status`.
    Statuses(Vec<u64>),
    /// Counters a plugin defined: one series per counter, its name in the label given.
    Named(&'static str, Vec<(String, u64)>),
    /// Histograms a plugin defined: one per histogram, its name in the label given.
    NamedHistograms(&'static str, Vec<(String, Snapshot)>),
}

impl Family {
    fn one(def: &'static StatDef, value: Value) -> Family {
        Family {
            def,
            series: vec![Series {
                label: None,
                tenant: None,
                value,
            }],
        }
    }

    fn each(def: &'static StatDef, series: impl IntoIterator<Item = (String, Value)>) -> Family {
        Family {
            def,
            series: series
                .into_iter()
                .map(|(label, value)| Series {
                    label: Some(label),
                    tenant: None,
                    value,
                })
                .collect(),
        }
    }

    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.series.is_empty() {
            return Ok(());
        }
        let m = metric(self.def);
        let help = match m.kind {
            MetricType::Histogram => histogram_help(self.def),
            _ => self.def.help(),
        };
        let label_key = m.label.unwrap_or("");
        let info_key = info_label(self.def);
        let mut family = encoder.encode_descriptor(&m.name, &help, m.unit.as_ref(), m.kind)?;
        for series in &self.series {
            let mut labels: Vec<(&str, Cow<'_, str>)> = Vec::with_capacity(3);
            if let Some(value) = &series.label {
                labels.push((label_key, Cow::Borrowed(value.as_str())));
            }
            if let Some(tenant) = &series.tenant {
                labels.push(("tenant", Cow::Borrowed(tenant.as_str())));
            }
            match &series.value {
                Value::Int(v) if m.kind == MetricType::Counter => {
                    family
                        .encode_family(&labels)?
                        .encode_counter::<NoLabelSet, _, u64>(v, None)?
                }
                Value::Int(v) if m.scale == 1.0 => {
                    family.encode_family(&labels)?.encode_gauge(v)?
                }
                Value::Int(v) => family
                    .encode_family(&labels)?
                    .encode_gauge(&(*v as f64 * m.scale))?,
                Value::Float(v) => family.encode_family(&labels)?.encode_gauge(v)?,
                Value::Text(text) => {
                    let text = [(info_key.as_str(), label_text(text))];
                    family.encode_family(&labels)?.encode_info(&text)?;
                }
                Value::State(up) => {
                    for (name, on) in [("up", *up), ("down", !*up)] {
                        let mut with_state = labels.clone();
                        with_state.push(("state", Cow::Borrowed(name)));
                        family
                            .encode_family(&with_state)?
                            .encode_gauge(&u64::from(on))?;
                    }
                }
                Value::Statuses(counts) => {
                    let names = switchyard_protocol::ReplyStatus::NAMES;
                    for (name, n) in names.iter().zip(counts) {
                        let mut with_status = labels.clone();
                        with_status.push(("status", Cow::Borrowed(name)));
                        family
                            .encode_family(&with_status)?
                            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                    }
                }
                Value::Histogram(snapshot) => {
                    let (sum, count, buckets) = histogram(snapshot, m.scale);
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                }
                Value::Named(key, counts) => {
                    for (name, n) in counts {
                        let mut with_name = labels.clone();
                        with_name.push((key, Cow::Borrowed(name.as_str())));
                        family
                            .encode_family(&with_name)?
                            .encode_counter::<NoLabelSet, _, u64>(n, None)?;
                    }
                }
                Value::NamedHistograms(key, snapshots) => {
                    for (name, snapshot) in snapshots {
                        let mut with_name = labels.clone();
                        with_name.push((key, Cow::Borrowed(name.as_str())));
                        let (sum, count, buckets) = histogram(snapshot, m.scale);
                        family
                            .encode_family(&with_name)?
                            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A label value for a text: one line, at most [`MAX_LABEL_CHARS`] characters.
fn label_text(text: &str) -> String {
    text.chars()
        .take(MAX_LABEL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `(sum, count, buckets)` of a histogram in the base unit, each bucket counting the values
/// above the bound before it up to its own (the encoder makes them cumulative).
fn histogram(snapshot: &Snapshot, scale: f64) -> (f64, u64, Vec<(f64, u64)>) {
    let mut buckets = Vec::with_capacity(32);
    let mut below = 0;
    for (bound_us, cumulative) in snapshot.cumulative_octaves() {
        if bound_us > HISTOGRAM_TOP_US {
            break;
        }
        buckets.push((bound_us as f64 * scale, cumulative - below));
        below = cumulative;
    }
    (snapshot.sum as f64 * scale, snapshot.count(), buckets)
}

/// Every family, in the order of `stats`, `stats config`, `stats backends`, `stats plugins`
/// and `stats tls`.
fn collect(stats: &RouterStats) -> Vec<Family> {
    let mut out = Vec::with_capacity(128);
    let now = SystemTime::now();
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let uptime = now.duration_since(stats.started).map_or(0, |d| d.as_secs());
    out.push(Family::one(
        &registry::PID,
        Value::Int(u64::from(std::process::id())),
    ));
    out.push(Family::one(&registry::UPTIME, Value::Int(uptime)));
    out.push(Family::one(&registry::TIME, Value::Int(unix)));
    out.push(Family::one(
        &registry::VERSION,
        Value::Text(crate::VERSION_STRING.to_string()),
    ));
    out.push(Family::one(
        &registry::THREADS,
        Value::Int(stats.workers.len() as u64),
    ));

    let mut totals = vec![0u64; WorkerStats::DEFS.len()];
    let mut commands = [0u64; Command::ALL.len()];
    let mut errors = [0u64; Command::ALL.len()];
    for w in &stats.workers {
        for (total, counter) in totals.iter_mut().zip(w.counters()) {
            *total += counter.get();
        }
        for (total, counter) in commands.iter_mut().zip(&w.commands) {
            *total += counter.get();
        }
        for (total, counter) in errors.iter_mut().zip(&w.command_errors) {
            *total += counter.get();
        }
    }
    for (def, total) in WorkerStats::DEFS.iter().zip(totals) {
        out.push(Family::one(def, Value::Int(total)));
    }
    out.push(Family::each(
        &registry::CMD,
        Command::ALL
            .iter()
            .zip(commands)
            .map(|(c, n)| (c.name().to_string(), Value::Int(n))),
    ));
    out.push(Family::each(
        &registry::CMD_ERRORS,
        Command::ALL
            .iter()
            .zip(errors)
            .map(|(c, n)| (c.name().to_string(), Value::Int(n))),
    ));
    let control = &stats.control;
    let spools = control.spools().stats();
    out.push(Family::one(
        &registry::DELETE_SPOOLED,
        Value::Int(spools.spooled.get()),
    ));
    out.push(Family::one(
        &registry::DELETE_REPLAYED,
        Value::Int(spools.replayed.get()),
    ));
    out.push(Family::one(
        &registry::DELETE_SPOOL_DROPPED,
        Value::Int(spools.dropped.get()),
    ));
    out.push(Family::one(
        &registry::DELETE_SPOOL_BYTES,
        Value::Int(spools.bytes()),
    ));
    if let Some(allocations) = crate::stats::allocations() {
        out.push(Family::one(&registry::ALLOCATIONS, Value::Int(allocations)));
    }

    let generation = control.current().load_full();
    config_group(stats, &generation, &mut out);
    backends_group(&generation, &mut out);
    let nodes_from = out.len();
    routes_group(&generation, &mut out);
    plugins_group(&generation, &mut out);
    label_tenants(&generation, &mut out[nodes_from..]);
    tenant_nodes(&generation, &mut out);
    tenants_group(&generation, &mut out);
    experiments_group(&generation, &mut out);

    let identities = stats.identities.counts();
    out.push(Family::each(
        &registry::IDENTITY_CURR,
        identities
            .iter()
            .map(|(name, curr, _)| (name.clone(), Value::Int(*curr))),
    ));
    out.push(Family::each(
        &registry::IDENTITY_TOTAL,
        identities
            .iter()
            .map(|(name, _, total)| (name.clone(), Value::Int(*total))),
    ));
    out
}

/// `stats config`.
fn config_group(stats: &RouterStats, generation: &Generation, out: &mut Vec<Family>) {
    let c = &stats.control;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let int = |def: &'static StatDef, v: u64| Family::one(def, Value::Int(v));
    out.push(int(&registry::GENERATION, generation.number));
    out.push(int(
        &registry::GENERATION_LOADED_AT,
        c.stats.loaded_at.load(relaxed),
    ));
    out.push(int(&registry::GENERATION_FAULTS, generation.faults.get()));
    out.push(int(
        &registry::GENERATIONS_ALIVE,
        c.generations_alive() as u64,
    ));
    out.push(int(&registry::PLUGIN_MODULES, c.modules_cached() as u64));
    out.push(Family::one(
        &registry::CONFIG_FILE,
        Value::Text(generation.config.origin.display().to_string()),
    ));
    out.push(int(&registry::RELOADS, c.stats.reloads.get()));
    out.push(int(&registry::RELOAD_FAILURES, c.stats.failures.get()));
    out.push(int(&registry::ROLLBACKS, c.stats.rollbacks.get()));
    out.push(int(
        &registry::ROLLED_BACK_FROM,
        c.stats.rolled_back_from.load(relaxed),
    ));
    out.push(int(
        &registry::LAST_RELOAD_SUCCESS,
        c.stats.last_success.load(relaxed),
    ));
    let last_error = c.stats.last_error();
    if !last_error.is_empty() {
        out.push(Family::one(
            &registry::LAST_RELOAD_ERROR,
            Value::Text(last_error),
        ));
    }
    let failed_at = c.stats.last_failure.load(relaxed);
    if failed_at != 0 {
        out.push(int(&registry::LAST_RELOAD_FAILURE, failed_at));
    }
    let cleared_at = c.stats.error_cleared.load(relaxed);
    if cleared_at != 0 {
        out.push(int(&registry::LAST_RELOAD_ERROR_CLEARED, cleared_at));
    }
}

/// `stats backends`: a series per server of every stat.
fn backends_group(generation: &Generation, out: &mut Vec<Family>) {
    let servers = &generation.destinations;
    let latencies: Vec<Snapshot> = servers.iter().map(|d| d.health.latency()).collect();
    let each = |value: &dyn Fn(usize) -> Value| {
        (0..servers.len())
            .map(|i| (servers[i].address.to_string(), value(i)))
            .collect::<Vec<_>>()
    };
    out.push(Family::each(
        &registry::BACKEND_STATE,
        each(&|i| Value::State(servers[i].health.is_up())),
    ));
    out.push(Family::each(
        &registry::BACKEND_STATE_SINCE,
        each(&|i| Value::Int(servers[i].health.changed_at_ms())),
    ));
    out.push(Family::each(
        &registry::BACKEND_CONSECUTIVE_FAILURES,
        each(&|i| Value::Int(u64::from(servers[i].health.failures()))),
    ));
    out.push(Family::each(
        &registry::BACKEND_REPLIES,
        each(&|i| Value::Int(servers[i].health.replies())),
    ));
    out.push(Family::each(
        &registry::BACKEND_OUTSTANDING,
        each(&|i| Value::Int(servers[i].health.outstanding().0)),
    ));
    out.push(Family::each(
        &registry::BACKEND_OUTSTANDING_BYTES,
        each(&|i| Value::Int(servers[i].health.outstanding().1)),
    ));
    out.push(Family::each(
        &registry::BACKEND_LATENCY_MEAN,
        each(&|i| Value::Histogram(latencies[i].clone())),
    ));
    for (k, def) in crate::backend::HealthCounters::DEFS.iter().enumerate() {
        out.push(Family::each(
            def,
            each(&|i| {
                let counters = servers[i].health.counters.counters();
                Value::Int(counters.get(k).map_or(0, |c| c.get()))
            }),
        ));
    }
    tenant_backends(generation, out);
}

/// `stats backends`' lines of each tenant at each server: a series per server and tenant
/// that has sent it anything, labelled `server` and `tenant`.
fn tenant_backends(generation: &Generation, out: &mut Vec<Family>) {
    let pairs: Vec<(String, String, crate::tenant::servers::ServerTotals)> = generation
        .tenants
        .iter()
        .flat_map(|t| {
            t.servers
                .iter()
                .flatten()
                .filter(|s| s.active())
                .map(|s| (s.address.to_string(), t.name.to_string(), s.totals()))
        })
        .collect();
    let families: [TenantStat<crate::tenant::servers::ServerTotals>; 7] = [
        (&registry::BACKEND_TENANT_REPLIES, |t| Value::Int(t.replies)),
        (&registry::BACKEND_TENANT_FAILED, |t| Value::Int(t.failed)),
        (&registry::BACKEND_TENANT_TIMEOUTS, |t| {
            Value::Int(t.timeouts)
        }),
        (&registry::BACKEND_TENANT_FAST_FAILED, |t| {
            Value::Int(t.fast_failed)
        }),
        (&registry::BACKEND_TENANT_OUTSTANDING, |t| {
            Value::Int(t.outstanding)
        }),
        (&registry::BACKEND_TENANT_OUTSTANDING_BYTES, |t| {
            Value::Int(t.outstanding_bytes)
        }),
        (&registry::BACKEND_TENANT_LATENCY_MEAN, |t| {
            Value::Histogram(t.latency.clone())
        }),
    ];
    tenant_families(out, &pairs, &families);
}

/// A stat and how its value is read from a tenant's share of a server or node.
type TenantStat<T> = (&'static StatDef, fn(&T) -> Value);

/// A family for each of `families`, with a series for each of `pairs` (its placeholder's
/// label, its tenant, what the stat is read from), labelled `tenant`; none for no pairs.
fn tenant_families<T>(
    out: &mut Vec<Family>,
    pairs: &[(String, String, T)],
    families: &[TenantStat<T>],
) {
    if pairs.is_empty() {
        return;
    }
    for (def, of) in families {
        out.push(Family {
            def,
            series: pairs
                .iter()
                .map(|(label, tenant, totals)| Series {
                    label: Some(label.clone()),
                    tenant: Some(tenant.clone()),
                    value: of(totals),
                })
                .collect(),
        });
    }
}

/// Gives each node series of `families` the `tenant` label of the tenant its node is for.
fn label_tenants(generation: &Generation, families: &mut [Family]) {
    let tenant_of: std::collections::HashMap<&str, &str> = generation
        .nodes
        .iter()
        .filter_map(|n| Some((n.context.label.as_str(), n.context.tenant.as_deref()?)))
        .collect();
    if tenant_of.is_empty() {
        return;
    }
    // `<node>:tenant` itself carries the tenant as its info label.
    let labelled = families
        .iter_mut()
        .filter(|f| f.def.name != registry::PLUGIN_TENANT.name);
    for series in labelled.flat_map(|f| f.series.iter_mut()) {
        series.tenant = series
            .label
            .as_deref()
            .and_then(|node| tenant_of.get(node))
            .map(|t| t.to_string());
    }
}

/// `stats routes`: a series per node of every stat (and per status of its replies).
fn routes_group(generation: &Generation, out: &mut Vec<Family>) {
    let nodes: Vec<(String, crate::stats::RouteTotals)> = generation
        .nodes
        .iter()
        .map(|n| (n.context.label.clone(), n.stats.route_totals()))
        .collect();
    out.push(Family::each(
        &registry::ROUTE_REQUESTS,
        nodes
            .iter()
            .map(|(label, t)| (label.clone(), Value::Int(t.requests))),
    ));
    out.push(Family::each(
        &registry::ROUTE_REPLIES,
        nodes
            .iter()
            .map(|(label, t)| (label.clone(), Value::Statuses(t.replies.to_vec()))),
    ));
    out.push(Family::each(
        &registry::ROUTE_LATENCY_MEAN,
        nodes
            .into_iter()
            .map(|(label, t)| (label, Value::Histogram(t.latency))),
    ));
}

/// What `read` finds in each tenant's share of each node it reaches: `(node, tenant, what)`,
/// for the shares it finds something in.
fn node_shares<T>(
    generation: &Generation,
    read: impl Fn(&crate::generation::Node, &crate::tenant::nodes::NodeTraffic) -> Option<T>,
) -> Vec<(String, String, T)> {
    let mut out = Vec::new();
    for tenant in &generation.tenants {
        for (node, share) in generation.nodes.iter().zip(&tenant.nodes) {
            if let Some(found) = share.as_deref().and_then(|s| read(node, s)) {
                out.push((node.context.label.clone(), tenant.name.to_string(), found));
            }
        }
    }
    out
}

/// `stats routes`' and `stats plugins`' lines of each tenant at each node: a series per node
/// and tenant whose requests reached it (or called its plugin), labelled `node` and `tenant`.
fn tenant_nodes(generation: &Generation, out: &mut Vec<Family>) {
    let calls = node_shares(generation, |_, s| s.called().then(|| s.plugin_totals()));
    let [trap, timeout, bad_plan, out_of_memory, unavailable] = crate::stats::PLUGIN_TENANT_FAULTS;
    let families: [TenantStat<crate::tenant::nodes::PluginTotals>; 7] = [
        (&registry::PLUGIN_TENANT_CALLS, |t| Value::Int(t.calls)),
        (trap, |t| Value::Int(t.faults[0])),
        (timeout, |t| Value::Int(t.faults[1])),
        (bad_plan, |t| Value::Int(t.faults[2])),
        (out_of_memory, |t| Value::Int(t.faults[3])),
        (unavailable, |t| Value::Int(t.faults[4])),
        (&registry::PLUGIN_TENANT_CALL_MEAN, |t| {
            Value::Histogram(t.time.clone())
        }),
    ];
    tenant_families(out, &calls, &families);
    let defined = node_shares(generation, |node, s| {
        s.measured().then(|| s.metrics(&node.context.metrics))
    });
    let families: [TenantStat<crate::plugin::MetricsSnapshot>; 2] = [
        (&registry::PLUGIN_TENANT_COUNTER, |m| {
            Value::Named("counter", m.counters.clone())
        }),
        (&registry::PLUGIN_TENANT_HISTOGRAM_MEAN, |m| {
            Value::NamedHistograms("histogram", m.histograms.clone())
        }),
    ];
    tenant_families(out, &defined, &families);
    let pairs = node_shares(generation, |_, s| s.reached().then(|| s.totals()));
    let families: [TenantStat<crate::stats::RouteTotals>; 3] = [
        (&registry::ROUTE_TENANT_REQUESTS, |t| Value::Int(t.requests)),
        (&registry::ROUTE_TENANT_REPLIES, |t| {
            Value::Statuses(t.replies.to_vec())
        }),
        (&registry::ROUTE_TENANT_LATENCY_MEAN, |t| {
            Value::Histogram(t.latency.clone())
        }),
    ];
    tenant_families(out, &pairs, &families);
}

/// `stats tenants`: a series per tenant of every stat.
fn tenants_group(generation: &Generation, out: &mut Vec<Family>) {
    if generation.tenants.is_empty() {
        return;
    }
    out.push(Family::each(
        &registry::TENANT_CURR_CONNECTIONS,
        generation.tenants.iter().map(|t| {
            let curr = t
                .state
                .connections
                .load(std::sync::atomic::Ordering::Relaxed);
            (t.name.to_string(), Value::Int(curr as u64))
        }),
    ));
    out.push(Family::each(
        &registry::TENANT_OUTSTANDING,
        generation
            .tenants
            .iter()
            .map(|t| (t.name.to_string(), Value::Int(t.state.outstanding()))),
    ));
    for (k, def) in crate::tenant::TenantCounters::DEFS.iter().enumerate() {
        out.push(Family::each(
            def,
            generation.tenants.iter().map(|t| {
                (
                    t.name.to_string(),
                    Value::Int(t.state.counters.counters()[k].get()),
                )
            }),
        ));
    }
    let traffic: Vec<(String, crate::tenant::TrafficTotals)> = generation
        .tenants
        .iter()
        .map(|t| (t.name.to_string(), t.state.traffic_totals()))
        .collect();
    let by_command = |list: &[(&str, u64)]| {
        list.iter()
            .map(|(command, n)| ((*command).to_string(), *n))
            .collect()
    };
    let each = |value: &dyn Fn(&crate::tenant::TrafficTotals) -> Value| {
        traffic
            .iter()
            .map(|(name, t)| (name.clone(), value(t)))
            .collect::<Vec<_>>()
    };
    out.push(Family::each(
        &registry::TENANT_CMD,
        each(&|t| Value::Named("command", by_command(&t.commands))),
    ));
    out.push(Family::each(
        &registry::TENANT_CMD_ERRORS,
        each(&|t| Value::Named("command", by_command(&t.command_errors))),
    ));
    out.push(Family::each(
        &registry::TENANT_GET_HITS,
        each(&|t| Value::Int(t.get_hits)),
    ));
    out.push(Family::each(
        &registry::TENANT_GET_MISSES,
        each(&|t| Value::Int(t.get_misses)),
    ));
    out.push(Family::each(
        &registry::TENANT_BYTES_READ,
        each(&|t| Value::Int(t.bytes_read)),
    ));
    out.push(Family::each(
        &registry::TENANT_BYTES_WRITTEN,
        each(&|t| Value::Int(t.bytes_written)),
    ));
    out.push(Family::each(
        &registry::TENANT_CLIENT_ERRORS,
        each(&|t| Value::Int(t.client_errors)),
    ));
    out.push(Family::each(
        &registry::TENANT_LATENCY_MEAN,
        each(&|t| Value::Histogram(t.latency.clone())),
    ));
}

/// `stats experiments`: a series per experiment of its counts and times, each family over
/// the experiments of the kinds that have it (the from→to cells and mismatch samples stay in
/// `stats experiments` and `/experiments`).
fn experiments_group(generation: &Generation, out: &mut Vec<Family>) {
    use crate::experiment::{Experiment, Side};
    let mut push = |def: &'static StatDef, value: &dyn Fn(&Experiment) -> Option<Value>| {
        let series: Vec<(String, Value)> = generation
            .experiments
            .iter()
            .filter_map(|e| value(e).map(|v| (e.config.name.clone(), v)))
            .collect();
        if !series.is_empty() {
            out.push(Family::each(def, series));
        }
    };
    push(&registry::EXPERIMENT_ENABLED, &|e| {
        Some(Value::Int(u64::from(e.enabled())))
    });
    push(&registry::EXPERIMENT_COMPARED, &|e| {
        (e.rollout().is_none()).then(|| Value::Int(e.totals().0))
    });
    push(&registry::EXPERIMENT_MOVED, &|e| {
        e.decisions().map(|d| Value::Int(d.totals().1))
    });
    push(&registry::EXPERIMENT_FAULTS, &|e| {
        e.decisions().map(|d| Value::Int(d.faults()))
    });
    push(&registry::EXPERIMENT_LIVE_FAULTS, &|e| {
        e.decisions().map(|d| Value::Int(d.live_faults()))
    });
    push(&registry::EXPERIMENT_TIME_MEAN, &|e| {
        e.decisions().map(|d| Value::Histogram(d.time()))
    });
    push(&registry::EXPERIMENT_MISMATCHED, &|e| {
        e.comparison().map(|c| Value::Int(c.totals().1))
    });
    push(&registry::EXPERIMENT_MISMATCH_KIND, &|e| {
        e.comparison().map(|c| {
            Value::Named(
                "kind",
                c.mismatches()
                    .iter()
                    .map(|(k, n)| (k.name().to_string(), *n))
                    .collect(),
            )
        })
    });
    push(&registry::EXPERIMENT_CMD_COMPARED, &|e| {
        e.comparison().map(|c| {
            Value::Named(
                "command",
                c.by_command()
                    .iter()
                    .map(|(cmd, n, _)| (cmd.to_string(), *n))
                    .collect(),
            )
        })
    });
    push(&registry::EXPERIMENT_CMD_AGREED, &|e| {
        e.comparison().map(|c| {
            Value::Named(
                "command",
                c.by_command()
                    .iter()
                    .map(|(cmd, _, a)| (cmd.to_string(), *a))
                    .collect(),
            )
        })
    });
    push(&registry::EXPERIMENT_DROPPED, &|e| {
        e.comparison().map(|c| Value::Int(c.other_counts().1))
    });
    push(&registry::EXPERIMENT_CANDIDATE_ERRORS, &|e| {
        e.comparison()
            .map(|c| c.other_counts().0)
            .or_else(|| e.rollout().map(|r| r.candidate_totals().1))
            .map(Value::Int)
    });
    push(&registry::EXPERIMENT_LIVE_MEAN, &|e| {
        e.comparison()
            .map(|c| c.times().0)
            .or_else(|| e.rollout().map(|r| r.side(Side::Live).2))
            .map(Value::Histogram)
    });
    push(&registry::EXPERIMENT_CANDIDATE_MEAN, &|e| {
        e.comparison()
            .map(|c| c.times().1)
            .or_else(|| e.rollout().map(|r| r.side(Side::Candidate).2))
            .map(Value::Histogram)
    });
    push(&registry::EXPERIMENT_FRACTION, &|e| {
        e.rollout().map(|r| Value::Float(r.fraction()))
    });
    push(&registry::EXPERIMENT_STEP, &|e| {
        e.rollout().map(|r| Value::Int(r.step().0 as u64))
    });
    push(&registry::EXPERIMENT_LIVE_REQUESTS, &|e| {
        e.rollout().map(|r| Value::Int(r.side(Side::Live).0))
    });
    push(&registry::EXPERIMENT_LIVE_ERRORS, &|e| {
        e.rollout().map(|r| Value::Int(r.side(Side::Live).1))
    });
    push(&registry::EXPERIMENT_CANDIDATE_REQUESTS, &|e| {
        e.rollout().map(|r| Value::Int(r.side(Side::Candidate).0))
    });
}

/// `stats plugins`: a series per node of every stat.
fn plugins_group(generation: &Generation, out: &mut Vec<Family>) {
    let nodes: Vec<(&str, crate::stats::NodeTotals)> = generation
        .nodes
        .iter()
        .map(|n| (n.context.label.as_str(), n.stats.totals()))
        .collect();
    let Some((_, first)) = nodes.first() else {
        return;
    };
    for (k, (def, _)) in first.counters.iter().enumerate() {
        out.push(Family::each(
            def,
            nodes
                .iter()
                .map(|(label, t)| (label.to_string(), Value::Int(t.counters[k].1))),
        ));
    }
    out.push(Family::each(
        &registry::PLUGIN_CALL_MEAN,
        nodes
            .iter()
            .map(|(label, t)| (label.to_string(), Value::Histogram(t.time.clone()))),
    ));
    out.push(Family::each(
        first.memory.0,
        nodes
            .iter()
            .map(|(label, t)| (label.to_string(), Value::Int(t.memory.1))),
    ));
    let defined: Vec<(String, crate::plugin::MetricsSnapshot)> = generation
        .nodes
        .iter()
        .filter(|n| !n.context.metrics.is_empty())
        .map(|n| (n.context.label.clone(), n.context.metrics.snapshot()))
        .collect();
    let (counters, histograms): (Vec<_>, Vec<_>) = defined
        .into_iter()
        .map(|(label, s)| {
            (
                (label.clone(), Value::Named("counter", s.counters)),
                (label, Value::NamedHistograms("histogram", s.histograms)),
            )
        })
        .unzip();
    out.push(Family::each(&registry::PLUGIN_COUNTER, counters));
    out.push(Family::each(&registry::PLUGIN_HISTOGRAM_MEAN, histograms));
    out.push(Family::each(
        &registry::PLUGIN_MODULE,
        generation.nodes.iter().map(|n| {
            (
                n.context.label.clone(),
                Value::Text(format!("{} {}", n.module.name(), n.module.hash())),
            )
        }),
    ));
    out.push(Family::each(
        &registry::PLUGIN_TENANT,
        generation.nodes.iter().filter_map(|n| {
            let tenant = n.context.tenant.clone()?;
            Some((n.context.label.clone(), Value::Text(tenant)))
        }),
    ));
}

/// Whether every pool of `generation` has a server up; else why not, one line per pool that
/// has none.
pub fn readiness(generation: &Generation) -> Result<(), String> {
    let mut problems = Vec::new();
    for (pool, node) in generation.config.pools.iter().zip(&generation.nodes) {
        let servers: Vec<&crate::backend::DestinationSpec> = node
            .children
            .iter()
            .filter_map(|child| match child {
                Target::Server { dest, .. } => generation.destinations.get(*dest),
                Target::Node(_) => None,
            })
            .collect();
        if !servers.iter().any(|d| d.health.is_up()) {
            let down: Vec<String> = servers.iter().map(|d| d.address.to_string()).collect();
            problems.push(format!(
                "pool `{}` has no server up ({} down)",
                pool.name,
                down.join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_def() -> Vec<&'static StatDef> {
        registry::DECLARED
            .iter()
            .chain(WorkerStats::DEFS)
            .chain(crate::backend::HealthCounters::DEFS)
            .collect()
    }

    #[test]
    fn names_follow_the_conventions() {
        let name = |def: &StatDef| metric(def).full_name();
        assert_eq!(name(&registry::UPTIME), "switchyard_uptime_seconds");
        assert_eq!(name(&registry::CMD), "switchyard_cmd_total");
        assert_eq!(metric(&registry::CMD).label, Some("command"));
        assert_eq!(name(&WorkerStats::DEFS[1]), "switchyard_connections_total");
        let bytes_read = WorkerStats::DEFS
            .iter()
            .find(|d| d.name == "bytes_read")
            .expect("bytes_read");
        assert_eq!(name(bytes_read), "switchyard_read_bytes_total");
        assert_eq!(name(&registry::VERSION), "switchyard_version_info");
        assert_eq!(name(&registry::BACKEND_STATE), "switchyard_backend_state");
        let timeouts = crate::backend::HealthCounters::DEFS
            .iter()
            .find(|d| d.name == "timeouts")
            .expect("timeouts");
        assert_eq!(name(timeouts), "switchyard_backend_timeouts_total");
        assert_eq!(metric(timeouts).label, Some("server"));
        assert_eq!(name(&registry::GENERATION), "switchyard_generation");
        assert_eq!(
            name(&registry::BACKEND_STATE_SINCE),
            "switchyard_backend_state_since_seconds"
        );
        assert_eq!(metric(&registry::BACKEND_STATE_SINCE).scale, 1e-3);
        assert_eq!(
            name(&registry::BACKEND_LATENCY_MEAN),
            "switchyard_backend_latency_seconds"
        );
        assert_eq!(
            name(&registry::PLUGIN_CALL_MEAN),
            "switchyard_plugin_call_seconds"
        );
        assert_eq!(
            name(&registry::PLUGIN_MEMORY),
            "switchyard_plugin_memory_bytes"
        );
        assert_eq!(metric(&registry::PLUGIN_MEMORY).label, Some("node"));
        assert_eq!(
            name(&registry::IDENTITY_TOTAL),
            "switchyard_tls_identity_connections_total"
        );
        assert_eq!(metric(&registry::IDENTITY_TOTAL).label, Some("identity"));
        assert_eq!(
            histogram_help(&registry::BACKEND_LATENCY_MEAN),
            "Time from a request's queueing to its reply's arrival."
        );
    }

    #[test]
    fn every_stat_has_a_distinct_valid_name() {
        let mut seen = std::collections::HashMap::new();
        for def in every_def() {
            let m = metric(def);
            // A histogram's quantiles are one metric, checked below.
            if m.kind == MetricType::Histogram {
                continue;
            }
            let name = m.full_name();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.contains("__")
                    && !name.ends_with('_'),
                "{} gives {name}",
                def.name
            );
            if let Some(other) = seen.insert(name.clone(), def.name) {
                panic!("{} and {other} are both {name}", def.name);
            }
        }
        for def in [&registry::BACKEND_LATENCY_MEAN, &registry::PLUGIN_CALL_MEAN] {
            let name = metric(def).full_name();
            for suffix in ["", "_bucket", "_sum", "_count"] {
                let series = format!("{name}{suffix}");
                assert!(!seen.contains_key(&series), "{series} is taken");
            }
        }
    }

    #[test]
    fn histogram_buckets_count_what_is_at_or_below_them() {
        let h = crate::stats::Histogram::default();
        for us in [1, 3, 1000, 1000, 1 << 30] {
            h.record_us(us);
        }
        let s = Snapshot::of([&h]);
        let (sum, count, buckets) = histogram(&s, 1e-6);
        assert_eq!(count, 5);
        assert!((sum - (1.0 + 3.0 + 2000.0 + (1u64 << 30) as f64) * 1e-6).abs() < 1e-9);
        assert_eq!(buckets.first(), Some(&(1e-6, 1)));
        assert_eq!(buckets.len(), 27);
        let upto = |bound: f64| -> u64 {
            buckets
                .iter()
                .take_while(|(b, _)| *b <= bound + 1e-12)
                .map(|(_, n)| n)
                .sum()
        };
        assert_eq!(upto(4e-6), 2);
        assert_eq!(upto(1024e-6), 4);
        // The value above the top bound counts in +Inf alone.
        assert_eq!(upto(f64::MAX), 4);
    }
}
