//! Tenants against real memcached: connections recognised by their TLS client identity, by
//! memcached's ASCII authentication and by their listener; each tenant's keys in its own
//! namespace on a shared pool (no crafted key crosses over: prefixes, base64 meta keys,
//! multi-gets, keys near 250 bytes); a read-only tenant's writes refused before a server sees
//! them, as are keys outside a tenant's `read_prefixes`/`write_prefixes`; a tenant over
//! its request rate, its byte rate, its `max_value_bytes` or its `max_connections` refused
//! while another carries on; unauthenticated clients, wrong passwords and unknown identities
//! refused cleanly; a question about the router beside keys refused; `stats tenants`.

use std::collections::BTreeMap;

use switchyard_tests::tls::{CA, SERVER_CERT, SERVER_KEY};
use switchyard_tests::{Certs, Client, Memcached, Router, TestDir, connect};

/// The gateway: listener 0 is mutual TLS (tenant by identity: `alpha`), listener 1 ASCII
/// authentication (`beta`, password `beta-secret`), listener 2 the read-only tenant `reader`,
/// listener 3 the operators' (no tenant: the shared pool as it is, and `stats`).
/// `alpha` and `reader` go straight to the shared pool, `beta` through its own prefix route.
fn gateway(dir: &TestDir, certs: &Certs, server: &Memcached, beta_rate: u64) -> Router {
    dir.write("tenants.passwd", "beta:beta-secret\nother:other-secret\n");
    let text = format!(
        "[server]\nworkers = 2\n\n\
         [auth]\ncredentials = \"tenants.passwd\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant_by = \"identity\"\n\
         [listeners.tls]\ncert = {:?}\nkey = {:?}\nclient_ca = {:?}\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant_by = \"auth\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"reader\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"shared\"\n\n\
         [tenants.alpha]\nidentities = [\"alpha\"]\nroute = \"shared\"\n\n\
         [tenants.beta]\nusers = [\"beta\"]\nroute = \"beta_route\"\n\
         requests_per_second = {beta_rate}\n\n\
         [tenants.reader]\nroute = \"shared\"\ncommands = [\"read\"]\n\n\
         [routes.beta_route]\nplugin = \"prefix\"\nchildren = [\"shared\"]\n\
         config = {{ default = \"shared\", prefixes = {{ \"beta:hot:\" = \"shared\" }} }}\n\n\
         [pools.shared]\nservers = [\"{}\"]\n",
        certs.path(SERVER_CERT),
        certs.path(SERVER_KEY),
        certs.path(CA),
        server.spec()
    );
    switchyard_tests::router_in(dir, &text)
}

fn alpha(router: &Router, certs: &Certs) -> Client {
    certs
        .as_client()
        .connect(router.local_addrs()[0])
        .unwrap_or_else(|e| panic!("alpha's mutual TLS: {e}"))
        .into_client()
}

fn beta(router: &Router) -> Client {
    let mut client = connect(router, 1);
    assert_eq!(
        client.request(b"set auth 0 0 16\r\nbeta beta-secret\r\n"),
        b"STORED\r\n"
    );
    client
}

fn text(reply: Vec<u8>) -> String {
    String::from_utf8_lossy(&reply).into_owned()
}

/// `stats <group>` as name → value.
fn group(client: &mut Client, group: &str) -> BTreeMap<String, String> {
    client.stats_group(group).0
}

