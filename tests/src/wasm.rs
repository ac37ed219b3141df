//! Hand-written plugins in WebAssembly text, following `sdk/ABI.md` (version 1) directly
//! rather than through the SDK, so the tests check the host against the written ABI.
//!
//! Memory layout of these guests: key buffer at 1024 (1024 bytes), plan buffer at 2048
//! (4096 bytes), a guest's own state and texts at 7000..8192, configuration written by the
//! host at 8192.
//!
//! The encodings used (ABI.md, "Plans"): the plan word is `tag | small << 8 | arg << 32`; tag 1
//! is `forward(arg)`, tag 3 an extended plan of `arg` bytes in the plan buffer, tag 4 `pass`
//! (valid only from `on_reply`); tags 0 and 5 and above are undefined. Extended-plan entries
//! are little-endian `u32` words `[opcode][n][n payload words]`: opcode 1 `fan_out`
//! (`wait`, children), opcode 2 `call` (`child`, `cookie`).

/// The byte address of the key buffer.
const KEY_BUFFER: u32 = 1024;

/// Where a guest keeps texts it hands the host (`set_error`'s reason).
const TEXT_AT: u32 = 7168;

/// A guest that forwards every request to child 0, except that `route` runs `on_match` (WAT
/// instructions, leaving nothing on the stack) when the key starts with the four bytes
/// `prefix`. `imports` is spliced in before everything else.
fn guest(imports: &str, prefix: &[u8; 4], on_match: &str) -> String {
    module(imports, INIT_OK, Some(prefix), on_match, "")
}

/// `init` that accepts any configuration.
const INIT_OK: &str = "(i32.const 0)";

/// The general form of [`guest`]: `init_body` is `switchyard_init`'s body (parameters `$ptr`
/// and `$len`, one `i32` left on the stack); `route` runs `on_match` for keys starting with
/// `prefix`, or for every key when `prefix` is `None`, then forwards to child 0; `extra` is
/// spliced in after the exports (more functions, data segments).
fn module(
    imports: &str,
    init_body: &str,
    prefix: Option<&[u8; 4]>,
    on_match: &str,
    extra: &str,
) -> String {
    let matched = match prefix {
        Some(prefix) => {
            let word = u32::from_le_bytes(*prefix);
            format!(
                "(if (i32.and
          (i32.ge_u (local.get $key_len) (i32.const 4))
          (i32.eq (i32.load (i32.const {KEY_BUFFER})) (i32.const {word})))
      (then {on_match}))"
            )
        }
        None => format!("(block {on_match})"),
    };
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 2)
  (func (export "switchyard_abi_version") (result i32) (i32.const 1))
  (func (export "switchyard_key_buffer") (result i32) (i32.const {KEY_BUFFER}))
  (func (export "switchyard_plan_buffer") (result i32) (i32.const 2048))
  ;; The configuration goes at 8192, up to the end of the two pages; 0 means "too big".
  (func (export "switchyard_alloc") (param $len i32) (result i32)
    (if (result i32) (i32.le_u (local.get $len) (i32.const 122880))
      (then (i32.const 8192))
      (else (i32.const 0))))
  (func (export "switchyard_init") (param $ptr i32) (param $len i32) (result i32)
    {init_body})
  (func (export "switchyard_route")
    (param $op i32) (param $key_len i32) (param $flags i32) (param $exptime i64)
    (param $value_len i32) (param $listener i32) (result i64)
    {matched}
    ;; Plan tag 1, forward(child 0).
    (i64.const 1))
  {extra}
)"#
    )
}

fn compile(wat_text: &str) -> Vec<u8> {
    wat::parse_str(wat_text).unwrap_or_else(|e| panic!("invalid test guest: {e}\n{wat_text}"))
}

/// Forwards to child 0; a key starting with `trap` executes `unreachable`.
pub fn trapping_plugin() -> Vec<u8> {
    compile(&guest("", b"trap", "unreachable"))
}

/// Forwards to child 0; a key starting with `loop` spins forever, so only the host's epoch
/// deadline ends the call.
pub fn looping_plugin() -> Vec<u8> {
    compile(&guest("", b"loop", "(loop $spin (br $spin))"))
}

/// Forwards to child 0 and never misbehaves: the control for the two above.
pub fn forwarding_plugin() -> Vec<u8> {
    compile(&guest("", b"\0\0\0\0", "nop"))
}

