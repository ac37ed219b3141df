//! The plan executor: walks the route tree for one request (plugin calls, tail-call forwards),
//! sends to backends, and turns what comes back into the client's reply.
//!
//! A request becomes a [`Pending`]: already sent wherever it must go, waiting only for replies.
//! Sessions queue `Pending`s in request order and write each reply when it is ready.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{ReplyKind, ReplyStatus, values};
use switchyard_sdk::abi::reply;
use tokio::sync::oneshot;

use crate::backend::BackendResult;
use crate::generation::Target;
use crate::plugin::{Plan, PluginReply, RouteInput};
use crate::wire::{Wire, WriteQueue};
use crate::worker::LocalGeneration;

/// A finished reply: its bytes and what kind of answer it is.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The reply exactly as the client will see it (for a retrieval, `VALUE`s and `END`).
    pub frame: Bytes,
    /// What kind of answer it is, for combining fan-out replies.
    pub status: ReplyStatus,
}

impl Outcome {
    /// A reply known without asking anyone.
    pub fn fixed(frame: &'static [u8], status: ReplyStatus) -> Outcome {
        Outcome {
            frame: Bytes::from_static(frame),
            status,
        }
    }

    /// `SERVER_ERROR <message>`.
    pub fn server_error(message: &str) -> Outcome {
        Outcome {
            frame: Bytes::from(format!("SERVER_ERROR {message}\r\n")),
            status: ReplyStatus::ServerError,
        }
    }

    fn is_error(&self) -> bool {
        matches!(
            self.status,
            ReplyStatus::Error | ReplyStatus::ClientError | ReplyStatus::ServerError
        )
    }
}

/// Where one key's route ends, before anything is sent.
#[derive(Debug)]
pub enum Resolved {
    /// A single backend server: the common case, and the one multi-key gets batch.
    Server {
        /// Destination index in the generation.
        dest: usize,
        /// Request timeout of the pool that chose it.
        timeout: Duration,
    },
    /// A reply decided without a backend (plugin reply or plugin fault).
    Reply(Outcome),
    /// Several targets at once, replying with the worst reply.
    FanOut(Vec<Target>),
}

/// A request that has been sent and awaits its reply.
pub enum Pending {
    /// Already answered.
    Ready(Outcome),
    /// Waiting for one backend.
    Backend {
        /// Completes with the backend's reply.
        rx: oneshot::Receiver<BackendResult>,
        /// Who was asked, for the error message.
        dest: Rc<crate::backend::Destination>,
        /// Counters to charge a failure to.
        stats: std::sync::Arc<crate::stats::WorkerStats>,
    },
    /// Anything else: a fan-out or a multi-key merge.
    Combined(Pin<Box<dyn Future<Output = Vec<Bytes>>>>),
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pending::Ready(o) => f.debug_tuple("Ready").field(o).finish(),
            Pending::Backend { dest, .. } => f
                .debug_struct("Backend")
                .field("dest", &dest.address())
                .finish(),
            Pending::Combined(_) => f.write_str("Combined"),
        }
    }
}

impl Pending {
    /// Waits for the reply.
    pub async fn outcome(self) -> Outcome {
        match self {
            Pending::Ready(o) => o,
            Pending::Backend { rx, dest, stats } => backend_outcome(rx.await, &dest, &stats),
            Pending::Combined(fut) => {
                let chunks = fut.await;
                // Only retrieval merges are Combined with several chunks; their status is not
                // looked at again.
                let frame = if chunks.len() == 1 {
                    chunks.into_iter().next().unwrap_or_default()
                } else {
                    Bytes::from(chunks.concat())
                };
                Outcome {
                    frame,
                    status: ReplyStatus::Hit,
                }
            }
        }
    }

    /// Waits for the reply and queues its bytes for the client.
    pub async fn write_into(self, out: &mut WriteQueue) {
        match self {
            Pending::Combined(fut) => {
                for chunk in fut.await {
                    out.push(chunk);
                }
            }
            other => out.push(other.outcome().await.frame),
        }
    }

    /// Whether the reply is already there, so a writer can batch it with earlier replies
    /// without waiting. Polls once; never blocks.
    pub fn is_ready(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let done = match self {
            Pending::Ready(_) => return true,
            Pending::Backend { rx, dest, stats } => match Pin::new(rx).poll(&mut cx) {
                Poll::Ready(result) => Pending::Ready(backend_outcome(result, dest, stats)),
                Poll::Pending => return false,
            },
            Pending::Combined(fut) => match fut.as_mut().poll(&mut cx) {
                Poll::Ready(chunks) => Pending::Combined(Box::pin(std::future::ready(chunks))),
                Poll::Pending => return false,
            },
        };
        *self = done;
        true
    }
}

impl LocalGeneration {
    /// Follows `target` through plugins until it ends at a server, a reply or a fan-out.
    pub fn resolve(&self, mut target: Target, input: &RouteInput<'_>) -> Resolved {
        loop {
            match target {
                Target::Server { dest, timeout } => return Resolved::Server { dest, timeout },
                Target::Node(n) => match self.route(n, input) {
                    Ok(Plan::Forward(child)) => target = self.shared.nodes[n].children[child],
                    Ok(Plan::Reply(r)) => {
                        return Resolved::Reply(render_plugin_reply(&r, input.op));
                    }
                    Ok(Plan::FanOut { children, .. }) => {
                        let node = &self.shared.nodes[n];
                        return Resolved::FanOut(
                            children.iter().map(|c| node.children[*c]).collect(),
                        );
                    }
                    Err(message) => return Resolved::Reply(Outcome::server_error(&message)),
                },
            }
        }
    }

