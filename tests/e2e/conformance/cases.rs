//! The conformance table: request scripts and memcached 1.6's replies to them, one script per
//! behaviour, named `family: what`. Every script starts on an empty server and a fresh
//! connection; each step is one write, and `expect` is everything memcached answers to it
//! (normalised: `VALUE` lines of `gets`/`gats` end in `<cas>`, a `VERSION` line is
//! `VERSION <version>`, a run of `STAT` lines is one `STAT <stats>` line). `{cas}` in a step is
//! the CAS unique last seen on the connection.
//!
//! To add a case: a row in [`scripts`] (or, for the meta protocol, in [`META_CASES`]).

/// One step: one write, and what memcached answers to it.
#[derive(Debug, Clone)]
pub struct Step {
    pub send: Vec<u8>,
    pub expect: Vec<u8>,
    /// memcached closes the connection after answering.
    pub closes: bool,
    /// Only the first part of a write: sent without a sentinel and nothing read, so that the
    /// next step continues it (the two may or may not arrive apart; the replies must not
    /// depend on it). Its replies are the next step's.
    pub partial: bool,
}

/// A named list of steps.
#[derive(Debug, Clone)]
pub struct Script {
    pub name: String,
    pub steps: Vec<Step>,
}

fn t<const N: usize>(name: &str, steps: [Step; N]) -> Script {
    Script {
        name: name.to_owned(),
        steps: steps.into(),
    }
}

/// A step that leaves the connection open.
fn s(send: impl Into<Vec<u8>>, expect: impl Into<Vec<u8>>) -> Step {
    Step {
        send: send.into(),
        expect: expect.into(),
        closes: false,
        partial: false,
    }
}

/// The first part of a write that the next step finishes.
fn part(send: impl Into<Vec<u8>>) -> Step {
    Step {
        partial: true,
        ..s(send, "")
    }
}

/// A step after which memcached closes the connection.
fn closes(send: impl Into<Vec<u8>>, expect: impl Into<Vec<u8>>) -> Step {
    Step {
        closes: true,
        ..s(send, expect)
    }
}

/// `set <key> 0 0 1\r\nx\r\n` answered `STORED`: a key to work on.
fn x(key: &str) -> Step {
    s(format!("set {key} 0 0 1\r\nx\r\n"), "STORED\r\n")
}

/// `get <key>` of one value, with the reply it must get.
fn get(key: &str, flags: u32, value: &str) -> Step {
    s(
        format!("get {key}\r\n"),
        format!("VALUE {key} {flags} {}\r\n{value}\r\nEND\r\n", value.len()),
    )
}

/// `get <key>` of a miss.
fn miss(key: &str) -> Step {
    s(format!("get {key}\r\n"), "END\r\n")
}

