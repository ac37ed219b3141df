//! Modulo hashing as Cache::Memcached (the Perl client) places keys.

use crate::hash::HashAlgorithm;
use crate::host;
use crate::plan::Child;
use crate::weights::CumulativeWeights;

/// Cache::Memcached's `_hashfunc`: `(crc32(key) >> 16) & 0x7fff`, a number in `0..32768`
/// (`crc32` being zlib's, the host's `crc32`).
pub fn modula_hash(key: &[u8]) -> u32 {
    (host::hash(HashAlgorithm::Crc32, key) >> 16) & 0x7fff
}

/// A key's hash modulo the total weight, where a child of weight `w` fills `w` consecutive
/// buckets (Cache::Memcached's `init_buckets`), found by binary search rather than a list of
/// buckets. Adding a child moves most keys: prefer [`Ketama`](super::Ketama) or
/// [`Jump`](super::Jump) unless clients must agree with a modulo client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modula {
    /// The buckets: child `i` fills as many consecutive ones as its weight.
    buckets: CumulativeWeights,
}

impl Modula {
    /// Modula over children of these weights, in index order.
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        Self {
            buckets: CumulativeWeights::new(weights),
        }
    }

    /// Number of buckets (the sum of the weights).
    pub fn buckets(&self) -> u64 {
        self.buckets.total()
    }

    /// The child owning bucket `hash % buckets`.
    pub fn lookup(&self, hash: u32) -> Child {
        self.buckets.owner(u64::from(hash) % self.buckets().max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_value_known_answers() {
        // crc32("123456789") = 0xcbf43926 (the CRC-32 check value): 0xcbf4 & 0x7fff.
        assert_eq!(modula_hash(b"123456789"), 0x4bf4);
        assert_eq!(modula_hash(b""), 0);
        // crc32("a") = 0xe8b7be43.
        assert_eq!(modula_hash(b"a"), 0x68b7);
        for i in 0..1000 {
            assert!(modula_hash(format!("k{i}").as_bytes()) < 32768);
        }
    }

    #[test]
    fn weights_fill_consecutive_buckets() {
        let modula = Modula::new([1, 2, 5]);
        assert_eq!(modula.buckets(), 8);
        let owners: Vec<u32> = (0..16).map(|hash| modula.lookup(hash).0).collect();
        assert_eq!(owners, [0, 1, 1, 2, 2, 2, 2, 2, 0, 1, 1, 2, 2, 2, 2, 2]);
        assert_eq!(Modula::new([1, 1, 1]).lookup(32767), Child(32767 % 3));
    }
}
