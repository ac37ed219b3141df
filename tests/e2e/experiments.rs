//! Experiments against real memcached: a dry run of a ketama pool given a fourth server
//! compares every request's servers with the live pool's, reports about a quarter moved (all to
//! the new server, exactly as `switchyard diff` counts it on the same keys) and sends the new
//! server nothing (its own `stats` say so); a candidate whose plugin traps on every call costs
//! live traffic nothing and the generation no rollback.

use std::collections::BTreeMap;
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
    assert_eq!(number(&shown, "grow:live_faults"), 0);
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
    // The count, not the rounded percentage: `diff` and this test reach the share by different
    // float arithmetic, so a share like 20.35% may print as 20.3 here and 20.4 there.
    assert!(
        report
            .lines()
            .next()
            .is_some_and(|first| first.starts_with("moved ")
                && first.ends_with(&format!("% ({moved} of 2000 requests)"))),
        "{moved}: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same numbers as JSON.
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let json = switchyard_tests::admin_get(admin, "/experiments");
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

/// A dry run leaves uncompared a request its node's own plugin faults on: the request takes
/// the node's `on_fault` as it would without the experiment, and the experiment counts it in
/// `live_faults` instead of calling the candidate's different answer a move.
#[test]
fn a_dry_run_leaves_uncompared_the_requests_its_nodes_own_plugin_faults_on() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dir = TestDir::new("experiment-live-fault");
    dir.write("trap.wasm", switchyard_tests::wasm::trapping_plugin());
    let text = format!(
        "[server]\nworkers = 1\n\n[plugins]\nbreaker_faults = 0\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"p\"\n\n\
         [pools.p]\nservers = [\"{a}\", \"{b}\"]\nhash = {{ plugin = \"trap.wasm\" }}\n\
         on_fault = \"fallback:{fallback}\"\n\n\
         [pools.same]\nservers = [\"{a}\", \"{b}\"]\nhash = {{ plugin = \"trap.wasm\" }}\n\n\
         [experiments.steady]\nkind = \"dry-run\"\nnode = \"p\"\ncandidate = \"same\"\n",
        a = a.spec(),
        b = b.spec(),
        fallback = b.address(),
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let mut client = connect(&router, 0);
    for i in 0..50 {
        assert_eq!(
            client.request(format!("set good:{i} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
        assert_eq!(
            client.request(format!("set trap:{i} 0 0 1\r\nv\r\n").as_bytes()),
            b"STORED\r\n"
        );
    }
    let shown = group(&mut connect(&router, 0), "experiments");
    assert_eq!(number(&shown, "steady:compared"), 50, "{shown:?}");
    assert_eq!(number(&shown, "steady:live_faults"), 50, "{shown:?}");
    assert_eq!(number(&shown, "steady:moved"), 0, "{shown:?}");
    assert_eq!(number(&shown, "steady:candidate_faults"), 0, "{shown:?}");
    // The good sets went to child 0, the trapped ones to the fallback.
    assert_eq!(b.client().stat("cmd_set"), Some(50));
    assert_eq!(a.client().stat("cmd_set"), Some(50));
}

/// FNV-1a, 64 bits: how an experiment places a key in its sample.
fn fnv1a_64(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether `key` is in an experiment's sample of `fraction`.
fn sampled(key: &str, fraction: f64) -> bool {
    fnv1a_64(key.as_bytes()) % 1_000_000 < (fraction * 1_000_000.0) as u64
}

/// Every reply to `get key` for each of `keys`, through listener 0 of `router`.
fn replies(router: &switchyard::Router, keys: &[String]) -> Vec<Vec<u8>> {
    let mut client = connect(router, 0);
    keys.iter()
        .map(|k| client.request(format!("get {k}\r\n").as_bytes()))
        .collect()
}

/// A shadow of a pool at 10% against a candidate that lacks the odd keys: it compares exactly
/// the sampled keys' gets, counts the sampled odd ones as status mismatches and keeps them as
/// samples; the candidate's own `stats` show the copies; the clients' replies are the same,
/// byte for byte, as a router's without the experiment. Stopped on the admin listener, it
/// compares nothing more; its report is a page with charts.
#[test]
fn a_shadow_at_a_tenth_reports_the_missing_keys_and_changes_no_reply() {
    let (live, candidate) = (Memcached::start(), Memcached::start());
    let keys: Vec<String> = (0..2000).map(|i| format!("user:{i}")).collect();
    let (mut to_live, mut to_candidate) = (live.client(), candidate.client());
    for (i, key) in keys.iter().enumerate() {
        to_live.set(key, format!("value-{i}").as_bytes());
        if i % 2 == 0 {
            to_candidate.set(key, format!("value-{i}").as_bytes());
        }
    }
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], switchyard_tests::ports::free_port()));
    let text = experiment_config(
        &[&live],
        &[&candidate],
        &format!(
            "[admin]\naddress = \"{admin}\"\n\n\
             [experiments.mirror]\nkind = \"shadow\"\nnode = \"main\"\ncandidate = \"main4\"\n\
             sample = 0.1\nkeep_mismatches = 1024\n"
        ),
    );
    let plain = switchyard_tests::router(&experiment_config(&[&live], &[&candidate], ""));
    let router = switchyard_tests::router(&text);
    let gets_before = to_candidate.stat("cmd_get").expect("cmd_get");

    let with = replies(&router, &keys);
    let without = replies(&plain, &keys);
    for ((key, a), b) in keys.iter().zip(&with).zip(&without) {
        assert_eq!(
            switchyard_tests::show(a),
            switchyard_tests::show(b),
            "the reply to get {key} changed"
        );
    }

    let in_sample: Vec<&String> = keys.iter().filter(|k| sampled(k, 0.1)).collect();
    let missing: std::collections::BTreeSet<String> = keys
        .iter()
        .enumerate()
        .filter(|(i, k)| i % 2 == 1 && sampled(k, 0.1))
        .map(|(_, k)| k.clone())
        .collect();
    assert!(
        (120..=280).contains(&in_sample.len()),
        "{} keys in a tenth of 2000",
        in_sample.len()
    );
    // The comparisons finish in the background.
    let mut ops = connect(&router, 0);
    let shown = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(10), || {
        let shown = group(&mut ops, "experiments");
        (number(&shown, "mirror:compared") == in_sample.len() as u64).then_some(shown)
    })
    .unwrap_or_else(|| {
        panic!(
            "not every sampled get was compared: {:?}",
            group(&mut ops, "experiments")
        )
    });
    assert_eq!(
        number(&shown, "mirror:mismatched"),
        missing.len() as u64,
        "{shown:?}"
    );
    assert_eq!(
        number(&shown, "mirror:mismatch_status"),
        missing.len() as u64
    );
    assert_eq!(number(&shown, "mirror:mismatch_value"), 0);
    assert_eq!(
        number(&shown, "mirror:cmd_get_compared"),
        in_sample.len() as u64
    );
    assert_eq!(number(&shown, "mirror:candidate_errors"), 0);
    let samples: std::collections::BTreeSet<String> = shown
        .iter()
        .filter(|(k, _)| k.starts_with("mirror:mismatch_sample:"))
        .map(|(_, v)| {
            let words: Vec<&str> = v.split(' ').collect();
            assert_eq!(
                (words[0], words[2], words[3]),
                ("get", "status", "hit/miss"),
                "{v}"
            );
            words[1].to_string()
        })
        .collect();
    assert_eq!(samples, missing);
    assert!(number(&shown, "mirror:live_reply_p99_us") > 0, "{shown:?}");
    assert!(
        number(&shown, "mirror:candidate_reply_p99_us") > 0,
        "{shown:?}"
    );
    // The candidate was sent the sampled gets, and nothing else.
    assert_eq!(
        to_candidate.stat("cmd_get").expect("cmd_get") - gets_before,
        in_sample.len() as u64
    );

    // Its report: the numbers, with charts.
    let http = router.admin_http_addr().expect("the admin HTTP listener");
    let dir = TestDir::new("experiment-report");
    let out = Command::new(switchyard_binary())
        .args([
            "experiment",
            "report",
            "mirror",
            "--http",
            &http.to_string(),
            "--html",
        ])
        .arg(dir.path().join("mirror.html"))
        .output()
        .expect("run switchyard experiment report");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.path().join("mirror.html")).expect("the report");
    for part in ["<svg", "Mismatch rate over time", "Reply times", "user:1"] {
        assert!(page.contains(part), "no {part} in the report");
    }

    // `switchyard top` has a row for it.
    let out = Command::new(switchyard_binary())
        .args([
            "top",
            "--admin",
            &http.to_string(),
            "--once",
            "--interval",
            "100",
        ])
        .output()
        .expect("run switchyard top --once");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("mirror  shadow  running")),
        "{shown}"
    );

    // Stopped, it compares nothing more.
    let out = Command::new(switchyard_binary())
        .args([
            "experiment",
            "stop",
            "mirror",
            "--admin",
            &admin.to_string(),
        ])
        .output()
        .expect("run switchyard experiment stop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    replies(&router, &keys);
    let stopped = group(&mut ops, "experiments");
    assert_eq!(number(&stopped, "mirror:enabled"), 0);
    assert_eq!(number(&stopped, "mirror:compared"), in_sample.len() as u64);
}