/// Sends a key starting with `fan:` to children 0 and 1 at once (`fan_out`, wait for all, worst
/// reply), everything else to child 0. The plan is written to the plan buffer as ABI.md's
/// extended plan: `[FAN_OUT=1][n=3][wait ALL=0][0][1]`, 20 bytes, returned as tag 3.
pub fn fanning_out_plugin() -> Vec<u8> {
    compile(&guest(
        "",
        b"fan:",
        "(i32.store (i32.const 2048) (i32.const 1))
      (i32.store (i32.const 2052) (i32.const 3))
      (i32.store (i32.const 2056) (i32.const 0))
      (i32.store (i32.const 2060) (i32.const 0))
      (i32.store (i32.const 2064) (i32.const 1))
      (return (i64.or (i64.shl (i64.const 20) (i64.const 32)) (i64.const 3)))",
    ))
}

/// Like [`fanning_out_plugin`], but only once: a second `fan:` key in the same instance traps.
/// A test of how often the host routes one request.
pub fn fanning_out_once_plugin() -> Vec<u8> {
    compile(&guest(
        "",
        b"fan:",
        "(if (i32.load (i32.const 7000)) (then unreachable))
      (i32.store (i32.const 7000) (i32.const 1))
      (i32.store (i32.const 2048) (i32.const 1))
      (i32.store (i32.const 2052) (i32.const 3))
      (i32.store (i32.const 2056) (i32.const 0))
      (i32.store (i32.const 2060) (i32.const 0))
      (i32.store (i32.const 2064) (i32.const 1))
      (return (i64.or (i64.shl (i64.const 20) (i64.const 32)) (i64.const 3)))",
    ))
}

/// Keeps a count of its `route` calls in its memory and forwards call `n` (from 1) to child
/// `n % 2`: children 1, 0, 1, 0, ... for as long as its instance lives. Which child a call
/// reaches tells whether the instance is the one that made the calls before.
pub fn alternating_plugin() -> Vec<u8> {
    compile(&module(
        "",
        INIT_OK,
        None,
        "(i32.store (i32.const 7000) (i32.add (i32.load (i32.const 7000)) (i32.const 1)))
         (return (i64.or (i64.const 1)
           (i64.shl (i64.extend_i32_u (i32.rem_u (i32.load (i32.const 7000)) (i32.const 2)))
                    (i64.const 32))))",
        "",
    ))
}

/// A forwarding guest like [`forwarding_plugin`] whose bytes differ by `variant`: the same
/// policy as a new build, for tests that replace a plugin file.
pub fn forwarding_plugin_variant(variant: u8) -> Vec<u8> {
    compile(&guest("", &[b'v', b'a', b'r', variant], "nop"))
}

/// A well-formed guest that also imports WASI's `fd_write`, which the host must refuse.
pub fn wasi_plugin() -> Vec<u8> {
    compile(&guest(
        r#"(import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))"#,
        b"\0\0\0\0",
        "nop",
    ))
}

/// Spins forever in every `route` call, whatever the key: only the host's epoch deadline
/// (`[plugins] call_timeout_ms`) ends each call. A plugin stuck in a loop for good.
pub fn looping_every_call_plugin() -> Vec<u8> {
    compile(&module("", INIT_OK, None, SPIN, ""))
}

/// Traps (`unreachable`) in every `route` call, whatever the key: a plugin broken for good.
pub fn trapping_every_call_plugin() -> Vec<u8> {
    compile(&module("", INIT_OK, None, "unreachable", ""))
}

/// An endless loop: `route` never returns of its own accord.
const SPIN: &str = "(loop $spin (br $spin))";

/// Forwards every request to child 0, but its `init` takes `ms` milliseconds: it spins until
/// the host's `now_ms` import (wall-clock milliseconds) has advanced by `ms` since `init`
/// began, then accepts its configuration. `[plugins] init_timeout_ms` (default 2000) must be
/// longer than `ms` for the plugin to load.
pub fn slow_init_plugin(ms: u64) -> Vec<u8> {
    let init = format!(
        "(local $start i64)
    (local.set $start (call $now_ms))
    (loop $wait
      (br_if $wait
        (i64.lt_s (i64.sub (call $now_ms) (local.get $start)) (i64.const {ms}))))
    (i32.const 0)"
    );
    compile(&module(
        r#"(import "switchyard" "now_ms" (func $now_ms (result i64)))"#,
        &init,
        None,
        "nop",
        "",
    ))
}

