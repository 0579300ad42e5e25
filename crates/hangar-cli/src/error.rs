//! The CLI's errors: each one prints as one line and maps to an exit code.

use std::path::PathBuf;

/// Exit code for errors reported by the server (or a tool).
pub const EXIT_SERVER: u8 = 1;
/// Exit code for usage errors (the same as clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the server cannot be reached.
pub const EXIT_CONNECT: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// No key was given and the admin key file does not exist.
    #[error("no API key: pass --key, set HANGAR_KEY, or run the server so {} exists", path.display())]
    NoKey { path: PathBuf },
    /// The key file exists but cannot be read.
    #[error("cannot read API key from {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    /// The server could not be reached at all.
    #[error("cannot reach Hangar at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The server answered with a non-2xx status.
    #[error("{message} ({status})")]
    Api { status: u16, message: String },
    /// A JSON-RPC error from `/mcp`.
    #[error("{message} (code {code})")]
    JsonRpc { code: i64, message: String },
    /// The server answered something this client does not understand.
    #[error("unexpected response from Hangar: {0}")]
    Protocol(String),
    /// An import file cannot be read or understood.
    #[error(transparent)]
    Import(#[from] crate::import::ImportError),
    /// A file named on the command line (e.g. `--out`) cannot be written.
    #[error("cannot write {}: {reason}", path.display())]
    OutputFile { path: PathBuf, reason: String },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_)
            | CliError::NoKey { .. }
            | CliError::KeyFile { .. }
            | CliError::Import(_)
            | CliError::OutputFile { .. } => EXIT_USAGE,
            CliError::Connect { .. } => EXIT_CONNECT,
            CliError::Api { .. }
            | CliError::JsonRpc { .. }
            | CliError::Protocol(_)
            | CliError::Io(_) => EXIT_SERVER,
        }
    }

    /// True for a closed stdout (e.g. `hangar tools | head`): not worth reporting.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// Describe a reqwest failure in a few words, without the nested error chain noise.
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut io_reason = None;
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_reason = Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                std::io::ErrorKind::TimedOut => "timed out".to_owned(),
                std::io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
                _ => strip_os_error(&io.to_string()),
            });
        }
        source = e.source();
    }
    if let Some(reason) = io_reason {
        return reason;
    }
    if err.is_timeout() {
        return "timed out".to_owned();
    }
    // The innermost message is usually the most specific one (e.g. a DNS failure).
    let mut last = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        last = e.to_string();
        source = e.source();
    }
    strip_os_error(&last)
}

fn strip_os_error(message: &str) -> String {
    match message.find(" (os error") {
        Some(idx) => message[..idx].to_lowercase(),
        None => message.to_owned(),
    }
}
