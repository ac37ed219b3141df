//! The log: JSON lines with `--log-format json`, one line per generation naming each plugin
//! node's module by hash, and a plugin that logs on every call held to its budget.

use switchyard_tests::ports::free_port;
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, wasm};

fn config(port: u16, server: &Memcached, plugin: &str) -> String {
    format!(
        "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\n\
         route = \"r\"\n\n[pools.p]\nservers = [\"{}\"]\n\n[routes.r]\nplugin = \"{plugin}\"\n\
         children = [\"p\"]\n",
        server.spec()
    )
}

#[test]
fn json_log_lines_and_a_chatty_plugin_held_to_its_budget() {
    let server = Memcached::start();
    let port = free_port();
    let router = RouterProcess::start_listening_with_args(
        "logs-json",
        &config(port, &server, "chatty.wasm"),
        &[port],
        &[("chatty.wasm", wasm::logging_every_call_plugin())],
        &["--log-format", "json"],
    );
    let mut client = Client::connect(router.addr());
    for i in 0..200 {
        assert_eq!(client.get(&format!("k{i}")), None);
    }
    // Every request was routed; `stats plugins` counts its calls.
    assert_eq!(client.stat("cmd_get"), Some(200));
    let log = router.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
    let serving = lines
        .iter()
        .find(|l| l.contains("generation 1 serving"))
        .unwrap_or_else(|| panic!("no `generation 1 serving` line: {log}"));
    assert!(
        serving.contains("chatty.wasm sha256:") && serving.contains("pools.p=ketama sha256:"),
        "{serving}"
    );
    let chatty: Vec<&&str> = lines.iter().filter(|l| l.contains("\"chatty\"")).collect();
    // Each names its node and the module (file and SHA-256) the node runs.
    let tagged =
        |l: &&&str| l.contains("\"plugin\":\"routes.r\"") && l.contains("chatty.wasm sha256:");
    assert!(chatty.iter().all(tagged), "{chatty:#?}");
    let chatty = chatty.len();
    println!("{chatty} of 200 plugin log lines written");
    assert!(
        (1..=20).contains(&chatty),
        "{chatty} plugin lines for 200 calls: the budget is 20 per 10 s"
    );
}

#[test]
fn a_nodes_log_level_drops_its_plugins_more_detailed_lines() {
    let server = Memcached::start();
    let port = free_port();
    let text = config(port, &server, "chatty.wasm") + "log_level = \"warn\"\n";
    let router = RouterProcess::start_listening_with_args(
        "logs-level",
        &text,
        &[port],
        &[("chatty.wasm", wasm::logging_every_call_plugin())],
        &["--log-format", "json"],
    );
    let mut client = Client::connect(router.addr());
    for i in 0..50 {
        assert_eq!(client.get(&format!("k{i}")), None);
    }
    assert_eq!(client.stat("cmd_get"), Some(50));
    let log = router.log();
    assert!(log.contains("generation 1 serving"), "{log}");
    assert!(
        !log.contains("\"chatty\""),
        "info lines of a node at `warn` are dropped: {log}"
    );
}
