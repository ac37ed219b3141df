//! A plugin's `fan_out` plan (wait for all) reaches every child it names, and the client gets
//! the worst of their replies; a plugin's direct reply is rendered for the operation.

use switchyard_tests::{Memcached, Router, TestDir, connect, router_in, show, wasm};

/// Listener 0: the fanning-out guest over pools `a` and `b` (one server each). Listener 1: a
/// `prefix` route with no default, so unmatched keys get the plugin's own reply.
fn fan_router(dir: &TestDir, a: &Memcached, b: &Memcached) -> Router {
    dir.write("fan.wasm", wasm::fanning_out_plugin());
    router_in(
        dir,
        &format!(
            r#"
[[listeners]]
address = "127.0.0.1:0"
route = "both"

[[listeners]]
address = "127.0.0.1:0"
route = "strict"

[pools.a]
servers = ["{}"]
timeout_ms = 300

[pools.b]
servers = ["{}"]
timeout_ms = 300

[routes.both]
plugin = "fan.wasm"
children = ["a", "b"]

[routes.strict]
plugin = "prefix"
children = ["a"]
config = {{ prefixes = {{ "known:" = "a" }} }}
"#,
            a.spec(),
            b.spec()
        ),
    )
}

#[test]
fn fan_out_writes_every_child_and_answers_the_worst_reply() {
    let a = Memcached::start();
    let mut b = Memcached::start();
    let dir = TestDir::new("fan-out");
    let router = fan_router(&dir, &a, &b);
    let mut client = connect(&router, 0);

    assert_eq!(
        client.request_str("set fan:1 7 0 2\r\nhi\r\n"),
        "STORED\r\n"
    );
    let fanned = vec!["fan:1".to_string()];
    assert_eq!(
        a.holds(&fanned),
        vec![true],
        "child a holds the fanned-out key"
    );
    assert_eq!(
        b.holds(&fanned),
        vec![true],
        "child b holds the fanned-out key"
    );

    // Not fanned out: only child 0 sees it.
    assert_eq!(client.request_str("set one:1 0 0 1\r\nx\r\n"), "STORED\r\n");
    let single = vec!["one:1".to_string()];
    assert_eq!(
        (a.holds(&single), b.holds(&single)),
        (vec![true], vec![false])
    );

    // The worst reply wins: `add` of a key only b lacks is NOT_STORED on a, STORED on b.
    b.client().request(b"delete fan:1\r\n");
    assert_eq!(
        client.request_str("add fan:1 0 0 2\r\nyo\r\n"),
        "NOT_STORED\r\n"
    );
    assert_eq!(
        b.holds(&fanned),
        vec![true],
        "b stored it anyway: all children were sent to"
    );

    // A dead child makes the fan-out's reply an error, though a stored the value.
    b.kill();
    let reply = client.request(b"set fan:2 0 0 1\r\nz\r\n");
    assert!(reply.starts_with(b"SERVER_ERROR "), "{}", show(&reply));
    assert_eq!(a.holds(&["fan:2".to_string()]), vec![true]);
}

#[test]
fn a_plugin_reply_is_rendered_for_the_operation() {
    let a = Memcached::start();
    let b = Memcached::start();
    let dir = TestDir::new("plugin-reply");
    let router = fan_router(&dir, &a, &b);
    let mut client = connect(&router, 1);
    assert_eq!(
        client.request_str("set known:1 0 0 1\r\nk\r\n"),
        "STORED\r\n"
    );
    assert_eq!(
        client.request_str("get nope\r\n"),
        "SERVER_ERROR no route for key\r\n"
    );
    // In a multi-key get one failing key fails the whole command, as in twemproxy.
    assert_eq!(
        client.request_str("get known:1 nope\r\n"),
        "SERVER_ERROR no route for key\r\n"
    );
    assert_eq!(
        client.request_str("get known:1\r\n"),
        "VALUE known:1 0 1\r\nk\r\nEND\r\n"
    );
}
