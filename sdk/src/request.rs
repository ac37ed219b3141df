//! The request as a policy sees it: operation, key and the few numbers a routing decision may
//! need. Values are not included: a plugin routes, the host moves the bytes.

use std::fmt;

use crate::abi::op;

/// A memcached operation: one of the commands a plugin routes by key. The host's request parser
/// tells which operation each command is (`switchyard_protocol::Command::op`); its ABI code
/// ([`Op::code`], [`Op::from_code`]) is defined here and nowhere else.
///
/// Codes the SDK does not know (20 and above are reserved) arrive as [`Op::Other`]; ABI.md
/// asks plugins to route them as they route [`Op::Get`]. The host never produces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `get`
    Get,
    /// `gets`
    Gets,
    /// `gat`: get and touch.
    Gat,
    /// `gats`: get and touch, with CAS.
    Gats,
    /// `set`
    Set,
    /// `add`
    Add,
    /// `replace`
    Replace,
    /// `append`
    Append,
    /// `prepend`
    Prepend,
    /// `cas`
    Cas,
    /// `delete`
    Delete,
    /// `incr`
    Incr,
    /// `decr`
    Decr,
    /// `touch`
    Touch,
    /// `mg`: meta get (may also touch, or vivify on miss, depending on its flags).
    MetaGet,
    /// `ms`: meta set (its mode flag makes it an add, replace, append, prepend or set).
    MetaSet,
    /// `md`: meta delete (or invalidate).
    MetaDelete,
    /// `ma`: meta arithmetic (increment or decrement; may create the item).
    MetaArithmetic,
    /// `me`: meta debug (item metadata; reads).
    MetaDebug,
    /// An operation code this SDK does not know.
    Other(u32),
}

impl Op {
    /// The operation with this ABI code ([`crate::abi::op`]); unknown codes become
    /// [`Op::Other`].
    pub const fn from_code(code: u32) -> Self {
        match code {
            op::GET => Self::Get,
            op::GETS => Self::Gets,
            op::GAT => Self::Gat,
            op::GATS => Self::Gats,
            op::SET => Self::Set,
            op::ADD => Self::Add,
            op::REPLACE => Self::Replace,
            op::APPEND => Self::Append,
            op::PREPEND => Self::Prepend,
            op::CAS => Self::Cas,
            op::DELETE => Self::Delete,
            op::INCR => Self::Incr,
            op::DECR => Self::Decr,
            op::TOUCH => Self::Touch,
            op::META_GET => Self::MetaGet,
            op::META_SET => Self::MetaSet,
            op::META_DELETE => Self::MetaDelete,
            op::META_ARITHMETIC => Self::MetaArithmetic,
            op::META_DEBUG => Self::MetaDebug,
            other => Self::Other(other),
        }
    }

    /// The ABI code of this operation.
    pub const fn code(self) -> u32 {
        match self {
            Self::Get => op::GET,
            Self::Gets => op::GETS,
            Self::Gat => op::GAT,
            Self::Gats => op::GATS,
            Self::Set => op::SET,
            Self::Add => op::ADD,
            Self::Replace => op::REPLACE,
            Self::Append => op::APPEND,
            Self::Prepend => op::PREPEND,
            Self::Cas => op::CAS,
            Self::Delete => op::DELETE,
            Self::Incr => op::INCR,
            Self::Decr => op::DECR,
            Self::Touch => op::TOUCH,
            Self::MetaGet => op::META_GET,
            Self::MetaSet => op::META_SET,
            Self::MetaDelete => op::META_DELETE,
            Self::MetaArithmetic => op::META_ARITHMETIC,
            Self::MetaDebug => op::META_DEBUG,
            Self::Other(code) => code,
        }
    }

    /// The memcached command name; `None` for [`Op::Other`].
    pub const fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::Get => "get",
            Self::Gets => "gets",
            Self::Gat => "gat",
            Self::Gats => "gats",
            Self::Set => "set",
            Self::Add => "add",
            Self::Replace => "replace",
            Self::Append => "append",
            Self::Prepend => "prepend",
            Self::Cas => "cas",
            Self::Delete => "delete",
            Self::Incr => "incr",
            Self::Decr => "decr",
            Self::Touch => "touch",
            Self::MetaGet => "mg",
            Self::MetaSet => "ms",
            Self::MetaDelete => "md",
            Self::MetaArithmetic => "ma",
            Self::MetaDebug => "me",
            Self::Other(_) => return None,
        })
    }

    /// A retrieval: `get`, `gets`, `gat`, `gats` (the reply carries values).
    pub const fn is_retrieval(self) -> bool {
        matches!(self, Self::Get | Self::Gets | Self::Gat | Self::Gats)
    }

    /// A storage command: `set`, `add`, `replace`, `append`, `prepend`, `cas`, `ms` (the
    /// request carries a value of [`Request::value_len`] bytes).
    pub const fn is_storage(self) -> bool {
        matches!(
            self,
            Self::Set
                | Self::Add
                | Self::Replace
                | Self::Append
                | Self::Prepend
                | Self::Cas
                | Self::MetaSet
        )
    }

    /// The meta commands: `mg`, `ms`, `md`, `ma`, `me` (their replies are meta replies: `HD`,
    /// `EN`, `NF`, ...).
    pub const fn is_meta(self) -> bool {
        matches!(
            self,
            Self::MetaGet
                | Self::MetaSet
                | Self::MetaDelete
                | Self::MetaArithmetic
                | Self::MetaDebug
        )
    }

    /// `incr`, `decr` or `ma`.
    pub const fn is_arithmetic(self) -> bool {
        matches!(self, Self::Incr | Self::Decr | Self::MetaArithmetic)
    }

    /// Reads the item: the retrievals ([`Op::is_retrieval`]), `mg` and `me`.
    pub const fn is_read(self) -> bool {
        self.is_retrieval() || matches!(self, Self::MetaGet | Self::MetaDebug)
    }

    /// Fetches a value: the retrievals ([`Op::is_retrieval`]), `mg`, and codes the SDK does not
    /// know (ABI.md asks plugins to route those as `get`). What a read-through policy (a
    /// backup, a warm-up) answers from a second child when the first misses.
    pub const fn fetches_value(self) -> bool {
        self.is_retrieval() || matches!(self, Self::MetaGet | Self::Other(_))
    }

    /// Changes the item: storage commands, `delete`, `incr`, `decr`, `touch`, and also `gat` and
    /// `gats`, which change the expiry (so they are both reads and writes; a replicating policy
    /// should send them everywhere).
    pub const fn is_write(self) -> bool {
        self.is_storage()
            || self.is_arithmetic()
            || matches!(
                self,
                Self::Delete | Self::MetaDelete | Self::Touch | Self::Gat | Self::Gats
            )
    }
}

