//! `switchyard diff OLD NEW` against real memcached: adding a fourth server to a ketama pool
//! moves about a quarter of the keys, all to the new server, and every key the diff says moved
//! is where a router running the new configuration stores it (and no other key is); the exit
//! status follows `--max-moved`, and a diff that cannot be made says why with status 2.

use std::process::{Command, Output};

use switchyard_tests::{Memcached, TestDir, switchyard_binary};

fn pool_of(servers: &[&Memcached]) -> String {
    let list: Vec<String> = servers
        .iter()
        .map(|s| format!("\"{}\"", s.spec()))
        .collect();
    format!(
        "[server]\nworkers = 1\n\n[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [{}]\n",
        list.join(", ")
    )
}

fn diff(dir: &TestDir, args: &[&str]) -> Output {
    Command::new(switchyard_binary())
        .arg("diff")
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("run switchyard diff")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn adding_a_ketama_server_moves_a_quarter_all_to_it_as_the_router_places_them() {
    let servers: Vec<Memcached> = (0..4).map(|_| Memcached::start()).collect();
    let [a, b, c, d] = [&servers[0], &servers[1], &servers[2], &servers[3]];
    let dir = TestDir::new("diff-ketama");
    dir.write("old.toml", pool_of(&[a, b, c]));
    let new = pool_of(&[a, b, c, d]);
    dir.write("new.toml", &new);
    let keys: Vec<String> = (0..2000).map(|i| format!("user:{i}")).collect();
    dir.write("keys.txt", keys.join("\n") + "\n");

    let out = diff(
        &dir,
        &["old.toml", "new.toml", "--keys", "keys.txt", "--show-moved"],
    );
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let first = report.lines().next().unwrap_or_default().to_string();
    let moved: Vec<&str> = report
        .lines()
        .filter(|l| l.contains(" -> "))
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert!(
        first.ends_with(&format!("({} of 2000 requests)", moved.len())),
        "{report}"
    );
    // A quarter, within what 2,000 keys and ketama's uneven ring allow.
    let share = moved.len() as f64 / 2000.0;
    assert!((0.15..=0.35).contains(&share), "{share}: {report}");
    let to_d = format!(
        "  to {} (new): {} (100.0% of those moved)",
        d.address(),
        moved.len()
    );
    assert!(report.contains(&to_d), "{report}");

    // A router on the new configuration stores every key: the moved ones are on the fourth
    // server, and nothing else is.
    let router = switchyard_tests::router(&new);
    let mut client = switchyard_tests::connect(&router, 0);
    for key in &keys {
        client.set(key, b"v");
    }
    let mut on_d = d.client();
    for key in &keys {
        let there = on_d.get(key).is_some();
        assert_eq!(
            there,
            moved.contains(&key.as_str()),
            "{key}: on the new server {there}, moved by the diff {}",
            !there
        );
    }

    // As a check: over the threshold is status 1, within it 0.
    let over = diff(
        &dir,
        &[
            "old.toml",
            "new.toml",
            "--keys",
            "keys.txt",
            "--max-moved",
            "5",
        ],
    );
    assert_eq!(over.status.code(), Some(1), "{}", text(&over));
    assert!(
        text(&over).contains("over --max-moved 5%"),
        "{}",
        text(&over)
    );
    let within = diff(
        &dir,
        &[
            "old.toml",
            "new.toml",
            "--sample",
            "500",
            "--max-moved",
            "50",
        ],
    );
    assert_eq!(within.status.code(), Some(0), "{}", text(&within));

    // A diff that cannot be made.
    let missing = diff(&dir, &["old.toml", "new.toml", "--route", "nowhere"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("has no pool or route `nowhere`"),
        "{}",
        text(&missing)
    );
}
