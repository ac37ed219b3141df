//! From one parsed client request to a [`Pending`] reply: which commands are answered locally,
//! which are routed by key, and how a multi-key retrieval is split per destination.

use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{Command, DECODED_KEY_BUF, ReplyKind, ReplyStatus, Request, replies};
use switchyard_sdk::abi::op;

use crate::execute::{Origin, Req, worst_of};
use crate::plugin::RouteInput;
use crate::reply::{Outcome, Pending, merge_retrieval};
use crate::route::Resolved;
use crate::stats::tally::Tally;
use crate::tls::Identity;
use crate::wire::Wire;
use crate::worker::{LocalGeneration, Worker};

const CRLF: Bytes = Bytes::from_static(b"\r\n");

/// What the session does after a request.
#[derive(Debug)]
pub enum Next {
    /// Queue this reply and keep reading; count it as the tally says when it goes out.
    Reply(Pending, Tally),
    /// Nothing to answer (`noreply`); keep reading.
    Silent,
    /// Answer what is queued, then close (`quit`).
    Close,
}

/// Where a client's requests come from: the listener it connected to, and who it is (from the
/// certificate it presented on a mutual-TLS listener), which plugins may route by.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The listener's address.
    pub listener: SocketAddr,
    /// The client's identity (`tls::identity`), if it has one.
    pub identity: Option<Identity>,
}

impl Caller {
    /// The listener's place in `shared`'s config and the identity; `None` when a reload
    /// removed the listener (its connections close at their next request).
    fn via<'a>(&'a self, shared: &crate::generation::Generation) -> Option<Via<'a>> {
        Some(Via {
            listener: shared.listener_index(self.listener)?,
            identity: self.identity.as_ref(),
        })
    }
}

/// [`Caller`] as one generation sees it: the listener's index, and the identity.
#[derive(Debug, Clone, Copy)]
struct Via<'a> {
    listener: u32,
    identity: Option<&'a Identity>,
}

/// Handles one request. `frame` holds exactly the request's bytes (line and data block), and
/// the request's ranges index into it.
pub fn dispatch(worker: &Worker, request: &Request, frame: Bytes, caller: &Caller) -> Next {
    let generation = worker.generation();
    // A connection on a listener a reload removed is closed at its next request.
    let Some(via) = caller.via(&generation.shared) else {
        return Next::Close;
    };
    let stats = &worker.stats;
    let command = request.command;
    stats.command(command);
    let started = begin(worker, &generation);
    // Keys a classic retrieval looks up, for its hits and misses.
    let mut keys = 0;
    let pending = match command {
        Command::Quit => return Next::Close,
        Command::Version => Pending::Ready(Outcome {
            frame: Bytes::from(format!("VERSION {}\r\n", crate::VERSION_STRING)),
            status: ReplyStatus::Version,
        }),
        Command::Verbosity => Pending::Ready(Outcome::fixed(b"OK\r\n", ReplyStatus::Ok)),
        Command::Stats => {
            let text = match &frame[request.args.clone()] {
                b"" => worker.router_stats.render(),
                b"backends" => crate::stats::render_backends(&generation.shared.destinations),
                b"tls" => worker.router_stats.identities.render(),
                b"plugins" => crate::stats::render_plugins(&generation.shared),
                b"config" => worker.router_stats.render_config(),
                b"hotkeys" => worker.router_stats.hotkeys.render(),
                b"routes" => crate::stats::render_routes(&generation.shared),
                _ => {
                    return Next::Reply(
                        Pending::Ready(Outcome::fixed(b"ERROR\r\n", ReplyStatus::Error)),
                        Tally::local(command),
                    );
                }
            };
            Pending::Ready(Outcome {
                frame: Bytes::from(text),
                status: ReplyStatus::Ok,
            })
        }
        Command::FlushAll => flush_all(&generation, via, request, &frame),
        // `get __switchyard__.…`: the router answers about itself (`introspect.rs`).
        Command::Get | Command::Gets | Command::Gat | Command::Gats
            if crate::introspect::asked(request, &frame) =>
        {
            let (listener, identity) = (via.listener, via.identity);
            crate::introspect::retrieval(&generation, listener, identity, request, &frame)
        }
        Command::Get | Command::Gets | Command::Gat | Command::Gats => {
            if generation.shared.config.stats.hotkeys {
                for key in request.keys(&frame) {
                    if worker.hot_key_due() {
                        worker.sample_hot_key(&frame[key], 0);
                    }
                }
            }
            let (pending, looked_up) = retrieval(&generation, via, request, &frame);
            keys = looked_up;
            pending
        }
        // After everything before it, which the in-order writer guarantees.
        Command::MetaNoop => Pending::Ready(Outcome::fixed(replies::MN, ReplyStatus::Ok)),
        _ => {
            if generation.shared.config.stats.hotkeys && worker.hot_key_due() {
                let mut decoded = [0u8; DECODED_KEY_BUF];
                let key = request.routing_key(&frame, &mut decoded);
                worker.sample_hot_key(key, request.value.len());
            }
            keyed(&generation, request, &frame, via, None)
        }
    };
    let tally = finish(worker, &generation, command, keys, started);
    answer(request, pending, tally)
}

