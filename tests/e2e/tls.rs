//! TLS on both sides of the router, against real memcached (`-Z`) and certificates the tests
//! make (`switchyard_tests::tls`): set/get through a TLS listener to a TLS pool (TLS 1.3 and
//! 1.2, a client certificate to a memcached that requires one); a pool whose server does not
//! speak what the pool expects, or whose certificate has the wrong CA or name, fails its
//! requests with `SERVER_ERROR` naming the backend and one log line saying why; a mutual-TLS
//! listener serves a client with a good certificate, routes it by its identity (the `caller`
//! plugin), and refuses one without a certificate, from another CA or expired, each with one
//! log line and one count, leaving other connections alone; a reload (SIGHUP or the watcher)
//! presents a rotated certificate to new connections while old ones keep their session, and a
//! missing key file refuses the reload; garbage, a plaintext command or a bogus handshake on
//! a TLS port, and a TLS client on a plaintext port, are closed promptly and counted; and
//! `configs/tls.toml` does what its header says.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use switchyard_tests::client::Ending;
use switchyard_tests::ports::{free_port, loopback, poll_until};
use switchyard_tests::process::{RouterProcess, Signal};
use switchyard_tests::tls::{Authority, CA, CLIENT_CERT, CLIENT_KEY, SERVER_CERT, SERVER_KEY};
use switchyard_tests::{Certs, Client, Config, Memcached, Router, TestDir, TlsOptions, show};

/// How long a test waits for what the router does at once: a refused handshake, a closed
/// connection, a log line, a reload.
const PROMPTLY: Duration = Duration::from_secs(10);

/// `[listeners.tls]` for the listener just above it: `certs`' server certificate, and with
/// `mutual` a client certificate signed by `certs`' CA required.
fn listener_tls(certs: &Certs, mutual: bool) -> String {
    let mut table = format!(
        "[listeners.tls]\ncert = {:?}\nkey = {:?}\n",
        certs.path(SERVER_CERT),
        certs.path(SERVER_KEY)
    );
    if mutual {
        table.push_str(&format!("client_ca = {:?}\n", certs.path(CA)));
    }
    table
}

/// `[pools.<pool>.tls]` trusting the CA bundle `ca`, with `extra` keys.
fn pool_tls(pool: &str, ca: &Path, extra: &str) -> String {
    format!("[pools.{pool}.tls]\nca = {ca:?}\n{extra}\n")
}

/// `[pools.<pool>]` of one server, with short timeouts.
fn pool(name: &str, server: &Memcached) -> String {
    format!(
        "[pools.{name}]\nservers = [\"{}\"]\ntimeout_ms = 1000\nconnect_timeout_ms = 500\n",
        server.spec()
    )
}

/// A `[[listeners]]` entry at `address` serving `route`, then `extra` (its `[listeners.tls]`).
fn listener(address: &str, route: &str, extra: &str) -> String {
    format!("[[listeners]]\naddress = \"{address}\"\nroute = \"{route}\"\n{extra}\n")
}

/// `[server]` with two workers, the watcher on or off.
fn server(watch: bool) -> String {
    format!("[server]\nworkers = 2\nwatch = {watch}\n\n")
}

/// A router process serving `route` on a plaintext listener and a TLS one (`tls_table`, its
/// `[listeners.tls]`), with `rest` (pools and routes); returns it and the TLS listener's
/// address ([`RouterProcess::addr`] is the plaintext one). The plaintext listener comes first:
/// it is the one [`RouterProcess::start`] waits for by connecting and closing at once, which
/// on a TLS port would be a handshake that never started.
fn tls_router(
    name: &str,
    watch: bool,
    route: &str,
    tls_table: &str,
    rest: &str,
) -> (RouterProcess, SocketAddr) {
    let tls = loopback(free_port());
    let router = RouterProcess::start(name, |listen| {
        format!(
            "{}{}{}{rest}",
            server(watch),
            listener(listen, route, ""),
            listener(&tls.to_string(), route, tls_table),
        )
    });
    (router, tls)
}

