//! The `hangar` command line: a client for Hangar's REST API and its MCP endpoint, plus
//! `hangar serve`. The binary (`src/main.rs`) only calls [`main`].
#![forbid(unsafe_code)]

pub mod access;
pub mod approvals;
pub mod args;
pub mod catalog;
pub mod client;
mod commands;
pub mod config;
pub mod error;
pub mod groups;
pub mod import;
pub mod mcp;
pub mod observe;
pub mod output;
pub mod policies;
pub mod secrets;
mod serve;
pub mod sse;
pub mod system;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};

/// Parse the command line, run the command, and return the exit code: 0 on success, 1 when the
/// server (or a tool) reports an error, 2 for usage errors, 3 when the server cannot be reached.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => return serve::serve(args, cli.data_dir),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hangar", &mut script);
            return finish(output::print(&String::from_utf8_lossy(&script)).map_err(Into::into));
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(&cli)) {
        Ok(code) => code,
        Err(e) => finish(Err(e)),
    }
}

fn finish(outcome: Result<(), error::CliError>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
