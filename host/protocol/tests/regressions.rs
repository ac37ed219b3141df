//! Replays every input kept in `tests/regressions/`: the fuzz targets' seed corpus
//! (`seed-*`) and every input a fuzz target ever crashed on (`crash-*`, named after what went
//! wrong), each against the same properties the fuzz target checks.
//!
//! - `tests/regressions/parse_request/*`: client byte streams, checked by
//!   `fuzz/invariants/request.rs`;
//! - `tests/regressions/parse_reply/*`: backend byte streams, checked by
//!   `fuzz/invariants/reply.rs`.
//!
//! Both directories are also the fuzzers' seeds (`fuzz/README.md`), so a kept crash input is
//! where the next fuzzing run starts. To keep a new crash: copy `fuzz/artifacts/<target>/crash-*`
//! to `tests/regressions/<target>/crash-<what-went-wrong>`, fix the parser, run this test.

use std::path::{Path, PathBuf};

#[path = "../../../fuzz/invariants/reply.rs"]
mod reply_invariants;
#[path = "../../../fuzz/invariants/request.rs"]
mod request_invariants;

/// The files of `tests/regressions/<target>/`, sorted; fails if there are none (a misplaced
/// directory must not pass as "nothing to replay").
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regressions")
        .join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    files
}

/// Runs `check` on every input of `target`, and fails naming every input that panicked.
fn replay(target: &str, check: fn(&[u8])) {
    let mut failed = Vec::new();
    let files = inputs(target);
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| check(&bytes)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs break a property (the panic messages are above):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn every_kept_request_input_keeps_the_fuzz_properties() {
    replay("parse_request", request_invariants::check);
}

#[test]
fn every_kept_reply_input_keeps_the_fuzz_properties() {
    replay("parse_reply", reply_invariants::check);
}

#[test]
fn a_broken_property_is_caught() {
    // The replay really runs the checks: a property the parser cannot keep fails it.
    let caught = std::panic::catch_unwind(|| {
        replay("parse_request", |_| panic!("deliberately broken property"))
    });
    assert!(caught.is_err());
}
