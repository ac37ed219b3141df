//! A call policy: each request goes to the first child; a miss or an error there is retried on
//! the second (`on_reply` sees the first reply's status and decides; children past the second
//! are not used). `config = { retry_on = ["miss", "server_error"] }`.

use serde::Deserialize;
use switchyard_sdk::{Child, InitContext, Plan, Policy, ReplyStatus, Request};

/// The node's `config` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The statuses of the first child's reply that send the request on to the second.
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<ReplyStatus>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            retry_on: default_retry_on(),
        }
    }
}

fn default_retry_on() -> Vec<ReplyStatus> {
    vec![ReplyStatus::Miss, ReplyStatus::ServerError]
}

/// The policy.
#[derive(Debug)]
pub struct Retry {
    retry_on: Vec<ReplyStatus>,
}

impl Policy for Retry {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() < 2 {
            return Err("retry needs two children: the first choice and the second".into());
        }
        Ok(Retry {
            retry_on: config.retry_on,
        })
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        Plan::Call {
            child: Child(0),
            cookie: 0,
        }
    }

    fn on_reply<'a>(
        &'a mut self,
        _cookie: u32,
        status: ReplyStatus,
        _request: &Request<'_>,
    ) -> Plan<'a> {
        if self.retry_on.contains(&status) {
            Plan::Forward(Child(1))
        } else {
            Plan::Pass
        }
    }
}

switchyard_sdk::export_policy!(Retry);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    #[test]
    fn a_miss_is_retried_on_the_second_child_and_a_hit_passes() {
        let mut h = Harness::<Retry>::new("", &[("first", 1), ("second", 1)]).expect("config");
        let get = Request::new(Op::Get, b"k");
        assert!(matches!(h.route(&get), Decision::Call { child: 0, .. }));
        assert_eq!(h.on_reply(0, ReplyStatus::Miss, &get), Decision::Forward(1));
        assert_eq!(h.on_reply(0, ReplyStatus::Hit, &get), Decision::Pass);
        assert!(Harness::<Retry>::new("", &[("only", 1)]).is_err());
    }
}
