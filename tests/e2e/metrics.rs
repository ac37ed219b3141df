//! The admin HTTP listener (`[admin.http]`) against a real router and memcached: `/metrics`
//! scraped with an HTTP client is valid Prometheus text (`promtool check metrics`, and the
//! `prometheus-parse` crate) and has the numbers `stats` has after known traffic, histograms
//! included; `/healthz`, `/readyz` (a pool whose only server is unreachable makes it 503, naming
//! the server), `/config`, `POST /reload` (a good file publishes the next generation, a broken
//! one is refused with its reason while the running generation serves), 404 and 405; and
//! clients that send too much, too slowly or too many connections get an error and leave the
//! router serving.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value};
use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::tls::{CA, SERVER_CERT, SERVER_KEY};
use switchyard_tests::{Certs, Client, Config, Memcached, Router, TestDir, connect};

/// How long a test waits for what the router does at once.
const PROMPTLY: Duration = Duration::from_secs(10);

/// An HTTP client that reports every status as a response, not an error, and gives up on a
/// request after [`PROMPTLY`].
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PROMPTLY))
        .build()
        .into()
}

/// A response: status, the `X-Switchyard-Generation` header if any, and the body.
#[derive(Debug)]
struct Reply {
    status: u16,
    generation: Option<u64>,
    headers: ureq::http::HeaderMap,
    body: String,
}

fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>, what: &str) -> Reply {
    let mut response = result.unwrap_or_else(|e| panic!("{what}: {e}"));
    let generation = response
        .headers()
        .get("x-switchyard-generation")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    Reply {
        status: response.status().as_u16(),
        generation,
        headers: response.headers().clone(),
        body,
    }
}

fn get(admin: SocketAddr, path: &str) -> Reply {
    reply(
        agent().get(format!("http://{admin}{path}")).call(),
        &format!("GET {path}"),
    )
}

fn post(admin: SocketAddr, path: &str) -> Reply {
    reply(
        agent().post(format!("http://{admin}{path}")).send_empty(),
        &format!("POST {path}"),
    )
}

/// Every `STAT name value` of `stats GROUP` (plain `stats` for `""`).
fn group(client: &mut Client, group: &str) -> BTreeMap<String, String> {
    client.stats_group(group).0
}

fn number(stats: &BTreeMap<String, String>, name: &str) -> f64 {
    stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for STAT {name} in {stats:?}"))
}

/// `promtool check metrics` (Debian's `prometheus` package) on `text`: it must parse and raise
/// no lint problem.
fn promtool_accepts(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (scripts/setup installs Debian's `prometheus` package)");
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}\n--- the scrape:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The parsed scrape, after checking what the parser does not: every sample belongs to a
/// family with a `# HELP` and a `# TYPE` line.
fn parse(text: &str) -> Scrape {
    let mut typed: BTreeMap<&str, &str> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(typed.insert(name, kind).is_none(), "{name} is typed twice");
        }
    }
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("prometheus-parse reads it");
    for sample in &scrape.samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = sample.metric.strip_suffix(suffix)?;
                (typed.get(base) == Some(&"histogram")).then_some(base)
            })
            .unwrap_or(&sample.metric);
        assert!(
            typed.contains_key(family) && scrape.docs.contains_key(family),
            "{} has no # TYPE or # HELP line",
            sample.metric
        );
        assert!(
            sample.metric.starts_with("switchyard_"),
            "{}",
            sample.metric
        );
    }
    scrape
}

/// The value of the sample `name` whose labels include `labels`.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect();
    match found.as_slice() {
        [one] => match &one.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name}{labels:?} is {other:?}"),
        },
        _ => panic!("{} samples of {name}{labels:?}", found.len()),
    }
}

/// The buckets of histogram `name` with `labels`: (upper bound, cumulative count).
fn buckets(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(Value::Histogram(counts)) => {
            let mut b: Vec<(f64, f64)> = counts.iter().map(|c| (c.less_than, c.count)).collect();
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            b
        }
        other => panic!("histogram {name}{labels:?}: {other:?}"),
    }
}

/// Checks a histogram's series against each other and returns its `_count`.
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let b = buckets(scrape, name, labels);
    let count = value(scrape, &format!("{name}_count"), labels);
    let sum = value(scrape, &format!("{name}_sum"), labels);
    assert!(b.len() > 20, "{name}: {b:?}");
    assert!(
        b.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: buckets not cumulative: {b:?}"
    );
    assert_eq!(b.last().map(|l| l.0), Some(f64::INFINITY), "{name}: {b:?}");
    assert_eq!(
        b.last().map(|l| l.1),
        Some(count),
        "{name}: +Inf is not _count"
    );
    assert!(
        b[0].0 == 1e-6 && (count == 0.0 || sum > 0.0),
        "{name}: first bound {}, sum {sum}",
        b[0].0
    );
    count
}

/// The HELP text a family carries.
fn help<'a>(scrape: &'a Scrape, name: &str) -> &'a str {
    scrape
        .docs
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no # HELP {name}"))
}

