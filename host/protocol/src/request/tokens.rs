//! Splitting a command line the way memcached's `tokenize_command` does: on spaces only. Tabs,
//! `\r` and every other byte belong to a token, so `get a\tb` asks for the key `a\tb`.
//!
//! memcached looks at no more than 23 tokens of a line (`MAX_TOKENS` is 24, counting its
//! terminator): a command with a fixed shape and more tokens than that is an `ERROR`, and a
//! `get` goes on reading keys past them. [`Tokens`] keeps those first 23; [`words`] walks a
//! whole line.

use std::ops::Range;

/// How many tokens of a line memcached looks at.
pub(crate) const MAX_TOKENS: usize = 23;

/// The first [`MAX_TOKENS`] tokens of a line, as ranges of the parsed buffer.
#[derive(Debug)]
pub(crate) struct Tokens<'a> {
    buf: &'a [u8],
    spans: [(usize, usize); MAX_TOKENS],
    len: usize,
}

impl<'a> Tokens<'a> {
    /// Splits `buf[line]`.
    pub(crate) fn split(buf: &'a [u8], line: Range<usize>) -> Tokens<'a> {
        let mut tokens = Tokens {
            buf,
            spans: [(0, 0); MAX_TOKENS],
            len: 0,
        };
        for (slot, word) in tokens.spans.iter_mut().zip(words(buf, line)) {
            *slot = (word.start, word.end);
            tokens.len += 1;
        }
        tokens
    }

    /// How many tokens there are, at most [`MAX_TOKENS`]. (memcached's `ntokens` is one more.)
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Where token `i` is; an empty range past the last one.
    pub(crate) fn span(&self, i: usize) -> Range<usize> {
        match self.spans.get(i) {
            Some(&(start, end)) if i < self.len => start..end,
            _ => 0..0,
        }
    }

    /// Token `i`; empty past the last one.
    pub(crate) fn get(&self, i: usize) -> &'a [u8] {
        self.buf.get(self.span(i)).unwrap_or_default()
    }

    /// The last token memcached looks at: where it looks for `noreply` and `HTTP/`.
    pub(crate) fn last(&self) -> &'a [u8] {
        self.get(self.len.saturating_sub(1))
    }
}

/// The space-separated words of `buf[range]`, as ranges of `buf`.
pub(crate) fn words(buf: &[u8], range: Range<usize>) -> Words<'_> {
    Words {
        buf,
        pos: range.start,
        end: range.end.min(buf.len()),
    }
}

/// Iterator returned by [`words`].
#[derive(Debug, Clone)]
pub(crate) struct Words<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl Iterator for Words<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let rest = self.buf.get(self.pos..self.end)?;
        let start = self.pos + rest.iter().position(|&b| b != b' ')?;
        let len = self
            .buf
            .get(start..self.end)?
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(self.end - start);
        self.pos = start + len;
        Some(start..start + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(buf: &[u8]) -> Vec<&[u8]> {
        words(buf, 0..buf.len()).map(|r| &buf[r]).collect()
    }

    #[test]
    fn words_are_split_on_runs_of_spaces_only() {
        assert_eq!(texts(b"  get a  b\tc\rd "), [&b"get"[..], b"a", b"b\tc\rd"]);
        assert!(texts(b"").is_empty());
        assert!(texts(b"    ").is_empty());
    }

    #[test]
    fn words_stay_inside_the_range() {
        let buf = b"xx get a b yy";
        let got: Vec<_> = words(buf, 3..10).collect();
        assert_eq!(got, [3..6, 7..8, 9..10]);
    }

    #[test]
    fn tokens_keep_the_first_23() {
        let line: Vec<u8> = (0..30)
            .flat_map(|i| format!("t{i} ").into_bytes())
            .collect();
        let tokens = Tokens::split(&line, 0..line.len());
        assert_eq!(tokens.len(), 23);
        assert_eq!(tokens.get(0), b"t0");
        assert_eq!(tokens.last(), b"t22");
        assert_eq!(tokens.get(23), b"");
    }

    #[test]
    fn missing_tokens_are_empty() {
        let tokens = Tokens::split(b"", 0..0);
        assert_eq!(tokens.len(), 0);
        assert_eq!(tokens.get(0), b"");
        assert_eq!(tokens.last(), b"");
    }
}