#[test]
fn tenants_share_a_pool_but_never_each_others_keys() {
    let server = Memcached::start();
    let dir = TestDir::new("tenants-keys");
    let certs = Certs::generate(&dir.path().join("tls"));
    let router = gateway(&dir, &certs, &server, 100_000);
    let (mut a, mut b) = (alpha(&router, &certs), beta(&router));

    // The same key name, each its own value.
    a.set("k", b"from-alpha");
    b.set("k", b"from-beta");
    assert_eq!(a.get("k").as_deref(), Some(&b"from-alpha"[..]));
    assert_eq!(b.get("k").as_deref(), Some(&b"from-beta"[..]));
    // On the server, each under its namespace; nothing under the bare name.
    let mut direct = server.client();
    assert_eq!(direct.get("alpha:k").as_deref(), Some(&b"from-alpha"[..]));
    assert_eq!(direct.get("beta:k").as_deref(), Some(&b"from-beta"[..]));
    assert_eq!(direct.get("k"), None);

    // Naming the other's namespace reaches one's own: `beta:alpha:k`.
    assert_eq!(b.get("alpha:k"), None);
    assert_eq!(text(b.request(b"delete alpha:k\r\n")), "NOT_FOUND\r\n");
    assert_eq!(text(b.request(b"touch alpha:k 100\r\n")), "NOT_FOUND\r\n");
    assert_eq!(text(b.request(b"incr alpha:k 1\r\n")), "NOT_FOUND\r\n");
    assert_eq!(direct.get("alpha:k").as_deref(), Some(&b"from-alpha"[..]));
    assert_eq!(direct.get("beta:alpha:k"), None);

    // A multi-get comes back with the client's keys, its own values only.
    a.set("m", b"am");
    assert_eq!(
        text(a.request(b"get k beta:k m\r\n")),
        "VALUE k 0 10\r\nfrom-alpha\r\nVALUE m 0 2\r\nam\r\nEND\r\n"
    );
    assert_eq!(
        text(b.request(b"gets k alpha:k m\r\n"))
            .lines()
            .filter(|l| l.starts_with("VALUE"))
            .map(|l| l.split(' ').nth(1).unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
        ["k"]
    );

    // Meta commands: the `k` flag and `me` show the client's key; a base64 key is namespaced
    // by its decoded bytes ("k" is `aw==`).
    a.send(b"mg k v k\r\n");
    assert_eq!(
        text(a.read_until(b"from-alpha\r\n")),
        "VA 10 kk\r\nfrom-alpha\r\n"
    );
    b.send(b"mg aw== b v\r\n");
    assert_eq!(
        text(b.read_until(b"from-beta\r\n")),
        "VA 9\r\nfrom-beta\r\n"
    );
    assert_eq!(text(b.request(b"ms bg== 2 b\r\nnb\r\n")), "HD\r\n");
    assert_eq!(direct.get("beta:n").as_deref(), Some(&b"nb"[..]));
    let me = text(a.request(b"me k\r\n"));
    assert!(me.starts_with("ME k "), "{me}");
    // memcached shows the key of an item stored with `b` in base64, asked with `b` or not: the
    // client sees its own key so encoded (`bg==`), never the namespaced one (`YmV0YTpu`).
    b.send(b"mg bg== b k v\r\n");
    let shown = text(b.read_until(b"nb\r\n"));
    assert!(
        shown.starts_with("VA 2 ") && shown.contains(" kbg== "),
        "{shown}"
    );
    b.send(b"mg n k v\r\n");
    let shown = text(b.read_until(b"nb\r\n"));
    assert!(
        shown.starts_with("VA 2 ") && shown.contains(" kbg== "),
        "{shown}"
    );
    let shown = text(b.request(b"mg bm8= b k\r\n"));
    assert!(
        shown.starts_with("EN") && !shown.contains("YmV0YT"),
        "{shown}"
    );
    let me = text(b.request(b"me bg== b\r\n"));
    assert!(me.starts_with("ME bg== "), "{me}");

    // A base64 key is sent on in base64, and memcached's 250 bytes hold its encoding: with
    // the namespace, 186 decoded bytes at most. One over is refused before any server sees
    // it; sent on, memcached would refuse the line unread and run the value as a command
    // (here, a delete of beta's key).
    let fits = String::from_utf8(base64(&[b'z'; 180])).expect("ascii");
    assert_eq!(
        text(a.request(format!("ms {fits} 2 b\r\nzz\r\n").as_bytes())),
        "HD\r\n"
    );
    let stored = format!("alpha:{}", "z".repeat(180));
    assert_eq!(
        direct.get(&stored).as_deref(),
        Some(&b"zz"[..]),
        "the longest base64 key, namespaced"
    );
    let smuggler = String::from_utf8(base64(&[b'z'; 181])).expect("ascii");
    let refused = text(a.request(format!("ms {smuggler} 13 b\r\ndelete beta:k\r\n").as_bytes()));
    assert!(
        refused.starts_with("CLIENT_ERROR tenant alpha's keys are at most 180 bytes"),
        "{refused}"
    );
    assert_eq!(b.get("k").as_deref(), Some(&b"from-beta"[..]));
    assert_eq!(
        text(a.request(b"mn\r\n")),
        "MN\r\n",
        "the replies stay in step"
    );

    // Keys near 250 bytes: the namespace takes its share, and the rest is refused before any
    // server sees it, never cut or sent under another name.
    let longest = "x".repeat(250 - "alpha:".len());
    a.set(&longest, b"edge");
    assert_eq!(
        direct.get(&format!("alpha:{longest}")).as_deref(),
        Some(&b"edge"[..])
    );
    let over = format!("{longest}y");
    let refused = text(a.request(format!("set {over} 0 0 1\r\nz\r\n").as_bytes()));
    assert!(
        refused.starts_with("CLIENT_ERROR tenant alpha's keys are at most 244 bytes"),
        "{refused}"
    );

    // flush_all would flush the shared pool: refused, everyone's keys stay.
    let flush = text(a.request(b"flush_all\r\n"));
    assert!(
        flush.starts_with("CLIENT_ERROR tenant alpha may not use flush_all"),
        "{flush}"
    );
    assert_eq!(b.get("k").as_deref(), Some(&b"from-beta"[..]));

    // A tenant's route sees its keys with the namespace: beta's prefix route matched `beta:`.
    b.set("hot:1", b"h");
    assert_eq!(direct.get("beta:hot:1").as_deref(), Some(&b"h"[..]));
}

#[test]
fn a_read_only_tenant_reads_and_nothing_it_may_not_do_reaches_a_server() {
    let server = Memcached::start();
    let dir = TestDir::new("tenants-acl");
    let certs = Certs::generate(&dir.path().join("tls"));
    let router = gateway(&dir, &certs, &server, 100_000);
    let mut direct = server.client();
    direct.set("reader:seen", b"yes");
    let mut reader = connect(&router, 2);
    assert_eq!(reader.get("seen").as_deref(), Some(&b"yes"[..]));

    // What memcached counts of the commands refused below.
    let counts = |direct: &mut Client| -> Vec<Option<u64>> {
        [
            "cmd_set",
            "cmd_touch",
            "delete_misses",
            "incr_misses",
            "cmd_flush",
        ]
        .iter()
        .map(|s| direct.stat(s))
        .collect()
    };
    let before = counts(&mut direct);
    for (request, what) in [
        ("set seen 0 0 2\r\nno\r\n", "set (write commands)"),
        ("delete seen\r\n", "delete (delete commands)"),
        ("incr seen 1\r\n", "incr (arithmetic commands)"),
        ("ms seen 2\r\nno\r\n", "ms (write commands)"),
        ("touch seen 10\r\n", "touch (touch commands)"),
        ("flush_all\r\n", "flush_all (flush_all commands)"),
        ("stats\r\n", "stats (stats commands)"),
    ] {
        let reply = text(reader.request(request.as_bytes()));
        assert_eq!(
            reply,
            format!("CLIENT_ERROR tenant reader may not use {what}\r\n"),
            "{request:?}"
        );
    }
    let after = counts(&mut direct);
    assert_eq!(before, after, "a refused request reached the server");
    assert_eq!(direct.get("reader:seen").as_deref(), Some(&b"yes"[..]));
    // Still connected, still reading.
    assert_eq!(reader.get("seen").as_deref(), Some(&b"yes"[..]));

    let mut observer = alpha(&router, &certs);
    let refused = text(observer.request(b"stats tenants\r\n"));
    assert!(
        refused.starts_with("CLIENT_ERROR tenant alpha may not use stats"),
        "{refused}"
    );
}

#[test]
fn connections_that_are_no_tenants_are_refused_with_one_line() {
    let server = Memcached::start();
    let dir = TestDir::new("tenants-refused");
    let certs = Certs::generate(&dir.path().join("tls"));
    let router = gateway(&dir, &certs, &server, 100_000);

    // ASCII authentication, as memcached 1.6 with -Y answers it.
    // Any other command first is refused, and the connection stays open for the
    // authentication, as memcached keeps it.
    let mut c = connect(&router, 1);
    for request in [&b"get k\r\n"[..], b"version\r\n", b"ms k 1\r\nv\r\n"] {
        assert_eq!(text(c.request(request)), "CLIENT_ERROR unauthenticated\r\n");
    }
    assert_eq!(
        text(c.request(b"set a 0 0 16\r\nbeta beta-secrex\r\n")),
        "CLIENT_ERROR authentication failure\r\n"
    );
    assert_eq!(
        text(c.request(b"set a 0 0 3\r\nabc\r\n")),
        "CLIENT_ERROR bad authentication token format\r\n"
    );
    // A user of the file that is no tenant's.
    assert_eq!(
        text(c.request(b"set a 0 0 18\r\nother other-secret\r\n")),
        "CLIENT_ERROR authentication failure\r\n"
    );
    // The connection stays open for another try; `noreply` does not hush the answer.
    assert_eq!(
        text(c.request(b"set a 0 0 16 noreply\r\nbeta beta-secret\r\n")),
        "STORED\r\n"
    );
    c.set("after", b"auth");
    assert_eq!(
        server.client().get("beta:after").as_deref(),
        Some(&b"auth"[..])
    );
    // The authentication itself stored nothing.
    assert_eq!(server.client().get("beta:a"), None);

    // A certificate the CA signed, for an identity no tenant has.
    let mallory = certs.ca.client("mallory");
    let mut m = certs
        .trust()
        .with_identity(&mallory)
        .connect(router.local_addrs()[0])
        .unwrap_or_else(|e| panic!("mallory's handshake: {e}"))
        .into_client();
    assert_eq!(
        text(m.request(b"get k\r\n")),
        "SERVER_ERROR no tenant for client identity mallory\r\n"
    );
    m.expect_closed();
}

#[test]
fn a_tenant_over_its_rate_is_refused_and_counted_while_another_carries_on() {
    let server = Memcached::start();
    let dir = TestDir::new("tenants-rate");
    let certs = Certs::generate(&dir.path().join("tls"));
    // 200 requests a second, 200 at once.
    let router = gateway(&dir, &certs, &server, 200);
    let (mut a, mut b) = (alpha(&router, &certs), beta(&router));
    // 1000 pipelined gets at once: the burst passes, the rest are refused.
    let burst: Vec<u8> = (0..1000)
        .flat_map(|i| format!("get k{i}\r\n").into_bytes())
        .collect();
    b.send(&burst);
    let replies = b.replies(1000);
    let limited = replies
        .iter()
        .filter(|r| {
            r.starts_with(b"SERVER_ERROR tenant beta is over its requests_per_second (200)")
        })
        .count();
    let answered = replies
        .iter()
        .filter(|r| r.as_slice() == b"END\r\n")
        .count();
    assert_eq!(
        limited + answered,
        1000,
        "{:?}",
        replies
            .iter()
            .map(|r| text(r.clone()))
            .collect::<Vec<_>>()
            .first()
    );
    assert!((200..=400).contains(&answered), "{answered} answered");
    // alpha has no limit and shares nothing of beta's.
    for i in 0..300 {
        assert_eq!(a.get(&format!("k{i}")), None);
    }

    // An alpha connection may not read the stats; the operators' listener may.
    let refused = text(a.request(b"stats tenants\r\n"));
    assert!(refused.starts_with("CLIENT_ERROR"), "{refused}");
    let shown = group(&mut connect(&router, 3), "tenants");
    let stat = |name: &str| {
        shown
            .get(name)
            .map(String::as_str)
            .unwrap_or("-")
            .to_string()
    };
    assert_eq!(stat("beta:limited_requests"), (1000 - answered).to_string());
    assert_eq!(stat("beta:curr_connections"), "1");
    assert_eq!(stat("alpha:limited_requests"), "0");
    assert_eq!(stat("alpha:requests"), "301");
}

/// `configs/tenants.toml` as written (addresses replaced), its credentials file beside it and
/// its certificates under `tls/`: alpha over mutual TLS and beta authenticated share the pool,
/// each in its own namespace; an unauthenticated client gets nothing; the admin listener's
/// `stats backends` shows each tenant's requests at the servers.
#[test]
fn the_tenants_example_config_does_what_its_header_says() {
    let example = switchyard_tests::example::example_text("tenants");
    let dir = TestDir::new("tenants-example");
    let certs = Certs::generate(&dir.path().join("tls"));
    let passwd = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tenants.passwd"),
    )
    .expect("configs/tenants.passwd");
    dir.write("tenants.passwd", passwd);
    let (one, two) = (Memcached::start(), Memcached::start());
    let mut edited = example.clone();
    for (from, to) in [
        ("127.0.0.1:11411", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:11311", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:11412", "127.0.0.1:0".to_owned()),
        ("127.0.0.1:21211", one.address()),
        ("127.0.0.1:21212", two.address()),
    ] {
        assert!(
            example.contains(from),
            "configs/tenants.toml names no {from}"
        );
        edited = edited.replace(from, &to);
    }
    let router = switchyard_tests::router_in(&dir, &edited);
    let mut beta = connect(&router, 1);
    assert_eq!(
        text(beta.request(b"set auth 0 0 16\r\nbeta beta-secret\r\n")),
        "STORED\r\n"
    );
    beta.set("k", b"beta");
    assert_eq!(beta.get("k").as_deref(), Some(&b"beta"[..]));
    let mut alpha = alpha(&router, &certs);
    assert_eq!(alpha.get("k"), None, "alpha's `k` is not beta's");
    alpha.set("k", b"alpha");
    assert_eq!(beta.get("k").as_deref(), Some(&b"beta"[..]));
    let stored: Vec<bool> = [&one, &two]
        .iter()
        .map(|s| s.holds(&["beta:k".to_owned()])[0] || s.holds(&["alpha:k".to_owned()])[0])
        .collect();
    assert!(stored.contains(&true), "{stored:?}");
    let mut anonymous = connect(&router, 1);
    assert_eq!(
        text(anonymous.request(b"get k\r\n")),
        "CLIENT_ERROR unauthenticated\r\n"
    );
    // The operators' view: each tenant's replies at the servers, two of alpha's (a get and a
    // set) and three of beta's (a set and two gets; its authentication is no server's).
    let admin = router
        .admin_http_addr()
        .expect("the example's admin listener");
    let backends = switchyard_tests::admin_get(admin, "/stats/backends");
    let replies = |tenant: &str| -> u64 {
        backends
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| name.ends_with(&format!(":tenant:{tenant}:replies")))
            .map(|(_, v)| v.trim().parse::<u64>().expect("a count"))
            .sum()
    };
    assert_eq!((replies("alpha"), replies("beta")), (2, 3), "{backends}");
}

