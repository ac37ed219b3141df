//! Every constant of the plugin ABI (`sdk/ABI.md`), shared by the guest side (this SDK) and the
//! host (`switchyard::plugin`), plus the bit layout of the plan word.
//!
//! Numeric codes are `u32` (the wasm `i32` reinterpreted), except plan tags, which are the low
//! byte of the plan word and therefore `u8`.

/// The ABI version this crate implements; `switchyard_abi_version` returns it.
pub const ABI_VERSION: u32 = 1;

/// The only module a plugin may import from.
pub const HOST_MODULE: &str = "switchyard";

/// Size in bytes of the area behind `switchyard_key_buffer`; longer keys never reach a plugin.
pub const KEY_CAPACITY: usize = 1024;

/// Size in bytes of the area behind `switchyard_plan_buffer`.
pub const PLAN_CAPACITY: usize = 4096;

/// Names of the functions a plugin may import from [`HOST_MODULE`].
pub mod import {
    /// `(alg: i32, ptr: i32, len: i32) -> i32`: hash bytes with a [`hash_alg`](super::hash_alg).
    pub const HASH: &str = "hash";
    /// `(ptr: i32, len: i32, out: i32)`: write the 16-byte MD5 digest of the bytes to `out`.
    pub const MD5: &str = "md5";
    /// `() -> i32`: number of children of this node.
    pub const CHILD_COUNT: &str = "child_count";
    /// `(idx: i32, out: i32, cap: i32) -> i32`: copy up to `cap` bytes of the child's name to
    /// `out`, return its full length.
    pub const CHILD_NAME: &str = "child_name";
    /// `(idx: i32) -> i32`: the child's weight (servers: `:weight`; routes: 1).
    pub const CHILD_WEIGHT: &str = "child_weight";
    /// `(idx: i32) -> i32`: 1 if the child is usable, 0 if it is marked down.
    pub const CHILD_HEALTHY: &str = "child_healthy";
    /// `() -> i64`: 64 random bits.
    pub const RANDOM: &str = "random";
    /// `() -> i64`: wall-clock milliseconds since the Unix epoch.
    pub const NOW_MS: &str = "now_ms";
    /// `(level: i32, ptr: i32, len: i32)`: log a UTF-8 message at a [`log_level`](super::log_level).
    pub const LOG: &str = "log";
    /// `(ptr: i32, len: i32)`: during `init`, the reason the configuration is rejected.
    pub const SET_ERROR: &str = "set_error";
    /// `(out: i32, cap: i32) -> i32`: during `route` or `on_reply`, copy up to `cap` bytes of
    /// the requesting client's identity (from its TLS certificate) to `out` and return its full
    /// length; -1 when the client has none.
    pub const CLIENT_IDENTITY: &str = "client_identity";
    /// `(kind: i32, ptr: i32, len: i32) -> i32`: during `init`, define a metric of a
    /// [`metric_kind`](super::metric_kind) named by the bytes; its id, or a negative
    /// [`metric_define`](super::metric_define) error.
    pub const METRIC_DEFINE: &str = "metric_define";
    /// `(id: i32, delta: i64)`: add `delta` (a `u64`) to a counter.
    pub const COUNTER_ADD: &str = "counter_add";
    /// `(id: i32, value: i64)`: record `value` (a `u64`) in a histogram.
    pub const HISTOGRAM_RECORD: &str = "histogram_record";

    /// Every import a version 1 plugin may use; anything else is refused at load.
    pub const ALL: [&str; 14] = [
        HASH,
        MD5,
        CHILD_COUNT,
        CHILD_NAME,
        CHILD_WEIGHT,
        CHILD_HEALTHY,
        RANDOM,
        NOW_MS,
        LOG,
        SET_ERROR,
        CLIENT_IDENTITY,
        METRIC_DEFINE,
        COUNTER_ADD,
        HISTOGRAM_RECORD,
    ];
}

