//! `cargo run -p switchyard-tests --bin soak -- [MINUTES] [CLIENTS]`: mixed load through a
//! router in front of three real memcached, for MINUTES (default 2), with chaos every few
//! seconds: a server stopped (SIGSTOP) for two seconds, a server killed and restarted on its
//! port, a flood of clients pipelining without reading, and config reloads. Prints a line per
//! interval and totals: requests, errors by kind, lost writes (a stored value read back missing
//! or different while its server was never killed or restarted), and the router's peak RSS.
//! Nothing is asserted: it is a tool for looking at the router under abuse for minutes, where
//! the chaos tests in `tests/e2e` look at one case each for seconds.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard_tests::ports::{accepts, free_port, loopback, poll_until};
use switchyard_tests::{Client, Memcached, TestDir, switchyard_binary};

const SERVERS: usize = 3;
const KEYS_PER_CLIENT: usize = 200;

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    ok: AtomicU64,
    server_errors: AtomicU64,
    other: AtomicU64,
    lost_writes: AtomicU64,
}

/// Which servers hold what each key should be; `epoch` bumps when a server is killed, so a
/// miss on a key stored before its server's last restart is not a lost write.
struct Ledger {
    epochs: Vec<AtomicU64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let minutes: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let deadline = Duration::from_secs_f64(minutes * 60.0);

