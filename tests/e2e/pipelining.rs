//! Replies come back in request order, whatever order the backends answer in.

use switchyard_tests::{
    Memcached, client::parse_values, client::reply_keys, connect, locate, router, show,
    single_pool_config, specs,
};

/// A value whose size varies a lot from key to key, so backends finish in a different order
/// than the requests were sent. Small enough in total (about 250 kB) that the one write fits in
/// loopback socket buffers while nobody reads the replies yet, as memcached itself requires.
fn value(i: usize) -> Vec<u8> {
    let len = [1, 4000, 17, 20_000, 300][i % 5] + i;
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

#[test]
fn a_hundred_pipelined_requests_in_one_write_come_back_in_order() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let servers: Vec<&Memcached> = servers.iter().collect();
    let router = router(&single_pool_config(&specs(&servers), ""));
    let mut client = connect(&router, 0);

    // 50 sets and 50 gets, interleaved; each get reads a key set earlier in the same write.
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..50 {
        let key = format!("pipe-{i}");
        let stored = value(i);
        request.extend_from_slice(format!("set {key} {i} 0 {}\r\n", stored.len()).as_bytes());
        request.extend_from_slice(&stored);
        request.extend_from_slice(b"\r\n");
        expected.push(b"STORED\r\n".to_vec());

        let earlier = i * 7 % (i + 1); // some key in 0..=i
        let read = value(earlier);
        request.extend_from_slice(format!("get pipe-{earlier}\r\n").as_bytes());
        let mut reply = format!("VALUE pipe-{earlier} {earlier} {}\r\n", read.len()).into_bytes();
        reply.extend_from_slice(&read);
        reply.extend_from_slice(b"\r\nEND\r\n");
        expected.push(reply);
    }
    assert_eq!(expected.len(), 100);

    client.send(&request);
    let replies = client.replies(expected.len());
    for (i, (got, want)) in replies.iter().zip(&expected).enumerate() {
        assert_eq!(
            got,
            want,
            "reply {i} of 100 is out of place:\n  got  {}\n  want {}",
            show(got),
            show(want)
        );
    }

    // The keys really were spread over the three servers.
    let keys: Vec<String> = (0..50).map(|i| format!("pipe-{i}")).collect();
    let placement = locate(&servers, &keys);
    assert!((0..3).all(|s| placement.contains(&s)), "{placement:?}");
}

#[test]
fn a_twenty_key_get_across_three_servers_comes_back_in_key_order() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let servers: Vec<&Memcached> = servers.iter().collect();
    let router = router(&single_pool_config(&specs(&servers), ""));
    let mut client = connect(&router, 0);

    // Where a key lands depends on the servers' ports, which are free ones: of 60 stored
    // candidates, the 18 keys the get asks for are the first on each server and the first
    // others, so that they always span all three.
    let candidates: Vec<String> = (0..60).map(|i| format!("multi-{i}")).collect();
    for key in &candidates {
        client.set(key, format!("value of {key}").as_bytes());
    }
    let on = locate(&servers, &candidates);
    let first_on = |s: usize| on.iter().position(|&o| o == s);
    let firsts: Vec<usize> = (0..3).filter_map(first_on).collect();
    let rest = (0..candidates.len()).filter(|i| !firsts.contains(i));
    let mut chosen: Vec<usize> = rest.take(18 - firsts.len()).collect();
    chosen.extend(&firsts);
    chosen.sort_unstable();
    let stored: Vec<String> = chosen.iter().map(|&i| candidates[i].clone()).collect();
    // Keys 5 and 13 of the 20 are never stored: misses leave a gap, not a reordering.
    let mut keys = stored.clone();
    keys.insert(5, "multi-never-a".to_string());
    keys.insert(13, "multi-never-b".to_string());
    let placement = locate(&servers, &stored);
    assert!(
        (0..3).all(|s| placement.contains(&s)),
        "the 20 keys should span all three servers: {placement:?}"
    );

    let reply = client.request(format!("get {}\r\n", keys.join(" ")).as_bytes());
    assert_eq!(reply_keys(&reply), stored, "{}", show(&reply));
    for (header, value) in parse_values(&reply).expect("a retrieval reply") {
        let key = header.split(' ').nth(1).unwrap_or_default();
        assert_eq!(value, format!("value of {key}").as_bytes(), "{header}");
    }

    // `gets` too, and the same key twice is answered twice, in place.
    let mut twice = keys.clone();
    twice.insert(3, keys[17].clone());
    let reply = client.request(format!("gets {}\r\n", twice.join(" ")).as_bytes());
    let expected: Vec<String> = twice.into_iter().filter(|k| stored.contains(k)).collect();
    assert_eq!(reply_keys(&reply), expected, "{}", show(&reply));
}

#[test]
fn version_is_answered_and_quit_closes_the_connection() {
    let server = Memcached::start();
    let router = router(&single_pool_config(&[server.spec()], ""));
    let mut client = connect(&router, 0);
    let reply = client.request(b"version\r\n");
    assert!(reply.starts_with(b"VERSION "), "{}", show(&reply));
    assert!(reply.ends_with(b"\r\n"), "{}", show(&reply));
    client.send(b"quit\r\n");
    client.expect_closed();
}
