//! The reliable delete stream (`[pools.NAME] delete_spool`): a delete its server fails is
//! written to disk, answered `NOT_FOUND`, and replayed once the server answers, by the router
//! that spooled it, by the next router on the same spool after a restart (even after a
//! SIGKILL), or by `switchyard spool replay`. A torn last record is ignored with a log line, and
//! the spool's byte bound refuses (and counts) what does not fit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use switchyard_tests::ports::poll_until;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{
    Client, Config, Memcached, TestDir, connect, router, switchyard_binary, toml_servers,
};

/// How long a replay may take to show: the router probes a dead server every 50–200 ms here.
const REPLAY_DEADLINE: Duration = Duration::from_secs(20);

/// A router config: one listener at `listen` in front of pool `main` of `servers`, spooling
/// failed deletes to `dir`; short timeouts and probe intervals; `extra` in the pool.
fn config(listen: &str, servers: &[String], dir: &Path, extra: &str) -> String {
    format!(
        r#"
[server]
workers = 2
watch = false

[[listeners]]
address = "{listen}"
route = "main"

[pools.main]
servers = {}
timeout_ms = 300
connect_timeout_ms = 200
probe_floor_ms = 50
probe_ceiling_ms = 200
delete_spool = "{}"
{extra}
"#,
        toml_servers(servers),
        dir.display()
    )
}

/// `STAT name` of `client`'s router, 0 if it has none.
fn stat(client: &mut Client, name: &str) -> u64 {
    client.stat(name).unwrap_or(0)
}

/// Waits until `STAT name` is `want`; fails with what it was.
fn wait_stat(client: &mut Client, name: &str, want: u64) {
    let reached = poll_until(REPLAY_DEADLINE, || {
        (stat(client, name) == want).then_some(())
    });
    assert!(
        reached.is_some(),
        "{name} stayed at {} (want {want}) for {REPLAY_DEADLINE:?}",
        stat(client, name)
    );
}

/// Waits until `server` holds none of `keys`.
fn wait_gone(server: &Memcached, keys: &[&str]) {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let gone = poll_until(REPLAY_DEADLINE, || {
        server.holds(&keys).iter().all(|held| !held).then_some(())
    });
    assert!(
        gone.is_some(),
        "{keys:?} still on {} (held: {:?}) after {REPLAY_DEADLINE:?}",
        server.address(),
        server.holds(&keys)
    );
}

/// The one spool file in `dir`.
fn spool_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the spool directory")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool"))
        .collect();
    assert_eq!(
        files.len(),
        1,
        "spool files in {}: {files:?}",
        dir.display()
    );
    files[0].clone()
}

/// `switchyard spool ARGS...`.
fn spool_command(args: &[&str]) -> Output {
    Command::new(switchyard_binary())
        .arg("spool")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run switchyard spool")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_delete_to_a_stopped_server_is_spooled_then_replayed_when_it_answers() {
    let dir = TestDir::new("spool-stopped");
    let server = Memcached::start();
    let router = router(&config("127.0.0.1:0", &[server.spec()], dir.path(), ""));
    let mut client = connect(&router, 0);
    client.set("gone", b"stale");

    server.pause();
    // The pool's timeout passes, the delete is written to disk, and only then answered.
    assert_eq!(text(&client.request(b"delete gone\r\n")), "NOT_FOUND\r\n");
    let file = spool_file(dir.path());
    assert!(
        std::fs::metadata(&file).expect("stat the spool").len() > 0,
        "answered before the spool held the delete"
    );
    assert_eq!(stat(&mut client, "delete_spooled"), 1);
    assert_eq!(stat(&mut client, "delete_spool_dropped"), 0);
    assert!(stat(&mut client, "delete_spool_bytes") > 0);
    // A compare-and-delete is not spooled: its condition cannot be checked later.
    let reply = text(&client.request(b"md gone C123\r\n"));
    assert!(
        reply.starts_with("SERVER_ERROR backend "),
        "md with C: {reply}"
    );
    assert_eq!(stat(&mut client, "delete_spooled"), 1);

    server.resume();
    wait_stat(&mut client, "delete_replayed", 1);
    assert_eq!(server.client().get("gone"), None);
    // Replayed through the end: the file is emptied.
    wait_stat(&mut client, "delete_spool_bytes", 0);
    assert_eq!(std::fs::metadata(&file).expect("stat the spool").len(), 0);
    // Deletes the server answers are not spooled.
    assert_eq!(text(&client.request(b"delete gone\r\n")), "NOT_FOUND\r\n");
    assert_eq!(stat(&mut client, "delete_spooled"), 1);
}