/// Names of the plugin's exports.
pub mod export {
    /// The plugin's linear memory.
    pub const MEMORY: &str = "memory";
    /// `() -> i32`: must return [`ABI_VERSION`](super::ABI_VERSION).
    pub const ABI_VERSION: &str = "switchyard_abi_version";
    /// `() -> i32`: address of the [`KEY_CAPACITY`](super::KEY_CAPACITY)-byte key area.
    pub const KEY_BUFFER: &str = "switchyard_key_buffer";
    /// `() -> i32`: address of the [`PLAN_CAPACITY`](super::PLAN_CAPACITY)-byte plan area.
    pub const PLAN_BUFFER: &str = "switchyard_plan_buffer";
    /// `(len: i32) -> i32`: allocate `len` bytes for the configuration; 0 on failure.
    pub const ALLOC: &str = "switchyard_alloc";
    /// `(cfg_ptr: i32, cfg_len: i32) -> i32`: configure the instance; 0 on success.
    pub const INIT: &str = "switchyard_init";
    /// `(op: i32, key_len: i32, flags: i32, exptime: i64, value_len: i32, listener: i32) -> i64`:
    /// route one request; returns a plan word.
    pub const ROUTE: &str = "switchyard_route";
    /// Optional, `(cookie: i32, status: i32, op: i32, key_len: i32) -> i64`: the continuation of
    /// a `call` entry; `status` is a [`status`](super::status) code, the key is in the key
    /// buffer again. Returns a plan word, which may also be [`tag::PASS`](super::tag::PASS).
    pub const ON_REPLY: &str = "switchyard_on_reply";
}

/// Operation codes, the `op` argument of `route`.
pub mod op {
    /// `get`
    pub const GET: u32 = 1;
    /// `gets`
    pub const GETS: u32 = 2;
    /// `gat`
    pub const GAT: u32 = 3;
    /// `gats`
    pub const GATS: u32 = 4;
    /// `set`
    pub const SET: u32 = 5;
    /// `add`
    pub const ADD: u32 = 6;
    /// `replace`
    pub const REPLACE: u32 = 7;
    /// `append`
    pub const APPEND: u32 = 8;
    /// `prepend`
    pub const PREPEND: u32 = 9;
    /// `cas`
    pub const CAS: u32 = 10;
    /// `delete`
    pub const DELETE: u32 = 11;
    /// `incr`
    pub const INCR: u32 = 12;
    /// `decr`
    pub const DECR: u32 = 13;
    /// `touch`
    pub const TOUCH: u32 = 14;
    /// `mg` (meta get)
    pub const META_GET: u32 = 15;
    /// `ms` (meta set)
    pub const META_SET: u32 = 16;
    /// `md` (meta delete)
    pub const META_DELETE: u32 = 17;
    /// `ma` (meta arithmetic)
    pub const META_ARITHMETIC: u32 = 18;
    /// `me` (meta debug)
    pub const META_DEBUG: u32 = 19;
    /// Codes from this one up are reserved; plugins route them like `get`.
    pub const RESERVED_FROM: u32 = 20;
}

/// Plan tags, the low byte of the plan word.
pub mod tag {
    /// `forward(child)`: `small` 0, `arg` the child index.
    pub const FORWARD: u8 = 1;
    /// `reply(code)`: `small` a [`reply`](super::reply) code, `arg` the message length.
    pub const REPLY: u8 = 2;
    /// Extended plan in the plan buffer: `small` 0, `arg` its length in bytes.
    pub const PLAN: u8 = 3;
    /// `pass`, from `on_reply` only: the reply just received is the node's reply. `small` and
    /// `arg` 0. The host refuses it from `route` (there is no reply yet).
    pub const PASS: u8 = 4;
}

/// Reply codes, the `small` field of a [`crate::abi::tag::REPLY`] plan.
pub mod reply {
    /// The key is absent (a miss, `NOT_STORED` or `NOT_FOUND` depending on the operation).
    pub const MISS: u32 = 0;
    /// `NOT_STORED`
    pub const NOT_STORED: u32 = 1;
    /// `STORED`
    pub const STORED: u32 = 2;
    /// `EXISTS`
    pub const EXISTS: u32 = 3;
    /// `NOT_FOUND`
    pub const NOT_FOUND: u32 = 4;
    /// `DELETED`
    pub const DELETED: u32 = 5;
    /// `TOUCHED`
    pub const TOUCHED: u32 = 6;
    /// `ERROR`
    pub const ERROR: u32 = 7;
    /// `SERVER_ERROR <message>`
    pub const SERVER_ERROR: u32 = 8;
    /// `CLIENT_ERROR <message>`
    pub const CLIENT_ERROR: u32 = 9;
}

