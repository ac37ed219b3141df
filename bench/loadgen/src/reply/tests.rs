//! The reply reader, as a spec: what each reply is taken to be, split anywhere.

use super::*;

/// 10 000 keys: `key:0000` .. `key:9999`.
fn reader() -> ReplyReader {
    ReplyReader::new(KeySpace::new(10_000))
}

/// Parses one reply from the whole of `input`.
fn one(input: &[u8], expect: Expect<'_>) -> Result<(usize, Progress), Malformed> {
    reader().parse(input, expect)
}

fn reason(result: Result<(usize, Progress), Malformed>) -> &'static str {
    match result {
        Err(e) => e.reason,
        Ok(ok) => panic!("expected a malformed reply, got {ok:?}"),
    }
}

/// Feeds `input` as a socket would, `piece` bytes a read, into a buffer the way the
/// connection keeps one (consumed bytes dropped, the rest kept); returns the replies in
/// order and the largest the buffer ever got.
fn feed(input: &[u8], piece: usize, expects: &[Expect<'_>]) -> (Vec<Reply>, usize) {
    let mut reader = reader();
    let mut buf = Vec::new();
    let mut replies = Vec::new();
    let mut largest = 0;
    for chunk in input.chunks(piece) {
        buf.extend_from_slice(chunk);
        largest = largest.max(buf.len());
        loop {
            let Some(&expect) = expects.get(replies.len()) else {
                assert!(buf.is_empty(), "bytes after the last reply");
                break;
            };
            let (used, progress) = reader.parse(&buf, expect).expect("well-formed");
            buf.drain(..used);
            match progress {
                Progress::Complete(reply) => replies.push(reply),
                Progress::Incomplete => break,
            }
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    (replies, largest)
}

// === set ===

#[test]
fn set_is_answered_stored() {
    assert_eq!(
        one(b"STORED\r\n", Expect::Stored),
        Ok((8, Progress::Complete(Reply::Stored)))
    );
}

#[test]
fn a_partial_line_is_incomplete_and_left_unconsumed() {
    for input in [&b""[..], b"STOR", b"STORED", b"STORED\r"] {
        assert_eq!(one(input, Expect::Stored), Ok((0, Progress::Incomplete)));
    }
}

#[test]
fn other_storage_replies_are_not_answers_to_a_set() {
    for input in [
        &b"NOT_STORED\r\n"[..],
        b"EXISTS\r\n",
        b"NOT_FOUND\r\n",
        b"END\r\n",
        b"VALUE key:0001 0 1\r\nx\r\nEND\r\n",
        b"stored\r\n",
        b"STORED \r\n",
        b"\r\n",
    ] {
        assert_eq!(reason(one(input, Expect::Stored)), "not a reply to a set");
    }
}

// === get ===

#[test]
fn a_hit() {
    let input = b"VALUE key:0042 0 5\r\nhello\r\nEND\r\n";
    assert_eq!(
        one(input, Expect::Values(&[42])),
        Ok((
            input.len(),
            Progress::Complete(Reply::Values { hits: 1, misses: 0 })
        ))
    );
}

#[test]
fn a_miss() {
    assert_eq!(
        one(b"END\r\n", Expect::Values(&[42])),
        Ok((5, Progress::Complete(Reply::Values { hits: 0, misses: 1 })))
    );
}

#[test]
fn a_multi_get_counts_hits_and_misses_in_any_order() {
    let input = b"VALUE key:0003 0 1\r\nc\r\nVALUE key:0001 7 2\r\naa\r\nEND\r\n";
    assert_eq!(
        one(input, Expect::Values(&[1, 2, 3])),
        Ok((
            input.len(),
            Progress::Complete(Reply::Values { hits: 2, misses: 1 })
        ))
    );
}

#[test]
fn values_may_be_empty_carry_flags_and_a_cas_and_hold_any_bytes() {
    let input = b"VALUE key:0001 4294967295 0 99\r\n\r\nVALUE key:0002 0 4\r\n\r\nEN\r\nEND\r\n";
    assert_eq!(
        one(input, Expect::Values(&[1, 2])),
        Ok((
            input.len(),
            Progress::Complete(Reply::Values { hits: 2, misses: 0 })
        ))
    );
}

#[test]
fn every_split_point_gives_the_same_reply() {
    let input = b"VALUE key:0001 0 10\r\n0123456789\r\nVALUE key:0002 0 3\r\nabc\r\nEND\r\n";
    let expect = [Expect::Values(&[1, 2, 3])];
    let whole = vec![Reply::Values { hits: 2, misses: 1 }];
    for piece in 1..=input.len() {
        assert_eq!(feed(input, piece, &expect).0, whole, "pieces of {piece}");
    }
    for split in 0..=input.len() {
        let mut reader = reader();
        let (first, rest) = input.split_at(split);
        let (used, progress) = reader.parse(first, expect[0]).expect("well-formed");
        let mut buf = first[used..].to_vec();
        if progress == Progress::Incomplete {
            buf.extend_from_slice(rest);
            assert_eq!(
                reader.parse(&buf, expect[0]),
                Ok((buf.len(), Progress::Complete(whole[0])))
            );
        } else {
            assert_eq!(split, input.len());
        }
    }
}

#[test]
fn a_4_mib_value_streams_through_a_small_buffer() {
    let size = 4 << 20;
    let mut input = b"VALUE key:0007 0 4194304\r\n".to_vec();
    input.extend(std::iter::repeat_n(b'v', size));
    input.extend_from_slice(b"\r\nEND\r\n");
    let (replies, largest) = feed(&input, 65_536, &[Expect::Values(&[7])]);
    assert_eq!(replies, [Reply::Values { hits: 1, misses: 0 }]);
    assert!(largest <= 65_536 + 64, "the buffer grew to {largest}");
}

// === pipelining ===

#[test]
fn pipelined_replies_in_one_read_come_out_one_by_one() {
    let input = b"STORED\r\nVALUE key:0001 0 1\r\nx\r\nEND\r\nEND\r\nSTORED\r\nSERVER_ERROR out of memory storing object\r\nVALUE key:0002 0 2\r\nyy\r\nVALUE key:0003 0 1\r\nz\r\nEND\r\n";
    let expects = [
        Expect::Stored,
        Expect::Values(&[1]),
        Expect::Values(&[9]),
        Expect::Stored,
        Expect::Stored,
        Expect::Values(&[2, 3, 4]),
    ];
    let replies = vec![
        Reply::Stored,
        Reply::Values { hits: 1, misses: 0 },
        Reply::Values { hits: 0, misses: 1 },
        Reply::Stored,
        Reply::Failed(ErrorReply::ServerError),
        Reply::Values { hits: 2, misses: 1 },
    ];
    for piece in [1, 2, 7, 13, input.len()] {
        assert_eq!(feed(input, piece, &expects).0, replies, "pieces of {piece}");
    }
}

#[test]
fn seen_keys_start_afresh_with_each_reply() {
    let mut reader = reader();
    let input = b"VALUE key:0001 0 1\r\nx\r\nEND\r\n";
    for _ in 0..3 {
        assert_eq!(
            reader.parse(input, Expect::Values(&[1])),
            Ok((
                input.len(),
                Progress::Complete(Reply::Values { hits: 1, misses: 0 })
            ))
        );
    }
}

// === error replies ===

#[test]
fn error_lines_end_a_reply_and_keep_the_stream_in_step() {
    let cases: [(&[u8], ErrorReply); 5] = [
        (b"ERROR\r\n", ErrorReply::Error),
        (b"ERROR unknown command\r\n", ErrorReply::Error),
        (b"CLIENT_ERROR bad data chunk\r\n", ErrorReply::ClientError),
        (
            b"SERVER_ERROR object too large for cache\r\n",
            ErrorReply::ServerError,
        ),
        (b"SERVER_ERROR\r\n", ErrorReply::ServerError),
    ];
    for (input, error) in cases {
        for expect in [Expect::Stored, Expect::Values(&[1])] {
            let mut reader = reader();
            assert_eq!(
                reader.parse(input, expect),
                Ok((input.len(), Progress::Complete(Reply::Failed(error))))
            );
            assert_eq!(reader.error_line().as_bytes(), &input[..input.len() - 2]);
        }
    }
}

#[test]
fn a_server_error_after_some_values_ends_the_get() {
    let input = b"VALUE key:0001 0 1\r\nx\r\nSERVER_ERROR out of memory writing get response\r\n";
    assert_eq!(
        one(input, Expect::Values(&[1, 2])),
        Ok((
            input.len(),
            Progress::Complete(Reply::Failed(ErrorReply::ServerError))
        ))
    );
}

// === bad input ===

#[test]
fn a_value_longer_than_announced_is_caught_at_its_end() {
    let input = b"VALUE key:0001 0 3\r\nhello\r\nEND\r\n";
    assert_eq!(
        reason(one(input, Expect::Values(&[1]))),
        "value length differs from its VALUE header"
    );
}

#[test]
fn a_value_shorter_than_announced_is_caught_when_the_stream_goes_on() {
    // Five bytes announced, three sent: the reader cannot know until more arrives, and
    // then the next line does not fit.
    let input = b"VALUE key:0001 0 5\r\nabc\r\nEND\r\n";
    assert_eq!(
        reason(one(input, Expect::Values(&[1]))),
        "value length differs from its VALUE header"
    );
    let cut = b"VALUE key:0001 0 5\r\nabc\r\n";
    assert_eq!(
        one(cut, Expect::Values(&[1])),
        Ok((cut.len(), Progress::Incomplete))
    );
}

#[test]
fn values_for_keys_not_asked_for_are_caught() {
    for input in [
        &b"VALUE key:0002 0 1\r\nx\r\nEND\r\n"[..],
        b"VALUE key:2 0 1\r\nx\r\nEND\r\n",
        b"VALUE other 0 1\r\nx\r\nEND\r\n",
        b"VALUE  0 1\r\nx\r\nEND\r\n",
    ] {
        assert_eq!(
            reason(one(input, Expect::Values(&[1]))),
            "VALUE for a key that was not requested"
        );
    }
    let twice = b"VALUE key:0001 0 1\r\nx\r\nVALUE key:0001 0 1\r\nx\r\nEND\r\n";
    assert_eq!(
        reason(one(twice, Expect::Values(&[1, 2]))),
        "VALUE for the same key twice"
    );
}

#[test]
fn bad_value_headers_are_caught() {
    let cases: [(&[u8], &str); 9] = [
        (b"VALUE key:0001 x 1\r\n", "VALUE with bad flags"),
        (b"VALUE key:0001 4294967296 1\r\n", "VALUE with bad flags"),
        (b"VALUE key:0001 -1 1\r\n", "VALUE with bad flags"),
        (b"VALUE key:0001\r\n", "VALUE with bad flags"),
        (b"VALUE key:0001 0\r\n", "VALUE with a bad length"),
        (b"VALUE key:0001 0 -1\r\n", "VALUE with a bad length"),
        (
            b"VALUE key:0001 0 2000000000\r\n",
            "VALUE with a bad length",
        ),
        (b"VALUE key:0001 0 1 x\r\n", "VALUE with a bad cas"),
        (b"VALUE key:0001 0 1 2 3\r\n", "VALUE with extra fields"),
    ];
    for (input, why) in cases {
        assert_eq!(reason(one(input, Expect::Values(&[1]))), why, "{input:?}");
    }
}

#[test]
fn lines_that_are_no_answer_to_a_get_are_caught() {
    for input in [
        &b"STORED\r\n"[..],
        b"NOT_FOUND\r\n",
        b"VALUES key:0001 0 1\r\n",
        b"end\r\n",
        b"\r\n",
        b"\x00\xff\r\n",
    ] {
        assert_eq!(
            reason(one(input, Expect::Values(&[1]))),
            "not a reply to a get"
        );
    }
}

#[test]
fn a_bare_newline_is_caught() {
    assert_eq!(
        reason(one(b"STORED\n", Expect::Stored)),
        "reply line not ended by \\r\\n"
    );
    assert_eq!(
        reason(one(
            b"VALUE key:0001 0 1\nx\r\nEND\r\n",
            Expect::Values(&[1])
        )),
        "reply line not ended by \\r\\n"
    );
}

#[test]
fn a_runaway_line_is_caught_once_it_passes_the_limit() {
    let mut input = vec![b'x'; MAX_LINE - 1];
    assert_eq!(one(&input, Expect::Stored), Ok((0, Progress::Incomplete)));
    input.push(b'x');
    assert_eq!(
        reason(one(&input, Expect::Stored)),
        "reply line longer than 8192 bytes"
    );
}

#[test]
fn the_message_quotes_the_bytes_escaped_and_short() {
    let mut input = b"BOGUS\x01 ".to_vec();
    input.extend(std::iter::repeat_n(b'z', 200));
    input.extend_from_slice(b"\r\n");
    let error = one(&input, Expect::Stored).expect_err("malformed");
    let message = error.to_string();
    assert!(
        message.starts_with("not a reply to a set: \"BOGUS\\x01 zzz"),
        "{message}"
    );
    assert!(message.len() < 120, "{message}");
}

#[test]
fn reset_drops_a_half_read_reply() {
    let mut reader = reader();
    let (used, progress) = reader
        .parse(b"VALUE key:0001 0 100\r\nabc", Expect::Values(&[1]))
        .expect("well-formed");
    assert_eq!((used, progress), (25, Progress::Incomplete));
    reader.reset();
    assert_eq!(
        reader.parse(b"STORED\r\n", Expect::Stored),
        Ok((8, Progress::Complete(Reply::Stored)))
    );
}

#[test]
fn numbers() {
    assert_eq!(parse_u64(b"0"), Some(0));
    assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
    for bad in [&b""[..], b"18446744073709551616", b"+1", b" 1", b"1a"] {
        assert_eq!(parse_u64(bad), None);
    }
}
