//! Long values stream through: stores pass to their server as they arrive, retrievals pass to
//! their client as they arrive, replies match memcached's own, and the router's memory does not
//! grow with the values it carries.
//!
//! The memcached servers run with `-I 64m -m 256` (or memcached's default 1 MiB limit where the
//! server's own refusal is the point); the router allows 64 MiB values and streams from
//! `server.stream_from_bytes` (256 KiB by default).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, TestDir, connect, router, router_in, show, wasm};

const MAX_VALUE: usize = 64 << 20;

fn big_server() -> Memcached {
    Memcached::start_with(&["-I", "64m", "-m", "256"])
}

fn config(pool: &str, extra_server: &str, listen: &str) -> String {
    format!(
        r#"
[server]
workers = 1
max_value_bytes = {MAX_VALUE}
{extra_server}

[[listeners]]
address = "{listen}"
route = "main"

{pool}
"#
    )
}

fn single_pool(server: &Memcached) -> String {
    format!(
        "[pools.main]\nservers = [\"{}\"]\ntimeout_ms = 2000\n",
        server.spec()
    )
}

/// A value whose every 4 KiB block differs, so that a misplaced chunk cannot go unnoticed.
fn value(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32 / 4096).wrapping_mul(31) ^ (i as u32).wrapping_mul(7) ^ seed) as u8)
        .collect()
}

fn store_cmd(verb: &str, key: &str, value: &[u8], extra: &str) -> Vec<u8> {
    let mut cmd = format!("{verb} {key} 3 0 {}{extra}\r\n", value.len()).into_bytes();
    cmd.extend_from_slice(value);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// Writes `bytes` from another thread while the caller reads: a long value would otherwise
/// fill both socket buffers and deadlock the test.
fn send_in_background(client: &Client, bytes: Vec<u8>) -> thread::JoinHandle<()> {
    let mut w = client.writer();
    thread::spawn(move || w.write_all(&bytes).expect("write to router"))
}

/// Runs `script` (requests, and how many replies each gets) on `client` and returns every reply.
fn run(client: &mut Client, script: &[(Vec<u8>, usize)]) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for (bytes, count) in script {
        let writer = send_in_background(client, bytes.clone());
        for _ in 0..*count {
            replies.push(read_any_reply(client));
        }
        writer.join().expect("writer thread");
    }
    replies
}

/// One reply, including the data of a meta `VA` reply (which `Client::reply` leaves unread).
fn read_any_reply(client: &mut Client) -> Vec<u8> {
    let mut reply = client.reply();
    if reply.starts_with(b"VA ") {
        let len: usize = std::str::from_utf8(&reply[3..])
            .ok()
            .and_then(|rest| rest.split([' ', '\r']).next()?.parse().ok())
            .unwrap_or_else(|| panic!("bad VA line {}", show(&reply)));
        let mut data = Vec::new();
        while data.len() < len + 2 {
            data.extend(client.read_until(b"\r\n"));
        }
        reply.extend(data);
    }
    reply
}

/// Every command that carries a long value, each sent whole and also in a pipeline with short
/// requests around it.
fn script() -> Vec<(Vec<u8>, usize)> {
    let a = value(3 << 20, 1);
    let b = value(1 << 20, 2);
    let c = value(600 << 10, 3);
    let mut pipelined = b"set lv:p 0 0 1\r\nx\r\n".to_vec();
    pipelined.extend(store_cmd("set", "lv:p", &a, ""));
    pipelined.extend_from_slice(b"get lv:p\r\nappend lv:p 0 0 1\r\n!\r\nmg lv:p s v\r\n");
    let mut quiet = format!("ms lv:q {} q F7\r\n", b.len()).into_bytes();
    quiet.extend_from_slice(&b);
    quiet.extend_from_slice(b"\r\nmg lv:q v f\r\nmn\r\n");
    let mut noreply = store_cmd("set", "lv:n", &c, " noreply");
    noreply.extend_from_slice(b"get lv:n\r\n");
    // `bHY6YjY0` is `lv:b64` in base64; a quiet hit is answered, a quiet miss is not.
    let mut base64 = format!("ms bHY6YjY0 {} b\r\n", c.len()).into_bytes();
    base64.extend_from_slice(&c);
    base64.extend_from_slice(
        b"\r\nmg bHY6YjY0 b v q k\r\nmg bHY6YjY0 b q\r\nmg lv:none v q\r\nmn\r\n",
    );
    vec![
        (store_cmd("set", "lv:a", &a, ""), 1),
        (b"get lv:a\r\n".to_vec(), 1),
        (b"gat 0 lv:a\r\n".to_vec(), 1),
        (b"mg lv:a v k O1 f t\r\n".to_vec(), 1),
        (b"get lv:a lv:missing\r\n".to_vec(), 1),
        (store_cmd("add", "lv:a", &b, ""), 1),
        (store_cmd("replace", "lv:a", &b, ""), 1),
        (store_cmd("prepend", "lv:a", &c, ""), 1),
        (store_cmd("append", "lv:a", &c, ""), 1),
        (b"get lv:a\r\n".to_vec(), 1),
        (pipelined, 5),
        (quiet, 2),
        (noreply, 1),
        (base64, 4),
        (store_cmd("cas", "lv:a", &b, " 1"), 1),
    ]
}

