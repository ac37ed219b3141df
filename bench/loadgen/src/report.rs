//! The report: one JSON object (`--json`, field names stable and documented in the README) or a
//! short table.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cli::Config;
use crate::json::Object;
use crate::stats::{ErrorKind, Recorder};
use crate::tls::Negotiated;
use crate::workload::Op;

/// What prefilling did.
#[derive(Debug, Clone)]
pub struct Prefill {
    pub keys: u64,
    pub stored: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

/// Everything a report says.
#[derive(Debug)]
pub struct Report<'a> {
    pub config: &'a Config,
    /// The address the server name resolved to.
    pub addr: String,
    pub rec: &'a Recorder,
    pub prefill: Option<Prefill>,
    /// Idle connections the server had closed by the end.
    pub idle_closed: usize,
    /// The worker and pacer threads' timer slack, if known.
    pub timer_slack_ns: Option<u64>,
    /// With TLS, what the first server's handshake settled on.
    pub tls: Option<Negotiated>,
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy)]
struct Latency {
    min: f64,
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Some(Self {
            min: us(h.min()),
            mean: h.mean() / 1_000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }

    fn json(o: &mut Object<'_>, key: &str, latency: Option<Self>) {
        match latency {
            None => o.null(key),
            Some(l) => o.object(key, |o| {
                o.float("min", l.min, 1);
                o.float("mean", l.mean, 1);
                o.float("p50", l.p50, 1);
                o.float("p90", l.p90, 1);
                o.float("p99", l.p99, 1);
                o.float("p999", l.p999, 1);
                o.float("max", l.max, 1);
            }),
        }
    }
}

impl Report<'_> {
    fn seconds(&self) -> f64 {
        self.config.duration.as_secs_f64()
    }

    fn per_sec(&self, n: u64) -> f64 {
        n as f64 / self.seconds()
    }

    pub fn json(&self, all: &Histogram<u64>) -> String {
        let (c, rec) = (self.config, self.rec);
        let requests = rec.total_requests();
        let keys = rec.hits + rec.misses;
        let mut out = String::new();
        Object::write(&mut out, |o| {
            o.str("server", &c.server);
            o.str("address", &self.addr);
            o.str("mode", if c.rate.is_some() { "open" } else { "closed" });
            match &self.tls {
                None => o.null("tls"),
                Some(t) => o.object("tls", |o| {
                    o.str("server_name", &t.server_name);
                    o.str("version", &t.version);
                    o.str("cipher_suite", &t.cipher_suite);
                    o.bool("client_cert", t.client_cert);
                }),
            }
            o.uint("conns", c.conns as u64);
            o.uint("depth", c.depth as u64);
            o.uint("threads", c.threads.min(c.conns) as u64);
            o.uint("idle_conns", c.idle_conns as u64);
            o.uint("idle_conns_closed", self.idle_closed as u64);
            o.uint("keys", u64::from(c.keys));
            o.uint("value_size_min", c.value_size.min as u64);
            o.uint("value_size_max", c.value_size.max as u64);
            o.object("mix", |o| {
                for op in Op::ALL {
                    o.uint(op.name(), u64::from(c.mix.weight(op)));
                }
            });
            o.uint("mget_keys", c.mget_keys as u64);
            o.uint("seed", c.seed);
            o.float("warmup_s", c.warmup.as_secs_f64(), 3);
            o.float("duration_s", self.seconds(), 3);
            o.opt_float("target_rate", c.rate, 1);
            o.float("achieved_rate", self.per_sec(requests), 1);
            o.uint("requests", requests);
            o.float("requests_per_sec", self.per_sec(requests), 1);
            o.float("keys_per_sec", self.per_sec(keys), 1);
            o.uint("hits", rec.hits);
            o.uint("misses", rec.misses);
            o.opt_float(
                "hit_ratio",
                (keys > 0).then(|| rec.hits as f64 / keys as f64),
                4,
            );
            Latency::json(o, "latency_us", Latency::of(all));
            o.object("ops", |o| {
                for op in Op::ALL {
                    o.object(op.name(), |o| {
                        let n = rec.requests[op.index()];
                        o.uint("requests", n);
                        o.float("requests_per_sec", self.per_sec(n), 1);
                        Latency::json(o, "latency_us", Latency::of(&rec.latency[op.index()]));
                    });
                }
            });
            Latency::json(o, "schedule_lag_us", Latency::of(&rec.lag));
            match self.timer_slack_ns {
                Some(ns) => o.uint("timer_slack_ns", ns),
                None => o.null("timer_slack_ns"),
            }
            o.object("errors", |o| {
                o.uint("total", rec.total_errors());
                for kind in ErrorKind::ALL {
                    o.uint(kind.name(), rec.error_count(kind));
                }
            });
            o.opt_str("error_sample", rec.error_sample.as_deref());
            o.uint("requests_lost", rec.lost);
            o.uint("in_flight_at_end", rec.in_flight_at_end);
            o.uint("backlog_at_end", rec.backlog_at_end);
            o.uint("bytes_sent", rec.bytes_sent);
            o.uint("bytes_received", rec.bytes_received);
            match &self.prefill {
                None => o.null("prefill"),
                Some(p) => o.object("prefill", |o| {
                    o.uint("keys", p.keys);
                    o.uint("stored", p.stored);
                    o.uint("errors", p.errors);
                    o.float("seconds", p.elapsed.as_secs_f64(), 3);
                }),
            }
        });
        out
    }