/// Lines of the router's log that contain `needle`.
fn log_lines(router: &RouterProcess, needle: &str) -> Vec<String> {
    router
        .log()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Waits until the log has `n` lines containing `needle` and returns them; fails if it never
/// has that many, or has more.
fn wait_log_lines(router: &RouterProcess, needle: &str, n: usize) -> Vec<String> {
    let reached = poll_until(PROMPTLY, || {
        let lines = log_lines(router, needle);
        (lines.len() >= n).then_some(lines)
    });
    let lines = reached.unwrap_or_else(|| {
        panic!(
            "fewer than {n} log lines with {needle:?} after {PROMPTLY:?}:\n{}",
            router.log()
        )
    });
    assert_eq!(
        lines.len(),
        n,
        "log lines with {needle:?}:\n{}",
        lines.join("\n")
    );
    lines
}

/// `STAT name` of the router whose plaintext listener is `addr`, asked on a connection of its
/// own; fails if it has none.
fn stat(addr: SocketAddr, name: &str) -> u64 {
    Client::connect(addr)
        .stat(name)
        .unwrap_or_else(|| panic!("no STAT {name} from {addr}"))
}

/// Waits until `STAT name` passes `done`; returns it.
fn wait_stat(addr: SocketAddr, name: &str, done: impl Fn(u64) -> bool) -> u64 {
    poll_until(PROMPTLY, || Some(stat(addr, name)).filter(|v| done(*v)))
        .unwrap_or_else(|| panic!("STAT {name} stayed at {}", stat(addr, name)))
}

/// Connects to `addr` with `options` and sends `get k`. `Ok(why)` if the router refused: the
/// handshake failed, or the connection closed with nothing sent back (a client certificate
/// refused after a TLS 1.3 handshake finished on the client's side). `Err(reply)` if it
/// answered.
fn refusal(options: &TlsOptions, addr: SocketAddr) -> Result<String, String> {
    let mut client = match options.connect(addr) {
        Err(why) => return Ok(why),
        Ok(client) => client,
    };
    let _ = client.try_send(b"get k\r\n");
    match client.read_through(b"\r\n") {
        (bytes, Ending::Closed) if bytes.is_empty() => Ok(client
            .tls_error()
            .unwrap_or_else(|| "closed after the handshake".to_owned())),
        (bytes, ending) => Err(format!("{ending:?}: {}", show(&bytes))),
    }
}

/// Sends `request` over a plaintext connection to `addr` and returns the one reply.
fn plain_request(addr: SocketAddr, request: &str) -> String {
    Client::connect(addr).request_str(request)
}

#[test]
fn set_and_get_through_a_tls_listener_to_a_tls_pool() {
    let dir = TestDir::new("tls-both-sides");
    let certs = Certs::generate(dir.path());
    let backend = Memcached::start_tls(&certs);
    let (router, tls) = tls_router(
        "tls-both-sides",
        false,
        "main",
        &listener_tls(&certs, false),
        &format!(
            "{}{}",
            pool("main", &backend),
            pool_tls("main", &certs.path(CA), "")
        ),
    );
    let plain = router.addr();

    let mut client = certs
        .trust()
        .connect(tls)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    assert_eq!(client.server_certificate(), certs.server.der());
    client.set("k", b"v");
    assert_eq!(client.get("k"), Some(b"v".to_vec()));
    assert_eq!(
        backend.holds(&["k".to_owned()]),
        [true],
        "on the TLS memcached"
    );

    // Values over many TLS records each way, pipelined.
    let long = vec![b'x'; 100 * 1024];
    let keys: Vec<String> = (0..20).map(|i| format!("long-{i}")).collect();
    switchyard_tests::store_all(&mut client, &keys, &long);
    for key in &keys {
        assert_eq!(client.get(key).as_deref(), Some(long.as_slice()), "{key}");
    }

    let mut tls12 = certs
        .trust()
        .tls12_only()
        .connect(tls)
        .unwrap_or_else(|e| panic!("a TLS 1.2 client: {e}"));
    assert_eq!(
        tls12.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(tls12.get("k"), Some(b"v".to_vec()));
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    // The plaintext listener beside it serves the same pool.
    assert_eq!(
        plain_request(plain, "get k\r\n"),
        "VALUE k 0 1\r\nv\r\nEND\r\n"
    );
    assert!(stat(plain, "tls_connections") >= 2);
    assert_eq!(stat(plain, "tls_handshake_errors"), 0);
    let log = router.log();
    assert!(
        !log.contains("TLS handshake failed"),
        "a handshake failed:\n{log}"
    );
}

#[test]
fn a_pool_with_a_client_certificate_reaches_a_memcached_that_requires_one() {
    let dir = TestDir::new("tls-pool-mtls");
    let certs = Certs::generate(dir.path());
    let (with_cert, without_cert) = (
        Memcached::start_tls_verifying_clients(&certs),
        Memcached::start_tls_verifying_clients(&certs),
    );
    let client_keys = format!(
        "cert = {:?}\nkey = {:?}",
        certs.path(CLIENT_CERT),
        certs.path(CLIENT_KEY)
    );
    let other = loopback(free_port());
    let router = RouterProcess::start("tls-pool-mtls", |listen| {
        format!(
            "{}{}{}{}{}{}{}",
            server(false),
            listener(listen, "with_cert", ""),
            listener(&other.to_string(), "without_cert", ""),
            pool("with_cert", &with_cert),
            pool_tls("with_cert", &certs.path(CA), &client_keys),
            pool("without_cert", &without_cert),
            pool_tls("without_cert", &certs.path(CA), ""),
        )
    });

    let mut client = Client::connect(router.addr());
    client.set("k", b"v");
    assert_eq!(client.get("k"), Some(b"v".to_vec()));
    assert_eq!(with_cert.holds(&["k".to_owned()]), [true]);
    // Long values stream over connections of their own, each a new handshake that offers to
    // resume the first session. memcached 1.6 requiring client certificates (without
    // `ssl_session_cache`) refuses resumed handshakes; the router falls back to full ones.
    for i in 0..3 {
        client.set(&format!("long:{i}"), &vec![b'l'; 300 * 1024]);
    }
    assert_eq!(
        client.get("long:2").map(|v| v.len()),
        Some(300 * 1024),
        "{}",
        router.log()
    );
    assert!(
        router.log().contains("without session resumption"),
        "the fallback to full handshakes was not logged: {}",
        router.log()
    );

    let reply = plain_request(other, "get k\r\n");
    let expected = format!("SERVER_ERROR backend {} ", without_cert.address());
    assert!(
        reply.starts_with(&expected),
        "a pool without a client certificate, to a memcached requiring one: {reply:?}\n{}",
        router.log()
    );
}

#[test]
fn a_tls_pool_whose_server_speaks_plaintext_fails_its_requests_naming_the_backend() {
    let dir = TestDir::new("tls-pool-plain-server");
    let certs = Certs::generate(dir.path());
    let backend = Memcached::start();
    let address = backend.address();
    let router = RouterProcess::start("tls-pool-plain-server", |listen| {
        format!(
            "{}{}{}{}",
            server(false),
            listener(listen, "main", ""),
            pool("main", &backend),
            pool_tls("main", &certs.path(CA), ""),
        )
    });

    let started = Instant::now();
    let reply = plain_request(router.addr(), "get k\r\n");
    let expected = format!("SERVER_ERROR backend {address} TLS handshake failed");
    assert!(
        reply.starts_with(&expected),
        "want {expected:?}..., got {reply:?}\n{}",
        router.log()
    );
    println!("{reply:?} after {:?}", started.elapsed());
    let lines = wait_log_lines(&router, "backend TLS handshake failed", 1);
    assert!(lines[0].contains(&address), "{}", lines[0]);
    let errors = Client::connect(router.addr()).backend_stat(&address, "tls_handshake_errors");
    assert!(
        errors
            .as_deref()
            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n >= 1)),
        "stats backends {address}:tls_handshake_errors is {errors:?}"
    );
}