    /// Routes one request from `target` and sends it: `wire` is what a backend receives.
    pub fn execute(
        &self,
        target: Target,
        input: &RouteInput<'_>,
        wire: &Wire,
        kind: ReplyKind,
    ) -> Pending {
        match self.resolve(target, input) {
            Resolved::Server { dest, timeout } => self.send(dest, timeout, wire, kind),
            Resolved::Reply(outcome) => Pending::Ready(outcome),
            Resolved::FanOut(targets) => worst_of(
                targets
                    .into_iter()
                    .map(|t| self.execute(t, input, wire, kind))
                    .collect(),
            ),
        }
    }

    /// Counts keys looked up by a retrieval.
    pub fn stats_keys(&self, n: u64) {
        self.stats.get_keys.add(n);
    }

    /// Sends `wire` to destination `dest`.
    pub fn send(&self, dest: usize, timeout: Duration, wire: &Wire, kind: ReplyKind) -> Pending {
        let Some(d) = self.destinations.get(dest) else {
            return Pending::Ready(Outcome::server_error("no such destination"));
        };
        match d.send(wire.clone(), kind, timeout) {
            Ok(rx) => Pending::Backend {
                rx,
                dest: d.clone(),
                stats: self.stats.clone(),
            },
            Err(e) => {
                // Down or over its limit: answered now, nothing sent.
                self.stats.backend_errors.inc();
                Pending::Ready(Outcome::server_error(&format!(
                    "backend {} {e}",
                    d.address()
                )))
            }
        }
    }
}

/// Waits for every part of a fan-out (all were sent already) and answers with the worst reply.
pub fn worst_of(parts: Vec<Pending>) -> Pending {
    Pending::Combined(Box::pin(async move {
        let mut worst: Option<Outcome> = None;
        for part in parts {
            let o = part.outcome().await;
            if worst
                .as_ref()
                .is_none_or(|w| o.status.severity() > w.status.severity())
            {
                worst = Some(o);
            }
        }
        vec![worst.map_or_else(Bytes::new, |o| o.frame)]
    }))
}

fn backend_outcome(
    result: Result<BackendResult, oneshot::error::RecvError>,
    dest: &crate::backend::Destination,
    stats: &crate::stats::WorkerStats,
) -> Outcome {
    match result {
        Ok(Ok(reply)) => Outcome {
            frame: reply.frame,
            status: reply.status,
        },
        Ok(Err(e)) => {
            stats.backend_errors.inc();
            Outcome::server_error(&format!("backend {} {e}", dest.address()))
        }
        Err(_) => Outcome::server_error("backend request dropped"),
    }
}

/// Merges the replies of a multi-key retrieval sent as several parts back into one reply in the
/// client's key order. `keys[i]` is the i-th key the client asked for and the index of the part
/// that carried it; each part answers its keys in the order it received them, leaving out
/// misses, so one cursor per part is enough. If any part failed, the client gets that error for
/// the whole command, as memcached clients expect one status per command.
pub async fn merge_retrieval(keys: Vec<(Bytes, usize)>, parts: Vec<Pending>) -> Vec<Bytes> {
    let mut outcomes = Vec::with_capacity(parts.len());
    for p in parts {
        outcomes.push(p.outcome().await);
    }
    if let Some(failed) = outcomes.iter().find(|o| o.is_error()) {
        return vec![failed.frame.clone()];
    }
    let mut cursors: Vec<_> = outcomes
        .iter()
        .map(|o| values(&o.frame).peekable())
        .collect();
    let mut out = Vec::with_capacity(keys.len() + 1);
    for (key, part) in &keys {
        let (Some(cursor), Some(outcome)) = (cursors.get_mut(*part), outcomes.get(*part)) else {
            continue;
        };
        if let Some(entry) = cursor.next_if(|e| outcome.frame.get(e.key.clone()) == Some(&key[..]))
        {
            out.push(outcome.frame.slice(entry.whole));
        }
    }
    out.push(Bytes::from_static(b"END\r\n"));
    out
}

/// What a plugin's direct reply looks like on the wire for operation `op` (`sdk/ABI.md`).
fn render_plugin_reply(r: &PluginReply, op: u32) -> Outcome {
    use switchyard_sdk::abi::op;
    let retrieval = matches!(op, op::GET | op::GETS | op::GAT | op::GATS);
    let storage = (op::SET..=op::CAS).contains(&op);
    let fixed = |frame: &'static [u8], status| Some(Outcome::fixed(frame, status));
    let rendered = match r.code {
        reply::MISS | reply::NOT_FOUND if retrieval => fixed(b"END\r\n", ReplyStatus::Miss),
        reply::MISS if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        reply::MISS | reply::NOT_FOUND => fixed(b"NOT_FOUND\r\n", ReplyStatus::NotFound),
        reply::NOT_STORED if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        reply::STORED if storage => fixed(b"STORED\r\n", ReplyStatus::Stored),
        reply::EXISTS if storage => fixed(b"EXISTS\r\n", ReplyStatus::Exists),
        reply::DELETED if op == op::DELETE => fixed(b"DELETED\r\n", ReplyStatus::Deleted),
        reply::TOUCHED if op == op::TOUCH => fixed(b"TOUCHED\r\n", ReplyStatus::Touched),
        reply::ERROR => fixed(b"ERROR\r\n", ReplyStatus::Error),
        reply::SERVER_ERROR => Some(Outcome::server_error(&r.message)),
        reply::CLIENT_ERROR => Some(Outcome {
            frame: Bytes::from(format!("CLIENT_ERROR {}\r\n", r.message)),
            status: ReplyStatus::ClientError,
        }),
        _ => None,
    };
    rendered.unwrap_or_else(|| {
        Outcome::server_error(&format!(
            "plugin reply {} is not valid for operation {op}",
            r.code
        ))
    })
}
