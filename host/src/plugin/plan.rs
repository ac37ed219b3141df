//! The host's reading of a plugin's answer (`sdk/ABI.md`, "Plans"). Everything a plugin returns
//! is checked here; the executor only ever sees valid plans.

use switchyard_sdk::abi::{self, entry, reply, tag, wait};

/// What a node decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The child's reply is this node's reply.
    Forward(usize),
    /// Answer without contacting any child.
    Reply(PluginReply),
    /// Send to several children and combine their replies.
    FanOut {
        /// How long to wait and which reply wins.
        wait: Wait,
        /// Distinct child indexes, in the plugin's order.
        children: Vec<usize>,
    },
    /// Send to a child, then ask the plugin's `on_reply` what to do with the reply.
    Call {
        /// The child to send to.
        child: usize,
        /// Handed back to `on_reply` unchanged.
        cookie: u32,
    },
    /// From `on_reply` only: the reply just received is the node's reply.
    Pass,
}

/// A direct answer: an ABI reply code and, for errors, a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReply {
    /// One of `switchyard_sdk::abi::reply`.
    pub code: u32,
    /// The message of a `SERVER_ERROR` or `CLIENT_ERROR`.
    pub message: String,
}

/// Wait policies a fan-out may use (`sdk/ABI.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait for every child; the worst reply wins.
    All,
    /// The first reply to arrive.
    First,
    /// The first reply that is not an error, else the worst.
    FirstGood,
    /// The first non-error status more than half the children reply, else the worst.
    Majority,
    /// At once: the operation's default reply.
    None,
}

/// Decodes the word `route` returned, reading the plan buffer when the word points there.
pub fn decode(word: u64, memory: &[u8], plan_buf: usize, children: usize) -> Result<Plan, String> {
    let (t, small, arg) = abi::decode_plan_word(word);
    let buffer = |len: usize| -> Result<&[u8], String> {
        if len > abi::PLAN_CAPACITY {
            return Err(format!("{len} bytes is more than the plan buffer holds"));
        }
        memory
            .get(plan_buf..plan_buf + len)
            .ok_or_else(|| "plan buffer lies outside memory".to_string())
    };
    match t {
        tag::FORWARD | tag::PASS if small != 0 => {
            Err(format!("plan tag {t} with a nonzero middle field {small}"))
        }
        tag::PASS if arg != 0 => Err(format!("pass with a nonzero argument {arg}")),
        tag::FORWARD => {
            let child = arg as usize;
            if child >= children {
                return Err(format!(
                    "forward to child {child}, but the node has {children}"
                ));
            }
            Ok(Plan::Forward(child))
        }
        tag::REPLY => {
            if small > reply::CLIENT_ERROR {
                return Err(format!("unknown reply code {small}"));
            }
            let msg = buffer(arg as usize)?;
            if !msg.iter().all(|b| (0x20..0x7f).contains(b)) {
                return Err("reply message is not printable ASCII".into());
            }
            let message = String::from_utf8_lossy(msg).into_owned();
            Ok(Plan::Reply(PluginReply {
                code: small,
                message,
            }))
        }
        tag::PLAN => decode_entries(buffer(arg as usize)?, children),
        tag::PASS => Ok(Plan::Pass),
        other => Err(format!("unknown plan tag {other}")),
    }
}

fn decode_entries(bytes: &[u8], children: usize) -> Result<Plan, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err("extended plan is not a whole number of words".into());
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut rest = &words[..];
    let mut primary = None;
    while let [opcode, n, tail @ ..] = rest {
        let n = *n as usize;
        let payload = tail
            .get(..n)
            .ok_or_else(|| format!("entry {opcode} announces {n} words but the plan ends first"))?;
        rest = &tail[n..];
        let plan = match *opcode {
            entry::FAN_OUT => decode_fan_out(payload, children)?,
            entry::CALL => match *payload {
                [child, cookie] if (child as usize) < children => Plan::Call {
                    child: child as usize,
                    cookie,
                },
                [child, _] => {
                    return Err(format!(
                        "call to child {child}, but the node has {children}"
                    ));
                }
                _ => return Err("call takes exactly a child and a cookie".into()),
            },
            other => return Err(format!("plan entry {other} is not supported by this host")),
        };
        if primary.replace(plan).is_some() {
            return Err("plan has more than one primary entry".into());
        }
    }
    if !rest.is_empty() {
        return Err("extended plan ends in the middle of an entry".into());
    }
    primary.ok_or_else(|| "extended plan has no primary entry".into())
}

