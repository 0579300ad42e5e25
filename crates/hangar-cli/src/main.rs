//! `hangar`: see the `hangar_cli` library for everything it does.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hangar_cli::main()
}
