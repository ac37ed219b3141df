//! `stats` and its groups after known traffic: the counters by command, hits and misses, the
//! bytes read and written, each server's replies, latency histogram and outstanding requests,
//! each route node's requests, replies by status and latency, each plugin node's calls, faults
//! and call time; and every line any group prints is a stat `--describe-stats` declares.

use std::collections::BTreeMap;
use std::process::Command;

use switchyard_tests::ports::poll_until;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, connect, router, switchyard_binary, wasm};

/// Every `STAT name value` of `stats GROUP` (plain `stats` for `""`).
fn group(client: &mut Client, group: &str) -> BTreeMap<String, String> {
    client.stats_group(group).0
}

fn number(stats: &BTreeMap<String, String>, name: &str) -> u64 {
    stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for STAT {name} in {stats:?}"))
}

#[test]
fn counters_and_histograms_move_as_expected_after_known_traffic() {
    let server = Memcached::start();
    let address = server.address();
    let router = router(&format!(
        "[server]\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        server.spec()
    ));
    let mut client = connect(&router, 0);
    let mut observer = connect(&router, 0);
    let (before, before_len) = observer.stats_group("");
    let routes_before = group(&mut observer, "routes");

    // 10 sets, 20 one-key gets, 5 three-key gets, 2 deletes, an incr of a value that is not a
    // number: 38 requests, 48 keys routed.
    let mut sent = 0u64;
    let mut received = 0u64;
    let mut request = |client: &mut Client, bytes: &[u8]| {
        sent += bytes.len() as u64;
        let reply = client.request(bytes);
        received += reply.len() as u64;
        reply
    };
    for i in 0..10 {
        let set = format!("set k{i} 0 0 5\r\nvalue\r\n");
        assert_eq!(request(&mut client, set.as_bytes()), b"STORED\r\n");
    }
    for i in 0..20 {
        let reply = request(&mut client, format!("get k{}\r\n", i % 10).as_bytes());
        assert!(
            reply.starts_with(b"VALUE"),
            "{}",
            String::from_utf8_lossy(&reply)
        );
    }
    for i in 0..5 {
        let reply = request(
            &mut client,
            format!("get k{i} k{} nope\r\n", i + 1).as_bytes(),
        );
        assert!(reply.ends_with(b"END\r\n"));
    }
    for i in 0..2 {
        assert_eq!(
            request(&mut client, format!("delete k{i}\r\n").as_bytes()),
            b"DELETED\r\n"
        );
    }
    let incr = request(&mut client, b"incr k5 1\r\n");
    assert!(
        incr.starts_with(b"CLIENT_ERROR"),
        "{}",
        String::from_utf8_lossy(&incr)
    );

    let after = group(&mut observer, "");
    let grew = |name: &str| number(&after, name) - number(&before, name);
    assert_eq!(grew("cmd_set"), 10);
    assert_eq!(grew("cmd_get"), 25);
    assert_eq!(grew("cmd_delete"), 2);
    assert_eq!(grew("cmd_gets"), 0);
    assert_eq!(grew("cmd_incr"), 1);
    assert_eq!(grew("get_keys"), 35);
    // Every one-key get hits; each three-key get finds two of its keys.
    assert_eq!(grew("get_hits"), 20 + 5 * 2);
    assert_eq!(grew("get_misses"), 5);
    assert_eq!(grew("cmd_incr_errors"), 1);
    assert_eq!(grew("cmd_get_errors") + grew("cmd_set_errors"), 0);
    // The observer's own `stats` requests are read too; its first `stats` reply went out
    // after it was rendered, so it counts in the second (as does the `stats routes` reply).
    assert_eq!(
        grew("bytes_read"),
        sent + "stats\r\n".len() as u64 + "stats routes\r\n".len() as u64
    );
    let routes_len = {
        let mut lines = 0u64;
        for (name, value) in &routes_before {
            lines += format!("STAT {name} {value}\r\n").len() as u64;
        }
        lines + "END\r\n".len() as u64
    };
    assert_eq!(grew("bytes_written"), received + before_len + routes_len);
    assert_eq!(grew("backend_errors"), 0);

    // The pool is the listener's route: every request reached it.
    let routes = group(&mut observer, "routes");
    let routed = |name: &str| {
        number(&routes, &format!("pools.main:{name}"))
            - number(&routes_before, &format!("pools.main:{name}"))
    };
    assert_eq!(routed("requests"), 38);
    assert_eq!(routed("replies_stored"), 10);
    assert_eq!(routed("replies_hit"), 25);
    assert_eq!(routed("replies_deleted"), 2);
    assert_eq!(routed("replies_client_error"), 1);
    assert_eq!(routed("replies_server_error"), 0);
    let (route_p50, route_p99) = (
        number(&routes, "pools.main:latency_p50_us"),
        number(&routes, "pools.main:latency_p99_us"),
    );
    assert!(
        0 < route_p50 && route_p50 <= route_p99,
        "route p50 {route_p50} us, p99 {route_p99} us"
    );

    let backends = group(&mut observer, "backends");
    let replies = number(&backends, &format!("{address}:replies"));
    let (p50, p99) = (
        number(&backends, &format!("{address}:latency_p50_us")),
        number(&backends, &format!("{address}:latency_p99_us")),
    );
    println!("backend: {replies} replies, p50 {p50} us, p99 {p99} us");
    // One reply per request: a multi-get's keys on one server go as one request.
    assert_eq!(replies, 38);
    assert!(0 < p50 && p50 <= p99, "p50 {p50} us, p99 {p99} us");
    assert_eq!(backends[&format!("{address}:state")], "up");
    assert_eq!(number(&backends, &format!("{address}:outstanding")), 0);
    assert_eq!(
        number(&backends, &format!("{address}:outstanding_bytes")),
        0
    );

    let plugins = group(&mut observer, "plugins");
    assert_eq!(number(&plugins, "pools.main:calls"), 48);
    assert_eq!(number(&plugins, "pools.main:faults_trap"), 0);
    assert!(
        number(&plugins, "pools.main:call_p99_us")
            >= number(&plugins, "pools.main:call_mean_us").min(1)
    );
    assert!(number(&plugins, "pools.main:memory_bytes") > 0);
    assert!(
        plugins["pools.main:module"].starts_with("ketama sha256:"),
        "{}",
        plugins["pools.main:module"]
    );

    let config = group(&mut observer, "config");
    assert_eq!(number(&config, "generation"), 1);
    assert_eq!(number(&config, "reload_failures"), 0);
}

