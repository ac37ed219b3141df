//! Decoding a plan word and plan buffer the way ABI.md says a version 1 host must, faults
//! included, into a [`Decision`]. The host decodes every plan with this and carries out the
//! [`Decision`] itself, and the native test harness ([`crate::testing`]) decodes with it too, so
//! a plugin's tests check exactly what the host will accept and do.
//!
//! A plugin builds a [`Plan`](crate::Plan), which borrows and does not allocate; a
//! [`Decision`] is the same plan decoded, owned and comparable. The decoded types are not
//! `#[non_exhaustive]`: the host matches them exhaustively, so a new kind of plan does not
//! compile until the host carries it out.

use std::fmt;

use crate::abi::{self, PLAN_CAPACITY, decode_plan_word, entry, tag};
use crate::plan::{Reply, Wait, is_message_byte};
use crate::rewrite::{Exptime, Store, is_key_byte};

/// A decoded plan, owned and comparable: what the host does. The one decoded plan type: the
/// host's (`switchyard::plugin::Decision`) and the test harness's.
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
    /// A primary decision (never itself `Extended`) with a rewrite and background sends.
    Extended {
        /// What decides the node's reply.
        primary: Box<Decision>,
        /// Changes to the request the primary sends; [`OwnedRewrite::is_identity`] if none.
        rewrite: OwnedRewrite,
        /// Requests sent on the side, in plan order.
        background: Vec<OwnedBackground>,
    },
}

impl Decision {
    /// The decision for a direct reply, for comparisons: `Decision::reply(Reply::Miss)`.
    pub fn reply(reply: Reply<'_>) -> Self {
        Self::Reply(reply.into())
    }

    /// The primary decision: this one, or an extended plan's primary.
    pub fn primary(&self) -> &Decision {
        match self {
            Self::Extended { primary, .. } => primary,
            other => other,
        }
    }

    /// The rewrite of an extended plan, if it changes anything.
    pub fn rewrite(&self) -> Option<&OwnedRewrite> {
        match self {
            Self::Extended { rewrite, .. } if !rewrite.is_identity() => Some(rewrite),
            _ => None,
        }
    }

    /// The background sends of an extended plan (none for other plans).
    pub fn background(&self) -> &[OwnedBackground] {
        match self {
            Self::Extended { background, .. } => background,
            _ => &[],
        }
    }
}

/// A [`Rewrite`](crate::rewrite::Rewrite) that owns its key prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct OwnedRewrite {
    /// The new expiry time.
    pub exptime: Exptime,
    /// Bytes removed from the start of the key.
    pub strip: u32,
    /// Bytes put before what is left of the key.
    pub prefix: Vec<u8>,
}

impl OwnedRewrite {
    /// Whether the rewrite changes nothing.
    pub fn is_identity(&self) -> bool {
        self.exptime == Exptime::Keep && !self.changes_key()
    }

    /// Whether the rewrite changes the key.
    pub fn changes_key(&self) -> bool {
        self.strip != 0 || !self.prefix.is_empty()
    }

    /// The rewritten key, or `None` if `strip` is longer than the key.
    pub fn key(&self, key: &[u8]) -> Option<Vec<u8>> {
        let rest = key.get(self.strip as usize..)?;
        Some([&self.prefix[..], rest].concat())
    }
}

/// A [`Background`](crate::rewrite::Background) send, owned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnedBackground {
    /// Where to send it.
    pub child: u32,
    /// Store the value at hand with this command instead of sending the request.
    pub store: Option<Store>,
    /// Compare its reply with the node's.
    pub compare: bool,
    /// The exptime and key it is sent with.
    pub rewrite: OwnedRewrite,
}

/// A [`Reply`] that owns its message, as a [`Decision`] carries it.
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

