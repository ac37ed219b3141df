//! `switchyard top` under tmux against a live router: the view shows the requests per second
//! of traffic running beside it, and each server.

use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, switchyard_binary};

/// A tmux session, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "120",
                "-y",
                "40",
                command,
            ])
            .status()
            .expect("run tmux");
        assert!(status.success(), "tmux new-session failed");
        Tmux(name.to_string())
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("run tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The number after `label` on the screen, if any.
fn after(screen: &str, label: &str) -> Option<u64> {
    let rest = &screen[screen.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn top_under_tmux_shows_the_live_request_rate_and_the_servers() {
    let server = Memcached::start();
    let (port, admin) = (free_port(), free_port());
    let config = format!(
        "[server]\nworkers = 1\nwatch = false\n\n[admin.http]\naddress = \"127.0.0.1:{admin}\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{port}\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        server.spec()
    );
    let router = RouterProcess::start_listening("top", &config, &[port, admin], &[]);
    let session = format!("switchyard-top-{}", std::process::id());
    let tmux = Tmux::start(
        &session,
        &format!(
            "{} top --admin 127.0.0.1:{admin} --interval 200",
            switchyard_binary().display()
        ),
    );
    // Traffic on a thread of its own while the view refreshes.
    let addr = router.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut client = Client::connect(addr);
            let mut n = 0u64;
            // A set, a get that finds it and one that does not: a hit ratio of one half.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                client.set(&format!("k{}", n % 100), b"v");
                assert!(client.get(&format!("k{}", n % 100)).is_some());
                assert!(client.get(&format!("missing{}", n % 100)).is_none());
                n += 1;
            }
            n
        })
    };
    let started = Instant::now();
    let seen = poll_until(Duration::from_secs(15), || {
        let screen = tmux.screen();
        (after(&screen, "requests/s").is_some_and(|r| r > 0)
            // Half the gets hit; the first interval may catch a pair of them half done.
            && hit_ratio(&screen).is_some_and(|r| (40.0..=60.0).contains(&r))
            && screen.contains(&server.address())
            // The last table drawn: a capture taken mid-redraw shows only the top of the view.
            && screen.contains("pools.main"))
        .then_some(screen)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = traffic.join().expect("traffic thread");
    let screen = seen.unwrap_or_else(|| {
        panic!(
            "top never showed a request rate, a hit ratio of one half, the server and the pool in {:?}:\n{}\n{}",
            started.elapsed(),
            tmux.screen(),
            router.log()
        )
    });
    println!("{sent} sets; the view:\n{screen}");
    assert!(
        screen.contains("servers") && screen.contains("up"),
        "{screen}"
    );
    assert!(screen.contains("pools.main"), "{screen}");
    assert!(screen.contains("bytes written/s"), "{screen}");
}

/// The hit ratio on the screen, percent, once there is one.
fn hit_ratio(screen: &str) -> Option<f64> {
    let rest = &screen[screen.find("hit ratio")? + "hit ratio".len()..];
    rest.split_whitespace()
        .next()?
        .strip_suffix('%')?
        .parse()
        .ok()
}