/// The first value of the host's `random` import in an instance whose generator was seeded
/// with `seed`: the host seeds each instance with `(worker << 32 | instances created before it
/// on that worker for that node) | 1` and steps xorshift64* (`HostState::next_random`).
pub fn first_random(seed: u64) -> u64 {
    let mut x = seed | 1;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Forwards every request to child 0, but its `init` accepts its configuration only in an
/// instance whose first `random` value is worker 0's first instance's ([`first_random`] of
/// seed 0, the same as seed 1, which the host uses for the instance it checks a config with).
/// Elsewhere — worker 1's instances, say — `init` calls `set_error` with "only worker 0 may run
/// this plugin" and returns 1. A plugin that loads when checked and fails on one worker.
pub fn init_fails_off_worker_zero_plugin() -> Vec<u8> {
    let expected = first_random(0) as i64;
    let reason = "only worker 0 may run this plugin";
    let init = format!(
        "(if (i64.eq (call $random) (i64.const {expected}))
      (then (return (i32.const 0))))
    (call $set_error (i32.const {TEXT_AT}) (i32.const {}))
    (i32.const 1)",
        reason.len()
    );
    compile(&module(
        r#"(import "switchyard" "random" (func $random (result i64)))
  (import "switchyard" "set_error" (func $set_error (param i32 i32)))"#,
        &init,
        None,
        "nop",
        &format!("(data (i32.const {TEXT_AT}) {reason:?})"),
    ))
}

/// Forwards to child 0; a key starting with `oom:` makes `route` grow its memory (64 pages,
/// 4 MiB, at a time) until `memory.grow` fails at the host's `[plugins] memory_limit_mb`, then
/// trap (`unreachable`), as a Rust guest's allocator aborts when it cannot get more memory.
pub fn out_of_memory_plugin() -> Vec<u8> {
    compile(&guest(
        "",
        b"oom:",
        "(block $full
        (loop $grow
          (br_if $full (i32.eq (memory.grow (i32.const 64)) (i32.const -1)))
          (br $grow)))
      unreachable",
    ))
}

/// Forwards to child 0; for a key starting with `bad:` `route` returns plan tag 238, which
/// the ABI does not define: an invalid plan.
pub fn invalid_plan_plugin() -> Vec<u8> {
    compile(&guest("", b"bad:", "(return (i64.const 238))"))
}

/// Forwards to child 0; for a key starting with `far:` `route` returns `forward(200)` (tag 1,
/// arg 200), a child index out of range for any node of these tests: an invalid plan.
pub fn child_out_of_range_plugin() -> Vec<u8> {
    compile(&guest(
        "",
        b"far:",
        "(return (i64.or (i64.shl (i64.const 200) (i64.const 32)) (i64.const 1)))",
    ))
}

/// Forwards to child 0; for a key starting with `pass` `route` returns `pass` (tag 4), which
/// the ABI allows only from `on_reply`.
pub fn pass_from_route_plugin() -> Vec<u8> {
    compile(&guest("", b"pass", "(return (i64.const 4))"))
}

/// Forwards to child 0; for a key starting with `call` `route` plans `call(child 0, cookie 0)`
/// and `on_reply` answers every reply with the same `call` again, so the ninth call of the
/// request (the ABI allows eight per request and node) is a fault. The plan is the extended
/// plan `[CALL=2][n=2][child 0][cookie 0]`, 16 bytes, returned as tag 3.
pub fn too_many_calls_plugin() -> Vec<u8> {
    let plan_call = "(i32.store (i32.const 2048) (i32.const 2))
      (i32.store (i32.const 2052) (i32.const 2))
      (i32.store (i32.const 2056) (i32.const 0))
      (i32.store (i32.const 2060) (i32.const 0))
      (return (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 3)))";
    let on_reply = format!(
        r#"(func (export "switchyard_on_reply")
    (param $cookie i32) (param $status i32) (param $op i32) (param $key_len i32) (result i64)
    {plan_call})"#
    );
    compile(&module("", INIT_OK, Some(b"call"), plan_call, &on_reply))
}

