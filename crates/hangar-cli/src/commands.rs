//! What each client command does: one REST or MCP exchange, then output.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::args::{Cli, Command, OutputFormat, ProvidersCommand};
use crate::client::{Client, resolve_key};
use crate::error::{CliError, EXIT_SERVER};
use crate::mcp::McpClient;
use crate::output::{self, cell, print, print_json, render_kv, render_table, rows, show, summary};

pub(crate) fn connect(cli: &Cli) -> Result<Client, CliError> {
    let key = resolve_key(cli.key.as_deref(), &cli.data_dir)?;
    Client::new(&cli.url, key)
}

/// Run a command that talks to a server. `serve` and `completions` are handled by the caller.
pub async fn run(cli: &Cli) -> Result<ExitCode, CliError> {
    let table = cli.output == OutputFormat::Table;
    match &cli.command {
        Command::Providers(ProvidersCommand::Logs {
            id,
            lines,
            follow: true,
        }) => crate::observe::follow_logs(cli, id, *lines, table).await?,
        Command::Providers(command) => providers(cli, command, table).await?,
        Command::Groups(command) => crate::groups::run(cli, command, table).await?,
        Command::Config(command) => return crate::config::run(cli, command, table).await,
        Command::Catalog(command) => crate::catalog::run(cli, command, table).await?,
        Command::System => crate::system::system(cli, table).await?,
        Command::Maintenance(command) => crate::system::maintenance(cli, command, table).await?,
        Command::Secrets(command) => crate::secrets::secrets(cli, command, table).await?,
        Command::Scopes(command) => crate::secrets::scopes(cli, command, table).await?,
        Command::Keys(command) => crate::access::keys(cli, command, table).await?,
        Command::Tokens(command) => crate::access::tokens(cli, command, table).await?,
        Command::Roles(command) => crate::access::roles(cli, command, table).await?,
        Command::Principals(command) => crate::access::principals(cli, command, table).await?,
        Command::Auth(command) => crate::access::auth(cli, command, table).await?,
        Command::Audit(args) => crate::access::audit(cli, args, table).await?,
        Command::SecurityEvents(args) => crate::access::security_events(cli, args, table).await?,
        Command::Policies(command) => crate::policies::run(cli, command, table).await?,
        Command::Approvals(command) => crate::approvals::approvals(cli, command, table).await?,
        Command::Questions(command) => crate::approvals::questions(cli, command, table).await?,
        Command::Import(args) => return crate::import::run(cli, args, table).await,
        Command::Events(args) => crate::observe::events(cli, args, table).await?,
        Command::Status(args) => crate::observe::status(cli, args, table).await?,
        Command::Metrics => crate::observe::metrics(cli, table).await?,
        Command::Alerts(args) => crate::observe::alerts(cli, args, table).await?,
        Command::Tools => {
            let client = connect(cli)?;
            let tools = McpClient::new(&client).list_tools().await?;
            if table {
                print(&tools_table(&tools))?;
            } else {
                print_json(&json!({ "tools": tools }))?;
            }
        }
        Command::Call(call) => {
            let arguments = call.arguments()?;
            let client = connect(cli)?;
            let result = output::waiting(
                &format!("calling {}", call.tool),
                table,
                McpClient::new(&client).call_tool(&call.tool, arguments),
            )
            .await?;
            let text = output::content_text(&result);
            let is_error = result.get("isError").and_then(Value::as_bool) == Some(true);
            if !table {
                print_json(&result)?;
            }
            if is_error {
                let text = text.trim_end();
                eprintln!(
                    "{}",
                    if text.is_empty() {
                        "the tool reported an error"
                    } else {
                        text
                    }
                );
                return Ok(ExitCode::from(EXIT_SERVER));
            }
            if table {
                print(&text)?;
            }
        }
        Command::Serve(_) | Command::Completions { .. } => {
            return Err(CliError::Usage("internal: command not handled here".into()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn providers(cli: &Cli, command: &ProvidersCommand, table: bool) -> Result<(), CliError> {
    // Check what can be checked locally before looking for a key or a server.
    let request_body = match command {
        ProvidersCommand::Add(add) => Some(add.to_body()?),
        ProvidersCommand::Update(update) => Some(update.to_body()?),
        _ => None,
    };
    let client = connect(cli)?;
    let (response, human) = match command {
        ProvidersCommand::List { state } => {
            let query: Vec<(&str, String)> = state.iter().map(|s| ("state", s.clone())).collect();
            let response = client.get(&["providers"], &query).await?;
            let human = providers_table(&response)?;
            (response, human)
        }
        ProvidersCommand::Get { id } => {
            let response = client.get(&["providers", id], &[]).await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Add(add) => {
            let body = request_body.unwrap_or(Value::Null);
            let response = client.post(&["providers"], Some(&body)).await?;
            let id = response
                .get("provider_id")
                .and_then(Value::as_str)
                .unwrap_or(&add.id);
            let human = format!("provider '{id}' created\n");
            (response, human)
        }
        ProvidersCommand::Update(update) => {
            let body = request_body.unwrap_or(Value::Null);
            let response = client.put(&["providers", &update.id], &body).await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Remove { id } => {
            let response = client.delete(&["providers", id]).await?;
            (response, format!("provider '{id}' removed\n"))
        }
        ProvidersCommand::Start { id } => {
            let response = output::waiting(
                &format!("starting {id}"),
                table,
                client.post(&["providers", id, "start"], None),
            )
            .await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Restart { id } => {
            let response = output::waiting(
                &format!("restarting {id}"),
                table,
                client.post(&["providers", id, "restart"], None),
            )
            .await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Refresh { id } => {
            let response = output::waiting(
                &format!("restarting {id}"),
                table,
                client.post(&["providers", id, "refresh"], None),
            )
            .await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Stop { id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let response = client.post(&["providers", id, "stop"], Some(&body)).await?;
            let human = render_kv(&response);
            (response, human)
        }
        ProvidersCommand::Tools { id } => {
            let response = client.get(&["providers", id, "tools"], &[]).await?;
            let human = tools_table(array_field(&response, "tools")?);
            (response, human)
        }
        ProvidersCommand::History {
            id,
            limit,
            from_position,
        } => {
            let mut query: Vec<(&str, String)> =
                limit.iter().map(|n| ("limit", n.to_string())).collect();
            query.extend(
                from_position
                    .iter()
                    .map(|p| ("from_position", p.to_string())),
            );
            let response = client
                .get(&["providers", id, "tools", "history"], &query)
                .await?;
            let human = history_table(array_field(&response, "history")?);
            (response, human)
        }
        ProvidersCommand::Logs { id, lines, .. } => {
            let query: Vec<(&str, String)> =
                lines.iter().map(|n| ("lines", n.to_string())).collect();
            let response = client.get(&["providers", id, "logs"], &query).await?;
            let human = logs_text(array_field(&response, "logs")?);
            (response, human)
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}

fn array_field<'a>(response: &'a Value, field: &str) -> Result<&'a [Value], CliError> {
    response
        .get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| CliError::Protocol(format!("the response has no '{field}' list")))
}

pub fn providers_table(response: &Value) -> Result<String, CliError> {
    let providers = array_field(response, "providers")?;
    let fields = [
        "provider",
        "state",
        "mode",
        "alive",
        "tools_count",
        "health_status",
    ];
    Ok(render_table(
        &["PROVIDER", "STATE", "MODE", "ALIVE", "TOOLS", "HEALTH"],
        &rows(providers, &fields),
    ))
}

pub fn tools_table(tools: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tools
        .iter()
        .map(|tool| {
            vec![
                tool.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                summary(tool.get("description")),
            ]
        })
        .collect();
    render_table(&["NAME", "DESCRIPTION"], &rows)
}

pub fn history_table(records: &[Value]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            [
                "position",
                "timestamp",
                "tool",
                "principal",
                "outcome",
                "duration_ms",
            ]
            .iter()
            .map(|k| cell(r.get(*k)))
            .collect()
        })
        .collect();
    render_table(
        &[
            "POSITION",
            "TIME",
            "TOOL",
            "PRINCIPAL",
            "OUTCOME",
            "DURATION_MS",
        ],
        &rows,
    )
}

pub fn logs_text(logs: &[Value]) -> String {
    let mut out = String::new();
    for entry in logs {
        let timestamp = entry
            .get("timestamp")
            .and_then(Value::as_str)
            .unwrap_or("-");
        let line = entry.get("line").and_then(Value::as_str).unwrap_or("");
        out.push_str(timestamp);
        out.push(' ');
        out.push_str(line.trim_end_matches(['\n', '\r']));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_list_table() {
        let response = json!({"providers": [
            {"provider": "math", "state": "ready", "mode": "subprocess", "alive": true,
             "tools_count": 5, "health_status": "healthy", "description": "Math"},
            {"provider": "time", "state": "cold", "mode": "subprocess", "alive": false,
             "tools_count": 0, "health_status": "unknown"}
        ]});
        let table = providers_table(&response).unwrap_or_else(|e| panic!("{e}"));
        let expected = "\
PROVIDER  STATE  MODE        ALIVE  TOOLS  HEALTH
math      ready  subprocess  yes    5      healthy
time      cold   subprocess  no     0      unknown
";
        assert_eq!(table, expected);
        assert!(providers_table(&json!({"oops": 1})).is_err());
    }

    #[test]
    fn tools_and_logs() {
        let tools = [
            json!({"name": "math__add", "description": "Add two numbers.\nMore text."}),
            json!({"name": "x"}),
        ];
        assert_eq!(
            tools_table(&tools),
            "NAME       DESCRIPTION\nmath__add  Add two numbers.\nx\n"
        );
        let logs =
            [json!({"timestamp": "2026-03-23T10:15:30", "line": "started\n", "stream": "stderr"})];
        assert_eq!(logs_text(&logs), "2026-03-23T10:15:30 started\n");
    }
}
