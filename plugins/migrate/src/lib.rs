//! A time-phased move from one child to another, as mcrouter's `MigrateRoute` does it: before
//! `start` everything goes to `from`; for `interval` seconds deletes go to both and the rest to
//! `from`; for another `interval` deletes go to both and the rest to `to`; after that everything
//! goes to `to`. See `README.md`.
//!
//! The phase is decided per request from the host's clock (`now_ms`): the plugin keeps no state,
//! so every instance agrees.

use serde::Deserialize;
use switchyard_sdk::{Child, Children, InitContext, Op, Plan, Policy, Request, Wait, host};

/// The default `interval`, in seconds: mcrouter's (`MigrateRoute`'s `interval` property
/// defaults to 3600).
pub const DEFAULT_INTERVAL_SECS: i64 = 3600;

const MS_PER_SEC: i64 = 1000;

fn default_interval() -> i64 {
    DEFAULT_INTERVAL_SECS
}

/// The `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The child the data is moving away from.
    pub from: String,
    /// The child the data is moving to.
    pub to: String,
    /// When the migration starts, in seconds since the Unix epoch.
    pub start: i64,
    /// Length of each of the two phases of the migration, in seconds (the whole migration lasts
    /// twice this); default [`DEFAULT_INTERVAL_SECS`].
    #[serde(default = "default_interval")]
    pub interval: i64,
}

/// Where the migration stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before `start`: everything to `from`.
    Before,
    /// `[start, start + interval)`: deletes to both, everything else to `from`.
    DeletesToBothReadsFrom,
    /// `[start + interval, start + 2 * interval)`: deletes to both, everything else to `to`.
    DeletesToBothReadsTo,
    /// From `start + 2 * interval` on: everything to `to`.
    After,
}

/// The policy.
#[derive(Debug)]
pub struct Migrate {
    from: Child,
    to: Child,
    /// `[from, to]`, the fan-out of deletes during the migration.
    both: [u32; 2],
    /// `start`, `start + interval` and `start + 2 * interval`, in milliseconds since the epoch.
    bounds_ms: [i64; 3],
}

impl Migrate {
    /// The phase at `now_ms` (milliseconds since the epoch). Phases start on whole seconds, so
    /// this is the phase at `floor(now_ms / 1000)` seconds, as mcrouter compares its `time_t`.
    pub fn phase(&self, now_ms: u64) -> Phase {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let [start, switch, end] = self.bounds_ms;
        if now < start {
            Phase::Before
        } else if now < switch {
            Phase::DeletesToBothReadsFrom
        } else if now < end {
            Phase::DeletesToBothReadsTo
        } else {
            Phase::After
        }
    }
}

/// A delete, in mcrouter's sense (`DeleteLike`): `delete` and the meta delete `md`.
pub const fn is_delete(op: Op) -> bool {
    matches!(op, Op::Delete | Op::MetaDelete)
}

impl Policy for Migrate {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let from = ctx.resolve(&config.from, "from names")?;
        let to = ctx.resolve(&config.to, "to names")?;
        if from == to {
            return Err(format!(
                "from and to are the same child {:?}: nothing to migrate",
                config.from
            ));
        }
        if config.interval <= 0 {
            return Err(format!(
                "interval is {} seconds; it must be positive (default {DEFAULT_INTERVAL_SECS})",
                config.interval
            ));
        }
        let at = |halves: i64| {
            config
                .interval
                .checked_mul(halves)
                .and_then(|offset| config.start.checked_add(offset))
                .and_then(|secs| secs.checked_mul(MS_PER_SEC))
                .ok_or_else(|| {
                    format!(
                        "start {} + 2 * interval {} is out of range",
                        config.start, config.interval
                    )
                })
        };
        Ok(Self {
            from,
            to,
            both: [from.0, to.0],
            bounds_ms: [at(0)?, at(1)?, at(2)?],
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let phase = self.phase(host::now_ms());
        match phase {
            Phase::Before => Plan::Forward(self.from),
            Phase::After => Plan::Forward(self.to),
            _ if is_delete(request.op()) => Plan::FanOut {
                children: Children::List(&self.both),
                wait: Wait::All,
            },
            Phase::DeletesToBothReadsFrom => Plan::Forward(self.from),
            Phase::DeletesToBothReadsTo => Plan::Forward(self.to),
        }
    }
}

switchyard_sdk::export_policy!(Migrate);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    /// 2026-01-01T00:00:00Z.
    const START: u64 = 1_767_225_600;
    const CHILDREN: &[(&str, u32)] = &[("other", 1), ("old", 1), ("new", 1)];
    const CONFIG: &str = r#"
        from = "old"
        to = "new"
        start = 1767225600
        interval = 600
    "#;
    const FROM: Decision = Decision::Forward(1);
    const TO: Decision = Decision::Forward(2);

    fn both() -> Decision {
        Decision::FanOut {
            children: vec![1, 2],
            wait: Wait::All,
        }
    }

    fn migrate() -> Harness<Migrate> {
        Harness::new(CONFIG, CHILDREN).expect("valid config")
    }

    fn at(h: &mut Harness<Migrate>, secs: u64, op: Op) -> Decision {
        h.set_now_ms(secs * 1000);
        h.route(&Request::new(op, b"key"))
    }

    const NOT_DELETES: [Op; 9] = [
        Op::Get,
        Op::Gets,
        Op::Set,
        Op::Add,
        Op::Incr,
        Op::Touch,
        Op::MetaGet,
        Op::MetaSet,
        Op::Other(30),
    ];

