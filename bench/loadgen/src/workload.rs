//! What the load is made of: which operation, which keys, how large a value; and the request
//! bytes for each, written into a buffer the connection reuses. The value bytes are built once
//! for the whole run and copied from.

use std::fmt;

use crate::keys::{KeySpace, write_decimal};
use crate::rng::Rng;

/// The operations the load mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `get <key>`.
    Get,
    /// `set <key> 0 0 <bytes>` and a value.
    Set,
    /// `get <key> <key> ...` with `--mget-keys` distinct keys.
    Mget,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Get, Op::Set, Op::Mget];

    pub fn index(self) -> usize {
        match self {
            Op::Get => 0,
            Op::Set => 1,
            Op::Mget => 2,
        }
    }

    /// Its name in `--mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Mget => "mget",
        }
    }
}

/// Relative weights of the operations (`--mix get=90,set=10,mget=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    pub weights: [u32; 3],
}

impl Mix {
    pub fn weight(&self, op: Op) -> u32 {
        self.weights[op.index()]
    }

    pub fn total(&self) -> u64 {
        self.weights.iter().map(|&w| u64::from(w)).sum()
    }

    /// One operation, each with its weight's share of chances. The total must not be zero.
    pub fn pick(&self, rng: &mut Rng) -> Op {
        let mut draw = rng.below(self.total());
        for op in Op::ALL {
            let weight = u64::from(self.weight(op));
            if draw < weight {
                return op;
            }
            draw -= weight;
        }
        Op::Get
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [get, set, mget] = self.weights;
        write!(f, "get={get},set={set},mget={mget}")
    }
}

/// Value sizes, drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeRange {
    pub min: usize,
    pub max: usize,
}

impl fmt::Display for SizeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// What the next request is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Drawn from the mix.
    Drawn,
    /// A `set` of this key (prefill).
    SetKey(u32),
}

/// The load: shared, read-only, by every connection.
#[derive(Debug)]
pub struct Workload {
    pub keys: KeySpace,
    pub mix: Mix,
    pub sizes: SizeRange,
    pub mget_keys: usize,
    /// `sizes.max` bytes: every value sent is a prefix of this.
    value: Box<[u8]>,
}

impl Workload {
    pub fn new(keys: KeySpace, mix: Mix, sizes: SizeRange, mget_keys: usize) -> Self {
        let value = (0..sizes.max).map(|i| b'a' + (i % 26) as u8).collect();
        Self {
            keys,
            mix,
            sizes,
            mget_keys: mget_keys.clamp(1, keys.count() as usize),
            value,
        }
    }

    /// Chooses the next request, puts the keys it reads in `keys` (empty for a set) and appends
    /// its bytes to `out`; returns its operation.
    pub fn write(&self, next: Next, rng: &mut Rng, keys: &mut Vec<u32>, out: &mut Vec<u8>) -> Op {
        keys.clear();
        let count = u64::from(self.keys.count());
        match next {
            Next::SetKey(key) => {
                self.write_set(key, rng, out);
                Op::Set
            }
            Next::Drawn => match self.mix.pick(rng) {
                Op::Set => {
                    self.write_set(rng.below(count) as u32, rng, out);
                    Op::Set
                }
                Op::Get => {
                    keys.push(rng.below(count) as u32);
                    self.write_get(keys, out);
                    Op::Get
                }
                Op::Mget => {
                    // Distinct keys, so that a reply's VALUE blocks can be told apart; the
                    // count is at most the key space's size, and usually far below it.
                    while keys.len() < self.mget_keys {
                        let key = rng.below(count) as u32;
                        if !keys.contains(&key) {
                            keys.push(key);
                        }
                    }
                    self.write_get(keys, out);
                    Op::Mget
                }
            },
        }
    }

    fn write_set(&self, key: u32, rng: &mut Rng, out: &mut Vec<u8>) {
        let size = rng.between(self.sizes.min as u64, self.sizes.max as u64) as usize;
        out.extend_from_slice(b"set ");
        self.keys.write(key, out);
        out.extend_from_slice(b" 0 0 ");
        write_decimal(out, size as u64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.value[..size]);
        out.extend_from_slice(b"\r\n");
    }

    fn write_get(&self, keys: &[u32], out: &mut Vec<u8>) {
        out.extend_from_slice(b"get");
        for &key in keys {
            out.push(b' ');
            self.keys.write(key, out);
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(mix: [u32; 3], sizes: (usize, usize), mget_keys: usize) -> Workload {
        Workload::new(
            KeySpace::new(100),
            Mix { weights: mix },
            SizeRange {
                min: sizes.0,
                max: sizes.1,
            },
            mget_keys,
        )
    }

    #[test]
    fn a_set_carries_a_value_of_the_size_it_announces() {
        let w = workload([0, 1, 0], (3, 3), 1);
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let op = w.write(Next::SetKey(7), &mut Rng::new(1), &mut keys, &mut out);
        assert_eq!(op, Op::Set);
        assert!(keys.is_empty());
        assert_eq!(out, b"set key:07 0 0 3\r\nabc\r\n");
    }

    #[test]
    fn sizes_are_drawn_from_the_whole_range() {
        let w = workload([0, 1, 0], (1, 4), 1);
        let mut rng = Rng::new(3);
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let mut sizes = std::collections::BTreeSet::new();
        for _ in 0..200 {
            out.clear();
            w.write(Next::Drawn, &mut rng, &mut keys, &mut out);
            let line_end = out.iter().position(|&b| b == b'\n').expect("a line");
            sizes.insert(out.len() - line_end - 3);
        }
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn a_multi_get_asks_for_distinct_keys_and_records_them() {
        let w = workload([0, 0, 1], (1, 1), 5);
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let op = w.write(Next::Drawn, &mut Rng::new(9), &mut keys, &mut out);
        assert_eq!(op, Op::Mget);
        assert_eq!(keys.len(), 5);
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
        let line = String::from_utf8(out).expect("ascii");
        let expected: Vec<String> = keys.iter().map(|k| format!("key:{k:02}")).collect();
        assert_eq!(line, format!("get {}\r\n", expected.join(" ")));
    }

    #[test]
    fn the_mix_is_followed() {
        let w = workload([3, 1, 0], (1, 1), 1);
        let mut rng = Rng::new(5);
        let (mut keys, mut out) = (Vec::new(), Vec::new());
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[w.write(Next::Drawn, &mut rng, &mut keys, &mut out).index()] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((29_000..31_000).contains(&counts[0]), "{counts:?}");
    }
}
