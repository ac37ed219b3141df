//! [`ReplyStatus`]: what the child a [`Plan::Call`](crate::Plan::Call) went to answered, as
//! [`Policy::on_reply`](crate::Policy::on_reply) receives it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::abi::status;

/// The kind of reply a called child gave (ABI.md, "`call` and `on_reply`"). Only the kind: the
/// values, numbers and messages stay in the host.
///
/// In a config, a status is written as its [`name`](ReplyStatus::name) (`"server_error"`,
/// `"miss"`, ...): `ReplyStatus` deserializes from those names.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// A retrieval that returned values.
    Hit,
    /// A retrieval that returned none (for `delete`, `touch`, `incr`, `decr` a missing key is
    /// [`ReplyStatus::NotFound`]).
    Miss,
    /// `STORED`
    Stored,
    /// `NOT_STORED`
    NotStored,
    /// `EXISTS`
    Exists,
    /// `NOT_FOUND`
    NotFound,
    /// `DELETED`
    Deleted,
    /// `TOUCHED`
    Touched,
    /// The number `incr`/`decr` answer.
    Number,
    /// `OK`
    Ok,
    /// `VERSION ...`
    Version,
    /// `ERROR`
    Error,
    /// `CLIENT_ERROR ...`
    ClientError,
    /// `SERVER_ERROR ...`: the backend's, or the router's own when the child is marked down,
    /// timed out or could not be reached.
    ServerError,
    /// A status code this SDK does not know (a newer host's); a policy should treat it as it
    /// treats statuses it does not act on.
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

    /// `ERROR`, `CLIENT_ERROR` or `SERVER_ERROR`.
    pub const fn is_error(self) -> bool {
        matches!(self, Self::Error | Self::ClientError | Self::ServerError)
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