/// Starts timing and tracing a request's route on `generation`: when it was dispatched (0 when
/// `[stats] timings` is off).
fn begin(worker: &Worker, generation: &LocalGeneration) -> u32 {
    generation.trail.start();
    if generation.shared.config.stats.timings {
        worker.now_us()
    } else {
        0
    }
}

/// The tally of a request of `command` dispatched at `started`, with the route nodes it
/// reached, each of which counts it.
fn finish(
    worker: &Worker,
    generation: &LocalGeneration,
    command: Command,
    keys: u32,
    started: u32,
) -> Tally {
    let tally = generation
        .trail
        .take(command, keys, started, generation.shared.number);
    for &n in tally.nodes() {
        if let Some(node) = generation.shared.nodes.get(usize::from(n)) {
            node.stats.request(worker.id);
        }
    }
    tally
}

/// A single-key command: routed from the listener's root, or carried out by `held`, a route
/// already decided for it, and sent.
fn keyed(
    generation: &Rc<LocalGeneration>,
    request: &Request,
    frame: &Bytes,
    via: Via<'_>,
    held: Option<Resolved>,
) -> Pending {
    let mut decoded = [0u8; DECODED_KEY_BUF];
    let input = keyed_input(request, frame, &mut decoded, via);
    let kind = request.command.reply_kind().unwrap_or(ReplyKind::Line);
    let wire = forwarded(request, frame);
    let req = Req {
        input,
        wire: &wire,
        kind,
        origin: Origin::Client { request, frame },
    };
    let root = generation.shared.roots[via.listener as usize];
    match held {
        Some(resolved) => generation.run(resolved, &req),
        // A meta get's long value may stream to the client.
        None if request.command == Command::MetaGet => generation.execute_for_client(root, &req),
        None => generation.execute(root, &req),
    }
}

/// What the client is sent of `pending`, the reply to `request`: nothing for `noreply`, and
/// for a meta command with `q` only what `q` does not hide.
pub fn answer(request: &Request, pending: Pending, tally: Tally) -> Next {
    if request.noreply {
        Next::Silent
    } else if request.quiet {
        Next::Reply(Pending::Quiet(Box::new(pending), request.command), tally)
    } else {
        Next::Reply(pending, tally)
    }
}

/// What a plugin is given to route `key` of `request`: built here, once per key, for every
/// route a client's request takes.
fn route_input<'a>(request: &Request, key: &'a [u8], via: Via<'a>) -> RouteInput<'a> {
    RouteInput {
        op: request.command.op().map_or(0, switchyard_sdk::Op::code),
        key,
        flags: request.flags,
        exptime: request.exptime,
        value_len: request.value.len() as u32,
        listener: via.listener,
        identity: via.identity,
    }
}

