//! `scripts/setup` is the one list of what the project needs: after it has run (as it has
//! whenever `scripts/test` or CI runs), it would install nothing, and every program the tests
//! start is on its list.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives inside the workspace")
        .to_path_buf()
}

/// Programs of Debian's essential set, on every machine the scripts themselves run on.
const ESSENTIAL: &[&str] = &["bash"];

fn setup(arg: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg(root().join("scripts/setup"))
        .arg(arg)
        .output()
        .expect("run scripts/setup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_mode_would_install_nothing() {
    let (ok, text) = setup("--check");
    assert!(
        ok && text.trim() == "setup: nothing to install",
        "scripts/setup --check, on a machine that scripts/setup prepared, says:\n{text}\
         (either setup's checks do not match what it installs, or something was uninstalled)"
    );
}

/// Every program the test harness starts by a literal name (`Command::new` of a string) is one that
/// `scripts/setup` installs, so a new dependency of the tests cannot be forgotten there.
#[test]
fn every_program_the_tests_start_is_on_the_setup_list() {
    let (ok, listed) = setup("--list");
    assert!(ok, "scripts/setup --list failed:\n{listed}");
    let binaries: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(
        binaries.contains(&"memcached"),
        "scripts/setup --list does not list memcached:\n{listed}"
    );

    // Split so that this file's own source does not match.
    let needle = concat!("Command::", "new(\"");
    let mut started = Vec::new();
    for dir in [
        "tests/src",
        "tests/e2e",
        "tests/benches",
        "host/src",
        "host/benches",
    ] {
        rust_files(&root().join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).expect("read a source file");
            for (at, _) in text.match_indices(needle) {
                let name = &text[at + needle.len()..];
                let name = &name[..name.find('"').unwrap_or(0)];
                started.push((name.to_string(), path.to_path_buf()));
            }
        });
    }
    assert!(
        started.iter().any(|(name, _)| name == "memcached"),
        "found no Command::new(\"memcached\") in the harness: the scan is broken"
    );
    let unlisted: Vec<String> = started
        .iter()
        .filter(|(name, _)| {
            !binaries.contains(&name.as_str()) && !ESSENTIAL.contains(&name.as_str())
        })
        .map(|(name, path)| format!("`{name}` (started in {})", path.display()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "the tests start programs that scripts/setup does not install; add them to its \
         PACKAGES list: {}",
        unlisted.join(", ")
    );
}

fn rust_files(dir: &Path, each: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, each);
        } else if path.extension().is_some_and(|e| e == "rs") {
            each(&path);
        }
    }
}
