//! Decoding a plan word and plan buffer the way ABI.md says a version 1 host must, faults
//! included.

use std::fmt;

use crate::abi::{PLAN_CAPACITY, decode_plan_word, entry, tag};
use crate::plan::{Reply, Wait, is_message_byte};

/// A decoded plan, owned and comparable: what the host would do.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Forward to this child index.
    Forward(u32),
    /// Answer directly.
    Reply(OwnedReply),
    /// Send to these child indexes.
    FanOut {
        /// The children, in plan order.
        children: Vec<u32>,
        /// How the replies are combined.
        wait: Wait,
    },
    /// Send to this child index, then call `on_reply` with its reply and the cookie.
    Call {
        /// The child.
        child: u32,
        /// Handed back to `on_reply`.
        cookie: u32,
    },
    /// From `on_reply`: the reply just received is the node's reply.
    Pass,
}

impl Decision {
    /// The decision for a direct reply, for comparisons: `Decision::reply(Reply::Miss)`.
    pub fn reply(reply: Reply<'_>) -> Self {
        Self::Reply(reply.into())
    }
}

/// A [`Reply`] that owns its message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedReply {
    /// [`Reply::Miss`]
    Miss,
    /// [`Reply::NotStored`]
    NotStored,
    /// [`Reply::Stored`]
    Stored,
    /// [`Reply::Exists`]
    Exists,
    /// [`Reply::NotFound`]
    NotFound,
    /// [`Reply::Deleted`]
    Deleted,
    /// [`Reply::Touched`]
    Touched,
    /// [`Reply::Error`]
    Error,
    /// [`Reply::ServerError`]
    ServerError(String),
    /// [`Reply::ClientError`]
    ClientError(String),
}

impl From<Reply<'_>> for OwnedReply {
    fn from(reply: Reply<'_>) -> Self {
        match reply {
            Reply::Miss => Self::Miss,
            Reply::NotStored => Self::NotStored,
            Reply::Stored => Self::Stored,
            Reply::Exists => Self::Exists,
            Reply::NotFound => Self::NotFound,
            Reply::Deleted => Self::Deleted,
            Reply::Touched => Self::Touched,
            Reply::Error => Self::Error,
            Reply::ServerError(message) => Self::ServerError(message.to_owned()),
            Reply::ClientError(message) => Self::ClientError(message.to_owned()),
        }
    }
}

/// A plan a version 1 host refuses: the request fails with `SERVER_ERROR` and counts as a
/// plugin fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFault(String);