fn decode_fan_out(payload: &[u32], children: usize) -> Result<Plan, String> {
    let [w, targets @ ..] = payload else {
        return Err("fan_out without a wait policy".into());
    };
    let wait = match *w {
        wait::ALL => Wait::All,
        wait::FIRST => Wait::First,
        wait::FIRST_GOOD => Wait::FirstGood,
        wait::MAJORITY => Wait::Majority,
        wait::NONE => Wait::None,
        other => return Err(format!("unknown fan_out wait policy {other}")),
    };
    if targets.is_empty() {
        return Err("fan_out to no children".into());
    }
    let mut out = Vec::with_capacity(targets.len());
    for &c in targets {
        let c = c as usize;
        if c >= children {
            return Err(format!("fan_out to child {c}, but the node has {children}"));
        }
        if out.contains(&c) {
            return Err(format!("fan_out names child {c} twice"));
        }
        out.push(c);
    }
    Ok(Plan::FanOut {
        wait,
        children: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn forward_checks_the_child_index() {
        let w = abi::encode_plan_word(tag::FORWARD, 0, 2);
        assert_eq!(decode(w, &[], 0, 3), Ok(Plan::Forward(2)));
        assert!(decode(w, &[], 0, 2).is_err());
    }

    #[test]
    fn reply_reads_its_message_from_the_plan_buffer() {
        let mem = b"....no route".to_vec();
        let w = abi::encode_plan_word(tag::REPLY, reply::SERVER_ERROR, 8);
        assert_eq!(
            decode(w, &mem, 4, 1),
            Ok(Plan::Reply(PluginReply {
                code: reply::SERVER_ERROR,
                message: "no route".into()
            }))
        );
        let bad = abi::encode_plan_word(tag::REPLY, 77, 0);
        assert!(decode(bad, &mem, 4, 1).is_err());
    }

    #[test]
    fn call_and_pass() {
        let mem = words(&[entry::CALL, 2, 1, 77]);
        let w = abi::encode_plan_word(tag::PLAN, 0, mem.len() as u32);
        assert_eq!(
            decode(w, &mem, 0, 2),
            Ok(Plan::Call {
                child: 1,
                cookie: 77
            })
        );
        for bad in [words(&[entry::CALL, 2, 2, 77]), words(&[entry::CALL, 1, 0])] {
            let w = abi::encode_plan_word(tag::PLAN, 0, bad.len() as u32);
            assert!(decode(w, &bad, 0, 2).is_err(), "{bad:?}");
        }
        assert_eq!(
            decode(abi::encode_plan_word(tag::PASS, 0, 0), &[], 0, 1),
            Ok(Plan::Pass)
        );
    }

    #[test]
    fn fan_out_is_validated() {
        let mem = words(&[entry::FAN_OUT, 3, wait::ALL, 0, 1]);
        let w = abi::encode_plan_word(tag::PLAN, 0, mem.len() as u32);
        assert_eq!(
            decode(w, &mem, 0, 2),
            Ok(Plan::FanOut {
                wait: Wait::All,
                children: vec![0, 1]
            })
        );
        for bad in [
            words(&[entry::FAN_OUT, 3, wait::ALL, 0, 0]),
            words(&[entry::FAN_OUT, 3, wait::ALL, 0, 5]),
            words(&[entry::FAN_OUT, 1, wait::ALL]),
            words(&[entry::FAN_OUT, 9, wait::ALL, 0]),
            words(&[99, 0]),
            words(&[]),
        ] {
            let w = abi::encode_plan_word(tag::PLAN, 0, bad.len() as u32);
            assert!(decode(w, &bad, 0, 2).is_err(), "{bad:?}");
        }
    }
}
