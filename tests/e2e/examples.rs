//! The example configs of `configs/`, each run as written (only addresses replaced) on real
//! memcached, doing what its header says: the quickstart (answering the README's example),
//! mcrouter's high-availability warm-up, magent's backup, shadowing, random spreading over two
//! pools, prefix routing, and migration.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchyard_tests::example::Example;
use switchyard_tests::ports::poll_until;
use switchyard_tests::{Client, Memcached, connect, show, store_all};

fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// How many of `keys` some server of `pool` holds.
fn held_by(pool: &[&Memcached], keys: &[String]) -> usize {
    let mut held = vec![false; keys.len()];
    for server in pool {
        for (slot, on) in held.iter_mut().zip(server.holds(keys)) {
            *slot |= on;
        }
    }
    held.iter().filter(|&&h| h).count()
}

/// Reads every key through `client` with pipelined single-key gets; returns the keys that
/// missed or failed, with their replies.
fn misses(client: &mut Client, keys: &[String], value: &[u8]) -> Vec<(String, String)> {
    let mut missed = Vec::new();
    for batch in keys.chunks(100) {
        let bytes: String = batch.iter().map(|k| format!("get {k}\r\n")).collect();
        client.send(bytes.as_bytes());
        for (key, reply) in batch.iter().zip(client.replies(batch.len())) {
            let mut expected = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
            expected.extend_from_slice(value);
            expected.extend_from_slice(b"\r\nEND\r\n");
            if reply != expected {
                missed.push((key.clone(), show(&reply)));
            }
        }
    }
    missed
}

/// Waits until the router's `stats backends` shows every server of `pool` up.
fn wait_up(client: &mut Client, pool: &[&Memcached]) {
    let up = poll_until(Duration::from_secs(10), || {
        client.send(b"stats backends\r\n");
        let text = String::from_utf8_lossy(&client.read_until(b"END\r\n")).into_owned();
        pool.iter()
            .all(|s| text.contains(&format!("STAT {}:state up", s.address())))
            .then_some(())
    });
    assert!(up.is_some(), "the router did not see the servers back up");
}

/// The README's first example: the bytes its `printf '...' | nc` line sends and the reply block
/// that follows it, with `\r\n` line ends.
fn readme_example() -> (Vec<u8>, Vec<u8>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).expect("read README.md");
    let start = readme
        .find("printf '")
        .expect("README.md has a `printf '...' | nc` example")
        + "printf '".len();
    let sent = &readme[start..];
    let sent = &sent[..sent.find('\'').expect("the printf string ends")];
    let after = &readme[start + sent.len()..];
    // The next fenced block after the command's own is the reply.
    let blocks: Vec<&str> = after.split("```").collect();
    let reply = blocks.get(2).expect("README.md shows the example's reply");
    let reply: String = reply
        .trim_start_matches(|c: char| c.is_ascii_alphanumeric())
        .trim_start_matches('\n')
        .lines()
        .map(|line| format!("{line}\r\n"))
        .collect();
    (
        sent.replace("\\r\\n", "\r\n").into_bytes(),
        reply.into_bytes(),
    )
}

#[test]
fn quickstart_answers_the_readme_example_and_spreads_keys_over_its_three_servers() {
    let ex = Example::start("quickstart");
    let (sent, expected) = readme_example();
    assert!(sent.starts_with(b"set "), "README example: {}", show(&sent));
    let mut client = connect(&ex.router, 0);
    client.send(&sent);
    let got = client.read_until(b"END\r\n");
    assert_eq!(
        show(&got),
        show(&expected),
        "the README's example through quickstart.toml"
    );

    let keys = keys("qs:", 3_000);
    store_all(&mut client, &keys, b"v");
    let pool = ex.pool(&[21211, 21212, 21213]);
    for server in &pool {
        let held = server.holds(&keys).iter().filter(|&&h| h).count();
        assert!(
            (600..=1_400).contains(&held),
            "{} holds {held} of 3000 keys; ketama over three equal servers gives about 1000",
            server.address()
        );
    }
    assert_eq!(
        held_by(&pool, &keys),
        keys.len(),
        "every key on some server"
    );
    assert!(
        misses(&mut client, &keys, b"v").is_empty(),
        "every key reads back"
    );
}

const LOCALHOST: [u16; 3] = [21211, 21212, 21213];
const BACKUP: [u16; 3] = [21221, 21222, 21223];

