//! `switchyard --check-config FILE`: exit 0 and `<file>: ok` for a good file; exit 1 with the
//! file, the line and the key on stderr for a bad one.
//!
//! Runs the real binary, `target/<profile>/switchyard` (`scripts/test` builds it).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use switchyard_tests::ports::poll_until;
use switchyard_tests::{TestDir, switchyard_binary};

/// A check compiles and `init`s every plugin; in a debug build that takes a few seconds.
const CHECK_DEADLINE: Duration = Duration::from_secs(120);

const GOOD: &str = r#"[server]
workers = 1

[[listeners]]
address = "127.0.0.1:0"
route = "root"

[pools.a]
servers = ["127.0.0.1:21211:1", "127.0.0.1:21212:1"]

[pools.b]
servers = ["127.0.0.1:21213:1 cache-c"]
timeout_ms = 250

[routes.root]
plugin = "prefix"
children = ["a", "b"]
config = { prefixes = { "b:" = "b" }, default = "a" }
"#;

fn check(path: &Path) -> Output {
    let mut child = Command::new(switchyard_binary())
        .arg("--check-config")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run switchyard --check-config");
    // Outputs are a few lines, far below a pipe's buffer, so waiting before reading is safe.
    let finished = poll_until(CHECK_DEADLINE, || {
        child.try_wait().expect("wait for switchyard").map(|_| ())
    });
    if finished.is_none() {
        let _killed = child.kill();
        panic!(
            "switchyard --check-config {} ran past {CHECK_DEADLINE:?}",
            path.display()
        );
    }
    child
        .wait_with_output()
        .expect("collect switchyard's output")
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the test config"))
        + 1
}

/// Checks `text` (written to `name`), expecting exit 1 and stderr naming the file, the line
/// that contains `at`, and each of `mentions`.
fn assert_rejected(name: &str, text: &str, at: &str, mentions: &[&str]) {
    let dir = TestDir::new("check-config");
    let path = dir.write(name, text);
    let output = check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = line_of(text, at);
    let file = path.display().to_string();
    assert_eq!(
        output.status.code(),
        Some(1),
        "exit status; stderr: {stderr}"
    );
    assert!(
        stderr.contains(&file),
        "stderr should name {file}: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}:{line}")) || stderr.contains(&format!("line {line}")),
        "stderr should name line {line} (as `{file}:{line}` or `line {line}`): {stderr}"
    );
    for mention in mentions {
        assert!(
            stderr.contains(mention),
            "stderr should mention {mention:?}: {stderr}"
        );
    }
}

#[test]
fn a_good_config_passes() {
    let dir = TestDir::new("check-config");
    let path = dir.write("good.toml", GOOD);
    let output = check(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit status {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{}: ok", path.display())),
        "stdout: {stdout}"
    );
}

#[test]
fn an_unknown_key_in_a_pool_is_named_with_file_and_line() {
    let text = GOOD.replace("timeout_ms = 250", "timeout_ms = 250\ntimeout_msec = 250");
    assert_rejected(
        "unknown-pool-key.toml",
        &text,
        "timeout_msec",
        &["timeout_msec"],
    );
}

#[test]
fn an_unknown_key_in_server_is_named_with_file_and_line() {
    let text = GOOD.replace("workers = 1", "wrokers = 1");
    assert_rejected("unknown-server-key.toml", &text, "wrokers", &["wrokers"]);
}

#[test]
fn a_listener_routed_to_nothing_is_named_with_file_and_line() {
    let text = GOOD.replace(r#"route = "root""#, r#"route = "nowhere""#);
    assert_rejected("bad-route.toml", &text, "nowhere", &["route", "nowhere"]);
}

#[test]
fn a_child_that_does_not_exist_is_named_with_file_and_line() {
    let text = GOOD.replace(
        r#"children = ["a", "b"]"#,
        r#"children = ["a", "b", "ghost"]"#,
    );
    assert_rejected("bad-child.toml", &text, "ghost", &["children", "ghost"]);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = TestDir::new("check-config");
    let path = dir.path().join("absent.toml");
    let output = check(&path);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(&path.display().to_string()),
        "stderr: {stderr}"
    );
}