#[test]
fn long_values_get_the_replies_memcached_gives() {
    let server = big_server();
    let direct = run(&mut server.client(), &script());
    server.flush_all();
    let router = router(&config(&single_pool(&server), "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let routed = run(&mut client, &script());
    assert_eq!(direct.len(), routed.len());
    for (i, (d, r)) in direct.iter().zip(&routed).enumerate() {
        assert!(
            d == r,
            "reply {i} differs: direct {} / routed {}",
            show(&d[..d.len().min(120)]),
            show(&r[..r.len().min(120)])
        );
    }
    // The script's long values passed through as they came, both ways.
    assert!(client.stat("streamed_stores").unwrap_or(0) >= 8);
    assert!(client.stat("streamed_values").unwrap_or(0) >= 5);
    assert_eq!(client.stat("streams_broken"), Some(0));
}

#[test]
fn a_streamed_value_with_a_bad_end_or_over_the_servers_limit_is_refused_as_memcached_does() {
    // memcached's own 1 MiB limit, under the router's 64 MiB one.
    let server = Memcached::start();
    let long = value(2 << 20, 4);
    let under = value(600 << 10, 4);
    let mut bad_end = format!("set lv:bad 0 0 {}\r\n", under.len()).into_bytes();
    bad_end.extend_from_slice(&under);
    bad_end.extend_from_slice(b"XYget lv:bad\r\n");
    let script = vec![
        (store_cmd("set", "lv:big", &long, ""), 1),
        (b"get lv:big\r\n".to_vec(), 1),
        (bad_end, 2),
        (format!("ms lv:ms {}\r\n", long.len()).into_bytes(), 0),
        ([long.clone(), b"\r\nmn\r\n".to_vec()].concat(), 2),
    ];
    let direct = run(&mut server.client(), &script);
    assert!(direct[0].starts_with(b"SERVER_ERROR object too large"));
    assert_eq!(direct[2], b"CLIENT_ERROR bad data chunk\r\n");
    let router = router(&config(&single_pool(&server), "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let routed = run(&mut client, &script);
    assert_eq!(
        routed.iter().map(|r| show(r)).collect::<Vec<_>>(),
        direct.iter().map(|r| show(r)).collect::<Vec<_>>()
    );
    assert!(client.stat("streamed_stores").unwrap_or(0) >= 2);
}

#[test]
fn a_route_that_needs_the_whole_value_still_stores_it_everywhere() {
    let servers = [big_server(), big_server()];
    let pools = format!(
        "[pools.a]\nservers = [\"{}\"]\n\n[pools.b]\nservers = [\"{}\"]\n\n\
         [routes.main]\nplugin = \"all-sync\"\nchildren = [\"a\", \"b\"]\n",
        servers[0].spec(),
        servers[1].spec()
    );
    let router = router(&config(&pools, "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let long = value(5 << 20, 5);
    let replies = run(&mut client, &[(store_cmd("set", "lv:r", &long, ""), 1)]);
    assert_eq!(replies[0], b"STORED\r\n", "{}", show(&replies[0]));
    for server in &servers {
        assert_eq!(server.client().get("lv:r").as_deref(), Some(&long[..]));
    }
    assert_eq!(client.stat("streamed_stores"), Some(0));
}

#[test]
fn a_route_that_answers_itself_drops_the_value_as_it_arrives() {
    let route = "[routes.main]\nplugin = \"error\"\nconfig = { message = \"fenced\" }\n";
    let router = router(&config(route, "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let long = value(3 << 20, 9);
    let mut script = store_cmd("set", "lv:f", &long, "");
    script.extend_from_slice(b"version\r\n");
    let replies = run(&mut client, &[(script, 2)]);
    assert_eq!(
        replies[0],
        b"SERVER_ERROR fenced\r\n",
        "{}",
        show(&replies[0])
    );
    assert!(replies[1].starts_with(b"VERSION "), "{}", show(&replies[1]));
    assert_eq!(client.stat("streamed_stores"), Some(0));
}

#[test]
fn a_store_its_server_cannot_take_is_answered_and_its_value_dropped() {
    // Nothing listens on this port: the store is refused before any of it is sent.
    let pool = format!(
        "[pools.main]\nservers = [\"127.0.0.1:{}:1\"]\n",
        free_port()
    );
    let router = router(&config(&pool, "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let long = value(3 << 20, 13);
    let mut script = store_cmd("set", "lv:down", &long, "");
    script.extend_from_slice(b"version\r\n");
    let replies = run(&mut client, &[(script, 2)]);
    assert!(
        replies[0].starts_with(b"SERVER_ERROR backend 127.0.0.1:"),
        "{}",
        show(&replies[0])
    );
    assert!(replies[1].starts_with(b"VERSION "), "{}", show(&replies[1]));
    // It took the streaming path, and was refused there.
    assert_eq!(client.stat("streamed_stores"), Some(1));
}

#[test]
fn a_client_that_leaves_mid_value_stores_nothing_and_costs_nobody_else() {
    let server = big_server();
    let router = router(&config(&single_pool(&server), "", "127.0.0.1:0"));
    let mut other = connect(&router, 0);
    other.set("lv:old", b"old");
    let mut direct = server.client();
    let connections = direct.stat("curr_connections").expect("memcached stats");
    let long = value(4 << 20, 6);
    {
        let mut leaver = connect(&router, 0);
        let cmd = store_cmd("set", "lv:old", &long, "");
        leaver.send(&cmd[..cmd.len() / 2]);
        // The router has opened the store's own connection and is passing the value on
        // before the client leaves.
        poll_until(Duration::from_secs(5), || {
            (direct.stat("curr_connections") == Some(connections + 1)).then_some(())
        })
        .expect("the store's own server connection opened");
    }
    poll_until(Duration::from_secs(5), || {
        (other.stat("streams_broken") == Some(1)).then_some(())
    })
    .expect("the broken store is counted");
    assert_eq!(other.get("lv:old").as_deref(), Some(&b"old"[..]));
    other.set("lv:after", b"fine");
    assert_eq!(server.client().get("lv:old").as_deref(), Some(&b"old"[..]));
}

#[test]
fn a_client_that_stops_reading_a_long_value_is_cut_off_and_others_carry_on() {
    let server = big_server();
    let pool = format!(
        "[pools.main]\nservers = [\"{}\"]\ntimeout_ms = 300\n",
        server.spec()
    );
    let router = router(&config(&pool, "", "127.0.0.1:0"));
    let long = value(48 << 20, 7);
    {
        let mut c = server.client();
        let writer = send_in_background(&c, store_cmd("set", "lv:huge", &long, ""));
        assert_eq!(c.reply(), b"STORED\r\n");
        writer.join().expect("writer");
    }
    let mut other = connect(&router, 0);
    other.set("lv:small", b"s");
    let stalled = connect(&router, 0);
    let mut raw = stalled.writer();
    raw.write_all(b"get lv:huge\r\n").expect("send get");
    // Others on the same worker and server, from the start of the stream until the stalled
    // client is cut off, are answered: the stream waits at most a quarter of the 300 ms timeout
    // for the window, so a request queued behind it does not time out.
    let mut slowest = Duration::ZERO;
    let cut = poll_until(Duration::from_secs(10), || {
        let started = Instant::now();
        assert_eq!(other.get("lv:small").as_deref(), Some(&b"s"[..]));
        slowest = slowest.max(started.elapsed());
        (other.stat("streams_broken") == Some(1)).then_some(())
    });
    assert!(cut.is_some(), "the stalled stream was not cut off");
    eprintln!("slowest request beside the stalled stream: {slowest:?}");
    // The stalled client gets part of the value, then the router closes the connection.
    let mut got = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    raw.read_to_end(&mut got)
        .expect("the router closes the stalled client's connection");
    assert!(got.len() < long.len(), "received {} bytes", got.len());
    assert_eq!(other.get("lv:small").as_deref(), Some(&b"s"[..]));
}

#[test]
fn a_server_that_dies_mid_value_closes_the_clients_connection() {
    // Longer than every buffer between memcached and the client together, so that memcached
    // is still sending when it dies.
    let mut server = Memcached::start_with(&["-I", "128m", "-m", "512"]);
    let long = value(96 << 20, 11);
    {
        let mut c = server.client();
        let writer = send_in_background(&c, store_cmd("set", "lv:dying", &long, ""));
        assert_eq!(c.reply(), b"STORED\r\n");
        writer.join().expect("writer");
    }
    let router = router(&config(&single_pool(&server), "", "127.0.0.1:0"));
    let client = connect(&router, 0);
    let mut raw = client.writer();
    raw.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    raw.write_all(b"get lv:dying\r\n").expect("send get");
    let header = format!("VALUE lv:dying 3 {}\r\n", long.len());
    let mut start = vec![0; header.len() + (1 << 20)];
    raw.read_exact(&mut start).expect("the start of the value");
    assert_eq!(&start[..header.len()], header.as_bytes());
    server.kill();
    let mut rest = Vec::new();
    raw.read_to_end(&mut rest)
        .expect("the router closes the connection when the value breaks off");
    let got = start.len() - header.len() + rest.len();
    assert!(got < long.len(), "received {got} of {} bytes", long.len());
    assert!(long.starts_with(&[&start[header.len()..], &rest[..]].concat()));
    let mut other = connect(&router, 0);
    assert_eq!(other.stat("streams_broken"), Some(1));
}

#[test]
fn a_reload_that_drops_the_server_lets_its_stream_finish() {
    let old = big_server();
    let new = big_server();
    let long = value(48 << 20, 12);
    {
        let mut c = old.client();
        let writer = send_in_background(&c, store_cmd("set", "lv:moving", &long, ""));
        assert_eq!(c.reply(), b"STORED\r\n");
        writer.join().expect("writer");
    }
    // A long timeout: the client pauses for the reload, and must not be cut off meanwhile.
    let pool = |server: &Memcached| {
        format!(
            "[pools.main]\nservers = [\"{}\"]\ntimeout_ms = 20000\n",
            server.spec()
        )
    };
    let router = router(&config(&pool(&old), "", "127.0.0.1:0"));
    let mut client = connect(&router, 0);
    let mut raw = client.writer();
    raw.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    raw.write_all(b"get lv:moving\r\n").expect("send get");
    let header = format!("VALUE lv:moving 3 {}\r\n", long.len());
    let mut reply = vec![0; header.len() + (1 << 20)];
    raw.read_exact(&mut reply).expect("the start of the value");
    // The new configuration no longer names the server the value streams from.
    let text = config(&pool(&new), "", "127.0.0.1:0");
    let next = switchyard_tests::Config::from_toml(&text, std::path::Path::new("next.toml"))
        .expect("valid config");
    router.reload_with(next).expect("reload");
    let mut rest = vec![0; long.len() + 7 - (1 << 20)];
    raw.read_exact(&mut rest)
        .expect("the rest of the value, across the reload");
    reply.extend_from_slice(&rest);
    assert!(reply[header.len()..header.len() + long.len()] == long[..]);
    assert_eq!(&reply[header.len() + long.len()..], b"\r\nEND\r\n");
    // The connection goes on, on the new configuration, and holds nothing of the old one.
    assert_eq!(client.request(b"get lv:moving\r\n"), b"END\r\n");
    assert_eq!(client.stat("streams_broken"), Some(0));
    poll_until(Duration::from_secs(5), || {
        (client.stat("generations_alive") == Some(1)).then_some(())
    })
    .expect("the old generation is freed while the connection stays open");
}

/// Reads `n` bytes as fast as they come.
fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read reply");
    buf
}

#[test]
fn the_routers_memory_does_not_grow_with_the_values_it_carries() {
    const CLIENTS: usize = 4;
    const LEN: usize = 32 << 20;
    let server = big_server();
    let pool = single_pool(&server);
    let router = RouterProcess::start("long-values", |listen| {
        config(&pool, "watch = false", listen)
    });
    // Warm up: connections, plugin instances, buffers.
    let mut warm = Client::connect(router.addr());
    warm.set("lv:warm", &value(300 << 10, 8));
    assert!(warm.get("lv:warm").is_some());
    let before = router.peak_rss();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = router.addr();
            thread::spawn(move || {
                let long = value(LEN, 10 + i as u32);
                let key = format!("lv:m{i}");
                let mut stream = TcpStream::connect(addr).expect("connect");
                let mut writer = stream.try_clone().expect("clone");
                let cmd = store_cmd("set", &key, &long, "");
                let sender = thread::spawn(move || writer.write_all(&cmd).expect("send set"));
                assert_eq!(read_exactly(&mut stream, 8), b"STORED\r\n");
                sender.join().expect("sender");
                stream
                    .write_all(format!("get {key}\r\n").as_bytes())
                    .expect("send get");
                let header = format!("VALUE {key} 3 {LEN}\r\n");
                let reply = read_exactly(&mut stream, header.len() + LEN + 7);
                assert_eq!(&reply[..header.len()], header.as_bytes());
                assert!(reply[header.len()..header.len() + LEN] == long[..]);
                assert_eq!(&reply[header.len() + LEN..], b"\r\nEND\r\n");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    let grown = router.peak_rss().saturating_sub(before);
    eprintln!(
        "peak memory grew by {:.1} MiB carrying {CLIENTS} x {} MiB",
        grown as f64 / (1 << 20) as f64,
        LEN >> 20
    );
    let mut stats = Client::connect(router.addr());
    // And the warm-up's value.
    assert_eq!(stats.stat("streamed_stores"), Some(CLIENTS as u64 + 1));
    assert_eq!(stats.stat("streamed_values"), Some(CLIENTS as u64 + 1));
    // Held whole, the values would take 128 MiB at least. Streamed, each connection holds a
    // read buffer and a window of chunks.
    assert!(
        grown < 32 << 20,
        "peak memory grew by {} MiB carrying {CLIENTS} x {} MiB",
        grown >> 20,
        LEN >> 20
    );
}

/// A long value whose route needs it whole (a fan-out) is buffered, and routed once: the
/// plugin's decision made when its line arrived is the one carried out when its data is in.
/// The plugin traps if asked twice for the same key.
#[test]
fn a_long_value_buffered_for_a_fan_out_is_routed_once() {
    let servers = [big_server(), big_server()];
    let dir = TestDir::new("route-once");
    dir.write("fan.wasm", wasm::fanning_out_once_plugin());
    let pools: String = servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "[pools.p{i}]\nservers = [\"{}\"]\ntimeout_ms = 5000\n\n",
                s.spec()
            )
        })
        .collect();
    let router = router_in(
        &dir,
        &format!(
            "[server]\nworkers = 1\nmax_value_bytes = {MAX_VALUE}\n\n\
             [[listeners]]\naddress = \"127.0.0.1:0\"\nroute = \"r\"\n\n{pools}\
             [routes.r]\nplugin = \"fan.wasm\"\nchildren = [\"p0\", \"p1\"]\n"
        ),
    );
    let mut client = connect(&router, 0);
    // Larger than the socket buffers: its line is parsed long before its data is in.
    let long = value(8 << 20, 5);
    let replies = run(&mut client, &[(store_cmd("set", "fan:once", &long, ""), 1)]);
    assert_eq!(replies[0], b"STORED\r\n", "{}", show(&replies[0]));
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(
            server.client().get("fan:once").map(|v| v.len()),
            Some(long.len()),
            "server {i} holds the value"
        );
    }
    assert_eq!(client.stat("plugin_faults"), Some(0));
}
