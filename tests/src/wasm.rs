//! Hand-written plugins in WebAssembly text, following `sdk/ABI.md` (version 1) directly
//! rather than through the SDK, so the tests check the host against the written ABI.
//!
//! Memory layout of these guests: key buffer at 1024 (1024 bytes), plan buffer at 2048
//! (4096 bytes), configuration written by the host at 8192.

/// The byte address of the key buffer.
const KEY_BUFFER: u32 = 1024;

/// A guest that forwards every request to child 0, except that `route` runs `on_match` (WAT
/// instructions, leaving nothing on the stack) when the key starts with the four bytes
/// `prefix`. `imports` is spliced in before everything else.
fn guest(imports: &str, prefix: &[u8; 4], on_match: &str) -> String {
    let word = u32::from_le_bytes(*prefix);
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
    (i32.const 0))
  (func (export "switchyard_route")
    (param $op i32) (param $key_len i32) (param $flags i32) (param $exptime i64)
    (param $value_len i32) (param $listener i32) (result i64)
    (if (i32.and
          (i32.ge_u (local.get $key_len) (i32.const 4))
          (i32.eq (i32.load (i32.const {KEY_BUFFER})) (i32.const {word})))
      (then {on_match}))
    ;; Plan tag 1, forward(child 0).
    (i64.const 1))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_guests_are_valid_modules() {
        for module in [
            trapping_plugin(),
            looping_plugin(),
            forwarding_plugin(),
            fanning_out_plugin(),
            fanning_out_once_plugin(),
            wasi_plugin(),
        ] {
            assert_eq!(&module[..4], b"\0asm");
        }
    }
}
