//! What [`Policy::route`](crate::Policy::route) and [`Policy::on_reply`](crate::Policy::on_reply)
//! return, and its encoding into the ABI's plan word and plan buffer.
//!
//! Encoding does not allocate: a plan borrows from the policy (`'a`), and the SDK writes it into
//! the plugin's static plan buffer.

use crate::abi::{self, PLAN_CAPACITY, encode_plan_word, entry, reply, tag, wait};
use crate::rewrite::{Background, KeyRewrite, Rewrite};

/// A child of this node, by index (in config order, `0..child_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Child(pub u32);

impl Child {
    /// The index.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// What the host does with one request.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Send the request to one child; its reply is this node's reply.
    Forward(Child),
    /// Answer without contacting any child.
    Reply(Reply<'a>),
    /// Send the request to several children and combine their replies.
    FanOut {
        /// Which children; must name at least one, without duplicates.
        children: Children<'a>,
        /// How the replies are combined.
        wait: Wait,
    },
    /// Send the request to one child, then hand its reply's status and `cookie` to
    /// [`Policy::on_reply`](crate::Policy::on_reply), whose plan decides this node's reply.
    ///
    /// The continuation may run on a fresh instance of the policy (if this one trapped in the
    /// meantime), so whatever `on_reply` needs to know must be in the cookie. A request may go
    /// through at most [`MAX_CALLS`](crate::abi::MAX_CALLS) calls per node; one more is a plugin
    /// fault (a [`Plan::Forward`] does not count).
    Call {
        /// The child to send the request to.
        child: Child,
        /// The policy's own value, handed back unchanged to `on_reply`.
        cookie: u32,
    },
    /// From [`Policy::on_reply`](crate::Policy::on_reply) only: this node's reply is the reply
    /// just received. The host refuses it from `route` as a plugin fault (there is no reply
    /// yet).
    Pass,
    /// One of the plans above with a [`Rewrite`] of the request it sends and [`Background`]
    /// sends on the side. Build it with [`Plan::rewritten`] and [`Plan::with_background`].
    Extended(Extended<'a>),
}

/// The plans an [`Extended`] plan is built on: the same as the [`Plan`] variants of the same
/// names.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primary<'a> {
    /// [`Plan::Forward`]
    Forward(Child),
    /// [`Plan::Reply`]
    Reply(Reply<'a>),
    /// [`Plan::FanOut`]
    FanOut {
        /// Which children.
        children: Children<'a>,
        /// How the replies are combined.
        wait: Wait,
    },
    /// [`Plan::Call`]
    Call {
        /// The child to send the request to.
        child: Child,
        /// Handed back to `on_reply`.
        cookie: u32,
    },
    /// [`Plan::Pass`]
    Pass,
}

/// A plan with extras: what the primary entry sends is `rewrite`'s rewrite of the request (a
/// `call`'s continuation sends the client's request again unless its own plan rewrites it),
/// and every `background` send goes out when the plan is carried out (at most
/// [`MAX_BACKGROUND`](crate::abi::MAX_BACKGROUND)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended<'a> {
    /// What decides the node's reply.
    pub primary: Primary<'a>,
    /// Changes to the request the primary sends.
    pub rewrite: Rewrite<'a>,
    /// Requests sent on the side.
    pub background: &'a [Background<'a>],
}

impl<'a> From<Primary<'a>> for Extended<'a> {
    fn from(primary: Primary<'a>) -> Self {
        Self {
            primary,
            rewrite: Rewrite::default(),
            background: &[],
        }
    }
}

