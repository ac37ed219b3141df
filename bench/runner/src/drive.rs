//! Running one workload against one target: the load drivers (`loadgen`, memcaslap, idle
//! connections) and what the processes spent meanwhile.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::certs::Certs;
use crate::procs::Service;
use crate::workloads::Load;

/// The lines `loadgen --json` writes to stderr as its measured window opens and closes.
const MEASURE_START: &str = "measure-start";
const MEASURE_END: &str = "measure-end";

/// What `loadgen --json` reports (the fields this runner reads; see bench/loadgen/README.md).
#[derive(Debug, Clone, Deserialize)]
pub struct LoadReport {
    pub requests: u64,
    pub requests_per_sec: f64,
    pub errors: Errors,
    pub error_sample: Option<String>,
    pub latency_us: Percentiles,
    /// With TLS, what the handshake settled on; null in plaintext.
    pub tls: Option<TlsReport>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TlsReport {
    pub version: String,
    pub cipher_suite: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Errors {
    pub total: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// The figures of one run of one workload against one target.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Requests per second.
    pub throughput: f64,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    pub max_us: Option<f64>,
    /// CPU the proxy process spent per request (none for direct memcached).
    pub proxy_cpu_us: Option<f64>,
    /// CPU the three memcached spent per request.
    pub server_cpu_us: Option<f64>,
    /// CPU loadgen spent per request: the client shares the machine, and over TLS it encrypts
    /// too.
    pub loadgen_cpu_us: Option<f64>,
    /// Peak resident memory of the proxy during the run.
    pub proxy_peak_rss: Option<u64>,
    /// Bytes of resident memory per idle client connection.
    pub idle_conn_bytes: Option<f64>,
    /// Heap allocations per request (the counting build of Switchyard only).
    pub allocs_per_request: Option<f64>,
    /// Over TLS: the version and cipher suite loadgen's handshake settled on.
    pub tls: Option<String>,
}

/// Where a target takes client connections, and which processes to charge.
#[derive(Debug)]
pub struct Endpoint<'a> {
    /// The addresses clients connect to: the proxy's, or every memcached for direct.
    pub addrs: Vec<SocketAddr>,
    pub proxy: Option<&'a Service>,
    pub servers: &'a [Service],
    /// The proxy is the counting build of Switchyard: read its `stats allocations` too.
    pub count_allocations: bool,
    /// Clients speak TLS to `addrs`: trusting this CA, showing its client certificate.
    pub tls: Option<&'a Certs>,
}

impl Endpoint<'_> {
    fn addr_list(&self) -> String {
        self.addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the proxy and the servers had spent at one moment.
#[derive(Debug, Clone, Copy)]
struct Spent {
    proxy_cpu: Option<Duration>,
    servers_cpu: Duration,
    proxy_peak_rss: Option<u64>,
    allocations: Option<u64>,
}

impl Spent {
    fn now(target: &Endpoint<'_>) -> anyhow::Result<Spent> {
        Ok(Spent {
            proxy_cpu: target.proxy.map(Service::cpu).transpose()?,
            servers_cpu: servers_cpu(target.servers)?,
            proxy_peak_rss: target
                .proxy
                .map(|p| p.memory().map(|m| m.peak))
                .transpose()?,
            allocations: match target.proxy {
                Some(p) if target.count_allocations => Some(allocations(p)?),
                _ => None,
            },
        })
    }

    /// Starts a window: the proxy's peak RSS is counted from here.
    fn start(target: &Endpoint<'_>) -> anyhow::Result<Spent> {
        if let Some(p) = target.proxy {
            p.reset_peak();
        }
        Spent::now(target)
    }

    /// Charges what was spent since `self` to `requests`.
    fn charge(self, end: Spent, requests: u64, m: &mut Measured) {
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests.max(1) as f64;
        if let (Some(before), Some(after)) = (self.proxy_cpu, end.proxy_cpu) {
            m.proxy_cpu_us = Some(per_request(after.saturating_sub(before)));
        }
        m.proxy_peak_rss = end.proxy_peak_rss;
        if let (Some(before), Some(after)) = (self.allocations, end.allocations) {
            m.allocs_per_request =
                Some(after.saturating_sub(before) as f64 / requests.max(1) as f64);
        }
        m.server_cpu_us = Some(per_request(
            end.servers_cpu.saturating_sub(self.servers_cpu),
        ));
    }
}

/// Heap allocations the counting build of Switchyard has made (`stats`: `allocations`).
fn allocations(proxy: &Service) -> anyhow::Result<u64> {
    crate::procs::stats(proxy.addr)?
        .iter()
        .find(|(k, _)| k == "allocations")
        .and_then(|(_, v)| v.parse().ok())
        .context("the counting build's `stats` has no `allocations`")
}

fn servers_cpu(servers: &[Service]) -> anyhow::Result<Duration> {
    servers.iter().map(Service::cpu).sum()
}

/// Runs `loadgen` with `load` against `target`; `rate` is the open-loop rate, if any.
pub fn loadgen(
    binary: &Path,
    target: &Endpoint<'_>,
    load: &Load,
    rate: Option<f64>,
    duration: f64,
    warmup: f64,
) -> anyhow::Result<Measured> {
    let mut cmd = Command::new(binary);
    cmd.arg("--server")
        .arg(target.addr_list())
        .args(["--conns", &load.conns.to_string()])
        .args(["--depth", &load.depth.to_string()])
        .args(["--keys", &load.keys.to_string()])
        .args(["--value-size", load.value_size])
        .args(["--mix", load.mix])
        .args(["--duration", &duration.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--prefill", "--json", "--mark-window"]);
    if load.idle_conns > 0 {
        cmd.args(["--idle-conns", &load.idle_conns.to_string()]);
    }
    if let Some(rate) = rate {
        cmd.args(["--rate", &format!("{rate:.0}")]);
    }
    if let Some(certs) = target.tls {
        cmd.arg("--tls-ca")
            .arg(&certs.ca)
            .arg("--tls-cert")
            .arg(&certs.client_cert)
            .arg("--tls-key")
            .arg(&certs.client_key);
    }
    // loadgen says on stderr when its measured window opens and closes (after the prefill
    // and the warm-up): CPU is sampled at those two lines, so it is charged to exactly the
    // requests loadgen counts.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", binary.display()))?;
    let stderr = child.stderr.take().context("loadgen's stderr")?;
    let loadgen_pid = child.id();
    let mut start = None;
    let mut end = None;
    let (mut loadgen_start, mut loadgen_end) = (None, None);
    let mut messages = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.context("read loadgen's stderr")?;
        match line.trim() {
            MEASURE_START => {
                start = Some(Spent::start(target)?);
                loadgen_start = crate::procs::cpu_time(loadgen_pid).ok();
            }
            MEASURE_END => {
                end = Some(Spent::now(target)?);
                loadgen_end = crate::procs::cpu_time(loadgen_pid).ok();
            }
            other => {
                messages.push_str(other);
                messages.push('\n');
            }
        }
    }
    let out = child.wait_with_output().context("wait for loadgen")?;
    if !out.status.success() {
        bail!(
            "loadgen against {} failed ({}): {}",
            target.addr_list(),
            out.status,
            messages.trim()
        );
    }
    let (Some(start), Some(end)) = (start, end) else {
        bail!("loadgen printed no measure-start and measure-end lines on stderr");
    };
    let report: LoadReport = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "loadgen's JSON: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        )
    })?;
    if let Some(sample) = &report.error_sample {
        eprintln!(
            "bench: {} errors against {}, e.g. {sample}",
            report.errors.total,
            target.addr_list()
        );
    }
    let mut m = Measured {
        throughput: report.requests_per_sec,
        requests: report.requests,
        errors: report.errors.total,
        p50_us: Some(report.latency_us.p50),
        p99_us: Some(report.latency_us.p99),
        p999_us: Some(report.latency_us.p999),
        max_us: Some(report.latency_us.max),
        tls: report
            .tls
            .map(|t| format!("{}, {}", t.version, t.cipher_suite)),
        ..Measured::default()
    };
    start.charge(end, report.requests, &mut m);
    if let (Some(before), Some(after)) = (loadgen_start, loadgen_end) {
        m.loadgen_cpu_us =
            Some(after.saturating_sub(before).as_secs_f64() * 1e6 / report.requests.max(1) as f64);
    }
    Ok(m)
}

/// Runs memcaslap (90/10 get/set, 64 B values) against `target`.
pub fn memcaslap(target: &Endpoint<'_>, conns: usize, duration: f64) -> anyhow::Result<Measured> {
    if target.tls.is_some() {
        bail!("memcaslap speaks no TLS");
    }
    let start = Spent::start(target)?;
    let out = Command::new("memcaslap")
        .args(["-s", &target.addr_list(), "-T", "1", "-X", "64"])
        .args(["-c", &conns.to_string()])
        .args(["-t", &format!("{}s", duration.round().max(1.0))])
        .output()
        .context("run memcaslap (scripts/setup installs it)")?;
    let end = Spent::now(target)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Its last line: "Run time: 10.0s Ops: 1234567 TPS: 123456 Net_rate: 12.3M/s".
    let field = |line: &str, name: &str| -> Option<f64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("Run time:"))
        .with_context(|| format!("no summary in memcaslap's output: {}", text.trim()))?;
    let ops = field(summary, "Ops:").context("memcaslap summary without Ops")?;
    let tps = field(summary, "TPS:").context("memcaslap summary without TPS")?;
    let mut m = Measured {
        throughput: tps,
        requests: ops as u64,
        ..Measured::default()
    };
    start.charge(end, m.requests, &mut m);
    Ok(m)
}

