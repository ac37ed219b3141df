//! `tap` and `replay` against real memcached: a capture started on the admin listener holds
//! the requests clients sent, and `switchyard replay` of it on the same configuration gives
//! each request the server the router sent it to (checked on the servers themselves);
//! `switchyard tap` does the same from the command line.

use std::process::Command;

use switchyard_tests::ports::free_port;
use switchyard_tests::{Client, Memcached, TestDir, connect, switchyard_binary};

#[test]
fn a_tap_replayed_on_its_configuration_gives_the_routers_own_decisions() {
    let servers: Vec<Memcached> = (0..3).map(|_| Memcached::start()).collect();
    let dir = TestDir::new("tap-replay");
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let list: Vec<String> = servers
        .iter()
        .map(|s| format!("\"{}\"", s.spec()))
        .collect();
    let text = format!(
        "[admin]\naddress = \"{admin}\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [{}]\n",
        list.join(", ")
    );
    dir.write("switchyard.toml", &text);
    let router = switchyard_tests::router_in(&dir, &text);
    let mut ops = Client::connect(admin);
    let started = ops.request_str("tap start cap.trace\r\n");
    assert!(started.starts_with("OK "), "{started}");
    let mut client = connect(&router, 0);
    for i in 0..300 {
        client.set(&format!("user:{i}"), b"value");
    }
    for i in 0..300 {
        assert!(client.get(&format!("user:{i}")).is_some());
    }
    let stopped = ops.request_str("tap stop\r\n");
    let path = dir.path().join("cap.trace");
    assert!(
        stopped.starts_with(&format!("OK {} 600 ", path.display())),
        "{stopped}"
    );
    assert!(
        ops.request_str("tap start ../x\r\n")
            .starts_with("CLIENT_ERROR")
    );

    let out = Command::new(switchyard_binary())
        .current_dir(dir.path())
        .args(["replay", "cap.trace", "--config", "switchyard.toml"])
        .output()
        .expect("run switchyard replay");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sets = 0;
    for line in report.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let ["set", key, place] = words.as_slice() else {
            continue;
        };
        sets += 1;
        let server = servers
            .iter()
            .find(|s| s.address() == *place)
            .unwrap_or_else(|| panic!("{line}: no such server"));
        assert_eq!(
            server.client().get(key).as_deref(),
            Some(&b"value"[..]),
            "{line}: the key is not where replay puts it"
        );
    }
    assert_eq!(sets, 300, "{report}");
    assert!(report.contains("requests 600\n"), "{report}");

    // Sent to another router, on a server of its own: every set stored, every get a hit.
    let other = Memcached::start();
    let second = switchyard_tests::router(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        other.spec()
    ));
    let out = Command::new(switchyard_binary())
        .current_dir(dir.path())
        .args(["replay", "cap.trace", "--router"])
        .arg(second.local_addrs()[0].to_string())
        .output()
        .expect("run switchyard replay --router");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("sent 600 requests to "), "{said}");
    assert!(
        said.contains("\nSTORED 300\n") && said.contains("\nhit 300\n"),
        "{said}"
    );
    let mut direct = other.client();
    assert_eq!(
        (direct.stat("cmd_set"), direct.stat("get_hits")),
        (Some(300), Some(300))
    );
    assert_eq!(direct.get("user:7").as_deref(), Some(&b"xxxxx"[..]));

    // From the command line, while a client sends.
    let tap = {
        let admin = admin.to_string();
        let cwd = dir.path().to_path_buf();
        std::thread::spawn(move || {
            Command::new(switchyard_binary())
                .current_dir(cwd)
                .args(["tap", "--admin", &admin, "cli.trace", "--seconds", "4"])
                .output()
                .expect("run switchyard tap")
        })
    };
    // Its file exists once the capture runs.
    switchyard_tests::ports::poll_until(std::time::Duration::from_secs(20), || {
        dir.path().join("cli.trace").exists().then_some(())
    })
    .expect("switchyard tap started a capture");
    for i in 0..50 {
        assert!(client.get(&format!("user:{i}")).is_some());
    }
    let out = tap.join().expect("tap thread");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.starts_with("50 requests,"), "{said}");
}