impl PlanFault {
    /// What is wrong with the plan.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanFault {}

macro_rules! fault {
    ($($arg:tt)*) => {
        return Err(PlanFault(format!($($arg)*)))
    };
}

/// Decodes what `route` or `on_reply` returned: the plan `word` and the plan buffer (`plan` may
/// be longer than what the plan uses), for a node with `child_count` children. Applies every
/// check ABI.md asks of a version 1 host, except one that depends on the caller: a
/// [`Decision::Pass`] is valid from `on_reply` only ([`Harness::try_route`](super::Harness::try_route)
/// refuses it).
pub fn decode_plan(word: u64, plan: &[u8], child_count: u32) -> Result<Decision, PlanFault> {
    let (plan_tag, small, arg) = decode_plan_word(word);
    match plan_tag {
        tag::FORWARD => {
            if small != 0 {
                fault!("forward plan with nonzero small field {small}");
            }
            check_child(arg, child_count)?;
            Ok(Decision::Forward(arg))
        }
        tag::REPLY => {
            let Some(reply) = Reply::from_code(small, "") else {
                fault!("unknown reply code {small}");
            };
            if reply.message().is_none() {
                // No message to read; `arg` is meaningless.
                return Ok(Decision::reply(reply));
            }
            let message = bytes(plan, arg)?;
            if let Some(&byte) = message.iter().find(|&&b| !is_message_byte(b)) {
                fault!("reply message has byte {byte:#04x}, which is not printable ASCII");
            }
            let message = std::str::from_utf8(message).unwrap_or_default();
            Ok(Decision::reply(
                Reply::from_code(small, message).unwrap_or(reply),
            ))
        }
        tag::PLAN => {
            if small != 0 {
                fault!("extended plan with nonzero small field {small}");
            }
            extended(bytes(plan, arg)?, child_count)
        }
        tag::PASS => {
            if small != 0 || arg != 0 {
                fault!("pass plan with nonzero fields (small {small}, arg {arg})");
            }
            Ok(Decision::Pass)
        }
        other => fault!("unknown plan tag {other}"),
    }
}

/// Refuses what only `on_reply` may return, for a decision `route` returned.
pub(super) fn check_route_decision(decision: Decision) -> Result<Decision, PlanFault> {
    if decision == Decision::Pass {
        fault!("pass from route: there is no reply to pass yet (pass is for on_reply)");
    }
    Ok(decision)
}

fn bytes(plan: &[u8], len: u32) -> Result<&[u8], PlanFault> {
    let len = len as usize;
    if len > PLAN_CAPACITY || len > plan.len() {
        fault!("plan of {len} bytes is longer than the plan buffer ({PLAN_CAPACITY})");
    }
    Ok(&plan[..len])
}

fn check_child(child: u32, child_count: u32) -> Result<(), PlanFault> {
    if child >= child_count {
        fault!("child {child} is out of range (the node has {child_count})");
    }
    Ok(())
}

fn extended(bytes: &[u8], child_count: u32) -> Result<Decision, PlanFault> {
    if !bytes.len().is_multiple_of(4) {
        fault!("extended plan of {} bytes is not whole words", bytes.len());
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let mut primary = None;
    let mut rest = &words[..];
    while !rest.is_empty() {
        let [opcode, n, tail @ ..] = rest else {
            fault!("truncated entry header");
        };
        let n = *n as usize;
        if tail.len() < n {
            fault!(
                "truncated entry: opcode {opcode} announces {n} words, {} left",
                tail.len()
            );
        }
        let (payload, next) = tail.split_at(n);
        rest = next;
        let decision = match *opcode {
            entry::FAN_OUT => fan_out(payload, child_count)?,
            entry::CALL => call(payload, child_count)?,
            entry::BACKGROUND => fault!("entry opcode {opcode} (background) is reserved"),
            other => fault!("unknown entry opcode {other}"),
        };
        if primary.replace(decision).is_some() {
            fault!("more than one primary entry");
        }
    }
    primary.ok_or_else(|| PlanFault("extended plan without a primary entry".into()))
}

fn call(payload: &[u32], child_count: u32) -> Result<Decision, PlanFault> {
    let &[child, cookie] = payload else {
        fault!("call takes 2 words (child, cookie), not {}", payload.len());
    };
    check_child(child, child_count)?;
    Ok(Decision::Call { child, cookie })
}

fn fan_out(payload: &[u32], child_count: u32) -> Result<Decision, PlanFault> {
    let [wait_code, children @ ..] = payload else {
        fault!("fan_out without a wait policy");
    };
    let wait = match Wait::from_code(*wait_code) {
        Some(wait) => wait,
        None => fault!("unknown fan_out wait policy {wait_code}"),
    };
    if children.is_empty() {
        fault!("fan_out names no children");
    }
    let mut seen = vec![false; child_count as usize];
    for &child in children {
        check_child(child, child_count)?;
        if std::mem::replace(&mut seen[child as usize], true) {
            fault!("fan_out names child {child} twice");
        }
    }
    Ok(Decision::FanOut {
        children: children.to_vec(),
        wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{encode_plan_word, reply, wait};

    fn plan_bytes(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    fn decode_words(words: &[u32], child_count: u32) -> Result<Decision, PlanFault> {
        let bytes = plan_bytes(words);
        decode_plan(
            encode_plan_word(tag::PLAN, 0, bytes.len() as u32),
            &bytes,
            child_count,
        )
    }

    fn fault_of(result: Result<Decision, PlanFault>) -> String {
        result.expect_err("a fault").0
    }

    #[test]
    fn forward() {
        assert_eq!(
            decode_plan(encode_plan_word(tag::FORWARD, 0, 2), &[], 3),
            Ok(Decision::Forward(2))
        );
        assert!(
            fault_of(decode_plan(encode_plan_word(tag::FORWARD, 0, 3), &[], 3))
                .contains("out of range")
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            decode_plan(encode_plan_word(tag::REPLY, reply::DELETED, 0), &[], 0),
            Ok(Decision::reply(Reply::Deleted))
        );
        assert_eq!(
            decode_plan(
                encode_plan_word(tag::REPLY, reply::SERVER_ERROR, 2),
                b"hi!",
                0
            ),
            Ok(Decision::reply(Reply::ServerError("hi")))
        );
        assert!(
            fault_of(decode_plan(encode_plan_word(tag::REPLY, 10, 0), &[], 0))
                .contains("unknown reply code")
        );
        assert!(
            fault_of(decode_plan(
                encode_plan_word(tag::REPLY, reply::CLIENT_ERROR, 2),
                b"a\n",
                0
            ))
            .contains("printable")
        );
    }

    #[test]
    fn unknown_tag() {
        assert!(fault_of(decode_plan(encode_plan_word(0, 0, 0), &[], 1)).contains("tag 0"));
    }

    #[test]
    fn fan_out_checks() {
        assert_eq!(
            decode_words(&[entry::FAN_OUT, 3, wait::ALL, 1, 0], 2),
            Ok(Decision::FanOut {
                children: vec![1, 0],
                wait: Wait::All
            })
        );
        let cases: [(&[u32], &str); 8] = [
            (&[], "without a primary"),
            (&[entry::FAN_OUT], "truncated entry header"),
            (&[entry::FAN_OUT, 3, wait::ALL, 1], "truncated entry"),
            (&[entry::FAN_OUT, 1, wait::ALL], "no children"),
            (&[entry::FAN_OUT, 3, wait::ALL, 1, 1], "twice"),
            (&[entry::FAN_OUT, 2, wait::ALL, 2], "out of range"),
            (&[entry::FAN_OUT, 2, 9, 0], "unknown fan_out wait policy"),
            (
                &[
                    entry::FAN_OUT,
                    2,
                    wait::ALL,
                    0,
                    entry::FAN_OUT,
                    2,
                    wait::ALL,
                    1,
                ],
                "more than one",
            ),
        ];
        for (words, expected) in cases {
            let fault = fault_of(decode_words(words, 2));
            assert!(fault.contains(expected), "{words:?}: {fault}");
        }
    }

    #[test]
    fn call_checks() {
        assert_eq!(
            decode_words(&[entry::CALL, 2, 1, u32::MAX], 2),
            Ok(Decision::Call {
                child: 1,
                cookie: u32::MAX
            })
        );
        let cases: [(&[u32], &str); 6] = [
            (&[entry::CALL, 0], "2 words"),
            (&[entry::CALL, 1, 0], "2 words"),
            (&[entry::CALL, 3, 0, 0, 0], "2 words"),
            (&[entry::CALL, 2, 2, 0], "out of range"),
            (&[entry::CALL, 2, 0], "truncated entry"),
            (
                &[entry::CALL, 2, 0, 7, entry::FAN_OUT, 2, wait::ALL, 1],
                "more than one",
            ),
        ];
        for (words, expected) in cases {
            let fault = fault_of(decode_words(words, 2));
            assert!(fault.contains(expected), "{words:?}: {fault}");
        }
        assert!(fault_of(decode_words(&[3, 0], 2)).contains("reserved"));
    }

    #[test]
    fn pass() {
        assert_eq!(
            decode_plan(encode_plan_word(tag::PASS, 0, 0), &[], 0),
            Ok(Decision::Pass)
        );
        for word in [
            encode_plan_word(tag::PASS, 1, 0),
            encode_plan_word(tag::PASS, 0, 1),
        ] {
            assert!(fault_of(decode_plan(word, &[], 1)).contains("nonzero"));
        }
        assert!(fault_of(check_route_decision(Decision::Pass)).contains("pass from route"));
        assert_eq!(
            check_route_decision(Decision::Forward(0)),
            Ok(Decision::Forward(0))
        );
    }

    #[test]
    fn plan_longer_than_buffer() {
        assert!(
            fault_of(decode_plan(
                encode_plan_word(tag::PLAN, 0, 4100),
                &[0; 5000],
                1
            ))
            .contains("longer")
        );
    }
}