#[test]
fn a_plaintext_pool_whose_server_speaks_tls_fails_its_requests_naming_the_backend() {
    let dir = TestDir::new("plain-pool-tls-server");
    let certs = Certs::generate(dir.path());
    let backend = Memcached::start_tls(&certs);
    let router = RouterProcess::start("plain-pool-tls-server", |listen| {
        format!(
            "{}{}{}",
            server(false),
            listener(listen, "main", ""),
            pool("main", &backend),
        )
    });
    let reply = plain_request(router.addr(), "get k\r\n");
    let expected = format!("SERVER_ERROR backend {} ", backend.address());
    assert!(
        reply.starts_with(&expected),
        "want {expected:?}..., got {reply:?}\n{}",
        router.log()
    );
}

#[test]
fn a_backend_certificate_from_another_ca_or_for_another_name_fails_with_the_reason() {
    let dir = TestDir::new("tls-backend-untrusted");
    let certs = Certs::generate(&dir.path().join("good"));
    let other = Certs::generate(&dir.path().join("other"));
    let (untrusted, misnamed) = (Memcached::start_tls(&certs), Memcached::start_tls(&certs));
    let second = loopback(free_port());
    let router = RouterProcess::start("tls-backend-untrusted", |listen| {
        format!(
            "{}{}{}{}{}{}{}",
            server(false),
            listener(listen, "untrusted", ""),
            listener(&second.to_string(), "misnamed", ""),
            pool("untrusted", &untrusted),
            pool_tls("untrusted", &other.path(CA), ""),
            pool("misnamed", &misnamed),
            pool_tls(
                "misnamed",
                &certs.path(CA),
                "server_name = \"elsewhere.example\""
            ),
        )
    });

    let cases = [
        (router.addr(), &untrusted, "issuer"),
        (second, &misnamed, "name"),
    ];
    for (n, (addr, backend, why)) in cases.into_iter().enumerate() {
        let address = backend.address();
        let reply = plain_request(addr, "get k\r\n");
        let expected = format!("SERVER_ERROR backend {address} TLS handshake failed: ");
        assert!(
            reply.starts_with(&expected) && reply.to_lowercase().contains(why),
            "want {expected:?}... saying {why:?}, got {reply:?}\n{}",
            router.log()
        );
        let lines = wait_log_lines(&router, "backend TLS handshake failed", n + 1);
        let line = &lines[n];
        assert!(
            line.contains(&address) && line.to_lowercase().contains(why),
            "the log line names neither {address} nor why ({why}): {line}"
        );
    }
}

