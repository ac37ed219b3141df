//! Differential conformance: every script of the table in `conformance/cases.rs` is sent to a
//! memcached directly and through Switchyard (a single-server pool in front of that same
//! memcached), and the replies must be byte-identical.
//!
//! How a script runs, on each side:
//! - the server is emptied first (`verbosity 0`, `flush_all`, on a connection of its own) and
//!   the script gets a fresh connection, so scripts are independent and can be read alone;
//! - each step is one write, followed in the same write by a sentinel: `set` of a marker value
//!   with `noreply`, then `get` of it. The step's reply is everything that arrives before the
//!   marker's `VALUE`, so a step may draw any number of replies (a bad storage line draws two,
//!   a `noreply` none) without the harness knowing how many. A step marked `closes` has no
//!   sentinel: its reply is everything up to the close. A `partial` step is only written: the
//!   next step's write continues it, and its reply covers both;
//! - only what must differ is normalised: the `VERSION` line (the router has its own), runs of
//!   `STAT` lines (the router answers with its own counters; a run becomes one `STAT <stats>`
//!   line), and CAS uniques (memcached's counter moves on between the two runs): the fifth field
//!   of a `VALUE` line, a meta reply's `c` flag, `cas=` in `me`'s answer. `{cas}` in a step is
//!   replaced by the last CAS unique seen on that side.
//!
//! Each step also states memcached's own reply, checked on the direct run: it keeps the table
//! honest (a step both sides reject the same way for the wrong reason proves little) and makes
//! it readable as a spec. Where the router and memcached differ on purpose or until an issue is
//! fixed, the script is listed in [`KNOWN_DIFFERENCES`] with the reason; the test fails on any
//! other difference, and on a listed one that has gone away.
//!
//! The meta protocol's rows are in [`cases::META_CASES`], kept apart from the classic table
//! and compared through the router by their own test.

mod cases;

use std::collections::HashSet;

use cases::{META_CASES, Script, Step};
use switchyard_tests::client::{Ending, parse_values};
use switchyard_tests::{Client, Memcached, Router, connect, router, show, single_pool_config};

/// Scripts whose replies through the router differ from memcached's, with the reason. Each is a
/// finding: either a deliberate difference or a bug tracked by the protocol-fidelity issue.
#[rustfmt::skip]
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    // `stats` with arguments: the router answers plain `stats` with its own counters and
    // `stats backends` with its servers' health; every other group is `ERROR`, memcached's
    // answer to a group it does not know. memcached's groups describe one server's memory and
    // settings, which a router spanning many servers has no single answer for; `reset` and
    // `detail` could be given router meanings (reset its counters; per-prefix counters).
    ("stats: settings", "stats groups: the router answers ERROR to every group but its own"),
    ("stats: reset", "stats groups: the router answers ERROR to every group but its own"),
    ("stats: detail without on or off", "stats groups: the router answers ERROR to every group but its own"),
    ("stats: items", "stats groups: the router answers ERROR to every group but its own"),
    ("stats: slabs", "stats groups: the router answers ERROR to every group but its own"),
    ("stats: detail on and off", "stats groups: the router answers ERROR to every group but its own"),
    // Server administration the router deliberately does not serve or forward (answered
    // `ERROR`, see `parse_request`): it would act on one backend chosen arbitrarily.
    ("admin: shutdown", "server administration is not served by the router"),
    ("admin: slabs automove", "server administration is not served by the router"),
];

/// What ends each step: a marker value stored without a reply, then read back. No `-` in it:
/// memcached's `incr` of a value over 2^63 fails if a `-` follows the value in
/// its slab memory (`safe_strtoull` looks for a minus sign with `strchr`, past the value), and
/// the sentinel is stored over and over.
const SENTINEL: &[u8] =
    b"set conformance:sentinel 0 0 9 noreply\r\nendofstep\r\nget conformance:sentinel\r\n";
