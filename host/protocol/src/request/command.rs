//! [`Command`]: what a client may ask, and what that says about its reply; [`Command::op`],
//! the operation a plugin is told it is (the one place commands meet the SDK's [`Op`]).

use switchyard_sdk::Op;
use switchyard_sdk::rewrite::Store;

use crate::reply::{ReplyKind, ReplyStatus};

/// A command the router understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `get <key>+` (also memcached's undocumented alias `bget`).
    Get,
    /// `gets <key>+`: like get, with CAS uniques.
    Gets,
    /// `gat <exptime> <key>*`: get and touch.
    Gat,
    /// `gats <exptime> <key>*`.
    Gats,
    /// `set <key> <flags> <exptime> <bytes> [noreply]` + data.
    Set,
    /// `add ...` + data: store only if absent.
    Add,
    /// `replace ...` + data: store only if present.
    Replace,
    /// `append ...` + data.
    Append,
    /// `prepend ...` + data.
    Prepend,
    /// `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]` + data.
    Cas,
    /// `delete <key> [0] [noreply]`.
    Delete,
    /// `incr <key> <delta> [noreply]`.
    Incr,
    /// `decr <key> <delta> [noreply]`.
    Decr,
    /// `touch <key> <exptime> [noreply]`.
    Touch,
    /// `version`.
    Version,
    /// `quit`: close the connection once earlier replies are written.
    Quit,
    /// `stats [args]`.
    Stats,
    /// `flush_all [delay] [noreply]`.
    FlushAll,
    /// `verbosity <level> [noreply]`.
    Verbosity,
    /// `mg <key> <flag>*`: meta get, answered `VA`, `HD` or `EN`.
    MetaGet,
    /// `ms <key> <datalen> <flag>*` + data: meta set, answered `HD`, `NS`, `EX` or `NF`.
    MetaSet,
    /// `md <key> <flag>*`: meta delete, answered `HD`, `NF` or `EX`.
    MetaDelete,
    /// `ma <key> <flag>*`: meta arithmetic, answered `HD`, `VA`, `NF`, `NS` or `EX`.
    MetaArithmetic,
    /// `mn`: meta no-op, answered `MN` once everything before it is answered.
    MetaNoop,
    /// `me <key> [b]`: meta debug, answered `ME <key> <name>=<value>*` or `EN`.
    MetaDebug,
}

impl Command {
    /// Every command, in declaration order: `ALL[c.index()] == c`.
    pub const ALL: [Command; 25] = [
        Command::Get,
        Command::Gets,
        Command::Gat,
        Command::Gats,
        Command::Set,
        Command::Add,
        Command::Replace,
        Command::Append,
        Command::Prepend,
        Command::Cas,
        Command::Delete,
        Command::Incr,
        Command::Decr,
        Command::Touch,
        Command::Version,
        Command::Quit,
        Command::Stats,
        Command::FlushAll,
        Command::Verbosity,
        Command::MetaGet,
        Command::MetaSet,
        Command::MetaDelete,
        Command::MetaArithmetic,
        Command::MetaNoop,
        Command::MetaDebug,
    ];