/// The gateway of [`a_tenants_broken_file_keeps_its_running_routes_while_the_others_change`]:
/// alpha's route is `alpha_pool`, beta's routes are in `beta.toml` (included).
/// Its listeners are on `ports`: a reload keeps a listener whose address it keeps.
fn with_include(a: &Memcached, b: &Memcached, ports: [u16; 3], alpha_pool: &str) -> String {
    let [p0, p1, p2] = ports;
    format!(
        "[server]\nworkers = 2\nwatch = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{p0}\"\ntenant = \"alpha\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{p1}\"\ntenant = \"beta\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{p2}\"\nroute = \"a\"\n\n\
         [tenants.alpha]\nroute = \"{alpha_pool}\"\n\n\
         [tenants.beta]\nroute = \"beta_route\"\ninclude = \"beta.toml\"\n\n\
         [pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n",
        a.spec(),
        b.spec()
    )
}

/// beta's routes live in a file of their own. A reload that brings a change of alpha's and a
/// beta file whose plugin rejects its config publishes alpha's change and keeps beta's running
/// routes; alpha's connection and counters carry on, and the error names beta and its file.
/// A mistake in the main file still refuses the whole reload.
#[test]
fn a_tenants_broken_file_keeps_its_running_routes_while_the_others_change() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dir = TestDir::new("tenants-include");
    dir.write(
        "beta.toml",
        "# beta's own routes\n[routes.beta_route]\nplugin = \"prefix\"\nchildren = [\"a\"]\n\
         config = { default = \"a\" }\n",
    );
    let free = switchyard_tests::ports::free_port;
    let ports = [free(), free(), free()];
    let text = with_include(&a, &b, ports, "a");
    dir.write("switchyard.toml", &text);
    let router = switchyard_tests::router_in(&dir, &text);
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    alpha.set("k1", b"a1");
    beta.set("k1", b"b1");
    assert_eq!(a.client().get("alpha:k1").as_deref(), Some(&b"a1"[..]));
    assert_eq!(a.client().get("beta:k1").as_deref(), Some(&b"b1"[..]));

    // beta's new file names a child its plugin does not have; alpha moves to pool b.
    dir.replace(
        "beta.toml",
        "# beta's own routes\n[routes.beta_route]\nplugin = \"prefix\"\nchildren = [\"a\"]\n\
         config = { default = \"nowhere\" }\n",
    );
    dir.replace("switchyard.toml", with_include(&a, &b, ports, "b"));
    let generation = router.generation().number;
    let published = router
        .reload()
        .expect("the reload publishes alpha's change");
    assert!(published > generation);

    // The same connections: alpha's keys now on b, beta's still through its running route.
    alpha.set("k2", b"a2");
    beta.set("k2", b"b2");
    assert_eq!(b.client().get("alpha:k2").as_deref(), Some(&b"a2"[..]));
    assert_eq!(a.client().get("alpha:k2"), None);
    assert_eq!(a.client().get("beta:k2").as_deref(), Some(&b"b2"[..]));
    assert_eq!(beta.get("k1").as_deref(), Some(&b"b1"[..]));

    let mut ops = connect(&router, 2);
    let config = group(&mut ops, "config");
    let error = config.get("last_reload_error").cloned().unwrap_or_default();
    assert!(
        error.contains("tenant_beta_keeps_its_running_configuration")
            || error.contains("tenant beta keeps its running configuration"),
        "{config:?}"
    );
    assert!(error.contains("beta.toml"), "{error}");
    let tenants = group(&mut ops, "tenants");
    assert_eq!(tenants.get("alpha:requests").map(String::as_str), Some("2"));
    assert_eq!(
        tenants.get("alpha:curr_connections").map(String::as_str),
        Some("1")
    );

    // A mistake in the main file is no tenant's: the whole reload is refused.
    dir.replace(
        "switchyard.toml",
        text.replace("[pools.b]", "[pools.b]\nbogus = 1"),
    );
    let refused = router.reload().expect_err("a broken main file is refused");
    assert!(refused.to_string().contains("switchyard.toml"), "{refused}");
    alpha.set("k3", b"a3");
    assert_eq!(b.client().get("alpha:k3").as_deref(), Some(&b"a3"[..]));
}

