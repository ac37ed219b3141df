//! A child picked at random in proportion to the children's weights.

use crate::plan::Child;
use crate::weights::CumulativeWeights;

/// Maps 64 random bits onto `0..n` by multiplying and keeping the high 64 bits (Lemire's
/// method): no division, and a bias of at most `n / 2^64`.
pub fn below(random: u64, n: u64) -> u64 {
    ((u128::from(random) * u128::from(n)) >> 64) as u64
}

/// Picks a child from 64 random bits (`host::random()`) in proportion to the children's weights
/// (give every child weight 1 for a uniform choice); a child of weight 0 is never picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighted {
    weights: CumulativeWeights,
}

impl Weighted {
    /// A choice among children of these weights, in index order.
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        Self {
            weights: CumulativeWeights::new(weights),
        }
    }

    /// The child that 64 random bits pick.
    pub fn pick(&self, random: u64) -> Child {
        self.weights.owner(below(random, self.weights.total()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_maps_the_full_range() {
        assert_eq!(below(0, 3), 0);
        assert_eq!(below(u64::MAX, 3), 2);
        assert_eq!(below(u64::MAX / 3, 3), 0);
        assert_eq!(below(u64::MAX / 3 + 1, 3), 1);
        assert_eq!(below(1 << 63, 2), 1);
        assert_eq!(below(u64::MAX, 1), 0);
    }

    #[test]
    fn pick_follows_cumulative_weights() {
        let random = Weighted::new([1, 3, 6]);
        // 0..1 → a, 1..4 → b, 4..10 → c, in tenths of the range.
        let tenth = u64::MAX / 10 + 1;
        let picks: Vec<u32> = (0..10).map(|i| random.pick(i * tenth).0).collect();
        assert_eq!(picks, [0, 1, 1, 1, 2, 2, 2, 2, 2, 2]);
    }
}
