//! Why a request failed: one type for every way the router itself fails a request, the one
//! place that turns a failure into its `SERVER_ERROR` reply, and the one place that counts it.
//!
//! A [`RequestError`] says what failed (a backend, a plugin, a plan, the router), on which
//! [`Side`] the fault lies, whether sending the request again is safe
//! ([`RequestError::retry_safe`]), and where (the server's address, the node's label). The
//! request path answers it with [`RequestError::answer`]: counted by side in the worker's
//! [`WorkerStats`], rendered by [`RequestError::reply`].
//!
//! Not errors here: a plugin's own reply (`reply(server_error, ...)` is an answer it chose,
//! rendered by `reply/render.rs`), a backend's own `SERVER_ERROR` (passed on as it came), and
//! a malformed client request (answered by `session` with the protocol crate's fixed replies and
//! counted there as [`Side::Client`]).

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use switchyard_protocol::ReplyStatus;
use switchyard_protocol::limits::DEFAULT_MAX_KEY_LEN;
use switchyard_sdk::Op;

use crate::backend::BackendError;
use crate::plugin::PluginFault;
use crate::reply::Outcome;
use crate::stats::{Counter, WorkerStats};

/// Who is at fault when a request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The request: malformed, one its route cannot carry (a key a rewrite cannot fit), or one
    /// whose own reply was still arriving when its timeout passed (too much asked at once).
    Client,
    /// A memcached server: down, unreachable, silent past the timeout, or not speaking the
    /// protocol.
    Backend,
    /// A plugin: it trapped, timed out, could not be instantiated, or planned something that
    /// makes no sense.
    Plugin,
    /// The router itself: an invariant broke, it cannot do what a valid plan asks, it ran out
    /// of a local resource (file descriptors, memory, local ports) connecting to a server, or
    /// a request lost its place on a shared connection reset behind another's reply.
    Internal,
}

impl Side {
    /// The `stats` counter of requests failed on this side: `client_errors`, `backend_errors`,
    /// `plugin_faults` or `internal_errors`.
    pub fn counter(self, stats: &WorkerStats) -> &Counter {
        match self {
            Side::Client => &stats.client_errors,
            Side::Backend => &stats.backend_errors,
            Side::Plugin => &stats.plugin_faults,
            Side::Internal => &stats.internal_errors,
        }
    }
}

/// Which of a node's plugin calls a fault or a plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginCall {
    /// `route`: nothing of the request has been sent yet.
    Route,
    /// `on_reply`, after a `call`: the request has been sent to a child already.
    OnReply,
}

/// How a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The guest ran past its epoch deadline.
    Timeout,
    /// The guest trapped: why.
    Trap(String),
    /// The guest trapped after reaching its memory cap: the cap in bytes.
    OutOfMemory(usize),
    /// The guest returned a plan the host cannot decode: why.
    BadPlan(String),
    /// The node has no instance to call on this worker: creating one failed, one is being
    /// made, or the node's breaker is open. Why.
    Unavailable(std::borrow::Cow<'static, str>),
}

impl From<PluginFault> for Fault {
    fn from(fault: PluginFault) -> Fault {
        match fault {
            PluginFault::Timeout => Fault::Timeout,
            PluginFault::Trap(why) => Fault::Trap(why),
            PluginFault::OutOfMemory { limit_bytes } => Fault::OutOfMemory(limit_bytes),
            PluginFault::BadPlan(why) => Fault::BadPlan(why),
        }
    }
}

/// The kinds of plugin fault, as logged and as the fault log limits them: one line per kind per
/// node per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A trap other than running out of memory.
    Trap,
    /// A call ran past `call_timeout_ms`.
    Timeout,
    /// A trap after a refused memory growth.
    OutOfMemory,
    /// A plan that does not decode, or a reply that makes no sense for the operation.
    InvalidPlan,
    /// `pass` from `route`, where there is nothing to pass on.
    PassFromRoute,
    /// More chained calls than `abi::MAX_CALLS`.
    TooManyCalls,
    /// No instance: creating one failed, one is being made, or the breaker is open.
    Unavailable,
}