#[test]
fn ha_warmup_refills_a_restarted_pool_from_its_peer() {
    let mut ex = Example::start("ha-warmup");
    let keys = keys("ha:", 10_000);
    let value = b"warm";
    let mut client = connect(&ex.router, 0);
    store_all(&mut client, &keys, value);
    assert_eq!(held_by(&ex.pool(&LOCALHOST), &keys), keys.len(), "all-sync");
    assert_eq!(held_by(&ex.pool(&BACKUP), &keys), keys.len(), "all-sync");

    for port in LOCALHOST {
        ex.server_mut(port).restart();
    }
    assert_eq!(held_by(&ex.pool(&LOCALHOST), &keys), 0, "restarted empty");
    wait_up(&mut client, &ex.pool(&LOCALHOST));

    let missed = misses(&mut client, &keys, value);
    assert!(
        missed.is_empty(),
        "{} of {} reads missed, e.g. {:?}",
        missed.len(),
        keys.len(),
        missed.first()
    );
    // The refills are background adds: wait for them, never for the client.
    let refilled = poll_until(Duration::from_secs(10), || {
        (held_by(&ex.pool(&LOCALHOST), &keys) == keys.len()).then_some(())
    });
    assert!(
        refilled.is_some(),
        "the cold pool holds {} of {} keys after the reads",
        held_by(&ex.pool(&LOCALHOST), &keys),
        keys.len()
    );
    assert_eq!(client.stat("background_dropped"), Some(0));
    assert!(client.stat("background_sent") >= Some(keys.len() as u64));
}

const MAIN: [u16; 2] = [21211, 21212];
const BACKUP_SERVER: u16 = 21213;

#[test]
fn magent_backup_serves_reads_while_main_is_down_and_after_it_restarts_empty() {
    let mut ex = Example::start("magent");
    let keys = keys("mg:", 500);
    let value = b"kept";
    let mut client = connect(&ex.router, 0);
    store_all(&mut client, &keys, value);
    assert_eq!(held_by(&ex.pool(&MAIN), &keys), keys.len());
    assert_eq!(held_by(&[ex.server(BACKUP_SERVER)], &keys), keys.len());

    for port in MAIN {
        ex.server_mut(port).kill();
    }
    let missed = misses(&mut client, &keys, value);
    assert!(missed.is_empty(), "main down: {:?}", missed.first());

    // magent's failure case: main comes back empty, and reads must still hit.
    for port in MAIN {
        ex.server_mut(port).restart();
    }
    let missed = misses(&mut client, &keys, value);
    assert!(missed.is_empty(), "main restarted: {:?}", missed.first());
    wait_up(&mut client, &ex.pool(&MAIN));
    let missed = misses(&mut client, &keys, value);
    assert!(missed.is_empty(), "main back up: {:?}", missed.first());
    let refilled = poll_until(Duration::from_secs(10), || {
        (held_by(&ex.pool(&MAIN), &keys) == keys.len()).then_some(())
    });
    assert!(
        refilled.is_some(),
        "main refilled: {} of {}",
        held_by(&ex.pool(&MAIN), &keys),
        keys.len()
    );
}

const SHADOW: [u16; 2] = [21221, 21222];

/// Sets, gets, arithmetic, appends and deletes over `keys`; every reply, in order.
fn workload(client: &mut Client, keys: &[String]) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for batch in keys.chunks(50) {
        let mut bytes = String::new();
        for (i, key) in batch.iter().enumerate() {
            bytes.push_str(&format!("set {key} {i} 0 2\r\n10\r\nget {key}\r\n"));
            bytes.push_str(&format!("incr {key} 5\r\nappend {key} 0 0 1\r\nx\r\n"));
            bytes.push_str(&format!("get {key} {key}:none\r\ndelete {key}:none\r\n"));
            if i % 3 == 0 {
                bytes.push_str(&format!("delete {key}\r\nget {key}\r\n"));
            }
        }
        client.send(bytes.as_bytes());
        let count = batch.len() * 6 + batch.len().div_ceil(3) * 2;
        replies.extend(client.replies(count));
    }
    replies
}

#[test]
fn shadow_copies_a_tenth_of_the_keys_and_never_touches_the_clients_replies() {
    let keys = keys("sh:", 10_000);
    let mut ex = Example::start("shadow");
    let mut client = connect(&ex.router, 0);
    store_all(&mut client, &keys, b"v");
    let copied = poll_until(Duration::from_secs(10), || {
        let n = held_by(&ex.pool(&SHADOW), &keys);
        // Background copies may still be landing; stop once it is steady.
        (n == held_by(&ex.pool(&SHADOW), &keys)).then_some(n)
    })
    .unwrap_or(0);
    let share = copied as f64 / keys.len() as f64;
    assert!(
        (0.07..=0.13).contains(&share),
        "{copied} of {} keys shadowed ({share:.3}), expected 10% ± 3%",
        keys.len()
    );
    assert_eq!(client.stat("shadow_mismatches"), Some(0), "same replies");

    // The same workload with no key shadowed is the baseline; shadowed and dead-shadow runs
    // must answer it byte for byte the same.
    let work = keys[..600].to_vec();
    let baseline = {
        let ex = Example::start_edited("shadow", |t| {
            t.replace("key_range = [0.0, 0.1]", "key_range = [0.0, 0.0]")
        });
        workload(&mut connect(&ex.router, 0), &work)
    };
    let fresh: Vec<String> = work.iter().map(|k| format!("{k}~2")).collect();
    let shadowed = workload(&mut client, &fresh);
    let rename = |replies: &[Vec<u8>]| -> Vec<String> {
        replies.iter().map(|r| show(r).replace("~2", "")).collect()
    };
    assert_eq!(rename(&shadowed), rename(&baseline), "shadowed run");

    for port in SHADOW {
        ex.server_mut(port).kill();
    }
    let dead: Vec<String> = work.iter().map(|k| format!("{k}~3")).collect();
    let with_dead_shadow = workload(&mut client, &dead);
    let rename3 = |replies: &[Vec<u8>]| -> Vec<String> {
        replies.iter().map(|r| show(r).replace("~3", "")).collect()
    };
    assert_eq!(
        rename3(&with_dead_shadow),
        rename(&baseline),
        "dead shadow pool"
    );
    assert!(client.stat("background_failed") > Some(0), "copies failed");
}

