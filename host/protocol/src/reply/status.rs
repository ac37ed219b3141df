//! [`ReplyStatus`]: what a reply says, whichever command it answers.

/// What a reply says, for counting and for combining the replies of a fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyStatus {
    /// A retrieval with at least one `VALUE`; `VA` or `HD` to `mg`; `ME ...` to `me`.
    Hit,
    /// A retrieval with none: just `END`; `EN` to `mg` or `me`.
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
    /// `VERSION ...`.
    Version,
    /// `OK` (`flush_all`, `verbosity`), a whole `stats` reply or `RESET`; `MN` to `mn`.
    Ok,
    /// `ERROR`: the server did not know the command.
    Error,
    /// `CLIENT_ERROR ...`: the server refused the request.
    ClientError,
    /// `SERVER_ERROR ...`: the server failed.
    ServerError,
}

impl ReplyStatus {
    /// How bad the reply is, for answering a fan-out with its worst reply: higher is worse.
    /// - 0: success (`Hit Stored Deleted Touched Number Version Ok`);
    /// - 1: a negative answer to a good request (`Miss NotStored NotFound Exists`);
    /// - 2: the request was refused (`Error ClientError`);
    /// - 3: the server failed (`ServerError`).
    pub fn severity(self) -> u8 {
        match self {
            ReplyStatus::Hit
            | ReplyStatus::Stored
            | ReplyStatus::Deleted
            | ReplyStatus::Touched
            | ReplyStatus::Number
            | ReplyStatus::Version
            | ReplyStatus::Ok => 0,
            ReplyStatus::Miss
            | ReplyStatus::NotStored
            | ReplyStatus::NotFound
            | ReplyStatus::Exists => 1,
            ReplyStatus::Error | ReplyStatus::ClientError => 2,
            ReplyStatus::ServerError => 3,
        }
    }

    /// `Error`, `ClientError` or `ServerError`.
    pub fn is_error(self) -> bool {
        self.severity() >= 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (Error, ClientError),
        ] {
            assert_eq!(a.severity(), b.severity(), "{a:?} {b:?}");
        }
        assert!(ServerError.is_error() && Error.is_error() && !NotFound.is_error());
    }
}
