//! Real twemproxy (`nutcracker`) processes: the reference for where ketama puts a key.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::client::Client;
use crate::ports::{STARTUP_DEADLINE, accepts, free_port, loopback, poll_until};
use crate::tempdir::TestDir;

const PORT_ATTEMPTS: usize = 10;

static NEXT_POOL: AtomicUsize = AtomicUsize::new(0);

/// A twemproxy instance with one pool, `hash: md5`, `distribution: ketama`, killed on drop.
#[derive(Debug)]
pub struct Nutcracker {
    child: Option<Child>,
    addr: SocketAddr,
    dir: TestDir,
}

impl Nutcracker {
    /// Starts nutcracker in front of `servers`, each a twemproxy server spec
    /// (`host:port:weight [name]`, e.g. from [`crate::Memcached::spec`]), with ketama over md5
    /// and auto-ejection off. Returns once it accepts connections.
    ///
    /// Panics (failing the test, never skipping it) if `nutcracker` is not installed.
    pub fn start(servers: &[String]) -> Nutcracker {
        let dir = TestDir::new("nutcracker");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let pool = format!(
                "switchyard_test_{}_{}",
                std::process::id(),
                NEXT_POOL.fetch_add(1, Ordering::Relaxed)
            );
            let (port, stats_port) = (free_port(), free_port());
            if port == stats_port {
                continue;
            }
            let conf = dir.write("nutcracker.yml", yaml(&pool, port, servers));
            match spawn(&dir, &conf, &pool, port, stats_port) {
                Ok(child) => {
                    return Nutcracker {
                        child: Some(child),
                        addr: loopback(port),
                        dir,
                    };
                }
                Err(e) => last_error = e,
            }
        }
        panic!("nutcracker did not start after {PORT_ATTEMPTS} attempts; last: {last_error}");
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new client connection.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Its log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nutcracker.log")).unwrap_or_default()
    }
}

impl Drop for Nutcracker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take()
            && child.kill().is_ok()
            && let Err(e) = child.wait()
        {
            eprintln!("warning: reaping nutcracker at {}: {e}", self.addr);
        }
    }
}

/// twemproxy's YAML for one pool.
fn yaml(pool: &str, port: u16, servers: &[String]) -> String {
    let mut yaml = format!(
        "{pool}:\n  listen: 127.0.0.1:{port}\n  hash: md5\n  distribution: ketama\n  \
         timeout: 2000\n  auto_eject_hosts: false\n  servers:\n"
    );
    for server in servers {
        yaml.push_str(&format!("   - {server}\n"));
    }
    yaml
}

fn spawn(
    dir: &TestDir,
    conf: &std::path::Path,
    pool: &str,
    port: u16,
    stats_port: u16,
) -> Result<Child, String> {
    let log = dir.path().join("nutcracker.log");
    let mut child = Command::new("nutcracker")
        .arg("-c")
        .arg(conf)
        .arg("-o")
        .arg(&log)
        .arg("-p")
        .arg(dir.path().join("nutcracker.pid"))
        .args(["-a", "127.0.0.1", "-s", &stats_port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run nutcracker ({e}): install it (`apt-get install nutcracker`; .ci/run does)"
            )
        });
    // Ready when its stats port reports our (unique) pool and its listener accepts; it binds
    // the stats port first, so both are checked, and it must still be running after both.
    let mut exited = None;
    let ready = poll_until(STARTUP_DEADLINE, || {
        match child.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                return Some(false);
            }
            Ok(None) => {}
            Err(e) => panic!("wait for nutcracker: {e}"),
        }
        let ours = stats(loopback(stats_port)).is_some_and(|json| json.contains(pool));
        (ours && accepts(loopback(port)) && matches!(child.try_wait(), Ok(None))).then_some(true)
    });
    match (ready, exited) {
        (Some(true), _) => Ok(child),
        (_, Some(status)) => Err(format!(
            "nutcracker on port {port} exited with {status}: {}",
            std::fs::read_to_string(&log).unwrap_or_default().trim()
        )),
        _ => {
            // It never became ready; whether it is still there to kill does not matter.
            let _killed = child.kill();
            let _reaped = child.wait();
            Err(format!(
                "nutcracker on port {port} was not ready within {STARTUP_DEADLINE:?}"
            ))
        }
    }
}

/// The JSON that twemproxy's stats port sends on connect (it then closes).
fn stats(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(100)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut json = String::new();
    stream.read_to_string(&mut json).ok()?;
    Some(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Memcached;

    #[test]
    fn spreads_keys_over_its_servers() {
        let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
        let refs: Vec<&Memcached> = servers.iter().collect();
        let proxy = Nutcracker::start(&crate::specs(&refs));
        let keys: Vec<String> = (0..60).map(|i| format!("spread-{i}")).collect();
        crate::store_all(&mut proxy.client(), &keys, b"v");
        let mut per_server = [0usize; 3];
        for server in crate::locate(&refs, &keys) {
            per_server[server] += 1;
        }
        assert!(
            per_server.iter().all(|&n| n > 0),
            "{per_server:?}\n{}",
            proxy.log()
        );
    }
}
