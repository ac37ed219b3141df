//! A plugin written outside this repository, as a new author would: `switchyard plugin new`
//! makes the crate, its own `cargo test` runs the policy against the SDK's harness, `switchyard
//! plugin build` builds and vets the module, and a router runs it in front of real memcached;
//! its counter shows in `stats plugins`; the source is edited, rebuilt and the new module
//! pinned in the config, and the router swaps to it while a client keeps sending, with no
//! error reply. Every template's crate passes its own tests.
//!
//! Cargo runs offline here: every crate the new plugin needs is already in the local registry
//! cache (the workspace uses the same ones), so the test needs no network.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, TestDir, switchyard_binary};

/// Runs `command` in `dir` with cargo offline and the crate's target directory inside `dir`.
fn run(dir: &Path, command: &mut Command) -> Output {
    run_in(dir, &dir.join("target"), command)
}

/// Runs `command` in `dir` with its target directory `target`, cargo online.
fn run_online(dir: &Path, target: &Path, command: &mut Command) -> Output {
    run_cargo(dir, target, command, false)
}

/// Runs `command` in `dir` with cargo offline and its target directory `target`.
fn run_in(dir: &Path, target: &Path, command: &mut Command) -> Output {
    run_cargo(dir, target, command, true)
}

fn run_cargo(dir: &Path, target: &Path, command: &mut Command, offline: bool) -> Output {
    let output = command
        .current_dir(dir)
        .env("CARGO_NET_OFFLINE", if offline { "true" } else { "false" })
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn a_plugin_made_with_plugin_new_tests_builds_and_routes_real_traffic() {
    let _heavy = switchyard_tests::heavy();
    let dir = TestDir::new("plugin-new");
    run(
        dir.path(),
        Command::new(switchyard_binary()).args([
            "plugin",
            "new",
            "by-prefix",
            "--template",
            "prefix",
        ]),
    );
    let crate_dir = dir.path().join("by-prefix");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "example.toml",
        "rust-toolchain.toml",
    ] {
        assert!(crate_dir.join(file).is_file(), "plugin new wrote no {file}");
    }
    // A second `new` into the same directory is refused, not a merge.
    let again = Command::new(switchyard_binary())
        .args(["plugin", "new", "by-prefix"])
        .current_dir(dir.path())
        .output()
        .expect("run switchyard plugin new");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tested = run(&crate_dir, Command::new(&cargo).arg("test"));
    let tested = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(tested.contains("test result: ok. 1 passed"), "{tested}");

    let build = || {
        let built = run(
            &crate_dir,
            Command::new(switchyard_binary()).args(["plugin", "build"]),
        );
        let report = String::from_utf8_lossy(&built.stdout).into_owned();
        assert!(report.contains("init     ok"), "{report}");
        report
            .lines()
            .find_map(|l| l.strip_prefix("sha256   "))
            .unwrap_or_else(|| panic!("no sha256 in {report}"))
            .to_string()
    };
    let sha256 = build();
    let wasm = crate_dir.join("target/wasm32-unknown-unknown/release/by_prefix.wasm");
    assert!(wasm.is_file());

    // The example config's route, pinned, over two real servers; the watcher on, as a router
    // that takes plugin updates runs.
    let (users, rest) = (Memcached::start(), Memcached::start());
    let port = switchyard_tests::ports::free_port();
    let config = |sha256: &str| {
        format!(
            "[server]\nworkers = 2\n\n[[listeners]]\naddress = \"127.0.0.1:{port}\"\n\
             route = \"split\"\n\n[routes.split]\nplugin = {:?}\nsha256 = \"{sha256}\"\n\
             children = [\"users\", \"rest\"]\n\
             config = {{ prefixes = {{ \"user:\" = \"users\" }}, default = \"rest\" }}\n\n\
             [pools.users]\nservers = [\"{}\"]\n\n[pools.rest]\nservers = [\"{}\"]\n",
            wasm.display().to_string(),
            users.spec(),
            rest.spec()
        )
    };
    let router = RouterProcess::start_listening("plugin-new", &config(&sha256), &[port], &[]);
    let mut client = Client::connect(router.addr());
    client.set("user:1", b"u");
    client.set("other", b"o");
    client.set("v2:a", b"before");
    assert_eq!(client.get("user:1").as_deref(), Some(&b"u"[..]));
    assert_eq!(client.get("other").as_deref(), Some(&b"o"[..]));
    assert_eq!(users.client().get("user:1").as_deref(), Some(&b"u"[..]));
    assert_eq!(users.client().get("other"), None);
    assert_eq!(rest.client().get("other").as_deref(), Some(&b"o"[..]));
    assert_eq!(rest.client().get("v2:a").as_deref(), Some(&b"before"[..]));
    // The template's counter: `other` and `v2:a`, set then got, and `v2:a` set.
    let defaulted = || {
        let mut stats = Client::connect(router.addr());
        stats.send(b"stats plugins\r\n");
        String::from_utf8_lossy(&stats.read_until(b"END\r\n"))
            .lines()
            .find_map(|l| l.strip_prefix("STAT routes.split:counter:defaulted "))
            .map(|v| v.trim().parse::<u64>().expect("a count"))
    };
    assert_eq!(defaulted(), Some(3));

    // A client loop runs through the edit, the rebuild and the swap.
    let stop = Arc::new(AtomicBool::new(false));
    let looping = {
        let (stop, addr) = (stop.clone(), router.addr());
        std::thread::spawn(move || {
            let mut client = Client::connect(addr);
            let (mut requests, mut errors) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for (i, key) in ["user:9", "other:9", "v2:9"].iter().enumerate() {
                    let set = client.request(format!("set {key} 0 0 1\r\n{i}\r\n").as_bytes());
                    let get = client.request(format!("get {key}\r\n").as_bytes());
                    requests += 2;
                    let value = format!("VALUE {key} 0 1\r\n{i}\r\nEND\r\n");
                    // `v2:9` moves to the other pool with the swap: a set on the old
                    // generation and a get on the new one find nothing, as for any key whose
                    // placement changes. A miss is an answer; an error reply is what must not
                    // happen.
                    let moved_miss = *key == "v2:9" && get == b"END\r\n";
                    if set != b"STORED\r\n" || (get != value.as_bytes() && !moved_miss) {
                        errors.push(format!(
                            "{key}: {} {}",
                            String::from_utf8_lossy(&set),
                            String::from_utf8_lossy(&get)
                        ));
                    }
                }
            }
            (requests, errors)
        })
    };
    // The edit: keys starting `v2:` go to the first child.
    let lib = crate_dir.join("src/lib.rs");
    let source = std::fs::read_to_string(&lib).expect("read src/lib.rs");
    let edited = source.replacen(
        "        let key = request.key();\n",
        "        let key = request.key();\n        if key.starts_with(b\"v2:\") {\n            \
         return Plan::Forward(Child(0));\n        }\n",
        1,
    );
    assert_ne!(
        edited, source,
        "the template's route changed; update this edit"
    );
    std::fs::write(&lib, edited).expect("write src/lib.rs");
    let swapped_to = build();
    assert_ne!(swapped_to, sha256);
    // Pinned: the watcher sees the new build, and the old config refuses it...
    let refusal =
        format!("its module is sha256:{swapped_to}, but the config pins sha256:{sha256}; refused");
    let refused = switchyard_tests::ports::poll_until(Duration::from_secs(20), || {
        router.log().contains(&refusal).then_some(())
    });
    assert!(refused.is_some(), "{}", router.log());
    // ...until it names the new hash.
    router.write("switchyard.toml", config(&swapped_to));
    let moved = switchyard_tests::ports::poll_until(Duration::from_secs(20), || {
        client.set("v2:b", b"after");
        users.client().get("v2:b")
    });
    assert_eq!(moved.as_deref(), Some(&b"after"[..]), "{}", router.log());
    stop.store(true, Ordering::Relaxed);
    let (requests, errors) = looping.join().expect("the client loop");
    assert!(requests > 10, "{requests} requests");
    assert!(
        errors.is_empty(),
        "{} of {requests}: {errors:?}",
        errors.len()
    );
    // The new pin was published.
    let log = router.log();
    assert!(log.contains("configuration reloaded"), "{log}");
}