/// Pools `alpha_pool` and `others`, each one plain memcached, under route `by_caller` (the
/// `caller` plugin): identity `alpha` to `alpha_pool`, `default` (if any) for the rest; a
/// plaintext listener and a mutual-TLS one (whose address comes back with the router).
fn caller_router(
    name: &str,
    certs: &Certs,
    alpha: &Memcached,
    others: &Memcached,
    default: &str,
) -> (RouterProcess, SocketAddr) {
    tls_router(
        name,
        false,
        "by_caller",
        &listener_tls(certs, true),
        &format!(
            "{}{}\n[routes.by_caller]\nplugin = \"caller\"\n\
             children = [\"alpha_pool\", \"others\"]\n\
             config = {{ identities = {{ alpha = \"alpha_pool\" }}{default} }}\n",
            pool("alpha_pool", alpha),
            pool("others", others),
        ),
    )
}

#[test]
fn a_mutual_tls_listener_serves_good_certificates_by_identity_and_refuses_the_rest() {
    let dir = TestDir::new("mtls-listener");
    let certs = Certs::generate(dir.path());
    let (alpha, others) = (Memcached::start(), Memcached::start());
    let (router, mutual) = caller_router(
        "mtls-listener",
        &certs,
        &alpha,
        &others,
        ", default = \"others\"",
    );
    let on = |server: &Memcached, key: &str| server.holds(&[key.to_owned()])[0];

    // Identity `alpha` (the client certificate's CN) has a pool of its own.
    let plain = router.addr();
    let mut good = certs
        .as_client()
        .connect(mutual)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    good.set("from-alpha", b"a");
    assert!(on(&alpha, "from-alpha") && !on(&others, "from-alpha"));
    // Another name from the same CA, and no identity at all, go to the default.
    let beta = certs.ca.client("beta");
    let mut client = certs
        .trust()
        .with_identity(&beta)
        .connect(mutual)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    client.set("from-beta", b"b");
    assert!(on(&others, "from-beta") && !on(&alpha, "from-beta"));
    Client::connect(plain).set("from-plain", b"p");
    assert!(on(&others, "from-plain") && !on(&alpha, "from-plain"));
    // `stats tls` names each identity with its connections: alpha's and beta's are open.
    let mut stats = Client::connect(plain);
    stats.send(b"stats tls\r\n");
    let by_identity = String::from_utf8_lossy(&stats.read_until(b"END\r\n")).into_owned();
    for id in ["alpha", "beta"] {
        assert!(
            by_identity.contains(&format!("STAT identity:{id}:curr_connections 1\r\n"))
                && by_identity.contains(&format!("STAT identity:{id}:total_connections 1\r\n")),
            "stats tls for {id}: {by_identity}"
        );
    }

    let foreign = Authority::new("another CA").client("alpha");
    let expired = certs.ca.expired_client("alpha");
    let refused = [
        ("no client certificate", certs.trust(), "certificate"),
        (
            "a certificate from another CA",
            certs.trust().with_identity(&foreign),
            "issuer",
        ),
        (
            "an expired certificate",
            certs.trust().with_identity(&expired),
            "expired",
        ),
    ];
    for (n, (what, options, why)) in refused.into_iter().enumerate() {
        let started = Instant::now();
        match refusal(&options, mutual) {
            Ok(reason) => println!("{what}: refused ({reason}) in {:?}", started.elapsed()),
            Err(reply) => panic!("{what}: served, {reply}\n{}", router.log()),
        }
        let lines = wait_log_lines(&router, "TLS handshake failed", n + 1);
        let line = &lines[n];
        assert!(
            line.contains("127.0.0.1:") && line.to_lowercase().contains(why),
            "{what}: the log line names neither the peer nor why ({why}): {line}"
        );
        // The good client's connection is untouched.
        assert_eq!(good.get("from-alpha"), Some(b"a".to_vec()), "after {what}");
    }
    assert_eq!(stat(plain, "tls_handshake_errors"), 3);
    assert!(stat(plain, "tls_connections") >= 2);
}

