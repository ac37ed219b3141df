//! The router answering questions about itself, as mcrouter does with `__mcrouter__.` keys: a
//! `get` (`gets`, `gat`, `gats`) of a key that starts with `__switchyard__.` is answered here and
//! never routed or sent anywhere.
//!
//! | key | the value |
//! | --- | --- |
//! | `__switchyard__.route(<op>,<key>)` | where that request would go: a dry run of the listener's route tree for it (`dry_run.rs`) |
//! | `__switchyard__.config` | the text of the configuration running now |
//! | `__switchyard__.version` | the version string (`VERSION_STRING`) |
//! | `__switchyard__.generation` | the running generation's number |
//!
//! Any other key in the namespace is a miss. In a `get` of several keys the reserved ones are
//! answered here and the others routed one by one, and the reply keeps the client's key order.
//! In `stats` the command counts as any (`cmd_get`, counted by dispatch), `get_keys` counts its
//! ordinary keys only, and a route question counts as no request of its `<op>`: its plugin calls
//! count in `stats plugins` as calls.
//!
//! - `dry_run`: one request through the plugins with nothing sent, as text.
//! - `cli`: `switchyard route --config FILE [--listener N] OP KEY...`, the same text offline.
//!
//! The cost to every other request is dispatch's check of each key of a retrieval for the
//! prefix ([`asked`]): no allocation, and one byte compared for a key that does not start with
//! `_`.

pub mod cli;
mod dry_run;

use std::ops::Range;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use switchyard_protocol::{Command, ReplyKind, ReplyStatus, Request};
use switchyard_sdk::Op;

use crate::execute::{Origin, Req};
use crate::plugin::RouteInput;
use crate::reply::{Outcome, Pending, merge_retrieval};
use crate::tls::Identity;
use crate::wire::Wire;
use crate::worker::LocalGeneration;

/// The reserved key namespace.
pub const PREFIX: &[u8] = b"__switchyard__.";

/// A question a reserved key asks.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Question<'k> {
    /// `route(<op>,<key>)`.
    Route {
        /// The operation.
        op: Op,
        /// The key it would be routed by.
        key: &'k [u8],
    },
    /// `config`.
    Config,
    /// `version`.
    Version,
    /// `generation`.
    Generation,
    /// `route(...)` that cannot be read: why (the client's error).
    Malformed(String),
    /// Anything else in the namespace: a miss.
    Unknown,
}

impl<'k> Question<'k> {
    /// The question `key` asks; `None` if it is not in the reserved namespace.
    fn of(key: &'k [u8]) -> Option<Question<'k>> {
        let asked = key.strip_prefix(PREFIX)?;
        Some(match asked {
            b"config" => Question::Config,
            b"version" => Question::Version,
            b"generation" => Question::Generation,
            _ => match asked.strip_prefix(b"route(") {
                Some(args) => route_question(args),
                None => Question::Unknown,
            },
        })
    }
}

/// The arguments of `route(`, up to and including its `)`: an operation's name, a comma, and a
/// key (which may itself hold commas and parentheses).
fn route_question(args: &[u8]) -> Question<'_> {
    let Some(args) = args.strip_suffix(b")") else {
        return Question::Malformed("route(<op>,<key>) has no closing `)`".into());
    };
    let Some(comma) = args.iter().position(|&b| b == b',') else {
        return Question::Malformed("route(<op>,<key>) needs an operation and a key".into());
    };
    let (name, key) = (&args[..comma], &args[comma + 1..]);
    if key.is_empty() {
        return Question::Malformed("route(<op>,<key>) has an empty key".into());
    }
    match std::str::from_utf8(name).ok().and_then(op_named) {
        Some(op) => Question::Route { op, key },
        None => Question::Malformed(format!(
            "unknown operation `{}` (one of {})",
            String::from_utf8_lossy(name),
            op_names().join(" ")
        )),
    }
}

/// The operation a command name names (`get`, `set`, `mg`, ...: `Op::name`).
pub(crate) fn op_named(name: &str) -> Option<Op> {
    (1..=u8::MAX as u32)
        .map(Op::from_code)
        .find(|op| op.name() == Some(name))
}