    /// Its place in [`Command::ALL`], for per-command tables.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The command's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Command::Get => "get",
            Command::Gets => "gets",
            Command::Gat => "gat",
            Command::Gats => "gats",
            Command::Set => "set",
            Command::Add => "add",
            Command::Replace => "replace",
            Command::Append => "append",
            Command::Prepend => "prepend",
            Command::Cas => "cas",
            Command::Delete => "delete",
            Command::Incr => "incr",
            Command::Decr => "decr",
            Command::Touch => "touch",
            Command::Version => "version",
            Command::Quit => "quit",
            Command::Stats => "stats",
            Command::FlushAll => "flush_all",
            Command::Verbosity => "verbosity",
            Command::MetaGet => "mg",
            Command::MetaSet => "ms",
            Command::MetaDelete => "md",
            Command::MetaArithmetic => "ma",
            Command::MetaNoop => "mn",
            Command::MetaDebug => "me",
        }
    }

    /// The operation a plugin routes this command as (its ABI code is [`Op::code`]); `None`
    /// for the commands the router answers or spreads itself, which no plugin routes
    /// (`version quit stats flush_all verbosity mn`).
    pub const fn op(self) -> Option<Op> {
        Some(match self {
            Command::Get => Op::Get,
            Command::Gets => Op::Gets,
            Command::Gat => Op::Gat,
            Command::Gats => Op::Gats,
            Command::Set => Op::Set,
            Command::Add => Op::Add,
            Command::Replace => Op::Replace,
            Command::Append => Op::Append,
            Command::Prepend => Op::Prepend,
            Command::Cas => Op::Cas,
            Command::Delete => Op::Delete,
            Command::Incr => Op::Incr,
            Command::Decr => Op::Decr,
            Command::Touch => Op::Touch,
            Command::MetaGet => Op::MetaGet,
            Command::MetaSet => Op::MetaSet,
            Command::MetaDelete => Op::MetaDelete,
            Command::MetaArithmetic => Op::MetaArithmetic,
            Command::MetaDebug => Op::MetaDebug,
            Command::Version
            | Command::Quit
            | Command::Stats
            | Command::FlushAll
            | Command::Verbosity
            | Command::MetaNoop => return None,
        })
    }

    /// `get gets gat gats`: any number of keys, answered with `VALUE`s and `END`.
    pub fn is_retrieval(self) -> bool {
        matches!(
            self,
            Command::Get | Command::Gets | Command::Gat | Command::Gats
        )
    }

    /// `set add replace append prepend cas`: the classic commands a data block follows. (The
    /// meta `ms` has one too: see [`Command::has_data_block`].)
    pub fn is_storage(self) -> bool {
        matches!(
            self,
            Command::Set
                | Command::Add
                | Command::Replace
                | Command::Append
                | Command::Prepend
                | Command::Cas
        )
    }

    /// `mg ms md ma mn me`.
    pub fn is_meta(self) -> bool {
        matches!(
            self,
            Command::MetaGet
                | Command::MetaSet
                | Command::MetaDelete
                | Command::MetaArithmetic
                | Command::MetaNoop
                | Command::MetaDebug
        )
    }

    /// A data block follows the line: the storage commands and `ms`.
    pub fn has_data_block(self) -> bool {
        self.is_storage() || self == Command::MetaSet
    }

    /// How a server's answer to this command is framed; `None` for `quit`, which has none.
    pub fn reply_kind(self) -> Option<ReplyKind> {
        match self {
            _ if self.is_retrieval() => Some(ReplyKind::Retrieval),
            Command::Stats => Some(ReplyKind::Stats),
            Command::Quit => None,
            Command::MetaGet => Some(ReplyKind::MetaGet),
            Command::MetaSet => Some(ReplyKind::MetaSet),
            Command::MetaDelete => Some(ReplyKind::MetaDelete),
            Command::MetaArithmetic => Some(ReplyKind::MetaArithmetic),
            Command::MetaNoop => Some(ReplyKind::MetaNoop),
            Command::MetaDebug => Some(ReplyKind::MetaDebug),
            _ => Some(ReplyKind::Line),
        }
    }

    /// Whether memcached 1.6 keeps a reply with `status` to itself when this command carries
    /// the `q` flag ([`crate::Request::quiet`]). The router forwards a quiet request without
    /// `q` ([`crate::Request::forwarded_pieces`]), so that a backend always answers, and
    /// drops the answer itself when this says so. `q` hushes only the nominal outcome:
    ///
    /// | command | hushed by `q`                        | always sent                         |
    /// |---------|--------------------------------------|-------------------------------------|
    /// | `mg`    | `EN` ([`ReplyStatus::Miss`])         | `HD`, `VA` (hits), errors           |
    /// | `ms`    | `HD` ([`ReplyStatus::Stored`])       | `NS`, `EX`, `NF`, errors            |
    /// | `md`    | `HD` ([`ReplyStatus::Deleted`])      | `NF`, `EX`, errors                  |
    /// | `ma`    | `HD`, `VA` ([`ReplyStatus::Number`]) | `NF`, `NS`, `EX`, errors            |
    /// | `mn`    | —                                    | `MN` (`q` is ignored)               |
    /// | `me`    | —                                    | `ME`, `EN`, errors (`q` is ignored) |
    ///
    /// Errors (`CLIENT_ERROR`, `SERVER_ERROR`, `ERROR`) are never hushed, not even `ms`'s
    /// `CLIENT_ERROR bad data chunk`. One exception the router cannot see in a reply: memcached
    /// does *not* hush the `HD`/`VA` of an `ma` that created its item (`N` flag on a miss);
    /// this says hushed, as for any other successful `ma`.
    pub fn quiet_hides(self, status: ReplyStatus) -> bool {
        matches!(
            (self, status),
            (Command::MetaGet, ReplyStatus::Miss)
                | (Command::MetaSet, ReplyStatus::Stored)
                | (Command::MetaDelete, ReplyStatus::Deleted)
                | (Command::MetaArithmetic, ReplyStatus::Number)
        )
    }
}

