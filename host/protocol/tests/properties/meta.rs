//! Meta requests and replies, for the property tests.

use proptest::prelude::*;
use switchyard_protocol::{Command, ReplyKind, compose};

use super::{Fields, key};

/// Every reply kind of a meta command.
pub(super) const KINDS: [ReplyKind; 6] = [
    ReplyKind::MetaGet,
    ReplyKind::MetaSet,
    ReplyKind::MetaDelete,
    ReplyKind::MetaArithmetic,
    ReplyKind::MetaNoop,
    ReplyKind::MetaDebug,
];

/// A meta request, as the fields it is composed from.
#[derive(Debug, Clone)]
pub(super) struct MetaExample {
    command: Command,
    /// The key the request is routed by: sent as is, or in base64 with the `b` flag.
    key: Vec<u8>,
    base64: bool,
    /// The flag tokens, `b` included, in the order sent.
    flags: Vec<Vec<u8>>,
    /// `ms`: the data.
    value: Vec<u8>,
}

/// Standard base64 with padding, as a client encodes a binary key.
fn encode(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// A short token argument: what a client puts in `O`, `P` or `L`.
fn word(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"abcxyz019_-/".to_vec()), 0..=max)
}

/// One of each flag memcached knows but `b`, with arguments; `mode` for `M`.
fn all_flags(mode: u8) -> impl Strategy<Value = Vec<Vec<u8>>> {
    (
        any::<(i32, i32, i32, u32, u64, u64, u64)>(),
        word(31),
        word(8),
        word(8),
    )
        .prop_map(move |((n, t, r, f, c, d, j), opaque, p, l)| {
            let mut flags: Vec<Vec<u8>> = [b"v", b"k", b"s", b"t", b"c", b"f", b"h", b"l", b"u"]
                .iter()
                .chain([b"I", b"q"].iter())
                .map(|f| f.to_vec())
                .collect();
            for (letter, arg) in [
                (b'N', n.to_string().into_bytes()),
                (b'T', t.to_string().into_bytes()),
                (b'R', r.to_string().into_bytes()),
                (b'F', f.to_string().into_bytes()),
                (b'C', c.to_string().into_bytes()),
                (b'D', d.to_string().into_bytes()),
                (b'J', j.to_string().into_bytes()),
                (b'O', opaque.clone()),
                (b'P', p.clone()),
                (b'L', l.clone()),
                (b'M', vec![mode]),
            ] {
                flags.push([&[letter][..], &arg].concat());
            }
            flags
        })
}

