//! The end-to-end test harness: real memcached and twemproxy processes, a real router, real TCP.
//!
//! - [`memcached`]: [`Memcached`], a server on a free loopback port; kill, restart, pause;
//!   TLS-only (`-Z`) with [`Memcached::start_tls`].
//! - [`nutcracker`]: [`Nutcracker`], twemproxy with ketama/md5, the reference for key placement.
//! - [`client`]: [`Client`], a blocking text-protocol client whose reads all have deadlines.
//! - [`wasm`]: hand-written plugins (WAT) that trap, loop, or import WASI.
//! - [`tempdir`]: [`TestDir`], scratch directories for files the router must read.
//! - [`example`]: [`example::Example`], a config of `configs/` on test memcached.
//! - [`ports`]: free ports and polling with a deadline (the only way these tests wait).
//! - [`process`]: [`process::RouterProcess`], the router binary as a process of its own.
//! - [`load`]: [`load::Load`], client threads doing sets and gets, counting what they see.
//! - [`scripted`]: [`scripted::Scripted`], a fake memcached on a free port that records what it
//!   is sent and answers as a test scripts it: malformed, extra, dripped, late or no replies,
//!   closed and reset connections.
//! - [`tls`]: [`Certs`], throwaway certificates (a CA, a server, a client, rotated, expired,
//!   from another CA), and [`TlsClient`], a [`Client`] over a TLS session.
//!
//! This file: starting a [`Router`] from config text, config fragments, and where keys live.
//!
//! The tests themselves are in `tests/e2e/`, one file per concern. Servers are found on `PATH`;
//! a missing `memcached` or `nutcracker` fails the tests (CI installs both, see `.ci/run`).

pub mod client;
pub mod example;
pub mod load;
pub mod memcached;
pub mod nutcracker;
pub mod ports;
pub mod process;
pub mod scripted;
pub mod tempdir;
pub mod tls;
pub mod wasm;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use client::{Client, show};
pub use memcached::Memcached;
pub use nutcracker::Nutcracker;
pub use switchyard::{Config, Router};
pub use tempdir::TestDir;
pub use tls::{Certs, TlsClient, TlsOptions};

/// Starts a router from config text that refers to no files (bundled plugins only). Listeners
/// should use port 0; [`Router::local_addrs`] says where they ended up.
pub fn router(config_toml: &str) -> Router {
    start(config_toml, Path::new("inline-test-config.toml"))
}

/// Starts a router from config text whose relative plugin paths are files in `dir`. The config
/// itself is not written: `dir/switchyard.toml` only names it in errors and anchors paths.
pub fn router_in(dir: &TestDir, config_toml: &str) -> Router {
    start(config_toml, &dir.path().join("switchyard.toml"))
}

fn start(config_toml: &str, origin: &Path) -> Router {
    let config = Config::from_toml(config_toml, origin)
        .unwrap_or_else(|e| panic!("invalid test config: {e}\n{config_toml}"));
    Router::start(config)
        .unwrap_or_else(|e| panic!("router did not start: {}\n{config_toml}", error_chain(&e)))
}

/// A client connected to the router's `index`th listener.
pub fn connect(router: &Router, index: usize) -> Client {
    let addrs = router.local_addrs();
    let addr: SocketAddr = *addrs
        .get(index)
        .unwrap_or_else(|| panic!("router has {} listeners, not {}", addrs.len(), index + 1));
    Client::connect(addr)
}

/// An error and all its sources, `: `-separated, as a user would want them printed.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A TOML array of server specs: `["127.0.0.1:P1:1", "127.0.0.1:P2:1"]`.
pub fn toml_servers(specs: &[String]) -> String {
    let quoted: Vec<String> = specs.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// The specs (`127.0.0.1:PORT:1`) of `servers`.
pub fn specs(servers: &[&Memcached]) -> Vec<String> {
    servers.iter().map(|m| m.spec()).collect()
}

/// A whole config: one listener on a free port in front of one ketama pool named `main`.
pub fn single_pool_config(servers: &[String], pool_settings: &str) -> String {
    format!(
        r#"
[server]
workers = 2

[[listeners]]
address = "127.0.0.1:0"
route = "main"

[pools.main]
servers = {}
{pool_settings}
"#,
        toml_servers(servers)
    )
}

/// The start of a config for tenants: `[server] workers`, then a listener on a free port for
/// each of `tenants` in order (`connect(router, i)` is `tenants[i]`'s) and one for the route
/// or pool `plain`, which serves no tenant (the next index).
pub fn tenant_listeners(workers: usize, tenants: &[&str], plain: &str) -> String {
    let mut text = format!("[server]\nworkers = {workers}\n\n");
    for tenant in tenants {
        text.push_str(&format!(
            "[[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"{tenant}\"\n\n"
        ));
    }
    text.push_str(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"{plain}\"\n\n"
    ));
    text
}

