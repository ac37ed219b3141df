//! A main child backed by a second one: reads go to `main`, and to `backup` when `main` misses
//! or fails; a backup hit after a main miss is copied back to `main` (with `add`); every other
//! operation goes to both. The main/backup model of magent, with its gaps closed. See
//! `README.md`.
//!
//! A read goes through up to two calls; the cookie of each says which call it is and, for the
//! call to `backup`, whether `main` missed or failed: that is all `on_reply` needs, and it
//! survives the instance being replaced between the calls.

use serde::Deserialize;
use switchyard_sdk::{
    Background, Child, Children, InitContext, Plan, Policy, Reply, ReplyStatus, Request, Wait,
};

/// Cookie of the call to `main`.
pub const COOKIE_MAIN: u32 = 0;
/// Cookie of the call to `backup` after `main` answered a miss: `backup`'s hit may be copied to
/// `main`, and anything else from `backup` is answered as a miss.
pub const COOKIE_BACKUP_AFTER_MISS: u32 = 1;
/// Cookie of the call to `backup` after `main` failed (an `ERROR`, `CLIENT_ERROR` or
/// `SERVER_ERROR`, including a `main` that is down): `backup`'s reply is the client's.
pub const COOKIE_BACKUP_AFTER_FAILURE: u32 = 2;

fn default_refill() -> bool {
    true
}

/// The `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The child that serves reads; default the first child (or, if `backup` names the first,
    /// the second).
    #[serde(default)]
    pub main: Option<String>,
    /// The child asked when `main` misses or fails; default the child `main` is not.
    #[serde(default)]
    pub backup: Option<String>,
    /// Copy a value found on `backup` after a miss on `main` back to `main` (with `add`);
    /// default `true`.
    #[serde(default = "default_refill")]
    pub refill: bool,
    /// The exptime of those copies, as memcached reads it (seconds up to 30 days, a Unix time
    /// beyond); default 0, never expires.
    #[serde(default)]
    pub refill_exptime: i64,
}

/// The policy.
#[derive(Debug)]
pub struct Backup {
    main: Child,
    backup: Child,
    /// `[main, backup]`, the fan-out of writes.
    both: [u32; 2],
    /// The background store to `main` of a value found on `backup`; `None` with
    /// `refill = false`.
    refill: Option<[Background<'static>; 1]>,
}

impl Backup {
    /// The child that serves reads.
    pub fn main(&self) -> Child {
        self.main
    }

    /// The child asked when `main` misses or fails.
    pub fn backup(&self) -> Child {
        self.backup
    }
}

impl Policy for Backup {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let (main, backup) = ctx.resolve_pair(
            "backup",
            ("main", "backup"),
            (config.main.as_deref(), config.backup.as_deref()),
        )?;
        let refill = Background::refill(main, config.refill_exptime, "refill_exptime")?;
        let refill = config.refill.then_some([refill]);
        Ok(Self {
            main,
            backup,
            both: [main.0, backup.0],
            refill,
        })
    }

    /// Reads call `main`; everything else goes to both children, and the client gets the first
    /// reply that is not an error.
    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        if request.op().fetches_value() {
            Plan::Call {
                child: self.main,
                cookie: COOKIE_MAIN,
            }
        } else {
            Plan::FanOut {
                children: Children::List(&self.both),
                wait: Wait::FirstGood,
            }
        }
    }

    fn on_reply<'a>(
        &'a mut self,
        cookie: u32,
        status: ReplyStatus,
        _request: &Request<'_>,
    ) -> Plan<'a> {
        match cookie {
            COOKIE_MAIN if status.is_miss() => Plan::Call {
                child: self.backup,
                cookie: COOKIE_BACKUP_AFTER_MISS,
            },
            COOKIE_MAIN if status.is_error() => Plan::Call {
                child: self.backup,
                cookie: COOKIE_BACKUP_AFTER_FAILURE,
            },
            COOKIE_BACKUP_AFTER_MISS => match (status, &self.refill) {
                (ReplyStatus::Hit, Some(refill)) => Plan::Pass.with_background(refill),
                (ReplyStatus::Hit, None) => Plan::Pass,
                // `main` answered: the key is not there. `backup` cannot tell otherwise.
                _ => Plan::Reply(Reply::Miss),
            },
            // A hit (or any other answer) from `main`, whatever `backup` answered after `main`
            // failed, and cookies this plugin never makes.
            _ => Plan::Pass,
        }
    }
}

