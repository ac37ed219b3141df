//! The `switchyard` binary: see [`switchyard::cli`].

/// jemalloc, with its background thread purging freed pages: after a spike of large replies
/// the router's memory comes back down even while its workers, which allocate nothing per
/// request, stay quiet. glibc's malloc kept 230 of 459 MiB resident after such a spike, and
/// mimalloc (which purges lazily, on a thread's next allocations) more.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    switchyard::cli::main()
}
