//! Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014) over the node's children, of a 64-bit hash of the key. See `README.md`.
//!
//! No table is built: `route` hashes the key to 64 bits and runs the paper's loop, about
//! `ln(children)` iterations (the SDK's `select::Jump`).

use serde::Deserialize;
use switchyard_sdk::key::HashTag;
use switchyard_sdk::select::{self, key_hash64};
use switchyard_sdk::{Child, HashAlgorithm, InitContext, Level, Plan, Policy, Request, host};

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How the key is hashed to the 64 bits jump needs; default `"md5"`. See
    /// `switchyard_sdk::select::key_hash64`.
    #[serde(default)]
    pub hash: HashAlgorithm,
    /// Hash only the part of the key inside this tag (twemproxy's `hash_tag`, e.g. `"{}"`).
    #[serde(default)]
    pub hash_tag: Option<HashTag>,
}

/// The policy.
#[derive(Debug)]
pub struct Jump {
    hash: HashAlgorithm,
    hash_tag: Option<HashTag>,
    jump: select::Jump,
}

impl Jump {
    /// The child of `key` (the whole key: the hash tag, if any, applies before).
    pub fn lookup(&self, key: &[u8]) -> Child {
        self.jump.lookup(key_hash64(self.hash, key))
    }
}

impl Policy for Jump {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let jump = select::Jump::new(ctx.child_count())?;
        if ctx.children().iter().any(|child| child.weight() != 1) {
            host::log(
                Level::Warn,
                "jump ignores child weights: every child gets an equal share of keys",
            );
        }
        Ok(Self {
            hash: config.hash,
            hash_tag: config.hash_tag,
            jump,
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let key = request.key();
        let hashed = self.hash_tag.map_or(key, |tag| tag.apply(key));
        Plan::Forward(self.lookup(hashed))
    }
}

switchyard_sdk::export_policy!(Jump);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::Harness;
    use switchyard_sdk::{Op, Request};

    use super::*;

    fn harness(config: &str, n: usize) -> Harness<Jump> {
        Harness::with_weights(config, &vec![1; n]).expect("valid config")
    }

    fn route(h: &mut Harness<Jump>, key: &[u8]) -> u32 {
        h.forwarded(&Request::new(Op::Get, key))
    }

    /// Where keys go, from Python's `hashlib` and a transcription of the paper's loop (which
    /// reproduces the reference tables in the SDK's `select::jump` tests).
    #[test]
    fn known_placements() {
        // (key, child among 3, among 5, among 100) with the default md5.
        let md5: [(&[u8], u32, u32, u32); 6] = [
            (b"a", 2, 2, 53),
            (b"foo", 0, 0, 55),
            (b"user:1234", 0, 4, 91),
            (b"key:0", 2, 4, 53),
            (b"key:1", 0, 0, 28),
            (b"session:abcdef", 0, 4, 68),
        ];
        let (mut three, mut five, mut hundred) = (harness("", 3), harness("", 5), harness("", 100));
        for (key, in3, in5, in100) in md5 {
            let name = String::from_utf8_lossy(key);
            assert_eq!(route(&mut three, key), in3, "{name} among 3");
            assert_eq!(route(&mut five, key), in5, "{name} among 5");
            assert_eq!(route(&mut hundred, key), in100, "{name} among 100");
        }
        // fnv1a_64 uses all 64 bits: (key, among 10).
        let mut fnv = harness(r#"hash = "fnv1a_64""#, 10);
        for (key, in10) in [(&b"user:1234"[..], 9), (b"key:0", 8), (b"key:1", 3)] {
            assert_eq!(route(&mut fnv, key), in10);
        }
    }

    #[test]
    fn every_op_routes_by_key() {
        let mut h = harness("", 7);
        let expected = h.route(&Request::new(Op::Get, b"some key"));
        for op in [
            Op::Set,
            Op::Delete,
            Op::Incr,
            Op::Touch,
            Op::MetaGet,
            Op::Other(40),
        ] {
            assert_eq!(h.route(&Request::new(op, b"some key")), expected, "{op:?}");
        }
    }

    #[test]
    fn spreads_keys_evenly() {
        let mut h = harness("", 4);
        let mut counts = [0u32; 4];
        for child in h.forwarded_children((0..4000).map(|i| format!("key:{i}"))) {
            counts[child as usize] += 1;
        }
        assert!(
            counts.iter().all(|&n| (850..1150).contains(&n)),
            "{counts:?}"
        );
    }

    /// The property jump is for: adding a child moves only keys to the new child.
    #[test]
    fn growing_moves_keys_only_to_the_new_child() {
        let mut before = harness("", 9);
        let mut after = harness("", 10);
        let mut moved = 0;
        for i in 0..5000 {
            let key = format!("key:{i}");
            let (old, new) = (
                route(&mut before, key.as_bytes()),
                route(&mut after, key.as_bytes()),
            );
            if old != new {
                assert_eq!(new, 9, "{key} moved from {old} to {new}");
                moved += 1;
            }
        }
        // About a tenth of the keys.
        assert!((350..650).contains(&moved), "{moved}");
    }

    #[test]
    fn hash_tag_pins_related_keys() {
        let mut h = harness(r#"hash_tag = "{}""#, 50);
        let expected = route(&mut h, b"42");
        for key in [
            &b"user:{42}:name"[..],
            b"{42}",
            b"avatar:{42}",
            b"x{42}y{7}",
        ] {
            assert_eq!(route(&mut h, key), expected);
        }
        // Without a complete tag the whole key is hashed.
        let mut plain = harness("", 50);
        for key in [&b"user:{}:name"[..], b"user:{42"] {
            assert_eq!(route(&mut h, key), route(&mut plain, key));
        }
    }

    #[test]
    fn one_child_takes_everything() {
        let mut h = harness("", 1);
        for i in 0..100 {
            assert_eq!(route(&mut h, format!("k{i}").as_bytes()), 0);
        }
    }

    #[test]
    fn ignores_weights_with_a_warning() {
        let h = Harness::<Jump>::new("", &[("a", 1), ("b", 3)]).expect("valid config");
        assert_eq!(h.logs().len(), 1);
        assert_eq!(h.logs()[0].0, Level::Warn);
        let quiet = Harness::<Jump>::new("", &[("a", 1), ("b", 1)]).expect("valid config");
        assert!(quiet.logs().is_empty());
    }

    #[test]
    fn config_errors() {
        let one = &[("only", 1)];
        assert!(Harness::<Jump>::new(r#"hash = "crc32""#, one).is_ok());
        let err = Harness::<Jump>::new(r#"hash = "murmur""#, one).expect_err("bad hash");
        assert!(err.contains("murmur"), "{err}");
        let err = Harness::<Jump>::new(r#"hash_tag = "{""#, one).expect_err("bad tag");
        assert!(err.contains("not two ASCII characters"), "{err}");
        let err = Harness::<Jump>::new("seed = 1", one).expect_err("unknown key");
        assert!(err.contains("unknown field `seed`"), "{err}");
        let err = Harness::<Jump>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
    }
}
