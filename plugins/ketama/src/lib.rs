//! Ketama consistent hashing, as libketama and twemproxy (`distribution: ketama`) compute it.
//!
//! Each child gets points on a 32-bit circle in proportion to its weight (160 per child when
//! weights are equal); a key goes to the child owning the first point at or after the key's
//! hash, wrapping to the first point. See `README.md`.

use serde::Deserialize;
use switchyard_sdk::{Child, HashAlgorithm, InitContext, Plan, Policy, Request, host};

/// Points per child at equal weights (twemproxy's `KETAMA_POINTS_PER_SERVER`).
pub const POINTS_PER_SERVER: u32 = 160;

/// Points per MD5 digest: each digest gives four little-endian `u32`s.
const POINTS_PER_HASH: u32 = 4;

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

/// One point of the continuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    value: u32,
    child: u32,
}

/// The policy: a sorted continuum of points.
#[derive(Debug)]
pub struct Ketama {
    hash: HashAlgorithm,
    eject: bool,
    continuum: Vec<Point>,
}

/// How many points twemproxy gives a child of `weight` when the children's weights add up to
/// `total_weight` over `children` children: `floorf(pct * 160 / 4 * children + 1e-10) * 4`,
/// in the same `float`/`double` arithmetic as `ketama_update` in twemproxy's
/// `src/hashkit/nc_ketama.c` (the rounding decides some counts).
pub fn points_for(weight: u32, total_weight: u64, children: u32) -> u32 {
    let pct = weight as f32 / total_weight as f32;
    let scaled = pct * POINTS_PER_SERVER as f32 / POINTS_PER_HASH as f32 * children as f32;
    // C adds the `double` constant 0.0000000001, then casts back to `float` before `floorf`.
    let nudged = (f64::from(scaled) + 0.000_000_000_1) as f32;
    (nudged.floor() * POINTS_PER_HASH as f32) as u32
}

impl Ketama {
    /// Builds the continuum for `(name, weight)` children, in index order.
    pub fn new<'n>(
        hash: HashAlgorithm,
        children: impl ExactSizeIterator<Item = (&'n str, u32)> + Clone,
    ) -> Result<Self, String> {
        let count = children.len() as u32;
        if count == 0 {
            return Err("ketama needs at least one child".into());
        }
        if let Some((name, _)) = children.clone().find(|&(_, weight)| weight == 0) {
            return Err(format!("child {name:?} has weight 0"));
        }
        let total_weight: u64 = children.clone().map(|(_, weight)| u64::from(weight)).sum();
        let mut continuum = Vec::new();
        for (idx, (name, weight)) in children.enumerate() {
            for group in 0..points_for(weight, total_weight, count) / POINTS_PER_HASH {
                let digest = host::md5(format!("{name}-{group}").as_bytes());
                for quarter in digest.chunks_exact(4) {
                    continuum.push(Point {
                        value: u32::from_le_bytes([quarter[0], quarter[1], quarter[2], quarter[3]]),
                        child: idx as u32,
                    });
                }
            }
        }
        continuum.sort_unstable();
        Ok(Self {
            hash,
            eject: false,
            continuum,
        })
    }

    /// The child owning `hash`: the first point with a value at or above it, wrapping around.
    pub fn lookup(&self, hash: u32) -> Child {
        let at = self.continuum.partition_point(|point| point.value < hash);
        let point = self.continuum.get(at).unwrap_or(&self.continuum[0]);
        Child(point.child)
    }

    /// Number of points on the continuum.
    /// Like [`lookup`](Self::lookup), but skips points whose server `healthy` rejects, walking
    /// clockwise; if no server is healthy, the first choice.
    pub fn lookup_healthy(&self, hash: u32, healthy: impl Fn(Child) -> bool) -> Child {
        let at = self.continuum.partition_point(|point| point.value < hash);
        let n = self.continuum.len();
        let first = self.lookup(hash);
        if healthy(first) {
            return first;
        }
        (1..n)
            .map(|step| Child(self.continuum[(at + step) % n].child))
            .find(|&c| c != first && healthy(c))
            .unwrap_or(first)
    }

    pub fn points(&self) -> usize {
        self.continuum.len()
    }
}

impl Policy for Ketama {
    type Config = Config;

    fn init(config: Config, ctx: &InitContext) -> Result<Self, String> {
        let children = ctx.children().iter();
        let mut ketama = Self::new(
            config.hash,
            children.map(|child| (child.name(), child.weight())),
        )?;
        ketama.eject = config.eject;
        Ok(ketama)
    }

    fn route<'a>(&'a mut self, request: &Request<'_>) -> Plan<'a> {
        let hash = host::hash(self.hash, request.key());
        if self.eject {
            Plan::Forward(self.lookup_healthy(hash, host::child_healthy))
        } else {
            Plan::Forward(self.lookup(hash))
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

    /// `(weight, total weight, children, points)` from twemproxy's expression compiled with gcc
    /// on x86-64.
    const POINTS: &[(u32, u64, u32, u32)] = &[
        (1, 3, 3, 160),
        (1, 8, 3, 60),
        (2, 8, 3, 120),
        (5, 8, 3, 300),
        (1, 3, 1, 52),
        (3, 10, 4, 192),
        (1, 10, 4, 64),
        (7, 100, 9, 100),
        (13, 100, 9, 184),
        (1, 1000, 999, 156),
        (999, 1000, 2, 316),
        (1, 1000, 2, 0),
        (1, 6, 3, 80),
        (3, 6, 3, 240),
        (5, 1000, 200, 156),
        (1, 47, 47, 156),
    ];

    #[test]
    fn points_match_twemproxy() {
        for &(weight, total, children, points) in POINTS {
            assert_eq!(
                points_for(weight, total, children),
                points,
                "{weight}/{total} of {children}"
            );
        }
    }

    #[test]
    fn equal_weights_get_160_points_except_where_float_rounding_says_156() {
        // twemproxy (gcc, x86-64) gives 156 points each at these pool sizes up to 200.
        let rounded_down = [
            25, 47, 50, 55, 61, 71, 94, 100, 107, 109, 110, 115, 122, 142, 159, 163, 188, 193, 200,
        ];
        for n in 1..=200 {
            let expected = if rounded_down.contains(&n) {
                156
            } else {
                POINTS_PER_SERVER
            };
            assert_eq!(points_for(1, n.into(), n), expected, "{n} children");
        }
    }

    #[test]
    fn continuum_size() {
        let harness = Harness::<Ketama>::new("", THREE).expect("valid config");
        assert_eq!(harness.policy().points(), 3 * 160);
    }

    #[test]
    fn lookup_wraps_around() {
        let ketama = Ketama::new(HashAlgorithm::Md5, THREE.iter().copied()).expect("children");
        let first = ketama.continuum[0];
        let last = ketama.continuum[ketama.continuum.len() - 1];
        assert_eq!(ketama.lookup(0), Child(first.child));
        assert_eq!(ketama.lookup(first.value), Child(first.child));
        assert_eq!(ketama.lookup(last.value), Child(last.child));
        if last.value < u32::MAX {
            assert_eq!(ketama.lookup(last.value + 1), Child(first.child));
        }
        assert_eq!(
            ketama.lookup(u32::MAX),
            ketama.lookup(last.value.wrapping_add(1))
        );
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
