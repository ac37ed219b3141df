//! From one parsed client request to a [`Pending`] reply: which commands are answered locally,
//! which are routed by key, and how a multi-key retrieval is split per destination.

use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{Command, DECODED_KEY_BUF, ReplyKind, ReplyStatus, Request, replies};
use switchyard_sdk::abi::op;

use crate::execute::{Origin, Req, worst_of};
use crate::generation::Target;
use crate::plugin::RouteInput;
use crate::reply::{Outcome, Pending, merge_retrieval};
use crate::route::Resolved;
use crate::stats::tally::Tally;
use crate::tenant::{Authenticated, Refusal, Tenant, TenantConnection};
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
    /// Queue this reply, then close (a connection refused: no tenant, not authenticated).
    Last(Pending, Tally),
}

/// Where a client's requests come from: the listener it connected to, who it is (from the
/// certificate it presented on a mutual-TLS listener), which plugins may route by, and the
/// tenant it is bound to, if its listener serves tenants.
#[derive(Debug)]
pub struct Caller {
    /// The listener's address.
    pub listener: SocketAddr,
    /// The client's identity (`tls::identity`), if it has one.
    pub identity: Option<Identity>,
    /// Its tenant, once bound (`tenant.rs`): by its listener or identity at its first request,
    /// by authenticating on a `tenant_by = "auth"` listener. Boxed: every connection holds
    /// its `Caller`, and most are no tenant's.
    tenant: std::cell::RefCell<Option<Box<Binding>>>,
    /// Its place among its worker's connections, and the worker.
    admitted: crate::drain::Admitted,
    /// Bytes read from it before it was bound to a tenant: the tenant's when it is.
    unbound_read: std::cell::Cell<u64>,
}

/// A connection's tenant, and where that tenant was in the generation it last looked.
#[derive(Debug)]
struct Binding {
    connection: TenantConnection,
    /// (generation number, index in its `tenants`).
    at: std::cell::Cell<(u64, usize)>,
    /// Until when the connection waits before its next request: its tenant was over a rate
    /// and waits rather than refuses (`over_limit = "wait"`).
    wait_until: std::cell::Cell<Option<std::time::Instant>>,
    /// The next request was admitted when its line came (a long value, buffered whole for
    /// its namespace: `stream_route`), so `dispatch` does not admit it again.
    admitted_early: std::cell::Cell<bool>,
}

impl Caller {
    /// A client of `listener`, with the identity its certificate gave it, `admitted` on its
    /// worker.
    pub fn new(
        listener: SocketAddr,
        identity: Option<Identity>,
        admitted: crate::drain::Admitted,
    ) -> Caller {
        Caller {
            listener,
            identity,
            tenant: std::cell::RefCell::new(None),
            admitted,
            unbound_read: std::cell::Cell::new(0),
        }
    }

    /// Its place among its worker's connections, and the worker.
    pub fn admitted(&self) -> &crate::drain::Admitted {
        &self.admitted
    }

    /// Binds the connection to a tenant.
    fn bind(&self, connection: TenantConnection) {
        let worker = self.admitted.worker().id;
        connection
            .state()
            .traffic(worker)
            .read(self.unbound_read.take());
        *self.tenant.borrow_mut() = Some(Box::new(Binding {
            connection,
            at: std::cell::Cell::new((u64::MAX, 0)),
            wait_until: std::cell::Cell::new(None),
            admitted_early: std::cell::Cell::new(false),
        }));
    }

    /// Notes that the next request was admitted already (see `Binding::admitted_early`).
    fn admit_early(&self) {
        if let Some(bound) = self.tenant.borrow().as_ref() {
            bound.admitted_early.set(true);
        }
    }

    /// The request admitted on its line did not come whole (its data block was refused, the
    /// connection closes): the next request is admitted as any other.
    pub fn forget_early_admission(&self) {
        self.take_admitted_early();
    }

    /// Whether this request was admitted already; either way, the next one is not.
    fn take_admitted_early(&self) -> bool {
        self.tenant
            .borrow()
            .as_ref()
            .is_some_and(|bound| bound.admitted_early.take())
    }

    /// Makes the connection wait `wait` (from now, or from the end of a wait already set)
    /// before its next request.
    fn wait(&self, wait: std::time::Duration) {
        if let Some(bound) = self.tenant.borrow().as_ref() {
            let now = std::time::Instant::now();
            let from = bound.wait_until.get().map_or(now, |until| until.max(now));
            bound.wait_until.set(Some(from + wait));
        }
    }

