//! Numbers, read the way memcached's `safe_strtoul`, `safe_strtol` and `safe_strtoull` read them
//! with C's `strto*` (on a 64-bit build). Their quirks are the protocol:
//! - leading whitespace other than spaces (`\t`, `\r`, `\v`, `\f`) is skipped, and one `+` or
//!   `-` is allowed;
//! - the number may be followed by such whitespace and then anything (`1\tjunk` reads as 1);
//! - a 32-bit result is the 64-bit one truncated: flags `4294967296` store 0, and a length of
//!   `4294967297` is 1;
//! - a `-` is refused for unsigned numbers only when the 64-bit result looks negative, so
//!   `-18446744073709551615` wraps to 1 and is accepted.

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What `strtoull`/`strtoll` see in a token before they convert it.
struct Scanned {
    negative: bool,
    /// The digits' value, `None` past `u64::MAX`.
    magnitude: Option<u64>,
}

/// Reads sign and digits as `strto*` do, and applies memcached's check of what follows them.
/// `None`: no digits, or something other than whitespace right after them.
fn scan(token: &[u8]) -> Option<Scanned> {
    let start = token.iter().position(|&b| !is_c_space(b))?;
    let mut rest = token.get(start..)?;
    let negative = rest.first() == Some(&b'-');
    if let Some((b'+' | b'-', tail)) = rest.split_first() {
        rest = tail;
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    if rest.get(digits).is_some_and(|&b| !is_c_space(b)) {
        return None;
    }
    let magnitude = rest.get(..digits)?.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    });
    Some(Scanned {
        negative,
        magnitude,
    })
}

/// `safe_strtoull`: a `u64`.
pub(crate) fn strtoull(token: &[u8]) -> Option<u64> {
    let scanned = scan(token)?;
    let magnitude = scanned.magnitude?;
    let value = if scanned.negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    // memcached refuses a '-' only when the result would be negative as a signed number.
    if value > i64::MAX as u64 && token.contains(&b'-') {
        return None;
    }
    Some(value)
}

/// `safe_strtoul`: a `u32`, truncated from C's 64-bit `unsigned long`.
pub(crate) fn strtoul32(token: &[u8]) -> Option<u32> {
    strtoull(token).map(|value| value as u32)
}

/// `safe_strtol`: an `i32`, truncated from C's 64-bit `long`.
pub(crate) fn strtol32(token: &[u8]) -> Option<i32> {
    let scanned = scan(token)?;
    let magnitude = scanned.magnitude?;
    let value = if scanned.negative {
        // strtol's range is down to -2^63.
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some(value as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers() {
        assert_eq!(strtoull(b"0"), Some(0));
        assert_eq!(strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(strtoul32(b"4294967295"), Some(u32::MAX));
        assert_eq!(strtol32(b"-2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"007"), Some(7));
    }

    #[test]
    fn no_digits_or_junk_after_them_is_refused() {
        for bad in [
            &b""[..],
            b"x",
            b"+",
            b"-",
            b"1x",
            b"1.5",
            b"0x10",
            b"+-1",
            b"1-",
        ] {
            assert_eq!(strtoull(bad), None, "{bad:?}");
            assert_eq!(strtol32(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whitespace_other_than_space_is_skipped_before_and_ends_the_number_after() {
        assert_eq!(strtol32(b"\t1"), Some(1));
        assert_eq!(strtol32(b"\r\x0b\x0c-1"), Some(-1));
        assert_eq!(strtol32(b"1\tjunk"), Some(1));
        assert_eq!(strtol32(b"1\rx"), Some(1));
        assert_eq!(strtoull(b"+5\x0c"), Some(5));
    }

    #[test]
    fn signed_32_bit_numbers_are_truncated_from_64_bits() {
        assert_eq!(strtol32(b"4294967296"), Some(0));
        assert_eq!(strtol32(b"4294967297"), Some(1));
        assert_eq!(strtol32(b"-4294967295"), Some(1));
        assert_eq!(strtol32(b"2147483648"), Some(i32::MIN));
        assert_eq!(strtol32(b"9223372036854775807"), Some(-1));
        // Outside C's long: ERANGE.
        assert_eq!(strtol32(b"9223372036854775808"), None);
        assert_eq!(strtol32(b"-9223372036854775808"), Some(0));
        assert_eq!(strtol32(b"-9223372036854775809"), None);
    }

    #[test]
    fn unsigned_numbers_take_a_minus_sign_unless_the_result_looks_negative() {
        assert_eq!(strtoull(b"-1"), None);
        assert_eq!(strtoull(b"-0"), Some(0));
        assert_eq!(strtoull(b"-18446744073709551615"), Some(1));
        assert_eq!(strtoull(b"-9223372036854775808"), None);
        assert_eq!(strtoull(b"-9223372036854775809"), Some(9223372036854775807));
        assert_eq!(strtoull(b"18446744073709551616"), None);
    }

    #[test]
    fn unsigned_32_bit_numbers_are_truncated_from_64_bits() {
        assert_eq!(strtoul32(b"4294967296"), Some(0));
        assert_eq!(strtoul32(b"-18446744073709551615"), Some(1));
        assert_eq!(strtoul32(b"-1"), None);
    }
}
