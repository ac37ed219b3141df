//! Rewritten requests and background sends on real memcached: `modify` changes keys and
//! exptimes (and replies show the client's key), `all-initial` answers from its first child
//! and copies to the rest, and background work stays within `server.max_background`.

use std::time::Duration;

use switchyard_tests::ports::poll_until;
use switchyard_tests::{Memcached, connect, router};

fn one_pool_route(server: &Memcached, plugin: &str, config: &str, server_extra: &str) -> String {
    format!(
        r#"
[server]
workers = 1
{server_extra}

[[listeners]]
address = "127.0.0.1:0"
route = "r"

[pools.p]
servers = ["{}"]

[routes.r]
plugin = "{plugin}"
children = ["p"]
config = {config}
"#,
        server.spec()
    )
}

#[test]
fn modify_rewrites_keys_and_caps_exptimes_and_answers_with_the_clients_key() {
    let server = Memcached::start();
    let router = router(&one_pool_route(
        &server,
        "modify",
        r#"{ strip_prefix = "old:", add_prefix = "new:", max_exptime = 100 }"#,
        "",
    ));
    let mut client = connect(&router, 0);
    assert_eq!(
        client.request_str("set old:a 7 0 2\r\nhi\r\n"),
        "STORED\r\n"
    );
    assert_eq!(client.request_str("set b 0 5000 1\r\nx\r\n"), "STORED\r\n");
    let mut direct = server.client();
    assert_eq!(
        direct.request_str("get new:a new:b old:a b\r\n"),
        "VALUE new:a 7 2\r\nhi\r\nVALUE new:b 0 1\r\nx\r\nEND\r\n",
        "stored under the rewritten keys only"
    );
    // The cap: `set b` asked for 5000 s and got at most 100; `old:a` asked for none.
    for key in ["new:a", "new:b"] {
        let reply = direct.request_str(&format!("mg {key} t\r\n"));
        let ttl: i64 = reply
            .trim_end()
            .strip_prefix("HD t")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("mg {key}: {reply:?}"));
        assert!((1..=100).contains(&ttl), "{key} ttl {ttl}");
    }

    // Replies carry the client's keys, single and multi-key, classic and meta.
    assert_eq!(
        client.request_str("get old:a\r\n"),
        "VALUE old:a 7 2\r\nhi\r\nEND\r\n"
    );
    assert_eq!(
        client.request_str("get b old:a nothing\r\n"),
        "VALUE b 0 1\r\nx\r\nVALUE old:a 7 2\r\nhi\r\nEND\r\n"
    );
    let mut meta = |request: &str| {
        client.send(request.as_bytes());
        String::from_utf8(client.read_until(b"hi\r\n")).expect("ascii")
    };
    assert_eq!(meta("mg old:a k v f\r\n"), "VA 2 kold:a f7\r\nhi\r\n");
    // A base64 key: `b2xkOmE=` is `old:a`, sent on as `new:a` in base64; memcached echoes a
    // base64 key decoded, and so does the router.
    assert_eq!(meta("mg b2xkOmE= b k v\r\n"), "VA 2 kold:a\r\nhi\r\n");
    assert_eq!(client.request_str("delete old:a\r\n"), "DELETED\r\n");
    assert_eq!(direct.request_str("get new:a\r\n"), "END\r\n");
    assert_eq!(
        client.request_str("incr b 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
}

#[test]
fn a_key_rewritten_past_250_bytes_is_refused_not_forwarded() {
    let server = Memcached::start();
    let prefix = "p".repeat(200);
    let router = router(&one_pool_route(
        &server,
        "modify",
        &format!(r#"{{ add_prefix = "{prefix}" }}"#),
        "",
    ));
    let mut client = connect(&router, 0);
    let key = "k".repeat(60);
    let reply = client.request_str(&format!("set {key} 0 0 1\r\nx\r\n"));
    assert!(
        reply.starts_with("SERVER_ERROR rewritten key is 260 bytes"),
        "{reply:?}"
    );
    assert_eq!(client.request_str("set short 0 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(server.client().stat("curr_items"), Some(1));
}

#[test]
fn all_initial_answers_from_the_first_child_and_copies_to_the_others() {
    let (servers, router) = switchyard_tests::replicated("all-initial", 300);
    let mut client = connect(&router, 0);
    assert_eq!(client.request_str("set k 0 0 1\r\nv\r\n"), "STORED\r\n");
    let everywhere = poll_until(Duration::from_secs(2), || {
        servers
            .iter()
            .all(|s| s.holds(&["k".into()])[0])
            .then_some(())
    });
    assert!(everywhere.is_some(), "every child got the set");

    // The client's reply is the first child's, whatever the others say.
    servers[1].flush_all();
    assert_eq!(client.request_str("add k 0 0 1\r\nw\r\n"), "NOT_STORED\r\n");
    servers[0].flush_all();
    servers[2].pause();
    assert_eq!(client.request_str("add k 0 0 1\r\nw\r\n"), "STORED\r\n");
    servers[2].resume();
    assert_eq!(
        client.request_str("get k\r\n"),
        "VALUE k 0 1\r\nw\r\nEND\r\n"
    );
}

#[test]
fn background_work_beyond_the_limit_is_dropped_and_counted() {
    let main = Memcached::start();
    let shadow = Memcached::start();
    let router = router(&format!(
        r#"
[server]
workers = 1
max_background = 4

[[listeners]]
address = "127.0.0.1:0"
route = "r"

[pools.main]
servers = ["{}"]

[pools.shadow]
servers = ["{}"]
timeout_ms = 2000

[routes.r]
plugin = "shadow"
children = ["main", "shadow"]
"#,
        main.spec(),
        shadow.spec()
    ));
    // A shadow that never answers: its copies stay in flight until they time out.
    shadow.pause();
    let mut client = connect(&router, 0);
    for i in 0..10 {
        assert_eq!(
            client.request_str(&format!("set k{i} 0 0 1\r\nv\r\n")),
            "STORED\r\n",
            "the client never waits for the shadow"
        );
    }
    assert_eq!(client.stat("background_sent"), Some(4));
    assert_eq!(client.stat("background_outstanding"), Some(4));
    assert_eq!(client.stat("background_dropped"), Some(6));
    shadow.resume();
    let drained = poll_until(Duration::from_secs(3), || {
        (client.stat("background_outstanding") == Some(0)).then_some(())
    });
    assert!(drained.is_some(), "copies complete once the shadow answers");
    assert_eq!(client.stat("shadow_mismatches"), Some(0));
}

/// The same bound in bytes: copies of 200 kB stores to a shadow that never answers stop at
/// `max_background_bytes`, however few they are.
#[test]
fn background_bytes_beyond_the_limit_are_dropped_and_counted() {
    const VALUE_LEN: usize = 200_000;
    let main = Memcached::start();
    let shadow = Memcached::start();
    let router = router(&format!(
        r#"
[server]
workers = 1
max_background = 1000
max_background_bytes = 500000

[[listeners]]
address = "127.0.0.1:0"
route = "r"

[pools.main]
servers = ["{}"]

[pools.shadow]
servers = ["{}"]
timeout_ms = 2000

[routes.r]
plugin = "shadow"
children = ["main", "shadow"]
"#,
        main.spec(),
        shadow.spec()
    ));
    shadow.pause();
    let mut client = connect(&router, 0);
    let value = vec![b'v'; VALUE_LEN];
    for i in 0..10 {
        let mut request = format!("set big{i} 0 0 {VALUE_LEN}\r\n").into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        assert_eq!(client.request(&request), b"STORED\r\n");
    }
    // Two copies fit in 500,000 bytes, the third would not.
    assert_eq!(client.stat("background_sent"), Some(2));
    assert_eq!(client.stat("background_dropped"), Some(8));
    let held = client.stat("background_bytes").unwrap_or(0);
    assert!(
        held > 2 * VALUE_LEN as u64 && held <= 500_000,
        "background_bytes {held}"
    );
    shadow.resume();
    let drained = poll_until(Duration::from_secs(3), || {
        (client.stat("background_bytes") == Some(0)).then_some(())
    });
    assert!(
        drained.is_some(),
        "the bytes are given back once the shadow answers"
    );
}
