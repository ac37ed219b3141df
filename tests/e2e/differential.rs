//! The same bytes sent to memcached directly and through the router get byte-identical replies.
//!
//! One script runs twice against one memcached: first directly, then (after `flush_all`)
//! through the router. Every reply must match byte for byte, except the CAS unique of
//! `gets`/`gats`, which memcached's counter makes differ between the two runs: it is checked to
//! be a number, replaced by `<cas>` in both, and fed to the script's later `cas` commands.

use switchyard_tests::client::parse_values;
use switchyard_tests::{Client, Memcached, connect, router, show, single_pool_config};

/// One request of the script.
struct Step {
    /// The bytes sent; `{cas}` is replaced by the CAS unique of the last `gets`/`gats` reply.
    send: Vec<u8>,
    /// What memcached's direct reply starts with: documents the script and catches a broken
    /// step (one both sides reject the same way would prove little). Empty for `noreply`.
    expect: &'static str,
}

fn step(send: &str, expect: &'static str) -> Step {
    Step {
        send: send.as_bytes().to_vec(),
        expect,
    }
}

/// `set key flags 0 len` with a binary value.
fn set_bytes(key: &str, flags: u32, value: &[u8]) -> Step {
    let mut send = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
    send.extend_from_slice(value);
    send.extend_from_slice(b"\r\n");
    Step {
        send,
        expect: "STORED",
    }
}

fn script() -> Vec<Step> {
    let long_key = format!("d:{}", "k".repeat(248)); // 250 bytes: memcached's maximum
    let big: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
    vec![
        // get / set
        step("get d:k\r\n", "END"),
        step("set d:k 0 0 5\r\nhello\r\n", "STORED"),
        step("get d:k\r\n", "VALUE d:k 0 5"),
        step("set d:flags 4294967295 0 3\r\nabc\r\n", "STORED"),
        step("get d:k d:missing d:flags\r\n", "VALUE d:k 0 5"),
        step("get d:flags d:flags\r\n", "VALUE d:flags 4294967295 3"),
        set_bytes("d:bin", 9, b"a\r\nEND\r\nb\0\xff\r\n"),
        step("get d:bin\r\n", "VALUE d:bin 9 13"),
        set_bytes("d:big", 0, &big),
        step("get d:big\r\n", "VALUE d:big 0 500000"),
        step(&format!("set {long_key} 0 0 1\r\nL\r\n"), "STORED"),
        step(&format!("get {long_key}\r\n"), "VALUE d:kkk"),
        // add / replace / append / prepend
        step("add d:k 0 0 1\r\nx\r\n", "NOT_STORED"),
        step("add d:new 7 0 3\r\nnew\r\n", "STORED"),
        step("replace d:absent 0 0 1\r\nx\r\n", "NOT_STORED"),
        step("replace d:k 1 0 5\r\nworld\r\n", "STORED"),
        step("append d:k 0 0 3\r\n!!!\r\n", "STORED"),
        step("prepend d:k 0 0 3\r\n>>>\r\n", "STORED"),
        step("get d:k\r\n", "VALUE d:k 1 11"),
        step("append d:absent 0 0 1\r\nx\r\n", "NOT_STORED"),
        step("prepend d:absent 0 0 1\r\nx\r\n", "NOT_STORED"),
        // incr / decr
        step("set d:n 0 0 2\r\n10\r\n", "STORED"),
        step("incr d:n 5\r\n", "15"),
        step("decr d:n 20\r\n", "0"),
        step("incr d:n 18446744073709551615\r\n", "18446744073709551615"),
        step("incr d:n 1\r\n", "0"),
        // memcached rewrites a counter in place, padding it with spaces to its old length
        step("get d:n\r\n", "VALUE d:n 0 20\r\n0 "),
        step("incr d:k 1\r\n", "CLIENT_ERROR"),
        step("incr d:absent 1\r\n", "NOT_FOUND"),
        step("decr d:absent 1\r\n", "NOT_FOUND"),
        // gets / cas
        step("gets d:k\r\n", "VALUE d:k 1 11 "),
        step("cas d:k 2 0 3 {cas}\r\ncas\r\n", "STORED"),
        step("cas d:k 0 0 1 {cas}\r\nx\r\n", "EXISTS"),
        step("cas d:absent 0 0 1 1\r\nx\r\n", "NOT_FOUND"),
        step("gets d:k d:new\r\n", "VALUE d:k 2 3 "),
        step("cas d:new 0 0 3 {cas}\r\nCAS\r\n", "STORED"),
        step("get d:k d:new\r\n", "VALUE d:k 2 3"),
        // touch / gat / gats
        step("touch d:k 100\r\n", "TOUCHED"),
        step("touch d:absent 100\r\n", "NOT_FOUND"),
        step("gat 0 d:k d:absent d:new\r\n", "VALUE d:k 2 3"),
        step("gats 100 d:new\r\n", "VALUE d:new 0 3 "),
        step("cas d:new 0 0 1 {cas}\r\nz\r\n", "STORED"),
        // noreply: no answer at all, so the next reply must be the next request's
        step("set d:quiet 0 0 1 noreply\r\nq\r\n", ""),
        step("append d:quiet 0 0 1 noreply\r\nQ\r\n", ""),
        step("incr d:n 1 noreply\r\n", ""),
        step("touch d:quiet 100 noreply\r\n", ""),
        step("delete d:new noreply\r\n", ""),
        step("get d:quiet d:new d:n\r\n", "VALUE d:quiet 0 2"),
        // delete
        step("delete d:k\r\n", "DELETED"),
        step("delete d:k\r\n", "NOT_FOUND"),
        step("get d:k\r\n", "END"),
    ]
}

