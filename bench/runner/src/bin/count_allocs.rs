//! `switchyard-count-allocs`: the `switchyard` command with a global allocator that counts, so
//! that `stats` reports `allocations` and bench/run can divide them by requests. Built for the
//! benchmark only; its counting (atomic adds on every allocation) is never measured for speed.

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() -> std::process::ExitCode {
    switchyard::stats::report_allocations(|| GLOBAL.stats().allocations as u64);
    switchyard::cli::main()
}