/// A reload brings alpha's move to pool b (the main file) and a beta file whose plugin traps
/// on every call. With `rollback_faults = 20`, beta's faults put back beta's previous file
/// alone: beta's requests succeed again through its old route, alpha stays on pool b, and
/// `stats config` counts one rollback.
#[test]
fn a_tenants_faulting_file_is_rolled_back_alone() {
    let (a, b) = (Memcached::start(), Memcached::start());
    let dir = TestDir::new("tenants-rollback");
    dir.write(
        "trap.wasm",
        switchyard_tests::wasm::trapping_every_call_plugin(),
    );
    let old_beta = "[routes.beta_route]\nplugin = \"prefix\"\nchildren = [\"a\"]\n\
                    config = { default = \"a\" }\n";
    dir.write("beta.toml", old_beta);
    let free = switchyard_tests::ports::free_port;
    let ports = [free(), free(), free()];
    let with_rollback = |alpha_pool: &str| {
        with_include(&a, &b, ports, alpha_pool)
            .replace("[server]", "[plugins]\nrollback_faults = 20\n\n[server]")
    };
    let text = with_rollback("a");
    dir.write("switchyard.toml", &text);
    let router = switchyard_tests::router_in(&dir, &text);
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    beta.set("k1", b"b1");

    dir.replace(
        "beta.toml",
        "[routes.beta_route]\nplugin = \"trap.wasm\"\nchildren = [\"a\"]\n",
    );
    dir.replace("switchyard.toml", with_rollback("b"));
    let before = router.generation().number;
    assert!(router.reload().expect("the reload is published") > before);
    alpha.set("k2", b"a2");
    assert_eq!(b.client().get("alpha:k2").as_deref(), Some(&b"a2"[..]));

    // beta's requests fault until its file is put back.
    let mut faults = 0;
    let back = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(10), || {
        let reply = beta.request(b"get k1\r\n");
        if reply.starts_with(b"SERVER_ERROR") {
            faults += 1;
            return None;
        }
        Some(reply)
    });
    assert_eq!(
        back.as_deref(),
        Some(&b"VALUE k1 0 2\r\nb1\r\nEND\r\n"[..]),
        "beta never came back after {faults} faults"
    );
    assert!(faults >= 20, "only {faults} faults before the rollback");
    // alpha's change stays: its keys still go to pool b.
    alpha.set("k3", b"a3");
    assert_eq!(b.client().get("alpha:k3").as_deref(), Some(&b"a3"[..]));
    assert_eq!(a.client().get("alpha:k3"), None);
    let mut ops = connect(&router, 2);
    let config = group(&mut ops, "config");
    assert_eq!(
        config.get("rollbacks").map(String::as_str),
        Some("1"),
        "{config:?}"
    );
}

/// alpha may have two requests in flight (`max_outstanding = 2`). With its server stopped,
/// two gets on one connection wait for it; a third, on another connection, is refused with
/// `SERVER_ERROR` naming the limit, and counted. When the server is back, both are answered,
/// and alpha's next request is admitted.
#[test]
fn a_tenants_requests_in_flight_are_bounded() {
    let server = Memcached::start();
    let config = format!(
        "[server]\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"alpha\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"main\"\n\n\
         [tenants.alpha]\nroute = \"main\"\nmax_outstanding = 2\n\n\
         [pools.main]\nservers = [\"{}\"]\ntimeout_ms = 10000\n",
        server.spec()
    );
    let router = switchyard_tests::router(&config);
    let mut ops = connect(&router, 1);
    let mut waiting = connect(&router, 0);
    server.pause();
    waiting.send(b"get p1\r\nget p2\r\n");
    let in_flight = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(5), || {
        let tenants = group(&mut ops, "tenants");
        (tenants.get("alpha:outstanding").map(String::as_str) == Some("2")).then_some(())
    });
    assert!(in_flight.is_some(), "{:?}", group(&mut ops, "tenants"));
    let mut other = connect(&router, 0);
    assert_eq!(
        text(other.request(b"get p3\r\n")),
        "SERVER_ERROR tenant alpha has its max_outstanding (2) requests in flight\r\n"
    );
    server.resume();
    assert_eq!(
        waiting.replies(2),
        vec![b"END\r\n".to_vec(), b"END\r\n".to_vec()]
    );
    assert_eq!(other.request(b"get p3\r\n"), b"END\r\n");
    let tenants = group(&mut ops, "tenants");
    assert_eq!(
        tenants.get("alpha:limited_outstanding").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        tenants.get("alpha:outstanding").map(String::as_str),
        Some("0")
    );
}

