//! Finding the command line in the bytes received so far.
//!
//! memcached ends a line at the first `\n` and drops one `\r` right before it. It then reads the
//! line as a C string, so a NUL byte ends it early: whatever follows on that line is ignored.
//! With no `\n` in sight it waits, unless more than 2048 bytes are buffered, when it closes the
//! connection, except for a line that (after at most 100 spaces) starts with `get ` or `gets `:
//! multi-gets may be any length.
//!
//! The router adds one cap memcached does not have: no line, `get` or not, terminated or not,
//! may be longer than [`Limits::line_cap`](crate::Limits::line_cap). The newline is looked for
//! only that far, so the answer for a line never depends on how the reads that brought it were
//! cut.

use std::ops::Range;

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// No complete line yet.
    Incomplete,
    /// A runaway line: memcached closes the connection without a reply.
    Close,
    /// A line over the cap, whether its newline came or not.
    TooLong,
    /// A complete line: `line` is what memcached reads of it, `consumed` includes its `\n`.
    Line { line: Range<usize>, consumed: usize },
}

/// Most spaces memcached skips before looking for `get ` in an unterminated long line.
const MAX_LEADING_SPACES: usize = 100;

/// Finds the first line of `buf`: memcached's rules for an unterminated line over
/// `max_line_len`, and no line over `line_cap` (its terminator not counted).
pub(crate) fn frame(buf: &[u8], max_line_len: usize, line_cap: usize) -> Framed {
    let searched = buf.get(..line_cap.saturating_add(1)).unwrap_or(buf);
    let Some(newline) = searched.iter().position(|&b| b == b'\n') else {
        return if buf.len() > max_line_len && !starts_multiget(buf) {
            Framed::Close
        } else if buf.len() > line_cap {
            Framed::TooLong
        } else {
            Framed::Incomplete
        };
    };
    // memcached keeps a lone "\r" before the "\n" (a line of just "\r"): it is an error either way.
    let end = if newline > 1 && buf.get(newline - 1) == Some(&b'\r') {
        newline - 1
    } else {
        newline
    };
    let end = buf
        .get(..end)
        .and_then(|l| l.iter().position(|&b| b == 0))
        .unwrap_or(end);
    Framed::Line {
        line: 0..end,
        consumed: newline + 1,
    }
}

/// Whether an unterminated line may go on growing: a `get`/`gets` after at most 100 spaces.
fn starts_multiget(buf: &[u8]) -> bool {
    let spaces = buf.iter().take_while(|&&b| b == b' ').count();
    let rest = buf.get(spaces..).unwrap_or_default();
    spaces <= MAX_LEADING_SPACES && (rest.starts_with(b"get ") || rest.starts_with(b"gets "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 2048;
    const CAP: usize = 1 << 20;

    fn line(line: Range<usize>, consumed: usize) -> Framed {
        Framed::Line { line, consumed }
    }

    #[test]
    fn a_line_ends_at_crlf_or_a_bare_newline() {
        assert_eq!(frame(b"get a\r\nget b\r\n", MAX, CAP), line(0..5, 7));
        assert_eq!(frame(b"get a\nget b\r\n", MAX, CAP), line(0..5, 6));
    }

    #[test]
    fn only_one_carriage_return_is_dropped() {
        assert_eq!(frame(b"get a\r\r\n", MAX, CAP), line(0..6, 8));
        assert_eq!(frame(b"get a\rb\n", MAX, CAP), line(0..7, 8));
        // A line of one "\r" keeps it; that line is an error anyway.
        assert_eq!(frame(b"\r\n", MAX, CAP), line(0..1, 2));
        assert_eq!(frame(b"\n", MAX, CAP), line(0..0, 1));
    }

    #[test]
    fn a_nul_byte_ends_the_line_early() {
        assert_eq!(frame(b"get a\0b c\r\n", MAX, CAP), line(0..5, 11));
        assert_eq!(frame(b"\0get a\r\n", MAX, CAP), line(0..0, 8));
    }

    #[test]
    fn no_newline_waits() {
        assert_eq!(frame(b"", MAX, CAP), Framed::Incomplete);
        assert_eq!(frame(b"get a\r", MAX, CAP), Framed::Incomplete);
        assert_eq!(frame(&[b'x'; MAX], MAX, CAP), Framed::Incomplete);
    }

    #[test]
    fn more_than_2048_bytes_without_newline_close_unless_a_multiget() {
        let mut set = b"set ".to_vec();
        set.resize(MAX + 1, b'a');
        assert_eq!(frame(&set, MAX, CAP), Framed::Close);

        for prefix in [&b"get "[..], b"gets ", &[b' '; 100], b"get\t"] {
            let mut long = prefix.to_vec();
            if prefix.iter().all(|&b| b == b' ') {
                long.extend_from_slice(b"get ");
            }
            long.resize(MAX + 1, b'k');
            let expected = if prefix == b"get\t" {
                Framed::Close
            } else {
                Framed::Incomplete
            };
            assert_eq!(
                frame(&long, MAX, CAP),
                expected,
                "{:?}",
                String::from_utf8_lossy(prefix)
            );
        }
        // gat is not exempt, and neither is a get after 101 spaces.
        let mut gat = b"gat 0 ".to_vec();
        gat.resize(MAX + 1, b'k');
        assert_eq!(frame(&gat, MAX, CAP), Framed::Close);
        let mut spaced = vec![b' '; 101];
        spaced.extend_from_slice(b"get ");
        spaced.resize(MAX + 1, b'k');
        assert_eq!(frame(&spaced, MAX, CAP), Framed::Close);
    }

    #[test]
    fn no_line_is_longer_than_the_cap_however_it_arrives() {
        let mut get = b"get".to_vec();
        while get.len() < CAP + 1 {
            get.extend_from_slice(b" k");
        }
        get.truncate(CAP + 1);
        // Unterminated, and terminated in the same read.
        assert_eq!(frame(&get, MAX, CAP), Framed::TooLong);
        let mut whole = get.clone();
        whole.extend_from_slice(b"\r\n");
        assert_eq!(frame(&whole, MAX, CAP), Framed::TooLong);
        // A line of exactly the cap (its "\r" counted) is read.
        whole.truncate(CAP - 1);
        whole.extend_from_slice(b"\r\n");
        assert_eq!(frame(&whole, MAX, CAP), line(0..CAP - 1, CAP + 1));
        assert_eq!(frame(&whole[..CAP], MAX, CAP), Framed::Incomplete);
    }

    #[test]
    fn a_long_line_that_arrives_whole_is_read() {
        let mut set = b"set ".to_vec();
        set.resize(3000, b'a');
        set.extend_from_slice(b"\r\n");
        assert_eq!(frame(&set, MAX, CAP), line(0..3000, 3002));
    }
}
