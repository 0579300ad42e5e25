//! `hangar system` (`GET /api/system`) and `hangar maintenance ...` (`/api/maintenance`).

use clap::Subcommand;
use serde_json::{Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{cell, print, print_json};

#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Compact one event stream: the server deletes the events it no longer needs and
    /// reports how many.
    Compact {
        /// Stream id, e.g. `provider:<id>` or `group:<id>`.
        stream_id: String,
    },
}

/// `hangar system`.
pub(crate) async fn system(cli: &Cli, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    let response = client.get(&["system"], &[]).await?;
    if table {
        print(&system_text(&response)?)?;
    } else {
        print_json(&response)?;
    }
    Ok(())
}

/// Run a `maintenance` subcommand.
pub(crate) async fn maintenance(
    cli: &Cli,
    command: &MaintenanceCommand,
    table: bool,
) -> Result<(), CliError> {
    let MaintenanceCommand::Compact { stream_id } = command;
    if stream_id.trim().is_empty() {
        return Err(CliError::Usage("the stream id must not be empty".into()));
    }
    let client = connect(cli)?;
    let body = json!({ "stream_id": stream_id });
    let response = client
        .post(&["maintenance", "compact"], Some(&body))
        .await?;
    if table {
        print(&compact_summary(&response, stream_id))?;
    } else {
        print_json(&response)?;
    }
    Ok(())
}

/// `system` for people: aligned `key  value` lines. A map of numbers (`providers_by_state`)
/// becomes `cold=1 ready=2`; the uptime is shown in whole seconds and as days, hours,
/// minutes and seconds.
pub fn system_text(response: &Value) -> Result<String, CliError> {
    let system = response
        .get("system")
        .and_then(Value::as_object)
        .ok_or_else(|| CliError::Protocol("the response has no 'system' object".into()))?;
    let width = system.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let mut keys: Vec<&String> = system.keys().collect();
    keys.sort();
    let mut out = String::new();
    for key in keys {
        let value = &system[key.as_str()];
        let text = match value {
            Value::Object(map) if map.is_empty() => "-".to_owned(),
            Value::Object(map) => {
                let mut pairs: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k}={}", cell(Some(v))))
                    .collect();
                pairs.sort();
                pairs.join(" ")
            }
            Value::Number(n) if key == "uptime_seconds" => match n.as_f64() {
                // Whole seconds are enough for people (the server may send fractions).
                Some(seconds) if seconds >= 0.0 => {
                    let whole = seconds as u64;
                    format!("{whole} ({})", duration_text(whole))
                }
                _ => n.to_string(),
            },
            other => cell(Some(other)),
        };
        let line = format!("{key:width$}  {text}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// `93784` → `1d 2h 3m 4s`; leading zero units are left out.
pub fn duration_text(seconds: u64) -> String {
    let units = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let mut rest = seconds;
    let mut parts = Vec::new();
    for (size, unit) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 || !parts.is_empty() || size == 1 {
            parts.push(format!("{n}{unit}"));
        }
    }
    parts.join(" ")
}

/// `maintenance compact` for people.
pub fn compact_summary(response: &Value, stream_id: &str) -> String {
    let compacted = response.get("compacted");
    let stream = compacted
        .and_then(|c| c.get("stream_id"))
        .and_then(Value::as_str)
        .unwrap_or(stream_id);
    match compacted
        .and_then(|c| c.get("events_deleted"))
        .and_then(Value::as_u64)
    {
        Some(1) => format!("stream '{stream}' compacted: 1 event deleted\n"),
        Some(n) => format!("stream '{stream}' compacted: {n} events deleted\n"),
        None => format!("stream '{stream}' compacted\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_lines() {
        let response = json!({"system": {
            "total_providers": 3,
            "providers_by_state": {"ready": 2, "cold": 1},
            "total_groups": 1,
            "total_tools": 12,
            "total_tool_calls": 40,
            "uptime_seconds": 3725.9,
            "version": "0.1.0",
            "extra": null
        }});
        let text = system_text(&response).unwrap_or_else(|e| panic!("{e}"));
        let expected = "\
extra               -
providers_by_state  cold=1 ready=2
total_groups        1
total_providers     3
total_tool_calls    40
total_tools         12
uptime_seconds      3725 (1h 2m 5s)
version             0.1.0
";
        assert_eq!(text, expected);
        assert!(system_text(&json!({"nope": 1})).is_err());
        let empty = system_text(&json!({"system": {"providers_by_state": {}}}));
        assert_eq!(empty.ok().as_deref(), Some("providers_by_state  -\n"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration_text(0), "0s");
        assert_eq!(duration_text(59), "59s");
        assert_eq!(duration_text(60), "1m 0s");
        assert_eq!(duration_text(3600), "1h 0m 0s");
        assert_eq!(duration_text(93_784), "1d 2h 3m 4s");
    }

    #[test]
    fn compact_lines() {
        let response = json!({"compacted": {"stream_id": "provider:math", "events_deleted": 7}});
        assert_eq!(
            compact_summary(&response, "x"),
            "stream 'provider:math' compacted: 7 events deleted\n"
        );
        let one = json!({"compacted": {"stream_id": "s", "events_deleted": 1}});
        assert_eq!(
            compact_summary(&one, "s"),
            "stream 's' compacted: 1 event deleted\n"
        );
        assert_eq!(compact_summary(&json!({}), "s"), "stream 's' compacted\n");
    }
}
