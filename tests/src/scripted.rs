//! A scripted memcached: a fake backend on a free loopback port that records every byte it
//! receives and answers each request as a script says, so that a test can make a server
//! misbehave in exactly one way and check exactly what the router sent it.
//!
//! ```no_run
//! use switchyard_tests::scripted::{Scripted, Step, When};
//!
//! let server = Scripted::start();
//! server.once(When::key("bad"), Step::Malformed); // the next request for `bad` only
//! server.on(When::command("delete"), Step::Stall); // every delete, until cleared
//! // ... point a router at server.spec(), send requests through it ...
//! let sent = server.wait_requests(1); // what the router sent, as it arrived
//! assert_eq!(sent[0].line, "get bad");
//! ```
//!
//! - **Recording.** Every byte read is kept per connection ([`Scripted::received`]) and cut
//!   into [`Request`]s (a command line, and for storage commands the data block its `<bytes>`
//!   field announces) as soon as each is complete, whether or not it is answered.
//!   [`Scripted::wait_requests`], [`Scripted::wait_bytes`], [`Scripted::wait_closed`] and
//!   [`Scripted::wait_for`] poll with a deadline: tests never sleep and then look.
//! - **Answering.** Each request is answered by the first rule ([`Scripted::on`],
//!   [`Scripted::once`]) whose [`When`] matches it, else by [`Step::Memcached`]: a tiny
//!   in-memory memcached (`get gets set add replace append prepend cas delete touch version
//!   verbosity flush_all`; exptimes are ignored; anything else is `ERROR`), so tests can mix
//!   normal and faulty answers. A connection answers its requests in order, one at a time, as
//!   memcached does; [`Scripted::hold`] stops every connection answering (they still read and
//!   record) until [`Scripted::release`], which is how a test makes sure requests are in flight
//!   together.
//! - **Connections.** [`Scripted::connections`] counts those accepted; [`Accept`] can make the
//!   server close or reset each one as soon as it is accepted, and
//!   [`Scripted::close_connections`] closes those open, busy or idle.
//!
//! Threads: one acceptor, and one per connection reading with a short timeout so that it sees
//! [`Scripted::release`], [`Scripted::close_connections`] and the stop flag. Dropping the server stops and joins them all, which
//! closes every connection it had.

use std::collections::{HashMap, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::show;
use crate::ports::{POLL_INTERVAL, poll_until};

/// How long the `wait_*` methods wait before failing the test. Generous: on a loaded two-core
/// machine the router may take a while, and a passing test never waits this long.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(10);

/// What [`Step::Malformed`] sends: a line no memcached ever answers with.
pub const MALFORMED: &[u8] = b"HELLO FROM NOT MEMCACHED\r\n";

/// What `version` answers in the memcached mode.
pub const VERSION: &[u8] = b"VERSION 1.6.0-scripted\r\n";

/// How long [`Step::ResetAfter`] waits between the part of the reply it sends and the reset,
/// so that the reader has the part before the reset arrives.
const CUT_PAUSE: Duration = Duration::from_millis(20);

/// How a request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// As a tiny memcached would (what requests no rule matches get).
    Memcached,
    /// Exactly these bytes, whatever the request.
    Reply(Vec<u8>),
    /// [`MALFORMED`]: a line that is not a memcached reply.
    Malformed,
    /// The memcached answer followed, in the same write, by these bytes: a reply to a request
    /// nobody made.
    Extra(Vec<u8>),
    /// The memcached answer one byte per write, with this pause after each byte. The
    /// connection goes on reading and recording what it is sent meanwhile (answering it after).
    Drip(Duration),
    /// The memcached answer after this long. The connection reads nothing meanwhile.
    Delay(Duration),
    /// No answer, to this request or to any later one on the same connection (a hung server);
    /// the connection still reads and records what it is sent.
    Stall,
    /// Close the connection (FIN) without answering.
    Close,
    /// Reset the connection (`SO_LINGER` 0, then close: RST) without answering.
    Reset,
    /// The first this many bytes of the memcached answer, then a reset as for [`Step::Reset`].
    ResetAfter(usize),
    /// The first this many bytes of the memcached answer, then silence as for [`Step::Stall`]:
    /// a server that hangs part way through a reply.
    StallAfter(usize),
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Every request.
    Any,
    /// Requests whose command (first word) is this: `get`, `set`, `version` ...
    Command(String),
    /// Requests for this key: any of a retrieval's keys, or a keyed command's key.
    Key(String),
    /// Requests whose command line, without `\r\n`, is exactly this.
    Line(String),
}

