//! Tenants under load: a noisy tenant (flooding past its rate, through a plugin that loops on
//! every call, sending 4 MiB values) leaves another tenant's replies and p99 alone.

use switchyard_tests::tls::{CA, SERVER_CERT, SERVER_KEY};
use switchyard_tests::{Certs, Client, Memcached, TestDir, connect};

fn loadgen() -> std::path::PathBuf {
    let router = switchyard_tests::switchyard_binary();
    let path = router.with_file_name("loadgen");
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p switchyard-loadgen` (scripts/test does)",
        path.display()
    );
    path
}

/// One number of loadgen's `--json` report: the first `"name":` after `within`.
fn field(json: &str, within: &str, name: &str) -> f64 {
    let from = json
        .find(within)
        .unwrap_or_else(|| panic!("no {within} in {json}"));
    let rest = &json[from..];
    let at = rest
        .find(&format!("\"{name}\":"))
        .unwrap_or_else(|| panic!("no {name} in {json}"));
    rest[at + name.len() + 3..]
        .split([',', '}'])
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} is no number in {json}"))
}

/// beta floods ten times past its rate limit, through a plugin that loops on every call (held to beta's `call_timeout_ms`), and
/// sends 4 MiB values; alpha, on the same router and pool, gets every reply right and its
/// p99 stays within 1.5 times its p99 alone (measured by the load generator at one open-loop
/// rate, in rounds alone and beside beta interleaved; the median of the rounds' ratios). beta's limits make its
/// connections wait (`over_limit = "wait"`): a flood refused request by request would still
/// cost the router a parse and a reply each, on the cores alpha shares; waiting, beta's
/// connections are read at beta's rates, and the rest waits in its sockets.
#[test]
fn a_noisy_tenant_leaves_another_ones_replies_and_latency_alone() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let dir = TestDir::new("tenants-noise");
    let certs = Certs::generate(&dir.path().join("tls"));
    dir.write("tenants.passwd", "beta:beta-secret\n");
    dir.write(
        "loop.wasm",
        switchyard_tests::wasm::looping_every_call_plugin(),
    );
    let text = format!(
        "[server]\nworkers = 2\nmax_value_bytes = 8388608\n\n\
         [auth]\ncredentials = \"tenants.passwd\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant_by = \"identity\"\n\
         [listeners.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant_by = \"auth\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"shared\"\n\n\
         [tenants.alpha]\nidentities = [\"alpha\"]\nroute = \"shared\"\n\n\
         [tenants.beta]\nusers = [\"beta\"]\nroute = \"looping\"\nrequests_per_second = 1000\n\
         bytes_per_second = 1048576\nmax_value_bytes = 1048576\nover_limit = \"wait\"\n\
         call_timeout_ms = 1\n\n\
         [routes.looping]\nplugin = \"loop.wasm\"\nchildren = [\"shared\"]\n\n\
         [pools.shared]\nservers = [\"{}\"]\n",
        certs.path(SERVER_CERT),
        certs.path(SERVER_KEY),
        certs.path(CA),
        server.spec()
    );
    let router = switchyard_tests::router_in(&dir, &text);
    let alpha_addr = router.local_addrs()[0];
    let alpha_run = |prefill: bool| {
        let mut command = std::process::Command::new(loadgen());
        command
            .arg("--server")
            .arg(alpha_addr.to_string())
            .args(["--tls-ca"])
            .arg(certs.path(CA))
            .arg("--tls-cert")
            .arg(certs.path(switchyard_tests::tls::CLIENT_CERT))
            .arg("--tls-key")
            .arg(certs.path(switchyard_tests::tls::CLIENT_KEY))
            .args([
                "--conns",
                "4",
                "--rate",
                "2000",
                "--duration",
                "3",
                "--warmup",
                "1",
            ])
            .args(["--keys", "1000", "--json"]);
        if prefill {
            command.arg("--prefill");
        }
        let out = command.output().expect("run loadgen");
        let json = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "loadgen: {json}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            field(&json, "\"latency_us\"", "p99"),
            field(&json, "\"errors\"", "total"),
            field(&json, "\"requests\"", "requests"),
            json,
        )
    };
    // The noise: a flood of gets (each admitted one runs the looping plugin), and 4 MiB sets,
    // made while `noisy` is on.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noisy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let beta_addr = router.local_addrs()[1];
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let pause = |ms| std::thread::sleep(std::time::Duration::from_millis(ms));
    let authenticated = move || {
        let mut b = Client::connect(beta_addr);
        assert_eq!(
            b.request(b"set auth 0 0 16\r\nbeta beta-secret\r\n"),
            b"STORED\r\n"
        );
        b
    };
    let flood = {
        let (stop, noisy) = (stop.clone(), noisy.clone());
        std::thread::spawn(move || {
            let mut b = authenticated();
            let batch: Vec<u8> = (0..100)
                .flat_map(|i| format!("get f{i}\r\n").into_bytes())
                .collect();
            let (mut sent, mut limited) = (0u64, 0u64);
            let mut busy = std::time::Duration::ZERO;
            while !stop.load(relaxed) {
                if !noisy.load(relaxed) {
                    pause(5);
                    continue;
                }
                let started = std::time::Instant::now();
                b.send(&batch);
                for reply in b.replies(100) {
                    limited += u64::from(!reply.starts_with(b"SERVER_ERROR plugin"));
                }
                busy += started.elapsed();
                sent += 100;
                // About 10,000 a second: ten times beta's rate, without taking the cores the
                // test shares with everything else.
                pause(10);
            }
            (sent, limited, busy)
        })
    };
    let big = {
        let (stop, noisy) = (stop.clone(), noisy.clone());
        std::thread::spawn(move || {
            let mut b = authenticated();
            let mut set = format!("set big 0 0 {}\r\n", 4 << 20).into_bytes();
            set.resize(set.len() + (4 << 20), b'v');
            set.extend_from_slice(b"\r\n");
            let mut refused = 0u64;
            while !stop.load(relaxed) {
                if !noisy.load(relaxed) {
                    pause(5);
                    continue;
                }
                let reply = b.request(&set);
                refused += u64::from(reply.starts_with(b"SERVER_ERROR tenant beta: a value"));
            }
            refused
        })
    };
    // Rounds of alpha alone and alpha beside beta, interleaved: this machine's own noise
    // moves a p99 more than beta does.
    let (mut alone, mut beside) = (Vec::new(), Vec::new());
    for round in 0..7 {
        let (p99, errors, requests, report) = alpha_run(round == 0);
        assert_eq!(errors, 0.0, "{report}");
        alone.push(p99);
        noisy.store(true, relaxed);
        // The looping plugin trips its breaker at once, long before anyone would measure.
        pause(300);
        let (p99, errors, _, report) = alpha_run(false);
        noisy.store(false, relaxed);
        assert_eq!(errors, 0.0, "alpha got errors beside beta: {report}");
        beside.push(p99);
        println!(
            "round {round}: alpha p99 {} µs alone, {p99} µs beside beta ({requests} requests each)",
            alone[round]
        );
    }
    stop.store(true, relaxed);
    let (sent, unexpected, busy) = flood.join().expect("the flood");
    let refused = big.join().expect("the big values");
    let rate = sent as f64 / busy.as_secs_f64();
    println!("beta's flood got {sent} replies at {rate:.0}/s; {refused} 4 MiB sets were refused");
    // Every get went through the looping plugin (its breaker open: `on_fault`'s error).
    assert_eq!(
        unexpected, 0,
        "a flood reply that is not the plugin's fault"
    );
    assert!(refused > 0, "no 4 MiB value was sent");
    // Read at beta's rates (the 4 MiB sets take its bytes), not at the flood's.
    assert!(
        rate < 1500.0,
        "beta was served at {rate:.0} requests a second"
    );
    let shown = connect(&router, 2).stats_group("tenants").0;
    let throttled: u64 = shown
        .get("beta:throttled")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(throttled > 0, "beta never waited: {shown:?}");
    // Each round's two measurements are seconds apart: their ratio cancels the machine's
    // slower drifts, and the median of the ratios its spikes.
    let mut ratios: Vec<f64> = alone.iter().zip(&beside).map(|(a, b)| b / a).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    assert!(
        median <= 1.5,
        "alpha's p99 beside beta was {median:.2} times its p99 alone (median of {ratios:?})"
    );
}