    let mut servers: Vec<Memcached> = (0..SERVERS).map(|_| Memcached::start()).collect();
    let dir = TestDir::new("soak");
    let port = free_port();
    let specs: Vec<String> = servers.iter().map(Memcached::spec).collect();
    let config = |edit: u64| {
        let list: Vec<String> = specs.iter().map(|s| format!("\"{s}\"")).collect();
        format!(
            "# edit {edit}\n[server]\nworkers = 2\nwatch = true\n\n[[listeners]]\n\
             address = \"127.0.0.1:{port}\"\nroute = \"main\"\n\n[pools.main]\nservers = [{}]\n\
             timeout_ms = 500\n",
            list.join(", ")
        )
    };
    let path = dir.write("switchyard.toml", config(0));
    let log = std::fs::File::create(dir.path().join("switchyard.log")).expect("create the log");
    let mut router: Child = Command::new(switchyard_binary())
        .args(["--config".as_ref(), path.as_os_str()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start switchyard");
    let addr = loopback(port);
    poll_until(Duration::from_secs(20), || accepts(addr).then_some(())).expect("router listens");

    let totals = Arc::new(Totals::default());
    let ledger = Arc::new(Ledger {
        epochs: (0..SERVERS).map(|_| AtomicU64::new(0)).collect(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (totals, ledger, stop) = (totals.clone(), ledger.clone(), stop.clone());
            std::thread::spawn(move || client_loop(c, addr, &totals, &ledger, &stop))
        })
        .collect();

    let started = Instant::now();
    let mut peak_rss = 0usize;
    let mut round = 0u64;
    let mut last = (0u64, 0u64, 0u64, 0u64);
    println!(
        "soak: {minutes} min, {clients} clients, {SERVERS} memcached, router pid {}",
        router.id()
    );
    while started.elapsed() < deadline {
        round += 1;
        let action = match round % 4 {
            0 => {
                let s = (round as usize / 4) % SERVERS;
                servers[s].pause();
                std::thread::sleep(Duration::from_secs(2));
                servers[s].resume();
                format!("stopped server {s} for 2 s")
            }
            1 => {
                let s = (round as usize / 4) % SERVERS;
                ledger.epochs[s].fetch_add(1, Ordering::SeqCst);
                servers[s].restart();
                ledger.epochs[s].fetch_add(1, Ordering::SeqCst);
                format!("restarted server {s}")
            }
            2 => {
                flood(addr, Duration::from_secs(2));
                "flooded with 4 clients pipelining without reading for 2 s".to_string()
            }
            _ => {
                dir.write("switchyard.toml", config(round));
                std::thread::sleep(Duration::from_secs(1));
                "edited the config".to_string()
            }
        };
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss(router.id());
        peak_rss = peak_rss.max(rss);
        let now = (
            totals.requests.load(Ordering::Relaxed),
            totals.server_errors.load(Ordering::Relaxed),
            totals.other.load(Ordering::Relaxed),
            totals.lost_writes.load(Ordering::Relaxed),
        );
        println!(
            "{:>6.1}s {action:<60} requests +{} server errors +{} other +{} lost writes +{} RSS {} MiB",
            started.elapsed().as_secs_f64(),
            now.0 - last.0,
            now.1 - last.1,
            now.2 - last.2,
            now.3 - last.3,
            rss >> 20
        );
        last = now;
        if let Ok(Some(status)) = router.try_wait() {
            println!("the router exited: {status}");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    println!(
        "total: {} requests, {} ok, {} SERVER_ERROR, {} other replies, {} lost writes; router peak RSS {} MiB (VmHWM {} MiB)",
        totals.requests.load(Ordering::Relaxed),
        totals.ok.load(Ordering::Relaxed),
        totals.server_errors.load(Ordering::Relaxed),
        totals.other.load(Ordering::Relaxed),
        totals.lost_writes.load(Ordering::Relaxed),
        peak_rss >> 20,
        status_kb(router.id(), "VmHWM") >> 10,
    );
    let _ = router.kill();
    let _ = router.wait();
}

/// One client: sets and gets over its own keys, checking every value read back.
fn client_loop(c: usize, addr: SocketAddr, totals: &Totals, ledger: &Ledger, stop: &AtomicBool) {
    let mut client = Client::connect(addr).with_deadline(Duration::from_secs(10));
    // key -> (value, the server epochs when it was stored).
    let mut stored: HashMap<String, (String, Vec<u64>)> = HashMap::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let key = format!("soak:{c}:{}", i % KEYS_PER_CLIENT);
        let count = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
            totals.requests.fetch_add(1, Ordering::Relaxed);
        };
        if i.is_multiple_of(3) {
            let value = format!("{c}-{i}");
            let reply =
                client.request(format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes());
            if reply == b"STORED\r\n" {
                count(&totals.ok);
                let epochs = ledger
                    .epochs
                    .iter()
                    .map(|e| e.load(Ordering::SeqCst))
                    .collect();
                stored.insert(key, (value, epochs));
            } else {
                stored.remove(&key);
                classify(&reply, totals);
            }
        } else {
            let reply = client.request(format!("get {key}\r\n").as_bytes());
            if reply.starts_with(b"VALUE ") || reply == b"END\r\n" {
                count(&totals.ok);
                if let Some((value, epochs)) = stored.get(&key) {
                    let same_epochs = ledger
                        .epochs
                        .iter()
                        .zip(epochs)
                        .all(|(e, then)| e.load(Ordering::SeqCst) == *then);
                    let text = String::from_utf8_lossy(&reply);
                    if same_epochs && !text.contains(&format!("\r\n{value}\r\n")) {
                        totals.lost_writes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else {
                classify(&reply, totals);
            }
        }
        i += 1;
    }
}

fn classify(reply: &[u8], totals: &Totals) {
    totals.requests.fetch_add(1, Ordering::Relaxed);
    if reply.starts_with(b"SERVER_ERROR") {
        totals.server_errors.fetch_add(1, Ordering::Relaxed);
    } else {
        totals.other.fetch_add(1, Ordering::Relaxed);
    }
}

/// Four clients pipelining gets without reading, for `for_`; then closed.
fn flood(addr: SocketAddr, for_: Duration) {
    let request = "get soak:0:1\r\n".repeat(20_000).into_bytes();
    let streams: Vec<TcpStream> = (0..4)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let writers: Vec<_> = streams
        .iter()
        .filter_map(|s| s.try_clone().ok())
        .map(|mut s| {
            let request = request.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(&request);
            })
        })
        .collect();
    std::thread::sleep(for_);
    for s in &streams {
        let _ = s.shutdown(Shutdown::Both);
    }
    for w in writers {
        let _ = w.join();
    }
}

fn status_kb(pid: u32, field: &str) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn rss(pid: u32) -> usize {
    status_kb(pid, "VmRSS") * 1024
}