impl When {
    /// [`When::Command`].
    pub fn command(command: &str) -> When {
        When::Command(command.to_string())
    }

    /// [`When::Key`].
    pub fn key(key: &str) -> When {
        When::Key(key.to_string())
    }

    /// [`When::Line`].
    pub fn line(line: &str) -> When {
        When::Line(line.to_string())
    }

    fn matches(&self, request: &Request) -> bool {
        match self {
            When::Any => true,
            When::Command(c) => request.command() == c,
            When::Key(k) => request.keys().contains(&k.as_str()),
            When::Line(l) => request.line == *l,
        }
    }
}

/// What the server does with a connection it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accept {
    /// Serve it (the default).
    #[default]
    Serve,
    /// Close it at once (FIN), reading nothing.
    Close,
    /// Reset it at once (RST), reading nothing.
    Reset,
}

/// One request as the server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The connection it came on: 0 for the first one accepted.
    pub connection: usize,
    /// Its command line, without the line end.
    pub line: String,
    /// For a storage command, the data block its `<bytes>` field announced, without the
    /// `\r\n` after it.
    pub data: Option<Vec<u8>>,
}

impl Request {
    /// The first word of the line.
    pub fn command(&self) -> &str {
        self.line.split(' ').next().unwrap_or_default()
    }

    /// The keys it names: all of a `get`'s or `gets`'s words, those after the exptime of a
    /// `gat`/`gats`, the second word of anything else that has one.
    pub fn keys(&self) -> Vec<&str> {
        let words: Vec<&str> = self.line.split(' ').filter(|w| !w.is_empty()).collect();
        match self.command() {
            "get" | "gets" => words.get(1..).unwrap_or_default().to_vec(),
            "gat" | "gats" => words.get(2..).unwrap_or_default().to_vec(),
            _ => words.get(1).into_iter().copied().collect(),
        }
    }
}

/// A scripted memcached server, stopped when dropped.
#[derive(Debug)]
pub struct Scripted {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    stop: AtomicBool,
    held: AtomicBool,
    /// Bumped by [`Scripted::close_connections`]: connections accepted before close.
    closings: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    accept: Accept,
    connections: Vec<Connection>,
    requests: Vec<Request>,
    items: HashMap<String, Item>,
    last_cas: u64,
}

#[derive(Debug)]
struct Rule {
    when: When,
    step: Step,
    /// How many more requests it answers; `None`: all of them.
    left: Option<usize>,
}

#[derive(Debug, Default)]
struct Connection {
    received: Vec<u8>,
    open: bool,
}

#[derive(Debug, Clone)]
struct Item {
    flags: u32,
    data: Vec<u8>,
    cas: u64,
}