/// Every operation's name, in code order.
pub(crate) fn op_names() -> Vec<&'static str> {
    (1..=u8::MAX as u32)
        .filter_map(|code| Op::from_code(code).name())
        .collect()
}

/// Whether a retrieval names a reserved key: dispatch's check, before it counts or routes one.
pub fn asked(request: &Request, frame: &[u8]) -> bool {
    request
        .keys(frame)
        .any(|key| frame.get(key).is_some_and(|k| k.starts_with(PREFIX)))
}

/// Whether every key a retrieval names is a reserved one: what a tenant's must be, since the
/// keys routed beside the questions go as the client sent them, outside its namespace.
pub fn asked_only(request: &Request, frame: &[u8]) -> bool {
    request
        .keys(frame)
        .all(|key| frame.get(key).is_some_and(|k| k.starts_with(PREFIX)))
}

/// The reply to a retrieval that names a reserved key ([`asked`]), on the listener `listener`
/// for a client of `identity` whose requests start at `root` (the listener's, or its
/// tenant's): the reserved keys answered here, the others routed each alone from the root,
/// merged in the client's key order. A route question about a key asks about it under
/// `namespace`, the tenant's (a tenant's retrieval names no other key: `dispatch::check`).
pub fn retrieval(
    generation: &Rc<LocalGeneration>,
    (listener, root): (u32, crate::generation::Target),
    identity: Option<&Identity>,
    request: &Request,
    frame: &Bytes,
    namespace: &[u8],
) -> Pending {
    let asking = Asking {
        generation,
        listener,
        root,
        identity,
        command: request.command,
        namespace,
    };
    let keys: Vec<Range<usize>> = request.keys(frame).collect();
    if let [key] = &keys[..]
        && let Some(bytes) = frame.get(key.clone())
        && let Some(question) = Question::of(bytes)
    {
        return Pending::Ready(asking.answer(bytes, question));
    }
    let verb = frame
        .get(request.line.start..request.keys.start)
        .unwrap_or_default();
    let mut parts = Vec::with_capacity(keys.len());
    let mut order = Vec::with_capacity(keys.len());
    let mut routed = 0;
    for key in keys {
        let bytes = frame.get(key.clone()).unwrap_or_default();
        let part = match Question::of(bytes) {
            Some(question) => Pending::Ready(asking.answer(bytes, question)),
            None => {
                // Routed alone, as a multi-key get routes a key whose route is not one server.
                routed += 1;
                let mut line = BytesMut::with_capacity(verb.len() + bytes.len() + 2);
                line.extend_from_slice(verb);
                line.extend_from_slice(bytes);
                line.extend_from_slice(b"\r\n");
                let wire = Wire::one(line.freeze());
                let req = Req {
                    input: asking.input(bytes, request.exptime),
                    wire: &wire,
                    kind: ReplyKind::Retrieval,
                    origin: Origin::Client { request, frame },
                    namespace: b"",
                    tenant: None,
                };
                generation.execute(root, &req)
            }
        };
        parts.push(part);
        order.push((key, parts.len() - 1));
    }
    generation.stats_keys(routed);
    Pending::Merged(Box::pin(merge_retrieval(
        frame.clone(),
        order,
        parts,
        Bytes::new(),
    )))
}

/// Who asks, and with which command.
struct Asking<'a> {
    generation: &'a LocalGeneration,
    listener: u32,
    root: crate::generation::Target,
    identity: Option<&'a Identity>,
    command: Command,
    /// The client's tenant's namespace (empty for none): a route question asks about the key
    /// as its servers have it.
    namespace: &'a [u8],
}