/// Entry opcodes of an extended plan.
pub mod entry {
    /// `fan_out` (primary): payload `wait`, then the child indexes.
    pub const FAN_OUT: u32 = 1;
    /// `call` (primary): payload `child`, `cookie`. The host sends the request to the child and
    /// hands its reply's [`status`](super::status) and the cookie to `switchyard_on_reply`.
    pub const CALL: u32 = 2;
    /// `background` (secondary, up to [`MAX_BACKGROUND`](super::MAX_BACKGROUND) per plan):
    /// payload `child`, `op` (0: the request as it is; an [`op`](super::op) code `SET`, `ADD`
    /// or `REPLACE`: store the value), [`background`](super::background) flags, then a
    /// rewrite (as in [`REWRITE`]). The reply is read and dropped.
    pub const BACKGROUND: u32 = 3;
    /// `forward` (primary): payload `child`. The same as the plan word's `forward`, for plans
    /// that carry secondary entries.
    pub const FORWARD: u32 = 4;
    /// `reply` (primary): payload the [`reply`](super::reply) code, the message length in
    /// bytes, then the message, zero-padded to whole words.
    pub const REPLY: u32 = 5;
    /// `pass` (primary, from `on_reply` only): no payload.
    pub const PASS: u32 = 6;
    /// `rewrite` (secondary, at most one): what the primary entry sends is the request
    /// rewritten. Payload: the [`exptime`](super::exptime) mode, the exptime as two words (low,
    /// high; an `i64`), the number of bytes to strip from the start of the key, the length of
    /// the prefix to put before it, then the prefix, zero-padded to whole words.
    pub const REWRITE: u32 = 7;
}

/// Exptime modes of a `rewrite` or `background` entry.
pub mod exptime {
    /// Leave the exptime as the request has it.
    pub const KEEP: u32 = 0;
    /// Replace it with the entry's value.
    pub const SET: u32 = 1;
    /// Cap it at the entry's value in seconds from now: an exptime of 0 (never) or one further
    /// away becomes the cap; negative (already expired) and nearer ones stay.
    pub const CAP: u32 = 2;
}

/// Flags of a `background` entry.
pub mod background {
    /// Compare the background reply with the node's reply and count a mismatch (shadowing).
    pub const COMPARE: u32 = 1;
    /// Every flag this version knows; others are refused.
    pub const ALL: u32 = COMPARE;
}

/// Most `background` entries one plan may carry.
pub const MAX_BACKGROUND: usize = 8;

/// Longest key prefix a rewrite may add: memcached's key length limit.
pub const MAX_KEY_PREFIX: usize = 250;

/// Most `call` entries one request may chain through one node (the `route` plan's and every
/// `on_reply`'s); the host treats one more as a plugin fault. A `forward` does not count.
pub const MAX_CALLS: u32 = 8;

/// Reply statuses, the `status` argument of `switchyard_on_reply`: what the called child
/// answered.
pub mod status {
    /// A retrieval that returned values.
    pub const HIT: u32 = 0;
    /// A retrieval that returned none.
    pub const MISS: u32 = 1;
    /// `STORED`
    pub const STORED: u32 = 2;
    /// `NOT_STORED`
    pub const NOT_STORED: u32 = 3;
    /// `EXISTS`
    pub const EXISTS: u32 = 4;
    /// `NOT_FOUND`
    pub const NOT_FOUND: u32 = 5;
    /// `DELETED`
    pub const DELETED: u32 = 6;
    /// `TOUCHED`
    pub const TOUCHED: u32 = 7;
    /// A number: the result of `incr`/`decr`.
    pub const NUMBER: u32 = 8;
    /// `OK`
    pub const OK: u32 = 9;
    /// `VERSION ...`
    pub const VERSION: u32 = 10;
    /// `ERROR`
    pub const ERROR: u32 = 11;
    /// `CLIENT_ERROR ...`
    pub const CLIENT_ERROR: u32 = 12;
    /// `SERVER_ERROR ...`, the backend's or the router's own (backend down, timed out,
    /// unreachable).
    pub const SERVER_ERROR: u32 = 13;
}

/// Wait policies of a `fan_out` entry.
pub mod wait {
    /// Wait for every child; reply with the worst reply.
    pub const ALL: u32 = 0;
    /// The first reply to arrive.
    pub const FIRST: u32 = 1;
    /// The first reply that is not an error (else the worst).
    pub const FIRST_GOOD: u32 = 2;
    /// The first non-error reply more than half the children agree on (else the worst).
    pub const MAJORITY: u32 = 3;
    /// Do not wait: the operation's default (miss) reply at once.
    pub const NONE: u32 = 4;
}

/// Hash algorithms of the `hash` import (see [`crate::hash`]).
pub mod hash_alg {
    /// First four bytes of the MD5 digest, little-endian.
    pub const MD5: u32 = 0;
    /// CRC-32 (IEEE 802.3, reflected, as zlib).
    pub const CRC32: u32 = 1;
    /// 32-bit FNV-1a.
    pub const FNV1A_32: u32 = 2;
    /// 64-bit FNV-1a, low 32 bits.
    pub const FNV1A_64: u32 = 3;
}

