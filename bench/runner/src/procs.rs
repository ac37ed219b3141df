//! The processes under test: three memcached, twemproxy (nutcracker) and Switchyard, each on a
//! free loopback port, ready when a connect succeeds; for the TLS workloads, memcached with TLS
//! (`-Z`) and Switchyard with a TLS listener and a TLS pool; and what `/proc` says they cost.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::certs::Certs;

/// How long a process may take to accept its first connection.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A process this run started; killed when dropped.
#[derive(Debug)]
pub struct Service {
    /// Where it takes plaintext connections: `stats`, `flush_all` and the readiness check go
    /// here.
    pub addr: SocketAddr,
    /// memcached with TLS: its TLS listener (`addr` is its plaintext one).
    pub tls_addr: Option<SocketAddr>,
    child: Child,
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time the process has used so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        cpu_time(self.pid())
    }

    /// Resident memory now, and its peak since the last [`Service::reset_peak`], in bytes.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid())
    }

    /// Starts a new peak-RSS window (`/proc/PID/clear_refs`); false where the kernel or our
    /// privileges do not allow it, in which case the peak is since the process started.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// A loopback port nothing listens on right now. Another process may take it before ours
/// binds; [`start`] then retries with another.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `command(port)` on free ports until one accepts a connection.
fn start(
    name: &str,
    mut command: impl FnMut(u16) -> anyhow::Result<Command>,
) -> anyhow::Result<Service> {
    let mut last = String::new();
    for _attempt in 0..5 {
        let port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut child = command(port)?
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("start {name}"))?;
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(Service {
                    addr,
                    tls_addr: None,
                    child,
                });
            }
            if let Some(status) = child.try_wait()? {
                last = format!("{name} exited ({status}) before accepting on port {port}");
                break;
            }
            if started.elapsed() > START_DEADLINE {
                let _killed = child.kill();
                let _reaped = child.wait();
                bail!("{name} did not accept on port {port} within {START_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    bail!("{last}")
}

/// Items up to this size, so the 4 MiB workload fits (memcached's default is 1 MiB).
pub const MAX_ITEM_BYTES: usize = 8 << 20;

/// One memcached, one worker thread (as twemproxy and a one-worker Switchyard have one), taking
/// up to `max_conns` connections (it refuses to start when that is above the open-file limit).
pub fn memcached(max_conns: u64) -> anyhow::Result<Service> {
    start("memcached", |port| {
        let mut cmd = Command::new("memcached");
        cmd.args(["-U", "0", "-l", "127.0.0.1", "-u", "nobody", "-t", "1"])
            .args(["-m", "1024", "-I", "8m", "-c", &max_conns.to_string()])
            .arg("-p")
            .arg(port.to_string())
            .stderr(Stdio::null());
        Ok(cmd)
    })
}

/// One memcached as [`memcached`] starts it, with TLS (`-Z`) on one port and plaintext on
/// another (`-l notls:`), the same process behind both: clients must show a certificate from
/// the bench CA (`ssl_verify_mode=2`), as Switchyard's pool and loadgen do.
///
/// `ssl_session_cache` too: memcached 1.6.18 verifying client certificates without it answers
/// every resumed handshake (which rustls clients attempt on their second connection) with an
/// `internal_error` alert, OpenSSL having no session id context to resume in.
pub fn memcached_tls(max_conns: u64, certs: &Certs) -> anyhow::Result<Service> {
    let mut tls_port = 0;
    let mut service = start("memcached -Z", |port| {
        tls_port = free_port()?;
        let settings = format!(
            "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_verify_mode=2,ssl_session_cache",
            certs.server_cert.display(),
            certs.server_key.display(),
            certs.ca.display()
        );
        let mut cmd = Command::new("memcached");
        cmd.args(["-U", "0", "-u", "nobody", "-t", "1"])
            .args(["-m", "1024", "-I", "8m", "-c", &max_conns.to_string()])
            .args(["-Z", "-o", &settings])
            // The TLS listener first: memcached binds in this order, so once the plaintext
            // one accepts (the readiness check) both do.
            .arg("-l")
            .arg(format!("127.0.0.1:{tls_port}"))
            .arg("-l")
            .arg(format!("notls:127.0.0.1:{port}"))
            .stderr(Stdio::null());
        Ok(cmd)
    })?;
    service.tls_addr = Some(SocketAddr::from(([127, 0, 0, 1], tls_port)));
    Ok(service)
}

/// twemproxy over `servers`: ketama over md5, as the Switchyard config below hashes.
pub fn nutcracker(servers: &[SocketAddr], dir: &Path) -> anyhow::Result<Service> {
    start("nutcracker", |port| {
        let mut yml = format!(
            "bench:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  distribution: ketama\n  \
             auto_eject_hosts: false\n  timeout: 1000\n  servers:\n"
        );
        for s in servers {
            yml.push_str(&format!("   - {s}:1\n"));
        }
        let conf = dir.join("nutcracker.yml");
        std::fs::write(&conf, yml).context("write nutcracker.yml")?;
        let mut cmd = Command::new("nutcracker");
        cmd.arg("-c")
            .arg(&conf)
            .arg("-o")
            .arg(dir.join("nutcracker.log"))
            .arg("-p")
            .arg(dir.join("nutcracker.pid"))
            .args(["-a", "127.0.0.1", "-s"])
            .arg(free_port()?.to_string())
            .stderr(Stdio::null());
        Ok(cmd)
    })
}

/// Switchyard with one ketama pool over `servers`.
pub fn switchyard(
    binary: &Path,
    servers: &[SocketAddr],
    workers: usize,
    dir: &Path,
) -> anyhow::Result<Service> {
    switchyard_as("switchyard", binary, servers, workers, dir, None)
}

/// Switchyard as [`switchyard`] starts it, with `[stats] timings` and `hotkeys` off.
pub fn switchyard_bare(
    binary: &Path,
    servers: &[SocketAddr],
    workers: usize,
    dir: &Path,
) -> anyhow::Result<Service> {
    switchyard_as("switchyard-bare", binary, servers, workers, dir, None)
}

/// Switchyard as a gateway of two tenants over the pool [`switchyard`] has, its listener the
/// tenant `bench`'s (namespace `bench:`, every command but `flush_all`, request and byte buckets
/// far above any load here); `other` has a listener of its own that nothing uses.
pub fn switchyard_tenants(
    binary: &Path,
    servers: &[SocketAddr],
    workers: usize,
    dir: &Path,
) -> anyhow::Result<Service> {
    start_config("switchyard-tenants", binary, dir, |port| {
        let list: Vec<String> = servers.iter().map(|s| format!("\"{s}:1\"")).collect();
        format!(
            "[server]\nworkers = {workers}\nwatch = false\nmax_value_bytes = {MAX_ITEM_BYTES}\n\n\
             [[listeners]]\naddress = \"127.0.0.1:{port}\"\ntenant = \"bench\"\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"other\"\n\n\
             [tenants.bench]\nroute = \"main\"\nrequests_per_second = 100000000\n\
             bytes_per_second = 100000000000\nmax_outstanding = 1000000\n\n\
             [tenants.other]\nroute = \"main\"\nrequests_per_second = 1000\n\n\
             [pools.main]\nservers = [{}]\nhash = {{ plugin = \"ketama\" }}\n",
            list.join(", ")
        )
    })
}

/// Which experiment [`switchyard_experiment`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExperimentKind {
    /// A dry run whose candidate is the same ketama pool with one more server, which the
    /// experiment never contacts (the discard port).
    DryRun,
    /// A shadow whose candidate is a second ketama pool over the same servers: each sampled
    /// single-key request is also sent to them in the background and the two replies compared.
    Shadow,
}

