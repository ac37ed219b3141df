//! A burst that memcached itself would absorb gets no errors: ten thousand clients, each
//! sending one `get` of the same hot key at once, all get the value. The router queues a
//! server's requests by the bytes they hold, not by a count a legitimate burst could reach.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached};

/// Clients in the burst, when this process may open that many files.
const CLIENTS: usize = 10_000;
/// Files this test process keeps for everything else (other tests run beside this one), at
/// most: a quarter of the limit on a machine with a low one.
const HEADROOM: u64 = 2_000;
const KEY: &str = "burst:hot";
const VALUE: &[u8] = b"a value every client asks for at once";

#[test]
fn ten_thousand_clients_asking_for_one_hot_key_at_once_all_get_it() {
    let _heavy = switchyard_tests::heavy();
    // This process holds the clients; the router, a process of its own, the other ends (it
    // raises its own limit the same way).
    let files = switchyard::server::raise_open_file_limit().expect("raise the open file limit");
    let clients = CLIENTS.min(files.saturating_sub(HEADROOM) as usize);
    println!("open file limit {files}: {clients} clients");
    assert!(
        clients >= 1_000,
        "the open file limit ({files}) allows too few clients"
    );

    let server = Memcached::start();
    let spec = server.spec();
    // One worker: the whole burst meets at one server queue.
    let router = RouterProcess::start("burst", |listen| {
        format!(
            "[server]\nworkers = 1\nwatch = false\n\n[[listeners]]\naddress = \"{listen}\"\n\
             route = \"main\"\n\n[pools.main]\nservers = [\"{spec}\"]\n"
        )
    });
    let mut setup = Client::connect(router.addr());
    setup.set(KEY, VALUE);

    let mut streams: Vec<TcpStream> = (0..clients)
        .map(|i| {
            let s = TcpStream::connect(router.addr())
                .unwrap_or_else(|e| panic!("client {i} of {clients} cannot connect: {e}"));
            s.set_nodelay(true).expect("nodelay");
            s.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("read timeout");
            s
        })
        .collect();

    // Every request waits in its socket while the router is stopped, so that it finds all of
    // them readable at once when it resumes.
    let request = format!("get {KEY}\r\n");
    router.pause();
    for s in &mut streams {
        s.write_all(request.as_bytes()).expect("send get");
    }
    let started = Instant::now();
    router.resume();

    let mut expected = format!("VALUE {KEY} 0 {}\r\n", VALUE.len()).into_bytes();
    expected.extend_from_slice(VALUE);
    expected.extend_from_slice(b"\r\nEND\r\n");
    let mut wrong: Vec<(usize, String)> = Vec::new();
    let mut count = 0usize;
    for (i, s) in streams.iter_mut().enumerate() {
        let reply = read_reply(s, expected.len());
        if reply != expected {
            count += 1;
            if wrong.len() < 5 {
                wrong.push((i, String::from_utf8_lossy(&reply).into_owned()));
            }
        }
    }
    println!(
        "{clients} gets answered {:?} after the router resumed; router peak RSS {} MiB",
        started.elapsed(),
        router.peak_rss() >> 20
    );
    assert_eq!(
        count, 0,
        "{count} of {clients} clients got something else than the value, e.g. {wrong:?}"
    );
}

/// Reads until `len` bytes, an error line, or end of stream.
fn read_reply(s: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut reply = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match s.read(&mut reply[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                reply.truncate(got);
                reply.extend_from_slice(format!("<{e}>").as_bytes());
                return reply;
            }
        }
        if reply[..got].ends_with(b"\r\n") && !reply.starts_with(b"VALUE") {
            break;
        }
    }
    reply.truncate(got);
    reply
}
