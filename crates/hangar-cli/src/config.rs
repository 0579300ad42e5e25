//! `hangar config ...`: the running configuration over `/api/config`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::{CliError, EXIT_SERVER};
use crate::output::{cell, render_kv, render_table, show};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show the running configuration (YAML for people, JSON with `--output json`).
    Get,
    /// Re-read the config file and apply the differences (providers created over the API are
    /// kept).
    ///
    /// The exit code is 1 when a provider or group could not be applied (listed as FAILED).
    Reload(ReloadArgs),
    /// Print the running configuration as a YAML config file.
    Export(ExportArgs),
    /// Save a timestamped backup of the config file (the server keeps the most recent ones).
    Backup,
    /// Show how the config file differs from the running configuration, as a unified diff.
    ///
    /// The exit code is 0 whether or not there are differences; `--output json` gives
    /// `has_changes` (true or false) for scripts.
    Diff,
}

#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Read this config file instead of the one the server started with (a path on the
    /// server's machine, resolved by the server).
    #[arg(long, value_name = "PATH")]
    pub config_path: Option<String>,
}

impl ReloadArgs {
    /// The `POST /api/config/reload` body: `{}` or `{"config_path": ...}`.
    pub fn to_body(&self) -> Result<Value, CliError> {
        match &self.config_path {
            None => Ok(json!({})),
            Some(path) if path.trim().is_empty() => {
                Err(CliError::Usage("--config-path must not be empty".into()))
            }
            Some(path) => Ok(json!({ "config_path": path })),
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the YAML to this file (replacing it) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Run a `config` subcommand.
pub(crate) async fn run(
    cli: &Cli,
    command: &ConfigCommand,
    table: bool,
) -> Result<ExitCode, CliError> {
    // Check what can be checked locally before looking for a key or a server.
    let body = match command {
        ConfigCommand::Reload(reload) => reload.to_body()?,
        _ => Value::Null,
    };
    let client = connect(cli)?;
    let (response, human) = match command {
        ConfigCommand::Get => {
            let response = client.get(&["config"], &[]).await?;
            let human = config_text(&response)?;
            (response, human)
        }
        ConfigCommand::Reload(_) => {
            let response = client.post(&["config", "reload"], Some(&body)).await?;
            let human = reload_summary(&response);
            (response, human)
        }
        ConfigCommand::Export(export) => {
            let response = client.post(&["config", "export"], None).await?;
            let yaml = string_field(&response, "yaml")?;
            let text = with_newline(yaml);
            match &export.out {
                None => (response, text),
                Some(path) => {
                    std::fs::write(path, text.as_bytes()).map_err(|e| CliError::OutputFile {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    let summary = json!({ "out": path.display().to_string(), "bytes": text.len() });
                    (
                        summary,
                        format!("configuration written to {}\n", path.display()),
                    )
                }
            }
        }
        ConfigCommand::Backup => {
            let response = client.post(&["config", "backup"], None).await?;
            let human = backup_summary(&response);
            (response, human)
        }
        ConfigCommand::Diff => {
            let response = client.get(&["config", "diff"], &[]).await?;
            let diff = string_field(&response, "diff")?;
            let has_changes = response.get("has_changes").and_then(Value::as_bool);
            if table && diff.trim().is_empty() && has_changes != Some(true) {
                // Keep stdout a valid (empty) diff; say so on stderr.
                eprintln!("no differences between the config file and the running configuration");
            }
            let human = if diff.is_empty() {
                String::new()
            } else {
                with_newline(diff)
            };
            (response, human)
        }
    };
    show(&response, table, |_| human)?;
    if matches!(command, ConfigCommand::Reload(_)) && reload_failed(&response) {
        return Ok(ExitCode::from(EXIT_SERVER));
    }
    Ok(ExitCode::SUCCESS)
}

fn string_field<'a>(response: &'a Value, field: &str) -> Result<&'a str, CliError> {
    response
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Protocol(format!("the response has no '{field}' text")))
}

fn with_newline(text: &str) -> String {
    if text.is_empty() || text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// `config get` for people: a comment naming the file, then the configuration as YAML (pretty
/// JSON if it cannot be shown as YAML).
pub fn config_text(response: &Value) -> Result<String, CliError> {
    let config = response
        .get("config")
        .filter(|c| c.is_object())
        .ok_or_else(|| CliError::Protocol("the response has no 'config' object".into()))?;
    let mut out = match response.get("config_path").and_then(Value::as_str) {
        Some(path) => format!("# config file: {path}\n"),
        None => "# no config file (everything was created over the API)\n".to_owned(),
    };
    match yaml_serde::to_string(config) {
        Ok(yaml) => out.push_str(&with_newline(&yaml)),
        Err(_) => out.push_str(&with_newline(&crate::output::pretty(config))),
    }
    Ok(out)
}

fn id_list(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|ids| ids.iter().map(|id| cell(Some(id))).collect())
        .unwrap_or_default()
}

/// `failed` of a reload section: `{id: reason}` (or a plain list of ids) as `id: reason` cells.
fn failures(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(id, reason)| format!("{id}: {}", cell(Some(reason))))
            .collect(),
        other => id_list(other),
    }
}

