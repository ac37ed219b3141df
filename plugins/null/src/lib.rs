//! Answers every request as if its key did not exist, without contacting any child: mcrouter's
//! `NullRoute`, which "returns the default reply for each request right away". See `README.md`.
//!
//! mcrouter's default reply (`createReply(DefaultReply, ...)` in `mcrouter/lib/Reply.h`) is
//! `NOT_STORED` for update-like requests (set, add, replace, append, prepend, cas) and
//! `NOT_FOUND` for every other: a miss for retrievals, `NOT_FOUND` for delete, incr, decr and
//! touch. That is exactly the ABI's `miss` reply, so this plugin answers [`Reply::Miss`].

use switchyard_sdk::{InitContext, NoConfig, Plan, Policy, Reply, Request};

/// The policy. It has no state.
#[derive(Debug)]
pub struct Null;

impl Policy for Null {
    type Config = NoConfig;

    fn init(_: NoConfig, _ctx: &InitContext) -> Result<Self, String> {
        Ok(Null)
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        Plan::Reply(Reply::Miss)
    }
}

switchyard_sdk::export_policy!(Null);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    #[test]
    fn every_operation_misses() {
        let mut h = Harness::<Null>::new("", &[]).expect("valid config");
        for code in 0..25 {
            let op = Op::from_code(code);
            let request = Request::new(op, b"key").with_value_len(5).with_exptime(60);
            assert_eq!(h.route(&request), Decision::reply(Reply::Miss), "{op:?}");
        }
    }

    #[test]
    fn children_are_never_contacted() {
        let mut h = Harness::<Null>::new("", &[("a", 1), ("b", 1)]).expect("valid config");
        assert_eq!(
            h.route(&Request::new(Op::Set, b"k")),
            Decision::reply(Reply::Miss)
        );
    }

    #[test]
    fn takes_no_config() {
        let err = Harness::<Null>::new(r#"reply = "miss""#, &[]).expect_err("no config");
        assert!(err.contains("unknown field `reply`"), "{err}");
    }
}
