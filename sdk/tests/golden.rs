//! The golden plans of `sdk/golden/plans.txt`: the test vectors every implementation of the
//! plugin ABI (an SDK in another language, a host) should pass. See the file's header for its
//! format, and the end of `sdk/ABI.md` ("Porting the SDK to another language").
//!
//! The table below names each plan. Valid plans are built with the SDK's public API and encoded
//! with its encoder ([`Plan::encode`]); the plans a host must refuse are encoded by the SDK too
//! where it can express them (a child out of range, a duplicate fan-out child, a bad key
//! prefix), and written word by word from the ABI's constants where it cannot. The tests check
//! that the file holds exactly this table, that every line decodes as it is marked with the
//! decoder the host and the test harness use ([`decode_plan`]), and that each refused plan is
//! refused for the reason it was written for.
//!
//! After a deliberate change of the table, regenerate the file:
//! `SWITCHYARD_BLESS_GOLDEN=1 cargo test -p switchyard-sdk --test golden`.

use std::fmt::Write as _;

use switchyard_sdk::abi::{self, PLAN_CAPACITY, decode_plan_word, encode_plan_word, entry, tag};
use switchyard_sdk::decision::{
    Decision, OwnedBackground, OwnedReply, OwnedRewrite, check_route_decision, decode_plan,
};
use switchyard_sdk::{
    Background, Child, Children, Exptime, KeyRewrite, Plan, Primary, Reply, Rewrite, Store, Wait,
};

/// The golden file.
const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/plans.txt");

/// Set (to anything) to write [`FILE`] from the table instead of checking it.
const BLESS: &str = "SWITCHYARD_BLESS_GOLDEN";

/// The file's header, every line a comment.
const HEADER: &str = "\
# Switchyard plugin ABI version 1: golden plans (sdk/ABI.md, \"Plans\").
#
# Generated from the Rust SDK's encoder by sdk/tests/golden.rs, which also checks that every
# line decodes as marked; do not edit by hand. After a deliberate change to that table:
#   SWITCHYARD_BLESS_GOLDEN=1 cargo test -p switchyard-sdk --test golden
#
# One plan a line, five fields separated by single spaces:
#   verdict   ok           a valid plan, from route or on_reply
#             ok-on-reply  valid only as what on_reply returns (it passes); refused from route
#             refused      a plan the host refuses: the request fails and counts as a fault
#   name      the plan's name: [a-z0-9_]+, unique in the file
#   children  the number of children of the node the plan is checked against (decimal)
#   word      the plan word route (or on_reply) returns, as 16 hex digits: the i64's bits
#   bytes     the first bytes of the plan buffer, two hex digits a byte, `-` for none: a
#             reply plan's (tag 2) message, an extended plan's (tag 3) entries. A decoder
#             reads the rest of the 4096-byte plan buffer as zeros.
# Empty lines and lines starting with `#` are comments.
";

/// How a plan must be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Valid from `route` and `on_reply`.
    Ok,
    /// Valid only from `on_reply` (a `pass`).
    OkOnReply,
    /// Refused, with a fault whose message contains this.
    Refused(&'static str),
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::OkOnReply => "ok-on-reply",
            Self::Refused(_) => "refused",
        }
    }
}

/// One plan of the table.
#[derive(Debug)]
struct Golden {
    name: &'static str,
    verdict: Verdict,
    children: u32,
    word: u64,
    bytes: Vec<u8>,
    /// For a valid plan built with the SDK: what it must decode to, derived from the plan
    /// without the encoder or the decoder.
    expected: Option<Decision>,
}