impl OwnedReply {
    /// The borrowed [`Reply`], for its code and message.
    pub fn as_reply(&self) -> Reply<'_> {
        match self {
            Self::Miss => Reply::Miss,
            Self::NotStored => Reply::NotStored,
            Self::Stored => Reply::Stored,
            Self::Exists => Reply::Exists,
            Self::NotFound => Reply::NotFound,
            Self::Deleted => Reply::Deleted,
            Self::Touched => Reply::Touched,
            Self::Error => Reply::Error,
            Self::ServerError(message) => Reply::ServerError(message),
            Self::ClientError(message) => Reply::ClientError(message),
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
/// [`Decision::Pass`] is valid from `on_reply` only ([`Harness::try_route`](crate::testing::Harness::try_route)
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
            entries(bytes(plan, arg)?, child_count)
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
pub fn check_route_decision(decision: Decision) -> Result<Decision, PlanFault> {
    if *decision.primary() == Decision::Pass {
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

fn entries(bytes: &[u8], child_count: u32) -> Result<Decision, PlanFault> {
    if !bytes.len().is_multiple_of(4) {
        fault!("extended plan of {} bytes is not whole words", bytes.len());
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect();
    let mut primary = None;
    let mut rewrite = None;
    let mut background = Vec::new();
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
            entry::FORWARD => match *payload {
                [child] => {
                    check_child(child, child_count)?;
                    Decision::Forward(child)
                }
                _ => fault!("forward takes 1 word (child), not {}", payload.len()),
            },
            entry::REPLY => reply_entry(payload)?,
            entry::PASS if payload.is_empty() => Decision::Pass,
            entry::PASS => fault!("pass takes no payload, not {} words", payload.len()),
            entry::REWRITE => {
                let (parsed, rest) = rewrite_words(payload)?;
                if !rest.is_empty() {
                    fault!("rewrite entry has {} words after its prefix", rest.len());
                }
                if rewrite.replace(parsed).is_some() {
                    fault!("more than one rewrite entry");
                }
                continue;
            }
            entry::BACKGROUND => {
                background.push(background_entry(payload, child_count)?);
                if background.len() > abi::MAX_BACKGROUND {
                    fault!("more than {} background entries", abi::MAX_BACKGROUND);
                }
                continue;
            }
            other => fault!("unknown entry opcode {other}"),
        };
        if primary.replace(decision).is_some() {
            fault!("more than one primary entry");
        }
    }
    let Some(primary) = primary else {
        fault!("extended plan without a primary entry");
    };
    if rewrite.is_none() && background.is_empty() {
        return Ok(primary);
    }
    Ok(Decision::Extended {
        primary: Box::new(primary),
        rewrite: rewrite.unwrap_or_default(),
        background,
    })
}

fn reply_entry(payload: &[u32]) -> Result<Decision, PlanFault> {
    let [code, len, message @ ..] = payload else {
        fault!("reply takes a code and a message length");
    };
    let Some(reply) = Reply::from_code(*code, "") else {
        fault!("unknown reply code {code}");
    };
    let message = padded_bytes(message, *len, "reply message")?;
    if let Some(&byte) = message.iter().find(|&&b| !is_message_byte(b)) {
        fault!("reply message has byte {byte:#04x}, which is not printable ASCII");
    }
    let message = std::str::from_utf8(&message).unwrap_or_default();
    Ok(Decision::reply(
        Reply::from_code(*code, message).unwrap_or(reply),
    ))
}

/// `len` bytes from whole words, zero-padded: exactly as many words as they take.
fn padded_bytes(words: &[u32], len: u32, what: &str) -> Result<Vec<u8>, PlanFault> {
    let len = len as usize;
    if words.len() != len.div_ceil(4) {
        fault!(
            "{what} of {len} bytes takes {} words, the entry has {}",
            len.div_ceil(4),
            words.len()
        );
    }
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(len);
    Ok(bytes)
}

/// An exptime mode and value, then a key rewrite; returns what follows the prefix.
fn rewrite_words(payload: &[u32]) -> Result<(OwnedRewrite, &[u32]), PlanFault> {
    let [mode, low, high, strip, len, rest @ ..] = payload else {
        fault!("rewrite takes at least 5 words, not {}", payload.len());
    };
    let value = (u64::from(*high) << 32 | u64::from(*low)) as i64;
    let Some(exptime) = Exptime::decode(*mode, value) else {
        fault!("unknown exptime mode {mode} (or a cap of {value})");
    };
    let words = (*len as usize).div_ceil(4).min(rest.len());
    let (prefix, rest) = rest.split_at(words);
    let prefix = padded_bytes(prefix, *len, "key prefix")?;
    if prefix.len() > abi::MAX_KEY_PREFIX {
        fault!(
            "key prefix of {} bytes is longer than {}",
            prefix.len(),
            abi::MAX_KEY_PREFIX
        );
    }
    if let Some(&byte) = prefix.iter().find(|&&b| !is_key_byte(b)) {
        fault!("key prefix has byte {byte:#04x}, which a key cannot hold");
    }
    Ok((
        OwnedRewrite {
            exptime,
            strip: *strip,
            prefix,
        },
        rest,
    ))
}

fn background_entry(payload: &[u32], child_count: u32) -> Result<OwnedBackground, PlanFault> {
    let [child, op, flags, rest @ ..] = payload else {
        fault!("background takes at least 8 words, not {}", payload.len());
    };
    check_child(*child, child_count)?;
    let store = match *op {
        0 => None,
        code => match Store::from_op(code) {
            Some(store) => Some(store),
            None => fault!("background op {code} is not 0, set, add or replace"),
        },
    };
    if flags & !abi::background::ALL != 0 {
        fault!("unknown background flags {flags:#x}");
    }
    let (rewrite, rest) = rewrite_words(rest)?;
    if !rest.is_empty() {
        fault!("background entry has {} words after its prefix", rest.len());
    }
    Ok(OwnedBackground {
        child: *child,
        store,
        compare: flags & abi::background::COMPARE != 0,
        rewrite,
    })
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

    fn round_trip(plan: crate::Plan<'_>, child_count: u32) -> Result<Decision, PlanFault> {
        let mut buf = [0u8; PLAN_CAPACITY];
        let word = plan.encode(child_count, &mut buf);
        decode_plan(word, &buf, child_count)
    }

    #[test]
    fn extended_plans_round_trip() {
        use crate::rewrite::{Background, KeyRewrite, Rewrite};
        use crate::{Child, Plan};
        let shadows = [
            Background::copy(Child(1)).compared(),
            Background::store(Child(2), Store::Add)
                .with_exptime(Exptime::Set(300))
                .with_key(KeyRewrite {
                    strip: 2,
                    prefix: b"warm:",
                }),
        ];
        let plan = Plan::Forward(Child(0))
            .rewritten(Rewrite {
                exptime: Exptime::Cap(60),
                key: Some(KeyRewrite {
                    strip: 0,
                    prefix: b"p",
                }),
            })
            .with_background(&shadows);
        let decision = round_trip(plan, 3).expect("valid");
        assert_eq!(decision.primary(), &Decision::Forward(0));
        assert_eq!(
            decision.rewrite(),
            Some(&OwnedRewrite {
                exptime: Exptime::Cap(60),
                strip: 0,
                prefix: b"p".to_vec()
            })
        );
        assert_eq!(
            decision.background(),
            [
                OwnedBackground {
                    child: 1,
                    store: None,
                    compare: true,
                    rewrite: OwnedRewrite::default()
                },
                OwnedBackground {
                    child: 2,
                    store: Some(Store::Add),
                    compare: false,
                    rewrite: OwnedRewrite {
                        exptime: Exptime::Set(300),
                        strip: 2,
                        prefix: b"warm:".to_vec()
                    }
                }
            ]
        );

        // Every primary survives the extended encoding.
        let primaries = [
            Plan::Reply(Reply::ServerError("gone\n")),
            Plan::Pass,
            Plan::Call {
                child: Child(2),
                cookie: 9,
            },
            Plan::FanOut {
                children: crate::Children::All,
                wait: Wait::Majority,
            },
        ];
        for primary in primaries {
            let plain = round_trip(primary, 3).expect("valid");
            let extended = round_trip(primary.with_background(&shadows[..1]), 3).expect("valid");
            assert_eq!(extended.primary(), &plain, "{primary:?}");
            assert_eq!(extended.background().len(), 1);
        }
        // An extended plan with nothing extra decodes as its primary.
        assert_eq!(
            round_trip(Plan::Forward(Child(1)).with_background(&[]), 3),
            Ok(Decision::Forward(1))
        );
        // Pass from route is refused even inside an extended plan.
        let pass = round_trip(Plan::Pass.with_background(&shadows[..1]), 3).expect("valid");
        assert!(check_route_decision(pass).is_err());
    }

    #[test]
    fn extended_entry_checks() {
        let cases: [(&[u32], &str); 9] = [
            (&[entry::FORWARD, 1, 5], "out of range"),
            (&[entry::FORWARD, 0], "1 word"),
            (&[entry::PASS, 1, 0], "no payload"),
            (&[entry::REPLY, 2, 99, 0], "unknown reply code"),
            (&[entry::REPLY, 2, 8, 3], "takes 1 words"),
            (
                &[entry::FORWARD, 1, 0, entry::REWRITE, 5, 7, 0, 0, 0, 0],
                "unknown exptime mode",
            ),
            (
                &[entry::FORWARD, 1, 0, entry::REWRITE, 6, 0, 0, 0, 0, 1, 0x20],
                "cannot hold",
            ),
            (
                &[
                    entry::FORWARD,
                    1,
                    0,
                    entry::BACKGROUND,
                    8,
                    0,
                    2,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                "not 0, set, add or replace",
            ),
            (
                &[
                    entry::FORWARD,
                    1,
                    0,
                    entry::BACKGROUND,
                    8,
                    0,
                    0,
                    2,
                    0,
                    0,
                    0,
                    0,
                    0,
                ],
                "unknown background flags",
            ),
        ];
        for (words, expected) in cases {
            let fault = fault_of(decode_words(words, 2));
            assert!(fault.contains(expected), "{words:?}: {fault}");
        }
        let one_background: [u32; 10] = [entry::BACKGROUND, 8, 1, 0, 0, 0, 0, 0, 0, 0];
        let mut too_many = vec![entry::FORWARD, 1, 0];
        for _ in 0..=abi::MAX_BACKGROUND {
            too_many.extend_from_slice(&one_background);
        }
        assert!(fault_of(decode_words(&too_many, 2)).contains("more than"));
    }
}