/// Runs the script on one connection; returns each reply (empty for `noreply` steps) with CAS
/// uniques replaced by `<cas>`.
fn run(client: &mut Client, steps: &[Step]) -> Vec<Vec<u8>> {
    let mut cas = String::from("0");
    let mut replies = Vec::new();
    for step in steps {
        let send = replace(&step.send, b"{cas}", cas.as_bytes());
        client.send(&send);
        if step.expect.is_empty() {
            replies.push(Vec::new());
            continue;
        }
        let (reply, seen) = normalize_cas(&client.reply());
        if let Some(seen) = seen {
            cas = seen;
        }
        replies.push(reply);
    }
    replies
}

/// Replaces the CAS field of `VALUE key flags bytes cas` lines by `<cas>`; returns the last one.
fn normalize_cas(reply: &[u8]) -> (Vec<u8>, Option<String>) {
    let Some(values) = parse_values(reply) else {
        return (reply.to_vec(), None);
    };
    let mut out = Vec::new();
    let mut last = None;
    for (header, data) in values {
        let mut fields: Vec<&str> = header.split(' ').collect();
        if let Some(cas) = fields.get_mut(4) {
            assert!(
                !cas.is_empty() && cas.bytes().all(|b| b.is_ascii_digit()),
                "CAS unique is not a number in {header:?}"
            );
            last = Some((*cas).to_owned());
            *cas = "<cas>";
        }
        out.extend_from_slice(fields.join(" ").as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"END\r\n");
    (out, last)
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Runs the script directly and through `routed`, and compares.
fn compare(server: &Memcached, routed: &mut Client) {
    let steps = script();
    let direct = run(&mut server.client(), &steps);
    for (step, reply) in steps.iter().zip(&direct) {
        assert!(
            reply.starts_with(step.expect.as_bytes()),
            "the script is wrong: memcached answered {} to {}, expected {:?}",
            show(reply),
            show(&step.send),
            step.expect
        );
    }

    server.flush_all();
    let through_router = run(routed, &steps);

    let mismatches: Vec<String> = steps
        .iter()
        .zip(direct.iter().zip(&through_router))
        .enumerate()
        .filter(|(_, (_, (d, r)))| d != r)
        .map(|(i, (step, (d, r)))| {
            format!(
                "step {i}: {}\n  memcached: {}\n  router:    {}",
                show(&step.send),
                show(d),
                show(r)
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} replies differ:\n{}",
        mismatches.len(),
        steps.len(),
        mismatches.join("\n")
    );
}

#[test]
fn replies_through_a_single_server_pool_are_byte_identical() {
    let server = Memcached::start();
    let router = router(&single_pool_config(&[server.spec()], ""));
    compare(&server, &mut connect(&router, 0));
}

#[test]
fn replies_through_a_plugin_route_are_byte_identical() {
    let server = Memcached::start();
    let config = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
route = "root"

[pools.only]
servers = ["{}"]

[routes.root]
plugin = "prefix"
children = ["only"]
config = {{ prefixes = {{ "d:" = "only" }}, default = "only" }}
"#,
        server.spec()
    );
    let router = router(&config);
    compare(&server, &mut connect(&router, 0));
}
