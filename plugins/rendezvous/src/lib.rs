//! Weighted rendezvous hashing (highest random weight): every child scores every key, and the
//! key goes to the child with the highest score. See `README.md`.
//!
//! The scheme is mcrouter's `WeightedRendezvousHashFunc` (`mcrouter/lib/
//! WeightedRendezvousHashFunc.cpp`) with MD5 in place of MurmurHash64A: a 64-bit hash per child
//! name (computed once, in `init`), a 64-bit hash of the key (one per request), the two mixed
//! by folly's `hash_128_to_64` into a uniform 64-bit number `x`, read as `u` in `(0, 1)`, and
//! the score `weight / -ln(u)` (the logarithmic method: child `i` wins a key with probability
//! `weight_i / total weight`).

use serde::Deserialize;
use switchyard_sdk::key::HashTag;
use switchyard_sdk::select;
use switchyard_sdk::{InitContext, Plan, Policy, Request, host};

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hash only the part of the key inside this tag (twemproxy's `hash_tag`, e.g. `"{}"`).
    #[serde(default)]
    pub hash_tag: Option<HashTag>,
    /// When the child a key scores highest on is marked down by the host, send the key to the
    /// highest-scoring healthy child instead of failing it. Off by default, as in `ketama`: keys
    /// never move silently.
    #[serde(default)]
    pub eject: bool,
}

/// The policy.
#[derive(Debug)]
pub struct Rendezvous {
    hash_tag: Option<HashTag>,
    eject: bool,
    rendezvous: select::Rendezvous,
}

impl Rendezvous {
    /// The scores (`switchyard_sdk::select::Rendezvous`).
    pub fn scores(&self) -> &select::Rendezvous {
        &self.rendezvous
    }
}

impl Policy for Rendezvous {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() == 0 {
            return Err("rendezvous needs at least one child".into());
        }
        let children = ctx.children();
        if let Some(child) = children.iter().find(|child| child.weight() == 0) {
            return Err(format!("child {:?} has weight 0", child.name()));
        }
        for (idx, child) in children.iter().enumerate() {
            if children[..idx].iter().any(|c| c.name() == child.name()) {
                return Err(format!(
                    "two children are named {:?}: rendezvous hashes child names, so they would \
                     score alike and the second would never be chosen",
                    child.name()
                ));
            }
        }
        Ok(Self {
            hash_tag: config.hash_tag,
            eject: config.eject,
            rendezvous: select::Rendezvous::new(children.iter().map(|c| (c.name(), c.weight()))),
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let key = request.key();
        let hashed = self.hash_tag.map_or(key, |tag| tag.apply(key));
        let child = if self.eject {
            self.rendezvous.lookup(hashed, host::child_healthy)
        } else {
            self.rendezvous.lookup(hashed, |_| true)
        };
        Plan::Forward(child)
    }
}

switchyard_sdk::export_policy!(Rendezvous);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::Harness;
    use switchyard_sdk::{Op, Request};

    use super::*;

    const ABC: &[(&str, u32)] = &[("a", 1), ("b", 1), ("c", 1)];
    const WEIGHTED: &[(&str, u32)] = &[("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3:11212", 5)];
    const KEYS: [&[u8]; 9] = [
        b"foo",
        b"bar",
        b"user:1234",
        b"session:abcdef",
        b"key:0",
        b"key:1",
        b"key:2",
        b"a",
        b"",
    ];

    fn route(h: &mut Harness<Rendezvous>, key: &[u8]) -> u32 {
        h.forwarded(&Request::new(Op::Get, key))
    }

    fn route_all(h: &mut Harness<Rendezvous>, n: usize) -> Vec<u32> {
        h.forwarded_children((0..n).map(|i| format!("key:{i}")))
    }