impl<'a> Plan<'a> {
    /// This plan, as the primary of an [`Extended`] plan (an extended plan stays as it is).
    pub const fn into_extended(self) -> Extended<'a> {
        let primary = match self {
            Plan::Forward(child) => Primary::Forward(child),
            Plan::Reply(reply) => Primary::Reply(reply),
            Plan::FanOut { children, wait } => Primary::FanOut { children, wait },
            Plan::Call { child, cookie } => Primary::Call { child, cookie },
            Plan::Pass => Primary::Pass,
            Plan::Extended(extended) => return extended,
        };
        Extended {
            primary,
            rewrite: Rewrite {
                exptime: crate::rewrite::Exptime::Keep,
                key: None,
            },
            background: &[],
        }
    }

    /// This plan, sending `background` on the side (replacing any background sends it had).
    pub const fn with_background(self, background: &'a [Background<'a>]) -> Plan<'a> {
        let mut extended = self.into_extended();
        extended.background = background;
        Plan::Extended(extended)
    }

    /// This plan, sending the request rewritten by `rewrite` (replacing any rewrite it had).
    pub const fn rewritten(self, rewrite: Rewrite<'a>) -> Plan<'a> {
        let mut extended = self.into_extended();
        extended.rewrite = rewrite;
        Plan::Extended(extended)
    }
}

impl From<Child> for Plan<'_> {
    fn from(child: Child) -> Self {
        Plan::Forward(child)
    }
}

impl<'a> From<Reply<'a>> for Plan<'a> {
    fn from(reply: Reply<'a>) -> Self {
        Plan::Reply(reply)
    }
}

/// A direct answer. The host renders it as memcached would for the request's operation; a reply
/// that makes no sense for it (say `Stored` for a `get`) becomes
/// `SERVER_ERROR plugin reply <name> is not valid for <command>` (see ABI.md).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The key is absent: a miss for retrievals, `NOT_STORED` for storage commands,
    /// `NOT_FOUND` for `delete`, `incr`, `decr`, `touch`.
    Miss,
    /// `NOT_STORED` (storage commands).
    NotStored,
    /// `STORED` (storage commands).
    Stored,
    /// `EXISTS` (storage commands).
    Exists,
    /// `NOT_FOUND`; a miss for retrievals.
    NotFound,
    /// `DELETED` (`delete`).
    Deleted,
    /// `TOUCHED` (`touch`).
    Touched,
    /// `ERROR`.
    Error,
    /// `SERVER_ERROR <message>`. The message must be printable ASCII: the SDK replaces other
    /// bytes with `?` and cuts it at [`PLAN_CAPACITY`] bytes.
    ServerError(&'a str),
    /// `CLIENT_ERROR <message>`, with the same rules as [`Reply::ServerError`].
    ClientError(&'a str),
}

impl<'a> Reply<'a> {
    /// The config names of the replies, in code order: `NAMES[code]` is the name of reply
    /// `code`. They are the names of the matching [`ReplyStatus`](crate::ReplyStatus)es.
    pub const NAMES: [&'static str; 10] = [
        "miss",
        "not_stored",
        "stored",
        "exists",
        "not_found",
        "deleted",
        "touched",
        "error",
        "server_error",
        "client_error",
    ];

    /// The config name (one of [`Reply::NAMES`]).
    pub const fn name(&self) -> &'static str {
        // Every reply's code is an index into NAMES.
        Self::NAMES[self.code() as usize]
    }

    /// The reply with this config name (one of [`Reply::NAMES`]) and, for the error replies,
    /// message; `None` for an unknown name.
    pub fn from_name(name: &str, message: &'a str) -> Option<Self> {
        let code = Self::NAMES.iter().position(|&known| known == name)?;
        Self::from_code(code as u32, message)
    }

    /// The same reply with `message` for an error reply's message; a reply without a message
    /// stays as it is.
    pub const fn with_message(self, message: &str) -> Reply<'_> {
        match self {
            Self::Miss => Reply::Miss,
            Self::NotStored => Reply::NotStored,
            Self::Stored => Reply::Stored,
            Self::Exists => Reply::Exists,
            Self::NotFound => Reply::NotFound,
            Self::Deleted => Reply::Deleted,
            Self::Touched => Reply::Touched,
            Self::Error => Reply::Error,
            Self::ServerError(_) => Reply::ServerError(message),
            Self::ClientError(_) => Reply::ClientError(message),
        }
    }

    /// The ABI reply code ([`crate::abi::reply`]).
    pub const fn code(&self) -> u32 {
        match self {
            Self::Miss => reply::MISS,
            Self::NotStored => reply::NOT_STORED,
            Self::Stored => reply::STORED,
            Self::Exists => reply::EXISTS,
            Self::NotFound => reply::NOT_FOUND,
            Self::Deleted => reply::DELETED,
            Self::Touched => reply::TOUCHED,
            Self::Error => reply::ERROR,
            Self::ServerError(_) => reply::SERVER_ERROR,
            Self::ClientError(_) => reply::CLIENT_ERROR,
        }
    }

    /// The message of an error reply.
    pub const fn message(&self) -> Option<&'a str> {
        match self {
            Self::ServerError(message) | Self::ClientError(message) => Some(message),
            _ => None,
        }
    }

    /// The reply with this code and, for the error replies, message; `None` for an unknown
    /// code.
    pub const fn from_code(code: u32, message: &'a str) -> Option<Self> {
        Some(match code {
            reply::MISS => Self::Miss,
            reply::NOT_STORED => Self::NotStored,
            reply::STORED => Self::Stored,
            reply::EXISTS => Self::Exists,
            reply::NOT_FOUND => Self::NotFound,
            reply::DELETED => Self::Deleted,
            reply::TOUCHED => Self::Touched,
            reply::ERROR => Self::Error,
            reply::SERVER_ERROR => Self::ServerError(message),
            reply::CLIENT_ERROR => Self::ClientError(message),
            _ => return None,
        })
    }
}

