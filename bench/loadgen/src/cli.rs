//! The command line: flags, their defaults, and the checks that turn them into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail, ensure};

use crate::reply::MAX_VALUE_BYTES;
use crate::workload::{Mix, Op, SizeRange};

/// Load connections: as many as memcaslap's usual `-c 32`.
pub const DEFAULT_CONNS: usize = 32;
/// One request in flight per connection: the plain request-reply client most applications are.
pub const DEFAULT_DEPTH: usize = 1;
/// Keys: small enough to prefill in a moment, large enough to spread over any pool.
pub const DEFAULT_KEYS: u32 = 10_000;
/// Value bytes: the small values of a typical cache (memcaslap's `-X 64`).
pub const DEFAULT_VALUE_SIZE: usize = 64;
/// A read-mostly cache load, as memcaslap's default.
pub const DEFAULT_MIX: Mix = Mix {
    weights: [90, 10, 0],
};
/// Keys in a multi-get.
pub const DEFAULT_MGET_KEYS: usize = 10;
/// Seconds measured.
pub const DEFAULT_DURATION: f64 = 10.0;
/// Seconds run before measuring, so that connections, caches and the server's own buffers
/// have settled.
pub const DEFAULT_WARMUP: f64 = 1.0;
/// A fixed seed, so that two runs with the same flags send the same requests.
pub const DEFAULT_SEED: u64 = 1;
/// One worker thread, leaving the other cores to the server under test.
pub const DEFAULT_THREADS: usize = 1;
/// Seconds a connection may sit with requests in flight and no byte moving before it counts as
/// failed and is reopened.
pub const DEFAULT_TIMEOUT: f64 = 5.0;

pub const USAGE: &str = "\
usage: loadgen --server HOST:PORT [options]

Drives a memcached-protocol server with get/set/multi-get load and reports throughput, hits,
errors and latency percentiles (HDR histogram). Every reply is checked.

  --server HOST:PORT[,HOST:PORT...]
                         server to load (required); with several, connection i talks to
                         server i mod n, and --prefill sets every key on every server
  --conns N              load connections (default 32)
  --depth D              requests in flight per connection at most (default 1)
  --keys K               key space size; keys are key:<n>, n zero-padded (default 10000)
  --value-size B|MIN-MAX value bytes, or a range drawn uniformly (default 64)
  --mix get=G,set=S,mget=M  relative weights of the operations (default get=90,set=10,mget=0)
  --mget-keys N          distinct keys in a multi-get (default 10)
  --duration SECS        seconds measured (default 10)
  --warmup SECS          seconds run first and not measured (default 1)
  --rate R               open loop: R requests/s in all, each connection at fixed intervals,
                         latency counted from the scheduled send time; without it, closed loop
  --idle-conns M         connections opened before the others and held idle to the end
  --prefill              set every key once before the run, so that gets hit
  --seed S               seed of the key, operation and size choices (default 1)
  --threads T            worker threads (default 1)
  --timeout SECS         no byte moving this long with requests in flight: the connection
                         is counted failed and reopened (default 5)
  --tls-ca FILE          speak TLS to the server, trusting the CA certificates in FILE (PEM)
  --tls-cert FILE        with --tls-key: a client certificate chain (PEM), shown when the
                         server asks for one (mutual TLS)
  --tls-key FILE         the client certificate's private key (PEM)
  --tls-server-name NAME the name the server's certificate must carry (default: each
                         server's host as written in --server; an IP address is checked
                         against the certificate's IP entries)
  --json                 print one JSON object instead of a table
  --mark-window          write `measure-start` and `measure-end` lines to stderr as the
                         measured window opens and closes
  -h, --help             print this
";

/// A validated command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: String,
    pub conns: usize,
    pub depth: usize,
    pub keys: u32,
    pub value_size: SizeRange,
    pub mix: Mix,
    pub mget_keys: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Open loop: requests per second in all.
    pub rate: Option<f64>,
    pub idle_conns: usize,
    pub prefill: bool,
    pub seed: u64,
    pub threads: usize,
    pub timeout: Duration,
    pub json: bool,
    /// `measure-start` / `measure-end` on stderr around the measured window.
    pub mark_window: bool,
    /// TLS to the server (`--tls-ca` and the flags beside it); plaintext without it.
    pub tls: Option<TlsOptions>,
}