/// What the sentinel's `get` answers: the end of a step's reply.
const SENTINEL_REPLY: &[u8] = b"VALUE conformance:sentinel 0 9\r\nendofstep\r\nEND\r\n";

/// What one step drew from one side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Transcript {
    /// The reply, normalised.
    reply: Vec<u8>,
    /// How the read ended: at the sentinel (or the close, for a step that closes).
    ending: Ending,
}

impl Transcript {
    fn show(&self) -> String {
        let ending = match self.ending {
            Ending::Terminator => "",
            Ending::Closed => " then the connection closed",
            Ending::TimedOut => " then nothing more (timed out)",
        };
        format!("{}{ending}", show(&self.reply))
    }
}

/// A memcached, and a router whose only route is a pool of just that memcached.
struct Sides {
    server: Memcached,
    router: Router,
    /// The connection that empties the server before each run.
    admin: Client,
}

impl Sides {
    fn start() -> Sides {
        let server = Memcached::start();
        let router = router(&single_pool_config(&[server.spec()], ""));
        let admin = server.client();
        Sides {
            server,
            router,
            admin,
        }
    }

    /// Empties the server and restores its defaults.
    fn reset(&mut self) {
        self.admin.send(b"verbosity 0\r\nflush_all\r\n");
        let replies = self.admin.replies(2);
        assert_eq!(replies, [b"OK\r\n", b"OK\r\n"], "resetting memcached");
    }

    fn direct(&mut self, script: &Script) -> Vec<Transcript> {
        self.reset();
        run(self.server.client(), script)
    }

    fn routed(&mut self, script: &Script) -> Vec<Transcript> {
        self.reset();
        run(connect(&self.router, 0), script)
    }
}

/// Runs `script` on `client`; stops after a step that ends the connection.
fn run(mut client: Client, script: &Script) -> Vec<Transcript> {
    let mut cas = b"0".to_vec();
    let mut transcripts = Vec::new();
    for step in &script.steps {
        let mut bytes = replace(&step.send, b"{cas}", &cas);
        if step.partial {
            let _ = client.try_send(&bytes);
            transcripts.push(expected(step));
            continue;
        }
        if !step.closes {
            bytes.extend_from_slice(SENTINEL);
        }
        // A peer that closes may do so before reading it all; the read says what happened.
        let _ = client.try_send(&bytes);
        let (mut reply, ending) = if step.closes {
            client.read_through(b"\0never arrives\0")
        } else {
            client.read_through(SENTINEL_REPLY)
        };
        if ending == Ending::Terminator {
            reply.truncate(reply.len() - SENTINEL_REPLY.len());
        }
        if let Some(seen) = last_cas(&reply) {
            cas = seen;
        }
        transcripts.push(Transcript {
            reply: normalize(&reply),
            ending,
        });
        if ending != Ending::Terminator {
            break;
        }
    }
    transcripts
}