/// The children of a [`Plan::FanOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Children<'a> {
    /// Every child of this node, in index order.
    All,
    /// These child indexes.
    List(&'a [u32]),
}

/// How long a fan-out waits, and which reply the client gets (mcrouter's AllSync, AllFastest,
/// AllMajority and AllAsync routes). Every child is sent the request whatever the policy;
/// replies that arrive after the client's reply was chosen are read and dropped.
///
/// Not `#[non_exhaustive]`: a [`Decision`](crate::decision::Decision) carries it, and the
/// host matches it exhaustively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Wait {
    /// Wait for every child; the client gets the worst reply (error < miss/not stored <
    /// success).
    #[default]
    All,
    /// The first reply to arrive, whatever it is.
    First,
    /// The first reply that is not an error; if every child fails, the worst reply.
    FirstGood,
    /// The first reply that more than half of the children agree on (same status, not an
    /// error); if no status can reach a majority any more, the worst reply.
    Majority,
    /// Do not wait: the client gets the operation's default reply at once (a miss, rendered as
    /// memcached would: `END`, `NOT_STORED`, `NOT_FOUND`, ...).
    None,
}

impl Wait {
    /// The ABI wait code ([`crate::abi::wait`]).
    pub const fn code(self) -> u32 {
        match self {
            Self::All => wait::ALL,
            Self::First => wait::FIRST,
            Self::FirstGood => wait::FIRST_GOOD,
            Self::Majority => wait::MAJORITY,
            Self::None => wait::NONE,
        }
    }

    /// The policy with this code.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            wait::ALL => Some(Self::All),
            wait::FIRST => Some(Self::First),
            wait::FIRST_GOOD => Some(Self::FirstGood),
            wait::MAJORITY => Some(Self::Majority),
            wait::NONE => Some(Self::None),
            _ => None,
        }
    }
}

/// Most children one fan-out can name: the plan buffer holds `[opcode][n][wait]` and the
/// indexes, one `u32` each.
pub const MAX_FAN_OUT: usize = PLAN_CAPACITY / 4 - 3;

/// Is `byte` allowed in a reply message (printable ASCII)?
pub(crate) const fn is_message_byte(byte: u8) -> bool {
    matches!(byte, 0x20..=0x7e)
}

