//! The key space: keys `key:<n>`, `n` zero-padded to the width of the largest one, so every key
//! has the same length (and so does every request of one kind).

/// What every key starts with.
pub const KEY_PREFIX: &[u8] = b"key:";

/// Keys `key:0 .. key:<count - 1>`, all of one width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpace {
    count: u32,
    width: usize,
}

impl KeySpace {
    /// `count` keys (at least one).
    pub fn new(count: u32) -> Self {
        let count = count.max(1);
        Self {
            count,
            width: decimal_digits(u64::from(count - 1)),
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// Appends key `n` to `out`.
    pub fn write(&self, n: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(KEY_PREFIX);
        let start = out.len();
        out.resize(start + self.width, b'0');
        let mut v = n;
        for digit in out[start..].iter_mut().rev() {
            *digit = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }

    /// The number of `key` if it is one of this space's keys, written exactly as
    /// [`KeySpace::write`] writes it.
    pub fn parse(&self, key: &[u8]) -> Option<u32> {
        let digits = key.strip_prefix(KEY_PREFIX)?;
        if digits.len() != self.width {
            return None;
        }
        let mut n: u64 = 0;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u64::from(d - b'0');
        }
        u32::try_from(n).ok().filter(|&n| n < self.count)
    }
}

/// How many decimal digits `v` has (1 for 0).
pub fn decimal_digits(mut v: u64) -> usize {
    let mut digits = 1;
    while v >= 10 {
        v /= 10;
        digits += 1;
    }
    digits
}

/// Appends `v` in decimal, without going through `fmt`.
pub fn write_decimal(out: &mut Vec<u8>, v: u64) {
    let start = out.len();
    out.resize(start + decimal_digits(v), b'0');
    let mut v = v;
    for digit in out[start..].iter_mut().rev() {
        *digit = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(space: &KeySpace, n: u32) -> Vec<u8> {
        let mut out = Vec::new();
        space.write(n, &mut out);
        out
    }

    #[test]
    fn keys_are_zero_padded_to_the_widest() {
        let space = KeySpace::new(10_000);
        assert_eq!(key(&space, 0), b"key:0000");
        assert_eq!(key(&space, 42), b"key:0042");
        assert_eq!(key(&space, 9_999), b"key:9999");
        assert_eq!(key(&KeySpace::new(10_001), 7), b"key:00007");
        assert_eq!(key(&KeySpace::new(1), 0), b"key:0");
        assert_eq!(
            key(&KeySpace::new(u32::MAX), u32::MAX - 1),
            b"key:4294967294"
        );
    }

    #[test]
    fn parse_takes_back_exactly_what_write_wrote() {
        let space = KeySpace::new(10_000);
        for n in [0, 1, 42, 9_999] {
            assert_eq!(space.parse(&key(&space, n)), Some(n));
        }
        for bad in [
            &b"key:42"[..],
            b"key:00042",
            b"key:10000",
            b"kex:0042",
            b"key:00-1",
            b"",
            b"key:",
        ] {
            assert_eq!(space.parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(KeySpace::new(u32::MAX).parse(b"key:9999999999"), None);
    }

    #[test]
    fn decimal() {
        let mut out = Vec::new();
        for v in [0, 9, 10, 4_194_304, u64::MAX] {
            out.clear();
            write_decimal(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
    }
}