/// Switchyard over the pool [`switchyard`] has, running a `kind` experiment on it at `sample`
/// of the keys.
pub fn switchyard_experiment(
    name: &str,
    binary: &Path,
    servers: &[SocketAddr],
    workers: usize,
    dir: &Path,
    kind: ExperimentKind,
    sample: f64,
) -> anyhow::Result<Service> {
    start_config(name, binary, dir, |port| {
        let list: Vec<String> = servers.iter().map(|s| format!("\"{s}:1\"")).collect();
        let list = list.join(", ");
        let (kind, candidate) = match kind {
            ExperimentKind::DryRun => ("dry-run", format!("{list}, \"127.0.0.1:9:1\"")),
            ExperimentKind::Shadow => ("shadow", list.clone()),
        };
        format!(
            "[server]\nworkers = {workers}\nwatch = false\nmax_value_bytes = {MAX_ITEM_BYTES}\n\n\
             [[listeners]]\naddress = \"127.0.0.1:{port}\"\nroute = \"main\"\n\n\
             [pools.main]\nservers = [{list}]\nhash = {{ plugin = \"ketama\" }}\n\n\
             [pools.candidate]\nservers = [{candidate}]\nhash = {{ plugin = \"ketama\" }}\n\n\
             [experiments.bench]\nkind = \"{kind}\"\nnode = \"main\"\ncandidate = \"candidate\"\n\
             sample = {sample}\n"
        )
    })
}