impl FaultKind {
    /// Every kind, in the order of [`FaultKind::index`].
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Trap,
        FaultKind::Timeout,
        FaultKind::OutOfMemory,
        FaultKind::InvalidPlan,
        FaultKind::PassFromRoute,
        FaultKind::TooManyCalls,
        FaultKind::Unavailable,
    ];

    /// A dense index, for per-kind tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// How logs name it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Timeout => "timeout",
            FaultKind::OutOfMemory => "out_of_memory",
            FaultKind::InvalidPlan => "invalid_plan",
            FaultKind::PassFromRoute => "pass_from_route",
            FaultKind::TooManyCalls => "too_many_calls",
            FaultKind::Unavailable => "unavailable",
        }
    }
}

/// Why a plan that decoded fine cannot be carried out for this request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanProblem {
    /// `pass` where there is no reply to pass on (from `route`).
    MisplacedPass,
    /// Another `call` after `abi::MAX_CALLS` of them for one request.
    TooManyCalls,
    /// A direct reply that makes no sense for the operation.
    ReplyNotValid {
        /// The reply's name (`switchyard_sdk::Reply::name`).
        reply: &'static str,
        /// The operation.
        op: Op,
    },
    /// A key rewrite that strips more bytes than the request's key has.
    StripsPastKey,
    /// A rewritten key memcached would refuse: its length (keys are 1 to 250 bytes).
    KeyLength(usize),
    /// A rewrite of a command the router cannot rewrite: its name.
    NotRewritable(&'static str),
    /// A rewrite of a meta request the router built itself, which has no client line to keep
    /// the flags of.
    BuiltMeta,
    /// A fan-out to no children (the plan decoder refuses these).
    NoChildren,
    /// A rewrite of a tenant's request whose key would not begin with the tenant's namespace.
    LeavesNamespace,
}

impl PlanProblem {
    /// Who is at fault: the plugin for a plan it should not have made (the ABI counts these as
    /// plugin faults), the request for a key a valid rewrite cannot fit (the ABI says that is
    /// not a plugin fault), the router for a valid plan it cannot carry out.
    fn side(&self) -> Side {
        match self {
            PlanProblem::MisplacedPass
            | PlanProblem::TooManyCalls
            | PlanProblem::ReplyNotValid { .. }
            | PlanProblem::LeavesNamespace => Side::Plugin,
            PlanProblem::StripsPastKey | PlanProblem::KeyLength(_) => Side::Client,
            PlanProblem::NotRewritable(_) | PlanProblem::BuiltMeta | PlanProblem::NoChildren => {
                Side::Internal
            }
        }
    }
}

/// Why the router could not answer a request with a reply from where its route led.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// A server gave no reply: it is down or over its outstanding bound (nothing sent), the
    /// connect failed, or the request timed out, was reset or got something that is not a reply.
    /// Not always the server's fault ([`RequestError::side`]): a reply still arriving at its
    /// timeout is the request's, a connect the router lacked the resources to attempt, or a
    /// request cut off behind another's reply, the router's.
    Backend {
        /// The server.
        address: SocketAddr,
        /// What happened.
        cause: BackendError,
    },
    /// A long value broke off part way while it was gathered whole (not for a client's own
    /// stream, which ends by closing the connection).
    StreamBroken {
        /// The connection's error, when it came through.
        cause: Option<BackendError>,
    },
    /// A node's plugin failed.
    Plugin {
        /// The node's label.
        node: String,
        /// The call that failed.
        call: PluginCall,
        /// How.
        fault: Fault,
    },
    /// A node's plan cannot be carried out for this request.
    Plan {
        /// The node's label.
        node: String,
        /// The call whose plan it is.
        call: PluginCall,
        /// Why not.
        problem: PlanProblem,
    },
    /// An invariant that should not break, broke: what (the reply's message).
    Internal(&'static str),
}

impl RequestError {
    /// A request `address` did not answer, for `cause`.
    pub fn backend(address: SocketAddr, cause: BackendError) -> RequestError {
        RequestError::Backend { address, cause }
    }

