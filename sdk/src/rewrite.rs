//! What a plan may change about the request it sends ([`Rewrite`]), and requests it sends on
//! the side without waiting for them ([`Background`]): the pieces of
//! [`Plan::Extended`](crate::Plan::Extended).

use crate::abi::{self, op};
use crate::plan::Child;

/// What happens to a request's expiry time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Exptime {
    /// As the request has it.
    #[default]
    Keep,
    /// This value instead (memcached's meaning: seconds from now up to 30 days, a Unix time
    /// beyond; 0 never expires).
    Set(i64),
    /// At most this many seconds from now: a request that would never expire (0), or expire
    /// later, expires after `seconds` instead; one that expires sooner is left alone. (A cap
    /// over 30 days is sent as a Unix time, as memcached would misread it otherwise; a cap of
    /// 0 would mean "never expires" and caps nothing.) Applies
    /// to the commands that carry an exptime (storage commands, `touch`, `gat`, `gats`, and
    /// the meta commands' `T` flag; `ms` without `T` counts as never expiring).
    Cap(u32),
}

impl Exptime {
    /// The ABI mode ([`abi::exptime`]) and value.
    pub const fn encode(self) -> (u32, i64) {
        match self {
            Self::Keep => (abi::exptime::KEEP, 0),
            Self::Set(value) => (abi::exptime::SET, value),
            Self::Cap(seconds) => (abi::exptime::CAP, seconds as i64),
        }
    }

    /// The rewrite with this ABI mode and value; `None` for an unknown mode or a cap out of
    /// range.
    pub fn decode(mode: u32, value: i64) -> Option<Self> {
        match mode {
            abi::exptime::KEEP => Some(Self::Keep),
            abi::exptime::SET => Some(Self::Set(value)),
            abi::exptime::CAP => u32::try_from(value).ok().map(Self::Cap),
            _ => None,
        }
    }

    /// The exptime a request with `exptime` gets, `now` being the Unix time in seconds (needed
    /// only to cap an absolute time). memcached reads values above 30 days as Unix times.
    pub fn apply(self, exptime: i64, now: i64) -> i64 {
        /// memcached's boundary between relative and absolute exptimes.
        const RELATIVE_LIMIT: i64 = 60 * 60 * 24 * 30;
        match self {
            Self::Keep => exptime,
            Self::Set(value) => value,
            Self::Cap(cap) => {
                let cap = i64::from(cap);
                let relative = if exptime > RELATIVE_LIMIT {
                    exptime - now
                } else {
                    exptime
                };
                if exptime < 0 || (exptime != 0 && relative <= cap) {
                    exptime
                } else if cap > RELATIVE_LIMIT {
                    // memcached would read the cap itself as a Unix time.
                    now + cap
                } else {
                    cap
                }
            }
        }
    }
}

/// A new key: the request's key without its first `strip` bytes, with `prefix` in front.
/// `KeyRewrite { strip: 3, prefix: b"new:" }` turns `old:user:7` into `new:user:7`.
///
/// The prefix must be at most [`abi::MAX_KEY_PREFIX`] bytes with no space or control byte (the
/// host refuses the plan otherwise); `strip` must not exceed the key's length. A key that
/// becomes longer than 250 bytes fails the request with a `SERVER_ERROR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct KeyRewrite<'a> {
    /// Bytes removed from the start of the key.
    pub strip: u32,
    /// Bytes put before what is left.
    pub prefix: &'a [u8],
}

impl KeyRewrite<'_> {
    /// The key after the rewrite, or `None` if `strip` is longer than the key.
    pub fn apply(&self, key: &[u8]) -> Option<Vec<u8>> {
        let rest = key.get(self.strip as usize..)?;
        Some([self.prefix, rest].concat())
    }
}

/// Is `byte` allowed in a key prefix (no space, no control byte)?
pub const fn is_key_byte(byte: u8) -> bool {
    byte > b' ' && byte != 0x7f
}

/// Changes to the request a plan's primary entry sends (mcrouter's ModifyKeyRoute and
/// ModifyExptimeRoute). Children below see, and route by, the rewritten key. Replies to a
/// request whose key was rewritten carry the client's key again (`VALUE`, a meta `k` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rewrite<'a> {
    /// The new expiry time.
    pub exptime: Exptime,
    /// The new key, if it changes.
    pub key: Option<KeyRewrite<'a>>,
}

impl Rewrite<'_> {
    /// Whether the rewrite changes nothing.
    pub const fn is_identity(&self) -> bool {
        matches!(self.exptime, Exptime::Keep) && self.key.is_none()
    }
}

/// The operation of a background store: the value is stored with this command instead of the
/// request's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Store {
    /// `set`
    Set,
    /// `add`: only if the child does not hold the key (a refill never overwrites a newer
    /// value).
    Add,
    /// `replace`
    Replace,
}

impl Store {
    /// The ABI op code.
    pub const fn op(self) -> u32 {
        match self {
            Self::Set => op::SET,
            Self::Add => op::ADD,
            Self::Replace => op::REPLACE,
        }
    }