impl Golden {
    fn line(&self) -> String {
        format!(
            "{} {} {} {:016x} {}",
            self.verdict.label(),
            self.name,
            self.children,
            self.word,
            hex(&self.bytes)
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".to_owned();
    }
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// The bytes of a plan buffer a plan word uses: a reply's message or an extended plan.
fn used_bytes(word: u64, buf: &[u8; PLAN_CAPACITY]) -> Vec<u8> {
    let (plan_tag, _, arg) = decode_plan_word(word);
    match plan_tag {
        tag::REPLY | tag::PLAN => buf[..arg as usize].to_vec(),
        _ => Vec::new(),
    }
}

/// `words` as little-endian bytes.
fn le_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The table, in file order.
#[derive(Debug, Default)]
struct Table(Vec<Golden>);

impl Table {
    /// A plan encoded by the SDK, which must decode to what it says.
    fn valid(&mut self, name: &'static str, children: u32, plan: Plan<'_>) {
        let expected = expected_decision(&plan, children);
        let verdict = if *expected.primary() == Decision::Pass {
            Verdict::OkOnReply
        } else {
            Verdict::Ok
        };
        self.encoded(name, verdict, children, plan, Some(expected));
    }

    /// A plan the SDK encodes and the host refuses.
    fn refused(&mut self, name: &'static str, children: u32, plan: Plan<'_>, fault: &'static str) {
        self.encoded(name, Verdict::Refused(fault), children, plan, None);
    }

    fn encoded(
        &mut self,
        name: &'static str,
        verdict: Verdict,
        children: u32,
        plan: Plan<'_>,
        expected: Option<Decision>,
    ) {
        let mut buf = [0u8; PLAN_CAPACITY];
        let word = plan.encode(children, &mut buf);
        self.0.push(Golden {
            name,
            verdict,
            children,
            word,
            bytes: used_bytes(word, &buf),
            expected,
        });
    }

    /// A plan word and plan buffer written by hand, which the host refuses.
    fn refused_word(
        &mut self,
        name: &'static str,
        children: u32,
        word: u64,
        bytes: &[u8],
        fault: &'static str,
    ) {
        self.0.push(Golden {
            name,
            verdict: Verdict::Refused(fault),
            children,
            word,
            bytes: bytes.to_vec(),
            expected: None,
        });
    }

    /// An extended plan written word by word, which the host refuses.
    fn refused_words(
        &mut self,
        name: &'static str,
        children: u32,
        words: &[u32],
        fault: &'static str,
    ) {
        let bytes = le_bytes(words);
        let word = encode_plan_word(tag::PLAN, 0, bytes.len() as u32);
        self.refused_word(name, children, word, &bytes, fault);
    }
}

/// What `plan` means, worked out from the plan itself (not by encoding and decoding it).
fn expected_decision(plan: &Plan<'_>, children: u32) -> Decision {
    let primary = |primary: Primary<'_>| match primary {
        Primary::Forward(child) => Decision::Forward(child.0),
        Primary::Reply(reply) => Decision::Reply(OwnedReply::from(reply)),
        Primary::FanOut {
            children: list,
            wait,
        } => Decision::FanOut {
            children: match list {
                Children::All => (0..children).collect(),
                Children::List(list) => list.to_vec(),
            },
            wait,
        },
        Primary::Call { child, cookie } => Decision::Call {
            child: child.0,
            cookie,
        },
        Primary::Pass => Decision::Pass,
        other => panic!("the golden table has no plan with primary {other:?}"),
    };
    let rewrite = |exptime: Exptime, key: Option<KeyRewrite<'_>>| {
        let key = key.unwrap_or_default();
        OwnedRewrite {
            exptime,
            strip: key.strip,
            prefix: key.prefix.to_vec(),
        }
    };
    let extended = plan.into_extended();
    let decided = primary(extended.primary);
    // An extended plan with nothing extra means its primary alone.
    if extended.rewrite.is_identity() && extended.background.is_empty() {
        return decided;
    }
    Decision::Extended {
        primary: Box::new(decided),
        rewrite: rewrite(extended.rewrite.exptime, extended.rewrite.key),
        background: extended
            .background
            .iter()
            .map(|b| OwnedBackground {
                child: b.child.0,
                store: b.store,
                compare: b.compare,
                rewrite: rewrite(b.exptime, b.key),
            })
            .collect(),
    }
}

fn key(strip: u32, prefix: &[u8]) -> Option<KeyRewrite<'_>> {
    Some(KeyRewrite { strip, prefix })
}

fn exptime(exptime: Exptime) -> Rewrite<'static> {
    Rewrite { exptime, key: None }
}