/// Forwards every request to child 0 and logs `chatty` at info level (`log`) in every `route`
/// call: a plugin that would flood the log.
pub fn logging_every_call_plugin() -> Vec<u8> {
    compile(&module(
        r#"(import "switchyard" "log" (func $log (param i32 i32 i32)))"#,
        INIT_OK,
        None,
        &format!("(call $log (i32.const 3) (i32.const {TEXT_AT}) (i32.const 6))"),
        &format!(r#"(data (i32.const {TEXT_AT}) "chatty")"#),
    ))
}

/// Counts what it routes in metrics of its own (ABI.md, "Plugin metrics"): `init` defines the
/// counter `requests` (twice: the second definition must return the first's id) and the
/// histogram `key_bytes`, failing unless the host numbers them as ABI.md says; each `route`
/// adds 1 to `requests` and records the key's length in `key_bytes`, then forwards to child
/// 0. A key starting with `bad!` bumps counter 7, which it never defined: a trap.
pub fn counting_plugin() -> Vec<u8> {
    let init = format!(
        "(local $a i32) (local $b i32) (local $h i32)
    (local.set $a (call $define (i32.const 1) (i32.const {TEXT_AT}) (i32.const 8)))
    (local.set $b (call $define (i32.const 1) (i32.const {TEXT_AT}) (i32.const 8)))
    (local.set $h (call $define (i32.const 2) (i32.const {names}) (i32.const 9)))
    (i32.store (i32.const 7000) (local.get $a))
    (i32.store (i32.const 7004) (local.get $h))
    (i32.or (i32.or (local.get $a) (local.get $b)) (local.get $h))",
        names = TEXT_AT + 8
    );
    compile(&module(
        r#"(import "switchyard" "metric_define" (func $define (param i32 i32 i32) (result i32)))
  (import "switchyard" "counter_add" (func $add (param i32 i64)))
  (import "switchyard" "histogram_record" (func $record (param i32 i64)))"#,
        &init,
        None,
        "(call $add (i32.load (i32.const 7000)) (i64.const 1))
      (call $record (i32.load (i32.const 7004)) (i64.extend_i32_u (local.get $key_len)))
      (if (i32.and
            (i32.ge_u (local.get $key_len) (i32.const 4))
            (i32.eq (i32.load (i32.const 1024)) (i32.const 0x21646162)))
        (then (call $add (i32.const 7) (i64.const 1))))",
        &format!(r#"(data (i32.const {TEXT_AT}) "requestskey_bytes")"#),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_guests_are_valid_modules() {
        let engine = switchyard::plugin::PluginEngine::new().expect("a wasm engine");
        for (name, module) in [
            ("trapping", trapping_plugin()),
            ("looping", looping_plugin()),
            ("forwarding", forwarding_plugin()),
            ("fanning_out", fanning_out_plugin()),
            ("fanning_out_once", fanning_out_once_plugin()),
            ("looping_every_call", looping_every_call_plugin()),
            ("trapping_every_call", trapping_every_call_plugin()),
            ("slow_init", slow_init_plugin(1000)),
            (
                "init_fails_off_worker_zero",
                init_fails_off_worker_zero_plugin(),
            ),
            ("out_of_memory", out_of_memory_plugin()),
            ("invalid_plan", invalid_plan_plugin()),
            ("child_out_of_range", child_out_of_range_plugin()),
            ("pass_from_route", pass_from_route_plugin()),
            ("too_many_calls", too_many_calls_plugin()),
            ("counting", counting_plugin()),
        ] {
            assert_eq!(&module[..4], b"\0asm", "{name}");
            // Compiled and checked against the ABI's imports and exports as a load would.
            if let Err(e) = switchyard::plugin::PluginModule::compile(&engine, name, &module) {
                panic!("{name}: {}: {}", e.plugin, e.message);
            }
        }
        // WASI is refused at load: the point of that guest.
        assert!(
            switchyard::plugin::PluginModule::compile(&engine, "wasi", &wasi_plugin()).is_err()
        );
    }

    #[test]
    fn first_random_steps_xorshift64_star_once() {
        // By hand: 1 ^ 1 >> 12 = 1; 1 ^ 1 << 25 = 0x2000001; 0x2000001 >> 27 = 0.
        assert_eq!(
            first_random(1),
            0x200_0001u64.wrapping_mul(0x2545_F491_4F6C_DD1D)
        );
        // Seeds 0 and 1 are one seed (the host ors in 1); worker 1's first instance differs.
        assert_eq!(first_random(0), first_random(1));
        assert_ne!(first_random(1 << 32), first_random(0));
    }
}
