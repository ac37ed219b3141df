//! Replication and failover routes with one child stopped or slow, on real memcached: each
//! answers as its policy says, and every reachable replica gets the write.

use std::time::{Duration, Instant};

use switchyard_tests::ports::poll_until;
use switchyard_tests::{Memcached, Router, connect};

const TIMEOUT_MS: u64 = 400;

fn replicated(plugin: &str) -> ([Memcached; 3], Router) {
    switchyard_tests::replicated(plugin, TIMEOUT_MS)
}

fn holds(servers: &[Memcached], key: &str) -> Vec<bool> {
    servers
        .iter()
        .map(|s| s.holds(&[key.to_string()])[0])
        .collect()
}

fn timed_set(router: &Router, key: &str) -> (String, Duration) {
    let mut client = connect(router, 0);
    let started = Instant::now();
    let reply = client.request_str(&format!("set {key} 0 0 1\r\nv\r\n"));
    (reply, started.elapsed())
}

#[test]
fn all_fastest_answers_with_the_first_good_reply_when_a_child_is_slow() {
    let (servers, router) = replicated("all-fastest");
    servers[1].pause();
    let (reply, took) = timed_set(&router, "fast");
    assert_eq!(reply, "STORED\r\n");
    assert!(
        took < Duration::from_millis(TIMEOUT_MS / 2),
        "waited for the slow child: {took:?}"
    );
    assert_eq!(servers[0].holds(&["fast".into()]), vec![true]);
    assert_eq!(servers[2].holds(&["fast".into()]), vec![true]);
    servers[1].resume();
    // The slow child got the write too, once it could answer.
    let caught_up = poll_until(Duration::from_secs(2), || {
        servers[1].holds(&["fast".into()])[0].then_some(())
    });
    assert!(caught_up.is_some(), "the slow replica was sent the write");
}

#[test]
fn all_majority_needs_two_of_three() {
    let (mut servers, router) = replicated("all-majority");
    servers[2].kill();
    assert_eq!(
        timed_set(&router, "maj1").0,
        "STORED\r\n",
        "two of three stored it"
    );
    servers[1].kill();
    let (reply, _) = timed_set(&router, "maj2");
    assert!(
        reply.starts_with("SERVER_ERROR "),
        "one of three is no majority: {reply:?}"
    );
    assert_eq!(
        servers[0].holds(&["maj1".into(), "maj2".into()]),
        vec![true, true]
    );
}

#[test]
fn all_sync_answers_the_worst_and_all_async_does_not_wait() {
    let (mut servers, router) = replicated("all-sync");
    assert_eq!(timed_set(&router, "s1").0, "STORED\r\n");
    assert_eq!(holds(&servers, "s1"), vec![true, true, true]);
    servers[0].kill();
    assert!(timed_set(&router, "s2").0.starts_with("SERVER_ERROR "));

    let (servers, router) = replicated("all-async");
    servers[1].pause();
    let (reply, took) = timed_set(&router, "a1");
    assert_eq!(reply, "NOT_STORED\r\n", "the default reply, at once");
    assert!(took < Duration::from_millis(TIMEOUT_MS / 2), "{took:?}");
    let written = poll_until(Duration::from_secs(2), || {
        (servers[0].holds(&["a1".into()])[0] && servers[2].holds(&["a1".into()])[0]).then_some(())
    });
    assert!(written.is_some(), "every reachable child got the write");
    servers[1].resume();
}

#[test]
fn failover_moves_on_when_the_first_child_is_slow() {
    let (servers, router) = replicated("failover");
    servers[0].pause();
    let (reply, took) = timed_set(&router, "f1");
    assert_eq!(reply, "STORED\r\n", "failed over to the second child");
    assert!(took < Duration::from_millis(TIMEOUT_MS) * 2, "{took:?}");
    assert_eq!(servers[1].holds(&["f1".into()]), vec![true]);
    servers[0].resume();
}
