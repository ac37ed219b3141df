//! One policy behind the replication plugins (`all-sync`, `all-fastest`, `all-majority`,
//! `all-async`): every request goes to every child; only the wait policy differs.
//!
//! ```
//! use switchyard_sdk::replicate::{Fastest, Replicate};
//! pub type AllFastest = Replicate<Fastest>;
//! switchyard_sdk::export_policy!(AllFastest);
//! ```

use std::marker::PhantomData;

use crate::plan::{Children, MAX_FAN_OUT, Plan, Wait};
use crate::policy::{InitContext, NoConfig, Policy};
use crate::request::Request;

/// Which reply a replicating policy gives the client.
pub trait WaitPolicy: 'static {
    /// The fan-out's wait policy.
    const WAIT: Wait;
    /// The plugin's name, for init errors.
    const NAME: &'static str;
}

/// Wait for every child; the worst reply (mcrouter's AllSyncRoute).
#[derive(Debug)]
pub enum Sync {}
/// The first reply that is not an error (mcrouter's AllFastestRoute).
#[derive(Debug)]
pub enum Fastest {}
/// The first reply more than half of the children agree on (mcrouter's AllMajorityRoute).
#[derive(Debug)]
pub enum Majority {}
/// Answer at once with the default reply; the children still get the request (mcrouter's
/// AllAsyncRoute).
#[derive(Debug)]
pub enum Async {}

impl WaitPolicy for Sync {
    const WAIT: Wait = Wait::All;
    const NAME: &'static str = "all-sync";
}
impl WaitPolicy for Fastest {
    const WAIT: Wait = Wait::FirstGood;
    const NAME: &'static str = "all-fastest";
}
impl WaitPolicy for Majority {
    const WAIT: Wait = Wait::Majority;
    const NAME: &'static str = "all-majority";
}
impl WaitPolicy for Async {
    const WAIT: Wait = Wait::None;
    const NAME: &'static str = "all-async";
}

/// Sends every request to every child and answers by `W`.
#[derive(Debug)]
pub struct Replicate<W>(PhantomData<W>);

impl<W: WaitPolicy> Policy for Replicate<W> {
    type Config = NoConfig;

    fn init(_: NoConfig, ctx: &InitContext) -> Result<Self, String> {
        match ctx.child_count() as usize {
            0 => Err(format!("{} needs at least one child", W::NAME)),
            n if n > MAX_FAN_OUT => Err(format!(
                "{} has {n} children; one fan-out reaches at most {MAX_FAN_OUT}",
                W::NAME
            )),
            _ => Ok(Replicate(PhantomData)),
        }
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        Plan::FanOut {
            children: Children::All,
            wait: W::WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Op;
    use crate::testing::{Decision, Harness};

    #[test]
    fn every_request_goes_to_every_child_with_the_policy_wait() {
        fn check<W: WaitPolicy>() {
            let mut h =
                Harness::<Replicate<W>>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
            let expected = Decision::FanOut {
                children: vec![0, 1, 2],
                wait: W::WAIT,
            };
            for op in [
                Op::Get,
                Op::Set,
                Op::Delete,
                Op::MetaArithmetic,
                Op::Other(40),
            ] {
                assert_eq!(
                    h.route(&Request::new(op, b"k")),
                    expected,
                    "{} {op:?}",
                    W::NAME
                );
            }
            let err = Harness::<Replicate<W>>::new("", &[]).expect_err("no children");
            assert!(err.contains(W::NAME), "{err}");
        }
        check::<Sync>();
        check::<Fastest>();
        check::<Majority>();
        check::<Async>();
    }
}
