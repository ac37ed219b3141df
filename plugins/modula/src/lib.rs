//! Modulo hashing as Cache::Memcached (the Perl client) computes it: a 15-bit hash of the key,
//! `(crc32(key) >> 16) & 0x7fff`, modulo the number of buckets, where a child of weight `w` fills
//! `w` consecutive buckets. See `README.md`.
//!
//! The bucket list is not built: `init` keeps the cumulative weights and `route` finds the
//! bucket's child by binary search, which gives the same child without a list as long as the
//! total weight.

use serde::Deserialize;
use switchyard_sdk::key::HashTag;
use switchyard_sdk::select::{self, modula_hash};
use switchyard_sdk::{InitContext, Plan, Policy, Request};

/// The `config` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Hash only the part of the key inside this tag (twemproxy's `hash_tag`, e.g. `"{}"`).
    #[serde(default)]
    pub hash_tag: Option<HashTag>,
}

/// The policy.
#[derive(Debug)]
pub struct Modula {
    hash_tag: Option<HashTag>,
    /// The buckets (`switchyard_sdk::select::Modula`).
    modula: select::Modula,
}

impl Policy for Modula {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        if ctx.child_count() == 0 {
            return Err("modula needs at least one child".into());
        }
        if let Some(child) = ctx.children().iter().find(|child| child.weight() == 0) {
            return Err(format!("child {:?} has weight 0", child.name()));
        }
        Ok(Self {
            hash_tag: config.hash_tag,
            modula: select::Modula::new(ctx.children().iter().map(|child| child.weight())),
        })
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let key = request.key();
        let hashed = self.hash_tag.map_or(key, |tag| tag.apply(key));
        Plan::Forward(self.modula.lookup(modula_hash(hashed)))
    }
}

switchyard_sdk::export_policy!(Modula);

#[cfg(test)]
mod tests {
    use switchyard_sdk::testing::Harness;
    use switchyard_sdk::{Op, Request};

    use super::*;

    /// `(weights, key, child)`: where Cache::Memcached 1.30 sends the key among servers of these
    /// weights, printed by `tests/cache-memcached-vectors.pl` (its `init_buckets` and `get_sock`
    /// transcribed into Perl, with zlib's CRC-32).
    const VECTORS: &[(&[u32], &[u8], u32)] = &[
        (&[1, 1, 1], b"foo", 1),
        (&[1, 1, 1], b"bar", 1),
        (&[1, 1, 1], b"user:1234", 2),
        (&[1, 1, 1], b"session:abcdef", 1),
        (&[1, 1, 1], b"key:0", 0),
        (&[1, 1, 1], b"key:1", 2),
        (&[1, 1, 1], b"key:2", 0),
        (&[1, 1, 1], b"123456789", 1),
        (&[1, 1, 1], b"a", 2),
        (&[1, 1, 1], b"", 0),
        (&[1, 1, 1], b"\xe9t\xe9", 1),
        (&[1, 2, 5], b"foo", 2),
        (&[1, 2, 5], b"bar", 2),
        (&[1, 2, 5], b"user:1234", 0),
        (&[1, 2, 5], b"session:abcdef", 2),
        (&[1, 2, 5], b"key:0", 0),
        (&[1, 2, 5], b"key:1", 2),
        (&[1, 2, 5], b"key:2", 2),
        (&[1, 2, 5], b"123456789", 2),
        (&[1, 2, 5], b"a", 2),
        (&[1, 2, 5], b"", 0),
        (&[1, 2, 5], b"\xe9t\xe9", 2),
        (&[3, 1], b"foo", 1),
        (&[3, 1], b"bar", 1),
        (&[3, 1], b"user:1234", 0),
        (&[3, 1], b"session:abcdef", 1),
        (&[3, 1], b"key:0", 0),
        (&[3, 1], b"key:1", 1),
        (&[3, 1], b"key:2", 0),
        (&[3, 1], b"123456789", 0),
        (&[3, 1], b"a", 1),
        (&[3, 1], b"", 0),
        (&[3, 1], b"\xe9t\xe9", 1),
        (&[1, 1, 1, 1, 1, 1, 1], b"foo", 2),
        (&[1, 1, 1, 1, 1, 1, 1], b"bar", 6),
        (&[1, 1, 1, 1, 1, 1, 1], b"user:1234", 4),
        (&[1, 1, 1, 1, 1, 1, 1], b"session:abcdef", 5),
        (&[1, 1, 1, 1, 1, 1, 1], b"key:0", 5),
        (&[1, 1, 1, 1, 1, 1, 1], b"key:1", 1),
        (&[1, 1, 1, 1, 1, 1, 1], b"key:2", 6),
        (&[1, 1, 1, 1, 1, 1, 1], b"123456789", 5),
        (&[1, 1, 1, 1, 1, 1, 1], b"a", 4),
        (&[1, 1, 1, 1, 1, 1, 1], b"", 0),
        (&[1, 1, 1, 1, 1, 1, 1], b"\xe9t\xe9", 1),
    ];

    fn harness(config: &str, weights: &[u32]) -> Harness<Modula> {
        Harness::with_weights(config, weights).expect("valid config")
    }

    fn route(h: &mut Harness<Modula>, key: &[u8]) -> u32 {
        h.forwarded(&Request::new(Op::Get, key))
    }

    #[test]
    fn matches_cache_memcached() {
        for &(weights, key, child) in VECTORS {
            let mut h = harness("", weights);
            assert_eq!(
                route(&mut h, key),
                child,
                "{:?} among {weights:?}",
                String::from_utf8_lossy(key)
            );
        }
    }

    #[test]
    fn spreads_keys_by_weight() {
        let mut h = harness("", &[1, 3]);
        let mut counts = [0u32; 2];
        for child in h.forwarded_children((0..4000).map(|i| format!("key:{i}"))) {
            counts[child as usize] += 1;
        }
        assert!((850..1150).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn every_op_routes_by_key() {
        let mut h = harness("", &[1, 1, 1, 1, 1]);
        let expected = h.route(&Request::new(Op::Get, b"some key"));
        for op in [
            Op::Set,
            Op::Delete,
            Op::Incr,
            Op::Touch,
            Op::MetaSet,
            Op::Other(40),
        ] {
            assert_eq!(h.route(&Request::new(op, b"some key")), expected, "{op:?}");
        }
    }

    #[test]
    fn hash_tag_pins_related_keys() {
        let mut h = harness(r#"hash_tag = "{}""#, &[1, 1, 1, 1, 1, 1, 1]);
        // "user:1234" goes to 4 and "key:1" to 1 among seven (VECTORS).
        assert_eq!(route(&mut h, b"name:{user:1234}"), 4);
        assert_eq!(route(&mut h, b"{user:1234}:avatar"), 4);
        assert_eq!(route(&mut h, b"x{key:1}y"), 1);
        // No complete tag: the whole key ("foo" goes to 2).
        assert_eq!(route(&mut h, b"foo"), 2);
    }

    #[test]
    fn config_errors() {
        let err = Harness::<Modula>::new("", &[]).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err = Harness::<Modula>::new("", &[("a", 1), ("b", 0)]).expect_err("weight 0");
        assert!(err.contains("\"b\" has weight 0"), "{err}");
        let err = Harness::<Modula>::new(r#"hash = "md5""#, &[("a", 1)]).expect_err("no hash");
        assert!(err.contains("unknown field `hash`"), "{err}");
        let err = Harness::<Modula>::new(r#"hash_tag = "<<>""#, &[("a", 1)]).expect_err("tag");
        assert!(err.contains("not two ASCII characters"), "{err}");
    }
}