    /// Its tenant's index in generation `number`, if it has a tenant and the last request
    /// found it there (what [`Via`] looked up).
    pub fn tenant_in(&self, number: u64) -> Option<usize> {
        let bound = self.tenant.try_borrow().ok()?;
        let (at, index) = bound.as_ref()?.at.get();
        (at == number).then_some(index)
    }

    /// The reply to a request tallied as `tally` goes out: `count` it in the connection's
    /// tenant's traffic, if it has a tenant, and take it from the tenant's requests in flight
    /// if it was counted there.
    pub fn answered(&self, tally: &Tally, count: impl FnOnce(&crate::tenant::TenantState)) {
        let Ok(bound) = self.tenant.try_borrow() else {
            return;
        };
        if let Some(bound) = bound.as_ref() {
            if tally.in_flight() {
                bound.connection.answered();
            }
            count(bound.connection.state());
        }
    }

    /// The client sent what the router could not take as a request: counted in `worker`'s
    /// `client_errors`, and its tenant's, if it has one.
    pub fn client_error(&self, worker: &crate::worker::Worker) {
        worker.stats.client_errors.inc();
        if let Ok(Some(bound)) = self.tenant.try_borrow().as_deref() {
            bound.connection.state().traffic(worker.id).client_error();
        }
    }

    /// `n` bytes came from the client: counted in its tenant's traffic on `worker`, if it has
    /// a tenant.
    pub fn read(&self, worker: usize, n: u64) {
        match self.tenant.try_borrow().as_deref() {
            Ok(Some(bound)) => bound.connection.state().traffic(worker).read(n),
            _ => self.unbound_read.set(self.unbound_read.get() + n),
        }
    }

    /// A tenant's request is answered with `next`: a reply to come counts among the tenant's
    /// requests in flight until it goes out.
    fn in_flight(&self, mut next: Next) -> Next {
        if let Next::Reply(_, tally) = &mut next
            && let Ok(bound) = self.tenant.try_borrow()
            && let Some(bound) = bound.as_ref()
        {
            bound.connection.started();
            tally.mark_in_flight();
        }
        next
    }

    /// Until when the connection is to wait before its next request, if it is; taken.
    pub fn take_wait(&self) -> Option<std::time::Instant> {
        let bound = self.tenant.try_borrow().ok()?;
        bound.as_ref()?.wait_until.take()
    }

    /// The listener's place in `shared`'s config, the identity, where its requests go and its
    /// tenant. [`Gate::Gone`] when a reload removed the listener, or the tenant (its
    /// connections close at their next request); [`Gate::Unbound`] for a tenant listener's
    /// connection not yet bound.
    fn via<'a>(&'a self, shared: &'a crate::generation::Generation) -> Result<Via<'a>, Gate> {
        let listener = shared.listener_index(self.listener).ok_or(Gate::Gone)?;
        let (root, tenant) = match shared.roots[listener as usize] {
            Some(root) => (root, None),
            None => {
                let bound = self.tenant.borrow();
                let Some(bound) = bound.as_ref() else {
                    return Err(Gate::Unbound);
                };
                let (number, cached) = bound.at.get();
                let index = if number == shared.number && cached < shared.tenants.len() {
                    cached
                } else {
                    let name = &bound.connection.name;
                    let found = shared.tenants.iter().position(|t| t.name == *name);
                    let index = found.ok_or(Gate::Gone)?;
                    bound.at.set((shared.number, index));
                    index
                };
                let tenant = &shared.tenants[index];
                (tenant.root, Some(tenant))
            }
        };
        Ok(Via {
            listener,
            identity: self.identity.as_ref(),
            root,
            tenant,
        })
    }
}

/// Why a request has no [`Via`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Its listener or tenant is gone: close.
    Gone,
    /// Its connection is to be bound to a tenant first.
    Unbound,
}

/// [`Caller`] as one generation sees it: the listener's index, the identity, the root its
/// requests start from, and its tenant.
#[derive(Debug, Clone, Copy)]
struct Via<'a> {
    listener: u32,
    identity: Option<&'a Identity>,
    root: Target,
    tenant: Option<&'a Arc<Tenant>>,
}

impl Via<'_> {
    /// The prefix its keys carry on the servers: its tenant's namespace, or none.
    fn namespace(&self) -> &[u8] {
        self.tenant.map_or(&[], |t| t.config.namespace.as_bytes())
    }

    /// Its tenant's name, or `""`: what its hot keys are counted under.
    fn tenant_name(&self) -> &str {
        self.tenant.map_or("", |t| &t.name)
    }

    /// Its tenant's index in the generation, if it has one ([`Req::tenant`]).
    fn tenant_index(&self) -> Option<usize> {
        self.tenant.map(|t| t.index)
    }
}