/// What the `--tls-*` flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA certificates, PEM: the server's certificate must chain to one of them.
    pub ca: PathBuf,
    /// A client certificate chain and its private key, PEM.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name every server's certificate must carry; `None`: each server's host.
    pub server_name: Option<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Boxed: a config is large beside `Help`.
    Run(Box<Config>),
    Help,
}

/// Reads the arguments (without the program name).
pub fn parse<I, S>(args: I) -> anyhow::Result<Command>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut server = None;
    let mut config = Config {
        server: String::new(),
        conns: DEFAULT_CONNS,
        depth: DEFAULT_DEPTH,
        keys: DEFAULT_KEYS,
        value_size: SizeRange {
            min: DEFAULT_VALUE_SIZE,
            max: DEFAULT_VALUE_SIZE,
        },
        mix: DEFAULT_MIX,
        mget_keys: DEFAULT_MGET_KEYS,
        duration: seconds(DEFAULT_DURATION),
        warmup: seconds(DEFAULT_WARMUP),
        rate: None,
        idle_conns: 0,
        prefill: false,
        seed: DEFAULT_SEED,
        threads: DEFAULT_THREADS,
        timeout: seconds(DEFAULT_TIMEOUT),
        json: false,
        mark_window: false,
        tls: None,
    };
    let (mut tls_ca, mut tls_cert, mut tls_key, mut tls_server_name) = (None, None, None, None);
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--prefill" | "--json" | "--mark-window" => {
                ensure!(inline.is_none(), "{flag} takes no value");
                match flag.as_str() {
                    "--prefill" => config.prefill = true,
                    "--json" => config.json = true,
                    _ => config.mark_window = true,
                }
                continue;
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        let v = match flag.as_str() {
            "--server" | "--conns" | "--depth" | "--keys" | "--value-size" | "--mix"
            | "--mget-keys" | "--duration" | "--warmup" | "--rate" | "--idle-conns" | "--seed"
            | "--threads" | "--timeout" | "--tls-ca" | "--tls-cert" | "--tls-key"
            | "--tls-server-name" => value()?,
            _ => bail!("unknown flag {flag:?} (see --help)"),
        };
        let what = || format!("{flag} {v}");
        match flag.as_str() {
            "--server" => server = Some(v.clone()),
            "--conns" => config.conns = number(&v).with_context(what)?,
            "--depth" => config.depth = number(&v).with_context(what)?,
            "--keys" => config.keys = number(&v).with_context(what)?,
            "--value-size" => config.value_size = size_range(&v).with_context(what)?,
            "--mix" => config.mix = mix(&v).with_context(what)?,
            "--mget-keys" => config.mget_keys = number(&v).with_context(what)?,
            "--duration" => config.duration = secs(&v).with_context(what)?,
            "--warmup" => config.warmup = secs(&v).with_context(what)?,
            "--rate" => config.rate = Some(positive(&v).with_context(what)?),
            "--idle-conns" => config.idle_conns = number(&v).with_context(what)?,
            "--seed" => config.seed = number(&v).with_context(what)?,
            "--threads" => config.threads = number(&v).with_context(what)?,
            "--timeout" => config.timeout = secs(&v).with_context(what)?,
            "--tls-ca" => tls_ca = Some(PathBuf::from(&v)),
            "--tls-cert" => tls_cert = Some(PathBuf::from(&v)),
            "--tls-key" => tls_key = Some(PathBuf::from(&v)),
            "--tls-server-name" => {
                ensure!(!v.is_empty(), "--tls-server-name needs a name");
                tls_server_name = Some(v.clone());
            }
            _ => bail!("unknown flag {flag:?} (see --help)"),
        }
    }
    config.server = server.ok_or_else(|| anyhow!("--server HOST:PORT is required (see --help)"))?;
    config.tls = tls_options(tls_ca, tls_cert, tls_key, tls_server_name)?;
    validate(&config)?;
    Ok(Command::Run(Box::new(config)))
}

fn validate(c: &Config) -> anyhow::Result<()> {
    ensure!(c.conns >= 1, "--conns must be at least 1");
    ensure!(c.depth >= 1, "--depth must be at least 1");
    ensure!(c.keys >= 1, "--keys must be at least 1");
    ensure!(c.threads >= 1, "--threads must be at least 1");
    ensure!(!c.duration.is_zero(), "--duration must be more than 0");
    ensure!(!c.timeout.is_zero(), "--timeout must be more than 0");
    ensure!(
        c.mix.total() > 0,
        "--mix gives every operation a weight of 0"
    );
    if c.mix.weight(Op::Mget) > 0 {
        ensure!(
            (1..=c.keys as usize).contains(&c.mget_keys),
            "--mget-keys must be between 1 and --keys ({})",
            c.keys
        );
    }
    Ok(())
}

