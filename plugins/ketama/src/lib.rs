//! Ketama consistent hashing, as libketama and twemproxy (`distribution: ketama`) compute it.
//!
//! Each child gets points on a 32-bit circle in proportion to its weight (160 per child when
//! weights are equal); a key goes to the child owning the first point at or after the key's
//! hash, wrapping to the first point. The continuum is the SDK's `select::Ketama`; this plugin
//! adds the config (the key's hash, `eject`). See `README.md`.

use serde::Deserialize;
use switchyard_sdk::select;
use switchyard_sdk::{HashAlgorithm, InitContext, Plan, Policy, Request, host};

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How keys are hashed onto the circle (the points themselves always use MD5, as in
    /// libketama and twemproxy). Default `"md5"`.
    #[serde(default)]
    pub hash: HashAlgorithm,
    /// When the server a key hashes to is marked down by the host, send the key to the next
    /// healthy server clockwise on the circle instead of failing it. Off by default: keys
    /// never move silently (the down server's requests fail fast and a failover policy above
    /// decides). Only the down server's keys move, and they move back when it returns.
    #[serde(default)]
    pub eject: bool,
}

/// The policy: the SDK's continuum, the key's hash algorithm, and whether to walk past a down
/// server.
#[derive(Debug)]
pub struct Ketama {
    hash: HashAlgorithm,
    eject: bool,
    ring: select::Ketama,
}

impl Ketama {
    /// The continuum (`switchyard_sdk::select::Ketama`).
    pub fn ring(&self) -> &select::Ketama {
        &self.ring
    }
}

impl Policy for Ketama {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let children = ctx.children().iter();
        Ok(Self {
            hash: config.hash,
            eject: config.eject,
            ring: select::Ketama::new(children.map(|child| (child.name(), child.weight())))?,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let hash = host::hash(self.hash, request.key());
        if self.eject {
            Plan::Forward(self.ring.lookup_healthy(hash, host::child_healthy))
        } else {
            Plan::Forward(self.ring.lookup(hash))
        }
    }
}

switchyard_sdk::export_policy!(Ketama);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::{Decision, Harness};
    use switchyard_sdk::{Op, Request};

    use super::*;

    const THREE: &[(&str, u32)] = &[("a:11211", 1), ("b:11211", 1), ("c:11211", 1)];

    #[test]
    fn continuum_size() {
        let harness = Harness::<Ketama>::new("", THREE).expect("valid config");
        assert_eq!(harness.policy().ring().points(), 3 * 160);
    }

    #[test]
    fn every_op_routes_by_key() {
        let mut harness = Harness::<Ketama>::new("", THREE).expect("valid config");
        let expected = harness.route(&Request::new(Op::Get, b"some key"));
        for op in [Op::Set, Op::Delete, Op::Incr, Op::Touch, Op::Other(40)] {
            assert_eq!(harness.route(&Request::new(op, b"some key")), expected);
        }
        assert!(matches!(expected, Decision::Forward(0..=2)));
    }

    #[test]
    fn spreads_keys() {
        let mut harness = Harness::<Ketama>::new("", THREE).expect("valid config");
        let mut counts = [0u32; 3];
        for child in route_all(&mut harness, 3000) {
            counts[child as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (700..1300).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn config() {
        let one = &[("only", 1)];
        assert!(Harness::<Ketama>::new("", one).is_ok());
        assert!(Harness::<Ketama>::new("hash = \"fnv1a_64\"", one).is_ok());
        let err = Harness::<Ketama>::new("hash = \"murmur\"", one).expect_err("bad hash");
        assert!(err.contains("murmur"), "{err}");
        let err = Harness::<Ketama>::new("points = 100", one).expect_err("unknown key");
        assert!(err.contains("unknown field `points`"), "{err}");
        let err = Harness::<Ketama>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err = Harness::<Ketama>::new("", &[("a", 1), ("b", 0)]).expect_err("zero weight");
        assert!(err.contains("\"b\" has weight 0"), "{err}");
    }

    fn route_all(harness: &mut Harness<Ketama>, n: usize) -> Vec<u32> {
        harness.forwarded_children((0..n).map(|i| format!("key:{i}")))
    }

    #[test]
    fn a_down_server_keeps_its_keys_unless_eject_is_on() {
        let mut plain = Harness::<Ketama>::new("", THREE).expect("valid config");
        let before = route_all(&mut plain, 1000);
        plain.set_healthy(1, false);
        assert_eq!(route_all(&mut plain, 1000), before, "no silent reshuffle");

        let mut ejecting = Harness::<Ketama>::new("eject = true", THREE).expect("valid config");
        assert_eq!(route_all(&mut ejecting, 1000), before, "healthy: same ring");
        ejecting.set_healthy(1, false);
        let during = route_all(&mut ejecting, 1000);
        for (b, d) in before.iter().zip(&during) {
            if *b == 1 {
                assert_ne!(*d, 1, "a down server's key moves");
            } else {
                assert_eq!(b, d, "only the down server's keys move");
            }
        }
        ejecting.set_healthy(1, true);
        assert_eq!(route_all(&mut ejecting, 1000), before, "and move back");

        for child in 0..3 {
            ejecting.set_healthy(child, false);
        }
        assert_eq!(
            route_all(&mut ejecting, 1000),
            before,
            "none healthy: first choice"
        );
    }
}
