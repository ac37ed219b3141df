//! The `prefix` plugin sends each key to the pool of its longest matching prefix, else to the
//! default.

use switchyard_tests::{Memcached, client::reply_keys, connect, locate, router, show};

#[test]
fn prefixes_choose_pools_longest_match_first() {
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let config = format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
route = "root"

[pools.a]
servers = ["{}"]

[pools.b]
servers = ["{}"]

[pools.c]
servers = ["{}"]

[routes.root]
plugin = "prefix"
children = ["a", "b", "c"]
config = {{ prefixes = {{ "a:" = "a", "b:" = "b", "b:x:" = "c" }}, default = "a" }}
"#,
        a.spec(),
        b.spec(),
        c.spec()
    );
    let router = router(&config);
    let mut client = connect(&router, 0);

    let cases = [
        ("a:1", 0),
        ("a:2", 0),
        ("b:1", 1),
        ("b:2", 1),
        ("b:x:1", 2), // longer than "b:"
        ("b:x", 1),   // shorter than "b:x:"
        ("other", 0), // no prefix: the default
        ("A:1", 0),   // prefixes are case-sensitive
    ];
    for (key, _) in cases {
        client.set(key, key.as_bytes());
    }

    let keys: Vec<String> = cases.iter().map(|(key, _)| (*key).to_owned()).collect();
    let placement = locate(&[&a, &b, &c], &keys);
    for ((key, expected), actual) in cases.iter().zip(&placement) {
        assert_eq!(
            actual, expected,
            "{key} is on pool {actual}, expected pool {expected} (0 = a, 1 = b, 2 = c)"
        );
    }

    // One get across all three pools comes back whole and in key order.
    let reply = client.request(format!("get {}\r\n", keys.join(" ")).as_bytes());
    assert_eq!(reply_keys(&reply), keys, "{}", show(&reply));
}