#[test]
fn without_a_default_the_caller_plugin_refuses_callers_it_does_not_list() {
    let dir = TestDir::new("caller-no-default");
    let certs = Certs::generate(dir.path());
    let (alpha, others) = (Memcached::start(), Memcached::start());
    let (router, mutual) = caller_router("caller-no-default", &certs, &alpha, &others, "");
    let mut good = certs
        .as_client()
        .connect(mutual)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    good.set("k", b"v");
    assert!(alpha.holds(&["k".to_owned()])[0]);

    let mut beta = certs
        .trust()
        .with_identity(&certs.ca.client("beta"))
        .connect(mutual)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    assert_eq!(
        beta.request_str("get k\r\n"),
        "SERVER_ERROR no route for caller\r\n"
    );
    assert_eq!(
        plain_request(router.addr(), "get k\r\n"),
        "SERVER_ERROR no route for caller\r\n",
        "no identity at all"
    );
}

#[test]
fn sighup_rotates_the_certificate_for_new_connections_and_a_missing_key_is_refused() {
    let dir = TestDir::new("tls-rotate");
    let mut certs = Certs::generate(dir.path());
    let backend = Memcached::start();
    let (router, tls) = tls_router(
        "tls-rotate",
        false,
        "main",
        &listener_tls(&certs, false),
        &pool("main", &backend),
    );
    let plain = router.addr();
    router.wait_until_started();
    let first = certs.server.der().clone();
    let mut old = certs
        .trust()
        .connect(tls)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    assert_eq!(old.server_certificate(), &first);
    old.set("k", b"v");
    let generation = stat(plain, "generation");

    let rotated = certs.rotate_server().der().clone();
    router.signal(Signal::HUP);
    let published = wait_stat(plain, "generation", |g| g > generation);
    let mut new = certs
        .trust()
        .connect(tls)
        .unwrap_or_else(|e| panic!("{e}\n{}", router.log()));
    assert_eq!(
        new.server_certificate(),
        &rotated,
        "a new connection after the reload"
    );
    assert_eq!(new.get("k"), Some(b"v".to_vec()));
    // The connection opened before keeps its session.
    assert_eq!(old.get("k"), Some(b"v".to_vec()));
    old.set("k2", b"w");

    // A missing key file refuses the reload; the running generation goes on serving.
    std::fs::remove_file(certs.path(SERVER_KEY)).expect("remove the key file");
    let failures = stat(plain, "reload_failures");
    router.signal(Signal::HUP);
    wait_stat(plain, "reload_failures", |f| f > failures);
    assert_eq!(stat(plain, "generation"), published);
    let refused: Vec<String> = log_lines(&router, "reload refused");
    assert!(
        refused.iter().any(|l| l.contains(SERVER_KEY)),
        "no refused reload naming {SERVER_KEY}:\n{}",
        router.log()
    );
    let mut after = certs
        .trust()
        .connect(tls)
        .unwrap_or_else(|e| panic!("after the refused reload: {e}\n{}", router.log()));
    assert_eq!(after.server_certificate(), &rotated);
    assert_eq!(after.get("k2"), Some(b"w".to_vec()));
    assert_eq!(old.get("k"), Some(b"v".to_vec()));
    assert_eq!(new.get("k2"), Some(b"w".to_vec()));

    // The key back: the next reload publishes.
    certs.server.write(dir.path(), "server");
    router.signal(Signal::HUP);
    wait_stat(plain, "generation", |g| g > published);
    let mut last = certs.trust().connect(tls).expect("after the fix");
    assert_eq!(last.get("k"), Some(b"v".to_vec()));
}