/// Every golden plan.
fn table() -> Table {
    let mut t = Table::default();

    // Plan words alone.
    t.valid("forward_0", 3, Plan::Forward(Child(0)));
    t.valid("forward_2", 3, Plan::Forward(Child(2)));
    t.valid("forward_1000", 1001, Plan::Forward(Child(1000)));
    let replies = [
        ("reply_miss", Reply::Miss),
        ("reply_not_stored", Reply::NotStored),
        ("reply_stored", Reply::Stored),
        ("reply_exists", Reply::Exists),
        ("reply_not_found", Reply::NotFound),
        ("reply_deleted", Reply::Deleted),
        ("reply_touched", Reply::Touched),
        ("reply_error", Reply::Error),
    ];
    for (name, reply) in replies {
        t.valid(name, 3, Plan::Reply(reply));
    }
    t.valid(
        "reply_server_error_message",
        3,
        Plan::Reply(Reply::ServerError("no server up")),
    );
    t.valid(
        "reply_client_error_message",
        3,
        Plan::Reply(Reply::ClientError("bad key")),
    );
    t.valid(
        "reply_server_error_empty",
        3,
        Plan::Reply(Reply::ServerError("")),
    );
    t.valid("pass", 3, Plan::Pass);

    // Fan-outs, one per wait policy, and a call.
    let fan_out = |children, wait| Plan::FanOut { children, wait };
    t.valid(
        "fan_out_wait_all",
        3,
        fan_out(Children::List(&[0, 1, 2]), Wait::All),
    );
    t.valid(
        "fan_out_wait_first",
        3,
        fan_out(Children::List(&[2, 0]), Wait::First),
    );
    t.valid(
        "fan_out_wait_first_good",
        3,
        fan_out(Children::List(&[1]), Wait::FirstGood),
    );
    t.valid(
        "fan_out_wait_majority",
        5,
        fan_out(Children::All, Wait::Majority),
    );
    t.valid(
        "fan_out_wait_none",
        3,
        fan_out(Children::List(&[0, 2]), Wait::None),
    );
    t.valid(
        "call_1_cookie_deadbeef",
        3,
        Plan::Call {
            child: Child(1),
            cookie: 0xdead_beef,
        },
    );
    t.valid(
        "call_0_cookie_0",
        3,
        Plan::Call {
            child: Child(0),
            cookie: 0,
        },
    );

    // Primary entries with a rewrite: each exptime mode, strip, prefix.
    t.valid(
        "forward_extended_plain",
        3,
        Plan::Forward(Child(1)).with_background(&[]),
    );
    t.valid(
        "forward_rewrite_keep_prefix",
        3,
        Plan::Forward(Child(1)).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(0, b"v2:"),
        }),
    );
    t.valid(
        "forward_rewrite_set",
        3,
        Plan::Forward(Child(2)).rewritten(exptime(Exptime::Set(300))),
    );
    t.valid(
        "forward_rewrite_set_negative",
        3,
        Plan::Forward(Child(0)).rewritten(exptime(Exptime::Set(-1))),
    );
    t.valid(
        "forward_rewrite_set_wide",
        3,
        Plan::Forward(Child(0)).rewritten(exptime(Exptime::Set(0x1_2345_6789))),
    );
    t.valid(
        "forward_rewrite_cap_strip_prefix",
        3,
        Plan::Forward(Child(1)).rewritten(Rewrite {
            exptime: Exptime::Cap(60),
            key: key(4, b"new:"),
        }),
    );
    t.valid(
        "forward_rewrite_cap_max",
        3,
        Plan::Forward(Child(1)).rewritten(exptime(Exptime::Cap(u32::MAX))),
    );
    t.valid(
        "forward_rewrite_strip",
        3,
        Plan::Forward(Child(0)).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(3, b""),
        }),
    );
    t.valid(
        "forward_rewrite_prefix_padded",
        3,
        Plan::Forward(Child(0)).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(0, b"tenant-a:"),
        }),
    );
    t.valid(
        "reply_rewrite_set",
        3,
        Plan::Reply(Reply::NotFound).rewritten(exptime(Exptime::Set(10))),
    );
    t.valid(
        "reply_message_rewrite_cap",
        3,
        Plan::Reply(Reply::ServerError("maintenance")).rewritten(exptime(Exptime::Cap(30))),
    );
    t.valid(
        "pass_rewrite_set",
        3,
        Plan::Pass.rewritten(exptime(Exptime::Set(60))),
    );
    t.valid(
        "fan_out_rewrite_prefix",
        3,
        fan_out(Children::List(&[0, 1]), Wait::FirstGood).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(0, b"r:"),
        }),
    );
    t.valid(
        "call_rewrite_strip",
        3,
        Plan::Call {
            child: Child(2),
            cookie: 7,
        }
        .rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(2, b""),
        }),
    );

    // Background sends: the request (op 0) and stores (set, add, replace), compared or not.
    t.valid(
        "forward_background_copy_compare",
        3,
        Plan::Forward(Child(0)).with_background(&[Background::copy(Child(1)).compared()]),
    );
    t.valid(
        "forward_background_set_compare",
        3,
        Plan::Forward(Child(0)).with_background(&[Background::store(Child(2), Store::Set)
            .compared()
            .with_exptime(Exptime::Set(600))
            .with_key(KeyRewrite {
                strip: 1,
                prefix: b"warm:",
            })]),
    );
    t.valid(
        "forward_background_add_replace",
        3,
        Plan::Forward(Child(1)).with_background(&[
            Background::store(Child(0), Store::Add).with_exptime(Exptime::Cap(3600)),
            Background::store(Child(2), Store::Replace),
        ]),
    );
    t.valid(
        "forward_rewrite_and_background",
        3,
        Plan::Forward(Child(0))
            .rewritten(Rewrite {
                exptime: Exptime::Cap(60),
                key: key(0, b"p"),
            })
            .with_background(&[
                Background::copy(Child(1)).compared(),
                Background::store(Child(2), Store::Add)
                    .with_exptime(Exptime::Set(300))
                    .with_key(KeyRewrite {
                        strip: 2,
                        prefix: b"warm:",
                    }),
            ]),
    );
    let eight: Vec<Background<'_>> = (0..abi::MAX_BACKGROUND as u32)
        .map(|i| Background::copy(Child(1 + i % 2)))
        .collect();
    t.valid(
        "forward_eight_backgrounds",
        3,
        Plan::Forward(Child(0)).with_background(&eight),
    );
    t.valid(
        "fan_out_background",
        3,
        fan_out(Children::List(&[0, 1]), Wait::Majority)
            .with_background(&[Background::store(Child(2), Store::Set)]),
    );
    t.valid(
        "call_background",
        3,
        Plan::Call {
            child: Child(1),
            cookie: 42,
        }
        .with_background(&[Background::copy(Child(2))]),
    );
    t.valid(
        "reply_background",
        3,
        Plan::Reply(Reply::Stored).with_background(&[Background::copy(Child(0))]),
    );
    t.valid(
        "pass_background_store_add",
        3,
        Plan::Pass.with_background(&[
            Background::store(Child(0), Store::Add).with_exptime(Exptime::Set(300))
        ]),
    );

    // What the host refuses. Plan words first.
    t.refused_word("tag_0", 3, 0, &[], "unknown plan tag 0");
    t.refused_word(
        "tag_5",
        3,
        encode_plan_word(5, 0, 0),
        &[],
        "unknown plan tag 5",
    );
    t.refused(
        "forward_child_out_of_range",
        3,
        Plan::Forward(Child(3)),
        "child 3 is out of range",
    );
    t.refused_word(
        "forward_nonzero_small",
        3,
        encode_plan_word(tag::FORWARD, 1, 0),
        &[],
        "nonzero small",
    );
    t.refused_word(
        "reply_unknown_code",
        3,
        encode_plan_word(tag::REPLY, 10, 0),
        &[],
        "unknown reply code 10",
    );
    t.refused_word(
        "reply_message_not_printable",
        3,
        encode_plan_word(tag::REPLY, abi::reply::SERVER_ERROR, 2),
        b"a\n",
        "not printable ASCII",
    );
    t.refused_word(
        "reply_message_longer_than_buffer",
        3,
        encode_plan_word(
            tag::REPLY,
            abi::reply::SERVER_ERROR,
            PLAN_CAPACITY as u32 + 1,
        ),
        &[],
        "longer than the plan buffer",
    );
    t.refused_word(
        "pass_nonzero_arg",
        3,
        encode_plan_word(tag::PASS, 0, 1),
        &[],
        "pass plan with nonzero fields",
    );
    t.refused_word(
        "plan_not_whole_words",
        3,
        encode_plan_word(tag::PLAN, 0, 6),
        &le_bytes(&[entry::FORWARD, 1])[..6],
        "not whole words",
    );
    t.refused_word(
        "plan_longer_than_buffer",
        3,
        encode_plan_word(tag::PLAN, 0, PLAN_CAPACITY as u32 + 4),
        &[],
        "longer than the plan buffer",
    );
    t.refused_word(
        "plan_empty",
        3,
        encode_plan_word(tag::PLAN, 0, 0),
        &[],
        "without a primary entry",
    );

    // Extended plans: entries.
    t.refused_words(
        "unknown_opcode",
        3,
        &[entry::FORWARD, 1, 0, 9, 0],
        "unknown entry opcode 9",
    );
    t.refused_words(
        "truncated_entry",
        3,
        &[entry::FAN_OUT, 3, abi::wait::ALL, 1],
        "truncated entry: opcode 1 announces 3 words, 2 left",
    );
    t.refused_words(
        "truncated_entry_header",
        3,
        &[entry::FORWARD, 1, 0, entry::BACKGROUND],
        "truncated entry header",
    );
    t.refused_words(
        "two_primaries",
        3,
        &[entry::FORWARD, 1, 0, entry::CALL, 2, 1, 7],
        "more than one primary entry",
    );
    t.refused_words(
        "no_primary_rewrite_only",
        3,
        &[entry::REWRITE, 5, abi::exptime::SET, 300, 0, 0, 0],
        "without a primary entry",
    );
    t.refused_words(
        "no_primary_background_only",
        3,
        &[entry::BACKGROUND, 8, 1, 0, 0, 0, 0, 0, 0, 0],
        "without a primary entry",
    );
    t.refused(
        "fan_out_duplicate_child",
        3,
        fan_out(Children::List(&[1, 0, 1]), Wait::All),
        "names child 1 twice",
    );
    t.refused(
        "fan_out_child_out_of_range",
        3,
        fan_out(Children::List(&[0, 3]), Wait::All),
        "child 3 is out of range",
    );
    t.refused(
        "fan_out_no_children",
        3,
        fan_out(Children::List(&[]), Wait::All),
        "names no children",
    );
    t.refused_words(
        "fan_out_unknown_wait",
        3,
        &[entry::FAN_OUT, 2, 5, 0],
        "unknown fan_out wait policy 5",
    );
    t.refused(
        "call_child_out_of_range",
        3,
        Plan::Call {
            child: Child(3),
            cookie: 0,
        },
        "child 3 is out of range",
    );
    t.refused_words(
        "call_without_cookie",
        3,
        &[entry::CALL, 1, 0],
        "call takes 2 words",
    );
    t.refused(
        "forward_entry_child_out_of_range",
        3,
        Plan::Forward(Child(3)).with_background(&[]),
        "child 3 is out of range",
    );
    t.refused_words(
        "reply_entry_unknown_code",
        3,
        &[entry::REPLY, 2, 10, 0],
        "unknown reply code 10",
    );
    t.refused_words(
        "reply_entry_not_printable",
        3,
        &[
            entry::REPLY,
            3,
            abi::reply::SERVER_ERROR,
            2,
            u32::from_le_bytes(*b"a\n\0\0"),
        ],
        "not printable ASCII",
    );
    t.refused_words(
        "reply_entry_message_words_missing",
        3,
        &[entry::REPLY, 2, abi::reply::SERVER_ERROR, 4],
        "reply message of 4 bytes takes 1 words, the entry has 0",
    );
    t.refused_words(
        "pass_entry_with_payload",
        3,
        &[entry::PASS, 1, 0],
        "pass takes no payload",
    );
    t.refused_words(
        "rewrite_twice",
        3,
        &[
            entry::FORWARD,
            1,
            0,
            entry::REWRITE,
            5,
            abi::exptime::SET,
            1,
            0,
            0,
            0,
            entry::REWRITE,
            5,
            abi::exptime::SET,
            2,
            0,
            0,
            0,
        ],
        "more than one rewrite entry",
    );
    t.refused_words(
        "rewrite_unknown_mode",
        3,
        &[entry::FORWARD, 1, 0, entry::REWRITE, 5, 3, 0, 0, 0, 0],
        "unknown exptime mode 3",
    );
    t.refused_words(
        "rewrite_cap_negative",
        3,
        &[
            entry::FORWARD,
            1,
            0,
            entry::REWRITE,
            5,
            abi::exptime::CAP,
            u32::MAX,
            u32::MAX,
            0,
            0,
        ],
        "a cap of -1",
    );
    t.refused(
        "rewrite_prefix_space",
        3,
        Plan::Forward(Child(0)).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(0, b"a b"),
        }),
        "key prefix has byte 0x20",
    );
    let long_prefix = [b'k'; abi::MAX_KEY_PREFIX + 1];
    t.refused(
        "rewrite_prefix_too_long",
        3,
        Plan::Forward(Child(0)).rewritten(Rewrite {
            exptime: Exptime::Keep,
            key: key(0, &long_prefix),
        }),
        "key prefix of 251 bytes is longer than 250",
    );
    t.refused_words(
        "rewrite_prefix_words_missing",
        3,
        &[
            entry::FORWARD,
            1,
            0,
            entry::REWRITE,
            6,
            0,
            0,
            0,
            0,
            5,
            0x6161_6161,
        ],
        "key prefix of 5 bytes takes 2 words, the entry has 1",
    );
    t.refused(
        "background_child_out_of_range",
        3,
        Plan::Forward(Child(0)).with_background(&[Background::copy(Child(3))]),
        "child 3 is out of range",
    );
    t.refused_words(
        "background_bad_flags",
        3,
        &[
            entry::FORWARD,
            1,
            0,
            entry::BACKGROUND,
            8,
            1,
            0,
            abi::background::COMPARE | 2,
            0,
            0,
            0,
            0,
            0,
        ],
        "unknown background flags 0x3",
    );
    t.refused_words(
        "background_bad_op",
        3,
        &[
            entry::FORWARD,
            1,
            0,
            entry::BACKGROUND,
            8,
            1,
            abi::op::GET,
            0,
            0,
            0,
            0,
            0,
            0,
        ],
        "background op 1 is not 0, set, add or replace",
    );
    t.refused_words(
        "background_without_rewrite",
        3,
        &[entry::FORWARD, 1, 0, entry::BACKGROUND, 3, 1, 0, 0],
        "rewrite takes at least 5 words, not 0",
    );
    let mut nine = vec![entry::FORWARD, 1, 0];
    for _ in 0..=abi::MAX_BACKGROUND {
        nine.extend_from_slice(&[entry::BACKGROUND, 8, 1, 0, 0, 0, 0, 0, 0, 0]);
    }
    t.refused_words(
        "nine_backgrounds",
        3,
        &nine,
        "more than 8 background entries",
    );
    t
}