#[test]
fn a_delete_to_a_dead_server_is_replayed_after_a_restart_of_the_router() {
    let dir = TestDir::new("spool-dead");
    let mut server = Memcached::start();
    let settings = config("127.0.0.1:0", &[server.spec()], dir.path(), "");
    server.kill();

    let first = router(&settings);
    let mut client = connect(&first, 0);
    assert_eq!(text(&client.request(b"delete gone\r\n")), "NOT_FOUND\r\n");
    // `noreply` and meta deletes are spooled too; `md` is answered `NF` with its flags.
    client.send(b"delete quiet noreply\r\n");
    assert_eq!(
        text(&client.request(b"md meta O7 k\r\n")),
        "NF O7 kmeta\r\n"
    );
    wait_stat(&mut client, "delete_spooled", 3);
    drop(client);
    first.shutdown();

    // The server comes back holding the keys: only a replay can remove them.
    server.restart();
    let mut direct = server.client();
    for key in ["gone", "quiet", "meta"] {
        direct.set(key, b"stale");
    }
    let second = router(&settings);
    let mut client = connect(&second, 0);
    wait_gone(&server, &["gone", "quiet", "meta"]);
    wait_stat(&mut client, "delete_replayed", 3);
    assert_eq!(stat(&mut client, "delete_spooled"), 0);
}

#[test]
fn a_spool_survives_a_killed_router_process() {
    let spool = TestDir::new("spool-killed");
    let mut server = Memcached::start();
    let servers = [server.spec()];
    server.kill();

    let router = RouterProcess::start("spool-killed-1", |listen| {
        config(listen, &servers, spool.path(), "")
    });
    let mut client = Client::connect(router.addr());
    assert_eq!(text(&client.request(b"delete k1\r\n")), "NOT_FOUND\r\n");
    assert_eq!(text(&client.request(b"md k2\r\n")), "NF\r\n");
    // SIGKILL: what was answered must already be on disk.
    drop(client);
    drop(router);

    server.restart();
    server.client().set("k1", b"stale");
    server.client().set("k2", b"stale");
    let router = RouterProcess::start("spool-killed-2", |listen| {
        config(listen, &servers, spool.path(), "")
    });
    wait_gone(&server, &["k1", "k2"]);
    let mut client = Client::connect(router.addr());
    wait_stat(&mut client, "delete_replayed", 2);
    assert!(
        router
            .log()
            .contains("delete spool holds deletes to replay"),
        "{}",
        router.log()
    );
}

#[test]
fn a_torn_last_record_is_ignored_with_a_log_line_and_the_rest_replayed() {
    let spool = TestDir::new("spool-torn");
    let mut server = Memcached::start();
    let servers = [server.spec()];
    server.kill();
    let router = RouterProcess::start("spool-torn-1", |listen| {
        config(listen, &servers, spool.path(), "")
    });
    let mut client = Client::connect(router.addr());
    for key in ["t1", "t2"] {
        let reply = client.request(format!("delete {key}\r\n").as_bytes());
        assert_eq!(text(&reply), "NOT_FOUND\r\n");
    }
    drop(client);
    drop(router);

    // A crash in the middle of a third append: the start of a record (its magic and length),
    // then nothing.
    let file = spool_file(spool.path());
    let mut bytes = std::fs::read(&file).expect("read the spool");
    let whole = bytes.len();
    let head = bytes[..9].to_vec();
    bytes.extend_from_slice(&head);
    std::fs::write(&file, &bytes).expect("tear the spool");
    let shown = spool_command(&["show", &spool.path().display().to_string()]);
    assert!(
        text(&shown.stdout).contains(&format!("{} pending 2 ", server.address()))
            && text(&shown.stdout).contains("torn_bytes 9"),
        "spool show: {}{}",
        text(&shown.stdout),
        text(&shown.stderr)
    );

    server.restart();
    for key in ["t1", "t2"] {
        server.client().set(key, b"stale");
    }
    let router = RouterProcess::start("spool-torn-2", |listen| {
        config(listen, &servers, spool.path(), "")
    });
    wait_gone(&server, &["t1", "t2"]);
    let mut client = Client::connect(router.addr());
    wait_stat(&mut client, "delete_replayed", 2);
    let log = router.log();
    assert!(
        log.contains("no whole record") && log.contains("bytes=9"),
        "no log line about the torn tail: {log}"
    );
    assert_eq!(stat(&mut client, "delete_spool_dropped"), 0);
    // The torn bytes were cut off at start, the replayed records then emptied the file.
    assert!(std::fs::metadata(&file).expect("stat").len() < whole as u64);
}

#[test]
fn past_its_byte_bound_the_spool_drops_deletes_and_they_get_the_error() {
    let dir = TestDir::new("spool-bound");
    let mut server = Memcached::start();
    let servers = [server.spec()];
    server.kill();
    // Room for two records of this server and a four-byte key: 21 bytes and the address.
    let record = 21 + server.address().len() + 4;
    let max = 2 * record + 1;
    let router = router(&config(
        "127.0.0.1:0",
        &servers,
        dir.path(),
        &format!("delete_spool_max_bytes = {max}"),
    ));
    let mut client = connect(&router, 0);
    let replies: Vec<String> = (1..=5)
        .map(|i| text(&client.request(format!("delete key{i}\r\n").as_bytes())))
        .collect();
    assert_eq!(
        replies[..2],
        ["NOT_FOUND\r\n", "NOT_FOUND\r\n"],
        "{replies:?}"
    );
    let error = format!("SERVER_ERROR backend {} ", server.address());
    assert!(
        replies[2..].iter().all(|r| r.starts_with(&error)),
        "past the bound: {replies:?}"
    );
    assert_eq!(stat(&mut client, "delete_spooled"), 2);
    assert_eq!(stat(&mut client, "delete_spool_dropped"), 3);
    assert_eq!(stat(&mut client, "delete_spool_bytes"), 2 * record as u64);
    assert_eq!(
        std::fs::metadata(spool_file(dir.path()))
            .expect("stat")
            .len(),
        2 * record as u64
    );
}