#[test]
fn random_spreads_sets_evenly_over_two_pools() {
    let ex = Example::start("random-two-pools");
    let keys = keys("rnd:", 100_000);
    let mut client = connect(&ex.router, 0);
    store_all(&mut client, &keys, b"r");
    let items = |ports: &[u16]| -> u64 {
        ports
            .iter()
            .map(|&p| ex.server(p).client().stat("curr_items").unwrap_or(0))
            .sum()
    };
    let (a, b) = (items(&LOCALHOST), items(&BACKUP));
    assert_eq!(
        a + b,
        keys.len() as u64,
        "each set went to exactly one pool"
    );
    let even = keys.len() as f64 / 2.0;
    for (name, n) in [("a", a), ("b", b)] {
        assert!(
            (n as f64 - even).abs() <= even * 0.05,
            "pool {name} got {n} of {} sets, more than 5% off {even}",
            keys.len()
        );
    }
}

#[test]
fn prefix_routes_each_prefix_to_its_pool() {
    let ex = Example::start("prefix");
    let mut client = connect(&ex.router, 0);
    let sessions = keys("session:", 50);
    let users = keys("user:", 50);
    let other = keys("feed:", 50);
    for set in [&sessions, &users, &other] {
        store_all(&mut client, set, b"p");
    }
    assert_eq!(held_by(&[ex.server(21211)], &sessions), 50);
    assert_eq!(held_by(&ex.pool(&[21212, 21213]), &users), 50);
    assert_eq!(held_by(&ex.pool(&[21214, 21215]), &other), 50);
    assert_eq!(
        held_by(&ex.pool(&[21212, 21213, 21214, 21215]), &sessions),
        0
    );
    assert_eq!(held_by(&ex.pool(&[21211, 21214, 21215]), &users), 0);
}

const OLD: [u16; 2] = [21211, 21212];

/// On how many servers of `pool` `key` is.
fn copies(pool: &[&Memcached], key: &str) -> usize {
    pool.iter()
        .filter(|s| s.holds(&[key.to_string()])[0])
        .count()
}
const NEW: [u16; 2] = [21221, 21222];

#[test]
fn migrate_switches_reads_at_the_configured_time_and_deletes_to_both_meanwhile() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // The window opens now; reads switch `interval` seconds later (long enough for the router
    // to start and the first half to run on a loaded machine).
    let interval = 6;
    let start = now;
    let ex = Example::start_edited("migrate", |t| {
        t.replace("start = 1767225600", &format!("start = {start}"))
            .replace("interval = 3600", &format!("interval = {interval}"))
    });
    let mut client = connect(&ex.router, 0);
    let set_directly = |ports: &[u16], key: &str, value: &str| {
        for &p in ports {
            let reply = ex
                .server(p)
                .client()
                .request_str(&format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()));
            assert_eq!(reply, "STORED\r\n");
        }
    };

    // First half: reads from `old`, deletes to both.
    set_directly(&OLD, "probe", "old");
    set_directly(&NEW, "probe", "new");
    set_directly(&OLD, "gone1", "x");
    set_directly(&NEW, "gone1", "x");
    assert_eq!(
        client.request_str("get probe\r\n"),
        "VALUE probe 0 3\r\nold\r\nEND\r\n"
    );
    assert_eq!(client.request_str("delete gone1\r\n"), "DELETED\r\n");
    // The key was on every server of both pools; ketama's server of each lost it.
    assert_eq!(copies(&ex.pool(&OLD), "gone1"), 1, "delete reached old");
    assert_eq!(copies(&ex.pool(&NEW), "gone1"), 1, "delete reached new");

    // Reads switch to `new` at start + interval, not before.
    let switched = poll_until(Duration::from_secs(interval + 3), || {
        (client.request_str("get probe\r\n") == "VALUE probe 0 3\r\nnew\r\nEND\r\n").then(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock")
                .as_secs()
        })
    });
    let at = switched.expect("reads switched to the new pool");
    assert!(
        at >= start + interval,
        "switched at {at}, before start + interval = {}",
        start + interval
    );
    // Second half: deletes still go to both.
    if at < start + 2 * interval {
        set_directly(&OLD, "gone2", "x");
        set_directly(&NEW, "gone2", "x");
        assert_eq!(client.request_str("delete gone2\r\n"), "DELETED\r\n");
        assert_eq!(copies(&ex.pool(&OLD), "gone2"), 1, "delete reached old");
        assert_eq!(copies(&ex.pool(&NEW), "gone2"), 1, "delete reached new");
    }
}