impl Plan<'_> {
    /// Encodes the plan as `route` returns it: the plan word, with extended plans and reply
    /// messages written to the start of `buf`. `child_count` expands [`Children::All`].
    ///
    /// # Panics
    ///
    /// If a fan-out names more than [`MAX_FAN_OUT`] children, an extended plan has more than
    /// [`MAX_BACKGROUND`](abi::MAX_BACKGROUND) background sends, or does not fit the plan
    /// buffer (in a plugin, a panic is a trap: the request fails and the instance is replaced).
    pub fn encode(&self, child_count: u32, buf: &mut [u8; PLAN_CAPACITY]) -> u64 {
        match *self {
            Plan::Forward(child) => encode_plan_word(tag::FORWARD, 0, child.0),
            Plan::Reply(reply) => {
                let len = reply.message().map_or(0, |message| {
                    let bytes = &message.as_bytes()[..message.len().min(PLAN_CAPACITY)];
                    for (out, &byte) in buf.iter_mut().zip(bytes) {
                        *out = if is_message_byte(byte) { byte } else { b'?' };
                    }
                    bytes.len()
                });
                encode_plan_word(tag::REPLY, reply.code(), len as u32)
            }
            Plan::FanOut { children, wait } => {
                let mut words = Words { buf, len: 0 };
                fan_out_entry(&mut words, children, wait, child_count);
                encode_plan_word(tag::PLAN, 0, words.len as u32)
            }
            Plan::Call { child, cookie } => {
                let mut words = Words { buf, len: 0 };
                words.entry(entry::CALL, &[child.0, cookie]);
                encode_plan_word(tag::PLAN, 0, words.len as u32)
            }
            Plan::Pass => encode_plan_word(tag::PASS, 0, 0),
            Plan::Extended(extended) => {
                let mut words = Words { buf, len: 0 };
                extended.encode(child_count, &mut words);
                encode_plan_word(tag::PLAN, 0, words.len as u32)
            }
        }
    }
}

impl Extended<'_> {
    fn encode(&self, child_count: u32, words: &mut Words<'_>) {
        match self.primary {
            Primary::Forward(child) => words.entry(entry::FORWARD, &[child.0]),
            Primary::Reply(reply) => {
                let message = reply.message().unwrap_or_default().as_bytes();
                // Leaves room for the other entries.
                let message = &message[..message.len().min(PLAN_CAPACITY / 2)];
                words.push(entry::REPLY);
                words.push(2 + padded_words(message.len()));
                words.push(reply.code());
                words.push(message.len() as u32);
                words.push_bytes(
                    message,
                    |byte| {
                        if is_message_byte(byte) { byte } else { b'?' }
                    },
                );
            }
            Primary::FanOut { children, wait } => {
                fan_out_entry(words, children, wait, child_count);
            }
            Primary::Call { child, cookie } => words.entry(entry::CALL, &[child.0, cookie]),
            Primary::Pass => words.entry(entry::PASS, &[]),
        }
        if !self.rewrite.is_identity() {
            let key = self.rewrite.key.unwrap_or_default();
            words.push(entry::REWRITE);
            words.push(5 + padded_words(key.prefix.len()));
            rewrite_words(words, self.rewrite.exptime, key);
        }
        assert!(
            self.background.len() <= abi::MAX_BACKGROUND,
            "{} background sends; a plan carries at most {}",
            self.background.len(),
            abi::MAX_BACKGROUND
        );
        for background in self.background {
            let key = background.key.unwrap_or_default();
            words.push(entry::BACKGROUND);
            words.push(8 + padded_words(key.prefix.len()));
            words.push(background.child.0);
            words.push(background.store.map_or(0, |store| store.op()));
            words.push(if background.compare {
                abi::background::COMPARE
            } else {
                0
            });
            rewrite_words(words, background.exptime, key);
        }
    }
}

