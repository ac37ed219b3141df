//! The router as its own process (the built `switchyard` binary), for tests that must read its
//! memory or threads from `/proc`, stop it, signal it, run it under a low open-file limit, or
//! need more file descriptors than one process may hold; and stopping and resuming any child
//! process.

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

pub use rustix::process::Signal;
use rustix::process::{Pid, kill_process};

use crate::ports::{STARTUP_DEADLINE, accepts, free_port, loopback, poll_until};
use crate::{TestDir, switchyard_binary};

/// A `switchyard --config FILE` process, killed when dropped. Its standard error (the log) goes
/// to `switchyard.log` in its directory ([`RouterProcess::log`]).
#[derive(Debug)]
pub struct RouterProcess {
    child: Child,
    /// Its listeners' addresses, the first one's first.
    listeners: Vec<SocketAddr>,
    dir: TestDir,
}

impl RouterProcess {
    /// Starts the binary on `config(listen)`, where `listen` is the `host:port` its first
    /// listener must use (a free loopback port); returns once that port accepts connections.
    pub fn start(name: &str, config: impl FnOnce(&str) -> String) -> RouterProcess {
        RouterProcess::spawn(name, None, config)
    }

    /// As [`RouterProcess::start`], with its soft and hard limits on open files both
    /// `open_files` from the start (it runs under `prlimit`), so it cannot raise them.
    pub fn start_with_open_files(
        name: &str,
        open_files: u64,
        config: impl FnOnce(&str) -> String,
    ) -> RouterProcess {
        RouterProcess::spawn(name, Some(open_files), config)
    }

    /// Writes `files` (name, bytes: plugins, certificates) and `config` into a new directory,
    /// starts the binary on it, and returns once each of `ports` (the config's listeners, the
    /// first being [`RouterProcess::addr`]) accepts connections.
    pub fn start_listening(
        name: &str,
        config: &str,
        ports: &[u16],
        files: &[(&str, Vec<u8>)],
    ) -> RouterProcess {
        RouterProcess::start_listening_with_args(name, config, ports, files, &[])
    }

    /// As [`RouterProcess::start_listening`], with `args` after `--config FILE`.
    pub fn start_listening_with_args(
        name: &str,
        config: &str,
        ports: &[u16],
        files: &[(&str, Vec<u8>)],
        args: &[&str],
    ) -> RouterProcess {
        let dir = TestDir::new(name);
        for (file, bytes) in files {
            dir.write(file, bytes);
        }
        RouterProcess::launch(dir, None, config, ports, args)
    }

    fn spawn(
        name: &str,
        open_files: Option<u64>,
        config: impl FnOnce(&str) -> String,
    ) -> RouterProcess {
        let port = free_port();
        let config = config(&format!("127.0.0.1:{port}"));
        RouterProcess::launch(TestDir::new(name), open_files, &config, &[port], &[])
    }

    fn launch(
        dir: TestDir,
        open_files: Option<u64>,
        config: &str,
        ports: &[u16],
        args: &[&str],
    ) -> RouterProcess {
        let path = dir.write("switchyard.toml", config);
        let log = std::fs::File::create(dir.path().join("switchyard.log")).expect("create log");
        let mut command = match open_files {
            None => Command::new(switchyard_binary()),
            Some(n) => {
                // prlimit (util-linux) sets the limits, then runs the router in its place.
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(switchyard_binary());
                command
            }
        };
        let mut child = command
            .args(["--config".as_ref(), path.as_os_str()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start switchyard");
        let listeners: Vec<SocketAddr> = ports.iter().map(|&p| loopback(p)).collect();
        let listening = poll_until(Duration::from_secs(20), || {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(dir.path().join("switchyard.log"));
                panic!(
                    "switchyard exited with {status}: {}",
                    log.unwrap_or_default()
                );
            }
            listeners.iter().all(|&a| accepts(a)).then_some(())
        });
        listening.unwrap_or_else(|| {
            panic!(
                "switchyard does not listen on {listeners:?}: {}",
                std::fs::read_to_string(dir.path().join("switchyard.log")).unwrap_or_default()
            )
        });
        RouterProcess {
            child,
            listeners,
            dir,
        }
    }

    /// Where its first listener accepts.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0]
    }

    /// Where listener `i` (of those it was started with) accepts.
    pub fn listener(&self, i: usize) -> SocketAddr {
        self.listeners[i]
    }