/// The storage command a plugin's background [`Store`] sends.
impl From<Store> for Command {
    fn from(store: Store) -> Self {
        match store {
            Store::Set => Command::Set,
            Store::Add => Command::Add,
            Store::Replace => Command::Replace,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_lists_every_command_at_its_index() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(c.index(), i, "{}", c.name());
        }
    }

    use super::*;

    const ALL: [Command; 25] = [
        Command::Get,
        Command::Gets,
        Command::Gat,
        Command::Gats,
        Command::Set,
        Command::Add,
        Command::Replace,
        Command::Append,
        Command::Prepend,
        Command::Cas,
        Command::Delete,
        Command::Incr,
        Command::Decr,
        Command::Touch,
        Command::Version,
        Command::Quit,
        Command::Stats,
        Command::FlushAll,
        Command::Verbosity,
        Command::MetaGet,
        Command::MetaSet,
        Command::MetaDelete,
        Command::MetaArithmetic,
        Command::MetaNoop,
        Command::MetaDebug,
    ];

    #[test]
    fn keyed_commands_are_the_operations_plugins_route() {
        let mut codes = Vec::new();
        for command in ALL {
            match command.op() {
                Some(op) => {
                    assert_eq!(op.name(), Some(command.name()), "{command:?}");
                    assert_eq!(op.is_retrieval(), command.is_retrieval(), "{command:?}");
                    assert_eq!(op.is_storage(), command.has_data_block(), "{command:?}");
                    assert_eq!(Op::from_code(op.code()), op);
                    codes.push(op.code());
                }
                None => assert!(
                    !command.is_retrieval() && !command.has_data_block(),
                    "{command:?}"
                ),
            }
        }
        // Every code the ABI names, each once (ABI.md, "Operation codes").
        assert_eq!(
            codes,
            (1..switchyard_sdk::abi::op::RESERVED_FROM).collect::<Vec<_>>()
        );
        for store in [Store::Set, Store::Add, Store::Replace] {
            let op = Command::from(store).op().expect("keyed");
            assert_eq!(op.code(), store.op(), "{store:?}");
        }
    }

    #[test]
    fn every_command_knows_its_reply_kind() {
        assert_eq!(Command::Gats.reply_kind(), Some(ReplyKind::Retrieval));
        assert_eq!(Command::Stats.reply_kind(), Some(ReplyKind::Stats));
        assert_eq!(Command::Incr.reply_kind(), Some(ReplyKind::Line));
        assert_eq!(Command::Quit.reply_kind(), None);
        assert_eq!(Command::MetaGet.reply_kind(), Some(ReplyKind::MetaGet));
        assert_eq!(Command::MetaNoop.reply_kind(), Some(ReplyKind::MetaNoop));
    }

    #[test]
    fn meta_commands_are_two_letters() {
        for command in [
            Command::MetaGet,
            Command::MetaSet,
            Command::MetaDelete,
            Command::MetaArithmetic,
            Command::MetaNoop,
            Command::MetaDebug,
        ] {
            assert!(command.is_meta() && command.name().len() == 2);
            assert!(!command.is_storage() && !command.is_retrieval());
        }
        assert!(Command::MetaSet.has_data_block() && Command::Cas.has_data_block());
        assert!(!Command::MetaGet.has_data_block() && !Command::Get.is_meta());
    }

    #[test]
    fn quiet_hides_only_the_nominal_outcome() {
        use ReplyStatus::*;
        let hidden = [
            (Command::MetaGet, Miss),
            (Command::MetaSet, Stored),
            (Command::MetaDelete, Deleted),
            (Command::MetaArithmetic, Number),
        ];
        for (command, status) in hidden {
            assert!(command.quiet_hides(status), "{command:?} {status:?}");
        }
        let shown = [
            (Command::MetaGet, Hit),
            (Command::MetaSet, NotStored),
            (Command::MetaSet, Exists),
            (Command::MetaSet, NotFound),
            (Command::MetaDelete, NotFound),
            (Command::MetaDelete, Exists),
            (Command::MetaArithmetic, NotFound),
            (Command::MetaArithmetic, NotStored),
            (Command::MetaArithmetic, Exists),
            (Command::MetaNoop, Ok),
            (Command::MetaDebug, Miss),
            (Command::MetaSet, ClientError),
            (Command::MetaGet, ServerError),
            (Command::Get, Miss),
            (Command::Set, Stored),
        ];
        for (command, status) in shown {
            assert!(!command.quiet_hides(status), "{command:?} {status:?}");
        }
    }
}