/// The `hash` and `call` templates are crates whose own tests pass (the `prefix` one is run
/// above): one target directory for both, so their dependencies build once. The `call` one
/// takes the SDK from git (`--sdk-git`, this repository at its commit), as an author outside
/// it would.
#[test]
fn every_template_passes_its_own_tests() {
    let _heavy = switchyard_tests::heavy();
    let dir = TestDir::new("plugin-templates");
    let target = dir.path().join("target");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the repository")
        .to_path_buf();
    let head = run(&repo, Command::new("git").args(["rev-parse", "HEAD"]));
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    let git_sdk = format!("file://{}#{head}", repo.display());
    for template in ["hash", "call"] {
        let name = format!("t-{template}");
        let mut new = Command::new(switchyard_binary());
        new.args(["plugin", "new", &name, "--template", template]);
        if template == "call" {
            new.args(["--sdk-git", &git_sdk]);
        }
        run(dir.path(), &mut new);
        if template == "call" {
            let manifest = std::fs::read_to_string(dir.path().join(&name).join("Cargo.toml"))
                .expect("the crate's Cargo.toml");
            assert!(
                manifest.contains(&format!("git = \"file://{}\"", repo.display()))
                    && manifest.contains(&format!("rev = \"{head}\"")),
                "{manifest}"
            );
        }
        let mut test = Command::new(&cargo);
        test.arg("test");
        let tested = if template == "call" {
            // Cargo fetches a git dependency only online, a `file://` one included; the rest
            // of the crate's dependencies come from the registry's cache.
            run_online(&dir.path().join(&name), &target, &mut test)
        } else {
            run_in(&dir.path().join(&name), &target, &mut test)
        };
        let tested = String::from_utf8_lossy(&tested.stdout).into_owned();
        // The crate's own tests (doctests follow, none).
        let first = tested.lines().find(|l| l.starts_with("test result:"));
        assert!(
            first.is_some_and(|l| l.starts_with("test result: ok.") && !l.contains(" 0 passed")),
            "{template}: {tested}"
        );
    }
}