/// A router with a listener of its own for each of `tenants` (`(name, extra keys of its
/// table)`), in that order, every tenant on the pool `shared` (`server`), and a last listener
/// with no tenant: the operators', for `stats tenants`.
fn listener_tenants(server: &Memcached, tenants: &[(&str, &str)]) -> Router {
    let mut text = String::from("[server]\nworkers = 2\n\n");
    for (name, _) in tenants {
        text += &format!("[[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"{name}\"\n\n");
    }
    text += "[[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"shared\"\n\n";
    for (name, extra) in tenants {
        text += &format!("[tenants.{name}]\nroute = \"shared\"\n{extra}\n\n");
    }
    text += &format!("[pools.shared]\nservers = [\"{}\"]\n", server.spec());
    switchyard_tests::router(&text)
}

/// memcached's own counters named in `names`, as its `stats` shows them now.
fn server_counts(direct: &mut Client, names: &[&str]) -> BTreeMap<String, u64> {
    let stats = group(direct, "");
    names
        .iter()
        .map(|name| {
            let value = stats
                .get(*name)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("memcached's stats have no {name}: {stats:?}"));
            ((*name).to_string(), value)
        })
        .collect()
}

/// How much each counter of `after` moved since `before`, leaving out those that did not.
fn moved(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(name, &value)| {
            let delta = value - before[name];
            (delta != 0).then(|| (name.clone(), delta))
        })
        .collect()
}

/// One value of `stats tenants`, as the operators' connection `ops` reads it ("-" if absent).
fn tenant_stat(ops: &mut Client, name: &str) -> String {
    group(ops, "tenants")
        .get(name)
        .cloned()
        .unwrap_or_else(|| "-".to_string())
}

/// `read_prefixes` and `write_prefixes`: a tenant that may read only `pub:` keys and write
/// only `own:` ones gets `CLIENT_ERROR tenant t may not use key K with CMD` for a get, a
/// multi-get with one key outside (the whole request), a set, a delete and an `ms`, and none
/// of them reaches memcached (its `cmd_get`, `get_misses`, `get_hits`, `cmd_set`,
/// `delete_hits` and `delete_misses` stay put, where the allowed ones move them); the
/// allowed keys work; `t:denied` counts exactly the refusals.
#[test]
fn a_tenants_key_prefixes_refuse_other_keys_before_a_server_sees_them() {
    let server = Memcached::start();
    let router = listener_tenants(
        &server,
        &[(
            "t",
            "read_prefixes = [\"pub:\"]\nwrite_prefixes = [\"own:\"]",
        )],
    );
    let mut direct = server.client();
    // What the tenant may read, and keys of each prefix a leak would find or change.
    direct.set("t:pub:a", b"A");
    direct.set("t:pub:b", b"B");
    direct.set("t:own:x", b"X");
    let mut t = connect(&router, 0);
    let mut ops = connect(&router, 1);
    let names = [
        "cmd_get",
        "get_hits",
        "get_misses",
        "cmd_set",
        "delete_hits",
        "delete_misses",
    ];

    let before = server_counts(&mut direct, &names);
    let refused = [
        ("get own:x\r\n", "own:x with get"),
        ("get pub:a own:x pub:b\r\n", "own:x with get"),
        ("gets pub:a nope:y\r\n", "nope:y with gets"),
        ("set pub:a 0 0 1\r\nz\r\n", "pub:a with set"),
        ("delete pub:a\r\n", "pub:a with delete"),
        ("ms pub:b 1\r\nz\r\n", "pub:b with ms"),
    ];
    for (request, what) in refused {
        assert_eq!(
            text(t.request(request.as_bytes())),
            format!("CLIENT_ERROR tenant t may not use key {what}\r\n"),
            "{request:?}"
        );
    }
    assert_eq!(
        moved(&before, &server_counts(&mut direct, &names)),
        BTreeMap::new(),
        "a refused request reached memcached"
    );
    assert_eq!(direct.get("t:pub:a").as_deref(), Some(&b"A"[..]));
    assert_eq!(direct.get("t:pub:b").as_deref(), Some(&b"B"[..]));
    assert_eq!(direct.get("t:own:x").as_deref(), Some(&b"X"[..]));
    let before = server_counts(&mut direct, &names);

    // The allowed ones reach memcached, and move its counters by exactly themselves.
    assert_eq!(
        text(t.request(b"get pub:a pub:b pub:c\r\n")),
        "VALUE pub:a 0 1\r\nA\r\nVALUE pub:b 0 1\r\nB\r\nEND\r\n"
    );
    assert_eq!(text(t.request(b"set own:y 0 0 2\r\nyy\r\n")), "STORED\r\n");
    assert_eq!(text(t.request(b"ms own:z 2\r\nzz\r\n")), "HD\r\n");
    assert_eq!(text(t.request(b"delete own:x\r\n")), "DELETED\r\n");
    assert_eq!(
        moved(&before, &server_counts(&mut direct, &names)),
        BTreeMap::from([
            ("cmd_get".to_string(), 3),
            ("get_hits".to_string(), 2),
            ("get_misses".to_string(), 1),
            ("cmd_set".to_string(), 2),
            ("delete_hits".to_string(), 1),
        ])
    );
    assert_eq!(direct.get("t:own:y").as_deref(), Some(&b"yy"[..]));
    assert_eq!(direct.get("t:own:z").as_deref(), Some(&b"zz"[..]));
    assert_eq!(direct.get("t:own:x"), None);

    assert_eq!(tenant_stat(&mut ops, "t:denied"), refused.len().to_string());
    assert_eq!(
        tenant_stat(&mut ops, "t:requests"),
        (refused.len() + 4).to_string()
    );
}