    #[test]
    fn before_start_everything_goes_to_from() {
        let mut h = migrate();
        for secs in [0, START - 3600, START - 1] {
            for op in NOT_DELETES.into_iter().chain([Op::Delete, Op::MetaDelete]) {
                assert_eq!(at(&mut h, secs, op), FROM, "{op:?} at {secs}");
            }
        }
    }

    #[test]
    fn first_interval_deletes_to_both_rest_to_from() {
        let mut h = migrate();
        for secs in [START, START + 1, START + 599] {
            for op in NOT_DELETES {
                assert_eq!(at(&mut h, secs, op), FROM, "{op:?} at {secs}");
            }
            assert_eq!(at(&mut h, secs, Op::Delete), both());
            assert_eq!(at(&mut h, secs, Op::MetaDelete), both());
        }
    }

    #[test]
    fn second_interval_deletes_to_both_rest_to_to() {
        let mut h = migrate();
        for secs in [START + 600, START + 601, START + 1199] {
            for op in NOT_DELETES {
                assert_eq!(at(&mut h, secs, op), TO, "{op:?} at {secs}");
            }
            assert_eq!(at(&mut h, secs, Op::Delete), both());
            assert_eq!(at(&mut h, secs, Op::MetaDelete), both());
        }
    }

    #[test]
    fn after_everything_goes_to_to() {
        let mut h = migrate();
        for secs in [START + 1200, START + 86_400 * 365] {
            for op in NOT_DELETES.into_iter().chain([Op::Delete, Op::MetaDelete]) {
                assert_eq!(at(&mut h, secs, op), TO, "{op:?} at {secs}");
            }
        }
    }

    #[test]
    fn boundaries_are_whole_seconds() {
        let mut h = migrate();
        let start_ms = START * 1000;
        for (now_ms, phase) in [
            (start_ms - 1, Phase::Before),
            (start_ms, Phase::DeletesToBothReadsFrom),
            (start_ms + 599_999, Phase::DeletesToBothReadsFrom),
            (start_ms + 600_000, Phase::DeletesToBothReadsTo),
            (start_ms + 1_199_999, Phase::DeletesToBothReadsTo),
            (start_ms + 1_200_000, Phase::After),
            (u64::MAX, Phase::After),
        ] {
            assert_eq!(h.policy().phase(now_ms), phase, "{now_ms}");
        }
        h.set_now_ms(start_ms + 599_999);
        assert_eq!(h.route(&Request::new(Op::Get, b"k")), FROM);
        h.set_now_ms(start_ms + 600_000);
        assert_eq!(h.route(&Request::new(Op::Get, b"k")), TO);
    }

    #[test]
    fn default_interval_is_an_hour() {
        let config = r#"
            from = "old"
            to = "new"
            start = 1767225600
        "#;
        let h = Harness::<Migrate>::new(config, CHILDREN).expect("valid config");
        assert_eq!(
            h.policy().phase((START + 3599) * 1000),
            Phase::DeletesToBothReadsFrom
        );
        assert_eq!(
            h.policy().phase((START + 3600) * 1000),
            Phase::DeletesToBothReadsTo
        );
        assert_eq!(h.policy().phase((START + 7200) * 1000), Phase::After);
    }

    #[test]
    fn from_and_to_in_any_order() {
        let config = r#"
            from = "new"
            to = "other"
            start = 0
            interval = 10
        "#;
        let mut h = Harness::<Migrate>::new(config, CHILDREN).expect("valid config");
        assert_eq!(
            at(&mut h, 5, Op::Delete),
            Decision::FanOut {
                children: vec![2, 0],
                wait: Wait::All
            }
        );
        assert_eq!(at(&mut h, 5, Op::Get), Decision::Forward(2));
        assert_eq!(at(&mut h, 15, Op::Get), Decision::Forward(0));
    }

    #[test]
    fn config_errors() {
        let with = |extra: &str| format!("from = \"old\"\nto = \"new\"\n{extra}");
        let err = Harness::<Migrate>::new(&with(""), CHILDREN).expect_err("no start");
        assert!(err.contains("missing field `start`"), "{err}");
        let err =
            Harness::<Migrate>::new("to = \"new\"\nstart = 1", CHILDREN).expect_err("no from");
        assert!(err.contains("missing field `from`"), "{err}");
        let err = Harness::<Migrate>::new(&with("start = 1\ninterval = 0"), CHILDREN)
            .expect_err("zero interval");
        assert!(err.contains("interval is 0 seconds"), "{err}");
        let err = Harness::<Migrate>::new(&with("start = 1\ninterval = -5"), CHILDREN)
            .expect_err("negative interval");
        assert!(err.contains("must be positive"), "{err}");
        let err = Harness::<Migrate>::new(
            &with("start = 9223372036854775000\ninterval = 3600"),
            CHILDREN,
        )
        .expect_err("overflow");
        assert!(err.contains("out of range"), "{err}");
        let err = Harness::<Migrate>::new("from = \"old\"\nto = \"gone\"\nstart = 1", CHILDREN)
            .expect_err("unknown child");
        assert_eq!(
            err,
            r#"to names unknown child "gone" (children: "other", "old", "new")"#
        );
        let err = Harness::<Migrate>::new("from = \"old\"\nto = \"old\"\nstart = 1", CHILDREN)
            .expect_err("same");
        assert!(err.contains("the same child \"old\""), "{err}");
        let err = Harness::<Migrate>::new(&with("start = 1\nend = 2"), CHILDREN)
            .expect_err("unknown key");
        assert!(err.contains("unknown field `end`"), "{err}");
        let err = Harness::<Migrate>::new(&with("start = \"2026-01-01\""), CHILDREN)
            .expect_err("date string");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
