//! What a plugin's direct reply (`reply(code)`, `sdk/ABI.md`) looks like on the wire: the reply
//! memcached itself would give for that operation, classic or meta.

use bytes::Bytes;
use switchyard_protocol::ReplyStatus;
use switchyard_sdk::abi::{op, reply};

use super::Outcome;
use crate::error::PlanProblem;
use crate::plugin::OwnedReply;

/// The reply for `r` to operation `op`; the mismatch when the code makes no sense for the
/// operation. A plugin's `SERVER_ERROR` or `CLIENT_ERROR` with its message is a reply it chose,
/// not a failure of the request.
pub(crate) fn render_plugin_reply(r: &OwnedReply, op: u32) -> Result<Outcome, PlanProblem> {
    let r = r.as_reply();
    let message = r.message().unwrap_or_default();
    let rendered = match r.code() {
        reply::ERROR => Some(Outcome::fixed(b"ERROR\r\n", ReplyStatus::Error)),
        reply::SERVER_ERROR => Some(Outcome {
            frame: Bytes::from(format!("SERVER_ERROR {message}\r\n")),
            status: ReplyStatus::ServerError,
        }),
        reply::CLIENT_ERROR => Some(Outcome {
            frame: Bytes::from(format!("CLIENT_ERROR {message}\r\n")),
            status: ReplyStatus::ClientError,
        }),
        code if op >= op::META_GET => meta(code, op),
        code => classic(code, op),
    };
    rendered.ok_or(PlanProblem::ReplyNotValid { code: r.code(), op })
}

fn fixed(frame: &'static [u8], status: ReplyStatus) -> Option<Outcome> {
    Some(Outcome::fixed(frame, status))
}

fn classic(code: u32, op: u32) -> Option<Outcome> {
    let retrieval = matches!(op, op::GET | op::GETS | op::GAT | op::GATS);
    let storage = (op::SET..=op::CAS).contains(&op);
    match code {
        reply::MISS | reply::NOT_FOUND if retrieval => fixed(b"END\r\n", ReplyStatus::Miss),
        reply::MISS if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        reply::MISS | reply::NOT_FOUND => fixed(b"NOT_FOUND\r\n", ReplyStatus::NotFound),
        reply::NOT_STORED if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        reply::STORED if storage => fixed(b"STORED\r\n", ReplyStatus::Stored),
        reply::EXISTS if storage => fixed(b"EXISTS\r\n", ReplyStatus::Exists),
        reply::DELETED if op == op::DELETE => fixed(b"DELETED\r\n", ReplyStatus::Deleted),
        reply::TOUCHED if op == op::TOUCH => fixed(b"TOUCHED\r\n", ReplyStatus::Touched),
        _ => None,
    }
}

/// Meta replies carry no opaque (`O`) or key (`k`) echo here: a plugin's own answer is not a
/// backend's, and a client matching replies by opaque should not route through such a plugin.
fn meta(code: u32, op: u32) -> Option<Outcome> {
    match (op, code) {
        (op::META_GET | op::META_DEBUG, reply::MISS | reply::NOT_FOUND) => {
            fixed(b"EN\r\n", ReplyStatus::Miss)
        }
        (op::META_SET, reply::MISS | reply::NOT_STORED) => fixed(b"NS\r\n", ReplyStatus::NotStored),
        (op::META_SET, reply::STORED) => fixed(b"HD\r\n", ReplyStatus::Stored),
        (op::META_SET | op::META_DELETE | op::META_ARITHMETIC, reply::EXISTS) => {
            fixed(b"EX\r\n", ReplyStatus::Exists)
        }
        (op::META_SET | op::META_DELETE | op::META_ARITHMETIC, reply::NOT_FOUND) => {
            fixed(b"NF\r\n", ReplyStatus::NotFound)
        }
        (op::META_DELETE | op::META_ARITHMETIC, reply::MISS) => {
            fixed(b"NF\r\n", ReplyStatus::NotFound)
        }
        (op::META_DELETE, reply::DELETED) => fixed(b"HD\r\n", ReplyStatus::Deleted),
        (op::META_ARITHMETIC, reply::NOT_STORED) => fixed(b"NS\r\n", ReplyStatus::NotStored),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(code: u32, op: u32) -> Bytes {
        let reply = switchyard_sdk::Reply::from_code(code, "why").expect("known code");
        match render_plugin_reply(&reply.into(), op) {
            Ok(outcome) => outcome.frame,
            Err(problem) => {
                let error = crate::error::RequestError::Plan {
                    node: "n".into(),
                    call: crate::error::PluginCall::Route,
                    problem,
                };
                error.reply().frame
            }
        }
    }

    #[test]
    fn classic_replies_follow_the_operation() {
        assert_eq!(frame(reply::MISS, op::GET), "END\r\n");
        assert_eq!(frame(reply::MISS, op::SET), "NOT_STORED\r\n");
        assert_eq!(frame(reply::MISS, op::DELETE), "NOT_FOUND\r\n");
        assert_eq!(frame(reply::STORED, op::CAS), "STORED\r\n");
        assert_eq!(frame(reply::SERVER_ERROR, op::INCR), "SERVER_ERROR why\r\n");
        assert!(frame(reply::STORED, op::GET).starts_with(b"SERVER_ERROR plugin reply 2"));
    }

    #[test]
    fn meta_replies_use_meta_codes() {
        assert_eq!(frame(reply::MISS, op::META_GET), "EN\r\n");
        assert_eq!(frame(reply::MISS, op::META_SET), "NS\r\n");
        assert_eq!(frame(reply::STORED, op::META_SET), "HD\r\n");
        assert_eq!(frame(reply::MISS, op::META_DELETE), "NF\r\n");
        assert_eq!(frame(reply::DELETED, op::META_DELETE), "HD\r\n");
        assert_eq!(frame(reply::EXISTS, op::META_ARITHMETIC), "EX\r\n");
        assert_eq!(
            frame(reply::CLIENT_ERROR, op::META_GET),
            "CLIENT_ERROR why\r\n"
        );
        assert!(frame(reply::TOUCHED, op::META_GET).starts_with(b"SERVER_ERROR"));
    }
}