    /// The store with this op code.
    pub const fn from_op(code: u32) -> Option<Self> {
        match code {
            op::SET => Some(Self::Set),
            op::ADD => Some(Self::Add),
            op::REPLACE => Some(Self::Replace),
            _ => None,
        }
    }
}

/// A request sent to a child on the side: its reply is read and dropped, it never delays or
/// changes the client's reply, and the host bounds how many are outstanding (excess ones are
/// not sent, and counted).
///
/// What is sent: with `store` `None`, the client's request (rewritten by `exptime` and `key`);
/// with a [`Store`], a storage command of the value at hand — the request's value for a
/// storage request, or, from [`Policy::on_reply`](crate::Policy::on_reply) after a retrieval
/// hit, the value just received (with its client flags): mcrouter's warm-up refill. Where
/// there is no value at hand the send is skipped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Background<'a> {
    /// Where to send it.
    pub child: Child,
    /// Store the value at hand with this command instead of sending the request.
    pub store: Option<Store>,
    /// The exptime it is sent with.
    pub exptime: Exptime,
    /// The key it is sent with.
    pub key: Option<KeyRewrite<'a>>,
    /// Compare this child's reply with the node's reply and count a mismatch (`stats`
    /// `shadow_mismatches`): shadowing.
    pub compare: bool,
}

impl<'a> Background<'a> {
    /// A copy of the request to `child`.
    pub const fn copy(child: Child) -> Self {
        Self {
            child,
            store: None,
            exptime: Exptime::Keep,
            key: None,
            compare: false,
        }
    }

    /// A store of the value at hand to `child` with `store`.
    pub const fn store(child: Child, store: Store) -> Self {
        Self {
            store: Some(store),
            ..Self::copy(child)
        }
    }

    /// A read-through refill: an `add` to `child` of the value at hand, expiring at `exptime`
    /// (as memcached reads it; 0 never expires). A negative exptime would expire every copy at
    /// once, and is refused with a message naming the config key `key` that set it.
    pub fn refill(child: Child, exptime: i64, key: &str) -> Result<Self, String> {
        if exptime < 0 {
            return Err(format!(
                "{key} is {exptime}; a negative exptime would expire every copy at once (0, \
                 the default, never expires)"
            ));
        }
        Ok(Self::store(child, Store::Add).with_exptime(Exptime::Set(exptime)))
    }

    /// The same, sent with `exptime`.
    pub const fn with_exptime(self, exptime: Exptime) -> Self {
        Self { exptime, ..self }
    }

    /// The same, sent with the key rewritten.
    pub const fn with_key(self, key: KeyRewrite<'a>) -> Self {
        Self {
            key: Some(key),
            ..self
        }
    }

    /// The same, with its reply compared to the node's.
    pub const fn compared(self) -> Self {
        Self {
            compare: true,
            ..self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refill_adds_with_its_exptime_and_refuses_a_negative_one() {
        let child = Child(1);
        let refill = Background::refill(child, 60, "exptime").expect("valid");
        assert_eq!(refill.store, Some(Store::Add));
        assert_eq!(refill.exptime, Exptime::Set(60));
        let err = Background::refill(child, -1, "refill_exptime").expect_err("negative");
        assert!(err.starts_with("refill_exptime is -1; "), "{err}");
    }

    #[test]
    fn exptime_cap() {
        let now = 1_800_000_000;
        let cap = Exptime::Cap(60);
        assert_eq!(cap.apply(0, now), 60, "never expiring is capped");
        assert_eq!(cap.apply(30, now), 30);
        assert_eq!(cap.apply(3600, now), 60);
        assert_eq!(cap.apply(-1, now), -1, "already expired stays");
        assert_eq!(cap.apply(now + 10, now), now + 10, "absolute and sooner");
        assert_eq!(cap.apply(now + 100, now), 60, "absolute and later");
        let long = Exptime::Cap(60 * 60 * 24 * 60);
        assert_eq!(
            long.apply(0, now),
            now + 60 * 60 * 24 * 60,
            "sent as a Unix time"
        );
        assert_eq!(Exptime::Set(5).apply(100, now), 5);
        assert_eq!(Exptime::Keep.apply(100, now), 100);
    }

    #[test]
    fn exptime_round_trips() {
        for e in [Exptime::Keep, Exptime::Set(-7), Exptime::Cap(u32::MAX)] {
            let (mode, value) = e.encode();
            assert_eq!(Exptime::decode(mode, value), Some(e));
        }
        assert_eq!(Exptime::decode(9, 0), None);
        assert_eq!(Exptime::decode(abi::exptime::CAP, -1), None);
    }

    #[test]
    fn key_rewrite() {
        let k = KeyRewrite {
            strip: 4,
            prefix: b"new:",
        };
        assert_eq!(k.apply(b"old:user"), Some(b"new:user".to_vec()));
        assert_eq!(k.apply(b"ab"), None);
        assert!(is_key_byte(b'a') && !is_key_byte(b' ') && !is_key_byte(b'\n'));
    }

    #[test]
    fn store_ops() {
        for s in [Store::Set, Store::Add, Store::Replace] {
            assert_eq!(Store::from_op(s.op()), Some(s));
        }
        assert_eq!(Store::from_op(op::GET), None);
    }
}