#[test]
fn the_watcher_notices_a_rotated_certificate() {
    let dir = TestDir::new("tls-watch");
    let mut certs = Certs::generate(dir.path());
    let backend = Memcached::start();
    let (router, tls) = tls_router(
        "tls-watch",
        true,
        "main",
        &listener_tls(&certs, false),
        &pool("main", &backend),
    );
    let mut old = certs.trust().connect(tls).expect("connect");
    old.set("k", b"v");
    let rotated = certs.rotate_server().der().clone();
    let presented = poll_until(PROMPTLY, || {
        let client = certs.trust().connect(tls).ok()?;
        (client.server_certificate() == &rotated).then_some(client)
    });
    let mut new = presented.unwrap_or_else(|| {
        panic!(
            "new connections do not present the rotated certificate after {PROMPTLY:?}:\n{}",
            router.log()
        )
    });
    assert_eq!(new.get("k"), Some(b"v".to_vec()));
    assert_eq!(old.get("k"), Some(b"v".to_vec()));
}

#[test]
fn garbage_and_plaintext_on_a_tls_port_are_closed_and_the_router_serves_on() {
    let dir = TestDir::new("tls-garbage");
    let certs = Certs::generate(dir.path());
    let backend = Memcached::start();
    let (router, tls) = tls_router(
        "tls-garbage",
        false,
        "main",
        &listener_tls(&certs, true),
        &pool("main", &backend),
    );
    let mut good = certs.as_client().connect(tls).expect("connect");
    good.set("k", b"v");
    // A connect that sends nothing (a load balancer's TCP health check) is no TLS client: not
    // a failed handshake, neither counted nor logged as one (the count below says so).
    drop(std::net::TcpStream::connect(tls).expect("a bare connect"));

    let cases: [(&str, &[u8]); 3] = [
        (
            "garbage",
            b"\x00\x01\x02\x03 not TLS at all \xff\xfe\xfd\r\n",
        ),
        ("a plaintext command", b"get foo\r\n"),
        // A complete handshake record whose message is nonsense.
        (
            "a bogus handshake",
            b"\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff",
        ),
    ];
    for (n, (what, bytes)) in cases.into_iter().enumerate() {
        let mut client = Client::connect(tls).with_deadline(PROMPTLY);
        let started = Instant::now();
        let _ = client.try_send(bytes);
        // A memcached reply would end in CRLF; a TLS alert (0x15 ...) has none.
        let (got, ending) = client.read_through(b"\r\n");
        assert_eq!(
            ending,
            Ending::Closed,
            "{what}: the connection was not closed within {PROMPTLY:?}; got {}",
            show(&got)
        );
        assert!(
            got.is_empty() || got[0] == 0x15,
            "{what}: answered with something other than a TLS alert: {}",
            show(&got)
        );
        println!("{what}: closed after {:?}", started.elapsed());
        let lines = wait_log_lines(&router, "TLS handshake failed", n + 1);
        assert!(lines[n].contains("127.0.0.1:"), "{what}: {}", lines[n]);
        assert_eq!(good.get("k"), Some(b"v".to_vec()), "after {what}");
    }
    assert_eq!(stat(router.addr(), "tls_handshake_errors"), 3);
    let mut after = certs.as_client().connect(tls).expect("connect");
    assert_eq!(after.get("k"), Some(b"v".to_vec()));
}

