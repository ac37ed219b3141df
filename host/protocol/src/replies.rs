//! Fixed reply lines, byte for byte as memcached 1.6 sends them (`proto_text.c`).

/// Unknown command, wrong number of tokens, empty line.
pub const ERROR: &[u8] = b"ERROR\r\n";
/// A key over 250 bytes, or a storage command's numbers unreadable.
pub const BAD_FORMAT: &[u8] = b"CLIENT_ERROR bad command line format\r\n";
/// `delete <key> <anything but 0>`. (Two spaces after the full stop, as memcached has them.)
pub const BAD_DELETE: &[u8] =
    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
/// The data block of a storage command does not end in `\r\n`.
pub const BAD_DATA_CHUNK: &[u8] = b"CLIENT_ERROR bad data chunk\r\n";
/// `incr`/`decr` with a delta that is not an unsigned 64-bit number.
pub const BAD_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta argument\r\n";
/// `touch`, `gat`, `gats` or `flush_all` with an unreadable time.
pub const BAD_EXPTIME: &[u8] = b"CLIENT_ERROR invalid exptime argument\r\n";
/// A storage command announcing a value over the size limit.
pub const TOO_LARGE: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
/// A request line over the router's line cap (`Limits::line_cap`), terminated or not:
/// memcached's reply when it cannot grow its read buffer for a request, after which it closes
/// the connection.
pub const LINE_TOO_LONG: &[u8] = b"SERVER_ERROR out of memory reading request\r\n";
/// The end of a retrieval reply, and all of a miss.
pub const END: &[u8] = b"END\r\n";

// Meta commands. memcached never hushes these, not even for a request with the `q` flag.

/// `mg` with 20 or more tokens (memcached looks at no more than 19).
pub const META_GET_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags are too long\r\n";
/// `ms`, `md`, `ma` with 20 or more tokens (`mg` says it differently).
pub const META_TOO_LONG: &[u8] = b"CLIENT_ERROR options flags too long\r\n";
/// `mg`, `ms`: a flag given twice, or whose first byte is not ASCII.
pub const DUPLICATE_FLAG: &[u8] = b"CLIENT_ERROR duplicate flag\r\n";
/// `mg`, `ms`: a flag memcached does not know.
pub const INVALID_FLAG: &[u8] = b"CLIENT_ERROR invalid flag\r\n";
/// `mg`, `ms`: an unreadable number after `N`, `T`, `R` or `C`.
pub const BAD_TOKEN: &[u8] = b"CLIENT_ERROR bad token in command line format\r\n";
/// `mg`, `ms`: an `M` flag that is not exactly one more character.
pub const BAD_MODE_LENGTH: &[u8] = b"CLIENT_ERROR incorrect length for M token\r\n";
/// `mg`, `ms`: an unreadable `J` flag.
pub const BAD_INITIAL: &[u8] = b"CLIENT_ERROR invalid numeric initial value\r\n";
/// `mg`, `ms`: an unreadable `D` flag.
pub const BAD_META_DELTA: &[u8] = b"CLIENT_ERROR invalid numeric delta value\r\n";
/// `mg`, `ms`: a `b` flag on a key memcached cannot decode.
pub const BAD_KEY_ENCODING: &[u8] = b"CLIENT_ERROR error decoding key\r\n";
/// `md`, `ma`: any of the flag errors above, whichever it is.
pub const INVALID_OR_DUPLICATE_FLAG: &[u8] = b"CLIENT_ERROR invalid or duplicate flag\r\n";
/// An `O` token over 32 bytes, its `O` included.
pub const OPAQUE_TOO_LONG: &[u8] = b"CLIENT_ERROR opaque token too long\r\n";
/// `ms` with an `M` flag other than `E A P R S`.
pub const BAD_SET_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ms M token\r\n";
/// `ma` with an `M` flag other than `I + D -`.
pub const BAD_ARITHMETIC_MODE: &[u8] = b"CLIENT_ERROR invalid mode for ma M token\r\n";
/// The answer to `mn`.
pub const MN: &[u8] = b"MN\r\n";
