//! What a plugin's direct reply (`reply(code)`, `sdk/ABI.md`) looks like on the wire: the reply
//! memcached itself would give for that operation, classic or meta.

use bytes::Bytes;
use switchyard_protocol::ReplyStatus;
use switchyard_sdk::Op;

use super::Outcome;
use crate::error::PlanProblem;
use crate::plugin::OwnedReply;

/// The reply for `r` to the operation with ABI code `op`; the mismatch when the reply makes no
/// sense for the operation. A plugin's `SERVER_ERROR` or `CLIENT_ERROR` with its message is a
/// reply it chose, not a failure of the request.
pub(crate) fn render_plugin_reply(r: &OwnedReply, op: u32) -> Result<Outcome, PlanProblem> {
    let op = Op::from_code(op);
    let rendered = match r {
        OwnedReply::Error => fixed(b"ERROR\r\n", ReplyStatus::Error),
        OwnedReply::ServerError(message) => Some(Outcome {
            frame: Bytes::from(format!("SERVER_ERROR {message}\r\n")),
            status: ReplyStatus::ServerError,
        }),
        OwnedReply::ClientError(message) => Some(Outcome {
            frame: Bytes::from(format!("CLIENT_ERROR {message}\r\n")),
            status: ReplyStatus::ClientError,
        }),
        OwnedReply::Miss
        | OwnedReply::NotStored
        | OwnedReply::Stored
        | OwnedReply::Exists
        | OwnedReply::NotFound
        | OwnedReply::Deleted
        | OwnedReply::Touched
            if op.is_meta() =>
        {
            meta(r, op)
        }
        OwnedReply::Miss
        | OwnedReply::NotStored
        | OwnedReply::Stored
        | OwnedReply::Exists
        | OwnedReply::NotFound
        | OwnedReply::Deleted
        | OwnedReply::Touched => classic(r, op),
    };
    rendered.ok_or(PlanProblem::ReplyNotValid {
        reply: r.as_reply().name(),
        op,
    })
}

fn fixed(frame: &'static [u8], status: ReplyStatus) -> Option<Outcome> {
    Some(Outcome::fixed(frame, status))
}

fn classic(r: &OwnedReply, op: Op) -> Option<Outcome> {
    use OwnedReply as R;
    let retrieval = op.is_retrieval();
    // Not meta here: `set add replace append prepend cas`.
    let storage = op.is_storage();
    match r {
        R::Miss | R::NotFound if retrieval => fixed(b"END\r\n", ReplyStatus::Miss),
        R::Miss if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        R::Miss | R::NotFound => fixed(b"NOT_FOUND\r\n", ReplyStatus::NotFound),
        R::NotStored if storage => fixed(b"NOT_STORED\r\n", ReplyStatus::NotStored),
        R::Stored if storage => fixed(b"STORED\r\n", ReplyStatus::Stored),
        R::Exists if storage => fixed(b"EXISTS\r\n", ReplyStatus::Exists),
        R::Deleted if op == Op::Delete => fixed(b"DELETED\r\n", ReplyStatus::Deleted),
        R::Touched if op == Op::Touch => fixed(b"TOUCHED\r\n", ReplyStatus::Touched),
        _ => None,
    }
}

/// Meta replies carry no opaque (`O`) or key (`k`) echo here: a plugin's own answer is not a
/// backend's, and a client matching replies by opaque should not route through such a plugin.
fn meta(r: &OwnedReply, op: Op) -> Option<Outcome> {
    use OwnedReply as R;
    match (op, r) {
        (Op::MetaGet | Op::MetaDebug, R::Miss | R::NotFound) => fixed(b"EN\r\n", ReplyStatus::Miss),
        (Op::MetaSet, R::Miss | R::NotStored) => fixed(b"NS\r\n", ReplyStatus::NotStored),
        (Op::MetaSet, R::Stored) => fixed(b"HD\r\n", ReplyStatus::Stored),
        (Op::MetaSet | Op::MetaDelete | Op::MetaArithmetic, R::Exists) => {
            fixed(b"EX\r\n", ReplyStatus::Exists)
        }
        (Op::MetaSet | Op::MetaDelete | Op::MetaArithmetic, R::NotFound) => {
            fixed(b"NF\r\n", ReplyStatus::NotFound)
        }
        (Op::MetaDelete | Op::MetaArithmetic, R::Miss) => fixed(b"NF\r\n", ReplyStatus::NotFound),
        (Op::MetaDelete, R::Deleted) => fixed(b"HD\r\n", ReplyStatus::Deleted),
        (Op::MetaArithmetic, R::NotStored) => fixed(b"NS\r\n", ReplyStatus::NotStored),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::abi::{op, reply};

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
        assert_eq!(
            frame(reply::STORED, op::GET),
            "SERVER_ERROR plugin reply stored is not valid for get\r\n"
        );
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
