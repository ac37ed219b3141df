//! Weighted rendezvous hashing (highest random weight), scored as mcrouter's
//! `WeightedRendezvousHashFunc` scores children, with MD5 in place of MurmurHash64A.

use crate::host;
use crate::plan::Child;

/// One child: the hash of its name and its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    hash: u64,
    weight: f64,
}

/// Weighted rendezvous hashing over a node's children: every child scores every key (a
/// 64-bit hash of the child's name, computed once, mixed with the key's by folly's
/// `hash_128_to_64`, read as `u` in `(0, 1)`, and the score `weight / -ln(u)`), and the key
/// goes to the highest score, so child `i` gets a `weight_i / total` share and a child added or
/// removed moves only its own share. [`Rendezvous::ranking`] orders every child for a key, for
/// fallbacks.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    candidates: Vec<Candidate>,
}

/// A 64-bit hash of `bytes`: the first eight bytes of the MD5 digest, little-endian (the low 32
/// bits are the host's `md5` hash).
pub fn hash64(bytes: &[u8]) -> u64 {
    let digest = host::md5(bytes);
    let mut low = [0; 8];
    low.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(low)
}

/// folly's `hash_128_to_64(upper, lower)` (CityHash's `Hash128to64`): mixes two 64-bit hashes
/// into one, as mcrouter mixes an endpoint's hash with the key's.
pub fn hash_128_to_64(upper: u64, lower: u64) -> u64 {
    const MUL: u64 = 0x9ddf_ea08_eb38_2d69;
    let mut a = (lower ^ upper).wrapping_mul(MUL);
    a ^= a >> 47;
    let mut b = (upper ^ a).wrapping_mul(MUL);
    b ^= b >> 47;
    b.wrapping_mul(MUL)
}

/// The score of a child of `weight` whose mixed hash with the key is `x`: `weight / -ln(u)`,
/// with `u = (floor(x / 2^12) + 0.5) / 2^52`: the 52 high bits of `x`, centred in their
/// interval, exactly representable as a `f64` and strictly inside `(0, 1)`, so the logarithm is
/// finite and negative (with 53 bits, `x = 2^64 - 1` would round to `u = 1`).
pub fn score(x: u64, weight: f64) -> f64 {
    let u = ((x >> 12) as f64 + 0.5) / (1u64 << 52) as f64;
    weight / -u.ln()
}

impl Rendezvous {
    /// Rendezvous over `(name, weight)` children, in index order.
    pub fn new<'n>(children: impl IntoIterator<Item = (&'n str, u32)>) -> Self {
        Self {
            candidates: children
                .into_iter()
                .map(|(name, weight)| Candidate {
                    hash: hash64(name.as_bytes()),
                    weight: f64::from(weight),
                })
                .collect(),
        }
    }

    /// The children in descending score for `key` (the whole key: the hash tag, if any, applies
    /// before), best first; ties go to the lower index.
    pub fn ranking(&self, key: &[u8]) -> Vec<Child> {
        let scores = self.scores(hash64(key));
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().map(|idx| Child(idx as u32)).collect()
    }

    /// The highest-scoring child for `key` among those `eligible` accepts; if it accepts none,
    /// the highest-scoring child overall.
    pub fn lookup(&self, key: &[u8], eligible: impl Fn(Child) -> bool) -> Child {
        let key_hash = hash64(key);
        let mut best: Option<(f64, Child)> = None;
        let mut best_eligible: Option<(f64, Child)> = None;
        for (idx, candidate) in self.candidates.iter().enumerate() {
            let child = Child(idx as u32);
            let score = score(hash_128_to_64(candidate.hash, key_hash), candidate.weight);
            if best.is_none_or(|(top, _)| score > top) {
                best = Some((score, child));
            }
            if best_eligible.is_none_or(|(top, _)| score > top) && eligible(child) {
                best_eligible = Some((score, child));
            }
        }
        best_eligible.or(best).map_or(Child(0), |(_, child)| child)
    }

    fn scores(&self, key_hash: u64) -> Vec<f64> {
        self.candidates
            .iter()
            .map(|c| score(hash_128_to_64(c.hash, key_hash), c.weight))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn building_blocks() {
        // md5("a") = 0cc175b9c0f1b6a8...: the first eight bytes, little-endian.
        assert_eq!(hash64(b"a"), 0xa8b6_f1c0_b975_c10c);
        assert_eq!(hash_128_to_64(0, 0), 0);
        assert_eq!(hash_128_to_64(1, 2), 0xd1aa_4377_fbb5_6312);
        // u stays inside (0, 1): finite, positive scores at both ends.
        let (low, high) = (score(0, 1.0), score(u64::MAX, 1.0));
        assert!(low.is_finite() && low > 0.0 && low < 0.03, "{low}");
        assert!(high.is_finite() && high > 1e15, "{high}");
        let half = score(1 << 63, 2.0) - 2.0 / std::f64::consts::LN_2;
        assert!(half.abs() < 1e-9, "{half}");
    }

    /// Placements from a Python transcription (`hashlib.md5`, the mix, `math.log`).
    #[test]
    fn ranking_starts_with_the_choice() {
        let rendezvous = Rendezvous::new(WEIGHTED.iter().copied());
        for key in KEYS {
            let ranking = rendezvous.ranking(key);
            assert_eq!(ranking.len(), 3);
            assert_eq!(ranking[0], rendezvous.lookup(key, |_| true));
            // The runner-up is the choice without the winner.
            let runner_up = rendezvous.lookup(key, |c| c != ranking[0]);
            assert_eq!(ranking[1], runner_up);
        }
    }
}