/// Whether a reload reports providers or groups that could not be applied.
pub fn reload_failed(response: &Value) -> bool {
    let result = response.get("result");
    let sections = [result, result.and_then(|r| r.get("groups"))];
    sections
        .into_iter()
        .flatten()
        .any(|section| !failures(section.get("failed")).is_empty())
}

/// `config reload` for people: one row per kind of change that happened (e.g.
/// `provider  added  a, b`), one per failure, and the `server:` settings that only apply after
/// a restart; unchanged items are counted rather than listed.
pub fn reload_summary(response: &Value) -> String {
    let Some(result) = response.get("result").filter(|r| r.is_object()) else {
        return render_kv(response);
    };
    let mut rows = Vec::new();
    let mut unchanged = Vec::new();
    let sections = [("provider", Some(result)), ("group", result.get("groups"))];
    for (kind, section) in sections {
        let Some(section) = section else { continue };
        for change in ["added", "removed", "updated", "kept"] {
            let ids = id_list(section.get(change));
            if !ids.is_empty() {
                let change = if change == "kept" {
                    "kept (API)"
                } else {
                    change
                };
                rows.push(vec![kind.to_owned(), change.to_owned(), ids.join(", ")]);
            }
        }
        for failure in failures(section.get("failed")) {
            rows.push(vec![kind.to_owned(), "FAILED".to_owned(), failure]);
        }
        let count = id_list(section.get("unchanged")).len();
        if count > 0 {
            unchanged.push(format!(
                "{count} {kind}{}",
                if count == 1 { "" } else { "s" }
            ));
        }
    }
    let restart = id_list(result.get("restart_required"));
    if !restart.is_empty() {
        rows.push(vec![
            "server".to_owned(),
            "needs restart".to_owned(),
            restart.join(", "),
        ]);
    }
    let mut out = String::from("configuration reloaded");
    if let Some(path) = result.get("config_path").and_then(Value::as_str) {
        out.push_str(&format!(" from {path}"));
    }
    if rows.is_empty() {
        out.push_str(": no changes");
    }
    if !unchanged.is_empty() {
        out.push_str(&format!(" ({} unchanged)", unchanged.join(", ")));
    }
    out.push('\n');
    if !rows.is_empty() {
        out.push_str(&render_table(&["KIND", "CHANGE", "IDS"], &rows));
    }
    out
}

/// `config backup` for people.
pub fn backup_summary(response: &Value) -> String {
    match response.get("backup_path").and_then(Value::as_str) {
        Some(path) if response.get("created").and_then(Value::as_bool) != Some(false) => {
            match response.get("kept") {
                Some(kept) if !kept.is_null() => {
                    format!(
                        "backup created: {path} (backups kept: {})\n",
                        cell(Some(kept))
                    )
                }
                _ => format!("backup created: {path}\n"),
            }
        }
        _ => render_kv(response),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
