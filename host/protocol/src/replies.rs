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
/// The end of a retrieval reply, and all of a miss.
pub const END: &[u8] = b"END\r\n";
