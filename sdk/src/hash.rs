//! The hash functions behind the `hash` and `md5` imports, in pure Rust.
//!
//! The host implements the imports with these functions, and the SDK uses them directly when a
//! policy runs natively (under [`crate::testing`]). Inside a wasm plugin, call
//! [`crate::host::hash`] instead: it runs the host's native code.

use ::md5::{Digest, Md5};
use serde::Deserialize;

use crate::abi::hash_alg;

/// An algorithm of the `hash` import.
///
/// Deserializes from its ABI name (`"md5"`, `"crc32"`, `"fnv1a_32"`, `"fnv1a_64"`), so a policy's
/// config can name one.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
pub enum HashAlgorithm {
    /// First four bytes of the MD5 digest, little-endian: libketama's and twemproxy's `md5`.
    #[default]
    #[serde(rename = "md5")]
    Md5,
    /// CRC-32 (IEEE 802.3, reflected, as zlib). This is twemproxy's `crc32a`, not its `crc32`
    /// (a libmemcached variant that keeps 15 bits).
    #[serde(rename = "crc32")]
    Crc32,
    /// 32-bit FNV-1a.
    #[serde(rename = "fnv1a_32")]
    Fnv1a32,
    /// 64-bit FNV-1a, low 32 bits. Equal to twemproxy's `fnv1a_64` for keys of ASCII bytes (see
    /// [`fnv1a_64`]).
    #[serde(rename = "fnv1a_64")]
    Fnv1a64,
}

impl HashAlgorithm {
    /// Every algorithm, in code order.
    pub const ALL: [HashAlgorithm; 4] = [Self::Md5, Self::Crc32, Self::Fnv1a32, Self::Fnv1a64];

    /// The algorithm with this ABI code ([`crate::abi::hash_alg`]), if any.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            hash_alg::MD5 => Some(Self::Md5),
            hash_alg::CRC32 => Some(Self::Crc32),
            hash_alg::FNV1A_32 => Some(Self::Fnv1a32),
            hash_alg::FNV1A_64 => Some(Self::Fnv1a64),
            _ => None,
        }
    }

    /// The ABI code of this algorithm.
    pub const fn code(self) -> u32 {
        match self {
            Self::Md5 => hash_alg::MD5,
            Self::Crc32 => hash_alg::CRC32,
            Self::Fnv1a32 => hash_alg::FNV1A_32,
            Self::Fnv1a64 => hash_alg::FNV1A_64,
        }
    }

    /// The ABI name of this algorithm, as in ABI.md and in configs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Crc32 => "crc32",
            Self::Fnv1a32 => "fnv1a_32",
            Self::Fnv1a64 => "fnv1a_64",
        }
    }

    /// The algorithm with this ABI name, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// Hashes `bytes` natively.
    pub fn hash(self, bytes: &[u8]) -> u32 {
        match self {
            Self::Md5 => md5_u32(bytes),
            Self::Crc32 => crc32(bytes),
            Self::Fnv1a32 => fnv1a_32(bytes),
            Self::Fnv1a64 => fnv1a_64(bytes) as u32,
        }
    }
}

impl std::fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Hashes `bytes` with the algorithm whose ABI code is `alg`; `None` for an unknown code (the
/// `hash` import traps then).
pub fn hash(alg: u32, bytes: &[u8]) -> Option<u32> {
    HashAlgorithm::from_code(alg).map(|alg| alg.hash(bytes))
}

/// The MD5 digest of `bytes` (the `md5` import).
pub fn md5(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// The first four bytes of the MD5 digest, little-endian ([`HashAlgorithm::Md5`]).
pub fn md5_u32(bytes: &[u8]) -> u32 {
    let digest = md5(bytes);
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// CRC-32, IEEE 802.3 polynomial, reflected, as zlib's `crc32` ([`HashAlgorithm::Crc32`]).
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;
const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 32-bit FNV-1a ([`HashAlgorithm::Fnv1a32`]).
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV32_OFFSET, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(FNV32_PRIME)
    })
}

/// 64-bit FNV-1a, all 64 bits; [`HashAlgorithm::Fnv1a64`] is the low 32 of them.
///
/// twemproxy's `hash_fnv1a_64` computes the low 32 bits directly (32-bit arithmetic with the
/// truncated offset basis and prime), which gives the same result, except that it widens each
/// byte from a C `char`: on platforms where `char` is signed (x86), bytes 0x80 and above are
/// sign-extended and the results differ. Keys of ASCII bytes hash identically. The same holds for
/// its `fnv1a_32`.
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV64_OFFSET, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(FNV64_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// twemproxy's `hash_fnv1a_64`, transcribed (for ASCII input, where `char` signedness does not
    /// matter).
    fn twemproxy_fnv1a_64(key: &[u8]) -> u32 {
        let mut hash = FNV64_OFFSET as u32;
        for &b in key {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(FNV64_PRIME as u32);
        }
        hash
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(hash(hash_alg::CRC32, b"123456789"), Some(0xcbf4_3926));
    }

    #[test]
    fn fnv1a_32_known_answers() {
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
        assert_eq!(hash(hash_alg::FNV1A_32, b"a"), Some(0xe40c_292c));
    }

    #[test]
    fn fnv1a_64_known_answers() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(hash(hash_alg::FNV1A_64, b"a"), Some(0x8601_ec8c));
    }

    #[test]
    fn fnv1a_64_low_bits_match_twemproxy_for_ascii() {
        let keys: [&[u8]; 6] = [b"", b"a", b"foo", b"user:1234", b"key:0", &[b'~'; 250]];
        for key in keys {
            assert_eq!(HashAlgorithm::Fnv1a64.hash(key), twemproxy_fnv1a_64(key));
        }
        assert_eq!(twemproxy_fnv1a_64(b"a"), 0x8601_ec8c);
    }

    #[test]
    fn md5_known_answers() {
        assert_eq!(
            md5(b""),
            [
                0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8,
                0x42, 0x7e
            ]
        );
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661; first four bytes little-endian.
        assert_eq!(md5_u32(b"a"), 0xb975_c10c);
        assert_eq!(hash(hash_alg::MD5, b""), Some(0xd98c_1dd4));
    }

    #[test]
    fn unknown_algorithm_is_none() {
        assert_eq!(hash(4, b"a"), None);
        assert_eq!(hash(u32::MAX, b"a"), None);
    }

    #[test]
    fn codes_and_names_round_trip() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_code(alg.code()), Some(alg));
            assert_eq!(HashAlgorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(HashAlgorithm::from_name("md4"), None);
    }

    #[test]
    fn deserializes_from_abi_name() {
        #[derive(Deserialize)]
        struct Config {
            hash: HashAlgorithm,
        }
        let config: Config = toml::from_str("hash = \"fnv1a_64\"").expect("valid config");
        assert_eq!(config.hash, HashAlgorithm::Fnv1a64);
        assert!(toml::from_str::<Config>("hash = \"murmur\"").is_err());
    }
}