#[test]
fn a_reload_keeps_the_spool_open_and_applies_its_settings() {
    let dir = TestDir::new("spool-reload");
    let mut server = Memcached::start();
    let servers = [server.spec()];
    server.kill();
    let spooled = config("127.0.0.1:0", &servers, dir.path(), "");
    let parse = |text: &str| {
        Config::from_toml(text, Path::new("inline-test-config.toml")).expect("valid config")
    };
    let router = router(&spooled);
    let mut client = connect(&router, 0);
    let delete = |client: &mut Client, key: &str| {
        text(&client.request(format!("delete {key}\r\n").as_bytes()))
    };
    assert_eq!(delete(&mut client, "a"), "NOT_FOUND\r\n");

    // The same file with a one-byte bound: the open spool takes the new bound.
    let tiny = config(
        "127.0.0.1:0",
        &servers,
        dir.path(),
        "delete_spool_max_bytes = 1",
    );
    router.reload_with(parse(&tiny)).expect("reload");
    assert!(delete(&mut client, "b").starts_with("SERVER_ERROR backend "));
    assert_eq!(stat(&mut client, "delete_spool_dropped"), 1);

    // No spool: deletes fail as they always did, and are not counted.
    let off: String = spooled
        .lines()
        .filter(|l| !l.starts_with("delete_spool"))
        .map(|l| format!("{l}\n"))
        .collect();
    router.reload_with(parse(&off)).expect("reload");
    assert!(delete(&mut client, "c").starts_with("SERVER_ERROR backend "));
    assert_eq!(stat(&mut client, "delete_spool_dropped"), 1);

    // Back on the same directory: the spool is found again (never opened twice).
    router.reload_with(parse(&spooled)).expect("reload");
    assert_eq!(delete(&mut client, "d"), "NOT_FOUND\r\n");
    assert_eq!(stat(&mut client, "delete_spooled"), 2);
    let shown = spool_command(&["show", &dir.path().display().to_string()]);
    assert!(
        text(&shown.stdout).contains(&format!("{} pending 2 ", server.address())),
        "{}",
        text(&shown.stdout)
    );
}

#[test]
fn spool_replay_applies_a_spool_the_router_wrote() {
    let spool = TestDir::new("spool-cli");
    let dir = spool.path().display().to_string();
    let mut server = Memcached::start();
    let servers = [server.spec()];
    server.kill();
    let router = RouterProcess::start("spool-cli-router", |listen| {
        config(listen, &servers, spool.path(), "")
    });
    let mut client = Client::connect(router.addr());
    for key in ["c1", "c2", "c3"] {
        let reply = client.request(format!("delete {key}\r\n").as_bytes());
        assert_eq!(text(&reply), "NOT_FOUND\r\n");
    }
    // A running router holds its spool: the command refuses it.
    let refused = spool_command(&["replay", &dir]);
    assert!(
        !refused.status.success() && text(&refused.stderr).contains("in use"),
        "replay of a spool a router holds: {}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );
    drop(client);
    drop(router);

    let shown = spool_command(&["show", &dir]);
    assert!(shown.status.success(), "{}", text(&shown.stderr));
    assert!(
        text(&shown.stdout).contains(&format!("{} pending 3 ", server.address()))
            && text(&shown.stdout).contains("total pending 3"),
        "spool show: {}",
        text(&shown.stdout)
    );
    // Still down: nothing is replayed, everything is left, and the command says so.
    let failed = spool_command(&["replay", &dir]);
    assert!(!failed.status.success(), "{}", text(&failed.stdout));
    assert!(
        text(&failed.stdout).contains("replayed 0 refused 0 left 3"),
        "{}",
        text(&failed.stdout)
    );

    server.restart();
    for key in ["c1", "c2", "c3"] {
        server.client().set(key, b"stale");
    }
    // Another server's spool only: nothing to do here.
    let other = spool_command(&["replay", &dir, "--server", "127.0.0.1:1"]);
    assert!(other.status.success(), "{}", text(&other.stderr));
    assert!(
        server.holds(&["c1".into()])[0],
        "--server replayed another server"
    );

    let replayed = spool_command(&["replay", &dir, "--server", &server.address()]);
    assert!(
        replayed.status.success(),
        "spool replay: {}{}",
        text(&replayed.stdout),
        text(&replayed.stderr)
    );
    assert!(
        text(&replayed.stdout)
            .contains(&format!("{} replayed 3 refused 0 left 0", server.address())),
        "{}",
        text(&replayed.stdout)
    );
    wait_gone(&server, &["c1", "c2", "c3"]);
    let shown = spool_command(&["show", &dir]);
    assert!(
        text(&shown.stdout).contains("total pending 0"),
        "{}",
        text(&shown.stdout)
    );
}