/// A canary whose candidate fails every request (a pool whose one server is gone) is rolled
/// back once both sides have answered `min_requests` in its first step: from then on every key
/// goes to the node, and no request fails. A reload that leaves it as it was keeps it rolled
/// back; a new candidate starts it over.
#[test]
fn a_canary_that_returns_errors_is_rolled_back() {
    let live = Memcached::start();
    let gone = Memcached::start();
    let gone_spec = gone.spec();
    drop(gone);
    let text = format!(
        "[server]\nworkers = 2\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n[pools.broken]\nservers = [\"{gone_spec}\"]\n\n\
         [experiments.roll]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"broken\"\n\
         steps = [0.2, 0.5, 1.0]\nstep_seconds = 60\nmin_requests = 20\n",
        live.spec()
    );
    let router = switchyard_tests::router(&text);
    let mut client = connect(&router, 0);
    let mut ops = connect(&router, 0);
    let mut i = 0;
    let shown = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(20), || {
        for _ in 0..50 {
            client.request(format!("set k{i} 0 0 1\r\nv\r\n").as_bytes());
            i += 1;
        }
        let shown = group(&mut ops, "experiments");
        (shown.get("roll:stage").map(String::as_str) == Some("rolled-back")).then_some(shown)
    })
    .unwrap_or_else(|| panic!("never rolled back: {:?}", group(&mut ops, "experiments")));
    assert_eq!(number(&shown, "roll:step"), 1, "{shown:?}");
    assert!(number(&shown, "roll:candidate_errors") >= 20, "{shown:?}");
    assert_eq!(number(&shown, "roll:live_errors"), 0, "{shown:?}");
    assert!(
        shown["roll:rollback_reason"].contains("error rate"),
        "{shown:?}"
    );
    assert_eq!(shown["roll:fraction"], "0");
    // A reload that leaves the canary, its node and its candidate as they were keeps it rolled
    // back; one that changes the candidate starts it afresh.
    let reload = |text: &str| {
        let config =
            switchyard::Config::from_toml(text, std::path::Path::new("inline-test-config.toml"))
                .expect("a valid config");
        router.reload_with(config).expect("it reloads")
    };
    let generation = reload(&format!(
        "{text}\n[pools.unrelated]\nservers = [\"{}\"]\n",
        live.spec()
    ));
    let kept = group(&mut ops, "experiments");
    assert_eq!(
        (kept["roll:stage"].as_str(), kept["roll:started"].as_str()),
        ("rolled-back", shown["roll:started"].as_str()),
        "generation {generation}: {kept:?}"
    );
    // Every key is the node's again.
    for k in 0..500 {
        let reply = client.request(format!("set after{k} 0 0 1\r\nv\r\n").as_bytes());
        assert!(
            reply == b"STORED\r\n",
            "set after{k}: {}",
            switchyard_tests::show(&reply)
        );
    }
    reload(&text.replace(&gone_spec, &live.spec()));
    let fresh = group(&mut ops, "experiments");
    assert_eq!(
        (
            fresh["roll:stage"].as_str(),
            fresh["roll:fraction"].as_str()
        ),
        ("ramping", "0.2"),
        "{fresh:?}"
    );
}