/// The exptime mode and value, then the key rewrite, of a `rewrite` or `background` entry.
fn rewrite_words(words: &mut Words<'_>, exptime: crate::rewrite::Exptime, key: KeyRewrite<'_>) {
    let (mode, value) = exptime.encode();
    words.push(mode);
    words.push(value as u64 as u32);
    words.push((value as u64 >> 32) as u32);
    words.push(key.strip);
    words.push(key.prefix.len() as u32);
    words.push_bytes(key.prefix, |byte| byte);
}

/// Words that `len` bytes take, zero-padded.
const fn padded_words(len: usize) -> u32 {
    len.div_ceil(4) as u32
}

fn fan_out_entry(words: &mut Words<'_>, children: Children<'_>, wait: Wait, child_count: u32) {
    let count = match children {
        Children::All => child_count as usize,
        Children::List(list) => list.len(),
    };
    assert!(
        count <= MAX_FAN_OUT,
        "fan-out to {count} children; a plan holds at most {MAX_FAN_OUT}"
    );
    words.push(entry::FAN_OUT);
    words.push(1 + count as u32);
    words.push(wait.code());
    match children {
        Children::All => (0..child_count).for_each(|child| words.push(child)),
        Children::List(list) => list.iter().for_each(|&child| words.push(child)),
    }
}

/// Appends little-endian `u32` words to a plan buffer.
struct Words<'b> {
    buf: &'b mut [u8; abi::PLAN_CAPACITY],
    len: usize,
}

