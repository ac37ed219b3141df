//! The `switchyard` command line as an operator meets it: `--help` names every flag on a line
//! of its own, `--version` names the plugin ABI, the binary carries its bundled plugins (so an
//! installed copy works from any directory), and the systemd unit in `configs/` calls it with
//! flags it has.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use switchyard_tests::{TestDir, switchyard_binary};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

fn run(binary: &Path, args: &[&str], cwd: &Path) -> Output {
    Command::new(binary)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} {args:?}: {e}", binary.display()))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The flags `--help` lists: each flag line starts with `-x, --long` or `--long`.
fn help_flags() -> Vec<String> {
    let out = run(&switchyard_binary(), &["--help"], &root());
    assert!(out.status.success(), "switchyard --help: {}", stderr(&out));
    let help = stdout(&out);
    let mut flags = Vec::new();
    for line in help.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let long = words
            .iter()
            .take(2)
            .find(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches(','));
        if let (Some(long), Some(first)) = (long, words.first())
            && (first.starts_with('-'))
        {
            // A description follows the flag (and its value name) on the same line.
            assert!(
                words.len() >= 3,
                "--help line for {long} has no description: `{line}`"
            );
            flags.push(long.to_string());
        }
    }
    flags
}

#[test]
fn help_lists_every_flag_once_with_a_description() {
    let flags = help_flags();
    for expected in [
        "--config",
        "--check-config",
        "--workers",
        "--list-plugins",
        "--version",
        "--help",
    ] {
        let n = flags.iter().filter(|f| *f == expected).count();
        assert_eq!(n, 1, "--help lists {expected} {n} times; flags: {flags:?}");
    }
    // Every listed flag is one the parser accepts (an unknown one is refused, naming --help).
    for flag in &flags {
        let out = run(&switchyard_binary(), &[flag, "--help"], &root());
        assert!(
            !stderr(&out).contains("unknown argument"),
            "--help lists {flag}, which the parser refuses: {}",
            stderr(&out)
        );
    }
    let out = run(&switchyard_binary(), &["--frobnicate"], &root());
    assert!(!out.status.success(), "an unknown flag was accepted");
    assert!(
        stderr(&out).contains("unknown argument `--frobnicate`") && stderr(&out).contains("--help"),
        "unknown flag error: {}",
        stderr(&out)
    );
}

#[test]
fn version_names_the_plugin_abi() {
    let out = run(&switchyard_binary(), &["--version"], &root());
    assert!(
        out.status.success(),
        "switchyard --version: {}",
        stderr(&out)
    );
    let expected = format!("plugin ABI version {}", switchyard_sdk::abi::ABI_VERSION);
    assert!(
        stdout(&out).starts_with("switchyard ") && stdout(&out).contains(&expected),
        "switchyard --version printed `{}`; expected the version and `{expected}`",
        stdout(&out).trim()
    );
}

#[test]
fn list_plugins_names_every_crate_under_plugins() {
    let mut on_disk: Vec<String> = std::fs::read_dir(root().join("plugins"))
        .expect("read plugins/")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    assert!(on_disk.len() > 10, "found only {on_disk:?} under plugins/");
    let out = run(&switchyard_binary(), &["--list-plugins"], &root());
    assert!(out.status.success(), "--list-plugins: {}", stderr(&out));
    let listed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(listed, on_disk, "--list-plugins vs plugins/");
}

/// A copy of the binary alone, run from an unrelated directory, on a config naming bundled
/// plugins: what `cargo install --path host` gives an operator.
#[test]
fn a_copied_binary_runs_bundled_plugins_from_any_directory() {
    let dir = TestDir::new("installed");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("create bin/");
    let binary = bin.join("switchyard");
    std::fs::copy(switchyard_binary(), &binary).expect("copy the binary");
    let config = dir.write(
        "router.toml",
        r#"[[listeners]]
address = "127.0.0.1:0"
route = "root"

[routes.root]
plugin = "prefix"
children = ["a", "b"]
config = { prefixes = { "b:" = "b" }, default = "a" }

[pools.a]
servers = ["127.0.0.1:21211:1", "127.0.0.1:21212:1"]
hash = { plugin = "jump" }

[pools.b]
servers = ["127.0.0.1:21213:1"]
"#,
    );
    let out = run(
        &binary,
        &["--check-config", config.to_str().expect("UTF-8 temp path")],
        Path::new("/"),
    );
    assert!(
        out.status.success(),
        "a copied binary run from / refused a config of bundled plugins: {}",
        stderr(&out)
    );
}

/// The `switchyard` command lines of `configs/switchyard.service` (ExecStart, ExecReload).
fn unit_command_lines() -> Vec<Vec<String>> {
    let unit = std::fs::read_to_string(root().join("configs/switchyard.service"))
        .expect("read configs/switchyard.service");
    let lines: Vec<Vec<String>> = unit
        .lines()
        .filter_map(|l| {
            l.strip_prefix("ExecStart=")
                .or(l.strip_prefix("ExecReload="))
        })
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|words| words.first().is_some_and(|w| w.ends_with("/switchyard")))
        .collect();
    assert!(
        lines.len() >= 2,
        "configs/switchyard.service has no switchyard ExecStart and ExecReload check: {lines:?}"
    );
    assert!(
        unit.lines()
            .any(|l| l == "ExecReload=/bin/kill -HUP $MAINPID"),
        "configs/switchyard.service does not reload with SIGHUP"
    );
    lines
}

#[test]
fn the_service_unit_uses_real_flags_and_its_reload_check_works() {
    let flags = help_flags();
    let dir = TestDir::new("unit");
    let good = dir.write(
        "good.toml",
        std::fs::read_to_string(root().join("configs/quickstart.toml")).expect("read quickstart"),
    );
    let bad = dir.write(
        "bad.toml",
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nroot = \"x\"\n",
    );
    for words in unit_command_lines() {
        for word in words.iter().filter(|w| w.starts_with('-')) {
            assert!(
                flags.contains(word),
                "configs/switchyard.service passes {word}, which --help does not list"
            );
        }
        if words.iter().any(|w| w == "--check-config") {
            // The reload check, on the quickstart config and on a broken file.
            let with = |config: &Path| -> Vec<String> {
                let mut args: Vec<String> = words[1..].to_vec();
                let last = args.len() - 1;
                args[last] = config.to_string_lossy().into_owned();
                args
            };
            let args = with(&good);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&switchyard_binary(), &args, Path::new("/"));
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let args = with(&bad);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = run(&switchyard_binary(), &args, Path::new("/"));
            assert!(
                !out.status.success() && stderr(&out).contains("root"),
                "the unit's reload check passed a broken file: {}",
                stderr(&out)
            );
        }
    }
}