/// Starts `binary` on the config `toml(port)` makes for its listener's port, written as
/// `name.toml` in `dir` and logging to `name.log`.
fn start_config(
    name: &str,
    binary: &Path,
    dir: &Path,
    toml: impl Fn(u16) -> String,
) -> anyhow::Result<Service> {
    start(name, |port| {
        let conf = dir.join(format!("{name}.toml"));
        std::fs::write(&conf, toml(port)).with_context(|| format!("write {name}.toml"))?;
        let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(&conf)
            .env("SWITCHYARD_LOG", "warn")
            .stderr(log);
        Ok(cmd)
    })
}

/// Switchyard as [`switchyard`] starts it, its config and log named after `name`
/// (`name.toml`, `name.log`). With `tls`, its listener speaks TLS and asks for a client
/// certificate from the bench CA (mutual TLS), and its pool reaches `servers` over TLS,
/// verifying their certificates for 127.0.0.1 and showing the client certificate.
pub fn switchyard_as(
    name: &str,
    binary: &Path,
    servers: &[SocketAddr],
    workers: usize,
    dir: &Path,
    tls: Option<&Certs>,
) -> anyhow::Result<Service> {
    let quoted = |path: &Path| format!("{:?}", path.display().to_string());
    let (listener_tls, pool_tls) = match tls {
        None => (String::new(), String::new()),
        Some(c) => (
            format!(
                "[listeners.tls]\ncert = {}\nkey = {}\nclient_ca = {}\n",
                quoted(&c.server_cert),
                quoted(&c.server_key),
                quoted(&c.ca)
            ),
            format!(
                "[pools.main.tls]\nca = {}\ncert = {}\nkey = {}\n",
                quoted(&c.ca),
                quoted(&c.client_cert),
                quoted(&c.client_key)
            ),
        ),
    };
    start_config(name, binary, dir, |port| {
        let list: Vec<String> = servers.iter().map(|s| format!("\"{s}:1\"")).collect();
        // The bare target differs in this alone.
        let stats = if name == "switchyard-bare" {
            "[stats]\ntimings = false\nhotkeys = false\n\n"
        } else {
            ""
        };
        format!(
            "[server]\nworkers = {workers}\nwatch = false\nmax_value_bytes = {MAX_ITEM_BYTES}\n\n{stats}\
             [[listeners]]\naddress = \"127.0.0.1:{port}\"\nroute = \"main\"\n{listener_tls}\n\
             [pools.main]\nservers = [{}]\nhash = {{ plugin = \"ketama\" }}\n{pool_tls}",
            list.join(", ")
        )
    })
}

/// Sends `line` to `addr` and reads the reply up to a line equal to `end`.
pub fn ask(addr: SocketAddr, line: &str, end: &str) -> anyhow::Result<Vec<String>> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut lines = Vec::new();
    for reply in BufReader::new(stream).lines() {
        let reply = reply.with_context(|| format!("`{line}` to {addr}"))?;
        let done = reply == end || reply.starts_with("ERROR") || reply.starts_with("SERVER_ERROR");
        lines.push(reply);
        if done {
            return Ok(lines);
        }
    }
    bail!("{addr} closed the connection during `{line}`")
}

/// Empties every server, so each run starts from the same state.
pub fn flush_all(servers: &[Service]) -> anyhow::Result<()> {
    for s in servers {
        let reply = ask(s.addr, "flush_all", "OK")?;
        if reply.last().map(String::as_str) != Some("OK") {
            bail!("flush_all on {}: {reply:?}", s.addr);
        }
    }
    Ok(())
}

/// `stats` of a memcached-protocol server as (name, value) pairs.
pub fn stats(addr: SocketAddr) -> anyhow::Result<Vec<(String, String)>> {
    Ok(ask(addr, "stats", "END")?
        .iter()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Clock ticks per second of `/proc/PID/stat` times (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// utime + stime of a process.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5), the 12th and 13th after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .context("malformed /proc/PID/stat")
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_nanos(total * 1_000_000_000 / clock_ticks()))
}

/// Resident set size now and at its peak.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Memory {
        rss: kib("VmRSS:"),
        peak: kib("VmHWM:"),
    })
}

/// The first line a command prints (of stdout and stderr), for the report's versions.
pub fn version_line(program: &str, arg: &str) -> String {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_else(|e| format!("{program}: {e}"))
}

/// The run's scratch directory (config files, logs), removed at the end of a run.
pub fn scratch_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_of_this_process_are_read() {
        let pid = std::process::id();
        let before = cpu_time(pid).expect("read /proc/self/stat");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_time(pid).expect("read again") >= before);
        let m = memory(pid).expect("read /proc/self/status");
        assert!(m.rss > 0 && m.peak >= m.rss, "{m:?}");
    }
}
