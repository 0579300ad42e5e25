//! `hangar catalog ...`: the grammar, request bodies and output for `/api/catalog`.

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use crate::args::{Cli, ProviderMode, insert_env};
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{cell, render_table, show, summary};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List catalog entries.
    List {
        /// Only entries matching this text.
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
        /// Only entries with these tags (comma-separated, or repeat the option).
        #[arg(long, value_delimiter = ',', value_name = "TAG,...")]
        tags: Vec<String>,
    },
    /// Show one catalog entry.
    Get { id: String },
    /// Add an entry: `hangar catalog add --name time --description "Time tools" -- uvx mcp-server-time`.
    Add(CatalogAddArgs),
    /// Remove an entry (providers deployed from it stay).
    #[command(visible_alias = "rm")]
    Remove { id: String },
    /// Create a provider from an entry: `hangar catalog deploy time --provider-id time-utc`.
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub struct CatalogAddArgs {
    /// Entry name.
    #[arg(long)]
    pub name: String,
    /// Human-readable description.
    #[arg(long)]
    pub description: String,
    /// How providers deployed from this entry run.
    #[arg(long, value_enum, default_value_t = ProviderMode::Subprocess)]
    pub mode: ProviderMode,
    /// Command and arguments (subprocess mode); takes every remaining argument.
    #[arg(long = "command", value_name = "ARG", num_args = 1.., allow_hyphen_values = true, conflicts_with = "argv")]
    pub command: Vec<String>,
    /// Command and arguments given after `--` (subprocess mode).
    #[arg(last = true, value_name = "COMMAND")]
    pub argv: Vec<String>,
    /// Container image (docker mode).
    #[arg(long)]
    pub image: Option<String>,
    /// Streamable HTTP URL (remote mode).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Tag (repeatable, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',', value_name = "TAG")]
    pub tags: Vec<String>,
    /// Environment variable, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A variable deploys may set: NAME, or NAME:required (repeatable); a
    /// deploy can set no other variable.
    #[arg(long = "input", value_name = "NAME[:required]")]
    pub inputs: Vec<String>,
}