/// Levels of the `log` import.
pub mod log_level {
    /// Error.
    pub const ERROR: u32 = 1;
    /// Warning.
    pub const WARN: u32 = 2;
    /// Information.
    pub const INFO: u32 = 3;
    /// Debugging detail.
    pub const DEBUG: u32 = 4;
}

/// Kinds of metric of the `metric_define` import.
pub mod metric_kind {
    /// A count that only goes up (`counter_add`).
    pub const COUNTER: u32 = 1;
    /// A distribution of values (`histogram_record`).
    pub const HISTOGRAM: u32 = 2;
}

/// What `metric_define` returns besides an id (which is 0 or more), and the bounds it checks.
pub mod metric_define {
    /// The name is not 1 to [`MAX_NAME_BYTES`] bytes of `a`-`z`, `0`-`9` and `_` with no
    /// leading digit.
    pub const BAD_NAME: i32 = -1;
    /// The node has [`MAX_COUNTERS`] counters or [`MAX_HISTOGRAMS`] histograms already.
    pub const TOO_MANY: i32 = -2;
    /// The name is taken by a metric of the other kind.
    pub const OTHER_KIND: i32 = -3;
    /// Called outside `init`.
    pub const NOT_IN_INIT: i32 = -4;
    /// Not a [`metric_kind`](super::metric_kind).
    pub const BAD_KIND: i32 = -5;

    /// Longest metric name.
    pub const MAX_NAME_BYTES: usize = 64;
    /// Most counters a node may define.
    pub const MAX_COUNTERS: usize = 64;
    /// Most histograms a node may define.
    pub const MAX_HISTOGRAMS: usize = 8;

    /// Whether `name` is a valid metric name.
    pub fn valid_name(name: &[u8]) -> bool {
        matches!(name.first(), Some(b'a'..=b'z' | b'_'))
            && name.len() <= MAX_NAME_BYTES
            && name
                .iter()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
    }

    /// What a negative result means, for messages.
    pub fn describe(result: i32) -> &'static str {
        match result {
            BAD_NAME => {
                "a metric name is 1 to 64 bytes of a-z, 0-9 and _, not starting with a digit"
            }
            TOO_MANY => "a node may define at most 64 counters and 8 histograms",
            OTHER_KIND => "the name is taken by a metric of the other kind",
            NOT_IN_INIT => "metrics are defined during init",
            BAD_KIND => "unknown metric kind",
            _ => "unknown error",
        }
    }
}

/// Largest value of the 24-bit `small` field of a plan word.
pub const SMALL_MAX: u32 = 0x00ff_ffff;

/// Builds a plan word: `arg` in bits 32..64, `small` in bits 8..32, `tag` in bits 0..8.
///
/// `small` must fit in 24 bits (debug builds assert it; release builds mask it).
pub const fn encode_plan_word(tag: u8, small: u32, arg: u32) -> u64 {
    debug_assert!(small <= SMALL_MAX, "plan word `small` field is 24 bits");
    ((arg as u64) << 32) | (((small & SMALL_MAX) as u64) << 8) | tag as u64
}

/// Splits a plan word into `(tag, small, arg)`; `small` is 24 bits.
pub const fn decode_plan_word(word: u64) -> (u8, u32, u32) {
    (
        (word & 0xff) as u8,
        ((word >> 8) as u32) & SMALL_MAX,
        (word >> 32) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_word_round_trips() {
        for (tag, small, arg) in [
            (tag::FORWARD, 0, 0),
            (tag::FORWARD, 0, u32::MAX),
            (tag::REPLY, reply::CLIENT_ERROR, 17),
            (tag::PLAN, SMALL_MAX, 4096),
            (0xff, 0x12_3456, 0xdead_beef),
        ] {
            assert_eq!(
                decode_plan_word(encode_plan_word(tag, small, arg)),
                (tag, small, arg)
            );
        }
    }

    #[test]
    fn plan_word_layout_matches_abi_md() {
        assert_eq!(
            encode_plan_word(tag::REPLY, reply::SERVER_ERROR, 3),
            0x0000_0003_0000_0802
        );
        // A negative i64 from the wasm side is the same bits.
        assert_eq!(decode_plan_word(-1_i64 as u64), (0xff, SMALL_MAX, u32::MAX));
    }
}