/// The bytes a backend receives for a single-key command: the client's own bytes, minus
/// `noreply` and a meta command's `q` (the router always reads the backend's reply itself, to
/// keep the connection's replies in step, and drops what the client asked not to see).
fn forwarded(request: &Request, frame: &Bytes) -> Wire {
    if request.noreply_at.is_none() && request.quiet_span.is_none() {
        return Wire::one(frame.clone());
    }
    let mut w = forwarded_line(request, frame);
    if request.command.has_data_block() {
        w.push(frame.slice(request.data_block()));
    }
    w
}

/// What a plugin is given for a single-key command whose ranges index `buf`. A base64 meta key
/// is routed by its decoded bytes, written to `decoded`.
fn keyed_input<'a>(
    request: &Request,
    buf: &'a [u8],
    decoded: &'a mut [u8; DECODED_KEY_BUF],
    via: Via<'a>,
) -> RouteInput<'a> {
    route_input(request, request.routing_key(buf, decoded), via)
}

/// What becomes of a store whose long value is still arriving ([`stream_route`]).
#[derive(Debug)]
pub enum StreamRoute {
    /// Its route ends at one server: stream the value there.
    Server(StreamTarget),
    /// Its route answers without a server (a plugin's reply, a plugin fault): answer, and drop
    /// the value as it arrives.
    Answer(Outcome, Tally),
    /// Its route needs the whole value (a fan-out, a failover, a rewrite): buffer it, and
    /// carry out this route once it is in ([`dispatch_held`]), without asking the plugins
    /// again. `None` when the value is buffered for another reason (it was not routed).
    Whole(Option<Box<HeldRoute>>),
    /// Its listener was removed by a reload: close, as for any request.
    Close,
}

/// Routes a store whose long value is still arriving. `line` holds the request's command line,
/// which its ranges index. Counts the request unless it is buffered (dispatch counts it then).
pub fn stream_route(
    worker: &Worker,
    request: &Request,
    line: &[u8],
    caller: &Caller,
) -> StreamRoute {
    let generation = worker.generation();
    let Some(via) = caller.via(&generation.shared) else {
        return StreamRoute::Close;
    };
    let mut decoded = [0u8; DECODED_KEY_BUF];
    let input = keyed_input(request, line, &mut decoded, via);
    let root = generation.shared.roots[via.listener as usize];
    let started = begin(worker, &generation);
    let resolved = generation.resolve(root, &input);
    let tally = finish(worker, &generation, request.command, 0, started);
    match resolved {
        Resolved::Server { dest, timeout } => {
            worker.stats.command(request.command);
            StreamRoute::Server(StreamTarget {
                generation,
                dest,
                timeout,
                tally,
            })
        }
        Resolved::Reply(outcome) => {
            worker.stats.command(request.command);
            StreamRoute::Answer(outcome, tally)
        }
        plan @ Resolved::Plan { .. } => StreamRoute::Whole(Some(Box::new(HeldRoute {
            generation,
            resolved: plan,
            tally,
        }))),
    }
}

/// A long value's route, decided when its command line arrived and carried out once its data
/// is in (the plugins are asked once per request).
#[derive(Debug)]
pub struct HeldRoute {
    generation: Rc<LocalGeneration>,
    resolved: Resolved,
    /// Counted when the route was decided; timed from then (the value's upload included).
    tally: Tally,
}

/// Carries out `held` for `request`, the long value it was decided for, now whole in `frame`.
pub fn dispatch_held(
    worker: &Worker,
    request: &Request,
    frame: Bytes,
    caller: &Caller,
    held: HeldRoute,
) -> Next {
    let HeldRoute {
        generation,
        resolved,
        tally,
    } = held;
    let Some(via) = caller.via(&generation.shared) else {
        return Next::Close;
    };
    worker.stats.command(request.command);
    let pending = keyed(&generation, request, &frame, via, Some(resolved));
    answer(request, pending, tally)
}

