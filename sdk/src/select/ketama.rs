//! Ketama consistent hashing, as libketama and twemproxy (`distribution: ketama`) place keys.

use crate::host;
use crate::plan::Child;

/// Points per child at equal weights (twemproxy's `KETAMA_POINTS_PER_SERVER`).
pub const POINTS_PER_SERVER: u32 = 160;

/// Points per MD5 digest: each digest gives four little-endian `u32`s.
const POINTS_PER_HASH: u32 = 4;

/// One point of the continuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    value: u32,
    child: u32,
}

/// A ketama continuum over a node's children: each child gets points on a 32-bit circle in
/// proportion to its weight (160 per child when the weights are equal), computed as twemproxy
/// computes them; a key hash goes to the child owning the first point at or after it, wrapping
/// around. The key's hash is the caller's (`host::hash(HashAlgorithm::Md5, key)` is
/// twemproxy's `md5`); the points always use MD5, as in libketama and twemproxy.
#[derive(Debug, Clone)]
pub struct Ketama {
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
    /// Builds the continuum for `(name, weight)` children, in index order. Fails with no
    /// children or a child of weight 0.
    pub fn new<'n>(
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
        Ok(Self { continuum })
    }

    /// The child owning `hash`: the first point with a value at or above it, wrapping around.
    pub fn lookup(&self, hash: u32) -> Child {
        let at = self.continuum.partition_point(|point| point.value < hash);
        let point = self.continuum.get(at).unwrap_or(&self.continuum[0]);
        Child(point.child)
    }

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

    /// Number of points on the continuum.
    pub fn points(&self) -> usize {
        self.continuum.len()
    }
}

#[cfg(test)]
mod tests {
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
    fn lookup_wraps_around() {
        let ketama = Ketama::new(THREE.iter().copied()).expect("children");
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
    fn refuses_no_children_and_zero_weights() {
        let err = Ketama::new([].into_iter()).expect_err("no children");
        assert!(err.contains("at least one child"), "{err}");
        let err = Ketama::new([("a", 1), ("b", 0)].into_iter()).expect_err("zero weight");
        assert!(err.contains("\"b\" has weight 0"), "{err}");
        assert_eq!(
            Ketama::new(THREE.iter().copied()).map(|k| k.points()),
            Ok(480)
        );
    }
}