/// Handles one request. `frame` holds exactly the request's bytes (line and data block), and
/// the request's ranges index into it.
pub fn dispatch(worker: &Worker, request: &Request, frame: Bytes, caller: &Caller) -> Next {
    let generation = worker.generation();
    // A connection on a listener a reload removed is closed at its next request.
    let via = match caller.via(&generation.shared) {
        Ok(via) => via,
        Err(Gate::Gone) => return Next::Close,
        Err(Gate::Unbound) => return bind(worker, request, frame, caller, &generation),
    };
    let _serving = generation.serving(via.tenant_index());
    let stats = &worker.stats;
    let command = request.command;
    stats.command(command);
    if command.op().is_some() {
        worker
            .router_stats
            .tap
            .request(&frame[request.line.clone()]);
    }
    if let Some(tenant) = via.tenant {
        tenant.state.traffic(worker.id).command(command);
        if !caller.take_admitted_early()
            && let Err(refusal) = admit(tenant, request, &frame, caller)
        {
            return answer(request, refused(refusal), Tally::local(command));
        }
    }
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
                b"backends" => crate::stats::render_backends(&generation.shared),
                b"tls" => worker.router_stats.identities.render(),
                b"plugins" => crate::stats::render_plugins(&generation.shared),
                b"config" => worker.router_stats.render_config(),
                b"hotkeys" => worker.router_stats.hotkeys.render(),
                b"routes" => crate::stats::render_routes(&generation.shared),
                b"tenants" => crate::stats::render_tenants(&generation.shared),
                b"experiments" => crate::experiment::render(&generation.shared),
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
            crate::introspect::retrieval(
                &generation,
                (listener, via.root),
                identity,
                request,
                &frame,
                via.namespace(),
            )
        }
        Command::Get | Command::Gets | Command::Gat | Command::Gats => {
            if generation.shared.config.stats.hotkeys {
                for key in request.keys(&frame) {
                    if worker.hot_key_due() {
                        worker.sample_hot_key(via.tenant_name(), &frame[key], 0);
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
                worker.sample_hot_key(via.tenant_name(), key, request.value.len());
            }
            keyed(&generation, request, &frame, via, None)
        }
    };
    let tally = finish(worker, &generation, via.tenant, command, keys, started);
    let next = answer(request, pending, tally);
    match via.tenant {
        Some(_) => caller.in_flight(next),
        None => next,
    }
}

/// A request on a tenant listener's connection that is not bound to a tenant yet: bind it by
/// its listener or identity and carry on, or take it as memcached's ASCII authentication
/// (`tenant_by = "auth"`), or refuse the connection with one line.
fn bind(
    worker: &Worker,
    request: &Request,
    frame: Bytes,
    caller: &Caller,
    generation: &Rc<LocalGeneration>,
) -> Next {
    use crate::config::ListenerRoute;
    let shared = &generation.shared;
    let command = request.command;
    let last = |line: String| {
        worker.stats.client_errors.inc();
        Next::Last(
            Pending::Ready(Outcome {
                frame: Bytes::from(line),
                status: ReplyStatus::ServerError,
            }),
            Tally::local(command),
        )
    };
    let Some(listener) = shared
        .listener_index(caller.listener)
        .and_then(|i| shared.config.listeners.get(i as usize))
    else {
        return Next::Close;
    };
    let tenant = match &listener.route {
        ListenerRoute::Route(_) => return Next::Close,
        ListenerRoute::Tenant(name) => shared.tenants.iter().find(|t| *t.name == **name),
        ListenerRoute::ByIdentity => {
            let Some(identity) = &caller.identity else {
                return last(
                    "SERVER_ERROR no tenant: this connection has no client identity\r\n".into(),
                );
            };
            let found = shared
                .tenants
                .iter()
                .find(|t| t.config.identities.iter().any(|i| i == identity.as_str()));
            if found.is_none() {
                tracing::warn!(listener = %caller.listener, identity = identity.as_str(), "connection refused: no tenant has this identity");
                return last(format!(
                    "SERVER_ERROR no tenant for client identity {}\r\n",
                    identity.as_str()
                ));
            }
            found
        }
        ListenerRoute::ByAuth => return authenticate(worker, request, &frame, caller, shared),
    };
    let Some(tenant) = tenant else {
        return Next::Close;
    };
    match tenant.connect(worker.id) {
        Some(bound) => caller.bind(bound),
        None => {
            return last(format!(
                "SERVER_ERROR tenant {} has its max_connections ({}) open\r\n",
                tenant.name,
                tenant.config.limits.max_connections.unwrap_or(0)
            ));
        }
    }
    dispatch(worker, request, frame, caller)
}

