//! `hangar`: see the `hangar_cli` library for everything it does.
#![forbid(unsafe_code)]

/// The allocator `hangar-server` uses (for `hangar serve`): jemalloc gives
/// freed memory back to the system within seconds.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hangar_cli::main()
}
