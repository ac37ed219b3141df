//! `parse_request` on arbitrary bytes: never panics, and keeps the properties listed in
//! `../invariants/request.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../invariants/request.rs"]
mod invariants;

fuzz_target!(|buf: &[u8]| invariants::check(buf));
