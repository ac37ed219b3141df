//! The sizes a client request may have.

/// memcached's `KEY_MAX_LENGTH`: a longer key is answered with
/// `CLIENT_ERROR bad command line format`, so one router key space fits any memcached.
pub const DEFAULT_MAX_KEY_LEN: usize = 250;

/// memcached's default item size limit (`-I 1m`). memcached itself refuses somewhat less than
/// this (the limit covers its item header and the key too: with a 3-byte key, 1_048_514 bytes
/// is the largest value 1.6.18 stores), so values just under the limit reach the backend and
/// are refused there, with the same reply.
pub const DEFAULT_MAX_VALUE_LEN: usize = 1024 * 1024;

/// How many bytes memcached buffers without finding a newline before it gives up on a
/// connection (unless the line is a `get`/`gets`, which may be any length).
pub const DEFAULT_MAX_LINE_LEN: usize = 2048;

/// Longest request line the router reads, however it arrives: 2 MiB, a multi-key `get` of
/// 8,000 keys of the longest kind (250 bytes) or over 100,000 short ones, and what the router
/// allowed an unterminated `get` line before (memcached's default item size plus 1 MiB).
/// memcached has no such cap (it grows its buffer for a multi-get without bound); a router
/// serving thousands of clients cannot hold a line of any length for each.
pub const DEFAULT_LINE_CAP: usize = 2 << 20;

/// The sizes a client request may have. `Default` gives memcached's own, except
/// [`Limits::line_cap`], which memcached does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes.
    pub max_key_len: usize,
    /// Longest value of a storage command, in bytes (without its trailing `\r\n`). A longer one
    /// is answered with `SERVER_ERROR object too large for cache` and its data swallowed.
    pub max_value_len: usize,
    /// Most bytes buffered without a newline before the connection is closed, unless they
    /// start a `get`/`gets` line. Only checked while no newline has arrived: a longer line
    /// that arrives whole is parsed, as memcached does.
    pub max_line_len: usize,
    /// Longest line accepted at all, `get`s included, whether its newline has arrived or not:
    /// a longer one is answered with `SERVER_ERROR out of memory reading request` (what
    /// memcached answers when it cannot buffer a request) and the connection is closed. So
    /// whether a line fits never depends on where the reads that brought it ended.
    pub line_cap: usize,
    /// Values of at least this many bytes whose data has not all arrived yet are handed over
    /// as [`crate::Parsed::Stream`], for the caller to pass on as it arrives instead of
    /// buffering it whole. `usize::MAX`, the default, never streams.
    pub stream_from: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_key_len: DEFAULT_MAX_KEY_LEN,
            max_value_len: DEFAULT_MAX_VALUE_LEN,
            max_line_len: DEFAULT_MAX_LINE_LEN,
            line_cap: DEFAULT_LINE_CAP,
            stream_from: usize::MAX,
        }
    }
}