/// memcached's ASCII authentication (`-Y`), as memcached 1.6 answers it: before it succeeds,
/// a `set` whose data is `user password` is the attempt (`STORED`, even with `noreply`, or
/// `CLIENT_ERROR authentication failure`, or `CLIENT_ERROR bad authentication token format`,
/// the connection staying open for another try), and anything else is answered `CLIENT_ERROR
/// unauthenticated`, the connection also staying open, as memcached keeps it. The user's tenant
/// is the connection's from then.
fn authenticate(
    worker: &Worker,
    request: &Request,
    frame: &Bytes,
    caller: &Caller,
    shared: &crate::generation::Generation,
) -> Next {
    let command = request.command;
    let reply = |line: &'static [u8], status| {
        Next::Reply(
            Pending::Ready(Outcome::fixed(line, status)),
            Tally::local(command),
        )
    };
    if command != Command::Set {
        worker.stats.client_errors.inc();
        return reply(
            b"CLIENT_ERROR unauthenticated\r\n",
            ReplyStatus::ClientError,
        );
    }
    let Some(credentials) = &shared.credentials else {
        return Next::Close;
    };
    let failure = |why: &str| {
        worker.stats.client_errors.inc();
        tracing::warn!(listener = %caller.listener, "authentication failed: {why}");
    };
    match credentials.check(frame.get(request.value.clone()).unwrap_or_default()) {
        Authenticated::BadFormat => {
            failure("not `user password`");
            reply(
                b"CLIENT_ERROR bad authentication token format\r\n",
                ReplyStatus::ClientError,
            )
        }
        Authenticated::Failure => {
            failure("a wrong user or password");
            reply(
                b"CLIENT_ERROR authentication failure\r\n",
                ReplyStatus::ClientError,
            )
        }
        Authenticated::User(user) => {
            let tenant = shared
                .tenants
                .iter()
                .find(|t| t.config.users.contains(&user));
            let Some(tenant) = tenant else {
                failure("a user of no tenant");
                return reply(
                    b"CLIENT_ERROR authentication failure\r\n",
                    ReplyStatus::ClientError,
                );
            };
            match tenant.connect(worker.id) {
                Some(bound) => {
                    caller.bind(bound);
                    reply(b"STORED\r\n", ReplyStatus::Stored)
                }
                None => Next::Last(
                    Pending::Ready(Outcome {
                        frame: Bytes::from(format!(
                            "SERVER_ERROR tenant {} has its max_connections ({}) open\r\n",
                            tenant.name,
                            tenant.config.limits.max_connections.unwrap_or(0)
                        )),
                        status: ReplyStatus::ServerError,
                    }),
                    Tally::local(command),
                ),
            }
        }
    }
}

/// Checks a tenant's request against its ACL and limits. `buf` holds the request's line (and
/// its data block, when it is in), which its ranges index. A request over a rate of a tenant
/// that waits is admitted, and `caller` is told to pause before its next request.
fn admit(tenant: &Tenant, request: &Request, buf: &[u8], caller: &Caller) -> Result<(), Refusal> {
    let (wait, admitted) = check(tenant, request, buf);
    if !wait.is_zero() {
        caller.wait(wait);
    }
    admitted
}

/// [`admit`]'s checks.
fn check(
    tenant: &Tenant,
    request: &Request,
    buf: &[u8],
) -> (std::time::Duration, Result<(), Refusal>) {
    let command = request.command;
    let value_len = command.has_data_block().then(|| request.value.len());
    let bytes = request.line.len() + value_len.unwrap_or(0);
    let mut decoded = [0u8; DECODED_KEY_BUF];
    if matches!(
        command,
        Command::Get | Command::Gets | Command::Gat | Command::Gats
    ) {
        if crate::introspect::asked(request, buf) {
            // Keys beside the questions would be routed as sent: outside the namespace, past
            // the key prefixes.
            if !crate::introspect::asked_only(request, buf) {
                return tenant.deny(format!(
                    "tenant {} may not ask about the router and read keys in one retrieval",
                    tenant.name
                ));
            }
            // `__switchyard__.…` tells of the whole router: other tenants' config included.
            let stats = request.keys(buf).next().map(|k| &buf[k]).into_iter();
            return tenant.admit(Command::Stats, stats, false, bytes, None);
        }
        tenant.admit(
            command,
            request.keys(buf).map(|k| &buf[k]),
            false,
            bytes,
            value_len,
        )
    } else {
        let key = request.routing_key(buf, &mut decoded);
        let keys = (!request.key.is_empty()).then_some(key).into_iter();
        tenant.admit(command, keys, request.base64, bytes, value_len)
    }
}