    /// Who is at fault.
    pub fn side(&self) -> Side {
        match self {
            RequestError::Backend { cause, .. } => match cause {
                BackendError::StillArriving { .. } | BackendError::TooLarge { .. } => Side::Client,
                BackendError::Local(_) | BackendError::CutBehind => Side::Internal,
                _ => Side::Backend,
            },
            RequestError::StreamBroken { .. } => Side::Backend,
            RequestError::Plugin { .. } => Side::Plugin,
            RequestError::Plan { problem, .. } => problem.side(),
            RequestError::Internal(_) => Side::Internal,
        }
    }

    /// Whether sending the request again could not apply it twice: true only when nothing of it
    /// reached a server before this failure. That is so when the server was down or over its
    /// outstanding bound, the connect failed, timed out or could not be attempted (a local
    /// shortage), or the router was shutting down (nothing was written), and when a plugin
    /// failed, or its plan could not be carried out, in `route` (before anything was sent). It
    /// is not after a timeout, a reset (a cut-off reply's included), an I/O or protocol error
    /// (the request may have been written, and applied), nor for anything in `on_reply` (a
    /// `call` sent the request already) or an internal error (nothing is known).
    ///
    /// It speaks for the step that failed: when a `call`'s `on_reply` routes the request on
    /// (a failover) and that fails in a retry-safe way, the first send may still have reached
    /// its server.
    pub fn retry_safe(&self) -> bool {
        match self {
            RequestError::Backend { cause, .. } => match cause {
                BackendError::Down
                | BackendError::Overloaded(_)
                | BackendError::Connect(_)
                | BackendError::Local(_)
                | BackendError::ConnectTimeout
                | BackendError::Tls(_)
                | BackendError::Shutdown => true,
                BackendError::Timeout
                | BackendError::StillArriving { .. }
                | BackendError::TooLarge { .. }
                | BackendError::CutBehind
                | BackendError::Closed
                | BackendError::Io(_)
                | BackendError::Protocol(_) => false,
            },
            RequestError::StreamBroken { .. } | RequestError::Internal(_) => false,
            RequestError::Plugin { call, .. } | RequestError::Plan { call, .. } => {
                *call == PluginCall::Route
            }
        }
    }

    /// The server's address, when a server failed.
    pub fn address(&self) -> Option<SocketAddr> {
        match self {
            RequestError::Backend { address, .. } => Some(*address),
            _ => None,
        }
    }

    /// The kind of plugin fault, when the plugin is at fault.
    pub fn fault_kind(&self) -> Option<FaultKind> {
        match self {
            RequestError::Plugin { fault, .. } => Some(match fault {
                Fault::Timeout => FaultKind::Timeout,
                Fault::Trap(_) => FaultKind::Trap,
                Fault::OutOfMemory(_) => FaultKind::OutOfMemory,
                Fault::BadPlan(_) => FaultKind::InvalidPlan,
                Fault::Unavailable(_) => FaultKind::Unavailable,
            }),
            RequestError::Plan { problem, .. } => match problem {
                PlanProblem::MisplacedPass => Some(FaultKind::PassFromRoute),
                PlanProblem::TooManyCalls => Some(FaultKind::TooManyCalls),
                PlanProblem::ReplyNotValid { .. } => Some(FaultKind::InvalidPlan),
                _ => None,
            },
            _ => None,
        }
    }

    /// What the plugin did, on one line, for the log: the fault's own description.
    pub fn detail(&self) -> String {
        match self {
            RequestError::Plugin { fault, .. } => match fault {
                Fault::Timeout => "exceeded its time budget".into(),
                Fault::Trap(why) => format!("trapped: {why}"),
                Fault::OutOfMemory(limit) => {
                    format!("memory limit of {} MiB reached", limit >> 20)
                }
                Fault::BadPlan(why) => format!("returned an invalid plan: {why}"),
                Fault::Unavailable(why) => format!("unavailable: {why}"),
            },
            RequestError::Plan { problem, .. } => match problem {
                PlanProblem::MisplacedPass => "returned pass from route".into(),
                PlanProblem::TooManyCalls => {
                    format!("chained more than {} calls", switchyard_sdk::abi::MAX_CALLS)
                }
                _ => self.to_string(),
            },
            _ => self.to_string(),
        }
    }