#[test]
fn a_trapping_plugin_shows_in_stats_plugins_and_as_one_log_line() {
    let server = Memcached::start();
    let spec = server.spec();
    let port = switchyard_tests::ports::free_port();
    let config = format!(
        "[server]\nworkers = 1\nwatch = false\n\n[plugins]\nrollback_faults = 0\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{port}\"\nroute = \"r\"\n\n\
         [pools.p]\nservers = [\"{spec}\"]\n\n\
         [routes.r]\nplugin = \"trap.wasm\"\nchildren = [\"p\"]\n"
    );
    let router = RouterProcess::start_listening(
        "stats-trap",
        &config,
        &[port],
        &[("trap.wasm", wasm::trapping_plugin())],
    );
    let mut client = Client::connect(router.addr());
    // Four in a row: the fifth would open the node's breaker (`breaker_faults`), and the
    // requests after that would be `unavailable` faults, a kind of their own.
    for i in 0..4 {
        let reply = client.request(format!("get trap:{i}\r\n").as_bytes());
        assert!(reply.starts_with(b"SERVER_ERROR plugin routes.r failed"));
    }
    assert_eq!(client.get("fine"), None);
    let plugins = group(&mut client, "plugins");
    assert_eq!(number(&plugins, "routes.r:faults_trap"), 4);
    assert_eq!(number(&plugins, "routes.r:faults_unavailable"), 0);
    assert_eq!(number(&plugins, "routes.r:calls"), 5);
    assert_eq!(number(&plugins, "pools.p:calls"), 1);
    let faults = poll_until(std::time::Duration::from_secs(5), || {
        let lines = router
            .log()
            .lines()
            .filter(|l| l.contains("plugin fault"))
            .map(str::to_string)
            .collect::<Vec<_>>();
        (!lines.is_empty()).then_some(lines)
    })
    .unwrap_or_else(|| panic!("no plugin fault line: {}", router.log()));
    assert_eq!(faults.len(), 1, "{faults:#?}");
    assert!(
        faults[0].contains("routes.r") && faults[0].contains("trap"),
        "{}",
        faults[0]
    );
}