impl fmt::Display for Op {
    /// The command name, or `op <code>` for [`Op::Other`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "op {}", self.code()),
        }
    }
}

/// One request, as the host passed it to `route`.
///
/// Built by the SDK from the `route` arguments; tests build one with [`Request::new`] and the
/// `with_*` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    op: Op,
    key: &'a [u8],
    flags: u32,
    exptime: i64,
    value_len: u32,
    listener: u32,
}

impl<'a> Request<'a> {
    /// A request for `key` with every number zero.
    pub const fn new(op: Op, key: &'a [u8]) -> Self {
        Self {
            op,
            key,
            flags: 0,
            exptime: 0,
            value_len: 0,
            listener: 0,
        }
    }

    /// Sets the client flags.
    pub const fn with_flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// Sets the expiry.
    pub const fn with_exptime(mut self, exptime: i64) -> Self {
        self.exptime = exptime;
        self
    }

    /// Sets the value length.
    pub const fn with_value_len(mut self, value_len: u32) -> Self {
        self.value_len = value_len;
        self
    }

    /// Sets the listener index.
    pub const fn with_listener(mut self, listener: u32) -> Self {
        self.listener = listener;
        self
    }

    /// The operation.
    pub const fn op(&self) -> Op {
        self.op
    }

    /// The key (at most [`crate::abi::KEY_CAPACITY`] bytes).
    pub const fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The client flags of a storage command; 0 otherwise.
    pub const fn flags(&self) -> u32 {
        self.flags
    }

    /// The expiry of a storage command, or the new expiry of `touch`, `gat` and `gats`; 0
    /// otherwise.
    pub const fn exptime(&self) -> i64 {
        self.exptime
    }

    /// The value length of a storage command; 0 otherwise.
    pub const fn value_len(&self) -> u32 {
        self.value_len
    }

    /// Index of the listener the request arrived on, in config order.
    pub const fn listener(&self) -> u32 {
        self.listener
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in 0..40 {
            assert_eq!(Op::from_code(code).code(), code);
        }
        assert_eq!(Op::from_code(1), Op::Get);
        assert_eq!(Op::from_code(14), Op::Touch);
        assert_eq!(Op::from_code(15), Op::MetaGet);
        assert_eq!(Op::from_code(20), Op::Other(20));
        assert_eq!(Op::from_code(0), Op::Other(0));
        assert_eq!(Op::Cas.name(), Some("cas"));
        assert_eq!(Op::Other(99).name(), None);
        assert_eq!(Op::MetaSet.to_string(), "ms");
        assert_eq!(Op::Other(99).to_string(), "op 99");
    }

    #[test]
    fn classification() {
        assert!(Op::Get.is_read() && !Op::Get.is_write());
        assert!(Op::Gat.is_read() && Op::Gat.is_write());
        assert!(Op::Set.is_write() && Op::Set.is_storage() && !Op::Set.is_read());
        assert!(Op::Delete.is_write() && !Op::Delete.is_storage());
        assert!(Op::Incr.is_arithmetic() && Op::Incr.is_write());
        assert!(Op::Touch.is_write());
        assert!(!Op::Other(20).is_read() && !Op::Other(20).is_write());
        assert!(Op::MetaDebug.is_meta() && !Op::Get.is_meta() && !Op::Other(20).is_meta());
    }

    #[test]
    fn builder_sets_fields() {
        let request = Request::new(Op::Set, b"k")
            .with_flags(7)
            .with_exptime(-1)
            .with_value_len(3)
            .with_listener(2);
        assert_eq!(request.op(), Op::Set);
        assert_eq!(request.key(), b"k");
        assert_eq!(
            (
                request.flags(),
                request.exptime(),
                request.value_len(),
                request.listener()
            ),
            (7, -1, 3, 2)
        );
    }
}