/// One line of the file, parsed.
#[derive(Debug)]
struct Line {
    number: usize,
    verdict: String,
    name: String,
    children: u32,
    word: u64,
    bytes: Vec<u8>,
    text: String,
}

fn parse_hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    if text == "-" {
        return Ok(Vec::new());
    }
    if !text.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits in {text:?}"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(|e| format!("{text:?}: {e}")))
        .collect()
}

fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let [verdict, name, children, word, bytes] = fields[..] else {
            panic!("{FILE}:{number}: {} fields, not 5: {line:?}", fields.len());
        };
        assert!(
            ["ok", "ok-on-reply", "refused"].contains(&verdict),
            "{FILE}:{number}: unknown verdict {verdict:?}"
        );
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{FILE}:{number}: name {name:?} is not [a-z0-9_]+"
        );
        assert_eq!(
            word.len(),
            16,
            "{FILE}:{number}: word {word:?} is not 16 digits"
        );
        lines.push(Line {
            number,
            verdict: verdict.to_owned(),
            name: name.to_owned(),
            children: children
                .parse()
                .unwrap_or_else(|e| panic!("{FILE}:{number}: children {children:?}: {e}")),
            word: u64::from_str_radix(word, 16)
                .unwrap_or_else(|e| panic!("{FILE}:{number}: word {word:?}: {e}")),
            bytes: parse_hex_bytes(bytes).unwrap_or_else(|e| panic!("{FILE}:{number}: {e}")),
            text: line.to_owned(),
        });
    }
    lines
}