/// The reply to a refused request: `CLIENT_ERROR` for what the ACL denies, `SERVER_ERROR` for
/// a limit.
fn refused(refusal: Refusal) -> Pending {
    let (line, status) = match refusal {
        Refusal::Denied(why) => (format!("CLIENT_ERROR {why}\r\n"), ReplyStatus::ClientError),
        Refusal::Limited(why) => (format!("SERVER_ERROR {why}\r\n"), ReplyStatus::ServerError),
    };
    Pending::Ready(Outcome {
        frame: Bytes::from(line),
        status,
    })
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
/// reached, each of which counts it (and counts it as `tenant`'s, if it has one).
fn finish(
    worker: &Worker,
    generation: &LocalGeneration,
    tenant: Option<&Arc<Tenant>>,
    command: Command,
    keys: u32,
    started: u32,
) -> Tally {
    let tally = generation
        .trail
        .take(command, keys, started, generation.shared.number);
    for &n in tally.nodes() {
        let n = usize::from(n);
        if let Some(node) = generation.shared.nodes.get(n) {
            node.stats.request(worker.id);
        }
        if let Some(route) = tenant.and_then(|t| t.node(n)) {
            route.request(worker.id);
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
        namespace: b"",
        tenant: via.tenant_index(),
    };
    let root = via.root;
    let namespace = via.namespace();
    match held {
        Some(resolved) => generation.run(resolved, &req),
        // A namespaced tenant's request is never held: `stream_route` buffers it whole.
        None if !namespace.is_empty() => match via.tenant {
            Some(tenant) => {
                // A meta get's long value may stream to the client, as without a namespace.
                let for_client = request.command == Command::MetaGet;
                generation.execute_in(root, &req, &tenant.rewrite, &tenant.namespace, for_client)
            }
            None => generation.execute(root, &req),
        },
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
    let via = match caller.via(&generation.shared) {
        Ok(via) => via,
        Err(Gate::Gone) => return StreamRoute::Close,
        // Bound (or refused) once the request is whole, by `dispatch`.
        Err(Gate::Unbound) => return StreamRoute::Whole(None),
    };
    // Admitted on its line, so that a value the tenant may not send (its ACL, its
    // max_value_bytes, its rates) is refused and dropped as it arrives, never gathered.
    if let Some(tenant) = via.tenant
        && let Err(refusal) = admit(tenant, request, line, caller)
    {
        worker.stats.command(request.command);
        let Pending::Ready(outcome) = refused(refusal) else {
            return StreamRoute::Close;
        };
        return StreamRoute::Answer(outcome, Tally::local(request.command));
    }
    if !via.namespace().is_empty() {
        // A namespaced key is sent rewritten, which needs the value whole; `dispatch` counts
        // it then, but admits it no second time.
        caller.admit_early();
        return StreamRoute::Whole(None);
    }
    let mut decoded = [0u8; DECODED_KEY_BUF];
    let input = keyed_input(request, line, &mut decoded, via);
    let (root, tenant) = (via.root, via.tenant_index());
    let started = begin(worker, &generation);
    let resolved = {
        let _serving = generation.serving(tenant);
        generation.resolve(root, &input)
    };
    let tally = finish(worker, &generation, via.tenant, request.command, 0, started);
    match resolved {
        Resolved::Server { dest, timeout } => {
            worker.stats.command(request.command);
            StreamRoute::Server(StreamTarget {
                generation,
                dest,
                timeout,
                tally,
                tenant,
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
    let Ok(via) = caller.via(&generation.shared) else {
        return Next::Close;
    };
    let _serving = generation.serving(via.tenant_index());
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
    /// Its tenant's index in the generation ([`Req::tenant`]).
    pub tenant: Option<usize>,
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
    let Ok(via) = caller.via(&generation.shared) else {
        return;
    };
    let _serving = generation.serving(via.tenant_index());
    let namespace = via.namespace();
    if namespace.is_empty() {
        return delete_key(&generation, via, key, base64);
    }
    // The old value is under the tenant's namespace: the key as its servers have it.
    let mut namespaced = BytesMut::with_capacity(namespace.len() + key.len());
    namespaced.extend_from_slice(namespace);
    if base64 {
        let mut decoded = [0u8; DECODED_KEY_BUF];
        let Some(bytes) = switchyard_protocol::decode_key(&key, &mut decoded) else {
            return;
        };
        namespaced.extend_from_slice(bytes);
        let mut encoded = Vec::with_capacity(namespaced.len() * 4 / 3 + 4);
        switchyard_protocol::encode_key(&namespaced, &mut encoded);
        delete_key(&generation, via, Bytes::from(encoded), true);
    } else {
        namespaced.extend_from_slice(&key);
        delete_key(&generation, via, namespaced.freeze(), false);
    }
}

/// [`delete_quietly`]'s delete of `key` (as it goes to the servers) from `via`'s root.
fn delete_key(generation: &Rc<LocalGeneration>, via: Via<'_>, key: Bytes, base64: bool) {
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
    let root = via.root;
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
            namespace: via.namespace(),
            tenant: via.tenant_index(),
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
    let root = via.root;
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
            namespace: b"",
            tenant: via.tenant_index(),
        };
        if let Some(tenant) = via.tenant
            && !tenant.namespace.is_empty()
        {
            return (
                generation.execute_in(root, &req, &tenant.rewrite, &tenant.namespace, true),
                1,
            );
        }
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
    // A tenant's keys are routed and sent with its namespace in front.
    let namespace = via.namespace();
    let mut routed = Vec::new();
    for key in [first, second].into_iter().chain(keys) {
        let mut input = route_input(request, &frame[key.clone()], via);
        if !namespace.is_empty() {
            routed.clear();
            routed.extend_from_slice(namespace);
            routed.extend_from_slice(&frame[key.clone()]);
            input.key = &routed;
        }
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
                    *keys_len += namespace.len() + key.len() + 1;
                }
                order.push((key, idx));
            }
            other => {
                // A reply or a plan for this key alone.
                let mut line =
                    BytesMut::with_capacity(verb.len() + namespace.len() + key.len() + 2);
                line.extend_from_slice(verb);
                line.extend_from_slice(namespace);
                line.extend_from_slice(&frame[key.clone()]);
                line.extend_from_slice(b"\r\n");
                let wire = Wire::one(line.freeze());
                let req = Req {
                    input,
                    wire: &wire,
                    kind: ReplyKind::Retrieval,
                    origin: Origin::Client { request, frame },
                    namespace,
                    tenant: via.tenant_index(),
                };
                parts.push(Part::Own(generation.run(other, &req)));
                order.push((key, parts.len() - 1));
            }
        }
    }
    generation.stats_keys(order.len() as u64);
    let looked_up = u32::try_from(order.len()).unwrap_or(u32::MAX);

    if let [Part::Server { dest, timeout, .. }] = &parts[..]
        && namespace.is_empty()
    {
        // Every key lives on one server: forward the client's bytes unchanged.
        let pending = generation.send(
            *dest,
            *timeout,
            &forwarded(request, frame),
            ReplyKind::Retrieval,
            via.tenant_index(),
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
                    lines.extend_from_slice(namespace);
                    lines.extend_from_slice(&frame[key.clone()]);
                    sep = true;
                }
                lines.extend_from_slice(b"\r\n");
                let line = lines.split().freeze();
                generation.send(
                    dest,
                    timeout,
                    &Wire::one(line),
                    ReplyKind::Retrieval,
                    via.tenant_index(),
                )
            }
        })
        .collect();
    (
        Pending::Merged(Box::pin(merge_retrieval(
            frame.clone(),
            order,
            sent,
            via.tenant.map_or_else(Bytes::new, |t| t.namespace.clone()),
        ))),
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
    let root = via.root;
    let wire = forwarded(request, frame);
    let parts: Vec<Pending> = generation
        .shared
        .reachable_servers(root)
        .into_iter()
        .map(|(dest, timeout)| {
            generation.send(dest, timeout, &wire, ReplyKind::Line, via.tenant_index())
        })
        .collect();
    // No server to flush: nothing failed.
    worst_of(parts).unwrap_or_else(|| Pending::Ready(Outcome::fixed(b"OK\r\n", ReplyStatus::Ok)))
}