#[test]
fn every_stat_any_group_prints_is_declared_in_describe_stats() {
    let output = Command::new(switchyard_binary())
        .arg("--describe-stats")
        .output()
        .expect("run switchyard --describe-stats");
    assert!(output.status.success());
    let described = String::from_utf8_lossy(&output.stdout).into_owned();
    // (group, name pattern) per line; `<...>` stands for any text without spaces.
    let patterns: Vec<(String, String)> = described
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split(' ');
            let group = words.next().unwrap_or_default().to_string();
            let name = words.next().unwrap_or_default().to_string();
            assert!(
                words.clone().count() >= 3,
                "a stat without kind, unit and description: {l}"
            );
            (group, name)
        })
        .collect();
    // The literal pieces of the pattern, in order, each placeholder at least one character.
    let matches = |pattern: &str, name: &str| {
        let mut pieces = vec![];
        let mut rest = pattern;
        while let Some((head, tail)) = rest.split_once('<') {
            pieces.push(head);
            rest = tail.split_once('>').map_or("", |(_, t)| t);
        }
        pieces.push(rest);
        let Some(mut left) = name.strip_prefix(pieces[0]) else {
            return false;
        };
        for (i, piece) in pieces.iter().enumerate().skip(1) {
            let last = i == pieces.len() - 1;
            let found = if last {
                left.len()
                    .checked_sub(piece.len())
                    .filter(|&at| at >= 1 && left.ends_with(piece))
            } else {
                left.get(1..).and_then(|l| l.find(piece)).map(|at| at + 1)
            };
            let Some(at) = found else {
                return false;
            };
            left = &left[at + piece.len()..];
        }
        left.is_empty()
    };

    // A tenant and an experiment too, whose candidate sends every key elsewhere: every group
    // prints lines.
    let (server, other) = (Memcached::start(), Memcached::start());
    let router = router(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"t\"\n\n\
         [tenants.t]\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n[pools.elsewhere]\nservers = [\"{}\"]\n\n\
         [experiments.e]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"elsewhere\"\n\n\
         [experiments.m]\nkind = \"shadow\"\nnode = \"main\"\ncandidate = \"elsewhere\"\n\n\
         [experiments.c]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"elsewhere\"\n\
         steps = [0.5, 1.0]\n",
        server.spec(),
        other.spec()
    ));
    let mut client = connect(&router, 0);
    client.set("k", b"v");
    // Keys only the node's server holds: the shadow's copies miss, and keep samples.
    let mut direct = server.client();
    for i in 0..20 {
        direct.set(&format!("only-{i}"), b"v");
        client.get(&format!("only-{i}"));
    }
    connect(&router, 1).set("k", b"v");
    for (group_name, described_as) in [
        ("", "stats"),
        ("backends", "backends"),
        ("plugins", "plugins"),
        ("routes", "routes"),
        ("config", "config"),
        ("hotkeys", "hotkeys"),
        ("tenants", "tenants"),
        ("experiments", "experiments"),
    ] {
        let lines = group(&mut client, group_name);
        assert!(!lines.is_empty(), "stats {group_name} printed nothing");
        for name in lines.keys() {
            assert!(
                patterns.iter().any(|(g, p)| (g == described_as
                    || (described_as == "stats" && g == "config"))
                    && matches(p, name)),
                "STAT {name} (stats {group_name}) is not in --describe-stats"
            );
        }
    }
}

#[test]
fn a_key_at_a_fifth_of_the_requests_tops_stats_hotkeys() {
    let server = Memcached::start();
    let router = router(&format!(
        "[server]\nworkers = 2\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        server.spec()
    ));
    // Two connections (one per worker, most likely), 5,000 requests each: every fifth for
    // `hot`, the rest spread over 2,000 other keys; sets of 1 kB for `big`.
    let mut clients: Vec<Client> = (0..2).map(|_| connect(&router, 0)).collect();
    clients[0].set("big", &[b'b'; 1000]);
    for i in 0..5000u32 {
        for (c, client) in clients.iter_mut().enumerate() {
            let key = if i % 5 == 0 {
                "hot".to_string()
            } else {
                format!("cold:{}", (i * 7 + c as u32 * 13) % 2000)
            };
            client.send(format!("get {key}\r\n").as_bytes());
            if i % 100 == 0 {
                client.send(b"set big 0 0 1000\r\n");
                client.send(&[b'b'; 1000]);
                client.send(b"\r\n");
            }
        }
        if i % 50 == 49 {
            // Read what is owed so far; the replies are not looked at.
            for client in &mut clients {
                client.send(b"mn\r\n");
                client.read_until(b"MN\r\n");
            }
        }
    }
    for client in &mut clients {
        client.send(b"mn\r\n");
        client.read_until(b"MN\r\n");
    }
    let mut observer = connect(&router, 0);
    observer.send(b"stats hotkeys\r\n");
    let text = String::from_utf8_lossy(&observer.read_until(b"END\r\n")).into_owned();
    println!("{text}");
    let first = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let top = first("STAT requests:");
    assert_eq!(top.get(1).copied(), Some("requests:hot"), "{text}");
    let estimate: u64 = top.get(2).and_then(|n| n.parse().ok()).unwrap_or_default();
    // 2,000 requests for `hot` in all; sampling and Space-Saving's overcount allow some slack.
    assert!(
        (1200..=3000).contains(&estimate),
        "estimate {estimate}: {text}"
    );
    assert_eq!(
        first("STAT bytes:").get(1).copied(),
        Some("bytes:big"),
        "{text}"
    );
}