/// A healthy canary (a pool of another server) ramps through its steps to every key, each step
/// judged once both sides have answered `min_requests` and `step_seconds` have passed; then a
/// new key lands on the candidate's server.
#[test]
fn a_healthy_canary_ramps_to_every_key() {
    let (live, next) = (Memcached::start(), Memcached::start());
    let text = experiment_config(
        &[&live],
        &[&next],
        "[experiments.roll]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"main4\"\n\
         steps = [0.1, 0.4, 1.0]\nstep_seconds = 0.3\nmin_requests = 20\n\
         max_p99_ratio = 50\n",
    );
    let router = switchyard_tests::router(&text);
    let mut client = connect(&router, 0);
    let mut ops = connect(&router, 0);
    let mut i = 0;
    let mut steps_seen = std::collections::BTreeSet::new();
    let shown = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(30), || {
        for _ in 0..50 {
            let reply = client.request(format!("set k{i} 0 0 1\r\nv\r\n").as_bytes());
            assert!(reply == b"STORED\r\n", "{}", switchyard_tests::show(&reply));
            i += 1;
        }
        let shown = group(&mut ops, "experiments");
        steps_seen.insert(number(&shown, "roll:step"));
        (shown.get("roll:stage").map(String::as_str) == Some("done")).then_some(shown)
    })
    .unwrap_or_else(|| panic!("never ramped: {:?}", group(&mut ops, "experiments")));
    assert_eq!(shown["roll:fraction"], "1", "{shown:?}");
    assert_eq!(number(&shown, "roll:step"), 3, "{shown:?}");
    assert!(steps_seen.len() >= 2, "{steps_seen:?}");
    assert_eq!(number(&shown, "roll:candidate_errors"), 0);
    assert!(number(&shown, "roll:live_requests") >= 40, "{shown:?}");
    // Every key goes to the candidate now, and a dry run of the route says so.
    let route =
        String::from_utf8_lossy(&client.request(b"get __switchyard__.route(set,after-ramp)\r\n"))
            .into_owned();
    assert!(route.contains("\ncanary pools.main roll\n"), "{route}");
    assert!(
        route.contains(&format!("server pools.main4 {} ", next.address())),
        "{route}"
    );
    client.set("after-ramp", b"new");
    assert_eq!(
        next.client().get("after-ramp").as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(live.client().get("after-ramp"), None);
}