/// Three memcached, each the one server of its own pool (`p0`, `p1`, `p2`; request timeout
/// `timeout_ms`, connect timeout 200 ms), as the children of one route `r` of bundled plugin
/// `plugin`, which the router's listener serves.
pub fn replicated(plugin: &str, timeout_ms: u64) -> ([Memcached; 3], Router) {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let router = replicated_router(
        &specs(&servers.iter().collect::<Vec<_>>()),
        plugin,
        timeout_ms,
        "",
        "",
    );
    (servers, router)
}

/// A router whose listener serves route `r` of bundled plugin `plugin`, with one pool per
/// server spec (`p0`, `p1`, ...; request timeout `timeout_ms`, connect timeout 200 ms, and
/// `pool_settings`) as its children. `server_settings` goes in `[server]`.
pub fn replicated_router(
    specs: &[String],
    plugin: &str,
    timeout_ms: u64,
    pool_settings: &str,
    server_settings: &str,
) -> Router {
    let pools: String = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            format!(
                "[pools.p{i}]\nservers = [\"{spec}\"]\ntimeout_ms = {timeout_ms}\n\
                 connect_timeout_ms = 200\n{pool_settings}\n\n"
            )
        })
        .collect();
    let children: Vec<String> = (0..specs.len()).map(|i| format!("\"p{i}\"")).collect();
    router(&format!(
        r#"
[server]
{server_settings}

[[listeners]]
address = "127.0.0.1:0"
route = "r"

{pools}
[routes.r]
plugin = "{plugin}"
children = [{}]
"#,
        children.join(", ")
    ))
}

/// For each key, the index in `servers` of the one server that holds it, asked directly.
/// Panics if a key is on no server or on more than one.
pub fn locate(servers: &[&Memcached], keys: &[String]) -> Vec<usize> {
    let held: Vec<Vec<bool>> = servers.iter().map(|m| m.holds(keys)).collect();
    keys.iter()
        .enumerate()
        .map(|(k, key)| {
            let on: Vec<usize> = (0..servers.len()).filter(|&s| held[s][k]).collect();
            match on.as_slice() {
                [one] => *one,
                _ => panic!(
                    "key {key} is on servers {on:?} of {:?}; expected exactly one",
                    servers.iter().map(|m| m.address()).collect::<Vec<_>>()
                ),
            }
        })
        .collect()
}

/// Stores every key through `client` (pipelined in batches of 100), asserting `STORED`.
pub fn store_all(client: &mut Client, keys: &[String], value: &[u8]) {
    for batch in keys.chunks(100) {
        let mut bytes = Vec::new();
        for key in batch {
            bytes.extend_from_slice(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        client.send(&bytes);
        for (key, reply) in batch.iter().zip(client.replies(batch.len())) {
            assert_eq!(
                reply,
                b"STORED\r\n",
                "set {key} via {}: {}",
                client.peer(),
                show(&reply)
            );
        }
    }
}

/// Where the `switchyard` binary of this build is: `$SWITCHYARD_BINARY` when set (to run the
/// process tests against another build, such as a release build of an earlier commit), else
/// `target/<profile>/switchyard`: two levels above a test executable
/// (`target/<profile>/deps/e2e-<hash>`), beside a binary of this crate (`target/<profile>/soak`).
/// `cargo test` does not build it for another crate's tests; `scripts/test` builds it first.
pub fn switchyard_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("SWITCHYARD_BINARY") {
        let binary = PathBuf::from(binary);
        assert!(
            binary.is_file(),
            "SWITCHYARD_BINARY is {}, which is not a file",
            binary.display()
        );
        return binary;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let name = format!("switchyard{}", std::env::consts::EXE_SUFFIX);
    let beside = exe.parent().map(|dir| dir.join(&name));
    let binary = match beside {
        Some(binary) if binary.is_file() => binary,
        _ => exe
            .parent()
            .and_then(Path::parent)
            .unwrap_or_else(|| panic!("unexpected test executable location {}", exe.display()))
            .join(&name),
    };
    assert!(
        binary.is_file(),
        "{} does not exist: build it first with `cargo build -p switchyard` \
         (scripts/test does, then runs `cargo test --workspace`)",
        binary.display()
    );
    binary
}

/// The body of `GET path` on the admin HTTP listener at `admin`, which must answer 200.
pub fn admin_get(admin: SocketAddr, path: &str) -> String {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(ports::STARTUP_DEADLINE))
        .build()
        .new_agent();
    let mut response = agent
        .get(format!("http://{admin}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status();
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Held by the tests that load the machine hard or measure time or throughput (the isolation,
/// memory and burst tests, the reload deadlines): they take turns, so that on a two-core
/// machine one of them is not what another measures. Other tests still run beside them.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
