//! Hand-rolled command-line parsing (no external parser needed for a few flags).

use std::fmt;

/// Parsed command-line options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Server name advertised in `serverInfo.name`.
    pub name: String,
    /// Number of `fixture stderr line i` lines printed to stderr at startup.
    pub stderr_lines: u64,
    /// Serve MCP Streamable HTTP at `http://ADDR/mcp` instead of stdio.
    pub http: Option<std::net::SocketAddr>,
    /// Speak only the 2025 protocol (`initialize` and sessions; no
    /// `server/discover`), like MCP servers built before 2026-07-28.
    pub legacy: bool,
    /// Generated tools `bulk_00000`… added to the fixture's own (for
    /// listing benchmarks).
    pub tools: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            name: crate::server::DEFAULT_NAME.to_owned(),
            stderr_lines: 0,
            http: None,
            legacy: false,
            tools: 0,
        }
    }
}

/// What the process should do after parsing its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve MCP over stdio with these options.
    Serve(Options),
    /// Print usage and exit successfully.
    Help,
}

/// A command-line error, reported on stderr with exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

pub const USAGE: &str = "\
usage: hangar-fixture [--name NAME] [--stderr-lines N] [--http ADDR] [--legacy] [--tools N]

An MCP test server speaking JSON-RPC over stdin/stdout (or Streamable HTTP).

options:
  --name NAME         server name reported in serverInfo (default: hangar-fixture)
  --stderr-lines N    print N lines \"fixture stderr line i\" to stderr at startup
  --http ADDR         serve MCP Streamable HTTP at http://ADDR/mcp instead of stdio
  --legacy            speak only the 2025 protocol (no server/discover)
  --tools N           also list N generated tools bulk_00000... (listing benchmarks)
  -h, --help          print this help";

/// Parse arguments (without the program name).
pub fn parse<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = String>,
{
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--name" => {
                let value = value_for(&flag, inline, &mut args)?;
                if value.is_empty() {
                    return Err(CliError("--name must not be empty".to_owned()));
                }
                options.name = value;
            }
            "--stderr-lines" => {
                let value = value_for(&flag, inline, &mut args)?;
                options.stderr_lines = value.parse().map_err(|_| {
                    CliError(format!(
                        "--stderr-lines expects a non-negative integer, got {value:?}"
                    ))
                })?;
            }
            "--legacy" => options.legacy = true,
            "--tools" => {
                let value = value_for(&flag, inline, &mut args)?;
                options.tools = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| {
                        CliError(format!(
                            "--tools expects a number up to 100000, got {value:?}"
                        ))
                    })?;
            }
            "--http" => {
                let value = value_for(&flag, inline, &mut args)?;
                options.http = Some(value.parse().map_err(|_| {
                    CliError(format!(
                        "--http expects an address like 127.0.0.1:9000, got {value:?}"
                    ))
                })?);
            }
            other => return Err(CliError(format!("unknown argument {other:?}"))),
        }
    }
    Ok(Command::Serve(options))
}

fn value_for(
    flag: &str,
    inline: Option<String>,
    rest: &mut impl Iterator<Item = String>,
) -> Result<String, CliError> {
    inline
        .or_else(|| rest.next())
        .ok_or_else(|| CliError(format!("{flag} requires a value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults() {
        assert_eq!(parse_strs(&[]), Ok(Command::Serve(Options::default())));
    }

    #[test]
    fn flags_with_separate_and_inline_values() {
        let expected = Command::Serve(Options {
            name: "other".to_owned(),
            stderr_lines: 3,
            http: None,
            legacy: false,
            tools: 0,
        });
        assert_eq!(
            parse_strs(&["--name", "other", "--stderr-lines", "3"]),
            Ok(expected)
        );
        let expected = Command::Serve(Options {
            name: "x".to_owned(),
            stderr_lines: 7,
            http: Some(([127, 0, 0, 1], 9000).into()),
            legacy: true,
            tools: 10,
        });
        assert_eq!(
            parse_strs(&[
                "--name=x",
                "--stderr-lines=7",
                "--http",
                "127.0.0.1:9000",
                "--legacy",
                "--tools=10"
            ]),
            Ok(expected)
        );
    }

    #[test]
    fn errors() {
        assert!(parse_strs(&["--name"]).is_err());
        assert!(parse_strs(&["--name", ""]).is_err());
        assert!(parse_strs(&["--stderr-lines", "-1"]).is_err());
        assert!(parse_strs(&["--bogus"]).is_err());
        assert!(parse_strs(&["--http", "nowhere"]).is_err());
        assert_eq!(parse_strs(&["--help"]), Ok(Command::Help));
    }
}