impl Words<'_> {
    fn push(&mut self, word: u32) {
        assert!(
            self.len + 4 <= PLAN_CAPACITY,
            "the plan does not fit the {PLAN_CAPACITY}-byte plan buffer"
        );
        self.buf[self.len..self.len + 4].copy_from_slice(&word.to_le_bytes());
        self.len += 4;
    }

    fn entry(&mut self, opcode: u32, payload: &[u32]) {
        self.push(opcode);
        self.push(payload.len() as u32);
        payload.iter().for_each(|&word| self.push(word));
    }

    /// `bytes`, each mapped by `map`, zero-padded to whole words.
    fn push_bytes(&mut self, bytes: &[u8], map: impl Fn(u8) -> u8) {
        for chunk in bytes.chunks(4) {
            let mut word = [0u8; 4];
            for (out, &byte) in word.iter_mut().zip(chunk) {
                *out = map(byte);
            }
            self.push(u32::from_le_bytes(word));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::decode_plan_word;

    fn encode(plan: Plan<'_>, child_count: u32) -> (u64, Vec<u8>) {
        let mut buf = [0u8; PLAN_CAPACITY];
        let word = plan.encode(child_count, &mut buf);
        let (_, _, arg) = decode_plan_word(word);
        let used = if matches!(word as u8, tag::FORWARD | tag::PASS) {
            0
        } else {
            arg as usize
        };
        (word, buf[..used].to_vec())
    }

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect()
    }

    #[test]
    fn forward() {
        assert_eq!(
            encode(Plan::Forward(Child(5)), 8),
            (encode_plan_word(tag::FORWARD, 0, 5), vec![])
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            encode(Plan::Reply(Reply::Miss), 1),
            (encode_plan_word(tag::REPLY, reply::MISS, 0), vec![])
        );
        assert_eq!(
            encode(Plan::Reply(Reply::ServerError("no route")), 1),
            (
                encode_plan_word(tag::REPLY, reply::SERVER_ERROR, 8),
                b"no route".to_vec()
            )
        );
        assert_eq!(
            encode(Plan::Reply(Reply::ClientError("bad\r\nkey é")), 1),
            (
                encode_plan_word(tag::REPLY, reply::CLIENT_ERROR, 11),
                b"bad??key ??".to_vec()
            )
        );
    }

    #[test]
    fn long_message_is_cut_to_the_buffer() {
        let message = "x".repeat(PLAN_CAPACITY + 10);
        let (word, bytes) = encode(Plan::Reply(Reply::ServerError(&message)), 1);
        assert_eq!(decode_plan_word(word).2 as usize, PLAN_CAPACITY);
        assert_eq!(bytes.len(), PLAN_CAPACITY);
    }

    #[test]
    fn fan_out() {
        let (word, bytes) = encode(
            Plan::FanOut {
                children: Children::List(&[2, 0]),
                wait: Wait::All,
            },
            3,
        );
        assert_eq!(word, encode_plan_word(tag::PLAN, 0, 20));
        assert_eq!(words(&bytes), [entry::FAN_OUT, 3, wait::ALL, 2, 0]);

        let (word, bytes) = encode(
            Plan::FanOut {
                children: Children::All,
                wait: Wait::All,
            },
            3,
        );
        assert_eq!(word, encode_plan_word(tag::PLAN, 0, 24));
        assert_eq!(words(&bytes), [entry::FAN_OUT, 4, wait::ALL, 0, 1, 2]);
    }

    #[test]
    fn call() {
        let (word, bytes) = encode(
            Plan::Call {
                child: Child(1),
                cookie: 0xdead_beef,
            },
            3,
        );
        assert_eq!(word, encode_plan_word(tag::PLAN, 0, 16));
        assert_eq!(words(&bytes), [entry::CALL, 2, 1, 0xdead_beef]);
    }

    #[test]
    fn pass() {
        assert_eq!(
            encode(Plan::Pass, 3),
            (encode_plan_word(tag::PASS, 0, 0), vec![])
        );
        assert_eq!(encode(Plan::Pass, 3).0, 4);
    }

    #[test]
    fn largest_fan_out_fits() {
        let (word, bytes) = encode(
            Plan::FanOut {
                children: Children::All,
                wait: Wait::All,
            },
            MAX_FAN_OUT as u32,
        );
        assert_eq!(decode_plan_word(word).2 as usize, PLAN_CAPACITY);
        assert_eq!(words(&bytes)[PLAN_CAPACITY / 4 - 1], MAX_FAN_OUT as u32 - 1);
    }

    #[test]
    #[should_panic(expected = "at most")]
    fn oversized_fan_out_panics() {
        encode(
            Plan::FanOut {
                children: Children::All,
                wait: Wait::All,
            },
            MAX_FAN_OUT as u32 + 1,
        );
    }

    #[test]
    fn reply_codes_round_trip() {
        for code in 0..=9 {
            let reply = Reply::from_code(code, "m").expect("known code");
            assert_eq!(reply.code(), code);
        }
        assert_eq!(Reply::from_code(10, ""), None);
    }

    #[test]
    fn reply_names_round_trip() {
        for (code, name) in Reply::NAMES.into_iter().enumerate() {
            let reply = Reply::from_name(name, "m").expect("known name");
            assert_eq!(reply.code(), code as u32);
            assert_eq!(reply.name(), name);
            assert_eq!(Reply::from_code(code as u32, "m"), Some(reply));
            // The reply's name is the name of the status a child answering it would report.
            assert!(crate::ReplyStatus::from_name(name).is_some(), "{name}");
        }
        assert_eq!(Reply::from_name("SERVER_ERROR", ""), None);
        assert_eq!(Reply::from_name("hit", ""), None);
        assert_eq!(
            Reply::from_name("client_error", "x"),
            Some(Reply::ClientError("x"))
        );
    }

    #[test]
    fn with_message_replaces_error_messages_only() {
        assert_eq!(
            Reply::ServerError("").with_message("down"),
            Reply::ServerError("down")
        );
        assert_eq!(
            Reply::ClientError("a").with_message("b"),
            Reply::ClientError("b")
        );
        assert_eq!(Reply::Miss.with_message("x"), Reply::Miss);
        assert_eq!(Reply::Touched.with_message("x"), Reply::Touched);
    }
}