    /// Writes `contents` to the file `name` in its directory (its config is
    /// `switchyard.toml`): the watcher, if on, notices; else send SIGHUP.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        self.dir.write(name, contents);
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has logged so far, without terminal escape sequences (`field=value` reads as
    /// such).
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("switchyard.log"));
        strip_ansi(&log.unwrap_or_default())
    }

    /// Sends it `signal` (SIGTERM, SIGINT, SIGHUP ...).
    pub fn signal(&self, signal: Signal) {
        send(self.child.id(), signal);
    }

    /// Its exit status, waiting at most `deadline` for it to exit (`None`: still running).
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        poll_until(deadline, || child.try_wait().expect("wait for switchyard"))
    }

    /// How many threads of its own it has now: the allocator's background threads
    /// (`jemalloc_bg_thd`, one per arena, started as arenas come into use) are not counted.
    pub fn threads(&self) -> usize {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.child.id())) else {
            return 0;
        };
        tasks
            .filter_map(Result::ok)
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| !name.starts_with("jemalloc_bg_thd"))
            })
            .count()
    }

    /// Waits until it catches SIGHUP and SIGTERM (`SigCgt` in `/proc/PID/status`): its main
    /// thread has then built what it waits for signals with, the last of what it sets up at
    /// start (its listeners accept before that). Then its descriptors are those of a running
    /// router, and lowering its limit on open files cannot make its start fail.
    pub fn wait_until_started(&self) {
        let wanted = (1u64 << (Signal::HUP.as_raw() - 1)) | (1u64 << (Signal::TERM.as_raw() - 1));
        let caught = poll_until(STARTUP_DEADLINE, || {
            let status =
                std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
            let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
            let mask = u64::from_str_radix(mask.trim(), 16).ok()?;
            (mask & wanted == wanted).then_some(())
        });
        assert!(
            caught.is_some(),
            "switchyard {} does not catch SIGHUP and SIGTERM after {STARTUP_DEADLINE:?}",
            self.child.id()
        );
    }

    /// The numbers of the file descriptors it has open now (`/proc/PID/fd`), in order. A new
    /// descriptor takes the lowest number not among them; past the limit on open files (a
    /// limit on that number, not on how many are open) it fails with `EMFILE`.
    pub fn open_files(&self) -> Vec<u64> {
        let mut fds: Vec<u64> = std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("read /proc/PID/fd")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort_unstable();
        fds
    }

    /// The number its next file descriptor would get: the lowest not open.
    pub fn next_file(&self) -> u64 {
        let fds = self.open_files();
        (0..).find(|n| fds.binary_search(n).is_err()).unwrap_or(0)
    }

    /// Sets both its soft and its hard limit on open files (`RLIMIT_NOFILE`) to `limit`, as
    /// `prlimit --pid PID --nofile=LIMIT:LIMIT` would: descriptors it already holds stay open,
    /// new ones past the limit fail with `EMFILE`. (The router raises its soft limit to the
    /// hard one when it starts, so a limit set before then would not hold.)
    pub fn limit_open_files(&self, limit: u64) {
        use rustix::process::{Resource, Rlimit, prlimit};
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(Pid::from_raw)
            .expect("a process id");
        let new = Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        };
        prlimit(Some(pid), Resource::Nofile, new)
            .unwrap_or_else(|e| panic!("prlimit --nofile={limit} on {pid:?}: {e}"));
    }

    /// A line of its `/proc/PID/status` (`VmHWM`, `VmRSS`, ...) in bytes.
    pub fn status_bytes(&self, field: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no {field} line in /proc/PID/status"))
            * 1024
    }

    /// Context switches so far (voluntary and not) of its thread named `name` (as `comm`
    /// shows it: the first 15 bytes), or `None` if it has no such thread. A thread that sleeps
    /// and wakes on a timer adds one per wake-up; a parked one adds none.
    pub fn thread_switches(&self, name: &str) -> Option<u64> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        let comm: String = name.chars().take(15).collect();
        tasks.flatten().find_map(|task| {
            let found = std::fs::read_to_string(task.path().join("comm")).ok()?;
            if found.trim_end() != comm {
                return None;
            }
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let count = |field: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            Some(count("voluntary_ctxt_switches:")? + count("nonvoluntary_ctxt_switches:")?)
        })
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> usize {
        self.status_bytes("VmHWM")
    }

    /// Stops the router (SIGSTOP): its sockets stay open, nothing is read or answered. Returns
    /// once every thread has stopped.
    pub fn pause(&self) {
        pause(self.child.id(), "switchyard");
    }

    /// Resumes it (SIGCONT).
    pub fn resume(&self) {
        resume(self.child.id());
    }
}

/// `text` without its ANSI escape sequences (the log's colours and styles).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Stops process `pid` (SIGSTOP) and returns once every thread of it is stopped: the signal is
/// only queued when `kill` returns, and a thread still running could answer a request sent
/// right after. `what` names the process in a panic.
pub fn pause(pid: u32, what: &str) {
    send(pid, Signal::STOP);
    let stopped = poll_until(STARTUP_DEADLINE, || all_threads_stopped(pid).then_some(()));
    assert!(
        stopped.is_some(),
        "{what} {pid} did not stop within {STARTUP_DEADLINE:?} of SIGSTOP"
    );
}

/// Resumes process `pid` (SIGCONT).
pub fn resume(pid: u32) {
    send(pid, Signal::CONT);
}

fn send(pid: u32, signal: Signal) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .unwrap_or_else(|| panic!("{pid} is not a process id"));
    kill_process(target, signal).unwrap_or_else(|e| panic!("kill -{signal:?} {pid}: {e}"));
}

/// Whether every thread of `pid` is in state `T` (stopped).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    let mut any = false;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            return false;
        };
        // The state is the first field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state != Some("T") {
            return false;
        }
        any = true;
    }
    any
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