#[test]
fn route_stats_follow_each_request_down_the_tree_and_leave_background_copies_out() {
    let (a, b, shadow) = (Memcached::start(), Memcached::start(), Memcached::start());
    let router = router(&format!(
        "[server]\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"split\"\n\n\
         [routes.split]\nplugin = \"prefix\"\nchildren = [\"a\", \"shadowed\"]\n\
         config = {{ prefixes = {{ \"a:\" = \"a\" }}, default = \"shadowed\" }}\n\n\
         [routes.shadowed]\nplugin = \"shadow\"\nchildren = [\"b\", \"s\"]\n\
         config = {{ main = \"b\", shadows = [\"s\"], key_range = [0.0, 1.0] }}\n\n\
         [pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n\
         [pools.s]\nservers = [\"{}\"]\n",
        a.spec(),
        b.spec(),
        shadow.spec()
    ));
    let mut client = connect(&router, 0);
    for i in 0..4 {
        client.set(&format!("a:{i}"), b"v");
    }
    for i in 0..6 {
        client.set(&format!("x:{i}"), b"v");
        assert_eq!(client.get(&format!("x:{i}")).as_deref(), Some(&b"v"[..]));
    }
    assert_eq!(client.get("a:missing"), None);
    // The shadow copies are background sends: wait until the shadow has them all.
    poll_until(std::time::Duration::from_secs(5), || {
        let mut s = shadow.client();
        (s.stat("cmd_get") == Some(6) && s.stat("cmd_set") == Some(6)).then_some(())
    })
    .expect("the shadow pool got every copy");

    let routes = group(&mut client, "routes");
    let n = |name: &str| number(&routes, name);
    assert_eq!(n("routes.split:requests"), 17);
    assert_eq!(n("routes.split:replies_stored"), 10);
    assert_eq!(n("routes.split:replies_hit"), 6);
    assert_eq!(n("routes.split:replies_miss"), 1);
    assert_eq!(n("pools.a:requests"), 5);
    assert_eq!(n("pools.a:replies_stored"), 4);
    assert_eq!(n("pools.a:replies_miss"), 1);
    assert_eq!(n("routes.shadowed:requests"), 12);
    assert_eq!(n("pools.b:requests"), 12);
    assert_eq!(n("pools.b:replies_hit"), 6);
    // The copies reached the shadow pool's plugin, but never made a client's reply.
    assert_eq!(n("pools.s:requests"), 0);
    assert_eq!(n("pools.s:replies_stored"), 0);
    let plugins = group(&mut client, "plugins");
    assert_eq!(number(&plugins, "pools.s:calls"), 12);
    for node in ["routes.split", "pools.a", "routes.shadowed", "pools.b"] {
        let (p50, p99) = (
            n(&format!("{node}:latency_p50_us")),
            n(&format!("{node}:latency_p99_us")),
        );
        assert!(0 < p50 && p50 <= p99, "{node}: p50 {p50} us, p99 {p99} us");
    }
    // A reply never waits on its shadow copy, so a node's time is about its child's.
    assert!(n("routes.split:latency_mean_us") >= n("pools.b:latency_mean_us") / 2);
}

#[test]
fn with_timings_and_hot_keys_off_the_counters_still_count() {
    let server = Memcached::start();
    let router = router(&format!(
        "[server]\nworkers = 1\n\n[stats]\ntimings = false\nhotkeys = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        server.spec()
    ));
    let mut client = connect(&router, 0);
    for _ in 0..50 {
        client.set("k", b"v");
        assert_eq!(client.get("nope"), None);
    }
    let address = server.address();
    let backends = group(&mut client, "backends");
    assert_eq!(number(&backends, &format!("{address}:replies")), 100);
    assert_eq!(number(&backends, &format!("{address}:latency_p99_us")), 0);
    let routes = group(&mut client, "routes");
    assert_eq!(number(&routes, "pools.main:requests"), 100);
    assert_eq!(number(&routes, "pools.main:replies_stored"), 50);
    assert_eq!(number(&routes, "pools.main:latency_p99_us"), 0);
    let plugins = group(&mut client, "plugins");
    assert_eq!(number(&plugins, "pools.main:calls"), 100);
    assert_eq!(number(&plugins, "pools.main:call_p99_us"), 0);
    let hot = group(&mut client, "hotkeys");
    assert_eq!(number(&hot, "hotkeys_sampled"), 0);
    let general = group(&mut client, "");
    assert_eq!(number(&general, "get_misses"), 50);
    assert_eq!(number(&general, "get_hits"), 0);
}