fn generate(table: &Table) -> String {
    let mut out = HEADER.to_owned();
    for golden in &table.0 {
        out.push_str(&golden.line());
        out.push('\n');
    }
    out
}

/// The golden file's text; written from the table first, once, when [`BLESS`] is set.
fn read_file() -> String {
    static BLESSED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os(BLESS).is_some() {
        BLESSED.call_once(|| {
            std::fs::write(FILE, generate(&table()))
                .unwrap_or_else(|e| panic!("cannot write {FILE}: {e}"));
        });
    }
    std::fs::read_to_string(FILE).unwrap_or_else(|e| {
        panic!("cannot read {FILE}: {e} (generate it with `{BLESS}=1 cargo test -p switchyard-sdk --test golden`)")
    })
}

/// The file is the table: every plan the SDK encodes has the word and bytes the file gives,
/// every plan written by hand too, in the same order, and the file has no other line.
#[test]
fn the_golden_file_holds_what_the_sdk_encodes() {
    let table = table();
    let lines = parse(&read_file());
    let hint = format!(
        "if the table changed on purpose: {BLESS}=1 cargo test -p switchyard-sdk --test golden"
    );

    let mut names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
        panic!("{FILE}: {} appears twice", pair[0]);
    }
    for golden in &table.0 {
        let Some(line) = lines.iter().find(|l| l.name == golden.name) else {
            panic!("{FILE} has no line for {}; {hint}", golden.name);
        };
        assert_eq!(
            line.text,
            golden.line(),
            "{FILE}:{}: {} as the SDK encodes it differs; {hint}",
            line.number,
            golden.name
        );
    }
    for line in &lines {
        assert!(
            table.0.iter().any(|g| g.name == line.name),
            "{FILE}:{}: {} is not in the table of sdk/tests/golden.rs; {hint}",
            line.number,
            line.name
        );
    }
    let order: Vec<&str> = table.0.iter().map(|g| g.name).collect();
    let file_order: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(file_order, order, "{FILE}: lines out of order; {hint}");

    // What a port can rely on: every verdict, and the constructs the ABI names, are covered.
    let count = |verdict: &str| lines.iter().filter(|l| l.verdict == verdict).count();
    assert!(count("ok") >= 40 && count("ok-on-reply") >= 3 && count("refused") >= 30);
}