/// What memcached must answer: the step's `expect`, and the connection still open unless the
/// step closes it.
fn expected(step: &Step) -> Transcript {
    Transcript {
        reply: step.expect.clone(),
        ending: if step.closes {
            Ending::Closed
        } else {
            Ending::Terminator
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Normalising

/// A reply with only what must differ replaced: see the module docs.
fn normalize(reply: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.len());
    let mut rest = reply;
    let mut in_stats = false;
    while !rest.is_empty() {
        let Some(eol) = find(rest, b"\r\n") else {
            out.extend_from_slice(rest);
            break;
        };
        let line = &rest[..eol];
        rest = &rest[eol + 2..];
        if line.starts_with(b"STAT ") {
            if !in_stats {
                out.extend_from_slice(b"STAT <stats>\r\n");
            }
            in_stats = true;
            continue;
        }
        in_stats = false;
        if line.starts_with(b"VERSION ") {
            out.extend_from_slice(b"VERSION <version>\r\n");
            continue;
        }
        if line.starts_with(b"VALUE ") {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let len = fields.get(3).and_then(|f| number(f));
            let data = len.and_then(|len| rest.get(..len + 2));
            if let (Some(len), Some(data)) = (len, data) {
                let mut fields = fields;
                if fields.len() == 5 && number(fields[4]).is_some() {
                    fields[4] = b"<cas>";
                }
                out.extend_from_slice(&fields.join(&b' '));
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                rest = &rest[len + 2..];
                continue;
            }
        }
        if let Some(meta) = normalize_meta(line) {
            out.extend_from_slice(&meta);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A meta reply line (`HD`, `VA`, `EN`, `NF`, `NS`, `EX`, `ME`) with its CAS unique (the `c`
/// flag's value; `cas=` in `me`'s answer) replaced.
fn normalize_meta(line: &[u8]) -> Option<Vec<u8>> {
    let mut tokens: Vec<Vec<u8>> = line.split(|&b| b == b' ').map(<[u8]>::to_vec).collect();
    match tokens.first().map(Vec::as_slice) {
        Some(b"HD" | b"VA" | b"EN" | b"NF" | b"NS" | b"EX") => {
            for token in tokens.iter_mut().skip(1) {
                if token.first() == Some(&b'c') && number(&token[1..]).is_some() {
                    *token = b"c<cas>".to_vec();
                }
            }
        }
        Some(b"ME") => {
            for token in tokens.iter_mut().skip(2) {
                if token.starts_with(b"cas=") {
                    *token = b"cas=<cas>".to_vec();
                }
            }
        }
        _ => return None,
    }
    Some(tokens.join(&b' '))
}

/// The last CAS unique of a reply: the fifth field of a `VALUE` line, or a meta `c` flag.
fn last_cas(reply: &[u8]) -> Option<Vec<u8>> {
    let mut last = None;
    if let Some(values) = parse_values(reply) {
        for (header, _) in values {
            if let Some(cas) = header.split(' ').nth(4) {
                last = Some(cas.as_bytes().to_vec());
            }
        }
        return last;
    }
    for line in reply.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"VALUE ") {
            if let Some(cas) = line.split(|&b| b == b' ').nth(4) {
                last = Some(cas.to_vec());
            }
        } else if line.starts_with(b"HD") || line.starts_with(b"VA ") {
            for token in line.split(|&b| b == b' ').skip(1) {
                if token.first() == Some(&b'c') && number(&token[1..]).is_some() {
                    last = Some(token[1..].to_vec());
                }
            }
        }
    }
    last
}

fn number(field: &[u8]) -> Option<usize> {
    if field.is_empty() || !field.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// Where a script's run on one side departs from what it should be, in words; `None` if not.
fn departure(
    script: &Script,
    want: &[Transcript],
    got: &[Transcript],
    want_name: &str,
    got_name: &str,
) -> Option<String> {
    let steps = want.len().max(got.len());
    let lines: Vec<String> = (0..steps)
        .filter(|&i| want.get(i) != got.get(i))
        .map(|i| {
            let sent = script.steps.get(i).map_or(String::new(), |s| show(&s.send));
            let side = |t: Option<&Transcript>| t.map_or("(not run)".to_owned(), Transcript::show);
            format!(
                "  step {i}: {sent}\n    {want_name:<9} {}\n    {got_name:<9} {}",
                side(want.get(i)),
                side(got.get(i))
            )
        })
        .collect();
    (!lines.is_empty()).then(|| format!("{}:\n{}", script.name, lines.join("\n")))
}

/// Runs every script directly and through the router; fails on a script memcached does not
/// answer as it says, on a difference not in `known`, and on an entry of `known` that no longer
/// differs. Prints the known differences.
fn differential(scripts: &[Script], known: &[(&str, &str)]) {
    let names: HashSet<&str> = scripts.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), scripts.len(), "script names must be unique");
    for (name, _) in known {
        assert!(
            names.contains(name),
            "a known difference names no script: {name:?}"
        );
    }

    let mut sides = Sides::start();
    let mut wrong_scripts = Vec::new();
    let mut differences = Vec::new();
    let mut still_known = Vec::new();
    let mut gone = Vec::new();
    for script in scripts {
        let direct = sides.direct(script);
        let want: Vec<Transcript> = script.steps.iter().map(expected).collect();
        if let Some(report) = departure(script, &want, &direct, "expected", "memcached") {
            wrong_scripts.push(report);
            continue;
        }
        let routed = sides.routed(script);
        let reason = known
            .iter()
            .find(|(name, _)| *name == script.name)
            .map(|(_, reason)| reason);
        match (
            departure(script, &direct, &routed, "memcached", "router"),
            reason,
        ) {
            (Some(report), None) => differences.push(report),
            (Some(report), Some(reason)) => {
                still_known.push(format!("{report}\n  known: {reason}"))
            }
            (None, Some(_)) => gone.push(script.name.clone()),
            (None, None) => {}
        }
    }

    if !still_known.is_empty() {
        eprintln!(
            "{} known differences:\n{}",
            still_known.len(),
            still_known.join("\n")
        );
    }
    assert!(
        wrong_scripts.is_empty(),
        "memcached does not answer what {} scripts expect (fix the script):\n{}",
        wrong_scripts.len(),
        wrong_scripts.join("\n")
    );
    assert!(
        differences.is_empty(),
        "{} of {} scripts get different replies through the router:\n{}",
        differences.len(),
        scripts.len(),
        differences.join("\n")
    );
    assert!(
        gone.is_empty(),
        "these known differences are gone, remove them from the list: {gone:?}"
    );
}

#[test]
fn every_script_gets_memcacheds_replies_through_the_router() {
    let scripts = cases::scripts();
    assert!(scripts.len() >= 200, "only {} scripts", scripts.len());
    differential(&scripts, KNOWN_DIFFERENCES);
}

/// The meta rows, checked against memcached alone so that they are right when they are
/// switched on.
#[test]
fn meta_scripts_match_memcached() {
    let scripts = cases::meta_scripts();
    assert_eq!(scripts.len(), META_CASES.len());
    let mut sides = Sides::start();
    let wrong: Vec<String> = scripts
        .iter()
        .filter_map(|script| {
            let want: Vec<Transcript> = script.steps.iter().map(expected).collect();
            departure(
                script,
                &want,
                &sides.direct(script),
                "expected",
                "memcached",
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "memcached does not answer what {} meta scripts expect:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The meta protocol's rows, through the router (routed by key, `q` stripped and re-applied,
/// `mn` answered in order).
#[test]
fn meta_scripts_get_memcacheds_replies_through_the_router() {
    differential(&cases::meta_scripts(), &[]);
}

#[test]
fn normalising_replaces_only_what_must_differ() {
    let reply = b"VALUE a 0 1 77\r\nx\r\nVALUE b 3 4\r\nSTAT\r\nEND\r\nSTAT pid 1\r\nSTAT uptime 2\r\nEND\r\nVERSION 1.6.18\r\nHD c123 t5\r\nSTORED\r\n";
    assert_eq!(
        normalize(reply),
        b"VALUE a 0 1 <cas>\r\nx\r\nVALUE b 3 4\r\nSTAT\r\nEND\r\nSTAT <stats>\r\nEND\r\nVERSION <version>\r\nHD c<cas> t5\r\nSTORED\r\n"
    );
    assert_eq!(
        last_cas(b"VALUE a 0 1 77\r\nx\r\nEND\r\n"),
        Some(b"77".to_vec())
    );
    assert_eq!(last_cas(b"HD c9\r\n"), Some(b"9".to_vec()));
    assert_eq!(normalize(b"no newline"), b"no newline");
}