    pub fn table(&self, all: &Histogram<u64>) -> String {
        let (c, rec) = (self.config, self.rec);
        let mut out = String::new();
        let mode = match c.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".into(),
        };
        let w = |out: &mut String, line: std::fmt::Arguments<'_>| {
            out.write_fmt(line).ok();
            out.push('\n');
        };
        w(
            &mut out,
            format_args!(
                "loadgen {} ({}): {mode}, {} conns x depth {}, {} thread(s), {:.1} s after {:.1} s warmup",
                c.server,
                self.addr,
                c.conns,
                c.depth,
                c.threads,
                self.seconds(),
                c.warmup.as_secs_f64()
            ),
        );
        w(
            &mut out,
            format_args!(
                "mix {}, mget {} keys, {} keys, values {} B, seed {}{}",
                c.mix,
                c.mget_keys,
                c.keys,
                c.value_size,
                c.seed,
                if c.idle_conns > 0 {
                    format!(
                        ", {} idle conns ({} closed by the server)",
                        c.idle_conns, self.idle_closed
                    )
                } else {
                    String::new()
                }
            ),
        );
        if let Some(t) = &self.tls {
            w(
                &mut out,
                format_args!(
                    "TLS: {}, {}, server name {}, {}",
                    t.version,
                    t.cipher_suite,
                    t.server_name,
                    if t.client_cert {
                        "client certificate"
                    } else {
                        "no client certificate"
                    }
                ),
            );
        }
        if let Some(p) = &self.prefill {
            w(
                &mut out,
                format_args!(
                    "prefill: {} of {} keys stored in {:.2} s, {} errors",
                    p.stored,
                    p.keys,
                    p.elapsed.as_secs_f64(),
                    p.errors
                ),
            );
        }
        w(
            &mut out,
            format_args!(
                "{:<6}{:>11}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}",
                "op", "requests", "req/s", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us"
            ),
        );
        let mut row = |name: &str, n: u64, h: &Histogram<u64>| {
            if n == 0 {
                return;
            }
            let l = Latency::of(h);
            let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            w(
                &mut out,
                format_args!(
                    "{:<6}{:>11}{:>12.1}{:>10}{:>10}{:>10}{:>10}{:>10}",
                    name,
                    n,
                    self.per_sec(n),
                    f(l.map(|l| l.p50)),
                    f(l.map(|l| l.p90)),
                    f(l.map(|l| l.p99)),
                    f(l.map(|l| l.p999)),
                    f(l.map(|l| l.max))
                ),
            );
        };
        for op in Op::ALL {
            row(
                op.name(),
                rec.requests[op.index()],
                &rec.latency[op.index()],
            );
        }
        row("all", rec.total_requests(), all);
        let keys = rec.hits + rec.misses;
        if keys > 0 {
            w(
                &mut out,
                format_args!(
                    "keys read {} ({:.1}/s): {} hits, {} misses ({:.2}% hits)",
                    keys,
                    self.per_sec(keys),
                    rec.hits,
                    rec.misses,
                    100.0 * rec.hits as f64 / keys as f64
                ),
            );
        }
        if let Some(rate) = c.rate {
            let lag = Latency::of(&rec.lag);
            w(
                &mut out,
                format_args!(
                    "rate: target {rate:.1}/s, achieved {:.1}/s; send lag p50 {} p99 {} max {} us; backlog at end {}",
                    self.per_sec(rec.total_requests()),
                    lag.map_or("-".into(), |l| format!("{:.1}", l.p50)),
                    lag.map_or("-".into(), |l| format!("{:.1}", l.p99)),
                    lag.map_or("-".into(), |l| format!("{:.1}", l.max)),
                    rec.backlog_at_end
                ),
            );
        }
        let mut errors = format!("errors {}", rec.total_errors());
        for kind in ErrorKind::ALL {
            let n = rec.error_count(kind);
            if n > 0 {
                write!(errors, ", {} {n}", kind.name()).ok();
            }
        }
        write!(
            errors,
            "; lost {}, in flight at end {}",
            rec.lost, rec.in_flight_at_end
        )
        .ok();
        w(&mut out, format_args!("{errors}"));
        if let Some(sample) = &rec.error_sample {
            w(&mut out, format_args!("first error: {sample}"));
        }
        w(
            &mut out,
            format_args!(
                "bytes sent {} ({:.1} MB/s), received {} ({:.1} MB/s)",
                rec.bytes_sent,
                self.per_sec(rec.bytes_sent) / 1e6,
                rec.bytes_received,
                self.per_sec(rec.bytes_received) / 1e6
            ),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Command};

    fn config(args: &[&str]) -> Config {
        match cli::parse(args.iter().copied()).expect("valid") {
            Command::Run(config) => *config,
            Command::Help => panic!("help"),
        }
    }

    /// The field names documented in the README's JSON table.
    fn documented() -> Vec<String> {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## JSON fields")
            .nth(1)
            .expect("a JSON fields section");
        table
            .lines()
            .filter_map(|line| line.strip_prefix("| "))
            .filter_map(|line| line.split(" |").next())
            .flat_map(|cell| cell.split(", "))
            .filter_map(|name| name.strip_prefix('`')?.strip_suffix('`'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_documented_field_is_written_and_every_written_one_documented() {
        let config = config(&["--server", "h:1", "--rate", "10", "--prefill"]);
        let mut rec = Recorder::new(None);
        rec.error(ErrorKind::Timeout, || "a \"quoted\" sample".into());
        let report = Report {
            config: &config,
            addr: "127.0.0.1:1".into(),
            rec: &rec,
            prefill: Some(Prefill {
                keys: 10,
                stored: 10,
                errors: 0,
                elapsed: Duration::from_millis(5),
            }),
            idle_closed: 0,
            timer_slack_ns: Some(1_000),
            tls: Some(Negotiated {
                server_name: "localhost".into(),
                version: "TLSv1_3".into(),
                cipher_suite: "TLS13_AES_256_GCM_SHA384".into(),
                client_cert: true,
            }),
        };
        let json = report.json(&rec.all_latencies().expect("same bounds"));
        let documented = documented();
        assert!(documented.len() > 30, "{documented:?}");
        for name in &documented {
            assert!(
                json.contains(&format!("\"{name}\":")),
                "{name} is not written: {json}"
            );
        }
        let nested = [
            "min",
            "mean",
            "p50",
            "p90",
            "p99",
            "p999",
            "max",
            "get",
            "set",
            "mget",
            "total",
            "error",
            "client_error",
            "server_error",
            "malformed",
            "closed",
            "io",
            "timeout",
            "connect",
            "stored",
            "seconds",
            "server_name",
            "version",
            "cipher_suite",
            "client_cert",
        ];
        for (at, _) in json.match_indices("\":") {
            let written = json[..at].rsplit('"').next().unwrap_or_default();
            let known = documented.iter().any(|d| d == written) || nested.contains(&written);
            assert!(known, "{written} is written but not documented");
        }
        assert!(
            json.contains("\"error_sample\":\"a \\\"quoted\\\" sample\""),
            "{json}"
        );
    }

    #[test]
    fn the_table_names_the_run() {
        let config = config(&["--server", "h:1"]);
        let rec = Recorder::new(None);
        let report = Report {
            config: &config,
            addr: "127.0.0.1:1".into(),
            rec: &rec,
            prefill: None,
            idle_closed: 0,
            timer_slack_ns: None,
            tls: None,
        };
        let table = report.table(&rec.all_latencies().expect("same bounds"));
        assert!(
            table.starts_with("loadgen h:1 (127.0.0.1:1): closed loop, 32 conns x depth 1"),
            "{table}"
        );
        assert!(
            table.contains("errors 0; lost 0, in flight at end 0"),
            "{table}"
        );
    }
}
