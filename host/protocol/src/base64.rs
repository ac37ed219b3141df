//! Base64 keys, decoded exactly as memcached decodes the key of a meta command with the `b` flag
//! (its `base64.c`), so that the router routes a binary key by the same bytes memcached stores
//! it under.
//!
//! memcached's decoder is lenient in ways a strict one is not, and those are reproduced:
//! - bytes outside the alphabet (`A-Z a-z 0-9 + / =`) are skipped, so `Y!Q==` is `YQ==`;
//! - the alphabet bytes, `=` included, must come to a non-zero multiple of four;
//! - decoding stops after the first group of four holding a `=`, wherever in the group the `=`
//!   is (`Y=Q=` decodes to one byte) and whatever follows (`YQ==YQ==` is `a`); a group with
//!   three or four `=` is refused.
//!
//! The decoded key is never longer than three quarters of the encoded one, so any key memcached
//! accepts (at most 250 bytes encoded) decodes to at most 187 bytes.

/// The buffer [`decode_key`] decodes into: enough for an encoded key of up to 340 bytes.
pub const DECODED_KEY_BUF: usize = 256;

/// Not a base64 byte: skipped.
const SKIPPED: u8 = 0x80;

/// The 6-bit value of an alphabet byte; `=` counts as 0.
fn value(byte: u8) -> u8 {
    match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        b'=' => 0,
        _ => SKIPPED,
    }
}

/// Runs memcached's decoder over `encoded`, handing each decoded group to `sink` (which may
/// stop it with `None`). The decoded length, or `None` where memcached fails.
fn decode(encoded: &[u8], mut sink: impl FnMut(&[u8]) -> Option<()>) -> Option<usize> {
    let count = encoded.iter().filter(|&&b| value(b) != SKIPPED).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut group = [0u8; 4];
    let mut filled = 0;
    let mut pad = 0;
    let mut len = 0;
    for &byte in encoded {
        let v = value(byte);
        if v == SKIPPED {
            continue;
        }
        if byte == b'=' {
            pad += 1;
        }
        *group.get_mut(filled)? = v;
        filled += 1;
        if filled < 4 {
            continue;
        }
        filled = 0;
        let bytes = [
            group[0] << 2 | group[1] >> 4,
            group[1] << 4 | group[2] >> 2,
            group[2] << 6 | group[3],
        ];
        let keep = match pad {
            0 => 3,
            1 => 2,
            2 => 1,
            _ => return None,
        };
        sink(bytes.get(..keep)?)?;
        len += keep;
        if pad > 0 {
            break;
        }
    }
    Some(len)
}

/// Appends the standard base64 encoding of `bytes`, padded with `=`: how the router writes a
/// rewritten key for a meta command with the `b` flag.
pub fn encode_key(bytes: &[u8], out: &mut Vec<u8>) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let sextets = [
            b[0] >> 2,
            (b[0] & 0x03) << 4 | b[1] >> 4,
            (b[1] & 0x0f) << 2 | b[2] >> 6,
            b[2] & 0x3f,
        ];
        for (i, &sextet) in sextets.iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[sextet as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
}

/// How long `encoded` is once decoded, or `None` if memcached refuses it
/// (`CLIENT_ERROR error decoding key`). Allocates nothing.
pub fn decoded_len(encoded: &[u8]) -> Option<usize> {
    decode(encoded, |_| Some(()))
}

/// Decodes the key of a meta request with the `b` flag ([`crate::Request::base64`]) into `out`,
/// as memcached does: the bytes the router routes the request by.
///
/// `None` if memcached would refuse the key (a request [`crate::parse_request`] accepted never
/// is refused), or if it decodes to more than [`DECODED_KEY_BUF`] bytes, which no key of up to
/// 340 bytes does.
pub fn decode_key<'o>(encoded: &[u8], out: &'o mut [u8; DECODED_KEY_BUF]) -> Option<&'o [u8]> {
    let mut at = 0;
    let len = decode(encoded, |bytes| {
        out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
        at += bytes.len();
        Some(())
    })?;
    out.get(..len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(encoded: &[u8]) -> Option<Vec<u8>> {
        let mut out = [0; DECODED_KEY_BUF];
        let key = decode_key(encoded, &mut out).map(<[u8]>::to_vec);
        assert_eq!(
            key.as_ref().map(Vec::len),
            decoded_len(encoded),
            "{encoded:?}"
        );
        key
    }

    #[test]
    fn standard_base64_decodes() {
        assert_eq!(decoded(b"YQ=="), Some(b"a".to_vec()));
        assert_eq!(decoded(b"YWI="), Some(b"ab".to_vec()));
        assert_eq!(decoded(b"YWJj"), Some(b"abc".to_vec()));
        assert_eq!(decoded(b"AP8gCg=="), Some(vec![0, 0xff, b' ', b'\n']));
        assert_eq!(decoded(b"+/+/"), Some(vec![0xfb, 0xff, 0xbf]));
    }

    #[test]
    fn bytes_outside_the_alphabet_are_skipped() {
        assert_eq!(decoded(b"Y!Q=="), Some(b"a".to_vec()));
        assert_eq!(decoded(b"YQ==\x01"), Some(b"a".to_vec()));
        assert_eq!(decoded(b"\xffY\tW\rJj-"), Some(b"abc".to_vec()));
    }

    #[test]
    fn the_alphabet_bytes_must_make_whole_groups_of_four() {
        for bad in [&b""[..], b"!", b"Y", b"YQ", b"YQ=", b"YWJjZ", b"!!!!"] {
            assert_eq!(decoded(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn decoding_stops_after_the_first_padded_group() {
        assert_eq!(decoded(b"YQ==YQ=="), Some(b"a".to_vec()));
        assert_eq!(decoded(b"YQ==!!!!"), Some(b"a".to_vec()));
        // Padding anywhere in a group counts: "Y=Q=" is [Y, 0, Q, 0] with two dropped.
        assert_eq!(decoded(b"Y=Q="), Some(vec![0x60]));
        assert_eq!(decoded(b"==YW"), Some(vec![0x00]));
    }

    #[test]
    fn three_or_four_pads_in_a_group_are_refused() {
        for bad in [&b"A==="[..], b"====", b"Y===", b"YWJj===="] {
            assert_eq!(decoded(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_key_too_long_for_the_buffer_is_refused() {
        let encoded = b"AAAA".repeat(86);
        assert_eq!(decoded_len(&encoded), Some(258));
        assert_eq!(decode_key(&encoded, &mut [0; DECODED_KEY_BUF]), None);
        let encoded = b"AAAA".repeat(85);
        assert_eq!(decoded(&encoded).map(|k| k.len()), Some(255));
    }

    #[test]
    fn encode_round_trips_through_memcacheds_decoder() {
        for input in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            b"\x00\xff\x10binary key",
        ] {
            let mut encoded = Vec::new();
            encode_key(input, &mut encoded);
            if input.is_empty() {
                assert!(encoded.is_empty());
                continue;
            }
            let mut out = [0u8; DECODED_KEY_BUF];
            assert_eq!(decode_key(&encoded, &mut out), Some(input), "{encoded:?}");
        }
        let mut encoded = Vec::new();
        encode_key(b"foo", &mut encoded);
        assert_eq!(encoded, b"Zm9v");
    }
}
