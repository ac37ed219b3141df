//! The plugin picks the same server as real twemproxy for every key of
//! `twemproxy-vectors.txt` (produced by `gen-twemproxy-vectors.py`; see its header).

use switchyard_plugin_ketama::Ketama;
use switchyard_sdk::testing::{Decision, Harness};
use switchyard_sdk::{Op, Request};

const VECTORS: &str = include_str!("twemproxy-vectors.txt");

struct Pool<'v> {
    label: &'v str,
    hash: &'v str,
    children: Vec<(&'v str, u32)>,
    keys: Vec<(&'v str, u32)>,
}

fn pools() -> Vec<Pool<'static>> {
    let mut pools: Vec<Pool<'static>> = Vec::new();
    for (number, line) in VECTORS.lines().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let number = number + 1;
        match fields[..] {
            [] | [""] => {}
            [comment, ..] if comment.starts_with('#') => {}
            ["pool", label, hash] => pools.push(Pool {
                label,
                hash,
                children: Vec::new(),
                keys: Vec::new(),
            }),
            ["child", name, weight] => pools
                .last_mut()
                .expect("child before pool")
                .children
                .push((name, weight.parse().expect("weight"))),
            ["key", key, child] => pools
                .last_mut()
                .expect("key before pool")
                .keys
                .push((key, child.parse().expect("child index"))),
            _ => panic!("twemproxy-vectors.txt:{number}: unexpected line {line:?}"),
        }
    }
    pools
}

#[test]
fn matches_twemproxy() {
    let pools = pools();
    let labels: Vec<_> = pools.iter().map(|pool| pool.label).collect();
    assert_eq!(
        labels,
        ["equal", "weighted", "default-port", "named", "fnv1a_64"]
    );
    for pool in pools {
        assert!(
            pool.keys.len() >= 190,
            "{}: {} keys",
            pool.label,
            pool.keys.len()
        );
        let config = format!("hash = {:?}", pool.hash);
        let mut harness = Harness::<Ketama>::new(&config, &pool.children).expect("valid config");
        let mismatches: Vec<_> = pool
            .keys
            .iter()
            .filter_map(|&(key, expected)| {
                let got = harness.route(&Request::new(Op::Get, key.as_bytes()));
                (got != Decision::Forward(expected))
                    .then(|| format!("{key}: {got:?}, twemproxy {expected}"))
            })
            .collect();
        assert!(
            mismatches.is_empty(),
            "pool {}: {} of {} keys differ from twemproxy: {mismatches:#?}",
            pool.label,
            mismatches.len(),
            pool.keys.len()
        );
    }
}
