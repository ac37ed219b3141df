//! Warms up a new (cold) child from an old (warm) one: reads go to `cold`, and to `warm` when
//! `cold` does not answer with a hit; a hit on `warm` is copied to `cold` (with `add`). Every
//! other operation goes to `cold` alone. mcrouter's `WarmUpRoute`. See `README.md`.
//!
//! A read goes through up to two calls; the cookie of each says which child it went to, which
//! is all `on_reply` needs.

use serde::Deserialize;
use switchyard_sdk::{Background, Child, InitContext, Plan, Policy, ReplyStatus, Request};

/// Cookie of the call to `cold`.
pub const COOKIE_COLD: u32 = 0;
/// Cookie of the call to `warm`, made when `cold` did not answer with a hit.
pub const COOKIE_WARM: u32 = 1;

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The child being warmed up, which serves every request first; default the first child
    /// (or, if `warm` names the first, the second).
    #[serde(default)]
    pub cold: Option<String>,
    /// The child that holds the data; default the child `cold` is not.
    #[serde(default)]
    pub warm: Option<String>,
    /// The exptime of the copies stored on `cold`, as memcached reads it (seconds up to 30
    /// days, a Unix time beyond); default 0, never expires.
    #[serde(default)]
    pub exptime: i64,
}

/// The policy.
#[derive(Debug)]
pub struct Warmup {
    cold: Child,
    warm: Child,
    /// The background store to `cold` of a value found on `warm`.
    refill: [Background<'static>; 1],
}

impl Warmup {
    /// The child being warmed up.
    pub fn cold(&self) -> Child {
        self.cold
    }

    /// The child that holds the data.
    pub fn warm(&self) -> Child {
        self.warm
    }
}

impl Policy for Warmup {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let (cold, warm) = ctx.resolve_pair(
            "warmup",
            ("cold", "warm"),
            (config.cold.as_deref(), config.warm.as_deref()),
        )?;
        let refill = Background::refill(cold, config.exptime, "exptime")?;
        Ok(Self {
            cold,
            warm,
            refill: [refill],
        })
    }

    /// Reads call `cold`; everything else is forwarded to it.
    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        if request.op().fetches_value() {
            Plan::Call {
                child: self.cold,
                cookie: COOKIE_COLD,
            }
        } else {
            Plan::Forward(self.cold)
        }
    }

    fn on_reply<'a>(
        &'a mut self,
        cookie: u32,
        status: ReplyStatus,
        _request: &Request<'_>,
    ) -> Plan<'a> {
        match (cookie, status) {
            (COOKIE_COLD, ReplyStatus::Hit) => Plan::Pass,
            (COOKIE_COLD, _) => Plan::Call {
                child: self.warm,
                cookie: COOKIE_WARM,
            },
            (COOKIE_WARM, ReplyStatus::Hit) => Plan::Pass.with_background(&self.refill),
            // `warm`'s miss or error is the client's; so is anything after an unknown cookie.
            _ => Plan::Pass,
        }
    }
}