/// `max_connections = 2`: a third connection of alpha's gets `SERVER_ERROR tenant alpha has
/// its max_connections (2) open` at its first request and is closed, counted in
/// `alpha:rejected_connections`, while beta still connects; once one of alpha's two closes,
/// a new one is accepted (polled for, with a deadline), and the one after it is refused
/// again: refusals gave back no count of the two open.
#[test]
fn a_tenants_max_connections_refuses_the_next_until_one_closes() {
    let server = Memcached::start();
    let router = listener_tenants(&server, &[("alpha", "max_connections = 2"), ("beta", "")]);
    let mut ops = connect(&router, 2);
    let refusal = "SERVER_ERROR tenant alpha has its max_connections (2) open\r\n";
    // A connection is alpha's from its first request.
    let mut first = connect(&router, 0);
    let mut second = connect(&router, 0);
    assert_eq!(text(first.request(b"get k\r\n")), "END\r\n");
    assert_eq!(text(second.request(b"get k\r\n")), "END\r\n");

    let mut third = connect(&router, 0);
    assert_eq!(text(third.request(b"get k\r\n")), refusal);
    third.expect_closed();
    // Another tenant is not alpha's count.
    let mut beta = connect(&router, 1);
    assert_eq!(text(beta.request(b"get k\r\n")), "END\r\n");
    let tenants = group(&mut ops, "tenants");
    let stat = |name: &str| tenants.get(name).map(String::as_str);
    assert_eq!(stat("alpha:curr_connections"), Some("2"), "{tenants:?}");
    assert_eq!(stat("alpha:rejected_connections"), Some("1"));
    assert_eq!(stat("alpha:total_connections"), Some("2"));
    assert_eq!(stat("beta:curr_connections"), Some("1"));
    assert_eq!(stat("beta:rejected_connections"), Some("0"));
    // The two open are still served.
    assert_eq!(text(first.request(b"get k\r\n")), "END\r\n");
    assert_eq!(text(second.request(b"get k\r\n")), "END\r\n");

    // One closes: the router notices in its own time, so a new one is tried until accepted.
    drop(first);
    let mut refused_meanwhile = 0;
    let accepted = switchyard_tests::ports::poll_until(std::time::Duration::from_secs(10), || {
        let mut next = connect(&router, 0);
        let reply = text(next.request(b"get k\r\n"));
        if reply == refusal {
            next.expect_closed();
            refused_meanwhile += 1;
            return None;
        }
        assert_eq!(reply, "END\r\n");
        Some(next)
    });
    let mut accepted = accepted.expect("no new connection of alpha's accepted after one closed");
    assert_eq!(
        text(accepted.request(b"set k 0 0 1\r\nv\r\n")),
        "STORED\r\n"
    );
    assert_eq!(
        text(second.request(b"get k\r\n")),
        "VALUE k 0 1\r\nv\r\nEND\r\n"
    );

    // Two open again: the next is refused, as the third was.
    let mut over = connect(&router, 0);
    assert_eq!(text(over.request(b"get k\r\n")), refusal);
    over.expect_closed();
    let tenants = group(&mut ops, "tenants");
    let stat = |name: &str| tenants.get(name).map(String::as_str);
    assert_eq!(stat("alpha:curr_connections"), Some("2"), "{tenants:?}");
    assert_eq!(stat("alpha:total_connections"), Some("3"));
    assert_eq!(
        stat("alpha:rejected_connections"),
        Some((2 + refused_meanwhile).to_string().as_str())
    );
}

/// `bytes_per_second = 10` with `bytes_burst = 1000`, refusing (the default `over_limit`):
/// a set of 600 bytes passes, a second of 600 goes past the burst and gets `SERVER_ERROR
/// tenant beta is over its bytes_per_second (10)`, is counted in `beta:limited_bytes`, and
/// is never stored; it took none of the bucket, so a set of 300 bytes still passes. alpha,
/// with the same limits, stores 600 bytes in the same moment: its bucket is its own.
#[test]
fn a_tenant_over_its_byte_rate_is_refused_while_another_stores() {
    let server = Memcached::start();
    // 10 bytes a second refill a byte per 100 ms: nothing a slow test takes is worth a set.
    let limits = "bytes_per_second = 10\nbytes_burst = 1000";
    let router = listener_tenants(&server, &[("alpha", limits), ("beta", limits)]);
    let (mut alpha, mut beta) = (connect(&router, 0), connect(&router, 1));
    let mut ops = connect(&router, 2);
    let mut direct = server.client();
    let set = |key: &str, len: usize| {
        let mut request = format!("set {key} 0 0 {len}\r\n").into_bytes();
        request.extend(std::iter::repeat_n(b'v', len));
        request.extend_from_slice(b"\r\n");
        request
    };

    assert_eq!(text(beta.request(&set("b1", 600))), "STORED\r\n");
    let before = server_counts(&mut direct, &["cmd_set"]);
    assert_eq!(
        text(beta.request(&set("b2", 600))),
        "SERVER_ERROR tenant beta is over its bytes_per_second (10)\r\n"
    );
    assert_eq!(
        moved(&before, &server_counts(&mut direct, &["cmd_set"])),
        BTreeMap::new(),
        "the refused set reached memcached"
    );
    assert_eq!(direct.get("beta:b2"), None);
    // alpha, in the same moment, with the same limits: its own bucket is full.
    assert_eq!(text(alpha.request(&set("a1", 600))), "STORED\r\n");
    assert_eq!(direct.get("alpha:a1").as_deref(), Some(&[b'v'; 600][..]));
    // The refusal took nothing: what is left of beta's burst still holds 300 bytes.
    assert_eq!(text(beta.request(&set("b3", 300))), "STORED\r\n");
    assert_eq!(direct.get("beta:b3").as_deref(), Some(&[b'v'; 300][..]));

    let tenants = group(&mut ops, "tenants");
    let stat = |name: &str| tenants.get(name).map(String::as_str);
    assert_eq!(stat("beta:limited_bytes"), Some("1"), "{tenants:?}");
    assert_eq!(stat("beta:limited_requests"), Some("0"));
    assert_eq!(stat("beta:requests"), Some("3"));
    assert_eq!(stat("alpha:limited_bytes"), Some("0"));
}

/// `max_value_bytes = 100`: a set or an `ms` of 101 bytes gets `SERVER_ERROR tenant t: a
/// value of 101 bytes is over its max_value_bytes (100)`, counted in `t:limited_values`, and
/// never reaches memcached (its `cmd_set` stays put, the key is not there); 100 bytes are
/// stored.
#[test]
fn a_tenants_value_one_byte_over_its_max_is_refused_and_one_at_it_stored() {
    let server = Memcached::start();
    let router = listener_tenants(&server, &[("t", "max_value_bytes = 100")]);
    let mut t = connect(&router, 0);
    let mut ops = connect(&router, 1);
    let mut direct = server.client();
    let value = |len: usize| vec![b'v'; len];
    let with_value = |line: String, len: usize| {
        let mut request = line.into_bytes();
        request.extend(value(len));
        request.extend_from_slice(b"\r\n");
        request
    };
    let refusal =
        "SERVER_ERROR tenant t: a value of 101 bytes is over its max_value_bytes (100)\r\n";

    let before = server_counts(&mut direct, &["cmd_set"]);
    assert_eq!(
        text(t.request(&with_value("set over 0 0 101\r\n".into(), 101))),
        refusal
    );
    assert_eq!(
        text(t.request(&with_value("ms over2 101\r\n".into(), 101))),
        refusal
    );
    assert_eq!(
        moved(&before, &server_counts(&mut direct, &["cmd_set"])),
        BTreeMap::new(),
        "a refused value reached memcached"
    );
    assert_eq!(direct.get("t:over"), None);
    assert_eq!(direct.get("t:over2"), None);
    // Still in step: the refused values were read whole.
    assert_eq!(text(t.request(b"mn\r\n")), "MN\r\n");

    assert_eq!(
        text(t.request(&with_value("set at 0 0 100\r\n".into(), 100))),
        "STORED\r\n"
    );
    assert_eq!(
        text(t.request(&with_value("ms at2 100\r\n".into(), 100))),
        "HD\r\n"
    );
    assert_eq!(direct.get("t:at"), Some(value(100)));
    assert_eq!(direct.get("t:at2"), Some(value(100)));
    assert_eq!(t.get("at"), Some(value(100)));
    assert_eq!(tenant_stat(&mut ops, "t:limited_values"), "2");
}

