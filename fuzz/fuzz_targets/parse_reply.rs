//! `parse_reply` on arbitrary bytes: never panics, and keeps the properties listed in
//! `../invariants/reply.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../invariants/reply.rs"]
mod invariants;

fuzz_target!(|buf: &[u8]| invariants::check(buf));
