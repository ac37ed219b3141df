//! Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent Hash
//! Algorithm", 2014).

use crate::hash::HashAlgorithm;
use crate::host;
use crate::plan::Child;

/// The multiplier of the paper's linear congruential generator.
const LCG_MULTIPLIER: u64 = 2_862_933_555_777_941_757;

/// Jump consistent hash: the bucket in `0..buckets` of a 64-bit `key`, as the paper's reference
/// code computes it (same `double` arithmetic), so equal to Guava's `Hashing.consistentHash` and
/// to `github.com/dgryski/go-jump`. `buckets` must be at least 1 (0 gives 0).
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut bucket: i64 = -1;
    let mut next: i64 = 0;
    while next < i64::from(buckets) {
        bucket = next;
        key = key.wrapping_mul(LCG_MULTIPLIER).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    bucket.max(0) as u32
}

/// The 64-bit hash jump is computed on, for algorithm `alg`:
///
/// - `md5`: the first eight bytes of the MD5 digest, little-endian (the `md5` import). Its low 32
///   bits are the host's 32-bit `md5` hash; it is also Guava's `HashCode.asLong()` of
///   `Hashing.md5()`.
/// - `fnv1a_64`: all 64 bits of FNV-1a, computed in the plugin (the `hash` import returns only
///   the low 32).
/// - `crc32`, `fnv1a_32` (and any other 32-bit algorithm): the host's 32-bit hash, zero-extended.
///   Jump spreads such keys evenly too, but only 2^32 distinct inputs exist.
pub fn key_hash64(alg: HashAlgorithm, bytes: &[u8]) -> u64 {
    match alg {
        HashAlgorithm::Md5 => super::hash64(bytes),
        HashAlgorithm::Fnv1a64 => crate::hash::fnv1a_64(bytes),
        other => u64::from(host::hash(other, bytes)),
    }
}

/// Jump consistent hash over a fixed number of children: no table, about `ln(children)` steps
/// per key, every child an equal share (weights are not part of the scheme), and a node grown
/// by one child moves only the keys the new child gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Jump {
    children: u32,
}

impl Jump {
    /// Jump over `children` children (at least one).
    pub fn new(children: u32) -> Result<Self, String> {
        if children == 0 {
            return Err("jump needs at least one child".into());
        }
        Ok(Self { children })
    }

    /// The child of a key whose 64-bit hash is `hash` ([`key_hash64`]).
    pub fn lookup(&self, hash: u64) -> Child {
        Child(jump(hash, self.children))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guava's `HashingTest.testConsistentHash_linearCongruentialGeneratorCompatibility`
    /// ("golden values to see that implementations across languages are equivalent").
    #[test]
    fn matches_guava_golden_values() {
        let golden100 = [
            0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83,
        ];
        for (input, &bucket) in golden100.iter().enumerate() {
            assert_eq!(
                jump(input as u64, 100),
                bucket,
                "consistentHash({input}, 100)"
            );
        }
        assert_eq!(jump(10_863_919_174_838_991, 11), 6);
        assert_eq!(jump(2_016_238_256_797_177_309, 11), 3);
        assert_eq!(jump(1_673_758_223_894_951_030, 11), 5);
        assert_eq!(jump(2, 100_001), 80343);
        assert_eq!(jump(2201, 100_001), 22152);
        assert_eq!(jump(2202, 100_001), 15018);
    }

    /// `github.com/dgryski/go-jump` `jump_test.go`, "generated from the reference C++ code":
    /// `Hash(key, n)` for `n` in `1..`.
    #[test]
    fn matches_go_jump_reference_table() {
        let table: [(u64, &[u32]); 4] = [
            (0, &[0; 20]),
            (
                1,
                &[0, 0, 0, 0, 0, 0, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 17, 17],
            ),
            (
                0xdead_beef,
                &[0, 1, 2, 3, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 16, 16, 16],
            ),
            (
                0x0ddc_0ffe_ebad_f00d,
                &[0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 15, 15, 15, 15],
            ),
        ];
        for (key, buckets) in table {
            for (i, &bucket) in buckets.iter().enumerate() {
                let n = i as u32 + 1;
                assert_eq!(jump(key, n), bucket, "Hash({key:#x}, {n})");
            }
        }
    }

    #[test]
    fn key_hashes() {
        // md5("a") = 0cc175b9c0f1b6a8 31c399e269772661: the first eight bytes, little-endian.
        assert_eq!(key_hash64(HashAlgorithm::Md5, b"a"), 0xa8b6_f1c0_b975_c10c);
        assert_eq!(
            key_hash64(HashAlgorithm::Md5, b"a") as u32,
            HashAlgorithm::Md5.hash(b"a")
        );
        assert_eq!(
            key_hash64(HashAlgorithm::Fnv1a64, b"a"),
            0xaf63_dc4c_8601_ec8c
        );
        assert_eq!(key_hash64(HashAlgorithm::Crc32, b"123456789"), 0xcbf4_3926);
        assert_eq!(key_hash64(HashAlgorithm::Fnv1a32, b"a"), 0xe40c_292c);
    }
}