impl Scripted {
    /// Starts a server on a free loopback port, in memcached mode with no rules.
    pub fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("scripted server: bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("scripted server: local address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("scripted server {addr}: set non-blocking: {e}"));
        let shared = Arc::new(Shared {
            addr,
            stop: AtomicBool::new(false),
            held: AtomicBool::new(false),
            closings: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("scripted-{}", addr.port()))
                .spawn(move || accept_loop(&shared, &listener))
                .unwrap_or_else(|e| panic!("scripted server {addr}: spawn acceptor: {e}"))
        };
        Scripted {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:PORT`, as `stats backends` names it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// `127.0.0.1:PORT:1`: a server spec with weight 1, for a pool's `servers`.
    pub fn spec(&self) -> String {
        format!("{}:1", self.addr)
    }

    /// Answers every request `when` matches with `step`, until [`Scripted::clear_script`].
    /// Rules are tried in the order they were added; the first that matches answers.
    pub fn on(&self, when: When, step: Step) {
        self.add_rule(when, step, None);
    }

    /// Answers the next `n` requests `when` matches with `step`.
    pub fn times(&self, when: When, n: usize, step: Step) {
        self.add_rule(when, step, Some(n));
    }

    /// Answers the next request `when` matches with `step`.
    pub fn once(&self, when: When, step: Step) {
        self.times(when, 1, step);
    }

    /// Removes every rule: all requests are answered as memcached would again.
    pub fn clear_script(&self) {
        self.shared.state().rules.clear();
    }

    /// What to do with connections accepted from now on.
    pub fn accept(&self, accept: Accept) {
        self.shared.state().accept = accept;
    }

    /// Stops answering, on every connection, until [`Scripted::release`]; requests are still
    /// read and recorded.
    pub fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
    }

    /// Answers again what arrived while held, and what comes next.
    pub fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
    }

    /// Closes (FIN) every connection open now, whatever it is doing, as a memcached with an
    /// idle timeout or one restarting would; connections accepted later are served. Returns
    /// at once: [`Scripted::wait_closed`] waits for a connection to be closed.
    pub fn close_connections(&self) {
        self.shared.closings.fetch_add(1, Ordering::SeqCst);
    }

    /// Stores an item, as `set key <flags> 0 <len>` would.
    pub fn set(&self, key: &str, flags: u32, data: &[u8]) {
        let mut state = self.shared.state();
        state.last_cas += 1;
        let cas = state.last_cas;
        state.items.insert(
            key.to_string(),
            Item {
                flags,
                data: data.to_vec(),
                cas,
            },
        );
    }

    /// The item's data, if it is stored.
    pub fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.state().items.get(key).map(|i| i.data.clone())
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.state().connections.len()
    }

    /// Every byte received on connection `connection` (0: the first accepted) since the last
    /// [`Scripted::forget`]. Panics if there is no such connection.
    pub fn received(&self, connection: usize) -> Vec<u8> {
        let state = self.shared.state();
        match state.connections.get(connection) {
            Some(c) => c.received.clone(),
            None => panic!(
                "scripted server {}: no connection {connection}; {} accepted",
                self.addr,
                state.connections.len()
            ),
        }
    }

    /// Every byte received since the last [`Scripted::forget`], connection after connection.
    pub fn received_all(&self) -> Vec<u8> {
        let state = self.shared.state();
        state
            .connections
            .iter()
            .flat_map(|c| c.received.iter().copied())
            .collect()
    }

    /// Whether connection `connection` is still open: neither side has closed or reset it.
    pub fn is_open(&self, connection: usize) -> bool {
        self.shared
            .state()
            .connections
            .get(connection)
            .is_some_and(|c| c.open)
    }

    /// Every complete request received since the last [`Scripted::forget`], in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.state().requests.clone()
    }

    /// The command lines of [`Scripted::requests`].
    pub fn lines(&self) -> Vec<String> {
        self.shared
            .state()
            .requests
            .iter()
            .map(|r| r.line.clone())
            .collect()
    }

    /// Forgets every byte and request received so far (connections stay counted and keep
    /// their numbers).
    pub fn forget(&self) {
        let mut state = self.shared.state();
        state.requests.clear();
        for c in &mut state.connections {
            c.received.clear();
        }
    }

    /// Waits until at least `n` requests have been received since the last
    /// [`Scripted::forget`]; returns them all. Fails the test after [`WAIT_DEADLINE`].
    pub fn wait_requests(&self, n: usize) -> Vec<Request> {
        self.wait_for(&format!("{n} requests"), |s| {
            s.shared.state().requests.len() >= n
        });
        self.requests()
    }

    /// Waits until at least `n` bytes have been received, over all connections, since the
    /// last [`Scripted::forget`]; returns them (as [`Scripted::received_all`]).
    pub fn wait_bytes(&self, n: usize) -> Vec<u8> {
        self.wait_for(&format!("{n} bytes"), |s| s.received_all().len() >= n);
        self.received_all()
    }

    /// Waits until connection `connection` has been accepted and closed (by either side).
    pub fn wait_closed(&self, connection: usize) {
        self.wait_for(&format!("connection {connection} closed"), |s| {
            s.shared
                .state()
                .connections
                .get(connection)
                .is_some_and(|c| !c.open)
        });
    }

    /// Waits until at least `n` connections have been accepted.
    pub fn wait_connections(&self, n: usize) {
        self.wait_for(&format!("{n} connections accepted"), |s| {
            s.connections() >= n
        });
    }

    /// Polls `done` until it holds, failing the test after [`WAIT_DEADLINE`] with `what` and
    /// everything received so far.
    pub fn wait_for(&self, what: &str, mut done: impl FnMut(&Scripted) -> bool) {
        if poll_until(WAIT_DEADLINE, || done(self).then_some(())).is_none() {
            let state = self.shared.state();
            let received: Vec<String> = state
                .connections
                .iter()
                .map(|c| show(&c.received))
                .collect();
            panic!(
                "scripted server {}: no {what} within {WAIT_DEADLINE:?}; {} connections, \
                 received {received:?}",
                self.addr,
                state.connections.len()
            );
        }
    }

    fn add_rule(&self, when: When, step: Step, left: Option<usize>) {
        self.shared.state().rules.push(Rule { when, step, left });
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            // A panic in a server thread is a bug here, but must not turn a failing test's
            // unwinding into an abort.
            let _ = acceptor.join();
        }
    }
}

impl Shared {
    /// The state, even if a thread panicked holding it (the test is failing already; what it
    /// reports next should still be accurate).
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }

    /// Sleeps `duration`; false if the server began stopping meanwhile (the sleep is then
    /// cut short).
    fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(POLL_INTERVAL));
        }
        false
    }

    fn closed(&self, connection: usize) {
        if let Some(c) = self.state().connections.get_mut(connection) {
            c.open = false;
        }
    }

    /// The step for `request`: the first matching rule's (used up by one), else memcached's.
    fn step_for(&self, request: &Request) -> Step {
        let mut state = self.state();
        let rule = state
            .rules
            .iter_mut()
            .find(|r| r.left != Some(0) && r.when.matches(request));
        match rule {
            Some(rule) => {
                if let Some(left) = &mut rule.left {
                    *left -= 1;
                }
                rule.step.clone()
            }
            None => Step::Memcached,
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let mut threads = Vec::new();
    while !shared.stopping() {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            // Nothing to accept (the listener is non-blocking), or a connection that went
            // away before it was accepted.
            Err(_) => {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            }
        };
        let (id, accept) = {
            let mut state = shared.state();
            let accept = state.accept;
            state.connections.push(Connection {
                received: Vec::new(),
                open: accept == Accept::Serve,
            });
            (state.connections.len() - 1, accept)
        };
        match accept {
            Accept::Serve => {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("scripted-{}-{id}", shared.addr.port()))
                    .spawn(move || serve(&shared, stream, id));
                match spawned {
                    Ok(thread) => threads.push(thread),
                    Err(e) => panic!("scripted server: spawn connection thread: {e}"),
                }
            }
            Accept::Close => drop(stream),
            Accept::Reset => set_reset_on_close(&stream),
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
}

/// How a connection goes on after a request.
enum Flow {
    Continue,
    Stall,
    Closed,
}

/// Serves connection `id` until the peer closes it, a step ends it or the server stops.
fn serve(shared: &Shared, mut stream: TcpStream, id: usize) {
    let ready = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_read_timeout(Some(POLL_INTERVAL)))
        .and_then(|()| stream.set_write_timeout(Some(WAIT_DEADLINE)))
        .and_then(|()| stream.set_nodelay(true));
    if ready.is_err() {
        shared.closed(id);
        return;
    }
    let closings = shared.closings.load(Ordering::SeqCst);
    let mut intake = Intake {
        id,
        unparsed: Vec::new(),
        framed: VecDeque::new(),
        buf: vec![0u8; 64 * 1024],
    };
    let mut stalled = false;
    while !shared.stopping() {
        if shared.closings.load(Ordering::SeqCst) != closings {
            let _ = stream.shutdown(Shutdown::Both);
            break;
        }
        intake.frame(shared);
        while !stalled && !shared.held() {
            let Some((request, chunk_ok)) = intake.framed.pop_front() else {
                break;
            };
            let step = shared.step_for(&request);
            match answer(shared, &mut stream, &request, chunk_ok, step, &mut intake) {
                Flow::Continue => {}
                Flow::Stall => stalled = true,
                Flow::Closed => {
                    shared.closed(id);
                    return;
                }
            }
        }
        match stream.read(&mut intake.buf) {
            Ok(0) => break,
            Ok(n) => intake.took(shared, n),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    shared.closed(id);
}

/// What one connection has read: bytes not yet cut into requests, and requests not yet
/// answered, in order.
struct Intake {
    id: usize,
    unparsed: Vec<u8>,
    framed: VecDeque<(Request, bool)>,
    buf: Vec<u8>,
}

impl Intake {
    /// Records the `n` bytes just read into `buf`.
    fn took(&mut self, shared: &Shared, n: usize) {
        let bytes = &self.buf[..n];
        if let Some(c) = shared.state().connections.get_mut(self.id) {
            c.received.extend_from_slice(bytes);
        }
        self.unparsed.extend_from_slice(bytes);
    }

    /// Cuts every complete request off the bytes read, recording each.
    fn frame(&mut self, shared: &Shared) {
        while let Some((request, chunk_ok, used)) = frame(&self.unparsed, self.id) {
            self.unparsed.drain(..used);
            shared.state().requests.push(request.clone());
            self.framed.push_back((request, chunk_ok));
        }
    }

    /// Reads and records whatever has arrived, without waiting (while an answer is dripped).
    fn poll(&mut self, shared: &Shared, stream: &mut TcpStream) {
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        while let Ok(n @ 1..) = stream.read(&mut self.buf) {
            self.took(shared, n);
        }
        let _ = stream.set_nonblocking(false);
        self.frame(shared);
    }
}

/// Carries out `step` for `request` on `stream`. A write error means the peer has gone: the
/// connection is over.
fn answer(
    shared: &Shared,
    stream: &mut TcpStream,
    request: &Request,
    chunk_ok: bool,
    step: Step,
    intake: &mut Intake,
) -> Flow {
    let memcached = || memcached_reply(&mut shared.state(), request, chunk_ok);
    let sent = match step {
        Step::Memcached => stream.write_all(&memcached()),
        Step::Reply(bytes) => stream.write_all(&bytes),
        Step::Malformed => stream.write_all(MALFORMED),
        Step::Extra(extra) => {
            let mut bytes = memcached();
            bytes.extend_from_slice(&extra);
            stream.write_all(&bytes)
        }
        Step::Drip(gap) => {
            for byte in memcached() {
                if stream.write_all(&[byte]).is_err() || !shared.sleep(gap) {
                    intake.poll(shared, stream);
                    return Flow::Closed;
                }
                intake.poll(shared, stream);
            }
            Ok(())
        }
        Step::Delay(delay) => {
            if !shared.sleep(delay) {
                return Flow::Closed;
            }
            stream.write_all(&memcached())
        }
        Step::Stall => return Flow::Stall,
        Step::Close => {
            let _ = stream.shutdown(Shutdown::Both);
            return Flow::Closed;
        }
        Step::Reset => {
            set_reset_on_close(stream);
            return Flow::Closed;
        }
        Step::ResetAfter(n) => {
            let reply = memcached();
            let _ = stream.write_all(&reply[..n.min(reply.len())]);
            shared.sleep(CUT_PAUSE);
            set_reset_on_close(stream);
            return Flow::Closed;
        }
        Step::StallAfter(n) => {
            let reply = memcached();
            return match stream.write_all(&reply[..n.min(reply.len())]) {
                Ok(()) => Flow::Stall,
                Err(_) => Flow::Closed,
            };
        }
    };
    match sent {
        Ok(()) => Flow::Continue,
        Err(_) => Flow::Closed,
    }
}

/// Makes closing `stream` send a RST rather than a FIN (`SO_LINGER` 0). If the option cannot
/// be set the close is a FIN: still a connection the peer loses.
fn set_reset_on_close(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// The request at the start of `buf`, whether its data block ends in `\r\n`, and how many
/// bytes it takes; `None` while it is incomplete. Lines end in `\n`, with or without `\r`.
fn frame(buf: &[u8], connection: usize) -> Option<(Request, bool, usize)> {
    let eol = buf.iter().position(|&b| b == b'\n')?;
    let raw = &buf[..eol];
    let line = String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned();
    let mut used = eol + 1;
    let mut chunk_ok = true;
    let data = match data_len(&line) {
        Some(len) => {
            let end = used.checked_add(len)?.checked_add(2)?;
            let block = buf.get(used..end)?;
            chunk_ok = block.ends_with(b"\r\n");
            used = end;
            Some(block[..len].to_vec())
        }
        None => None,
    };
    let request = Request {
        connection,
        line,
        data,
    };
    Some((request, chunk_ok, used))
}

/// The length of the data block a command line announces, if it has one.
fn data_len(line: &str) -> Option<usize> {
    let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    let at = match *words.first()? {
        "set" | "add" | "replace" | "append" | "prepend" | "cas" => 4,
        "ms" => 2,
        _ => return None,
    };
    words.get(at)?.parse().ok()
}

/// What a memcached holding `state.items` would answer (nothing for `noreply`).
fn memcached_reply(state: &mut State, request: &Request, chunk_ok: bool) -> Vec<u8> {
    let words: Vec<&str> = request.line.split(' ').filter(|w| !w.is_empty()).collect();
    let noreply = words.last() == Some(&"noreply");
    let reply: Vec<u8> = match words.first().copied().unwrap_or_default() {
        "get" | "gets" => retrieve(state, &request.keys(), words[0] == "gets"),
        "gat" | "gats" => retrieve(state, &request.keys(), words[0] == "gats"),
        command @ ("set" | "add" | "replace" | "append" | "prepend" | "cas") => {
            if !chunk_ok {
                b"CLIENT_ERROR bad data chunk\r\n".to_vec()
            } else {
                store(
                    state,
                    command,
                    &words,
                    request.data.as_deref().unwrap_or(&[]),
                )
            }
        }
        "delete" if words.len() >= 2 => match state.items.remove(words[1]) {
            Some(_) => b"DELETED\r\n".to_vec(),
            None => b"NOT_FOUND\r\n".to_vec(),
        },
        "touch" if words.len() >= 3 => {
            if state.items.contains_key(words[1]) {
                b"TOUCHED\r\n".to_vec()
            } else {
                b"NOT_FOUND\r\n".to_vec()
            }
        }
        "version" => VERSION.to_vec(),
        "verbosity" => b"OK\r\n".to_vec(),
        "flush_all" => {
            state.items.clear();
            b"OK\r\n".to_vec()
        }
        _ => b"ERROR\r\n".to_vec(),
    };
    if noreply { Vec::new() } else { reply }
}

fn retrieve(state: &State, keys: &[&str], with_cas: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for key in keys {
        if let Some(item) = state.items.get(*key) {
            let cas = if with_cas {
                format!(" {}", item.cas)
            } else {
                String::new()
            };
            let header = format!("VALUE {key} {} {}{cas}\r\n", item.flags, item.data.len());
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(&item.data);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"END\r\n");
    out
}

fn store(state: &mut State, command: &str, words: &[&str], data: &[u8]) -> Vec<u8> {
    let (Some(key), Some(Ok(flags))) = (words.get(1), words.get(2).map(|f| f.parse::<u32>()))
    else {
        return b"CLIENT_ERROR bad command line format\r\n".to_vec();
    };
    let existing = state.items.get(*key).cloned();
    let data = match (command, existing) {
        ("add", Some(_)) | ("replace" | "append" | "prepend", None) => {
            return b"NOT_STORED\r\n".to_vec();
        }
        ("cas", None) => return b"NOT_FOUND\r\n".to_vec(),
        ("cas", Some(item)) if words.get(5).and_then(|c| c.parse().ok()) != Some(item.cas) => {
            return b"EXISTS\r\n".to_vec();
        }
        ("append", Some(item)) => [&item.data[..], data].concat(),
        ("prepend", Some(item)) => [data, &item.data[..]].concat(),
        _ => data.to_vec(),
    };
    let flags = match command {
        "append" | "prepend" => state.items.get(*key).map_or(flags, |i| i.flags),
        _ => flags,
    };
    state.last_cas += 1;
    let cas = state.last_cas;
    state
        .items
        .insert(key.to_string(), Item { flags, data, cas });
    b"STORED\r\n".to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, Ending};

    fn client(server: &Scripted) -> Client {
        Client::connect(server.addr())
    }

    #[test]
    fn answers_like_a_tiny_memcached_by_default() {
        let server = Scripted::start();
        let mut c = client(&server);
        assert_eq!(c.request_str("get a\r\n"), "END\r\n");
        c.set("a", b"one");
        assert_eq!(c.request_str("set b 5 0 3\r\ntwo\r\n"), "STORED\r\n");
        assert_eq!(
            c.request_str("get a x b\r\n"),
            "VALUE a 0 3\r\none\r\nVALUE b 5 3\r\ntwo\r\nEND\r\n"
        );
        assert_eq!(c.request_str("add a 0 0 1\r\nz\r\n"), "NOT_STORED\r\n");
        assert_eq!(c.request_str("replace x 0 0 1\r\nz\r\n"), "NOT_STORED\r\n");
        assert_eq!(c.request_str("append a 0 0 2\r\n!!\r\n"), "STORED\r\n");
        assert_eq!(c.request_str("prepend a 0 0 1\r\n<\r\n"), "STORED\r\n");
        assert_eq!(c.get("a").as_deref(), Some(&b"<one!!"[..]));
        let gets = c.request_str("gets a\r\n");
        let cas: String = gets
            .lines()
            .next()
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            c.request_str(&format!("cas a 0 0 1 {cas}1\r\nq\r\n")),
            "EXISTS\r\n"
        );
        assert_eq!(
            c.request_str(&format!("cas a 0 0 1 {cas}\r\nq\r\n")),
            "STORED\r\n"
        );
        assert_eq!(c.request_str("delete a\r\n"), "DELETED\r\n");
        assert_eq!(c.request_str("delete a\r\n"), "NOT_FOUND\r\n");
        assert_eq!(c.request(b"version\r\n"), VERSION);
        assert_eq!(c.request_str("bogus\r\n"), "ERROR\r\n");
        // As memcached: the block's last two bytes are not `\r\n`, and what follows them is
        // read as the next command.
        assert_eq!(
            c.request_str("set d 0 0 2\r\nabcd\r\n"),
            "CLIENT_ERROR bad data chunk\r\n"
        );
        assert_eq!(c.reply(), b"ERROR\r\n");
        // noreply: nothing, so the next reply is the get's.
        assert_eq!(
            c.request_str("set n 0 0 1 noreply\r\nv\r\nget n\r\n"),
            "VALUE n 0 1\r\nv\r\nEND\r\n"
        );
        assert_eq!(server.value("n").as_deref(), Some(&b"v"[..]));
        server.set("pre", 3, b"loaded");
        assert_eq!(
            c.request_str("get pre\r\n"),
            "VALUE pre 3 6\r\nloaded\r\nEND\r\n"
        );
    }

    #[test]
    fn records_bytes_and_requests_per_connection() {
        let server = Scripted::start();
        let mut one = client(&server);
        let mut two = client(&server);
        one.send(b"set k 1 0 4\r\na\r\nb\r\n");
        assert_eq!(one.reply(), b"STORED\r\n");
        two.request(b"get k j\r\n");
        let requests = server.wait_requests(2);
        assert_eq!(server.connections(), 2);
        assert_eq!(server.received(0), b"set k 1 0 4\r\na\r\nb\r\n");
        assert_eq!(server.received(1), b"get k j\r\n");
        assert_eq!(
            requests,
            vec![
                Request {
                    connection: 0,
                    line: "set k 1 0 4".into(),
                    data: Some(b"a\r\nb".to_vec()),
                },
                Request {
                    connection: 1,
                    line: "get k j".into(),
                    data: None,
                },
            ]
        );
        assert_eq!(requests[1].keys(), ["k", "j"]);
        assert_eq!(requests[0].keys(), ["k"]);

        server.forget();
        assert!(server.requests().is_empty() && server.received_all().is_empty());
        // A request in pieces is recorded once it is whole.
        one.send(b"get ");
        assert_eq!(server.wait_bytes(4), b"get ");
        assert!(server.requests().is_empty());
        one.send(b"k\r\n");
        assert_eq!(server.wait_requests(1)[0].line, "get k");
        one.reply();

        drop(two);
        server.wait_closed(1);
        assert!(server.is_open(0) && !server.is_open(1));
    }

    #[test]
    fn rules_match_by_key_command_or_line_and_can_run_out() {
        let server = Scripted::start();
        server.once(When::key("x"), Step::Reply(b"NOT_FOUND\r\n".to_vec()));
        server.on(
            When::command("delete"),
            Step::Reply(b"DELETED\r\n".to_vec()),
        );
        server.on(When::line("get y z"), Step::Malformed);
        let mut c = client(&server);
        assert_eq!(c.request_str("get w x\r\n"), "NOT_FOUND\r\n");
        assert_eq!(c.request_str("get w x\r\n"), "END\r\n", "used up");
        for _ in 0..2 {
            assert_eq!(c.request_str("delete q\r\n"), "DELETED\r\n");
        }
        assert_eq!(c.request(b"get y z\r\n"), MALFORMED);
        assert_eq!(c.request_str("get y\r\n"), "END\r\n");
        server.clear_script();
        assert_eq!(c.request_str("delete q\r\n"), "NOT_FOUND\r\n");
    }

    #[test]
    fn extra_drip_and_delay_answer_as_memcached_would_but_oddly() {
        let server = Scripted::start();
        server.set("k", 0, b"v\r\nEND\r\n");
        server.once(When::Any, Step::Extra(b"STORED\r\n".to_vec()));
        server.once(When::Any, Step::Drip(Duration::from_millis(1)));
        server.once(When::Any, Step::Delay(Duration::from_millis(200)));
        let mut c = client(&server);
        let whole = "VALUE k 0 8\r\nv\r\nEND\r\n\r\nEND\r\n";
        assert_eq!(c.request_str("get k\r\n"), whole);
        assert_eq!(c.reply(), b"STORED\r\n", "the extra reply");
        assert_eq!(c.request_str("get k\r\n"), whole, "dripped");
        let started = Instant::now();
        assert_eq!(c.request_str("get k\r\n"), whole, "delayed");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn stall_answers_nothing_more_on_its_connection_but_keeps_recording() {
        let server = Scripted::start();
        server.once(When::key("hang"), Step::Stall);
        let mut c = client(&server).with_deadline(Duration::from_millis(200));
        c.send(b"get hang\r\nget k\r\n");
        assert_eq!(c.read_through(b"\r\n"), (Vec::new(), Ending::TimedOut));
        c.send(b"get later\r\n");
        assert_eq!(server.wait_requests(3)[2].line, "get later");
        // Another connection is served.
        assert_eq!(client(&server).request_str("get hang\r\n"), "END\r\n");
    }

    #[test]
    fn hold_keeps_answers_back_until_released() {
        let server = Scripted::start();
        server.hold();
        let mut c = client(&server).with_deadline(Duration::from_millis(100));
        c.send(b"get a\r\nget b\r\n");
        server.wait_requests(2);
        assert_eq!(c.read_through(b"\r\n").1, Ending::TimedOut);
        server.release();
        let mut c = c.with_deadline(crate::client::REPLY_DEADLINE);
        assert_eq!(c.replies(2), [b"END\r\n", b"END\r\n"]);
    }

    /// Reads `stream` until it ends, returning the bytes and how it ended.
    fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, ErrorKind) {
        stream
            .set_read_timeout(Some(WAIT_DEADLINE))
            .expect("read timeout");
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return (got, ErrorKind::UnexpectedEof),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, e.kind()),
            }
        }
    }

    #[test]
    fn close_and_reset_end_the_connection_as_named() {
        let server = Scripted::start();
        server.set("k", 0, b"value");
        server.once(When::key("close"), Step::Close);
        server.once(When::key("reset"), Step::Reset);
        server.once(When::key("k"), Step::ResetAfter(5));
        for (request, want, ending) in [
            ("get close\r\n", &b""[..], ErrorKind::UnexpectedEof),
            ("get reset\r\n", b"", ErrorKind::ConnectionReset),
            ("get k\r\n", b"VALUE", ErrorKind::ConnectionReset),
        ] {
            let mut stream = TcpStream::connect(server.addr()).expect("connect");
            stream.write_all(request.as_bytes()).expect("send");
            assert_eq!(
                read_to_end(&mut stream),
                (want.to_vec(), ending),
                "{request}"
            );
        }
        server.wait_closed(2);
    }

    #[test]
    fn close_connections_closes_those_open_and_serves_new_ones() {
        let server = Scripted::start();
        let mut one = client(&server);
        let mut two = client(&server);
        one.request(b"get a\r\n");
        two.request(b"get a\r\n");
        server.close_connections();
        one.expect_closed();
        two.expect_closed();
        server.wait_closed(1);
        let mut three = client(&server);
        assert_eq!(three.request_str("get a\r\n"), "END\r\n");
        assert!(server.is_open(2));
    }

    #[test]
    fn accept_modes_close_or_reset_new_connections() {
        let server = Scripted::start();
        server.accept(Accept::Close);
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        assert_eq!(
            read_to_end(&mut stream),
            (Vec::new(), ErrorKind::UnexpectedEof)
        );
        server.accept(Accept::Reset);
        let mut stream = TcpStream::connect(server.addr()).expect("connect");
        assert_eq!(read_to_end(&mut stream).1, ErrorKind::ConnectionReset);
        server.accept(Accept::Serve);
        assert_eq!(client(&server).request_str("get a\r\n"), "END\r\n");
        assert_eq!(server.connections(), 3);
    }

    #[test]
    fn dropping_the_server_closes_it_and_its_connections() {
        let server = Scripted::start();
        let addr = server.addr();
        server.once(When::Any, Step::Delay(Duration::from_secs(60)));
        let mut c = client(&server);
        c.send(b"get a\r\n");
        server.wait_requests(1);
        let started = Instant::now();
        drop(server);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stopped promptly"
        );
        c.expect_closed();
        assert!(!crate::ports::accepts(addr), "nothing listens any more");
    }
}
