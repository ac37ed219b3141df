//! Which part of a key a hashing policy hashes: twemproxy's `hash_tag`.
//!
//! With a hash tag such as `"{}"`, only the part of the key between the first `{` and the next
//! `}` is hashed, so `user:{42}:name` and `user:{42}:avatar` land on the same child. The rule is
//! twemproxy's (`server_pool_idx` in its `src/nc_server.c`): the first occurrence of the opening
//! character, then the first occurrence of the closing character after it; if both are found and
//! something lies between them, that is hashed, otherwise the whole key is.
//!
//! A policy takes the tag in its config as a [`HashTag`] (a two-character string) and applies
//! it to every key before hashing:
//!
//! ```
//! use switchyard_sdk::key::HashTag;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     #[serde(default)]
//!     hash_tag: Option<HashTag>,
//! }
//!
//! let config: Config = toml::from_str(r#"hash_tag = "{}""#).expect("valid config");
//! let tag = config.hash_tag.expect("set");
//! assert_eq!(tag.apply(b"user:{42}:name"), b"42");
//! assert_eq!(tag.apply(b"plain"), b"plain");
//! ```

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// A twemproxy-style hash tag: two ASCII characters, the one that opens the hashed part of a key
/// and the one that closes it (`"{}"`, `"[]"`, `"::"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashTag {
    open: u8,
    close: u8,
}

impl HashTag {
    /// The tag with these opening and closing bytes.
    pub const fn new(open: u8, close: u8) -> Self {
        Self { open, close }
    }

    /// Parses a config value: exactly two ASCII characters. twemproxy also takes exactly two
    /// (`conf_set_hashtag`); ASCII because keys are compared byte by byte, and a character
    /// outside ASCII is several bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.as_bytes() {
            &[open, close] if open.is_ascii() && close.is_ascii() => Ok(Self::new(open, close)),
            _ => Err(format!(
                "hash_tag {text:?} is not two ASCII characters (such as \"{{}}\")"
            )),
        }
    }

    /// The byte that opens the hashed part.
    pub const fn open(self) -> u8 {
        self.open
    }

    /// The byte that closes the hashed part.
    pub const fn close(self) -> u8 {
        self.close
    }

    /// The part of `key` to hash: see [`hash_tag`].
    pub fn apply(self, key: &[u8]) -> &[u8] {
        hash_tag(key, [self.open, self.close])
    }
}

impl fmt::Display for HashTag {
    /// The two characters, as written in a config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.open), char::from(self.close))
    }
}

impl<'de> Deserialize<'de> for HashTag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;

        impl Visitor<'_> for Text {
            type Value = HashTag;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a hash tag of two ASCII characters, such as \"{}\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<HashTag, E> {
                HashTag::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(Text)
    }
}

/// The part of `key` that a policy with hash tag `[open, close]` hashes, as twemproxy computes
/// it: the bytes strictly between the first `open` and the first `close` after it, when both
/// exist and at least one byte lies between them; otherwise the whole key.
pub fn hash_tag(key: &[u8], [open, close]: [u8; 2]) -> &[u8] {
    let Some(start) = key.iter().position(|&b| b == open) else {
        return key;
    };
    let rest = &key[start + 1..];
    match rest.iter().position(|&b| b == close) {
        Some(len) if len > 0 => &rest[..len],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRACES: [u8; 2] = *b"{}";

    #[test]
    fn hashes_the_part_between_the_tags() {
        assert_eq!(hash_tag(b"user:{42}:name", BRACES), b"42");
        assert_eq!(hash_tag(b"{42}", BRACES), b"42");
        assert_eq!(hash_tag(b"a{b}c{d}e", BRACES), b"b");
        // The first opening character, then the first closing one after it.
        assert_eq!(hash_tag(b"a{b{c}d}", BRACES), b"b{c");
        assert_eq!(hash_tag(b"a}b{c}", BRACES), b"c");
    }

    #[test]
    fn whole_key_without_a_complete_non_empty_tag() {
        for key in [
            &b"plain"[..],
            b"no{close",
            b"no}open",
            b"empty{}tag",
            b"}{",
            b"{",
            b"",
        ] {
            assert_eq!(
                hash_tag(key, BRACES),
                key,
                "{:?}",
                String::from_utf8_lossy(key)
            );
        }
        // An empty first tag does not make a later one count (twemproxy looks once).
        assert_eq!(hash_tag(b"a{}b{c}", BRACES), b"a{}b{c}");
    }

    #[test]
    fn same_opening_and_closing_character() {
        assert_eq!(hash_tag(b"a:b:c", *b"::"), b"b");
        assert_eq!(hash_tag(b"a::c", *b"::"), b"a::c");
        assert_eq!(hash_tag(b"a:b", *b"::"), b"a:b");
    }

    #[test]
    fn non_utf8_keys() {
        assert_eq!(hash_tag(b"\xff{\xfe\x80}\xff", BRACES), b"\xfe\x80");
    }

    #[test]
    fn parses_two_ascii_characters() {
        let tag = HashTag::parse("{}").expect("two characters");
        assert_eq!((tag.open(), tag.close()), (b'{', b'}'));
        assert_eq!(tag, HashTag::new(b'{', b'}'));
        assert_eq!(tag.to_string(), "{}");
        assert_eq!(tag.apply(b"x{y}z"), b"y");
        for bad in ["", "{", "{}}", "«»", "{»"] {
            let err = HashTag::parse(bad).expect_err(bad);
            assert!(err.contains("not two ASCII characters"), "{err}");
        }
    }

    #[test]
    fn deserializes_from_a_string() {
        #[derive(Debug, serde::Deserialize)]
        struct Config {
            hash_tag: Option<HashTag>,
        }
        let config: Config = toml::from_str(r#"hash_tag = "[]""#).expect("valid tag");
        assert_eq!(config.hash_tag, Some(HashTag::new(b'[', b']')));
        let err = toml::from_str::<Config>(r#"hash_tag = "{""#).expect_err("one character");
        assert!(
            err.to_string().contains("not two ASCII characters"),
            "{err}"
        );
        assert!(toml::from_str::<Config>("hash_tag = 2").is_err());
    }
}