/// Decodes every line as a host does (the plan buffer holds the line's bytes, then zeros), with
/// the SDK's decoder: valid plans decode (to what the table says they mean), `ok-on-reply` ones
/// are refused from `route` only, and refused ones are refused for their reason.
#[test]
fn every_golden_plan_decodes_as_marked() {
    let table = table();
    let lines = parse(&read_file());
    assert!(!lines.is_empty(), "{FILE} holds no plan");
    for line in &lines {
        let at = format!("{FILE}:{} ({})", line.number, line.name);
        assert!(
            line.bytes.len() <= PLAN_CAPACITY,
            "{at}: more bytes than the plan buffer holds"
        );
        let mut buf = [0u8; PLAN_CAPACITY];
        buf[..line.bytes.len()].copy_from_slice(&line.bytes);
        let decoded = decode_plan(line.word, &buf, line.children);
        let golden = table.0.iter().find(|g| g.name == line.name);
        match line.verdict.as_str() {
            "ok" | "ok-on-reply" => {
                let decision = decoded.unwrap_or_else(|fault| panic!("{at}: refused: {fault}"));
                if let Some(expected) = golden.and_then(|g| g.expected.as_ref()) {
                    assert_eq!(&decision, expected, "{at}: decodes to another plan");
                }
                let from_route = check_route_decision(decision.clone());
                if line.verdict == "ok" {
                    assert!(
                        from_route.is_ok(),
                        "{at}: refused from route: {from_route:?}"
                    );
                } else {
                    assert_eq!(decision.primary(), &Decision::Pass, "{at}");
                    assert!(from_route.is_err(), "{at}: a pass accepted from route");
                }
            }
            _ => {
                let fault = match decoded {
                    Ok(decision) => panic!("{at}: accepted as {decision:?}"),
                    Err(fault) => fault,
                };
                if let Some(Verdict::Refused(reason)) = golden.map(|g| g.verdict) {
                    assert!(
                        fault.message().contains(reason),
                        "{at}: refused for another reason: {fault} (expected: {reason})"
                    );
                }
            }
        }
    }
}