    /// The node's label, when a plugin or its plan failed.
    pub fn node(&self) -> Option<&str> {
        match self {
            RequestError::Plugin { node, .. } | RequestError::Plan { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The client's reply: `SERVER_ERROR <message>`, the message being this error's
    /// [`Display`](fmt::Display). The only place the router composes a `SERVER_ERROR` for a
    /// request it failed.
    pub fn reply(&self) -> Outcome {
        Outcome {
            frame: Bytes::from(format!("SERVER_ERROR {self}\r\n")),
            status: ReplyStatus::ServerError,
        }
    }

    /// Counts the failure once, by [`Side`], in `stats`.
    pub fn count(&self, stats: &WorkerStats) {
        self.side().counter(stats).inc();
    }

    /// What the request path does with a failure: counts it, records it for whoever traces
    /// at debug level (`SWITCHYARD_LOG=switchyard=debug`: which side, whether a retry is safe,
    /// the server or node), and answers its reply.
    pub fn answer(&self, stats: &WorkerStats) -> Outcome {
        self.count(stats);
        tracing::debug!(
            side = ?self.side(),
            retry_safe = self.retry_safe(),
            backend = ?self.address(),
            node = self.node(),
            error = %self,
            "request failed"
        );
        self.reply()
    }
}

impl fmt::Display for RequestError {
    /// The reply's message. Clients and tests match these texts: change none lightly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Each names who failed first: the server, its reply, or the router.
            RequestError::Backend { address, cause } => match cause {
                BackendError::StillArriving { .. } | BackendError::TooLarge { .. } => {
                    write!(f, "reply from {address} {cause}")
                }
                BackendError::CutBehind => write!(f, "connection to {address} {cause}"),
                BackendError::Local(what) => write!(f, "router {what} connecting to {address}"),
                _ => write!(f, "backend {address} {cause}"),
            },
            RequestError::StreamBroken { cause: Some(cause) } => write!(f, "backend {cause}"),
            RequestError::StreamBroken { cause: None } => {
                f.write_str("backend value stream ended early")
            }
            RequestError::Plugin { node, fault, .. } => match fault {
                Fault::Timeout => write!(f, "plugin {node} timed out"),
                Fault::Trap(_) | Fault::BadPlan(_) | Fault::OutOfMemory(_) => {
                    write!(f, "plugin {node} failed")
                }
                Fault::Unavailable(_) => write!(f, "plugin {node} unavailable"),
            },
            RequestError::Plan { node, problem, .. } => match problem {
                PlanProblem::MisplacedPass | PlanProblem::TooManyCalls => {
                    write!(f, "plugin {node} failed")
                }
                PlanProblem::ReplyNotValid { reply, op } => {
                    write!(f, "plugin reply {reply} is not valid for {op}")
                }
                PlanProblem::StripsPastKey => {
                    f.write_str("key rewrite strips more bytes than the key has")
                }
                PlanProblem::KeyLength(len) => write!(
                    f,
                    "rewritten key is {len} bytes; memcached keys are 1 to {DEFAULT_MAX_KEY_LEN}"
                ),
                PlanProblem::NotRewritable(command) => write!(f, "{command} cannot be rewritten"),
                PlanProblem::BuiltMeta => f.write_str("meta request without a client line"),
                PlanProblem::NoChildren => f.write_str("fan-out to no children"),
                PlanProblem::LeavesNamespace => {
                    f.write_str("rewritten key leaves the tenant's namespace")
                }
            },
            RequestError::Internal(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: &str = "127.0.0.1:11211";

    fn backend(cause: BackendError) -> RequestError {
        RequestError::backend(ADDR.parse().expect("address"), cause)
    }

    fn plugin(call: PluginCall, fault: Fault) -> RequestError {
        RequestError::Plugin {
            node: "pool.main".into(),
            call,
            fault,
        }
    }

    fn plan(call: PluginCall, problem: PlanProblem) -> RequestError {
        RequestError::Plan {
            node: "pool.main".into(),
            call,
            problem,
        }
    }

    /// Side, retry safety and exact reply of `e`.
    fn check(e: &RequestError, side: Side, retry_safe: bool, reply: &str) {
        assert_eq!(e.side(), side, "side of {e:?}");
        assert_eq!(e.retry_safe(), retry_safe, "retry_safe of {e:?}");
        let outcome = e.reply();
        assert_eq!(outcome.frame, reply.as_bytes(), "reply to {e:?}");
        assert_eq!(outcome.status, ReplyStatus::ServerError);
    }

    #[test]
    fn backend_failures_are_retry_safe_only_when_nothing_was_sent() {
        use BackendError::*;
        let cases: [(BackendError, bool, &str); 9] = [
            (Down, true, "is down"),
            (
                Overloaded(4096),
                true,
                "has more than 4096 bytes of requests outstanding",
            ),
            (
                Connect("connection refused".into()),
                true,
                "connect failed: connection refused",
            ),
            (ConnectTimeout, true, "connect timed out"),
            (Shutdown, true, "router shutting down"),
            (Timeout, false, "timed out"),
            (Closed, false, "connection closed"),
            (Io("broken pipe".into()), false, "i/o error: broken pipe"),
            (
                Protocol("malformed reply"),
                false,
                "protocol error: malformed reply",
            ),
        ];
        for (cause, retry_safe, why) in cases {
            let e = backend(cause);
            check(
                &e,
                Side::Backend,
                retry_safe,
                &format!("SERVER_ERROR backend {ADDR} {why}\r\n"),
            );
            assert_eq!(e.address(), Some(ADDR.parse().expect("address")));
            assert_eq!(e.node(), None);
        }
        check(
            &backend(Timeout),
            Side::Backend,
            false,
            "SERVER_ERROR backend 127.0.0.1:11211 timed out\r\n",
        );
    }

    #[test]
    fn what_is_not_the_servers_doing_is_blamed_where_it_belongs() {
        use crate::backend::LocalShortage;
        check(
            &backend(BackendError::StillArriving {
                received: 123_456,
                timeout_ms: 150,
            }),
            Side::Client,
            false,
            "SERVER_ERROR reply from 127.0.0.1:11211 exceeded its 150 ms timeout while still \
             arriving (123456 bytes received)\r\n",
        );
        check(
            &backend(BackendError::TooLarge { limit: 65536 }),
            Side::Client,
            false,
            "SERVER_ERROR reply from 127.0.0.1:11211 exceeded max_reply_bytes (65536) before its \
             end\r\n",
        );
        check(
            &backend(BackendError::CutBehind),
            Side::Internal,
            false,
            "SERVER_ERROR connection to 127.0.0.1:11211 reset behind a reply that was cut off\r\n",
        );
        let local = [
            (LocalShortage::FileDescriptors, "out of file descriptors"),
            (
                LocalShortage::SystemFileDescriptors,
                "out of file descriptors (system-wide limit)",
            ),
            (LocalShortage::Memory, "out of memory"),
            (LocalShortage::LocalPorts, "out of local ports"),
        ];
        for (what, text) in local {
            check(
                &backend(BackendError::Local(what)),
                Side::Internal,
                true,
                &format!("SERVER_ERROR router {text} connecting to {ADDR}\r\n"),
            );
        }
    }

    #[test]
    fn a_broken_stream_names_no_server() {
        check(
            &RequestError::StreamBroken {
                cause: Some(BackendError::Timeout),
            },
            Side::Backend,
            false,
            "SERVER_ERROR backend timed out\r\n",
        );
        check(
            &RequestError::StreamBroken { cause: None },
            Side::Backend,
            false,
            "SERVER_ERROR backend value stream ended early\r\n",
        );
    }

    #[test]
    fn plugin_faults_name_the_node_and_are_retry_safe_in_route_only() {
        let faults = [
            (
                Fault::Timeout,
                "SERVER_ERROR plugin pool.main timed out\r\n",
            ),
            (
                Fault::Trap("unreachable".into()),
                "SERVER_ERROR plugin pool.main failed\r\n",
            ),
            (
                Fault::BadPlan("unknown tag".into()),
                "SERVER_ERROR plugin pool.main failed\r\n",
            ),
            (
                Fault::Unavailable("init returned 1".into()),
                "SERVER_ERROR plugin pool.main unavailable\r\n",
            ),
        ];
        for (fault, reply) in faults {
            let e = plugin(PluginCall::Route, fault.clone());
            check(&e, Side::Plugin, true, reply);
            assert_eq!(e.node(), Some("pool.main"));
            assert_eq!(e.address(), None);
            check(
                &plugin(PluginCall::OnReply, fault),
                Side::Plugin,
                false,
                reply,
            );
        }
        assert_eq!(
            Fault::from(PluginFault::Trap("x".into())),
            Fault::Trap("x".into())
        );
        assert_eq!(Fault::from(PluginFault::Timeout), Fault::Timeout);
        assert_eq!(
            Fault::from(PluginFault::BadPlan("y".into())),
            Fault::BadPlan("y".into())
        );
    }

    #[test]
    fn plans_that_cannot_be_carried_out_fall_on_their_side() {
        use PlanProblem::*;
        let cases: [(PlanProblem, Side, &str); 8] = [
            (MisplacedPass, Side::Plugin, "plugin pool.main failed"),
            (TooManyCalls, Side::Plugin, "plugin pool.main failed"),
            (
                ReplyNotValid {
                    reply: "stored",
                    op: switchyard_sdk::Op::Get,
                },
                Side::Plugin,
                "plugin reply stored is not valid for get",
            ),
            (
                StripsPastKey,
                Side::Client,
                "key rewrite strips more bytes than the key has",
            ),
            (
                KeyLength(260),
                Side::Client,
                "rewritten key is 260 bytes; memcached keys are 1 to 250",
            ),
            (
                NotRewritable("flush_all"),
                Side::Internal,
                "flush_all cannot be rewritten",
            ),
            (
                BuiltMeta,
                Side::Internal,
                "meta request without a client line",
            ),
            (NoChildren, Side::Internal, "fan-out to no children"),
        ];
        for (problem, side, message) in cases {
            let reply = format!("SERVER_ERROR {message}\r\n");
            let e = plan(PluginCall::Route, problem.clone());
            check(&e, side, true, &reply);
            assert_eq!(e.node(), Some("pool.main"));
            check(&plan(PluginCall::OnReply, problem), side, false, &reply);
        }
    }

    #[test]
    fn internal_errors_are_never_retry_safe() {
        let e = RequestError::Internal("no such destination");
        check(
            &e,
            Side::Internal,
            false,
            "SERVER_ERROR no such destination\r\n",
        );
        assert_eq!((e.address(), e.node()), (None, None));
    }

    #[test]
    fn each_failure_is_counted_once_on_its_side() {
        let stats = WorkerStats::default();
        let counts = |s: &WorkerStats| {
            [
                s.client_errors.get(),
                s.backend_errors.get(),
                s.plugin_faults.get(),
                s.internal_errors.get(),
            ]
        };
        let reply = backend(BackendError::Down).answer(&stats);
        assert_eq!(
            reply.frame,
            "SERVER_ERROR backend 127.0.0.1:11211 is down\r\n"
        );
        assert_eq!(counts(&stats), [0, 1, 0, 0]);
        plugin(PluginCall::Route, Fault::Timeout).answer(&stats);
        assert_eq!(counts(&stats), [0, 1, 1, 0]);
        plan(PluginCall::Route, PlanProblem::KeyLength(251)).answer(&stats);
        assert_eq!(counts(&stats), [1, 1, 1, 0]);
        RequestError::Internal("backend request dropped").answer(&stats);
        assert_eq!(counts(&stats), [1, 1, 1, 1]);
        // Rendering alone counts nothing.
        backend(BackendError::Down).reply();
        assert_eq!(counts(&stats), [1, 1, 1, 1]);
    }
}