/// The `--tls-*` flags together: TLS only with a CA to trust, a client certificate only with
/// its key.
fn tls_options(
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
) -> anyhow::Result<Option<TlsOptions>> {
    let Some(ca) = ca else {
        for (flag, given) in [
            ("--tls-cert", cert.is_some()),
            ("--tls-key", key.is_some()),
            ("--tls-server-name", server_name.is_some()),
        ] {
            ensure!(
                !given,
                "{flag} needs --tls-ca (the CA the server's certificate chains to)"
            );
        }
        return Ok(None);
    };
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => bail!("--tls-cert needs --tls-key"),
        (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
    };
    Ok(Some(TlsOptions {
        ca,
        client,
        server_name,
    }))
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn number<T: std::str::FromStr>(s: &str) -> anyhow::Result<T> {
    s.parse().map_err(|_| anyhow!("not a whole number"))
}

/// A finite number above zero.
fn positive(s: &str) -> anyhow::Result<f64> {
    let v: f64 = s.parse().map_err(|_| anyhow!("not a number"))?;
    ensure!(v.is_finite() && v > 0.0, "must be a number above 0");
    Ok(v)
}

/// Seconds, fractions allowed: `0`, `2.5`.
fn secs(s: &str) -> anyhow::Result<Duration> {
    let v: f64 = s.parse().map_err(|_| anyhow!("not a number of seconds"))?;
    Duration::try_from_secs_f64(v).map_err(|_| anyhow!("not a number of seconds"))
}

/// `64` or `100-1000`.
fn size_range(s: &str) -> anyhow::Result<SizeRange> {
    let (min, max) = match s.split_once('-') {
        Some((min, max)) => (number(min)?, number(max)?),
        None => {
            let size = number(s)?;
            (size, size)
        }
    };
    ensure!(min <= max, "the range's minimum is above its maximum");
    ensure!(
        max <= MAX_VALUE_BYTES,
        "values are at most {MAX_VALUE_BYTES} bytes"
    );
    Ok(SizeRange { min, max })
}

/// `get=90,set=10,mget=0`; operations left out weigh 0.
fn mix(s: &str) -> anyhow::Result<Mix> {
    let mut weights = [None; 3];
    for part in s.split(',') {
        let (name, weight) = part
            .split_once('=')
            .ok_or_else(|| anyhow!("{part:?} is not op=weight"))?;
        let op = Op::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| anyhow!("unknown operation {name:?} (get, set, mget)"))?;
        ensure!(weights[op.index()].is_none(), "{name} given twice");
        weights[op.index()] = Some(number(weight).with_context(|| format!("weight of {name}"))?);
    }
    Ok(Mix {
        weights: weights.map(|w| w.unwrap_or(0)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> anyhow::Result<Config> {
        match parse(args.iter().copied())? {
            Command::Run(config) => Ok(*config),
            Command::Help => bail!("help"),
        }
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", run(args).expect_err("an error"))
    }

    #[test]
    fn defaults() {
        let c = run(&["--server", "127.0.0.1:11211"]).expect("valid");
        assert_eq!(c.conns, 32);
        assert_eq!(c.depth, 1);
        assert_eq!(c.keys, 10_000);
        assert_eq!(c.value_size, SizeRange { min: 64, max: 64 });
        assert_eq!(c.mix.weights, [90, 10, 0]);
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.warmup, Duration::from_secs(1));
        assert_eq!(
            (c.rate, c.idle_conns, c.prefill, c.json),
            (None, 0, false, false)
        );
        assert_eq!(c.threads, 1);
        assert_eq!(c.tls, None);
    }

    #[test]
    fn tls_flags() {
        let c = run(&["--server=h:1", "--tls-ca", "ca.pem"]).expect("valid");
        assert_eq!(
            c.tls,
            Some(TlsOptions {
                ca: "ca.pem".into(),
                client: None,
                server_name: None
            })
        );
        let c = run(&[
            "--server=h:1",
            "--tls-ca=ca.pem",
            "--tls-cert=c.pem",
            "--tls-key=k.pem",
            "--tls-server-name=localhost",
        ])
        .expect("valid");
        assert_eq!(
            c.tls,
            Some(TlsOptions {
                ca: "ca.pem".into(),
                client: Some(("c.pem".into(), "k.pem".into())),
                server_name: Some("localhost".into())
            })
        );
        let s = "--server=h:1";
        assert_eq!(
            error(&[s, "--tls-cert=c.pem", "--tls-key=k.pem"]),
            "--tls-cert needs --tls-ca (the CA the server's certificate chains to)"
        );
        assert_eq!(
            error(&[s, "--tls-ca=ca.pem", "--tls-cert=c.pem"]),
            "--tls-cert needs --tls-key"
        );
        assert_eq!(
            error(&[s, "--tls-ca=ca.pem", "--tls-key=k.pem"]),
            "--tls-key needs --tls-cert"
        );
        assert_eq!(error(&[s, "--tls-ca"]), "--tls-ca needs a value");
    }

    #[test]
    fn every_flag() {
        let c = run(&[
            "--server=h:1",
            "--conns",
            "4",
            "--depth=16",
            "--keys",
            "100",
            "--value-size",
            "10-4194304",
            "--mix",
            "mget=1,get=2",
            "--mget-keys",
            "5",
            "--duration",
            "2.5",
            "--warmup",
            "0",
            "--rate",
            "1e4",
            "--idle-conns",
            "7",
            "--prefill",
            "--seed",
            "9",
            "--threads",
            "2",
            "--timeout",
            "0.5",
            "--json",
        ])
        .expect("valid");
        assert_eq!(c.server, "h:1");
        assert_eq!((c.conns, c.depth, c.keys, c.mget_keys), (4, 16, 100, 5));
        assert_eq!(
            c.value_size,
            SizeRange {
                min: 10,
                max: 4 << 20
            }
        );
        assert_eq!(c.mix.weights, [2, 0, 1]);
        assert_eq!(c.duration, Duration::from_millis(2500));
        assert_eq!(c.warmup, Duration::ZERO);
        assert_eq!(c.rate, Some(10_000.0));
        assert_eq!(
            (c.idle_conns, c.prefill, c.seed, c.threads),
            (7, true, 9, 2)
        );
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert!(c.json);
    }

    #[test]
    fn help() {
        assert_eq!(parse(["--conns", "3", "-h"]).expect("help"), Command::Help);
    }

    #[test]
    fn mistakes_are_named() {
        let s = "--server=h:1";
        assert_eq!(error(&[]), "--server HOST:PORT is required (see --help)");
        assert_eq!(
            error(&[s, "--bogus"]),
            "unknown flag \"--bogus\" (see --help)"
        );
        assert_eq!(error(&[s, "--conns"]), "--conns needs a value");
        assert_eq!(error(&[s, "--conns", "x"]), "--conns x: not a whole number");
        assert_eq!(error(&[s, "--conns", "0"]), "--conns must be at least 1");
        assert_eq!(
            error(&[s, "--depth", "-1"]),
            "--depth -1: not a whole number"
        );
        assert_eq!(
            error(&[s, "--duration", "0"]),
            "--duration must be more than 0"
        );
        assert_eq!(
            error(&[s, "--duration", "-1"]),
            "--duration -1: not a number of seconds"
        );
        assert_eq!(
            error(&[s, "--rate", "0"]),
            "--rate 0: must be a number above 0"
        );
        assert_eq!(
            error(&[s, "--rate", "inf"]),
            "--rate inf: must be a number above 0"
        );
        assert_eq!(
            error(&[s, "--value-size", "9-3"]),
            "--value-size 9-3: the range's minimum is above its maximum"
        );
        assert_eq!(
            error(&[s, "--value-size", "2000000000"]),
            "--value-size 2000000000: values are at most 1073741824 bytes"
        );
        assert_eq!(
            error(&[s, "--mix", "get=1,put=2"]),
            "--mix get=1,put=2: unknown operation \"put\" (get, set, mget)"
        );
        assert_eq!(
            error(&[s, "--mix", "get=1,get=2"]),
            "--mix get=1,get=2: get given twice"
        );
        assert_eq!(
            error(&[s, "--mix", "get"]),
            "--mix get: \"get\" is not op=weight"
        );
        assert_eq!(
            error(&[s, "--mix", "get=0"]),
            "--mix gives every operation a weight of 0"
        );
        assert_eq!(
            error(&[s, "--mix", "mget=1", "--keys", "5", "--mget-keys", "6"]),
            "--mget-keys must be between 1 and --keys (5)"
        );
        assert_eq!(error(&[s, "--json=yes"]), "--json takes no value");
    }
}