/// `n` bytes of a pattern that holds `\r\n`, NUL and every other byte value.
fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// A storage command with `n` bytes of [`data`].
fn store(line: &str, n: usize) -> Vec<u8> {
    let mut bytes = format!("{line}\r\n").into_bytes();
    bytes.extend(data(n));
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// The reply to a `get` of `n` bytes of [`data`] under `key`.
fn value_of(key: &str, n: usize) -> Vec<u8> {
    let mut bytes = format!("VALUE {key} 0 {n}\r\n").into_bytes();
    bytes.extend(data(n));
    bytes.extend_from_slice(b"\r\nEND\r\n");
    bytes
}

const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format\r\n";
const BAD_DELETE: &str = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk\r\n";
const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument\r\n";
const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument\r\n";
const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const TOO_LARGE: &str = "SERVER_ERROR object too large for cache\r\n";

/// memcached's largest value under a 3-byte key with its default `-I 1m` (the limit covers the
/// item header and key too).
const MEMCACHED_MAX_VALUE: usize = 1_048_514;
/// The router's default value limit, as memcached's `-I 1m`.
const ROUTER_MAX_VALUE: usize = 1024 * 1024;

/// Every classic-protocol script.
#[rustfmt::skip] // A table: one step a line where it fits.
pub fn scripts() -> Vec<Script> {
    let k250 = "k".repeat(250);
    let k251 = "k".repeat(251);
    let keys40: Vec<String> = (0..40).map(|i| format!("key{i}")).collect();
    let keys300: Vec<String> = (0..300).map(|i| format!("key_{i:06}")).collect();
    let mut all = vec![
        // ---------------------------------------------------------------- set
        t("set: stores and get returns it", [s("set k 0 0 5\r\nhello\r\n", "STORED\r\n"), get("k", 0, "hello")]),
        t("set: overwrites", [x("k"), s("set k 3 0 2\r\nyz\r\n", "STORED\r\n"), get("k", 3, "yz")]),
        t("set: flags 0", [s("set k 0 0 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: flags 1", [s("set k 1 0 1\r\nx\r\n", "STORED\r\n"), get("k", 1, "x")]),
        t("set: flags max u32", [s("set k 4294967295 0 1\r\nx\r\n", "STORED\r\n"), get("k", 4294967295, "x")]),
        t("set: flags 2^32 wraps to 0", [s("set k 4294967296 0 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: flags -1 is bad", [s("set k -1 0 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n")), miss("k")]),
        t("set: flags -(2^64-1) reads as 1", [s("set k -18446744073709551615 0 1\r\nx\r\n", "STORED\r\n"), get("k", 1, "x")]),
        t("set: flags not a number", [s("set k abc 0 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: flags with a plus sign", [s("set k +5 0 1\r\nx\r\n", "STORED\r\n"), get("k", 5, "x")]),
        t("set: flags with a trailing letter", [s("set k 5x 0 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: flags 2^64 is bad", [s("set k 18446744073709551616 0 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: exptime 0 never expires", [s("set k 0 0 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: exptime 100 is relative", [s("set k 0 100 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: exptime -1 expires at once", [s("set k 0 -1 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        t("set: exptime 30 days is relative", [s("set k 0 2592000 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: exptime past 30 days is an absolute time in 1970", [s("set k 0 2592001 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        t("set: exptime max i32 is an absolute time in 2038", [s("set k 0 2147483647 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: exptime max u32 is -1 in 32 bits", [s("set k 0 4294967295 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        t("set: exptime 2^32 is 0 in 32 bits", [s("set k 0 4294967296 1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: exptime min i32", [s("set k 0 -2147483648 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        t("set: exptime not a number", [s("set k 0 abc 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: exptime with a fraction", [s("set k 0 1.5 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: length 0", [s("set k 0 0 0\r\n\r\n", "STORED\r\n"), get("k", 0, "")]),
        t("set: length -1", [s("set k 0 0 -1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n")), miss("k")]),
        t("set: length not a number", [s("set k 0 0 one\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: length with a trailing letter", [s("set k 0 0 1x\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: length +-1", [s("set k 0 0 +-1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: length 01", [s("set k 0 0 01\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: length 2^32+1 is 1 in 32 bits", [s("set k 0 0 4294967297\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: length max i32 - 1", [s("set k 0 0 2147483646\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: length min i32", [s("set k 0 0 -2147483648\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("set: too few tokens", [s("set k 0 0\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        t("set: only a key", [s("set k\r\n", "ERROR\r\n")]),
        t("set: alone", [s("set\r\n", "ERROR\r\n")]),
        t("set: too many tokens", [s("set k 0 0 1 noreply extra\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        t("set: a sixth token that is not noreply is ignored", [s("set k 0 0 1 garbage\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: noreply", [s("set k 0 0 1 noreply\r\nx\r\n", ""), get("k", 0, "x")]),
        t("set: NOREPLY is not noreply", [s("set k 0 0 1 NOREPLY\r\nx\r\n", "STORED\r\n")]),
        t("set: noreply then a carriage return is not noreply", [s("set k 0 0 1 noreply\r\r\nx\r\n", "STORED\r\n")]),
        t("set: a bad line with noreply is silent", [s("set k 0 0 -1 noreply\r\nx\r\n", "ERROR\r\n")]),
        t("set: too few tokens with noreply is not silent", [s("set k 0 noreply\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        t("set: line ends in a bare newline", [s("set k 5 0 1\nx\r\n", "STORED\r\n"), get("k", 5, "x")]),
        t("set: a carriage return inside the line", [s("set k 0 0 1\rx\r\nx\r\n", "STORED\r\n")]),
        t("set: a tab before the length", [s("set k 0 0\t1\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        t("set: a vertical tab after the length", [s("set k 0 0 1\x0b\r\nx\r\n", "STORED\r\n")]),
        t("set: tab and junk after a number", [s("set k 0 \t0 1\tjunk\r\nx\r\n", "STORED\r\n")]),
        t("set: two spaces between tokens", [s("set  k  0  0  1\r\nx\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("set: leading spaces", [s("   set k 0 0 1\r\nx\r\n", "STORED\r\n")]),
        t("set: value holding CRLF, END and NUL", [
            s(b"set k 9 0 13\r\na\r\nEND\r\nb\0\xff\r\n\r\n".to_vec(), "STORED\r\n"),
            s("get k\r\n", b"VALUE k 9 13\r\na\r\nEND\r\nb\0\xff\r\n\r\nEND\r\n".to_vec()),
        ]),
        t("set: every byte value", [s(store("set k 0 0 256", 256), "STORED\r\n"), s("get k\r\n", value_of("k", 256))]),
        t("set: bad data chunk, one byte too many", [s("set k 0 0 1\r\nab\r\n", format!("{BAD_CHUNK}ERROR\r\n")), miss("k")]),
        t("set: bad data chunk, bare newline after the data", [s("set k 0 0 1\r\nx\nget k\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        t("set: bad data chunk, two carriage returns", [s("set k 0 0 1\r\nx\r\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        t("set: bad data chunk, too short", [s("set k 0 0 3\r\nab\r\n\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        t("set: bad data chunk with noreply", [s("set k 0 0 1 noreply\r\nxy\r\n", "ERROR\r\n")]),
        t("set: length 0 without its CRLF", [s("set k 0 0 0\r\nget k\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        t("set: a bad line leaves its data to be read as a command", [s("set k 0 0 -1\r\nget k\r\n", format!("{BAD_FORMAT}END\r\n"))]),
        t("split: a data block in two writes", [part("set k 0 0 5\r\nhel"), s("lo\r\n", "STORED\r\n"), get("k", 0, "hello")]),
        t("split: a command line in two writes", [x("k"), part("ge"), s("t k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n")]),
        t("split: between CR and LF", [x("k"), part("get k\r"), s("\n", "VALUE k 0 1\r\nx\r\nEND\r\n")]),
        t("split: a data block's CR and LF", [part("set k 0 0 1\r\nx\r"), s("\n", "STORED\r\n")]),
        t("split: a bad data chunk", [part("set k 0 0 1\r\nxy"), s("\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        t("split: swallowed data in three writes", [
            x("victim"),
            part(format!("set big 0 0 {}\r\n{}", ROUTER_MAX_VALUE + 10, "delete victim\r\n".repeat(30_000))),
            part("delete victim\r\n".repeat(30_000)),
            s(format!("{}\r\n", "x".repeat(ROUTER_MAX_VALUE + 10 - 60_000 * 15)), TOO_LARGE),
            get("victim", 0, "x"),
        ]),
        t("set: pipelined", [s("set a 0 0 1\r\na\r\nset b 0 0 1\r\nb\r\nset c 0 0 1 noreply\r\nc\r\nget a b c\r\n", "STORED\r\nSTORED\r\nVALUE a 0 1\r\na\r\nVALUE b 0 1\r\nb\r\nVALUE c 0 1\r\nc\r\nEND\r\n")]),
        // ---------------------------------------------------------------- add
        t("add: a new key", [s("add k 7 0 3\r\nnew\r\n", "STORED\r\n"), get("k", 7, "new")]),
        t("add: an existing key", [x("k"), s("add k 0 0 1\r\ny\r\n", "NOT_STORED\r\n"), get("k", 0, "x")]),
        t("add: an expired key", [s("set k 0 -1 1\r\nx\r\n", "STORED\r\n"), s("add k 0 0 1\r\ny\r\n", "STORED\r\n"), get("k", 0, "y")]),
        t("add: noreply", [s("add k 0 0 1 noreply\r\nx\r\n", ""), s("add k 0 0 1 noreply\r\ny\r\n", ""), get("k", 0, "x")]),
        t("add: bad flags", [s("add k x 0 1\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("add: too few tokens", [s("add k 0 0\r\n", "ERROR\r\n")]),
        t("add: negative exptime", [s("add k 0 -1 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        // ---------------------------------------------------------------- replace
        t("replace: a missing key", [s("replace k 0 0 1\r\nx\r\n", "NOT_STORED\r\n"), miss("k")]),
        t("replace: an existing key, flags too", [x("k"), s("replace k 1 0 5\r\nworld\r\n", "STORED\r\n"), get("k", 1, "world")]),
        t("replace: noreply", [x("k"), s("replace k 0 0 1 noreply\r\ny\r\n", ""), get("k", 0, "y")]),
        t("replace: bad length", [s("replace k 0 0 x\r\nx\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("replace: too many tokens", [s("replace k 0 0 1 noreply x\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        // ---------------------------------------------------------------- append / prepend
        t("append: a missing key", [s("append k 0 0 1\r\nx\r\n", "NOT_STORED\r\n"), miss("k")]),
        t("append: keeps the old flags", [s("set k 5 0 2\r\nab\r\n", "STORED\r\n"), s("append k 9 0 3\r\ncde\r\n", "STORED\r\n"), get("k", 5, "abcde")]),
        t("append: ignores its exptime", [x("k"), s("append k 0 -1 1\r\ny\r\n", "STORED\r\n"), get("k", 0, "xy")]),
        t("append: nothing", [x("k"), s("append k 0 0 0\r\n\r\n", "STORED\r\n"), get("k", 0, "x")]),
        t("append: to an empty value", [s("set k 0 0 0\r\n\r\n", "STORED\r\n"), s("append k 0 0 1\r\ny\r\n", "STORED\r\n"), get("k", 0, "y")]),
        t("append: noreply", [x("k"), s("append k 0 0 1 noreply\r\ny\r\n", ""), get("k", 0, "xy")]),
        t("append: bad data chunk", [x("k"), s("append k 0 0 1\r\nyz\r\n", format!("{BAD_CHUNK}ERROR\r\n")), get("k", 0, "x")]),
        t("prepend: a missing key", [s("prepend k 0 0 1\r\nx\r\n", "NOT_STORED\r\n"), miss("k")]),
        t("prepend: keeps the old flags", [s("set k 5 0 2\r\nab\r\n", "STORED\r\n"), s("prepend k 9 0 3\r\ncde\r\n", "STORED\r\n"), get("k", 5, "cdeab")]),
        t("prepend: noreply", [x("k"), s("prepend k 0 0 1 noreply\r\ny\r\n", ""), get("k", 0, "yx")]),
        t("prepend: too few tokens", [s("prepend k 0\r\n", "ERROR\r\n")]),
        t("append and prepend: together", [s("set k 0 0 1\r\n1\r\n", "STORED\r\n"), s("append k 0 0 1\r\n2\r\nprepend k 0 0 1\r\n0\r\n", "STORED\r\nSTORED\r\n"), get("k", 0, "012")]),
        // ---------------------------------------------------------------- cas
        t("cas: a missing key", [s("cas k 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"), miss("k")]),
        t("cas: the unique from gets", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("cas k 2 0 1 {cas}\r\ny\r\n", "STORED\r\n"), get("k", 2, "y")]),
        t("cas: a stale unique", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("set k 0 0 1\r\nz\r\n", "STORED\r\n"), s("cas k 0 0 1 {cas}\r\ny\r\n", "EXISTS\r\n"), get("k", 0, "z")]),
        t("cas: twice with one unique", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("cas k 0 0 1 {cas}\r\ny\r\n", "STORED\r\n"), s("cas k 0 0 1 {cas}\r\nz\r\n", "EXISTS\r\n")]),
        t("cas: unique 0", [x("k"), s("cas k 0 0 1 0\r\ny\r\n", "EXISTS\r\n")]),
        t("cas: unique max u64", [x("k"), s("cas k 0 0 1 18446744073709551615\r\ny\r\n", "EXISTS\r\n")]),
        t("cas: unique 2^64 is bad", [x("k"), s("cas k 0 0 1 18446744073709551616\r\ny\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("cas: unique -1 is bad", [s("cas k 0 0 1 -1\r\ny\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("cas: unique -(2^64-1)", [x("k"), s("cas k 0 0 1 -18446744073709551615\r\ny\r\n", "EXISTS\r\n")]),
        t("cas: unique not a number", [s("cas k 0 0 1 abc\r\ny\r\n", format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("cas: a bad unique with noreply is silent", [s("cas k 0 0 1 abc noreply\r\nx\r\n", "ERROR\r\n")]),
        t("cas: without a unique", [s("cas k 0 0 1\r\ny\r\n", "ERROR\r\nERROR\r\n")]),
        t("cas: with noreply but without a unique", [s("cas k 0 0 1 noreply\r\ny\r\n", "ERROR\r\n")]),
        t("cas: noreply", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("cas k 0 0 1 {cas} noreply\r\ny\r\n", ""), get("k", 0, "y")]),
        t("cas: noreply on a missing key", [s("cas k 0 0 1 5 noreply\r\nx\r\n", ""), miss("k")]),
        t("cas: too many tokens", [s("cas k 0 0 1 1 noreply x\r\ny\r\n", "ERROR\r\nERROR\r\n")]),
        t("cas: after delete", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("delete k\r\n", "DELETED\r\n"), s("cas k 0 0 1 {cas}\r\ny\r\n", "NOT_FOUND\r\n")]),
        t("cas: after touch the unique still holds", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("touch k 100\r\n", "TOUCHED\r\n"), s("cas k 0 0 1 {cas}\r\ny\r\n", "STORED\r\n")]),
        t("cas: after append the unique is stale", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("append k 0 0 1\r\ny\r\n", "STORED\r\n"), s("cas k 0 0 1 {cas}\r\nz\r\n", "EXISTS\r\n")]),
        t("cas: bad data chunk", [x("k"), s("cas k 0 0 1 1\r\nyz\r\n", format!("{BAD_CHUNK}ERROR\r\n"))]),
        // ---------------------------------------------------------------- get / gets / bget
        t("get: a miss", [miss("k")]),
        t("get: a hit", [x("k"), get("k", 0, "x")]),
        t("get: two hits in key order", [x("a"), s("set b 0 0 1\r\ny\r\n", "STORED\r\n"), s("get b a\r\n", "VALUE b 0 1\r\ny\r\nVALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: hits and misses", [x("a"), x("c"), s("get a b c d\r\n", "VALUE a 0 1\r\nx\r\nVALUE c 0 1\r\nx\r\nEND\r\n")]),
        t("get: the same key three times", [x("a"), s("get a a a\r\n", "VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: duplicates among misses", [x("a"), s("get b a b a\r\n", "VALUE a 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: ten misses", [s("get a b c d e f g h i j\r\n", "END\r\n")]),
        t("get: extra spaces between keys", [x("a"), x("b"), s(" get a  b \r\n", "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\nx\r\nEND\r\n")]),
        t("get: a bare newline", [x("a"), s("get a\n", "VALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: no key", [s("get\r\n", "ERROR\r\n")]),
        t("get: a space and no key", [s("get \r\n", "ERROR\r\n")]),
        t("get: a key named noreply is a key", [s("set noreply 0 0 1\r\nn\r\n", "STORED\r\n"), s("get noreply\r\n", "VALUE noreply 0 1\r\nn\r\nEND\r\n")]),
        t("get: noreply after a key is another key", [x("a"), s("get a noreply\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: a NUL byte ends the line", [x("a"), x("b"), s("get a\0b c\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("get: a carriage return is part of a key", [s("set c\r 0 0 1\r\nz\r\n", "STORED\r\n"), s("get c\r\r\n", "VALUE c\r 0 1\r\nz\r\nEND\r\n"), miss("c")]),
        t("get: expired after a negative exptime", [s("set k 0 -1 1\r\nx\r\n", "STORED\r\n"), miss("k")]),
        t("gets: a hit has a unique", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n")]),
        t("gets: a miss", [s("gets k\r\n", "END\r\n")]),
        t("gets: several keys and a duplicate", [x("a"), x("b"), s("gets a c b a\r\n", "VALUE a 0 1 <cas>\r\nx\r\nVALUE b 0 1 <cas>\r\nx\r\nVALUE a 0 1 <cas>\r\nx\r\nEND\r\n")]),
        t("gets: no key", [s("gets\r\n", "ERROR\r\n")]),
        t("gets: a bare newline", [s("gets a\n", "END\r\n")]),
        t("bget: an old alias of get", [x("a"), s("bget a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("bget: no key", [s("bget\r\n", "ERROR\r\n")]),
        // ---------------------------------------------------------------- gat / gats
        t("gat: a hit", [x("k"), s("gat 100 k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n"), get("k", 0, "x")]),
        t("gat: a miss", [s("gat 100 k\r\n", "END\r\n")]),
        t("gat: exptime 0", [s("set k 0 100 1\r\nx\r\n", "STORED\r\n"), s("gat 0 k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n"), get("k", 0, "x")]),
        t("gat: negative exptime answers, then the key is gone", [x("k"), s("gat -1 k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n"), miss("k")]),
        t("gat: exptime max u32", [x("k"), s("gat 4294967295 k\r\n", "VALUE k 0 1\r\nx\r\nEND\r\n"), miss("k")]),
        t("gat: exptime 2^32 on a miss", [s("gat 4294967296 a\r\n", "END\r\n")]),
        t("gat: many keys with duplicates and misses", [x("a"), x("b"), s("gat 100 a z b a\r\n", "VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\nx\r\nVALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("gat: no key", [s("gat 10\r\n", "END\r\n")]),
        t("gat: noreply is a key", [s("set noreply 0 0 1\r\nn\r\n", "STORED\r\n"), s("gat 0 k noreply\r\n", "VALUE noreply 0 1\r\nn\r\nEND\r\n")]),
        t("gat: nothing", [s("gat\r\n", "ERROR\r\n")]),
        t("gat: exptime not a number", [x("k"), s("gat abc k\r\n", BAD_EXPTIME)]),
        t("gat: exptime with a fraction", [s("gat 1.5 k\r\n", BAD_EXPTIME)]),
        t("gats: a hit has a unique", [x("k"), s("gats 100 k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n")]),
        t("gats: the unique works for cas", [x("k"), s("gats 100 k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("cas k 0 0 1 {cas}\r\ny\r\n", "STORED\r\n")]),
        t("gats: several keys", [x("a"), x("b"), s("gats 10 a b c\r\n", "VALUE a 0 1 <cas>\r\nx\r\nVALUE b 0 1 <cas>\r\nx\r\nEND\r\n")]),
        t("gats: bad exptime", [s("gats x k\r\n", BAD_EXPTIME)]),
        // ---------------------------------------------------------------- keys
        t("keys: 250 bytes", [s(format!("set {k250} 0 0 1\r\nx\r\n"), "STORED\r\n"), get(&k250, 0, "x")]),
        t("keys: 251 bytes in set", [s(format!("set {k251} 0 0 1\r\nx\r\n"), format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("keys: 251 bytes in set, noreply", [s(format!("set {k251} 0 0 1 noreply\r\nx\r\n"), "ERROR\r\n")]),
        t("keys: 251 bytes in add", [s(format!("add {k251} 0 0 1\r\nx\r\n"), format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("keys: 251 bytes in cas", [s(format!("cas {k251} 0 0 1 1\r\nx\r\n"), format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("keys: 251 bytes in get", [s(format!("get {k251}\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes among others in gets", [x("a"), s(format!("gets a {k251} b\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes at the end of 40 keys", [x("key3"), s(format!("get {} {k251}\r\n", keys40.join(" ")), BAD_FORMAT)]),
        t("keys: 251 bytes in gat", [s(format!("gat 0 {k251}\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in gat with a bad exptime", [s(format!("gat x {k251}\r\n"), BAD_EXPTIME)]),
        t("keys: 251 bytes in delete", [s(format!("delete {k251}\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in delete with a time", [s(format!("delete {k251} 1\r\n"), BAD_DELETE)]),
        t("keys: 251 bytes in incr", [s(format!("incr {k251} 1\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in incr with a bad delta", [s(format!("incr {k251} x\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in decr", [s(format!("decr {k251} 1\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in touch", [s(format!("touch {k251} 10\r\n"), BAD_FORMAT)]),
        t("keys: 251 bytes in delete, noreply", [s(format!("delete {k251} noreply\r\n"), "")]),
        t("keys: 251 bytes in incr, noreply", [s(format!("incr {k251} 1 noreply\r\n"), "")]),
        t("keys: 251 bytes in touch, noreply", [s(format!("touch {k251} 1 noreply\r\n"), "")]),
        t("keys: 251 bytes in get, noreply is a key", [s(format!("get {k251} noreply\r\n"), BAD_FORMAT)]),
        t("keys: 250 bytes in every command", [
            s(format!("add {k250} 0 0 1\r\n1\r\n"), "STORED\r\n"),
            s(format!("incr {k250} 2\r\n"), "3\r\n"),
            s(format!("decr {k250} 1\r\n"), "2\r\n"),
            s(format!("touch {k250} 100\r\n"), "TOUCHED\r\n"),
            s(format!("append {k250} 0 0 1\r\n0\r\n"), "STORED\r\n"),
            s(format!("gat 100 {k250}\r\n"), format!("VALUE {k250} 0 2\r\n20\r\nEND\r\n")),
            s(format!("delete {k250}\r\n"), "DELETED\r\n"),
        ]),
        t("keys: a tab is part of a key", [s("set a\tb 0 0 1\r\nx\r\n", "STORED\r\n"), s("get a\tb\r\n", "VALUE a\tb 0 1\r\nx\r\nEND\r\n"), miss("a")]),
        t("keys: control and high bytes", [s(b"set a\x01\x7f\xff 0 0 1\r\ny\r\n".to_vec(), "STORED\r\n"), s(b"get a\x01\x7f\xff\r\n".to_vec(), b"VALUE a\x01\x7f\xff 0 1\r\ny\r\nEND\r\n".to_vec())]),
        t("keys: UTF-8", [s("set clé 0 0 1\r\nx\r\n", "STORED\r\n"), get("clé", 0, "x")]),
        t("keys: 40 keys of which some hit", [x("key1"), x("key17"), x("key39"), s(format!("get {}\r\n", keys40.join(" ")), "VALUE key1 0 1\r\nx\r\nVALUE key17 0 1\r\nx\r\nVALUE key39 0 1\r\nx\r\nEND\r\n")]),
        // ---------------------------------------------------------------- delete
        t("delete: a hit", [x("k"), s("delete k\r\n", "DELETED\r\n"), miss("k")]),
        t("delete: a miss", [s("delete k\r\n", "NOT_FOUND\r\n")]),
        t("delete: with 0", [x("k"), s("delete k 0\r\n", "DELETED\r\n"), miss("k")]),
        t("delete: with 0 on a miss", [s("delete k 0\r\n", "NOT_FOUND\r\n")]),
        t("delete: with 0 and noreply", [x("k"), s("delete k 0 noreply\r\n", ""), miss("k")]),
        t("delete: noreply", [x("k"), s("delete k noreply\r\n", ""), miss("k")]),
        t("delete: noreply on a miss", [s("delete k noreply\r\n", "")]),
        t("delete: with 1", [x("k"), s("delete k 1\r\n", BAD_DELETE), get("k", 0, "x")]),
        t("delete: with 00", [x("k"), s("delete k 00\r\n", BAD_DELETE)]),
        t("delete: with -1", [x("k"), s("delete k -1\r\n", BAD_DELETE)]),
        t("delete: with 10 and noreply", [x("k"), s("delete k 10 noreply\r\n", ""), get("k", 0, "x")]),
        t("delete: with 0 then junk", [x("k"), s("delete k 0 x\r\n", BAD_DELETE)]),
        t("delete: junk then 0", [x("k"), s("delete k x 0\r\n", BAD_DELETE)]),
        t("delete: noreply then 0", [x("k"), s("delete k noreply 0\r\n", BAD_DELETE)]),
        t("delete: noreply twice", [x("k"), s("delete k noreply noreply\r\n", ""), get("k", 0, "x")]),
        t("delete: too many tokens", [s("delete k 0 noreply x\r\n", "ERROR\r\n")]),
        t("delete: no key", [s("delete\r\n", "ERROR\r\n")]),
        t("delete: a key named noreply", [s("delete noreply\r\n", "NOT_FOUND\r\n")]),
        t("delete: then add", [x("k"), s("delete k\r\nadd k 0 0 1\r\ny\r\n", "DELETED\r\nSTORED\r\n"), get("k", 0, "y")]),
        // ---------------------------------------------------------------- incr / decr
        t("incr: a miss", [s("incr k 1\r\n", "NOT_FOUND\r\n")]),
        t("decr: a miss", [s("decr k 1\r\n", "NOT_FOUND\r\n")]),
        t("incr: adds", [s("set k 0 0 2\r\n10\r\n", "STORED\r\n"), s("incr k 5\r\n", "15\r\n"), get("k", 0, "15")]),
        t("incr: by 0", [s("set k 0 0 1\r\n7\r\n", "STORED\r\n"), s("incr k 0\r\n", "7\r\n")]),
        t("incr: keeps flags", [s("set k 42 0 1\r\n7\r\n", "STORED\r\n"), s("incr k 1\r\n", "8\r\n"), get("k", 42, "8")]),
        t("incr: grows the value", [s("set k 0 0 2\r\n99\r\n", "STORED\r\n"), s("incr k 1\r\n", "100\r\n"), get("k", 0, "100")]),
        t("decr: pads a shorter value with spaces", [s("set k 0 0 3\r\n100\r\n", "STORED\r\n"), s("decr k 95\r\n", "5\r\n"), get("k", 0, "5  ")]),
        t("decr: stops at 0", [s("set k 0 0 2\r\n10\r\n", "STORED\r\n"), s("decr k 20\r\n", "0\r\n"), get("k", 0, "0 ")]),
        t("decr: from 0", [s("set k 0 0 1\r\n0\r\n", "STORED\r\n"), s("decr k 1\r\n", "0\r\n")]),
        t("incr: wraps at 2^64", [s("set k 0 0 1\r\n1\r\n", "STORED\r\n"), s("incr k 18446744073709551615\r\n", "0\r\n"), get("k", 0, "0")]),
        t("incr: by max u64", [s("set k 0 0 2\r\n10\r\n", "STORED\r\n"), s("incr k 18446744073709551615\r\n", "9\r\n")]),
        t("incr: to max u64", [s("set k 0 0 1\r\n0\r\n", "STORED\r\n"), s("incr k 18446744073709551615\r\n", "18446744073709551615\r\n"), get("k", 0, "18446744073709551615")]),
        t("decr: by max u64", [s("set k 0 0 1\r\n5\r\n", "STORED\r\n"), s("decr k 18446744073709551615\r\n", "0\r\n")]),
        t("incr: delta 2^64 is bad", [s("set k 0 0 1\r\n1\r\n", "STORED\r\n"), s("incr k 18446744073709551616\r\n", BAD_DELTA)]),
        t("incr: delta -1 is bad", [s("set k 0 0 1\r\n1\r\n", "STORED\r\n"), s("incr k -1\r\n", BAD_DELTA)]),
        t("incr: delta -(2^64-1) reads as 1", [s("set k 0 0 1\r\n1\r\n", "STORED\r\n"), s("incr k -18446744073709551615\r\n", "2\r\n")]),
        t("incr: delta not a number", [s("incr k abc\r\n", BAD_DELTA)]),
        t("incr: delta with a fraction", [s("incr k 1.5\r\n", BAD_DELTA)]),
        t("incr: delta in hex", [s("incr k 0x10\r\n", BAD_DELTA)]),
        t("decr: delta not a number", [s("decr k x\r\n", BAD_DELTA)]),
        t("incr: bad delta with noreply is silent", [s("incr k abc noreply\r\n", "")]),
        t("incr: a value that is not a number", [x("k"), s("incr k 1\r\n", NON_NUMERIC)]),
        t("decr: a value that is not a number", [x("k"), s("decr k 1\r\n", NON_NUMERIC)]),
        t("incr: a value over 2^64", [s("set k 0 0 20\r\n18446744073709551616\r\n", "STORED\r\n"), s("incr k 1\r\n", NON_NUMERIC)]),
        t("incr: an empty value", [s("set k 0 0 0\r\n\r\n", "STORED\r\n"), s("incr k 1\r\n", NON_NUMERIC)]),
        t("incr: a value with leading zeros", [s("set k 0 0 3\r\n007\r\n", "STORED\r\n"), s("incr k 1\r\n", "8\r\n"), get("k", 0, "8  ")]),
        t("incr: a value with a leading space", [s("set k 0 0 2\r\n 5\r\n", "STORED\r\n"), s("incr k 1\r\n", "6\r\n")]),
        t("incr: a value with trailing letters", [s("set k 0 0 3\r\n12a\r\n", "STORED\r\n"), s("incr k 1\r\n", NON_NUMERIC)]),
        t("incr: a negative value", [s("set k 0 0 2\r\n-1\r\n", "STORED\r\n"), s("incr k 1\r\n", NON_NUMERIC)]),
        t("incr: an extra token is ignored", [s("set k 0 0 1\r\n5\r\n", "STORED\r\n"), s("incr k 1 junk\r\n", "6\r\n")]),
        t("incr: noreply", [s("set k 0 0 1\r\n5\r\n", "STORED\r\n"), s("incr k 1 noreply\r\n", ""), get("k", 0, "6")]),
        t("decr: noreply", [s("set k 0 0 1\r\n5\r\n", "STORED\r\n"), s("decr k 1 noreply\r\n", ""), get("k", 0, "4")]),
        t("incr: noreply on a miss", [s("incr k 1 noreply\r\n", "")]),
        t("decr: noreply on a miss", [s("decr k 1 noreply\r\n", "")]),
        t("incr: noreply on a value that is not a number", [x("k"), s("incr k 1 noreply\r\n", "")]),
        t("incr: two spaces before the delta", [s("set k 0 0 1\r\n5\r\n", "STORED\r\n"), s("decr k  1\r\n", "4\r\n")]),
        t("incr: no delta", [s("incr k\r\n", "ERROR\r\n")]),
        t("incr: too many tokens", [s("incr k 1 noreply x\r\n", "ERROR\r\n")]),
        t("decr: no key", [s("decr\r\n", "ERROR\r\n")]),
        t("incr: an expired key", [s("set k 0 -1 1\r\n5\r\n", "STORED\r\n"), s("incr k 1\r\n", "NOT_FOUND\r\n")]),
        t("incr: a pipeline", [s("set n 0 0 1\r\n0\r\n", "STORED\r\n"), s("incr n 1\r\nincr n 1\r\nincr n 1 noreply\r\ndecr n 1\r\n", "1\r\n2\r\n2\r\n")]),
        // ---------------------------------------------------------------- touch
        t("touch: a miss", [s("touch k 10\r\n", "NOT_FOUND\r\n")]),
        t("touch: a hit", [x("k"), s("touch k 100\r\n", "TOUCHED\r\n"), get("k", 0, "x")]),
        t("touch: exptime 0", [s("set k 0 100 1\r\nx\r\n", "STORED\r\n"), s("touch k 0\r\n", "TOUCHED\r\n"), get("k", 0, "x")]),
        t("touch: negative exptime expires", [x("k"), s("touch k -1\r\n", "TOUCHED\r\n"), miss("k")]),
        t("touch: exptime max u32", [x("k"), s("touch k 4294967295\r\n", "TOUCHED\r\n"), miss("k")]),
        t("touch: exptime past 30 days", [x("k"), s("touch k 2592001\r\n", "TOUCHED\r\n"), miss("k")]),
        t("touch: noreply", [x("k"), s("touch k -1 noreply\r\n", ""), miss("k")]),
        t("touch: an extra token is ignored", [x("k"), s("touch k 100 junk\r\n", "TOUCHED\r\n")]),
        t("touch: exptime not a number", [x("k"), s("touch k x\r\n", BAD_EXPTIME)]),
        t("touch: bad exptime with noreply is silent", [s("touch k x noreply\r\n", "")]),
        t("touch: noreply on a miss", [s("touch k 10 noreply\r\n", "")]),
        t("touch: no exptime", [s("touch k\r\n", "ERROR\r\n")]),
        t("touch: too many tokens", [s("touch k 1 noreply junk\r\n", "ERROR\r\n")]),
        // ---------------------------------------------------------------- flush_all
        t("flush_all: empties", [x("a"), x("b"), s("flush_all\r\n", "OK\r\n"), s("get a b\r\n", "END\r\n")]),
        t("flush_all: 0", [x("a"), s("flush_all 0\r\n", "OK\r\n"), miss("a")]),
        t("flush_all: -1 is now", [x("a"), s("flush_all -1\r\n", "OK\r\n"), miss("a")]),
        t("flush_all: max u32 is -1, now", [x("a"), s("flush_all 4294967295\r\n", "OK\r\n"), miss("a")]),
        t("flush_all: a delay keeps values until then", [x("a"), s("flush_all 3600\r\n", "OK\r\n"), get("a", 0, "x")]),
        t("flush_all: noreply", [x("a"), s("flush_all noreply\r\n", ""), miss("a")]),
        t("flush_all: 0 noreply", [x("a"), s("flush_all 0 noreply\r\n", ""), miss("a")]),
        t("flush_all: a delay and noreply", [x("a"), s("flush_all 3600 noreply\r\n", ""), get("a", 0, "x")]),
        t("flush_all: then set", [x("a"), s("flush_all\r\nset a 0 0 1\r\ny\r\n", "OK\r\nSTORED\r\n"), get("a", 0, "y")]),
        t("flush_all: delay not a number", [x("a"), s("flush_all abc\r\n", BAD_EXPTIME), get("a", 0, "x")]),
        t("flush_all: bad delay with noreply is silent", [s("flush_all abc noreply\r\n", "")]),
        t("flush_all: noreply before the delay", [s("flush_all noreply 10\r\n", BAD_EXPTIME)]),
        t("flush_all: a junk token after the delay", [x("a"), s("flush_all 0 junk\r\n", "OK\r\n"), miss("a")]),
        t("flush_all: too many tokens", [x("a"), s("flush_all 1 2 3\r\n", "ERROR\r\n"), get("a", 0, "x")]),
        t("flush_all: an HTTP-looking delay", [s("flush_all HTTP/1.1\r\n", BAD_EXPTIME)]),
        // ---------------------------------------------------------------- verbosity
        t("verbosity: 0", [s("verbosity 0\r\n", "OK\r\n")]),
        t("verbosity: 1", [s("verbosity 1\r\n", "OK\r\n")]),
        t("verbosity: an extra token is ignored", [s("verbosity 0 2\r\n", "OK\r\n")]),
        t("verbosity: noreply", [s("verbosity 0 noreply\r\n", "")]),
        t("verbosity: no level", [s("verbosity\r\n", "ERROR\r\n")]),
        t("verbosity: too many tokens", [s("verbosity 1 2 3\r\n", "ERROR\r\n")]),
        t("verbosity: level not a number", [s("verbosity x\r\n", BAD_FORMAT)]),
        t("verbosity: level -1", [s("verbosity -1\r\n", BAD_FORMAT)]),
        t("verbosity: a bad level with noreply is silent", [s("verbosity x noreply\r\n", "")]),
        t("verbosity: noreply as the level", [s("verbosity noreply\r\n", "")]),
        // ---------------------------------------------------------------- version / quit / stats
        t("version: answers", [s("version\r\n", "VERSION <version>\r\n")]),
        t("version: ignores arguments", [s("version a b\r\n", "VERSION <version>\r\n")]),
        t("quit: closes", [closes("quit\r\n", "")]),
        t("quit: after earlier replies", [closes("set a 0 0 1\r\nx\r\nget a\r\nquit\r\n", "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n")]),
        t("quit: ignores arguments", [closes("quit now\r\n", "")]),
        t("quit: a bare newline", [closes("quit\n", "")]),
        t("stats: answers", [s("stats\r\n", "STAT <stats>\r\nEND\r\n")]),
        t("stats: settings", [s("stats settings\r\n", "STAT <stats>\r\nEND\r\n")]),
        t("stats: reset", [s("stats reset\r\n", "RESET\r\n")]),
        t("stats: detail without on or off", [s("stats detail\r\n", "CLIENT_ERROR usage: stats detail on|off|dump\r\n")]),
        t("stats: an unknown group", [s("stats foo\r\n", "ERROR\r\n")]),
        t("stats: items", [x("k"), s("stats items\r\n", "STAT <stats>\r\nEND\r\n")]),
        t("stats: slabs", [x("k"), s("stats slabs\r\n", "STAT <stats>\r\nEND\r\n")]),
        t("stats: detail on and off", [s("stats detail on\r\n", "OK\r\n"), s("stats detail off\r\n", "OK\r\n")]),
        // ---------------------------------------------------------------- malformed lines
        t("malformed: an empty line", [s("\r\n", "ERROR\r\n")]),
        t("malformed: a bare newline", [s("\n", "ERROR\r\n")]),
        t("malformed: spaces only", [s("   \r\n", "ERROR\r\n")]),
        t("malformed: a carriage return only", [s("\r\r\n", "ERROR\r\n")]),
        t("malformed: an unknown command", [s("foo bar\r\n", "ERROR\r\n")]),
        t("malformed: one letter", [s("a\r\n", "ERROR\r\n")]),
        t("malformed: upper case", [s("GET a\r\n", "ERROR\r\n")]),
        t("malformed: capitalised version", [s("Version\r\n", "ERROR\r\n")]),
        t("malformed: a NUL byte first", [s("\0get a\r\n", "ERROR\r\n")]),
        t("malformed: a NUL byte alone", [s("\0\r\n", "ERROR\r\n")]),
        t("malformed: a NUL byte inside a storage line", [s("set a\0 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n")]),
        t("malformed: a tab after the command", [s("get\ta\r\n", "ERROR\r\n")]),
        t("malformed: a known prefix", [s("gett a\r\n", "ERROR\r\n")]),
        t("malformed: high bytes", [s(b"\xff\xfe\x80\r\n".to_vec(), "ERROR\r\n")]),
        t("malformed: many tokens", [s(format!("foo{}\r\n", " a".repeat(40)), "ERROR\r\n")]),
        t("malformed: 2000 spaces", [s(format!("{}\r\n", " ".repeat(2000)), "ERROR\r\n")]),
        t("malformed: an unknown command in a known family before HTTP", [s("gxx a HTTP/1.1\r\n", "ERROR\r\n")]),
        t("malformed: HTTP not last", [s("xx HTTP/ a\r\n", "ERROR\r\n")]),
        t("malformed: an HTTP request closes", [closes("GET / HTTP/1.1\r\n", "")]),
        t("malformed: an HTTP request after a get closes after its reply", [closes("get a\r\nGET / HTTP/1.1\r\n", "END\r\n")]),
        t("malformed: any unknown command ending in HTTP/ closes", [closes("xx a HTTP/1.0\n", "")]),
        t("malformed: an unterminated line over 2048 bytes closes", [closes(format!("set {}", "a".repeat(2045)), "")]),
        t("malformed: a 3000-byte line that arrives whole is read", [s(format!("set {} 0 0 1\r\nx\r\n", "a".repeat(3000)), format!("{BAD_FORMAT}ERROR\r\n"))]),
        t("malformed: errors then a good command", [s("foo\r\nset k 0 0 -1\r\n\r\nget k\r\n", format!("ERROR\r\n{BAD_FORMAT}ERROR\r\nEND\r\n"))]),
        t("malformed: the connection recovers", [s("\r\nbar\r\n", "ERROR\r\nERROR\r\n"), x("k"), get("k", 0, "x")]),
        // ---------------------------------------------------------------- commands the router does not serve
        t("admin: shutdown", [s("shutdown\r\n", "ERROR: shutdown not enabled\r\n")]),
        t("admin: slabs automove", [s("slabs automove 0\r\n", "OK\r\n")]),
        t("admin: cache_memlimit without a size", [s("cache_memlimit\r\n", "ERROR\r\n")]),
        // ---------------------------------------------------------------- pipelines of everything
        t("pipeline: every command in one write", [s(
            "set a 1 0 1\r\na\r\nadd b 2 0 1\r\nb\r\nreplace a 3 0 1\r\nA\r\nappend a 0 0 1\r\n+\r\nprepend b 0 0 1\r\n-\r\n\
             incr a 1\r\ntouch b 100\r\ndelete c\r\nget a b c\r\nverbosity 0\r\nflush_all 0\r\nget a\r\n",
            format!("STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nSTORED\r\n{NON_NUMERIC}TOUCHED\r\nNOT_FOUND\r\n\
                     VALUE a 3 2\r\nA+\r\nVALUE b 2 2\r\n-b\r\nEND\r\nOK\r\nOK\r\nEND\r\n"),
        )]),
        t("pipeline: noreply on everything that has it", [s(
            "set a 0 0 1 noreply\r\n1\r\nadd b 0 0 1 noreply\r\n2\r\nreplace a 0 0 1 noreply\r\n3\r\nappend a 0 0 1 noreply\r\n4\r\n\
             prepend a 0 0 1 noreply\r\n5\r\nincr a 1 noreply\r\ndecr b 1 noreply\r\ntouch a 100 noreply\r\ndelete b noreply\r\n\
             verbosity 0 noreply\r\nget a b\r\n",
            "VALUE a 0 3\r\n535\r\nEND\r\n",
        )]),
        t("pipeline: cas on everything that has noreply", [x("k"), s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"), s("cas k 0 0 1 {cas} noreply\r\ny\r\ncas k 0 0 1 {cas} noreply\r\nz\r\nget k\r\n", "VALUE k 0 1\r\ny\r\nEND\r\n")]),
        t("pipeline: a 300-key get over 2048 bytes", [x("key_000007"), x("key_000299"), s(format!("get {}\r\n", keys300.join(" ")), "VALUE key_000007 0 1\r\nx\r\nVALUE key_000299 0 1\r\nx\r\nEND\r\n")]),
        t("pipeline: a 300-key gets over 2048 bytes", [x("key_000100"), s(format!("gets {}\r\n", keys300.join(" ")), "VALUE key_000100 0 1 <cas>\r\nx\r\nEND\r\n")]),
        t("pipeline: replies before a long key in a later get", [s(format!("get a\r\nget {k251}\r\n"), format!("END\r\n{BAD_FORMAT}"))]),
        // ---------------------------------------------------------------- value size limits
        t("limits: memcached's largest value", [
            s(store(&format!("set big 0 0 {MEMCACHED_MAX_VALUE}"), MEMCACHED_MAX_VALUE), "STORED\r\n"),
            s("get big\r\n", value_of("big", MEMCACHED_MAX_VALUE)),
        ]),
        t("limits: one byte over memcached's largest", [
            s(store(&format!("set big 0 0 {}", MEMCACHED_MAX_VALUE + 1), MEMCACHED_MAX_VALUE + 1), TOO_LARGE),
            miss("big"),
        ]),
        t("limits: the router's limit, refused by memcached", [
            s(store(&format!("set big 0 0 {ROUTER_MAX_VALUE}"), ROUTER_MAX_VALUE), TOO_LARGE),
            miss("big"),
        ]),
        t("limits: one byte over the router's limit", [
            s(store(&format!("set big 0 0 {}", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), TOO_LARGE),
            miss("big"),
        ]),
        t("limits: 2 MB is swallowed whatever its data holds", [
            x("victim"),
            s(format!("set big 0 0 2000000\r\n{}\r\n", "delete victim\r\n".repeat(2_000_000 / 15 + 1).get(..2_000_000).unwrap_or_default()), TOO_LARGE),
            get("victim", 0, "x"),
        ]),
        t("limits: a set too large deletes the old value", [x("big"), s(store(&format!("set big 0 0 {}", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), TOO_LARGE), miss("big")]),
        t("limits: a set too large for memcached deletes the old value", [x("big"), s(store(&format!("set big 0 0 {}", MEMCACHED_MAX_VALUE + 1), MEMCACHED_MAX_VALUE + 1), TOO_LARGE), miss("big")]),
        t("limits: an add too large keeps the old value", [x("big"), s(store(&format!("add big 0 0 {}", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), TOO_LARGE), get("big", 0, "x")]),
        t("limits: a set too large with noreply is silent", [x("big"), s(store(&format!("set big 0 0 {} noreply", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), ""), miss("big")]),
        t("limits: an append too large", [x("big"), s(store(&format!("append big 0 0 {}", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), TOO_LARGE), get("big", 0, "x")]),
        t("limits: an append past memcached's largest", [
            s(store(&format!("set big 0 0 {MEMCACHED_MAX_VALUE}"), MEMCACHED_MAX_VALUE), "STORED\r\n"),
            s("append big 0 0 1\r\nx\r\n", "NOT_STORED\r\n"),
        ]),
        t("limits: a cas too large", [x("big"), s(store(&format!("cas big 0 0 {} 1", ROUTER_MAX_VALUE + 1), ROUTER_MAX_VALUE + 1), TOO_LARGE), get("big", 0, "x")]),
        t("limits: ten 100 kB values in one get", [
            s((0..10).flat_map(|i| store(&format!("set v{i} 0 0 100000"), 100_000)).collect::<Vec<u8>>(), "STORED\r\n".repeat(10)),
            s(format!("get {}\r\n", (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>().join(" ")),
              (0..10).flat_map(|i| { let mut v = value_of(&format!("v{i}"), 100_000); v.truncate(v.len() - 5); v }).chain(b"END\r\n".iter().copied()).collect::<Vec<u8>>()),
        ]),
        t("get: 100 keys that all hit", [
            s((0..100).flat_map(|i| format!("set h{i} {i} 0 1\r\n{}\r\n", i % 10).into_bytes()).collect::<Vec<u8>>(), "STORED\r\n".repeat(100)),
            s(format!("get {}\r\n", (0..100).map(|i| format!("h{i}")).collect::<Vec<_>>().join(" ")),
              format!("{}END\r\n", (0..100).map(|i| format!("VALUE h{i} {i} 1\r\n{}\r\n", i % 10)).collect::<String>())),
        ]),
        t("limits: a 100 kB value", [s(store("set k 0 0 100000", 100_000), "STORED\r\n"), s("get k\r\n", value_of("k", 100_000))]),
    ];
    all.extend(noreply_on_every_command());
    all.extend(edge_values_on_every_storage_command());
    all
}

/// Each storage command but `set` (in the table) with the largest flags, a negative exptime
/// and the largest u32 exptime (-1 in memcached's 32 bits). `append` and `prepend` keep the old
/// flags and exptime.
fn edge_values_on_every_storage_command() -> Vec<Script> {
    let edges = [
        ("flags max u32", 4294967295u32, "0"),
        ("exptime -1", 0, "-1"),
        ("exptime max u32", 0, "4294967295"),
    ];
    let mut scripts = Vec::new();
    for command in ["add", "replace", "append", "prepend", "cas"] {
        for (what, flags, exptime) in edges {
            let mut steps = Vec::new();
            if command != "add" {
                steps.push(x("k"));
            }
            let mut unique = "";
            if command == "cas" {
                steps.push(s("gets k\r\n", "VALUE k 0 1 <cas>\r\nx\r\nEND\r\n"));
                unique = " {cas}";
            }
            steps.push(s(
                format!("{command} k {flags} {exptime} 1{unique}\r\ny\r\n"),
                "STORED\r\n",
            ));
            steps.push(match command {
                "append" => get("k", 0, "xy"),
                "prepend" => get("k", 0, "yx"),
                _ if exptime != "0" => miss("k"),
                _ => get("k", flags, "y"),
            });
            scripts.push(Script {
                name: format!("{command}: {what}"),
                steps,
            });
        }
    }
    scripts
}

/// One script per command that has `noreply`: the command is silent, and the next reply is the
/// next command's.
fn noreply_on_every_command() -> Vec<Script> {
    let setup = "set k 0 0 1\r\n5\r\n";
    [
        ("set", "set k 0 0 1 noreply\r\n6\r\n", "6"),
        ("add", "add n 0 0 1 noreply\r\n6\r\n", "5"),
        ("replace", "replace k 0 0 1 noreply\r\n6\r\n", "6"),
        ("append", "append k 0 0 1 noreply\r\n6\r\n", "56"),
        ("prepend", "prepend k 0 0 1 noreply\r\n6\r\n", "65"),
        ("incr", "incr k 2 noreply\r\n", "7"),
        ("decr", "decr k 2 noreply\r\n", "3"),
        ("touch", "touch k 100 noreply\r\n", "5"),
        ("verbosity", "verbosity 0 noreply\r\n", "5"),
    ]
    .into_iter()
    .map(|(command, line, value)| {
        t(
            &format!("noreply: {command} then get"),
            [
                s(setup, "STORED\r\n"),
                s(
                    format!("{line}get k\r\n"),
                    format!("VALUE k 0 {}\r\n{value}\r\nEND\r\n", value.len()),
                ),
            ],
        )
    })
    .collect()
}

/// The meta protocol, checked against memcached only until the router serves it (see
/// `conformance.rs`): (name, [(send, memcached's reply)]).
#[rustfmt::skip]
pub const META_CASES: &[(&str, &[(&str, &str)])] = &[
    ("meta: mn", &[("mn\r\n", "MN\r\n")]),
    ("meta: ms then mg with value", &[("ms k 2\r\nhi\r\n", "HD\r\n"), ("mg k v\r\n", "VA 2\r\nhi\r\n")]),
    ("meta: mg miss", &[("mg k v\r\n", "EN\r\n")]),
    ("meta: mg quiet miss is silent until mn", &[("mg k v q\r\nmn\r\n", "MN\r\n")]),
    ("meta: mg flags, key and opaque", &[("ms k 1 F5 T0\r\nx\r\n", "HD\r\n"), ("mg k f k O123 v\r\n", "VA 1 f5 kk O123\r\nx\r\n")]),
    ("meta: mg cas", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("mg k c\r\n", "HD c<cas>\r\n")]),
    ("meta: ms with the cas from mg", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("mg k c\r\n", "HD c<cas>\r\n"), ("ms k 1 C{cas}\r\ny\r\n", "HD\r\n"), ("ms k 1 C{cas}\r\nz\r\n", "EX\r\n")]),
    ("meta: ms modes", &[("ms k 1 MA\r\nx\r\n", "NS\r\n"), ("ms k 1 ME\r\nx\r\n", "HD\r\n"), ("ms k 1 ME\r\ny\r\n", "NS\r\n"), ("ms k 1 MA\r\ny\r\n", "HD\r\n"), ("ms k 1 MP\r\nz\r\n", "HD\r\n"), ("mg k v\r\n", "VA 3\r\nzxy\r\n")]),
    ("meta: ms invalid mode", &[("ms k 1 MZ\r\nx\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n")]),
    ("meta: md", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("md k\r\n", "HD\r\n"), ("md k\r\n", "NF\r\n")]),
    ("meta: md quiet hides HD, not NF", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("md k q\r\nmn\r\n", "MN\r\n"), ("md k q\r\nmn\r\n", "NF\r\nMN\r\n")]),
    ("meta: ma", &[("ma k\r\n", "NF\r\n"), ("ma k N0 J13 v\r\n", "VA 2\r\n13\r\n"), ("ma k v\r\n", "VA 2\r\n14\r\n"), ("ma k MD D20 v\r\n", "VA 1\r\n0\r\n")]),
    ("meta: base64 key", &[("ms Zm9v 1 b\r\nx\r\n", "HD\r\n"), ("mg foo v\r\n", "VA 1\r\nx\r\n")]),
    ("meta: me", &[("me k\r\n", "EN\r\n")]),
    ("meta: bad flag", &[("mg k !\r\n", "CLIENT_ERROR invalid flag\r\n")]),
    ("meta: mg size and hit-before flags", &[("ms k 3\r\nabc\r\n", "HD\r\n"), ("mg k s h\r\n", "HD s3 h0\r\n"), ("mg k h\r\n", "HD h1\r\n")]),
    ("meta: mg ttl of a key without one", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("mg k t\r\n", "HD t-1\r\n")]),
    ("meta: mg quiet hit is answered", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("mg k v q\r\nmn\r\n", "VA 1\r\nx\r\nMN\r\n")]),
    ("meta: quiet misses on several keys", &[("mg a v q\r\nmg b v q O9\r\nmd c q\r\nmn\r\n", "NF\r\nMN\r\n")]),
    ("meta: mg vivifies a miss with N", &[("mg k N30 s v\r\n", "VA 0 s0 W\r\n\r\n"), ("mg k s v\r\n", "VA 0 s0 Z\r\n\r\n")]),
    ("meta: ms quiet is silent on success", &[("ms k 1 q\r\nx\r\nmn\r\n", "MN\r\n")]),
    ("meta: ms with the k and O flags", &[("ms k 1 k O77\r\nx\r\n", "HD kk O77\r\n")]),
    ("meta: ms base64 key returned in base64", &[("ms Zm9v 1 b\r\nx\r\n", "HD\r\n"), ("mg Zm9v b k v\r\n", "VA 1 kZm9v b\r\nx\r\n")]),
    ("meta: ms bad data chunk", &[("ms k 1\r\nxy\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n")]),
    ("meta: ma with initial value and modes", &[("ma k N0 J5 v\r\n", "VA 1\r\n5\r\n"), ("ma k MI D10 v\r\n", "VA 2\r\n15\r\n"), ("ma k M- D20 v\r\n", "VA 1\r\n0\r\n")]),
    ("meta: ma on a value that is not a number", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("ma k\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")]),
    ("meta: md invalidate marks the value stale", &[("ms k 1\r\nx\r\n", "HD\r\n"), ("md k I T30\r\n", "HD\r\n"), ("mg k v\r\n", "VA 1 X W\r\nx\r\n")]),
    ("meta: mg key too long", &[("mg kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk v\r\n", "CLIENT_ERROR bad command line format\r\n")]),
    ("meta: mg without a key", &[("mg\r\n", "ERROR\r\n")]),
    ("meta: unknown meta command", &[("mz k\r\n", "ERROR\r\n")]),
];

/// [`META_CASES`] as scripts.
pub fn meta_scripts() -> Vec<Script> {
    META_CASES
        .iter()
        .map(|(name, steps)| Script {
            name: (*name).to_owned(),
            steps: steps
                .iter()
                .map(|(send, expect)| s(*send, *expect))
                .collect(),
        })
        .collect()
}
