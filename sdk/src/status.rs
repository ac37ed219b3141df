//! [`ReplyStatus`]: what a memcached reply says, whichever command it answers. One type on
//! both sides of the ABI: the host's reply parser (`switchyard_protocol::parse_reply`)
//! classifies every backend reply as one, the host combines fan-outs by it, and a plugin's
//! [`Policy::on_reply`](crate::Policy::on_reply) receives it for the reply to a
//! [`Plan::Call`](crate::Plan::Call). Its ABI code ([`ReplyStatus::code`],
//! [`ReplyStatus::from_code`]) is defined here and nowhere else.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::abi::status;

/// The kind of reply a server gave (ABI.md, "`call` and `on_reply`"). Only the kind: the
/// values, numbers and messages stay in the host.
///
/// The host never produces [`ReplyStatus::Other`]: it is what a plugin receives for a code
/// newer than its SDK. Every other variant is matched exhaustively by the host, so a new
/// status does not compile until the host says how to treat it.
///
/// In a config, a status is written as its [`name`](ReplyStatus::name) (`"server_error"`,
/// `"miss"`, ...): `ReplyStatus` deserializes from those names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// A retrieval with at least one `VALUE`; `VA` or `HD` to `mg`; `ME ...` to `me`.
    Hit,
    /// A retrieval with none: just `END`; `EN` to `mg` or `me`. (For `delete`, `touch`,
    /// `incr`, `decr` a missing key is [`ReplyStatus::NotFound`].)
    Miss,
    /// `STORED`; `HD` to `ms`.
    Stored,
    /// `NOT_STORED`: `add` of a present key, `replace`/`append`/`prepend` of an absent one;
    /// `NS` to `ms` (the same, in its modes) or `ma` (an `N` that could not create the item).
    NotStored,
    /// `EXISTS`: `cas` lost the race; `EX` to `ms`, `md`, `ma` (a `C` flag that did not match).
    Exists,
    /// `NOT_FOUND`; `NF` to `ms` (a `C` flag on an absent key), `md`, `ma`.
    NotFound,
    /// `DELETED`; `HD` to `md`.
    Deleted,
    /// `TOUCHED`.
    Touched,
    /// The new value of an `incr`/`decr`; `HD` or `VA` to `ma`.
    Number,
    /// `OK` (`flush_all`, `verbosity`), a whole `stats` reply or `RESET`; `MN` to `mn`.
    Ok,
    /// `VERSION ...`.
    Version,
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR ...`: the server refused the request.
    ClientError,
    /// `SERVER_ERROR ...`: the server failed, or the router answered for it because the child
    /// is marked down, timed out or could not be reached.
    ServerError,
    /// A status code this SDK does not know (a newer host's); a policy should treat it as it
    /// treats statuses it does not act on. Never produced by the host.
    Other(u32),
}

impl ReplyStatus {
    /// The config names of the known statuses, in code order: `NAMES[code]` is the name of
    /// status `code`.
    pub const NAMES: [&'static str; 14] = [
        "hit",
        "miss",
        "stored",
        "not_stored",
        "exists",
        "not_found",
        "deleted",
        "touched",
        "number",
        "ok",
        "version",
        "error",
        "client_error",
        "server_error",
    ];

    /// The status with this ABI code ([`crate::abi::status`]); unknown codes become
    /// [`ReplyStatus::Other`].
    pub const fn from_code(code: u32) -> Self {
        match code {
            status::HIT => Self::Hit,
            status::MISS => Self::Miss,
            status::STORED => Self::Stored,
            status::NOT_STORED => Self::NotStored,
            status::EXISTS => Self::Exists,
            status::NOT_FOUND => Self::NotFound,
            status::DELETED => Self::Deleted,
            status::TOUCHED => Self::Touched,
            status::NUMBER => Self::Number,
            status::OK => Self::Ok,
            status::VERSION => Self::Version,
            status::ERROR => Self::Error,
            status::CLIENT_ERROR => Self::ClientError,
            status::SERVER_ERROR => Self::ServerError,
            other => Self::Other(other),
        }
    }

    /// The ABI code of this status.
    pub const fn code(self) -> u32 {
        match self {
            Self::Hit => status::HIT,
            Self::Miss => status::MISS,
            Self::Stored => status::STORED,
            Self::NotStored => status::NOT_STORED,
            Self::Exists => status::EXISTS,
            Self::NotFound => status::NOT_FOUND,
            Self::Deleted => status::DELETED,
            Self::Touched => status::TOUCHED,
            Self::Number => status::NUMBER,
            Self::Ok => status::OK,
            Self::Version => status::VERSION,
            Self::Error => status::ERROR,
            Self::ClientError => status::CLIENT_ERROR,
            Self::ServerError => status::SERVER_ERROR,
            Self::Other(code) => code,
        }
    }

    /// The config name (one of [`ReplyStatus::NAMES`]); `None` for [`ReplyStatus::Other`].
    pub const fn name(self) -> Option<&'static str> {
        match self {
            Self::Other(_) => None,
            // Every other variant's code is an index into NAMES.
            known => Some(Self::NAMES[known.code() as usize]),
        }
    }

    /// The status with this config name, if it is one of [`ReplyStatus::NAMES`].
    pub fn from_name(name: &str) -> Option<Self> {
        let code = Self::NAMES.iter().position(|&known| known == name)?;
        Some(Self::from_code(code as u32))
    }

    /// How bad the reply is, for answering a fan-out with its worst reply (ABI.md, wait
    /// policies): higher is worse.
    /// - 0: success (`Hit Stored Deleted Touched Number Version Ok`);
    /// - 1: a negative answer to a good request (`Miss NotStored NotFound Exists`), and a
    ///   status this SDK does not know (`Other`, which the host never produces);
    /// - 2: the request was refused (`Error ClientError`);
    /// - 3: the server failed (`ServerError`).
    pub const fn severity(self) -> u8 {
        match self {
            Self::Hit
            | Self::Stored
            | Self::Deleted
            | Self::Touched
            | Self::Number
            | Self::Version
            | Self::Ok => 0,
            Self::Miss | Self::NotStored | Self::NotFound | Self::Exists | Self::Other(_) => 1,
            Self::Error | Self::ClientError => 2,
            Self::ServerError => 3,
        }
    }

    /// `ERROR`, `CLIENT_ERROR` or `SERVER_ERROR`: [`severity`](ReplyStatus::severity) 2 or
    /// more.
    pub const fn is_error(self) -> bool {
        self.severity() >= 2
    }

    /// A retrieval without values ([`ReplyStatus::Miss`] only).
    pub const fn is_miss(self) -> bool {
        matches!(self, Self::Miss)
    }
}

impl fmt::Display for ReplyStatus {
    /// The config name, or `status <code>` for [`ReplyStatus::Other`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "status {}", self.code()),
        }
    }
}

impl<'de> Deserialize<'de> for ReplyStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;

        impl Visitor<'_> for Name {
            type Value = ReplyStatus;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a reply status name such as \"server_error\" or \"miss\"")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<ReplyStatus, E> {
                ReplyStatus::from_name(name)
                    .ok_or_else(|| E::unknown_variant(name, &ReplyStatus::NAMES))
            }
        }

        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for code in 0..14 {
            let status = ReplyStatus::from_code(code);
            assert_eq!(status.code(), code);
            assert!(!matches!(status, ReplyStatus::Other(_)), "{code}");
            let name = status.name().expect("known status");
            assert_eq!(ReplyStatus::from_name(name), Some(status));
            assert_eq!(status.to_string(), name);
        }
        assert_eq!(ReplyStatus::from_code(14), ReplyStatus::Other(14));
        assert_eq!(ReplyStatus::Other(14).code(), 14);
        assert_eq!(ReplyStatus::Other(14).name(), None);
        assert_eq!(ReplyStatus::Other(99).to_string(), "status 99");
        assert_eq!(ReplyStatus::from_name("SERVER_ERROR"), None);
        assert_eq!(ReplyStatus::from_name("other"), None);
    }

    #[test]
    fn codes_match_abi_md() {
        assert_eq!(ReplyStatus::Hit.code(), 0);
        assert_eq!(ReplyStatus::NotStored.code(), 3);
        assert_eq!(ReplyStatus::Number.code(), 8);
        assert_eq!(ReplyStatus::ServerError.code(), 13);
        assert_eq!(ReplyStatus::ServerError.name(), Some("server_error"));
        assert_eq!(ReplyStatus::NotStored.name(), Some("not_stored"));
    }

    #[test]
    fn severity_orders_success_then_negative_then_refused_then_failed() {
        use ReplyStatus::*;
        let order = [Hit, Miss, ClientError, ServerError];
        assert!(order.windows(2).all(|w| w[0].severity() < w[1].severity()));
        for (a, b) in [
            (Stored, Ok),
            (Number, Version),
            (Miss, NotFound),
            (NotStored, Exists),
            (Other(14), Miss),
            (Error, ClientError),
        ] {
            assert_eq!(a.severity(), b.severity(), "{a:?} {b:?}");
        }
        assert!(ServerError.is_error() && Error.is_error() && !NotFound.is_error());
    }

    #[test]
    fn classification() {
        let errors: Vec<_> = (0..15)
            .map(ReplyStatus::from_code)
            .filter(|s| s.is_error())
            .collect();
        assert_eq!(
            errors,
            [
                ReplyStatus::Error,
                ReplyStatus::ClientError,
                ReplyStatus::ServerError
            ]
        );
        assert!(ReplyStatus::Miss.is_miss());
        assert!(!ReplyStatus::NotFound.is_miss() && !ReplyStatus::Hit.is_miss());
    }

    #[test]
    fn deserializes_from_names() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            on: Vec<ReplyStatus>,
        }
        let config: Config =
            toml::from_str(r#"on = ["server_error", "miss", "not_stored"]"#).expect("known names");
        assert_eq!(
            config.on,
            [
                ReplyStatus::ServerError,
                ReplyStatus::Miss,
                ReplyStatus::NotStored
            ]
        );
        let err = toml::from_str::<Config>(r#"on = ["sever_error"]"#).expect_err("unknown");
        assert!(
            err.to_string().contains("unknown variant `sever_error`"),
            "{err}"
        );
        assert!(toml::from_str::<Config>("on = [13]").is_err());
    }
}