#[test]
fn metrics_are_valid_prometheus_text_with_the_numbers_of_stats() {
    let server = Memcached::start();
    let address = server.address();
    let dir = TestDir::new("metrics-scrape");
    let certs = Certs::generate(dir.path());
    let text = format!(
        "[server]\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\
         [listeners.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        certs.path(SERVER_CERT),
        certs.path(SERVER_KEY),
        certs.path(CA),
        server.spec()
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let mut client = connect(&router, 0);
    let mut observer = connect(&router, 0);
    // A client with identity `alpha`, open while the router is scraped.
    let mut alpha = certs
        .as_client()
        .connect(router.local_addrs()[1])
        .unwrap_or_else(|e| panic!("mutual TLS: {e}"));
    alpha.set("from-alpha", b"a");

    // 10 sets, 20 one-key gets, 5 three-key gets, 2 deletes (as tests/e2e/stats.rs).
    for i in 0..10 {
        let set = format!("set k{i} 0 0 5\r\nvalue\r\n");
        assert_eq!(client.request(set.as_bytes()), b"STORED\r\n");
    }
    for i in 0..20 {
        assert!(
            client
                .request(format!("get k{}\r\n", i % 10).as_bytes())
                .starts_with(b"VALUE")
        );
    }
    for i in 0..5 {
        let reply = client.request(format!("get k{i} k{} nope\r\n", i + 1).as_bytes());
        assert!(reply.ends_with(b"END\r\n"));
    }
    for i in 0..2 {
        assert_eq!(
            client.request(format!("delete k{i}\r\n").as_bytes()),
            b"DELETED\r\n"
        );
    }

    // `stats`, then the scrape, then the other groups (which no counter of theirs sees).
    let plain = group(&mut observer, "");
    let scraped = get(admin, "/metrics");
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    assert_eq!(
        scraped
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let backends = group(&mut observer, "backends");
    let plugins = group(&mut observer, "plugins");
    let config = group(&mut observer, "config");
    let body = scraped.body;

    promtool_accepts(&body);
    let scrape = parse(&body);
    println!(
        "/metrics: {} bytes, {} families, {} samples",
        body.len(),
        scrape.docs.len(),
        scrape.samples.len()
    );

    // Plain `stats`: the known traffic, and every counter and gauge of the group.
    // The sets are ten and the TLS client's.
    for (command, n) in [("set", 11.0), ("get", 25.0), ("delete", 2.0), ("gets", 0.0)] {
        assert_eq!(
            value(&scrape, "switchyard_cmd_total", &[("command", command)]),
            n,
            "cmd_{command}"
        );
        assert_eq!(number(&plain, &format!("cmd_{command}")), n);
    }
    let renamed: BTreeMap<&str, &str> = [
        ("total_connections", "switchyard_connections_total"),
        ("bytes_read", "switchyard_read_bytes_total"),
        ("bytes_written", "switchyard_written_bytes_total"),
        ("background_bytes", "switchyard_background_bytes"),
        ("delete_spool_bytes", "switchyard_delete_spool_bytes"),
        ("uptime", "switchyard_uptime_seconds"),
        ("time", "switchyard_time_seconds"),
        (
            "generation_loaded_at",
            "switchyard_generation_loaded_at_seconds",
        ),
        (
            "last_reload_success",
            "switchyard_last_reload_success_seconds",
        ),
    ]
    .into_iter()
    .collect();
    let mut compared = 0;
    for (name, text) in &plain {
        let Ok(expected) = text.parse::<f64>() else {
            continue;
        };
        if let Some(command) = name.strip_prefix("cmd_") {
            let (metric, command) = match command.strip_suffix("_errors") {
                Some(command) => ("switchyard_cmd_errors_total", command),
                None => ("switchyard_cmd_total", command),
            };
            assert_eq!(
                value(&scrape, metric, &[("command", command)]),
                expected,
                "{name}"
            );
            compared += 1;
            continue;
        }
        let candidates = match renamed.get(name.as_str()) {
            Some(metric) => vec![metric.to_string()],
            None => vec![
                format!("switchyard_{name}_total"),
                format!("switchyard_{name}"),
            ],
        };
        let metric = candidates
            .iter()
            .find(|m| scrape.samples.iter().any(|s| &s.metric == *m))
            .unwrap_or_else(|| panic!("STAT {name} has no metric among {candidates:?}"));
        let got = value(&scrape, metric, &[]);
        if matches!(name.as_str(), "uptime" | "time") {
            assert!((got - expected).abs() <= 2.0, "{name}: {got} vs {expected}");
        } else if name == "bytes_written" {
            // The `stats` reply itself went out (and was counted) after it was rendered.
            let reply: usize = plain
                .iter()
                .map(|(n, v)| format!("STAT {n} {v}\r\n").len())
                .sum::<usize>()
                + "END\r\n".len();
            assert_eq!(got - expected, reply as f64, "STAT {name} vs {metric}");
        } else {
            assert_eq!(got, expected, "STAT {name} vs {metric}");
        }
        compared += 1;
    }
    assert!(compared > 40, "only {compared} stats compared");
    assert_eq!(
        value(
            &scrape,
            "switchyard_version_info",
            &[("version", plain["version"].as_str())]
        ),
        1.0
    );
    assert_eq!(
        help(&scrape, "switchyard_connections_total"),
        "Client connections accepted."
    );

    // `stats backends`: per server, as labels; the latency histogram counts every reply.
    let server_label = [("server", address.as_str())];
    let replies = number(&backends, &format!("{address}:replies"));
    // One reply per request, a multi-get's keys on one server being one request; and the
    // TLS client's set.
    assert_eq!(replies, 38.0);
    assert_eq!(
        value(&scrape, "switchyard_backend_replies_total", &server_label),
        replies
    );
    assert_eq!(
        histogram_count(&scrape, "switchyard_backend_latency_seconds", &server_label),
        replies
    );
    let sum = value(
        &scrape,
        "switchyard_backend_latency_seconds_sum",
        &server_label,
    );
    let mean_us = number(&backends, &format!("{address}:latency_mean_us"));
    assert!(
        (sum * 1e6 / replies - mean_us).abs() <= 1.0,
        "sum {sum} s over {replies} replies, mean {mean_us} us"
    );
    assert_eq!(
        value(
            &scrape,
            "switchyard_backend_state",
            &[("server", &address), ("state", "up")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "switchyard_backend_state",
            &[("server", &address), ("state", "down")]
        ),
        0.0
    );
    for (stat, text) in &backends {
        let Some(name) = stat.strip_prefix(&format!("{address}:")) else {
            panic!("stats backends names another server: {stat}");
        };
        if name == "state" || name.starts_with("latency_") {
            continue;
        }
        let expected: f64 = text.parse().expect("a number");
        let got = if name == "state_since_ms" {
            value(
                &scrape,
                "switchyard_backend_state_since_seconds",
                &server_label,
            ) * 1e3
        } else if matches!(
            name,
            "consecutive_failures" | "outstanding" | "outstanding_bytes"
        ) {
            value(
                &scrape,
                &format!("switchyard_backend_{name}"),
                &server_label,
            )
        } else {
            value(
                &scrape,
                &format!("switchyard_backend_{name}_total"),
                &server_label,
            )
        };
        assert!((got - expected).abs() < 0.5, "{stat}: {got} vs {expected}");
    }

    // `stats routes`: per node, replies per status as a label; the latency histogram counts
    // every reply.
    let routes = group(&mut observer, "routes");
    let node = [("node", "pools.main")];
    let requests = number(&routes, "pools.main:requests");
    assert!(requests >= 38.0, "{requests} requests");
    assert_eq!(
        value(&scrape, "switchyard_route_requests_total", &node),
        requests
    );
    let mut replied = 0.0;
    for status in ["hit", "miss", "stored", "deleted", "server_error"] {
        let got = value(
            &scrape,
            "switchyard_route_replies_total",
            &[("node", "pools.main"), ("status", status)],
        );
        assert_eq!(
            got,
            number(&routes, &format!("pools.main:replies_{status}")),
            "replies_{status}"
        );
    }
    for (stat, text) in &routes {
        if stat.starts_with("pools.main:replies_") {
            replied += text.parse::<f64>().expect("a number");
        }
    }
    assert_eq!(
        histogram_count(&scrape, "switchyard_route_latency_seconds", &node),
        replied
    );

    // `stats plugins`: per node; the call-time histogram counts every call.
    let node = [("node", "pools.main")];
    let calls = number(&plugins, "pools.main:calls");
    assert_eq!(calls, 48.0, "47 keys routed and the TLS client's one");
    assert_eq!(
        value(&scrape, "switchyard_plugin_calls_total", &node),
        calls
    );
    assert_eq!(
        histogram_count(&scrape, "switchyard_plugin_call_seconds", &node),
        calls
    );
    for (stat, metric) in [
        ("faults_trap", "switchyard_plugin_faults_trap_total"),
        ("faults_timeout", "switchyard_plugin_faults_timeout_total"),
        ("faults_bad_plan", "switchyard_plugin_faults_bad_plan_total"),
        ("memory_bytes", "switchyard_plugin_memory_bytes"),
    ] {
        assert_eq!(
            value(&scrape, metric, &node),
            number(&plugins, &format!("pools.main:{stat}")),
            "{stat}"
        );
    }
    assert!(value(&scrape, "switchyard_plugin_memory_bytes", &node) > 0.0);
    assert_eq!(
        value(
            &scrape,
            "switchyard_plugin_module_info",
            &[
                ("node", "pools.main"),
                ("module", plugins["pools.main:module"].as_str())
            ]
        ),
        1.0
    );

    // `stats config`.
    assert_eq!(value(&scrape, "switchyard_generation", &[]), 1.0);
    assert_eq!(number(&config, "generation"), 1.0);
    assert_eq!(value(&scrape, "switchyard_reloads_total", &[]), 0.0);
    assert_eq!(
        value(&scrape, "switchyard_generation_loaded_at_seconds", &[]),
        number(&config, "generation_loaded_at")
    );

    // `stats tls`: the identity's connection, open.
    let alpha_label = [("identity", "alpha")];
    assert_eq!(
        value(
            &scrape,
            "switchyard_tls_identity_curr_connections",
            &alpha_label
        ),
        1.0
    );
    assert_eq!(
        value(
            &scrape,
            "switchyard_tls_identity_connections_total",
            &alpha_label
        ),
        1.0
    );
    drop(alpha);
}

/// A config file in `dir` with two listeners: the first for pool `main` (`server`), the second
/// for pool `dead`, whose one server (`dead`) accepts nothing. The watcher is off: only
/// `POST /reload` reloads. `marker` goes in a comment, to tell versions of the file apart.
fn two_pools(server: &Memcached, dead: SocketAddr, marker: &str) -> String {
    format!(
        "# {marker}\n[server]\nworkers = 1\nwatch = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"dead\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n\
         [pools.dead]\nservers = [\"{dead}\"]\nconnect_timeout_ms = 200\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec()
    )
}

fn start_from(path: &Path) -> Router {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    Router::start(config).unwrap_or_else(|e| panic!("router did not start: {e}"))
}

#[test]
fn health_readiness_config_and_reload() {
    let server = Memcached::start();
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = TestDir::new("metrics-endpoints");
    let first = two_pools(&server, dead, "first");
    let path = dir.write("switchyard.toml", &first);
    let router = start_from(&path);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");

    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    // No server has failed yet: each pool has one presumed up.
    let ready = get(admin, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // A request to the dead pool's server is refused: the server is down, the router not ready.
    let mut to_dead = connect(&router, 1);
    let failed = to_dead.request(b"get k\r\n");
    assert!(failed.starts_with(b"SERVER_ERROR"), "{failed:?}");
    let not_ready = poll_until(PROMPTLY, || {
        let r = get(admin, "/readyz");
        (r.status == 503).then_some(r)
    })
    .expect("/readyz stays 200 with a pool whose only server is down");
    assert!(
        not_ready.body.contains("pool `dead`")
            && not_ready.body.contains(&dead.to_string())
            && !not_ready.body.contains("`main`"),
        "{}",
        not_ready.body
    );
    // Still alive, and still serving the pool that has its server.
    assert_eq!(get(admin, "/healthz").status, 200);
    let mut client = connect(&router, 0);
    client.set("a", b"1");

    // The running configuration, with its generation.
    let config = get(admin, "/config");
    assert_eq!((config.status, config.generation), (200, Some(1)));
    assert_eq!(config.body, first);

    // A good file: published as generation 2, and /config shows it.
    let second = two_pools(&server, dead, "second");
    dir.write("switchyard.toml", &second);
    let reloaded = post(admin, "/reload");
    assert_eq!(
        (reloaded.status, reloaded.body.as_str(), reloaded.generation),
        (200, "2\n", Some(2)),
        "{}",
        reloaded.body
    );
    assert_eq!(router.generation().number, 2);
    let config = get(admin, "/config");
    assert_eq!(
        (config.generation, config.body.as_str()),
        (Some(2), second.as_str())
    );

    // A broken file: refused with its reason, generation 2 still serving.
    dir.write(
        "switchyard.toml",
        second.replace("route = \"main\"", "route = \"nowhere\""),
    );
    let refused = post(admin, "/reload");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.generation, Some(2));
    assert!(
        refused.body.starts_with("reload refused: ")
            && refused.body.contains("listeners[0].route")
            && refused.body.contains("nowhere"),
        "{}",
        refused.body
    );
    assert_eq!(router.generation().number, 2);
    assert_eq!(get(admin, "/config").body, second);
    assert_eq!(client.get("a").as_deref(), Some(&b"1"[..]));
    let metrics = get(admin, "/metrics").body;
    let scrape = parse(&metrics);
    assert_eq!(value(&scrape, "switchyard_reload_failures_total", &[]), 1.0);
    assert_eq!(value(&scrape, "switchyard_reloads_total", &[]), 1.0);
    assert_eq!(value(&scrape, "switchyard_generation", &[]), 2.0);
    assert!(
        metrics.contains("switchyard_last_reload_error_info{last_reload_error=\""),
        "{metrics}"
    );
    promtool_accepts(&metrics);

    // Unknown paths and wrong methods.
    let missing = get(admin, "/nope");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("/metrics"), "{}", missing.body);
    let wrong = post(admin, "/metrics");
    assert_eq!(wrong.status, 405);
    assert_eq!(
        wrong.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET, HEAD")
    );
    let wrong = get(admin, "/reload");
    assert_eq!(wrong.status, 405);
    assert_eq!(
        wrong.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let deleted = reply(
        agent().delete(format!("http://{admin}/config")).call(),
        "DELETE /config",
    );
    assert_eq!(deleted.status, 405);
    // Route introspection is not served over HTTP yet.
    // Where a request would go, as `get __switchyard__.route(...)` says: the dry run.
    let route = get(admin, "/route?op=get&key=a%20b");
    assert_eq!(route.status, 200, "{}", route.body);
    assert!(
        route.body.starts_with("route get a b\n")
            && route
                .body
                .contains(&format!("server pools.main {} ", server.address())),
        "{}",
        route.body
    );
    let on_dead = get(admin, "/route?op=set&key=k&listener=1");
    assert!(
        on_dead.body.contains(&format!("server pools.dead {dead} ")),
        "{}",
        on_dead.body
    );
    assert_eq!(get(admin, "/route?op=frobnicate&key=a").status, 400);
    assert_eq!(get(admin, "/route?key=a").status, 400);
    let head = reply(
        agent().head(format!("http://{admin}/healthz")).call(),
        "HEAD /healthz",
    );
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(
        router.generation().number,
        2,
        "nothing but POST /reload reloads"
    );
}

/// Sends `request` as it is on a new connection and returns what comes back until the router
/// closes it (or [`PROMPTLY`] passes).
fn raw(admin: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(admin).expect("connect to the admin HTTP listener");
    stream
        .set_read_timeout(Some(PROMPTLY))
        .expect("read timeout");
    // The router may answer and close before it has read all of an oversized request.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn bad_clients_get_an_error_and_the_router_keeps_serving() {
    let server = Memcached::start();
    let router = switchyard_tests::router(&format!(
        "[server]\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n[admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec()
    ));
    let admin = router.admin_http_addr().expect("the admin HTTP listener");

    // A head larger than the router reads (8 KiB): exactly that much of one, so that the
    // router has read all that was sent when it answers and closes (unread bytes would make
    // the close a reset, which can destroy the answer before it is read).
    let start = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ";
    let huge = format!("{start}{}", "a".repeat((8 << 10) - start.len()));
    let answer = raw(admin, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    // Too many headers.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw(
        admin,
        format!("GET /healthz HTTP/1.1\r\n{many}\r\n").as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:?}");
    // Not HTTP.
    let answer = raw(admin, b"HELLO THERE\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    // A body on a reload, larger than the 4 KiB one is read (small enough that it arrives
    // with the head, all read when the router answers).
    let body = "x".repeat(5000);
    let answer = raw(
        admin,
        format!(
            "POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    assert_eq!(
        router.generation().number,
        1,
        "an oversized request reloaded"
    );
    // A method nobody serves.
    let answer = raw(
        admin,
        b"BREW /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer:?}");

    // A slow client holding half a request does not hold up anyone else.
    let mut slow = TcpStream::connect(admin).expect("connect");
    slow.write_all(b"GET /metr").expect("write half a request");
    assert_eq!(get(admin, "/healthz").status, 200);

    // A flood of connections: those past the bound are refused with 503, not served by a
    // thread each, and once they close the listener serves again.
    let mut open: Vec<TcpStream> = Vec::new();
    let refused = poll_until(PROMPTLY, || {
        let mut stream = TcpStream::connect(admin).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .ok()?;
        let mut first = [0u8; 12];
        match stream.read(&mut first) {
            Ok(n) if first[..n].starts_with(b"HTTP/1.1 503") => Some(()),
            _ => {
                open.push(stream);
                None
            }
        }
    });
    assert!(
        refused.is_some(),
        "{} connections open and none refused",
        open.len()
    );
    assert!(
        open.len() < 100,
        "{} connections served at once",
        open.len()
    );
    drop(open);
    drop(slow);
    let served = poll_until(PROMPTLY, || {
        let response = agent().get(format!("http://{admin}/metrics")).call().ok()?;
        (response.status() == 200).then_some(())
    });
    assert!(
        served.is_some(),
        "the listener does not serve after the flood"
    );

    // The cache clients never noticed.
    let mut client = connect(&router, 0);
    client.set("still", b"here");
    assert_eq!(client.get("still").as_deref(), Some(&b"here"[..]));
}

/// A plugin's own counter and histogram (ABI.md, "Plugin metrics"), moved by its `route` calls
/// on two workers, read in `stats plugins` and in `/metrics` (which promtool accepts).
#[test]
fn a_plugins_own_metrics_show_in_stats_plugins_and_metrics() {
    let server = Memcached::start();
    let dir = TestDir::new("plugin-metrics");
    dir.write("counting.wasm", switchyard_tests::wasm::counting_plugin());
    let text = format!(
        "[server]\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"counted\"\n\n\
         [routes.counted]\nplugin = \"counting.wasm\"\nchildren = [\"main\"]\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec()
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    // Two clients, so that both workers are likely to count (the sums must not care).
    let mut clients = [connect(&router, 0), connect(&router, 0)];
    let long = "l".repeat(200);
    for i in 0..30 {
        let key = match i % 3 {
            0 => "a",
            1 => "bbbbb",
            _ => long.as_str(),
        };
        let reply = clients[i % 2].request(format!("get {key}\r\n").as_bytes());
        assert_eq!(reply, b"END\r\n");
    }
    // A trap after the bump: the request fails, the count stands.
    let reply = clients[0].request(b"get bad!x\r\n");
    assert!(reply.starts_with(b"SERVER_ERROR"), "{reply:?}");

    let plugins = group(&mut clients[1], "plugins");
    let stat = |name: &str| number(&plugins, &format!("routes.counted:{name}"));
    assert_eq!(stat("counter:requests"), 31.0, "{plugins:?}");
    assert_eq!(stat("faults_trap"), 1.0);
    assert_eq!(stat("histogram:key_bytes:count"), 31.0);
    assert_eq!(stat("histogram:key_bytes:sum"), (10 + 50 + 2000 + 5) as f64);
    assert_eq!(stat("histogram:key_bytes:p50"), 5.0);
    // 200 lies in the bucket of 193..=208 (eight per power of two).
    assert_eq!(stat("histogram:key_bytes:p99"), 208.0);
    assert_eq!(stat("histogram:key_bytes:mean"), (2065 / 31) as f64);
    assert!(
        !plugins
            .keys()
            .any(|k| k.starts_with("pools.main.hash:counter")),
        "the bundled ketama defines no metrics: {plugins:?}"
    );

    let scraped = get(admin, "/metrics");
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    promtool_accepts(&scraped.body);
    let scrape = parse(&scraped.body);
    let node = ("node", "routes.counted");
    assert_eq!(
        value(
            &scrape,
            "switchyard_plugin_events_total",
            &[node, ("counter", "requests")]
        ),
        31.0
    );
    let labels = [node, ("histogram", "key_bytes")];
    let b = buckets(&scrape, "switchyard_plugin_values", &labels);
    let at = |bound: f64| b.iter().find(|(le, _)| *le == bound).map(|(_, n)| *n);
    assert_eq!(at(1.0), Some(10.0), "{b:?}");
    assert_eq!(at(8.0), Some(21.0), "{b:?}");
    assert_eq!(at(256.0), Some(31.0), "{b:?}");
    assert_eq!(
        value(&scrape, "switchyard_plugin_values_sum", &labels),
        2065.0
    );
    assert!(
        help(&scrape, "switchyard_plugin_events_total").contains("defined"),
        "{:?}",
        scrape.docs
    );
}

/// Two tenants on one pool: each one's requests by command, hits, misses, bytes each way and
/// latency are its own, in `stats tenants` and in `/metrics` (labelled `tenant`), exactly as
/// its clients sent and received them; promtool accepts the scrape.
#[test]
fn a_tenants_traffic_is_counted_apart_in_stats_and_metrics() {
    let server = Memcached::start();
    let text = format!(
        "{listeners}[tenants.alpha]\nroute = \"main\"\n\n[tenants.beta]\nroute = \"front\"\n\n\
         [routes.front]\nplugin = \"ketama\"\nchildren = [\"main\"]\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n[pools.twin]\nservers = [\"{}\"]\n\n\
         [experiments.twin]\nkind = \"dry-run\"\nnode = \"main\"\ncandidate = \"twin\"\n\n\
         [pools.copy]\nservers = [\"{}\"]\n\n\
         [experiments.mirror]\nkind = \"shadow\"\nnode = \"main\"\ncandidate = \"copy\"\n\n\
         [experiments.roll]\nkind = \"canary\"\nnode = \"main\"\ncandidate = \"copy\"\n\
         steps = [0.5, 1.0]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec(),
        server.spec(),
        server.spec(),
        listeners = switchyard_tests::tenant_listeners(2, &["alpha", "beta"], "main"),
    );
    let router = switchyard_tests::router(&text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    // alpha: a set, a hit, a miss, a two-key get (one of each) and a refused `incr` of a
    // value that is no number: every byte each way noted.
    let (mut sent, mut received) = (0usize, 0usize);
    for request in [
        &b"set k1 0 0 2\r\nv1\r\n"[..],
        b"get k1\r\n",
        b"get k2\r\n",
        b"get k1 k2\r\n",
        b"incr k1 1\r\n",
    ] {
        sent += request.len();
        received += alpha.request(request).len();
    }
    beta.set("b1", b"x");
    assert_eq!(beta.get("b1").as_deref(), Some(&b"x"[..]));

    // beta's route is beta's alone; the pool every listener reaches is no one's.
    let plugins = group(&mut connect(&router, 2), "plugins");
    assert_eq!(
        plugins.get("routes.front:tenant").map(String::as_str),
        Some("beta"),
        "{plugins:?}"
    );
    assert_eq!(plugins.get("pools.main:tenant"), None, "{plugins:?}");

    let stats = group(&mut connect(&router, 2), "tenants");
    let stat = |name: &str| number(&stats, name);
    for (name, expected) in [
        ("alpha:cmd_set", 1.0),
        ("alpha:cmd_get", 3.0),
        ("alpha:cmd_incr", 1.0),
        ("alpha:cmd_incr_errors", 1.0),
        ("alpha:cmd_get_errors", 0.0),
        ("alpha:get_hits", 2.0),
        ("alpha:get_misses", 2.0),
        ("alpha:bytes_read", sent as f64),
        ("alpha:bytes_written", received as f64),
        ("alpha:outstanding", 0.0),
        ("beta:cmd_set", 1.0),
        ("beta:cmd_get", 1.0),
        ("beta:get_hits", 1.0),
        ("beta:get_misses", 0.0),
        ("beta:cmd_incr", 0.0),
    ] {
        assert_eq!(stat(name), expected, "{name}: {stats:?}");
    }
    assert!(stat("alpha:latency_p99_us") > 0.0, "{stats:?}");

    let body = get(admin, "/metrics").body;
    promtool_accepts(&body);
    let scrape = parse(&body);
    let tenant_value = |name: &str, labels: &[(&str, &str)]| value(&scrape, name, labels);
    // Each kind of experiment's families, labelled by experiment.
    for (name, experiment) in [
        ("switchyard_experiment_compared_total", "twin"),
        ("switchyard_experiment_moved_total", "twin"),
        ("switchyard_experiment_mismatched_total", "mirror"),
        (
            "switchyard_experiment_candidate_reply_seconds_count",
            "mirror",
        ),
        ("switchyard_experiment_fraction", "roll"),
        ("switchyard_experiment_candidate_requests_total", "roll"),
    ] {
        assert!(
            scrape
                .samples
                .iter()
                .any(|s| s.metric == name && s.labels.get("experiment") == Some(experiment)),
            "no {name}{{experiment={experiment:?}}} in\n{}",
            body.lines()
                .filter(|l| l.contains("experiment"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // A tenant's own node's series carry its `tenant` label; a shared node's none (each
    // tenant's share of it is in the `switchyard_*_tenant_*` families).
    assert_eq!(
        tenant_value(
            "switchyard_route_requests_total",
            &[("node", "routes.front"), ("tenant", "beta")]
        ),
        2.0
    );
    assert!(
        scrape
            .samples
            .iter()
            .filter(|s| !s.metric.contains("_tenant_"))
            .all(|s| s.labels.get("node") != Some("pools.main") || s.labels.get("tenant").is_none()),
        "the shared pool labelled with a tenant"
    );
    assert_eq!(
        tenant_value(
            "switchyard_route_tenant_requests_total",
            &[("node", "pools.main"), ("tenant", "alpha")]
        ),
        5.0
    );
    for (tenant, command, n) in [
        ("alpha", "get", 3.0),
        ("alpha", "set", 1.0),
        ("beta", "get", 1.0),
    ] {
        assert_eq!(
            tenant_value(
                "switchyard_tenant_cmd_total",
                &[("tenant", tenant), ("command", command)]
            ),
            n
        );
    }
    assert_eq!(
        tenant_value(
            "switchyard_tenant_cmd_errors_total",
            &[("tenant", "alpha"), ("command", "incr")]
        ),
        1.0
    );
    assert_eq!(
        tenant_value("switchyard_tenant_get_hits_total", &[("tenant", "alpha")]),
        2.0
    );
    assert_eq!(
        tenant_value("switchyard_tenant_read_bytes_total", &[("tenant", "alpha")]),
        sent as f64
    );
    assert_eq!(
        tenant_value(
            "switchyard_tenant_written_bytes_total",
            &[("tenant", "alpha")]
        ),
        received as f64
    );
    assert_eq!(
        histogram_count(
            &scrape,
            "switchyard_tenant_latency_seconds",
            &[("tenant", "alpha")]
        ),
        5.0
    );
    assert_eq!(
        histogram_count(
            &scrape,
            "switchyard_tenant_latency_seconds",
            &[("tenant", "beta")]
        ),
        2.0
    );
}

/// Two tenants on a pool of two servers: `stats backends` counts each tenant's requests at
/// each server apart (`<server>:tenant:<tenant>:replies`, latency, outstanding), and each
/// server's replies are exactly its tenants' (no other client sends it anything). With one
/// server killed, beta's requests that went to it are beta's `failed` and `fast_failed` there,
/// one for each `SERVER_ERROR` beta got, and alpha's counts there stay as they were. `stats
/// routes` counts each tenant's requests at the pool they share, with their replies by status.
/// `/metrics` has the same numbers labelled `server` (or `node`) and `tenant` (promtool accepts
/// the scrape), and `switchyard top --tenant beta` shows beta's share.
#[test]
fn a_tenants_requests_to_each_server_and_node_are_counted_apart() {
    let (a, mut b) = (Memcached::start(), Memcached::start());
    let text = format!(
        "{listeners}[tenants.alpha]\nroute = \"main\"\n\n[tenants.beta]\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\", \"{}\"]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        a.spec(),
        b.spec(),
        listeners = switchyard_tests::tenant_listeners(2, &["alpha", "beta"], "main"),
    );
    let router = switchyard_tests::router(&text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    for i in 0..20 {
        alpha.set(&format!("a{i}"), b"x");
        assert_eq!(alpha.get(&format!("a{i}")).as_deref(), Some(&b"x"[..]));
    }
    for i in 0..10 {
        beta.set(&format!("b{i}"), b"y");
    }
    let servers = [a.address(), b.address()];
    let backends = group(&mut connect(&router, 2), "backends");
    let stat = |stats: &BTreeMap<String, String>, name: String| -> f64 {
        stats.get(&name).map_or(0.0, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("STAT {name} {v} is no number"))
        })
    };
    let of = |stats: &BTreeMap<String, String>, tenant: &str, f: &str| -> Vec<f64> {
        servers
            .iter()
            .map(|s| stat(stats, format!("{s}:tenant:{tenant}:{f}")))
            .collect()
    };
    let total = |v: Vec<f64>| v.iter().sum::<f64>();
    assert_eq!(
        total(of(&backends, "alpha", "replies")),
        40.0,
        "{backends:?}"
    );
    assert_eq!(
        total(of(&backends, "beta", "replies")),
        10.0,
        "{backends:?}"
    );
    for s in &servers {
        assert_eq!(
            stat(&backends, format!("{s}:replies")),
            stat(&backends, format!("{s}:tenant:alpha:replies"))
                + stat(&backends, format!("{s}:tenant:beta:replies")),
            "{s}: {backends:?}"
        );
    }
    // Both servers got some of alpha's twenty keys, and timed them.
    for (s, n) in servers.iter().zip(of(&backends, "alpha", "replies")) {
        assert!(n > 0.0, "alpha sent {s} nothing: {backends:?}");
        assert!(
            stat(&backends, format!("{s}:tenant:alpha:latency_p99_us")) > 0.0,
            "{backends:?}"
        );
    }
    assert_eq!(total(of(&backends, "alpha", "outstanding")), 0.0);
    assert_eq!(total(of(&backends, "alpha", "failed")), 0.0);

    // One server gone: beta's requests for it fail, counted as beta's there.
    b.kill();
    let mut server_errors = 0;
    for i in 0..10 {
        let reply = beta.request(format!("get b{i}\r\n").as_bytes());
        if reply.starts_with(b"SERVER_ERROR") {
            server_errors += 1;
        } else {
            assert_eq!(
                String::from_utf8_lossy(&reply),
                format!("VALUE b{i} 0 1\r\ny\r\nEND\r\n")
            );
        }
    }
    assert!(
        server_errors > 0,
        "none of beta's keys was on {}",
        servers[1]
    );
    let after = group(&mut connect(&router, 2), "backends");
    let gone = &servers[1];
    let failed_at = |stats: &BTreeMap<String, String>, tenant: &str| {
        stat(stats, format!("{gone}:tenant:{tenant}:failed"))
            + stat(stats, format!("{gone}:tenant:{tenant}:fast_failed"))
    };
    assert_eq!(
        failed_at(&after, "beta"),
        f64::from(server_errors),
        "{after:?}"
    );
    assert_eq!(failed_at(&after, "alpha"), 0.0, "{after:?}");
    assert_eq!(
        stat(&after, format!("{gone}:tenant:alpha:replies")),
        stat(&backends, format!("{gone}:tenant:alpha:replies")),
    );
    assert_eq!(
        stat(&after, format!("{gone}:tenant:beta:replies")),
        stat(&backends, format!("{gone}:tenant:beta:replies")),
    );

    // The shared pool's requests, by tenant: alpha's forty (twenty stored, twenty hits),
    // beta's ten sets and ten gets; the node's are theirs together.
    let routes = group(&mut connect(&router, 2), "routes");
    let route = |name: &str| stat(&routes, format!("pools.main:{name}"));
    for (name, n) in [
        ("tenant:alpha:requests", 40.0),
        ("tenant:alpha:replies_stored", 20.0),
        ("tenant:alpha:replies_hit", 20.0),
        ("tenant:beta:requests", 20.0),
        ("tenant:beta:replies_stored", 10.0),
        ("tenant:beta:replies_hit", f64::from(10 - server_errors)),
        ("tenant:beta:replies_server_error", f64::from(server_errors)),
        ("requests", 60.0),
    ] {
        assert_eq!(route(name), n, "pools.main:{name}: {routes:?}");
    }
    assert!(route("tenant:alpha:latency_p99_us") > 0.0, "{routes:?}");

    let body = get(admin, "/metrics").body;
    promtool_accepts(&body);
    let scrape = parse(&body);
    assert_eq!(
        value(
            &scrape,
            "switchyard_route_tenant_requests_total",
            &[("node", "pools.main"), ("tenant", "alpha")]
        ),
        40.0
    );
    assert_eq!(
        value(
            &scrape,
            "switchyard_route_tenant_replies_total",
            &[
                ("node", "pools.main"),
                ("tenant", "beta"),
                ("status", "server_error")
            ]
        ),
        f64::from(server_errors)
    );
    for tenant in ["alpha", "beta"] {
        for s in &servers {
            let name = format!("{s}:tenant:{tenant}:replies");
            if !after.contains_key(&name) {
                continue;
            }
            assert_eq!(
                value(
                    &scrape,
                    "switchyard_backend_tenant_replies_total",
                    &[("server", s.as_str()), ("tenant", tenant)]
                ),
                stat(&after, name),
            );
        }
    }
    assert_eq!(
        value(
            &scrape,
            "switchyard_backend_tenant_failed_total",
            &[("server", gone.as_str()), ("tenant", "beta")]
        ) + value(
            &scrape,
            "switchyard_backend_tenant_fast_failed_total",
            &[("server", gone.as_str()), ("tenant", "beta")]
        ),
        f64::from(server_errors)
    );
    assert!(
        scrape
            .docs
            .contains_key("switchyard_backend_tenant_latency_seconds"),
        "{:?}",
        scrape.docs.keys()
    );

    // `top --tenant`: beta's share of the router; a tenant it does not have is refused.
    let top = |tenant: &str| {
        Command::new(switchyard_tests::switchyard_binary())
            .args([
                "top",
                "--admin",
                &admin.to_string(),
                "--interval",
                "100",
                "--once",
            ])
            .args(["--tenant", tenant])
            .output()
            .expect("run switchyard top")
    };
    let shown = top("beta");
    let view = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{view}{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(view.starts_with("tenant beta "), "{view}");
    assert!(
        view.contains(gone.as_str()) && view.contains("down"),
        "{view}"
    );
    assert!(view.contains("pools.main"), "{view}");
    let refused = top("gamma");
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success()
            && why.contains("no tenant `gamma`")
            && why.contains("alpha, beta"),
        "{why}"
    );
}

/// A route two tenants share, whose plugin traps on keys starting with `trap`: beta's keys do
/// (its namespace is `trap:`), alpha's never. `stats plugins` counts each tenant's calls and
/// faults at the node apart, and together they are the node's; so are `/metrics`' plugin
/// families labelled `node` and `tenant`.
#[test]
fn a_shared_plugins_calls_and_faults_are_counted_by_tenant() {
    let server = Memcached::start();
    let dir = TestDir::new("tenant-faults");
    dir.write("trap.wasm", switchyard_tests::wasm::trapping_plugin());
    let text = format!(
        "{listeners}[tenants.alpha]\nroute = \"front\"\n\n\
         [tenants.beta]\nroute = \"front\"\nnamespace = \"trap:\"\n\n\
         [routes.front]\nplugin = \"trap.wasm\"\nchildren = [\"main\"]\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec(),
        listeners = switchyard_tests::tenant_listeners(1, &["alpha", "beta"], "main"),
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    for i in 0..5 {
        assert_eq!(alpha.get(&format!("k{i}")), None);
    }
    for i in 0..3 {
        let reply =
            String::from_utf8_lossy(&beta.request(format!("get k{i}\r\n").as_bytes())).into_owned();
        assert!(reply.starts_with("SERVER_ERROR"), "{reply}");
    }
    let plugins = group(&mut connect(&router, 2), "plugins");
    let n = |name: &str| number(&plugins, &format!("routes.front:{name}"));
    assert_eq!(n("tenant:alpha:calls"), 5.0, "{plugins:?}");
    let faults = |who: &str| -> f64 {
        [
            "trap",
            "timeout",
            "bad_plan",
            "out_of_memory",
            "unavailable",
        ]
        .iter()
        .map(|k| n(&format!("{who}faults_{k}")))
        .sum()
    };
    assert_eq!(faults("tenant:alpha:"), 0.0, "{plugins:?}");
    assert_eq!(faults("tenant:beta:"), 3.0, "{plugins:?}");
    assert!(n("tenant:beta:faults_trap") >= 1.0, "{plugins:?}");
    assert_eq!(faults(""), 3.0, "{plugins:?}");
    assert_eq!(
        n("calls"),
        n("tenant:alpha:calls") + n("tenant:beta:calls"),
        "{plugins:?}"
    );
    assert!(n("tenant:alpha:call_p99_us") > 0.0, "{plugins:?}");

    let body = get(admin, "/metrics").body;
    promtool_accepts(&body);
    let scrape = parse(&body);
    let labels = |tenant| [("node", "routes.front"), ("tenant", tenant)];
    assert_eq!(
        value(
            &scrape,
            "switchyard_plugin_tenant_calls_total",
            &labels("alpha")
        ),
        5.0
    );
    assert_eq!(
        value(
            &scrape,
            "switchyard_plugin_tenant_faults_trap_total",
            &labels("beta")
        ),
        n("tenant:beta:faults_trap")
    );
}

/// The bundled `prefix` plugin on a route two tenants and a plain listener share counts the
/// keys it sends to its default child (`defaulted`): alpha's four keys outside `x:` (the plugin
/// sees them in alpha's namespace, `alpha:`) and beta's three (its namespace is `y:`), not
/// alpha's two `x:` keys, and one key of the plain listener's. `stats plugins` and `/metrics`
/// give each tenant its share of that counter, and the shares and the plain listener's key
/// add up to the node's. One worker: one instance serves alpha, then beta, then the plain
/// listener, whose key must count as no tenant's.
#[test]
fn a_shared_plugins_own_metrics_are_counted_by_tenant() {
    let server = Memcached::start();
    let text = format!(
        "{listeners}[tenants.alpha]\nroute = \"front\"\n\n\
         [tenants.beta]\nroute = \"front\"\nnamespace = \"y:\"\n\n\
         [routes.front]\nplugin = \"prefix\"\n\
         config = {{ prefixes = {{ \"alpha:x:\" = \"main\" }}, default = \"main\" }}\n\
         children = [\"main\"]\n\n\
         [pools.main]\nservers = [\"{}\"]\n\n\
         [admin.http]\naddress = \"127.0.0.1:0\"\n",
        server.spec(),
        listeners = switchyard_tests::tenant_listeners(1, &["alpha", "beta"], "front"),
    );
    let router = switchyard_tests::router(&text);
    let admin = router.admin_http_addr().expect("the admin HTTP listener");
    let (mut alpha, mut beta, mut plain) = (
        connect(&router, 0),
        connect(&router, 1),
        connect(&router, 2),
    );
    for key in ["k0", "k1", "k2", "k3", "x:k0", "x:k1"] {
        assert_eq!(alpha.get(key), None);
    }
    for key in ["k0", "k1", "k2"] {
        assert_eq!(beta.get(key), None);
    }
    assert_eq!(plain.get("k0"), None);

    let plugins = group(&mut plain, "plugins");
    let n = |name: &str| number(&plugins, &format!("routes.front:{name}"));
    assert_eq!(n("counter:defaulted"), 8.0, "{plugins:?}");
    assert_eq!(n("tenant:alpha:counter:defaulted"), 4.0, "{plugins:?}");
    assert_eq!(n("tenant:beta:counter:defaulted"), 3.0, "{plugins:?}");
    assert_eq!(n("tenant:alpha:counter:unrouted"), 0.0, "{plugins:?}");

    let body = get(admin, "/metrics").body;
    promtool_accepts(&body);
    let scrape = parse(&body);
    let share = |tenant| {
        value(
            &scrape,
            "switchyard_plugin_tenant_events_total",
            &[
                ("node", "routes.front"),
                ("tenant", tenant),
                ("counter", "defaulted"),
            ],
        )
    };
    assert_eq!((share("alpha"), share("beta")), (4.0, 3.0));
    assert_eq!(
        value(
            &scrape,
            "switchyard_plugin_events_total",
            &[("node", "routes.front"), ("counter", "defaulted")],
        ),
        8.0
    );
}