switchyard_sdk::export_policy!(Backup);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{
        Decision, FETCHING_OPS, Harness, OTHER_OPS, OwnedBackground, OwnedRewrite,
    };
    use switchyard_sdk::{Exptime, Op, Request, Store};

    use super::*;

    const TWO: &[(&str, u32)] = &[("a", 1), ("b", 1)];

    const GET: Request<'static> = Request::new(Op::Get, b"key");

    const ERRORS: [ReplyStatus; 3] = [
        ReplyStatus::Error,
        ReplyStatus::ClientError,
        ReplyStatus::ServerError,
    ];

    fn backup(config: &str) -> Harness<Backup> {
        Harness::new(config, TWO).expect("valid config")
    }

    fn call(child: u32, cookie: u32) -> Decision {
        Decision::Call { child, cookie }
    }

    /// `Pass` with the refill of child `main` with `exptime`.
    fn pass_and_refill(main: u32, exptime: i64) -> Decision {
        Decision::Extended {
            primary: Box::new(Decision::Pass),
            rewrite: OwnedRewrite::default(),
            background: vec![OwnedBackground {
                child: main,
                store: Some(Store::Add),
                compare: false,
                rewrite: OwnedRewrite {
                    exptime: Exptime::Set(exptime),
                    ..OwnedRewrite::default()
                },
            }],
        }
    }

    #[test]
    fn reads_call_main() {
        let mut h = backup("");
        for op in FETCHING_OPS {
            assert_eq!(
                h.route(&Request::new(op, b"k")),
                call(0, COOKIE_MAIN),
                "{op:?}"
            );
        }
    }

    #[test]
    fn everything_else_goes_to_both() {
        let mut h = backup("");
        for op in OTHER_OPS {
            let request = Request::new(op, b"k").with_value_len(2).with_exptime(9);
            assert_eq!(
                h.route(&request),
                Decision::FanOut {
                    children: vec![0, 1],
                    wait: Wait::FirstGood
                },
                "{op:?}"
            );
        }
    }

    #[test]
    fn a_hit_on_main_is_the_clients() {
        let mut h = backup("");
        assert_eq!(
            h.on_reply(COOKIE_MAIN, ReplyStatus::Hit, &GET),
            Decision::Pass
        );
    }

    #[test]
    fn other_answers_from_main_pass() {
        let mut h = backup("");
        for code in 0..16 {
            let status = ReplyStatus::from_code(code);
            if status != ReplyStatus::Miss && !status.is_error() {
                assert_eq!(
                    h.on_reply(COOKIE_MAIN, status, &GET),
                    Decision::Pass,
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn a_miss_on_main_asks_backup_and_refills_main() {
        let mut h = backup("");
        assert_eq!(
            h.on_reply(COOKIE_MAIN, ReplyStatus::Miss, &GET),
            call(1, COOKIE_BACKUP_AFTER_MISS)
        );
        assert_eq!(
            h.on_reply(COOKIE_BACKUP_AFTER_MISS, ReplyStatus::Hit, &GET),
            pass_and_refill(0, 0)
        );
    }

    #[test]
    fn after_a_miss_on_main_anything_but_a_hit_is_a_miss() {
        let mut h = backup("");
        for status in ERRORS
            .into_iter()
            .chain([ReplyStatus::Miss, ReplyStatus::Other(77)])
        {
            assert_eq!(
                h.on_reply(COOKIE_BACKUP_AFTER_MISS, status, &GET),
                Decision::reply(Reply::Miss),
                "{status}"
            );
        }
    }

    #[test]
    fn a_failed_main_asks_backup_without_refill() {
        let mut h = backup("");
        for status in ERRORS {
            assert_eq!(
                h.on_reply(COOKIE_MAIN, status, &GET),
                call(1, COOKIE_BACKUP_AFTER_FAILURE),
                "{status}"
            );
        }
        // Whatever backup answers is the client's, and main is not refilled: it failed, and
        // may hold a newer value once it is back.
        for code in 0..16 {
            let status = ReplyStatus::from_code(code);
            assert_eq!(
                h.on_reply(COOKIE_BACKUP_AFTER_FAILURE, status, &GET),
                Decision::Pass,
                "{status}"
            );
        }
    }

    #[test]
    fn refill_can_be_turned_off() {
        let mut h = backup("refill = false");
        assert_eq!(
            h.on_reply(COOKIE_MAIN, ReplyStatus::Miss, &GET),
            call(1, COOKIE_BACKUP_AFTER_MISS)
        );
        assert_eq!(
            h.on_reply(COOKIE_BACKUP_AFTER_MISS, ReplyStatus::Hit, &GET),
            Decision::Pass
        );
        assert_eq!(
            h.on_reply(COOKIE_BACKUP_AFTER_MISS, ReplyStatus::Miss, &GET),
            Decision::reply(Reply::Miss)
        );
    }

    #[test]
    fn refill_exptime() {
        let mut h = backup("refill_exptime = 3600");
        assert_eq!(
            h.on_reply(COOKIE_BACKUP_AFTER_MISS, ReplyStatus::Hit, &GET),
            pass_and_refill(0, 3600)
        );
    }

    #[test]
    fn unknown_cookies_pass() {
        let mut h = backup("");
        for cookie in [3, 99, u32::MAX] {
            assert_eq!(
                h.on_reply(cookie, ReplyStatus::Miss, &GET),
                Decision::Pass,
                "{cookie}"
            );
        }
    }

    #[test]
    fn named_children() {
        let mut h = backup(r#"main = "b""#);
        assert_eq!(
            (h.policy().main(), h.policy().backup()),
            (Child(1), Child(0))
        );
        assert_eq!(h.route(&GET), call(1, COOKIE_MAIN));
        assert_eq!(
            h.on_reply(COOKIE_MAIN, ReplyStatus::Miss, &GET),
            call(0, COOKIE_BACKUP_AFTER_MISS)
        );
        assert_eq!(
            h.on_reply(COOKIE_BACKUP_AFTER_MISS, ReplyStatus::Hit, &GET),
            pass_and_refill(1, 0)
        );
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::FanOut {
                children: vec![1, 0],
                wait: Wait::FirstGood
            }
        );

        let h = backup(r#"backup = "a""#);
        assert_eq!(
            (h.policy().main(), h.policy().backup()),
            (Child(1), Child(0))
        );
        let h = backup(r#"main = "a""#);
        assert_eq!(
            (h.policy().main(), h.policy().backup()),
            (Child(0), Child(1))
        );
        let h = backup(r#"backup = "b""#);
        assert_eq!(
            (h.policy().main(), h.policy().backup()),
            (Child(0), Child(1))
        );
        let h = backup(
            r#"main = "b"
               backup = "a""#,
        );
        assert_eq!(
            (h.policy().main(), h.policy().backup()),
            (Child(1), Child(0))
        );
    }

    #[test]
    fn config_errors() {
        for children in [&[][..], &[("a", 1)], &[("a", 1), ("b", 1), ("c", 1)]] {
            let err = Harness::<Backup>::new("", children).expect_err("not two children");
            assert_eq!(
                err,
                format!(
                    "backup needs exactly two children, main and backup; the node has {}",
                    children.len()
                )
            );
        }

        let err = Harness::<Backup>::new(r#"main = "c""#, TWO).expect_err("unknown main");
        assert_eq!(err, r#"main names unknown child "c" (children: "a", "b")"#);
        let err = Harness::<Backup>::new(r#"backup = "c""#, TWO).expect_err("unknown backup");
        assert_eq!(
            err,
            r#"backup names unknown child "c" (children: "a", "b")"#
        );

        let err = Harness::<Backup>::new("main = \"a\"\nbackup = \"a\"", TWO).expect_err("same");
        assert!(err.contains("the same child \"a\""), "{err}");

        let err = Harness::<Backup>::new("refill_exptime = -1", TWO).expect_err("negative");
        assert!(err.contains("refill_exptime is -1"), "{err}");

        let err = Harness::<Backup>::new("refil = false", TWO).expect_err("unknown key");
        assert!(err.contains("unknown field `refil`"), "{err}");

        let err = Harness::<Backup>::new("refill = \"yes\"", TWO).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
        let err = Harness::<Backup>::new("refill_exptime = 1.5", TWO).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
