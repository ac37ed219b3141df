//! The `ketama` plugin puts every key on the server twemproxy (`distribution: ketama`, `hash:
//! md5`) puts it on, and adding a server moves about a quarter of the keys.
//!
//! Placement is always checked by asking each memcached directly which keys it holds.

use md5::{Digest, Md5};
use switchyard_tests::{
    Memcached, Nutcracker, connect, locate, router, single_pool_config, specs, store_all,
};

const KEYS: usize = 1000;

fn keys(prefix: &str) -> Vec<String> {
    (0..KEYS).map(|i| format!("{prefix}-{i}")).collect()
}

/// Where twemproxy puts each key: stored through it, then located directly. The servers are
/// flushed afterwards so the router's run starts from empty servers.
fn twemproxy_placement(
    servers: &[&Memcached],
    server_specs: &[String],
    keys: &[String],
) -> Vec<usize> {
    let proxy = Nutcracker::start(server_specs);
    store_all(&mut proxy.client(), keys, b"twemproxy");
    let placement = locate(servers, keys);
    for server in servers {
        server.flush_all();
    }
    placement
}

/// Where the router's default hash (ketama) puts each key, over a pool of `server_specs`.
fn router_placement(
    servers: &[&Memcached],
    server_specs: &[String],
    keys: &[String],
) -> Vec<usize> {
    let router = router(&single_pool_config(server_specs, ""));
    store_all(&mut connect(&router, 0), keys, b"switchyard");
    let placement = locate(servers, keys);
    for server in servers {
        server.flush_all();
    }
    placement
}

fn assert_same_placement(keys: &[String], twemproxy: &[usize], router: &[usize]) {
    let differing: Vec<String> = keys
        .iter()
        .zip(twemproxy.iter().zip(router))
        .filter(|(_, (t, r))| t != r)
        .map(|(key, (t, r))| format!("{key}: twemproxy server {t}, switchyard server {r}"))
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} keys placed differently, e.g.:\n{}",
        differing.len(),
        keys.len(),
        differing[..differing.len().min(10)].join("\n")
    );
}

fn per_server(placement: &[usize], servers: usize) -> Vec<usize> {
    let mut counts = vec![0; servers];
    for &server in placement {
        counts[server] += 1;
    }
    counts
}

#[test]
fn a_thousand_keys_land_on_all_three_servers_where_twemproxy_puts_them() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let servers: Vec<&Memcached> = servers.iter().collect();
    let server_specs = specs(&servers);
    let keys = keys("ketama");

    let reference = twemproxy_placement(&servers, &server_specs, &keys);
    let placement = router_placement(&servers, &server_specs, &keys);

    let counts = per_server(&placement, 3);
    assert!(
        counts.iter().all(|&n| n >= KEYS / 10),
        "keys per server {counts:?}: ketama should spread {KEYS} keys over all three"
    );
    assert_same_placement(&keys, &reference, &placement);
}

#[test]
fn weighted_and_named_servers_are_placed_as_twemproxy_places_them() {
    let servers = [Memcached::start(), Memcached::start(), Memcached::start()];
    let servers: Vec<&Memcached> = servers.iter().collect();
    // twemproxy hashes a server's name when it has one, else "host:port"; weight 2 doubles
    // a server's points on the continuum.
    let server_specs = vec![
        format!("{}:1 cache-a", servers[0].address()),
        format!("{}:2 cache-b", servers[1].address()),
        format!("{}:1", servers[2].address()),
    ];
    let keys = keys("weighted");

    let reference = twemproxy_placement(&servers, &server_specs, &keys);
    let placement = router_placement(&servers, &server_specs, &keys);

    let counts = per_server(&placement, 3);
    assert!(
        counts[1] > counts[0] && counts[1] > counts[2],
        "keys per server {counts:?}: the weight-2 server should hold the most"
    );
    assert_same_placement(&keys, &reference, &placement);
}

/// twemproxy's `md5` hash of a key: the first four bytes of its MD5 digest, little-endian.
fn md5_hash(key: &str) -> u32 {
    let digest = Md5::digest(key.as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

#[test]
fn adding_a_fourth_server_moves_about_a_quarter_of_the_keys() {
    let servers = [
        Memcached::start(),
        Memcached::start(),
        Memcached::start(),
        Memcached::start(),
    ];
    let servers: Vec<&Memcached> = servers.iter().collect();
    // Named servers: the continuum depends on the names, not on the (random) ports, so the
    // share the fourth server takes is the same in every run: 250 of these 1,000 keys.
    let named: Vec<String> = servers
        .iter()
        .zip(["cache-a", "cache-b", "cache-c", "cache-d"])
        .map(|(server, name)| format!("{}:1 {name}", server.address()))
        .collect();
    let keys = keys("ketama");

    let before = router_placement(&servers, &named[..3], &keys);
    let after = router_placement(&servers, &named, &keys);

    let moved: Vec<(usize, usize)> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(&b, &a)| (b, a))
        .collect();
    assert!(
        moved.iter().all(|&(_, to)| to == 3),
        "consistent hashing moves keys only to the new server; moves (from, to): {:?}",
        &moved[..moved.len().min(20)]
    );

    // Seed comparison: modulo hashing (twemproxy's `distribution: modula`) over the same hash
    // moves every key whose hash differs mod 3 and mod 4: about three quarters.
    let modulo_moved = keys
        .iter()
        .filter(|key| md5_hash(key) % 3 != md5_hash(key) % 4)
        .count();
    let fraction = moved.len() as f64 / KEYS as f64;
    let modulo_fraction = modulo_moved as f64 / KEYS as f64;
    println!(
        "adding a 4th server moved {} of {KEYS} keys ({:.1}%); modulo hashing would move {} ({:.1}%)",
        moved.len(),
        fraction * 100.0,
        modulo_moved,
        modulo_fraction * 100.0
    );
    assert!(
        (0.20..=0.30).contains(&fraction),
        "ketama moved {:.1}% of keys; expected about 25% and at most 30%",
        fraction * 100.0
    );
    assert!(
        modulo_fraction > 0.6,
        "the modulo baseline moved only {:.1}%",
        modulo_fraction * 100.0
    );
}