impl CatalogAddArgs {
    /// The JSON body of `POST /api/catalog`; absent options are left out.
    pub fn to_body(&self) -> Result<Value, CliError> {
        if self.name.trim().is_empty() {
            return Err(CliError::Usage("--name must not be empty".into()));
        }
        let argv: &[String] = if self.command.is_empty() {
            &self.argv
        } else {
            &self.command
        };
        match self.mode {
            ProviderMode::Subprocess if argv.is_empty() => {
                return Err(CliError::Usage(format!(
                    "subprocess mode needs a command: hangar catalog add --name {} --description ... -- PROGRAM [ARGS...]",
                    self.name
                )));
            }
            ProviderMode::Docker if self.image.is_none() => {
                return Err(CliError::Usage("docker mode needs --image".into()));
            }
            ProviderMode::Remote if self.endpoint.is_none() => {
                return Err(CliError::Usage("remote mode needs --endpoint".into()));
            }
            _ => {}
        }
        let mut body = Map::new();
        body.insert("name".into(), Value::from(self.name.as_str()));
        body.insert("description".into(), Value::from(self.description.as_str()));
        body.insert("mode".into(), Value::from(self.mode.as_str()));
        if !argv.is_empty() {
            body.insert("command".into(), Value::from(argv.to_vec()));
        }
        for (key, value) in [("image", &self.image), ("endpoint", &self.endpoint)] {
            if let Some(value) = value {
                body.insert(key.into(), Value::from(value.as_str()));
            }
        }
        let tags: Vec<&str> = self
            .tags
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect();
        if !tags.is_empty() {
            body.insert("tags".into(), Value::from(tags));
        }
        if !self.env.is_empty() {
            insert_env(&mut body, &self.env)?;
        }
        if !self.inputs.is_empty() {
            let mut inputs = Vec::new();
            for input in &self.inputs {
                let (name, required) = match input.split_once(':') {
                    None => (input.as_str(), false),
                    Some((name, "required")) => (name, true),
                    Some(_) => {
                        return Err(CliError::Usage(format!(
                            "--input {input}: expected NAME or NAME:required"
                        )));
                    }
                };
                if name.is_empty() {
                    return Err(CliError::Usage("--input needs a variable name".into()));
                }
                inputs.push(serde_json::json!({"name": name, "required": required}));
            }
            body.insert("inputs".into(), Value::from(inputs));
        }
        Ok(Value::Object(body))
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Catalog entry id.
    pub id: String,
    /// Id of the new provider (default: chosen by the server from the entry).
    #[arg(long, value_name = "ID")]
    pub provider_id: Option<String>,
    /// Value of one of the entry's declared inputs, KEY=VALUE (repeatable); merged by the
    /// server over the entry's env. Other variables are refused.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

impl DeployArgs {
    /// The `POST /api/catalog/ID/deploy` body: only the options given (possibly `{}`).
    pub fn to_body(&self) -> Result<Value, CliError> {
        let mut body = Map::new();
        if let Some(provider_id) = &self.provider_id {
            body.insert("provider_id".into(), Value::from(provider_id.as_str()));
        }
        if !self.env.is_empty() {
            insert_env(&mut body, &self.env)?;
        }
        Ok(Value::Object(body))
    }
}

/// The `search`/`tags` query of `GET /api/catalog`; empty options are left out.
pub fn list_query(search: Option<&str>, tags: &[String]) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(search) = search.filter(|s| !s.is_empty()) {
        query.push(("search", search.to_owned()));
    }
    let tags: Vec<&str> = tags
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if !tags.is_empty() {
        query.push(("tags", tags.join(",")));
    }
    query
}

/// Run a `catalog` subcommand.
pub(crate) async fn run(cli: &Cli, command: &CatalogCommand, table: bool) -> Result<(), CliError> {
    // Check what can be checked locally before looking for a key or a server.
    let body = match command {
        CatalogCommand::Add(add) => add.to_body()?,
        CatalogCommand::Deploy(deploy) => deploy.to_body()?,
        _ => Value::Null,
    };
    let client = connect(cli)?;
    let (response, human) = match command {
        CatalogCommand::List { search, tags } => {
            let query = list_query(search.as_deref(), tags);
            let response = client.get(&["catalog"], &query).await?;
            let human = catalog_table(&response)?;
            (response, human)
        }
        CatalogCommand::Get { id } => {
            let response = client.get(&["catalog", id], &[]).await?;
            let human = entry_details(&response);
            (response, human)
        }
        CatalogCommand::Add(add) => {
            let response = client.post(&["catalog"], Some(&body)).await?;
            let id = response
                .get("entry_id")
                .and_then(Value::as_str)
                .unwrap_or(&add.name);
            let human = format!("catalog entry '{id}' added\n");
            (response, human)
        }
        CatalogCommand::Remove { id } => {
            let response = client.delete(&["catalog", id]).await?;
            (response, format!("catalog entry '{id}' removed\n"))
        }
        CatalogCommand::Deploy(deploy) => {
            let response = client
                .post(&["catalog", &deploy.id, "deploy"], Some(&body))
                .await?;
            let provider = response
                .get("provider_id")
                .and_then(Value::as_str)
                .or(deploy.provider_id.as_deref())
                .unwrap_or("?");
            let human = format!(
                "provider '{provider}' created from catalog entry '{}'\n",
                deploy.id
            );
            (response, human)
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}

/// Tags as one cell: `a,b`, or `-` when there are none.
fn tags_cell(entry: &Value) -> String {
    let tags: Vec<String> = entry
        .get("tags")
        .and_then(Value::as_array)
        .map(|tags| tags.iter().map(|t| cell(Some(t))).collect())
        .unwrap_or_default();
    if tags.is_empty() {
        "-".to_owned()
    } else {
        tags.join(",")
    }
}

/// `catalog list`: ID, MODE, TAGS, DESCRIPTION (its first line).
pub fn catalog_table(response: &Value) -> Result<String, CliError> {
    let entries = response
        .get("entries")
        .and_then(Value::as_array)
        .ok_or_else(|| CliError::Protocol("the response has no 'entries' list".into()))?;
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            vec![
                cell(entry.get("entry_id")),
                cell(entry.get("mode")),
                tags_cell(entry),
                summary(entry.get("description")),
            ]
        })
        .collect();
    Ok(render_table(&["ID", "MODE", "TAGS", "DESCRIPTION"], &rows))
}

/// `catalog get`: aligned `key  value` lines; the command as one shell-like line, env as
/// `KEY=VALUE` pairs.
pub fn entry_details(entry: &Value) -> String {
    let command = match entry.get("command").and_then(Value::as_array) {
        Some(argv) if !argv.is_empty() => {
            let argv: Vec<String> = argv.iter().map(|a| cell(Some(a))).collect();
            shell_words(&argv)
        }
        _ => "-".to_owned(),
    };
    let env = match entry.get("env").and_then(Value::as_object) {
        Some(env) if !env.is_empty() => env
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_owned(),
    };
    let lines = [
        ("entry", cell(entry.get("entry_id"))),
        ("name", cell(entry.get("name"))),
        ("mode", cell(entry.get("mode"))),
        ("command", command),
        ("image", cell(entry.get("image"))),
        ("endpoint", cell(entry.get("endpoint"))),
        ("tags", tags_cell(entry)),
        ("env", env),
        ("builtin", cell(entry.get("builtin"))),
        ("description", cell(entry.get("description"))),
    ];
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in lines {
        // Later lines of a multi-line value (a long description) line up under its first.
        let mut texts: Vec<&str> = value.lines().collect();
        if texts.is_empty() {
            texts.push("");
        }
        for (i, text) in texts.into_iter().enumerate() {
            let label = if i == 0 { key } else { "" };
            let line = format!("{label:width$}  {text}");
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Arguments joined by spaces, each single-quoted when a shell would split or expand it.
pub fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