impl Asking<'_> {
    /// What a plugin is given for `key` of the client's retrieval, or of the request a route
    /// question asks about.
    fn input<'k>(&self, key: &'k [u8], exptime: i64) -> RouteInput<'k>
    where
        Self: 'k,
    {
        RouteInput {
            op: self.command.op().map_or(0, Op::code),
            key,
            flags: 0,
            exptime,
            value_len: 0,
            listener: self.listener,
            identity: self.identity,
        }
    }

    /// The reply for reserved key `key`, which asks `question`.
    fn answer(&self, key: &[u8], question: Question<'_>) -> Outcome {
        let shared = &self.generation.shared;
        let text: Bytes = match question {
            Question::Config => Bytes::copy_from_slice(shared.config.text.as_bytes()),
            Question::Version => Bytes::from_static(crate::VERSION_STRING.as_bytes()),
            Question::Generation => Bytes::from(shared.number.to_string()),
            Question::Route { op, key } => {
                let namespaced = [self.namespace, key].concat();
                let input = RouteInput {
                    op: op.code(),
                    ..self.input(&namespaced, 0)
                };
                Bytes::from(self.generation.dry_run(self.root, &input))
            }
            Question::Malformed(why) => {
                return Outcome {
                    frame: Bytes::from(format!("CLIENT_ERROR {why}\r\n")),
                    status: ReplyStatus::ClientError,
                };
            }
            Question::Unknown => return Outcome::fixed(b"END\r\n", ReplyStatus::Miss),
        };
        value(
            key,
            &text,
            matches!(self.command, Command::Gets | Command::Gats),
        )
    }
}

/// A retrieval's reply of one value: `VALUE <key> 0 <len>[ 0]`, the data, `END`.
fn value(key: &[u8], data: &[u8], cas: bool) -> Outcome {
    let head = format!(" 0 {}{}\r\n", data.len(), if cas { " 0" } else { "" });
    let mut frame = BytesMut::with_capacity(6 + key.len() + head.len() + data.len() + 7);
    frame.extend_from_slice(b"VALUE ");
    frame.extend_from_slice(key);
    frame.extend_from_slice(head.as_bytes());
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\nEND\r\n");
    Outcome {
        frame: frame.freeze(),
        status: ReplyStatus::Hit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(key: &str) -> Option<Question<'_>> {
        Question::of(key.as_bytes())
    }

    #[test]
    fn reserved_keys_ask_their_questions() {
        assert_eq!(of("user:1"), None);
        assert_eq!(of("_switchyard_.version"), None);
        assert_eq!(of("__switchyard__.version"), Some(Question::Version));
        assert_eq!(of("__switchyard__.config"), Some(Question::Config));
        assert_eq!(of("__switchyard__.generation"), Some(Question::Generation));
        assert_eq!(of("__switchyard__.versions"), Some(Question::Unknown));
        assert_eq!(of("__switchyard__."), Some(Question::Unknown));
        assert_eq!(
            of("__switchyard__.route(set,a,b(c))"),
            Some(Question::Route {
                op: Op::Set,
                key: b"a,b(c)"
            })
        );
        assert_eq!(
            of("__switchyard__.route(mg,k)"),
            Some(Question::Route {
                op: Op::MetaGet,
                key: b"k"
            })
        );
    }

    #[test]
    fn malformed_route_questions_say_why() {
        for (key, why) in [
            ("__switchyard__.route(get,k", "no closing"),
            ("__switchyard__.route(get)", "needs an operation and a key"),
            ("__switchyard__.route(get,)", "empty key"),
            ("__switchyard__.route(fetch,k)", "unknown operation `fetch`"),
        ] {
            match of(key) {
                Some(Question::Malformed(message)) => {
                    assert!(message.contains(why), "{key}: {message}")
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_command_name_is_an_operation() {
        for name in [
            "get", "gets", "gat", "gats", "set", "add", "replace", "append",
        ] {
            assert_eq!(op_named(name).and_then(Op::name), Some(name));
        }
        for name in [
            "prepend", "cas", "delete", "incr", "decr", "touch", "mg", "ms", "md",
        ] {
            assert_eq!(op_named(name).and_then(Op::name), Some(name));
        }
        assert_eq!(op_named("ma"), Some(Op::MetaArithmetic));
        assert_eq!(op_named("stats"), None);
        assert_eq!(op_names().first(), Some(&"get"));
    }

    #[test]
    fn a_value_reply_is_memcached_s() {
        let plain = value(b"__switchyard__.version", b"v1", false);
        assert_eq!(
            &plain.frame[..],
            b"VALUE __switchyard__.version 0 2\r\nv1\r\nEND\r\n"
        );
        let with_cas = value(b"k", b"", true);
        assert_eq!(&with_cas.frame[..], b"VALUE k 0 0 0\r\n\r\nEND\r\n");
    }
}
