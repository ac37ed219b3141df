//! Experiments against real memcached: a dry run of a ketama pool given a fourth server
//! compares every request's servers with the live pool's, reports about a quarter moved (all to
//! the new server, exactly as `switchyard diff` counts it on the same keys) and sends the new
//! server nothing (its own `stats` say so); a candidate whose plugin traps on every call costs
//! live traffic nothing and the generation no rollback.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::Command;

use switchyard_tests::{Memcached, TestDir, connect, switchyard_binary};

/// A listener on pool `main` (`live` servers), an unreachable pool `main4` (`candidate`
/// servers), the experiment `grow` comparing them, and `[admin.http]`.
fn experiment_config(live: &[&Memcached], candidate: &[&Memcached], extra: &str) -> String {
    let list = |servers: &[&Memcached]| {
        servers
            .iter()
            .map(|s| format!("\"{}\"", s.spec()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[server]\nworkers = 2\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [{}]\n\n[pools.main4]\nservers = [{}]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n\n{extra}",
        list(live),
        list(candidate)
    )
}

fn group(client: &mut switchyard_tests::Client, name: &str) -> BTreeMap<String, String> {
    client.stats_group(name).0
}

fn number(stats: &BTreeMap<String, String>, name: &str) -> u64 {
    stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number {name} in {stats:?}"))
}

/// The body of `GET path` on the admin HTTP listener.
fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the admin listener");
    write!(stream, "GET {path} HTTP/1.0\r\nhost: switchyard\r\n\r\n").expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
}

#[test]
fn a_dry_run_of_ketama_with_a_fourth_server_moves_a_quarter_and_sends_it_nothing() {
    let servers: Vec<Memcached> = (0..4).map(|_| Memcached::start()).collect();
    let [a, b, c, d] = [&servers[0], &servers[1], &servers[2], &servers[3]];
    let text = experiment_config(
        &[a, b, c],
        &[a, b, c, d],
        "[experiments.grow]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"main4\"\n",
    );
    // One connection to the fourth server, open throughout: any other would show in its
    // `total_connections`.
    let mut fourth = d.client();
    let connections_before = fourth.stat("total_connections");
    let router = switchyard_tests::router(&text);
    let mut client = connect(&router, 0);
    let keys: Vec<String> = (0..2000).map(|i| format!("user:{i}")).collect();
    for key in &keys {
        client.set(key, b"v");
    }

    let shown = group(&mut connect(&router, 0), "experiments");
    let (compared, moved) = (
        number(&shown, "grow:compared"),
        number(&shown, "grow:moved"),
    );
    assert_eq!(compared, 2000, "{shown:?}");
    let share = moved as f64 / compared as f64;
    assert!((0.15..=0.35).contains(&share), "{share}: {shown:?}");
    // Every moved request to the fourth server.
    let to_d: u64 = shown
        .iter()
        .filter(|(k, _)| {
            k.starts_with("grow:moved:") && k.ends_with(&format!(":to:{}", d.address()))
        })
        .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
        .sum();
    assert_eq!(to_d, moved, "{shown:?}");
    assert_eq!(number(&shown, "grow:candidate_faults"), 0);
    // Nothing reached it.
    assert_eq!(fourth.stat("total_connections"), connections_before);
    assert_eq!(fourth.stat("curr_items"), Some(0));
    assert_eq!(fourth.stat("cmd_set"), Some(0));

    // `switchyard diff` on the same keys counts the same moves.
    let dir = TestDir::new("experiment-diff");
    dir.write("old.toml", &text);
    dir.write(
        "new.toml",
        experiment_config(&[a, b, c, d], &[a, b, c, d], ""),
    );
    dir.write("keys.txt", keys.join("\n"));
    let out = Command::new(switchyard_binary())
        .current_dir(dir.path())
        .args([
            "diff", "old.toml", "new.toml", "--route", "main", "--op", "set", "--keys", "keys.txt",
        ])
        .output()
        .expect("run switchyard diff");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.starts_with(&format!(
            "moved {:.1}% ({moved} of 2000 requests)",
            100.0 * share
        )),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same numbers as JSON.
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let json = http_get(admin, "/experiments");
    assert!(
        json.starts_with("HTTP/1.0 200") || json.starts_with("HTTP/1.1 200"),
        "{json}"
    );
    assert!(
        json.contains("\"name\":\"grow\",\"kind\":\"dry-run\""),
        "{json}"
    );
    assert!(
        json.contains(&format!("\"compared\":2000,\"moved\":{moved},")),
        "{json}"
    );
}

#[test]
fn a_dry_run_candidate_that_traps_on_every_call_leaves_live_traffic_alone() {
    let server = Memcached::start();
    let dir = TestDir::new("experiment-trap");
    dir.write(
        "trap.wasm",
        switchyard_tests::wasm::trapping_every_call_plugin(),
    );
    let text = experiment_config(
        &[&server],
        &[&server],
        "[plugins]\nrollback_faults = 10\n\n\
         [routes.broken]\nplugin = \"trap.wasm\"\nchildren = [\"main4\"]\n\n\
         [experiments.trap]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"broken\"\n",
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let generation = router.generation().number;
    let mut client = connect(&router, 0);
    for i in 0..200 {
        let key = format!("k{i}");
        client.set(&key, b"v");
        assert_eq!(client.get(&key).as_deref(), Some(&b"v"[..]));
    }
    let mut ops = connect(&router, 0);
    let shown = group(&mut ops, "experiments");
    assert_eq!(number(&shown, "trap:compared"), 400, "{shown:?}");
    assert_eq!(number(&shown, "trap:candidate_faults"), 400, "{shown:?}");
    let config = group(&mut ops, "config");
    assert_eq!(number(&config, "rollbacks"), 0, "{config:?}");
    assert_eq!(router.generation().number, generation);
    let general = group(&mut ops, "");
    assert_eq!(number(&general, "cmd_get_errors"), 0);
    assert_eq!(number(&general, "cmd_set_errors"), 0);
}