/// A read-only tenant's `incr`, `decr`, `ma`, `delete` and `md` on a key that exists on the
/// server under its namespace (unlike the misses the test above watches, which a leaked
/// request on a missing key would not move either): each is refused with `CLIENT_ERROR
/// tenant reader may not use CMD (CLASS commands)`, the key keeps its value (a leaked incr or
/// decr would change it, a leaked delete remove it), and memcached's `incr_hits`,
/// `decr_hits` and `delete_hits` (and misses) stay put.
#[test]
fn a_read_only_tenants_refused_delete_and_incr_leave_an_existing_key_as_it_was() {
    let server = Memcached::start();
    let dir = TestDir::new("tenants-acl-existing");
    let certs = Certs::generate(&dir.path().join("tls"));
    let router = gateway(&dir, &certs, &server, 100_000);
    let mut direct = server.client();
    direct.set("reader:n", b"41");
    let mut reader = connect(&router, 2);
    assert_eq!(reader.get("n").as_deref(), Some(&b"41"[..]));
    let names = [
        "incr_hits",
        "incr_misses",
        "decr_hits",
        "decr_misses",
        "delete_hits",
        "delete_misses",
    ];

    let before = server_counts(&mut direct, &names);
    // The arithmetic first: a leaked delete would leave them no key to change.
    for (request, what) in [
        ("incr n 1\r\n", "incr (arithmetic commands)"),
        ("decr n 1\r\n", "decr (arithmetic commands)"),
        ("ma n\r\n", "ma (arithmetic commands)"),
        ("delete n\r\n", "delete (delete commands)"),
        ("md n\r\n", "md (delete commands)"),
    ] {
        assert_eq!(
            text(reader.request(request.as_bytes())),
            format!("CLIENT_ERROR tenant reader may not use {what}\r\n"),
            "{request:?}"
        );
    }
    assert_eq!(
        moved(&before, &server_counts(&mut direct, &names)),
        BTreeMap::new(),
        "a refused request reached memcached"
    );
    assert_eq!(direct.get("reader:n").as_deref(), Some(&b"41"[..]));
    assert_eq!(reader.get("n").as_deref(), Some(&b"41"[..]));

    // The same requests where they are allowed change it: the key was one they would reach.
    let mut ops = connect(&router, 3);
    assert_eq!(text(ops.request(b"incr reader:n 1\r\n")), "42\r\n");
    assert_eq!(text(ops.request(b"delete reader:n\r\n")), "DELETED\r\n");
    assert_eq!(reader.get("n"), None);
}

/// A namespaced tenant's long value (over `server.stream_from_bytes`, 256 KiB, so still
/// arriving when its command line is read, and buffered whole as its key is rewritten) is one
/// request of its bytes: with `bytes_per_second = 10` and `bytes_burst = 500000`, a set of
/// 300,000 bytes on a bound connection is stored, `t:requests` counts it once and
/// `t:limited_bytes` not at all.
#[test]
fn a_namespaced_tenants_long_value_is_admitted_once() {
    let server = Memcached::start();
    let router = listener_tenants(
        &server,
        &[("t", "bytes_per_second = 10\nbytes_burst = 500000")],
    );
    let mut t = connect(&router, 0);
    let mut ops = connect(&router, 1);
    // The connection is the tenant's from its first request; the long value comes second.
    assert_eq!(text(t.request(b"get big\r\n")), "END\r\n");
    let len = 300_000;
    let mut request = format!("set big 0 0 {len}\r\n").into_bytes();
    request.extend(std::iter::repeat_n(b'v', len));
    request.extend_from_slice(b"\r\n");
    let reply = text(t.request(&request));
    let tenants = group(&mut ops, "tenants");
    let stat = |name: &str| tenants.get(name).map(String::as_str).unwrap_or("-");
    assert_eq!(
        (reply.as_str(), stat("t:requests"), stat("t:limited_bytes")),
        ("STORED\r\n", "2", "0"),
        "(reply, t:requests, t:limited_bytes)"
    );
    assert_eq!(server.client().get("t:big").map(|v| v.len()), Some(len));
}

/// Standard base64, padded: how a client writes a meta key with the `b` flag.
fn base64(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]
            } else {
                b'='
            });
        }
    }
    out
}