/// A single server a long value streams to ([`stream_route`]).
#[derive(Debug)]
pub struct StreamTarget {
    /// The generation that routed it.
    pub generation: Rc<LocalGeneration>,
    /// The server's destination index in it.
    pub dest: usize,
    /// The pool's request timeout.
    pub timeout: std::time::Duration,
    /// How its reply is counted.
    pub tally: Tally,
}

/// The command line a backend is sent, without `noreply` or `q`: all of a streamed store but
/// its data block, which follows as it arrives. `line` holds the line the request's ranges
/// index.
pub fn forwarded_line(request: &Request, line: &Bytes) -> Wire {
    let [head, tail] = request.forwarded_pieces();
    let mut w = Wire::one(line.slice(head));
    if !tail.is_empty() {
        w.push(line.slice(tail));
    }
    w.push(CRLF);
    w
}

/// Deletes `key` through the listener's route without answering anyone: what memcached does to
/// the old value when it refuses a value as too large. A base64 meta key is deleted with
/// `md <key> b` and routed by its decoded bytes.
pub fn delete_quietly(worker: &Worker, key: Bytes, base64: bool, caller: &Caller) {
    let generation = worker.generation();
    let Some(via) = caller.via(&generation.shared) else {
        return;
    };
    let (verb, suffix, kind): (&[u8], &[u8], _) = if base64 {
        (b"md ", b" b\r\n", ReplyKind::MetaDelete)
    } else {
        (b"delete ", b"\r\n", ReplyKind::Line)
    };
    let mut line = BytesMut::with_capacity(verb.len() + key.len() + suffix.len());
    line.extend_from_slice(verb);
    line.extend_from_slice(&key);
    line.extend_from_slice(suffix);
    let mut decoded = [0u8; DECODED_KEY_BUF];
    let routing_key: &[u8] = if base64 {
        match switchyard_protocol::decode_key(&key, &mut decoded) {
            Some(k) => k,
            None => return,
        }
    } else {
        &key
    };
    let input = RouteInput {
        op: if base64 { op::META_DELETE } else { op::DELETE },
        key: routing_key,
        flags: 0,
        exptime: 0,
        value_len: 0,
        listener: via.listener,
        identity: via.identity,
    };
    let root = generation.shared.roots[via.listener as usize];
    let wire = Wire::one(line.freeze());
    let origin = Origin::Built(if base64 {
        Command::MetaDelete
    } else {
        Command::Delete
    });
    drop(generation.execute(
        root,
        &Req {
            input,
            wire: &wire,
            kind,
            origin,
        },
    ));
}