switchyard_sdk::export_policy!(Warmup);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{
        Decision, FETCHING_OPS, Harness, OTHER_OPS, OwnedBackground, OwnedRewrite,
    };
    use switchyard_sdk::{Exptime, Op, Request, Store};

    use super::*;

    const TWO: &[(&str, u32)] = &[("new", 1), ("old", 1)];

    const GET: Request<'static> = Request::new(Op::Get, b"key");

    fn warmup(config: &str) -> Harness<Warmup> {
        Harness::new(config, TWO).expect("valid config")
    }

    /// `Pass` with the refill of child `cold` with `exptime`.
    fn pass_and_refill(cold: u32, exptime: i64) -> Decision {
        Decision::Extended {
            primary: Box::new(Decision::Pass),
            rewrite: OwnedRewrite::default(),
            background: vec![OwnedBackground {
                child: cold,
                store: Some(Store::Add),
                compare: false,
                rewrite: OwnedRewrite {
                    exptime: Exptime::Set(exptime),
                    ..OwnedRewrite::default()
                },
            }],
        }
    }

    /// Every status `on_reply` may receive, unknown ones included.
    fn statuses() -> impl Iterator<Item = ReplyStatus> {
        (0..16).map(ReplyStatus::from_code)
    }

    #[test]
    fn reads_call_cold() {
        let mut h = warmup("");
        for op in FETCHING_OPS {
            assert_eq!(
                h.route(&Request::new(op, b"k")),
                Decision::Call {
                    child: 0,
                    cookie: COOKIE_COLD
                },
                "{op:?}"
            );
        }
    }

    #[test]
    fn everything_else_goes_to_cold() {
        let mut h = warmup("");
        for op in OTHER_OPS {
            let request = Request::new(op, b"k").with_value_len(1).with_exptime(5);
            assert_eq!(h.route(&request), Decision::Forward(0), "{op:?}");
        }
    }

    #[test]
    fn a_hit_on_cold_is_the_clients() {
        let mut h = warmup("");
        assert_eq!(
            h.on_reply(COOKIE_COLD, ReplyStatus::Hit, &GET),
            Decision::Pass
        );
    }

    #[test]
    fn anything_else_from_cold_asks_warm() {
        let mut h = warmup("");
        for status in statuses().filter(|&status| status != ReplyStatus::Hit) {
            assert_eq!(
                h.on_reply(COOKIE_COLD, status, &GET),
                Decision::Call {
                    child: 1,
                    cookie: COOKIE_WARM
                },
                "{status}"
            );
        }
    }

    #[test]
    fn a_hit_on_warm_is_copied_to_cold() {
        let mut h = warmup("");
        assert_eq!(
            h.on_reply(COOKIE_WARM, ReplyStatus::Hit, &GET),
            pass_and_refill(0, 0)
        );
        let mut h = warmup("exptime = 86400");
        assert_eq!(
            h.on_reply(COOKIE_WARM, ReplyStatus::Hit, &GET),
            pass_and_refill(0, 86_400)
        );
    }

    #[test]
    fn anything_else_from_warm_is_the_clients() {
        let mut h = warmup("");
        for status in statuses().filter(|&status| status != ReplyStatus::Hit) {
            assert_eq!(
                h.on_reply(COOKIE_WARM, status, &GET),
                Decision::Pass,
                "{status}"
            );
        }
    }

    #[test]
    fn unknown_cookies_pass() {
        let mut h = warmup("");
        for cookie in [2, 99, u32::MAX] {
            for status in [ReplyStatus::Hit, ReplyStatus::Miss] {
                assert_eq!(h.on_reply(cookie, status, &GET), Decision::Pass);
            }
        }
    }

    #[test]
    fn named_children() {
        let mut h = warmup(r#"cold = "old""#);
        assert_eq!((h.policy().cold(), h.policy().warm()), (Child(1), Child(0)));
        assert_eq!(
            h.route(&GET),
            Decision::Call {
                child: 1,
                cookie: COOKIE_COLD
            }
        );
        assert_eq!(
            h.on_reply(COOKIE_COLD, ReplyStatus::Miss, &GET),
            Decision::Call {
                child: 0,
                cookie: COOKIE_WARM
            }
        );
        assert_eq!(
            h.on_reply(COOKIE_WARM, ReplyStatus::Hit, &GET),
            pass_and_refill(1, 0)
        );
        assert_eq!(h.route(&Request::new(Op::Set, b"k")), Decision::Forward(1));

        let h = warmup(r#"warm = "new""#);
        assert_eq!((h.policy().cold(), h.policy().warm()), (Child(1), Child(0)));
        let h = warmup(r#"warm = "old""#);
        assert_eq!((h.policy().cold(), h.policy().warm()), (Child(0), Child(1)));
        let h = warmup(r#"cold = "new""#);
        assert_eq!((h.policy().cold(), h.policy().warm()), (Child(0), Child(1)));
        let h = warmup(
            r#"cold = "old"
               warm = "new""#,
        );
        assert_eq!((h.policy().cold(), h.policy().warm()), (Child(1), Child(0)));
    }

    #[test]
    fn config_errors() {
        for children in [&[][..], &[("a", 1)], &[("a", 1), ("b", 1), ("c", 1)]] {
            let err = Harness::<Warmup>::new("", children).expect_err("not two children");
            assert_eq!(
                err,
                format!(
                    "warmup needs exactly two children, cold and warm; the node has {}",
                    children.len()
                )
            );
        }

        let err = Harness::<Warmup>::new(r#"cold = "x""#, TWO).expect_err("unknown cold");
        assert_eq!(
            err,
            r#"cold names unknown child "x" (children: "new", "old")"#
        );
        let err = Harness::<Warmup>::new(r#"warm = "x""#, TWO).expect_err("unknown warm");
        assert_eq!(
            err,
            r#"warm names unknown child "x" (children: "new", "old")"#
        );

        let err = Harness::<Warmup>::new("cold = \"old\"\nwarm = \"old\"", TWO).expect_err("same");
        assert!(err.contains("the same child \"old\""), "{err}");

        let err = Harness::<Warmup>::new("exptime = -60", TWO).expect_err("negative");
        assert!(err.contains("exptime is -60"), "{err}");

        let err = Harness::<Warmup>::new("ttl = 60", TWO).expect_err("unknown key");
        assert!(err.contains("unknown field `ttl`"), "{err}");

        let err = Harness::<Warmup>::new("exptime = \"1h\"", TWO).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