/// Resident memory one idle client connection costs the target: `conns` connections each send
/// `version` and read the answer (so the target has set up whatever it keeps per client),
/// then stay open while the RSS is read again.
pub fn idle_memory(target: &Endpoint<'_>, conns: usize) -> anyhow::Result<Measured> {
    if target.tls.is_some() {
        bail!("the idle-memory probe speaks no TLS");
    }
    let rss = || -> anyhow::Result<u64> {
        Ok(match target.proxy {
            Some(p) => p.memory()?.rss,
            None => target
                .servers
                .iter()
                .map(|s| s.memory().map(|m| m.rss))
                .sum::<anyhow::Result<u64>>()?,
        })
    };
    let before = rss()?;
    let mut open = Vec::with_capacity(conns);
    for i in 0..conns {
        let addr = target.addrs[i % target.addrs.len()];
        let mut s =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).with_context(|| {
                format!("idle connection {i} to {addr} (is `ulimit -n` high enough?)")
            })?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"version\r\n")?;
        let mut reply = [0u8; 64];
        let n = s.read(&mut reply)?;
        if !reply[..n].starts_with(b"VERSION") {
            bail!(
                "idle connection {i} to {addr}: `version` answered {:?}",
                String::from_utf8_lossy(&reply[..n])
            );
        }
        open.push(s);
    }
    // Let allocator caches settle.
    std::thread::sleep(Duration::from_millis(500));
    let after = rss()?;
    drop(open);
    Ok(Measured {
        idle_conn_bytes: Some(after.saturating_sub(before) as f64 / conns as f64),
        requests: conns as u64,
        ..Measured::default()
    })
}