/// `get`/`gets`/`gat`/`gats`: every key is routed on its own; keys bound for the same server are
/// sent as one request, and the replies are merged back into the client's key order.
fn retrieval(
    generation: &Rc<LocalGeneration>,
    via: Via<'_>,
    request: &Request,
    frame: &Bytes,
) -> (Pending, u32) {
    let root = generation.shared.roots[via.listener as usize];
    let mut keys = request.keys(frame);
    let Some(first) = keys.next() else {
        // `gat <exptime>` with no key: memcached answers an empty retrieval.
        return (
            Pending::Ready(Outcome::fixed(b"END\r\n", ReplyStatus::Miss)),
            0,
        );
    };
    let Some(second) = keys.next() else {
        // One key: the client's bytes go through unchanged.
        generation.stats_keys(1);
        let input = route_input(request, &frame[first.clone()], via);
        let wire = forwarded(request, frame);
        let req = Req {
            input,
            wire: &wire,
            kind: ReplyKind::Retrieval,
            origin: Origin::Client { request, frame },
        };
        return (generation.execute_for_client(root, &req), 1);
    };

    // Several keys: resolve each, batch the ones that end at a single server.
    let verb = &frame[request.line.start..request.keys.start];
    // Where each part goes: one server (its keys batched into one line), or one key's own
    // route (a reply, a plan) already under way.
    enum Part {
        Server {
            dest: usize,
            timeout: std::time::Duration,
            /// Bytes of the keys in its line, separators included.
            keys_len: usize,
        },
        Own(Pending),
    }
    let mut parts: Vec<Part> = Vec::with_capacity(4);
    let mut order: Vec<(Range<usize>, usize)> = Vec::with_capacity(request.keys(frame).count());
    for key in [first, second].into_iter().chain(keys) {
        let input = route_input(request, &frame[key.clone()], via);
        match generation.resolve(root, &input) {
            Resolved::Server { dest, timeout } => {
                let found = parts
                    .iter_mut()
                    .position(|p| matches!(p, Part::Server { dest: d, .. } if *d == dest));
                let idx = found.unwrap_or_else(|| {
                    parts.push(Part::Server {
                        dest,
                        timeout,
                        keys_len: 0,
                    });
                    parts.len() - 1
                });
                if let Some(Part::Server { keys_len, .. }) = parts.get_mut(idx) {
                    *keys_len += key.len() + 1;
                }
                order.push((key, idx));
            }
            other => {
                // A reply or a plan for this key alone.
                let mut line = BytesMut::with_capacity(verb.len() + key.len() + 2);
                line.extend_from_slice(verb);
                line.extend_from_slice(&frame[key.clone()]);
                line.extend_from_slice(b"\r\n");
                let wire = Wire::one(line.freeze());
                let req = Req {
                    input,
                    wire: &wire,
                    kind: ReplyKind::Retrieval,
                    origin: Origin::Client { request, frame },
                };
                parts.push(Part::Own(generation.run(other, &req)));
                order.push((key, parts.len() - 1));
            }
        }
    }
    generation.stats_keys(order.len() as u64);
    let looked_up = u32::try_from(order.len()).unwrap_or(u32::MAX);

    if let [Part::Server { dest, timeout, .. }] = &parts[..] {
        // Every key lives on one server: forward the client's bytes unchanged.
        let pending = generation.send(
            *dest,
            *timeout,
            &forwarded(request, frame),
            ReplyKind::Retrieval,
        );
        return (pending, looked_up);
    }
    // Every server's line, built in one buffer: `<verb><k1> <k2> ...\r\n`, keys in the
    // client's order.
    let lines_len: usize = parts
        .iter()
        .map(|p| match p {
            Part::Server { keys_len, .. } => verb.len() + keys_len + 1,
            Part::Own(_) => 0,
        })
        .sum();
    let mut lines = BytesMut::with_capacity(lines_len);
    let sent: Vec<Pending> = parts
        .into_iter()
        .enumerate()
        .map(|(idx, p)| match p {
            Part::Own(pending) => pending,
            Part::Server { dest, timeout, .. } => {
                lines.extend_from_slice(verb);
                let mut sep = false;
                for (key, _) in order.iter().filter(|(_, part)| *part == idx) {
                    if sep {
                        lines.extend_from_slice(b" ");
                    }
                    lines.extend_from_slice(&frame[key.clone()]);
                    sep = true;
                }
                lines.extend_from_slice(b"\r\n");
                let line = lines.split().freeze();
                generation.send(dest, timeout, &Wire::one(line), ReplyKind::Retrieval)
            }
        })
        .collect();
    (
        Pending::Merged(Box::pin(merge_retrieval(frame.clone(), order, sent))),
        looked_up,
    )
}

/// `flush_all` goes to every server the listener's route can reach; the reply is the worst.
fn flush_all(
    generation: &Rc<LocalGeneration>,
    via: Via<'_>,
    request: &Request,
    frame: &Bytes,
) -> Pending {
    let root = generation.shared.roots[via.listener as usize];
    let wire = forwarded(request, frame);
    let parts: Vec<Pending> = generation
        .shared
        .reachable_servers(root)
        .into_iter()
        .map(|(dest, timeout)| generation.send(dest, timeout, &wire, ReplyKind::Line))
        .collect();
    // No server to flush: nothing failed.
    worst_of(parts).unwrap_or_else(|| Pending::Ready(Outcome::fixed(b"OK\r\n", ReplyStatus::Ok)))
}
