//! Tests that measure throughput or latency against the same router's a moment before, and so
//! need the machine to themselves. `cargo test` runs one test binary at a time: while this one runs,
//! no end-to-end test of `e2e` loads the two cores it measures on. Within it, the tests take
//! turns through [`switchyard_tests::heavy`].
//!
//! - [`isolation`]: a plugin looping on every call leaves another listener most of its
//!   throughput.
//! - [`tenants`]: a noisy tenant leaves another tenant's replies and p99 alone.

mod isolation;
mod tenants;
