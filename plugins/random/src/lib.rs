//! Sends each request to a child chosen at random with the host's generator: uniformly, or in
//! proportion to the children's weights. See `README.md`.

use serde::Deserialize;
use switchyard_sdk::select::Weighted;
use switchyard_sdk::{InitContext, Plan, Policy, Request, host};

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Choose children in proportion to their weights (a server's `:weight`; 1 for pools and
    /// routes) instead of uniformly. Off by default.
    #[serde(default)]
    pub weighted: bool,
}

/// The policy.
#[derive(Debug)]
pub struct Random {
    /// The children's weights (all 1 when not weighted).
    weighted: Weighted,
}

impl Policy for Random {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() == 0 {
            return Err("random needs at least one child".into());
        }
        if !config.weighted {
            return Ok(Self {
                weighted: Weighted::new(ctx.children().iter().map(|_| 1)),
            });
        }
        if let Some(child) = ctx.children().iter().find(|child| child.weight() == 0) {
            return Err(format!(
                "child {:?} has weight 0 (with weighted = true it would never be chosen)",
                child.name()
            ));
        }
        Ok(Self {
            weighted: Weighted::new(ctx.children().iter().map(|child| child.weight())),
        })
    }

    fn route<'a>(&'a mut self, _request: &Request<'_>) -> Plan<'a> {
        Plan::Forward(self.weighted.pick(host::random()))
    }
}

switchyard_sdk::export_policy!(Random);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const WEIGHTED: &[(&str, u32)] = &[("a", 1), ("b", 3), ("c", 6)];

    fn counts(h: &mut Harness<Random>, n: usize, requests: u32) -> Vec<u32> {
        let mut counts = vec![0; n];
        for i in 0..requests {
            let child = h.forwarded(&Request::new(Op::Set, format!("k{i}").as_bytes()));
            counts[child as usize] += 1;
        }
        counts
    }

    /// The fake host's generator (splitmix64), to predict choices.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn uses_the_host_generator() {
        let mut h = Harness::<Random>::new("", &[("a", 1), ("b", 1), ("c", 1)]).expect("config");
        h.seed_random(7);
        let mut state = 7;
        for _ in 0..50 {
            let expected = switchyard_sdk::select::below(splitmix(&mut state), 3) as u32;
            assert_eq!(
                h.route(&Request::new(Op::Get, b"k")),
                Decision::Forward(expected)
            );
        }
    }

    #[test]
    fn uniform_by_default() {
        let mut h = Harness::<Random>::new("", WEIGHTED).expect("valid config");
        h.seed_random(1);
        let counts = counts(&mut h, 3, 30_000);
        assert!(
            counts.iter().all(|&n| (9_500..10_500).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn weighted_by_child_weights() {
        let mut h = Harness::<Random>::new("weighted = true", WEIGHTED).expect("valid config");
        h.seed_random(2);
        let counts = counts(&mut h, 3, 30_000);
        // Expected 3,000, 9,000 and 18,000.
        assert!((2_700..3_300).contains(&counts[0]), "{counts:?}");
        assert!((8_600..9_400).contains(&counts[1]), "{counts:?}");
        assert!((17_500..18_500).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn one_child() {
        let mut h = Harness::<Random>::new("", &[("only", 5)]).expect("valid config");
        for _ in 0..20 {
            assert_eq!(h.route(&Request::new(Op::Get, b"k")), Decision::Forward(0));
        }
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Random>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err =
            Harness::<Random>::new("weighted = true", &[("a", 1), ("b", 0)]).expect_err("weight 0");
        assert!(err.contains("\"b\" has weight 0"), "{err}");
        assert!(Harness::<Random>::new("", &[("a", 1), ("b", 0)]).is_ok());
        let err = Harness::<Random>::new("seed = 1", &[("a", 1)]).expect_err("unknown key");
        assert!(err.contains("unknown field `seed`"), "{err}");
    }
}