#[test]
fn a_tls_client_on_a_plaintext_listener_is_closed_and_counted() {
    let dir = TestDir::new("tls-on-plain");
    let certs = Certs::generate(dir.path());
    let backend = Memcached::start();
    let router = RouterProcess::start("tls-on-plain", |listen| {
        format!(
            "{}{}{}",
            server(false),
            listener(listen, "main", ""),
            pool("main", &backend),
        )
    });
    let started = Instant::now();
    let err = match certs.trust().connect(router.addr()) {
        Err(e) => e,
        Ok(client) => panic!(
            "a TLS handshake with a plaintext listener succeeded ({:?})",
            client.protocol_version()
        ),
    };
    println!("{err} after {:?}", started.elapsed());
    let lines = wait_log_lines(&router, "TLS client on a plaintext listener", 1);
    assert!(lines[0].contains("127.0.0.1:"), "{}", lines[0]);
    assert_eq!(stat(router.addr(), "tls_on_plain_listener"), 1);
    let mut client = Client::connect(router.addr());
    client.set("k", b"v");
    assert_eq!(client.get("k"), Some(b"v".to_vec()));
}

/// `configs/tls.toml` as written, with its certificates under `tls/` beside it and its
/// servers on test memcached: a client with the `alpha` certificate reaches alpha's TLS pool,
/// the plaintext listener the shared pool, and a client without a certificate is refused.
#[test]
fn the_tls_example_config_routes_alpha_to_its_tls_pool() {
    let text = switchyard_tests::example::example_text("tls");
    let dir = TestDir::new("tls-example");
    let certs = Certs::generate(&dir.path().join("tls"));
    let (secure, shared) = (Memcached::start_tls(&certs), Memcached::start());
    let mut edited = text.clone();
    for (from, to) in [
        ("127.0.0.1:11411", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:11311", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:21411", secure.address()),
        ("127.0.0.1:21412", shared.address()),
    ] {
        assert!(text.contains(from), "configs/tls.toml names no {from}");
        edited = edited.replace(from, &to);
    }
    let path = dir.write("switchyard.toml", edited);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("configs/tls.toml: {e}"));
    let router = Router::start(config).unwrap_or_else(|e| panic!("configs/tls.toml: {e}"));
    let addrs = router.local_addrs();
    let (mutual, plain) = (addrs[0], addrs[1]);

    let mut alpha = certs.as_client().connect(mutual).expect("the alpha client");
    alpha.set("a", b"x");
    assert_eq!(secure.holds(&["a".to_owned()]), [true], "on the TLS pool");
    assert_eq!(shared.holds(&["a".to_owned()]), [false]);
    let mut anonymous = Client::connect(plain);
    assert_eq!(anonymous.get("a"), None, "the plaintext listener's pool");
    anonymous.set("b", b"y");
    assert_eq!(shared.holds(&["b".to_owned()]), [true]);
    assert!(
        refusal(&certs.trust(), mutual).is_ok(),
        "a client without a certificate was served"
    );
}
