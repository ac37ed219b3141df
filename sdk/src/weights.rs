//! [`CumulativeWeights`]: children's weights laid end to end on `0..total`, so that a point of
//! that range (a bucket, a random number) names the child owning it.

use crate::plan::Child;

/// The children's weights laid end to end, in index order: child `i` owns the points
/// `w0 + ... + w(i-1) .. w0 + ... + wi` of `0..total`. [`owner`](Self::owner) finds a point's
/// child by binary search, which is the child a list of `total` slots would give, without the
/// list.
///
/// ```
/// use switchyard_sdk::Child;
/// use switchyard_sdk::weights::CumulativeWeights;
///
/// let weights = CumulativeWeights::new([1, 2, 5]);
/// assert_eq!(weights.total(), 8);
/// let owners: Vec<u32> = (0..8).map(|point| weights.owner(point).0).collect();
/// assert_eq!(owners, [0, 1, 1, 2, 2, 2, 2, 2]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CumulativeWeights {
    /// `ends[i]` is the total weight of children `0..=i`.
    ends: Vec<u64>,
}

impl CumulativeWeights {
    /// Children of these weights, in index order.
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let ends = weights
            .into_iter()
            .scan(0u64, |total, weight| {
                *total += u64::from(weight);
                Some(*total)
            })
            .collect();
        Self { ends }
    }

    /// The sum of the weights: the points are `0..total`.
    pub fn total(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// The child owning `point`, which must be below [`total`](Self::total) (a larger one gives
    /// `Child(child_count)`, out of range). A child of weight 0 owns no point.
    pub fn owner(&self, point: u64) -> Child {
        Child(self.ends.partition_point(|&end| end <= point) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_the_weights() {
        let weights = CumulativeWeights::new([3, 0, 1]);
        assert_eq!(weights.total(), 4);
        let owners: Vec<u32> = (0..5).map(|point| weights.owner(point).0).collect();
        assert_eq!(owners, [0, 0, 0, 2, 3]);
        assert_eq!(
            CumulativeWeights::new([u32::MAX; 3]).total(),
            3 * u64::from(u32::MAX)
        );
    }

    #[test]
    fn no_children() {
        let weights = CumulativeWeights::new([]);
        assert_eq!(weights.total(), 0);
        assert_eq!(weights.owner(0), Child(0));
    }
}
