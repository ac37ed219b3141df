//! A plugin stuck in a loop on every call costs its own listener's requests, not another
//! listener's throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use switchyard_tests::load::Load;
use switchyard_tests::ports::{free_port, poll_until};
use switchyard_tests::process::RouterProcess;
use switchyard_tests::{Client, Memcached, wasm};

/// A plugin stuck in a loop on every call, on one listener, under a steady stream of requests:
/// the other listener, which reaches the same pool without any plugin of the route, keeps at
/// least 80% of its throughput. The default `call_timeout_ms` is part of what is tested, so
/// the config does not set it.
#[test]
fn a_plugin_looping_on_every_call_leaves_another_listener_most_of_its_throughput() {
    let _heavy = switchyard_tests::heavy();
    let server = Memcached::start();
    let (bad_port, plain_port) = (free_port(), free_port());
    let config = format!(
        "[server]\nworkers = 2\nwatch = false\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{bad_port}\"\nroute = \"bad\"\n\n\
         [[listeners]]\naddress = \"127.0.0.1:{plain_port}\"\nroute = \"p\"\n\n\
         [pools.p]\nservers = [\"{}\"]\n\n\
         [routes.bad]\nplugin = \"bad.wasm\"\nchildren = [\"p\"]\n",
        server.spec()
    );
    let router = RouterProcess::start_listening(
        "isolation-looping",
        &config,
        &[bad_port, plain_port],
        &[("bad.wasm", wasm::looping_every_call_plugin())],
    );
    // Interleaved windows, alone then beside the looping plugin, so that what else runs on
    // the machine (other tests, on two cores) weighs on both sides alike; the median of the
    // rounds' ratios, so that one round another test disturbed does not decide.
    const ROUNDS: usize = 6;
    let window = Duration::from_millis(500);

    // Four clients on the plain listener, each taking 16 connections in turn: every client
    // has connections on both workers. The same connections are measured alone and beside
    // the looping plugin.
    let load = Load::start(router.listener(1), 4, 16, "plain");
    load.wait_served(16);

    // Two clients hammer the looping listener while `active`: one get at a time each, a
    // millisecond apart (up to ~2,000 requests a second between them). The pause keeps what is
    // measured the plugin's hold on its workers, not the CPU that serving any traffic takes on
    // two cores. Their connections are open before either sends, so the workers share them too.
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let hammers: Vec<JoinHandle<(u64, u64)>> = (0..2)
        .map(|h| (h, Client::connect(router.listener(0))))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(h, mut client)| {
            let (stop, active, replies) = (stop.clone(), active.clone(), replies.clone());
            std::thread::spawn(move || {
                let (mut errors, mut other) = (0, 0);
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if active.load(Ordering::Relaxed) {
                        let reply = client.request(format!("get loop-{h}-{i}\r\n").as_bytes());
                        if reply.starts_with(b"SERVER_ERROR") {
                            errors += 1;
                        } else {
                            other += 1;
                        }
                        replies.fetch_add(1, Ordering::Relaxed);
                        i += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                (errors, other)
            })
        })
        .collect();

    let (mut alone_ok, mut alone_time, mut beside_ok, mut beside_time) = (0, 0.0, 0, 0.0);
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut alone_max, mut beside_max) = (Duration::ZERO, Duration::ZERO);
    let mut hammering = None;
    for round in 0..ROUNDS {
        let from = load.phase();
        std::thread::sleep(window);
        let to = load.phase();
        alone_ok += to.0.ok - from.0.ok;
        alone_time += to.1.duration_since(from.1).as_secs_f64();
        alone_max = alone_max.max(to.0.max_latency);
        let alone_rate = (to.0.ok - from.0.ok) as f64 / to.1.duration_since(from.1).as_secs_f64();

        active.store(true, Ordering::Relaxed);
        if round == 0 {
            // The looping listener has answered before the first window beside it starts.
            hammering = poll_until(Duration::from_secs(20), || {
                (replies.load(Ordering::Relaxed) >= 2).then_some(())
            });
        }
        let from = load.phase();
        std::thread::sleep(window);
        let to = load.phase();
        active.store(false, Ordering::Relaxed);
        beside_ok += to.0.ok - from.0.ok;
        beside_time += to.1.duration_since(from.1).as_secs_f64();
        beside_max = beside_max.max(to.0.max_latency);
        let beside_rate = (to.0.ok - from.0.ok) as f64 / to.1.duration_since(from.1).as_secs_f64();
        ratios.push(beside_rate / alone_rate.max(1.0));
    }
    ratios.sort_by(f64::total_cmp);
    let median = (ratios[ROUNDS / 2 - 1] + ratios[ROUNDS / 2]) / 2.0;
    stop.store(true, Ordering::Relaxed);
    let (mut hammer_errors, mut hammer_other) = (0, 0);
    for h in hammers {
        let (e, o) = h.join().expect("a hammering client panicked");
        hammer_errors += e;
        hammer_other += o;
    }
    let (all, _) = load.stop();
    let (baseline, beside) = (alone_ok as f64 / alone_time, beside_ok as f64 / beside_time);

    eprintln!(
        "looping plugin on listener 1: listener 2 {baseline:.0} ok/s alone, {beside:.0} ok/s \
         beside it ({:.0}% overall, median of {ROUNDS} interleaved rounds of {window:?} \
         {:.0}%); listener 2 max latency {alone_max:?} alone, {beside_max:?} beside it; the \
         looping listener answered {hammer_errors} SERVER_ERROR and {hammer_other} other replies",
        100.0 * beside / baseline,
        100.0 * median,
    );
    assert!(hammering.is_some(), "the looping listener never answered");
    assert_eq!(
        (all.server_errors, all.other_count),
        (0, 0),
        "listener 2 failed requests: {:?}",
        all.other
    );
    assert_eq!(
        hammer_other, 0,
        "the looping listener answered other than SERVER_ERROR"
    );
    assert!(
        median >= 0.8,
        "listener 2 fell to {:.0}% of its throughput beside a looping plugin (rounds: {ratios:?})",
        100.0 * median
    );
}