pub(super) fn example() -> impl Strategy<Value = MetaExample> {
    use Command::*;
    let key = prop_oneof![
        key().prop_map(|k| (k, false)),
        // 186 bytes encode to 248, within memcached's 250.
        prop::collection::vec(any::<u8>(), 1..=186).prop_map(|k| (k, true)),
    ];
    let keyed = (
        prop::sample::select(vec![MetaGet, MetaSet, MetaDelete, MetaArithmetic]),
        key.clone(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_flat_map(|(command, (key, base64), mode, b_at, value)| {
            let modes: &[u8] = match command {
                MetaSet => b"EAPRS",
                MetaArithmetic => b"I+D-",
                _ => b"xyzEI",
            };
            let mode = modes[mode.index(modes.len())];
            // ms has three tokens before its flags, and `b` may be one more: 15 keeps to 19.
            let flags = all_flags(mode)
                .prop_flat_map(|all| prop::sample::subsequence(all, 0..=15))
                .prop_shuffle();
            (Just((command, key, base64, b_at, value)), flags)
        })
        .prop_map(|((command, key, base64, b_at, value), mut flags)| {
            if base64 {
                flags.insert(b_at.index(flags.len() + 1), b"b".to_vec());
            }
            MetaExample {
                command,
                key,
                base64,
                flags,
                value: if command == MetaSet {
                    value
                } else {
                    Vec::new()
                },
            }
        });
    let debug = key.prop_map(|(key, base64)| MetaExample {
        command: MetaDebug,
        key,
        base64,
        flags: if base64 {
            vec![b"b".to_vec()]
        } else {
            Vec::new()
        },
        value: Vec::new(),
    });
    let noop = Just(MetaExample {
        command: MetaNoop,
        key: Vec::new(),
        base64: false,
        flags: Vec::new(),
        value: Vec::new(),
    });
    prop_oneof![6 => keyed, 1 => debug, 1 => noop]
}

impl MetaExample {
    /// The key as sent.
    fn sent_key(&self) -> Vec<u8> {
        if self.base64 {
            encode(&self.key)
        } else {
            self.key.clone()
        }
    }

    /// The request's bytes, as `compose` writes them.
    pub(super) fn compose(&self, out: &mut Vec<u8>) {
        let flags = self.flags.iter().map(Vec::as_slice);
        compose::meta(out, self.command, &self.sent_key(), self.value.len(), flags);
        if self.command == Command::MetaSet {
            out.extend_from_slice(&self.value);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// What parsing it must give back.
    pub(super) fn expected(&self, f: &mut Fields) {
        f.command = Some(self.command);
        if self.command != Command::MetaNoop {
            f.keys = vec![self.sent_key()];
        }
        f.routing_key = self.key.clone();
        f.base64 = self.base64;
        f.value = self.value.clone();
        f.meta_flags = self.flags.clone();
        if self.command == Command::MetaDebug {
            return;
        }
        f.delta = u64::from(self.command == Command::MetaArithmetic);
        for flag in &self.flags {
            let (letter, arg) = (flag[0], &flag[1..]);
            let number = std::str::from_utf8(arg).unwrap_or_default();
            match letter {
                b'q' => f.quiet = true,
                b'O' => f.opaque = Some(arg.to_vec()),
                b'M' => f.mode = Some(arg[0]),
                b'T' => f.exptime = number.parse().expect("a number"),
                b'F' => f.flags = number.parse().expect("a number"),
                b'C' => f.cas = number.parse().expect("a number"),
                b'D' => f.delta = number.parse().expect("a number"),
                _ => {}
            }
        }
    }
}

/// A meta reply memcached may send, and the kind of request it answers.
pub(super) fn reply() -> impl Strategy<Value = (ReplyKind, Vec<u8>)> {
    use ReplyKind::*;
    let flags = (key(), any::<u64>(), word(31)).prop_flat_map(|(key, n, opaque)| {
        let all = vec![
            [&b"k"[..], &key].concat(),
            [&b"O"[..], &opaque].concat(),
            format!("c{n}").into_bytes(),
            b"t-1".to_vec(),
            format!("s{}", n % 100).into_bytes(),
            b"f0".to_vec(),
            b"h1".to_vec(),
            b"l0".to_vec(),
            b"b".to_vec(),
            b"W".to_vec(),
            b"X".to_vec(),
            b"Z".to_vec(),
        ];
        prop::sample::subsequence(all, 0..=6).prop_shuffle()
    });
    let kinds = prop::sample::select(KINDS.to_vec());
    (
        kinds,
        any::<prop::sample::Index>(),
        flags,
        prop::collection::vec(any::<u8>(), 0..40),
        any::<u64>(),
        key(),
    )
        .prop_map(|(kind, code, flags, data, number, key)| {
            let codes: &[&str] = match kind {
                MetaGet => &["VA", "HD", "EN"],
                MetaSet => &["HD", "NS", "EX", "NF"],
                MetaDelete => &["HD", "NF", "EX"],
                MetaArithmetic => &["VA", "HD", "NF", "NS", "EX"],
                MetaNoop => &["MN"],
                _ => &["ME", "EN"],
            };
            let code = codes[code.index(codes.len())];
            let data = match kind {
                MetaArithmetic => number.to_string().into_bytes(),
                _ => data,
            };
            let mut bytes = code.as_bytes().to_vec();
            match (kind, code) {
                (_, "VA") => bytes.extend_from_slice(format!(" {}", data.len()).as_bytes()),
                (MetaDebug, "ME") => {
                    bytes.push(b' ');
                    bytes.extend_from_slice(&key);
                    bytes.extend_from_slice(
                        format!(" exp=-1 la=0 cas={number} fetch=no cls=1 size=61").as_bytes(),
                    );
                }
                _ => {}
            }
            if !matches!(kind, MetaNoop | MetaDebug) {
                for flag in &flags {
                    bytes.push(b' ');
                    bytes.extend_from_slice(flag);
                }
            }
            bytes.extend_from_slice(b"\r\n");
            if code == "VA" {
                bytes.extend_from_slice(&data);
                bytes.extend_from_slice(b"\r\n");
            }
            (kind, bytes)
        })
}

#[test]
fn base64_encoding_is_standard() {
    assert_eq!(encode(b"a"), b"YQ==");
    assert_eq!(encode(b"ab"), b"YWI=");
    assert_eq!(encode(b"abc"), b"YWJj");
    assert_eq!(encode(&[0, 0xff, b' ', b'\n']), b"AP8gCg==");
}