    #[test]
    fn known_placements() {
        type Children<'c> = &'c [(&'c str, u32)];
        let cases: [(Children<'_>, [u32; 9]); 2] = [
            (ABC, [1, 2, 2, 1, 0, 2, 1, 1, 0]),
            (WEIGHTED, [2, 2, 1, 1, 2, 2, 2, 2, 1]),
        ];
        for (children, expected) in cases {
            let mut h = Harness::<Rendezvous>::new("", children).expect("valid config");
            let got = h.forwarded_children(KEYS);
            assert_eq!(got, expected, "{children:?}");
        }
    }

    #[test]
    fn spreads_keys_by_weight() {
        let mut h = Harness::<Rendezvous>::new("", WEIGHTED).expect("valid config");
        let mut counts = [0u32; 3];
        for child in route_all(&mut h, 8000) {
            counts[child as usize] += 1;
        }
        // Expected 1000, 2000, 5000.
        assert!((850..1150).contains(&counts[0]), "{counts:?}");
        assert!((1800..2200).contains(&counts[1]), "{counts:?}");
        assert!((4750..5250).contains(&counts[2]), "{counts:?}");
    }

    /// Placement depends on names, not positions: reordering moves nothing, removing a child
    /// moves only its keys, adding one moves keys only to it.
    #[test]
    fn minimal_disruption() {
        let four = [("a", 1), ("b", 1), ("c", 1), ("d", 1)];
        let mut h4 = Harness::<Rendezvous>::new("", &four).expect("valid config");
        let before: Vec<&str> = route_all(&mut h4, 2000)
            .into_iter()
            .map(|c| four[c as usize].0)
            .collect();

        let shuffled = [("d", 1), ("b", 1), ("a", 1), ("c", 1)];
        let mut hs = Harness::<Rendezvous>::new("", &shuffled).expect("valid config");
        let names: Vec<&str> = route_all(&mut hs, 2000)
            .into_iter()
            .map(|c| shuffled[c as usize].0)
            .collect();
        assert_eq!(names, before, "order does not matter");

        let three = [("a", 1), ("b", 1), ("d", 1)];
        let mut h3 = Harness::<Rendezvous>::new("", &three).expect("valid config");
        let after: Vec<&str> = route_all(&mut h3, 2000)
            .into_iter()
            .map(|c| three[c as usize].0)
            .collect();
        for (b, a) in before.iter().zip(&after) {
            if *b != "c" {
                assert_eq!(b, a, "only c's keys move");
            }
        }
        // And back: adding c moves keys only to c.
        for (a, b) in after.iter().zip(&before) {
            if a != b {
                assert_eq!(*b, "c");
            }
        }
    }

    #[test]
    fn a_down_child_keeps_its_keys_unless_eject_is_on() {
        let mut plain = Harness::<Rendezvous>::new("", ABC).expect("valid config");
        let before = route_all(&mut plain, 1000);
        plain.set_healthy(1, false);
        assert_eq!(route_all(&mut plain, 1000), before, "no silent move");

        let mut ejecting = Harness::<Rendezvous>::new("eject = true", ABC).expect("valid config");
        assert_eq!(
            route_all(&mut ejecting, 1000),
            before,
            "healthy: same choices"
        );
        ejecting.set_healthy(1, false);
        let rendezvous = select::Rendezvous::new(ABC.iter().copied());
        for (i, (b, d)) in before
            .iter()
            .zip(route_all(&mut ejecting, 1000))
            .enumerate()
        {
            if *b == 1 {
                // The key's second choice.
                let second = rendezvous.ranking(format!("key:{i}").as_bytes())[1];
                assert_eq!(d, second.0, "key:{i}");
            } else {
                assert_eq!(*b, d, "only the down child's keys move");
            }
        }
        ejecting.set_healthy(1, true);
        assert_eq!(route_all(&mut ejecting, 1000), before, "and move back");
        (0..3).for_each(|child| ejecting.set_healthy(child, false));
        assert_eq!(
            route_all(&mut ejecting, 1000),
            before,
            "none healthy: first choice"
        );
    }

    #[test]
    fn hash_tag_pins_related_keys() {
        let mut h = Harness::<Rendezvous>::new(r#"hash_tag = "{}""#, WEIGHTED).expect("config");
        // "user:1234" goes to 1 and "foo" to 2 (known_placements).
        assert_eq!(route(&mut h, b"name:{user:1234}"), 1);
        assert_eq!(route(&mut h, b"{user:1234}:avatar"), 1);
        assert_eq!(route(&mut h, b"foo"), 2);
        assert_eq!(route(&mut h, b"x{foo}"), 2);
    }

    #[test]
    fn every_op_routes_by_key() {
        let mut h = Harness::<Rendezvous>::new("", ABC).expect("valid config");
        let expected = h.route(&Request::new(Op::Get, b"some key"));
        for op in [
            Op::Set,
            Op::Delete,
            Op::Decr,
            Op::Touch,
            Op::MetaDelete,
            Op::Other(40),
        ] {
            assert_eq!(h.route(&Request::new(op, b"some key")), expected, "{op:?}");
        }
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Rendezvous>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err = Harness::<Rendezvous>::new("", &[("a", 1), ("b", 0)]).expect_err("weight 0");
        assert!(err.contains("\"b\" has weight 0"), "{err}");
        let err =
            Harness::<Rendezvous>::new("", &[("a", 1), ("b", 1), ("a", 2)]).expect_err("duplicate");
        assert!(err.contains("two children are named \"a\""), "{err}");
        let err = Harness::<Rendezvous>::new(r#"hash = "md5""#, ABC).expect_err("no hash");
        assert!(err.contains("unknown field `hash`"), "{err}");
        let err = Harness::<Rendezvous>::new("eject = 1", ABC).expect_err("type");
        assert!(err.starts_with("invalid config: "), "{err}");
    }
}