/// A tenant's own plugin cannot send its requests out of its namespace: a rewrite whose key
/// no longer begins with it (beta's route strips `beta:` and puts `alpha:` in front) is refused,
/// and nothing reaches alpha's keys; a rewrite that stays inside (gamma's) goes through.
#[test]
fn a_tenants_plugin_cannot_rewrite_its_keys_out_of_its_namespace() {
    let server = Memcached::start();
    let config = format!(
        "[server]\nworkers = 2\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"alpha\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"beta\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:0\"\ntenant = \"gamma\"\n\n\
         [tenants.alpha]\nroute = \"shared\"\n\n\
         [tenants.beta]\nroute = \"escape\"\n\n\
         [tenants.gamma]\nroute = \"inside\"\n\n\
         [routes.escape]\nplugin = \"modify\"\nchildren = [\"shared\"]\n\
         config = {{ strip_prefix = \"beta:\", add_prefix = \"alpha:\" }}\n\n\
         [routes.inside]\nplugin = \"modify\"\nchildren = [\"shared\"]\n\
         config = {{ strip_prefix = \"gamma:\", add_prefix = \"gamma:moved:\" }}\n\n\
         [pools.shared]\nservers = [\"{}\"]\n",
        server.spec()
    );
    let router = switchyard_tests::router(&config);
    let (mut alpha, mut beta, mut gamma) = (
        connect(&router, 0),
        connect(&router, 1),
        connect(&router, 2),
    );
    alpha.set("k", b"alpha's");
    let mut direct = server.client();
    assert_eq!(direct.get("alpha:k").as_deref(), Some(&b"alpha's"[..]));

    for request in [
        &b"get k\r\n"[..],
        b"set k 0 0 4\r\nmine\r\n",
        b"delete k\r\n",
        b"mg k v\r\n",
    ] {
        let reply = text(beta.request(request));
        assert!(
            reply.starts_with("SERVER_ERROR") && reply.contains("namespace"),
            "{}: {reply}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(direct.get("alpha:k").as_deref(), Some(&b"alpha's"[..]));
    assert_eq!(direct.get("k"), None);

    gamma.set("k", b"gamma's");
    assert_eq!(gamma.get("k").as_deref(), Some(&b"gamma's"[..]));
    assert_eq!(
        direct.get("gamma:moved:k").as_deref(),
        Some(&b"gamma's"[..])
    );
}

/// A tenant that may ask about the router (`stats` in its `commands`) gets its answers to
/// `__switchyard__.` keys, but a retrieval that names them beside other keys is refused whole:
/// the other keys would go out as sent, outside its namespace. So `get
/// __switchyard__.version beta:k` reads nothing of beta's, memcached sees no get, and the
/// refusal is counted in `denied`. A route question asks about the key in its namespace.
#[test]
fn a_tenant_cannot_read_past_its_namespace_beside_a_question_about_the_router() {
    let server = Memcached::start();
    let router = listener_tenants(
        &server,
        &[
            ("alpha", "commands = [\"read\", \"write\", \"stats\"]"),
            ("beta", ""),
        ],
    );
    let (mut alpha, mut beta, mut ops) = (
        connect(&router, 0),
        connect(&router, 1),
        connect(&router, 2),
    );
    beta.set("k", b"beta's");
    assert_eq!(
        server.client().get("beta:k").as_deref(),
        Some(&b"beta's"[..])
    );
    let version = text(alpha.request(b"get __switchyard__.version\r\n"));
    assert!(
        version.starts_with("VALUE __switchyard__.version 0 ") && version.ends_with("END\r\n"),
        "{version}"
    );
    let mut direct = server.client();
    let before = server_counts(&mut direct, &["cmd_get", "get_hits"]);
    for request in [
        &b"get __switchyard__.version beta:k\r\n"[..],
        b"gets beta:k __switchyard__.version\r\n",
        b"get __switchyard__.version k\r\n",
    ] {
        assert_eq!(
            text(alpha.request(request)),
            "CLIENT_ERROR tenant alpha may not ask about the router and read keys in one retrieval\r\n",
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    // A long value admitted on its line whose data block ends badly leaves no admission
    // behind for the request after it.
    let len = 300_000;
    let mut bad = format!("set big 0 0 {len}\r\n").into_bytes();
    bad.extend(std::iter::repeat_n(b'v', len));
    bad.extend_from_slice(b"XX");
    let refused = text(alpha.request(&bad));
    assert!(refused.starts_with("CLIENT_ERROR"), "{refused}");
    assert_eq!(
        text(alpha.request(b"get __switchyard__.version beta:k\r\n")),
        "CLIENT_ERROR tenant alpha may not ask about the router and read keys in one retrieval\r\n",
    );
    let after = server_counts(&mut direct, &["cmd_get", "get_hits"]);
    assert_eq!(moved(&before, &after), BTreeMap::new());
    assert_eq!(tenant_stat(&mut ops, "alpha:denied"), "4");
    // The refused data block is alpha's client error, not beta's.
    assert_eq!(tenant_stat(&mut ops, "alpha:client_errors"), "1");
    assert_eq!(tenant_stat(&mut ops, "beta:client_errors"), "0");
    // The connection carries on.
    alpha.set("k", b"alpha's");
    assert_eq!(alpha.get("k").as_deref(), Some(&b"alpha's"[..]));
    // A route question asks about the key as the servers have it: in alpha's namespace.
    let route = text(alpha.request(b"get __switchyard__.route(get,k)\r\n"));
    assert!(route.contains("\nroute get alpha:k\n"), "{route}");
}

/// A namespaced tenant's long value streams to it as anyone's does (past `stream_from_bytes`,
/// counted in `streamed_values`), with its own key on the `VALUE` line and the `mg` reply's
/// `k` flag: the namespace is put back into the header alone.
#[test]
fn a_namespaced_tenants_long_value_streams_back_with_its_own_key() {
    let server = Memcached::start();
    let router = listener_tenants(&server, &[("t", "")]);
    let len = 512 << 10;
    let value: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    server.client().set("t:big", &value);
    let mut t = connect(&router, 0);
    let mut ops = connect(&router, 1);
    let streamed = |ops: &mut Client| -> u64 {
        group(ops, "")
            .get("streamed_values")
            .and_then(|v| v.parse().ok())
            .expect("streamed_values")
    };
    let before = streamed(&mut ops);
    let mut expected = format!("VALUE big 0 {len}\r\n").into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    let got = t.request(b"get big\r\n");
    assert!(
        got == expected,
        "the get's reply differs: {} bytes, starting {:?}, ending {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(40)]),
        String::from_utf8_lossy(&got[got.len().saturating_sub(20)..])
    );
    let mut expected = format!("VA {len} kbig\r\n").into_bytes();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    // The test client reads a meta reply's line; the value (no CR LF in it) follows.
    let mut got = t.request(b"mg big v k\r\n");
    got.extend(t.read_until(b"\r\n"));
    assert!(
        got == expected,
        "the mg's reply differs: {} bytes, starting {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(40)]),
    );
    assert_eq!(streamed(&mut ops), before + 2);
    // A short one still comes whole, with the client's key.
    t.set("small", b"xyz");
    assert_eq!(
        text(t.request(b"get small\r\n")),
        "VALUE small 0 3\r\nxyz\r\nEND\r\n"
    );
}

/// Two tenants' `user:1` are two hot keys, each named with its tenant and counted apart; a
/// plain listener's `user:1` is a third. One worker, so that one request in eight of each run
/// is sampled exactly.
#[test]
fn two_tenants_hot_keys_of_one_name_are_counted_apart() {
    let server = Memcached::start();
    let router = switchyard_tests::router(&format!(
        "{listeners}[tenants.alpha]\nroute = \"main\"\n\n\
         [tenants.beta]\nroute = \"main\"\n\n\
         [pools.main]\nservers = [\"{}\"]\n",
        server.spec(),
        listeners = switchyard_tests::tenant_listeners(1, &["alpha", "beta"], "main"),
    ));
    let (mut alpha, mut beta, mut plain) = (
        connect(&router, 0),
        connect(&router, 1),
        connect(&router, 2),
    );
    for (client, times) in [(&mut alpha, 80), (&mut beta, 16), (&mut plain, 8)] {
        for _ in 0..times {
            assert_eq!(client.get("user:1"), None);
        }
    }
    let (hot, _) = plain.stats_group("hotkeys");
    let requests = |name: &str| hot.get(name).map(String::as_str);
    assert_eq!(
        (
            requests("tenant:alpha:requests:user:1"),
            requests("tenant:beta:requests:user:1"),
            requests("requests:user:1"),
        ),
        (Some("80"), Some("16"), Some("8")),
        "{hot:?}"
    );
}
