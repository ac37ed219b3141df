//! The properties of `parse_reply` on arbitrary bytes, read as each kind of reply. Beyond
//! "never panics", each input checks:
//!
//! 1. a `Reply` consumes at least one byte and at most the input; in a retrieval reply every
//!    `VALUE` entry lies inside it, and it is a `Hit` with entries, a `Miss` without, or an error;
//! 2. the bytes of the reply alone give the same reply, and one byte fewer is `Incomplete`;
//! 3. split in two anywhere, the first part gives `Incomplete`, `Malformed` when the whole is
//!    malformed too, or the same reply as the whole: never a different reply;
//! 4. where `value_head` finds a value's header, the reply is not complete before the value
//!    and its `\r\n` are in, and a complete `mg` reply ends exactly where the header says.
//!
//! Shared by the fuzz target (`fuzz_targets/parse_reply.rs`) and the regression test that
//! replays kept inputs (`host/protocol/tests/regressions.rs`), which include this file by path.

use switchyard_protocol::{ReplyKind, ReplyParsed, ReplyStatus, parse_reply, value_head, values};

/// Every kind of reply, classic and meta.
const KINDS: [ReplyKind; 9] = [
    ReplyKind::Line,
    ReplyKind::Retrieval,
    ReplyKind::Stats,
    ReplyKind::MetaGet,
    ReplyKind::MetaSet,
    ReplyKind::MetaDelete,
    ReplyKind::MetaArithmetic,
    ReplyKind::MetaNoop,
    ReplyKind::MetaDebug,
];

/// Checks every property of `buf` read as each kind of reply; panics on a violation.
pub fn check(buf: &[u8]) {
    for kind in KINDS {
        check_as(buf, kind);
    }
}

fn check_as(buf: &[u8], kind: ReplyKind) {
    let whole = parse_reply(buf, kind);
    if let Some(head) = value_head(buf, kind) {
        assert!(head.line > 0 && head.line <= buf.len());
        if let ReplyParsed::Reply { consumed, .. } = whole {
            assert!(
                consumed >= head.line + head.len + 2,
                "a reply ended inside its value"
            );
            if kind == ReplyKind::MetaGet {
                assert_eq!(consumed, head.total());
            }
        }
    }
    if let ReplyParsed::Reply { consumed, status } = whole {
        assert!(consumed > 0 && consumed <= buf.len());
        let reply = &buf[..consumed];
        if kind == ReplyKind::Retrieval {
            let mut hits = 0;
            for entry in values(reply) {
                assert!(entry.whole.end <= consumed);
                for part in [&entry.key, &entry.data] {
                    assert!(entry.whole.start <= part.start && part.end <= entry.whole.end);
                }
                hits += 1;
            }
            // An error line may also end a reply after entries (memcached running out of
            // memory mid-reply): then the status is the error's.
            match status {
                ReplyStatus::Hit => assert!(hits > 0, "a hit without entries"),
                ReplyStatus::Miss => assert_eq!(hits, 0, "a miss with entries"),
                other => assert!(other.is_error(), "{other:?} ends a retrieval reply"),
            }
        }
        assert_eq!(parse_reply(reply, kind), whole, "the reply alone");
        let short = parse_reply(&reply[..consumed - 1], kind);
        assert_eq!(
            short,
            ReplyParsed::Incomplete,
            "one byte short of {whole:?}"
        );
    }
    let cut = split_point(buf);
    match (parse_reply(&buf[..cut], kind), whole) {
        (ReplyParsed::Incomplete, _) | (ReplyParsed::Malformed, ReplyParsed::Malformed) => {}
        (first, whole) => assert_eq!(first, whole, "cut at {cut}"),
    }
}

/// Where to cut `buf` in two: anywhere, chosen by its contents (FNV-1a), so that the fuzzer
/// explores cut points as it explores inputs.
fn split_point(buf: &[u8]) -> usize {
    let hash = buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % (buf.len() as u64 + 1)) as usize
}
