//! `hangar secrets ...` (`/api/secrets`) and `hangar scopes ...` (`/api/scopes`).
//! Secret values are write-only: read from stdin (or `--value`), never printed.

use std::io::Read;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{render_table, rows, show};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// List secrets (names and scopes; values are never shown).
    List,
    /// Create or replace a secret. The value is read from stdin unless --value is given
    /// (stdin keeps it out of shell history and `ps`).
    Set {
        /// Name used in `${secret:NAME}`.
        name: String,
        /// The value (prefer stdin).
        #[arg(long)]
        value: Option<String>,
        /// Scope the secret belongs to (only providers in it get it).
        #[arg(long)]
        scope: Option<String>,
    },
    /// Delete a secret.
    #[command(alias = "rm")]
    Delete {
        /// Secret name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScopesCommand {
    /// List scopes.
    List,
    /// Create a scope.
    Create {
        /// Scope id ([a-z0-9_-]).
        scope_id: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a scope (its providers and secrets become unscoped).
    #[command(alias = "rm")]
    Delete {
        /// Scope id.
        scope_id: String,
    },
}

/// The value of `secrets set`: `--value`, else stdin without its final newline.
pub fn secret_value(given: Option<&str>, mut stdin: impl Read) -> Result<String, CliError> {
    if let Some(v) = given {
        return Ok(v.to_owned());
    }
    let mut text = String::new();
    stdin
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("cannot read the secret value from stdin: {e}")))?;
    let value = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err(CliError::Usage(
            "no secret value: pipe it on stdin or pass --value".into(),
        ));
    }
    Ok(value.to_owned())
}

/// Run a `secrets` subcommand.
pub(crate) async fn secrets(
    cli: &Cli,
    command: &SecretsCommand,
    table: bool,
) -> Result<(), CliError> {
    match command {
        SecretsCommand::List => {
            let client = connect(cli)?;
            let r = client.get(&["secrets"], &[]).await?;
            show(&r, table, |r| {
                let items = r["secrets"].as_array().cloned().unwrap_or_default();
                render_table(
                    &["NAME", "SCOPE", "UPDATED"],
                    &rows(&items, &["name", "scope", "updated_at"]),
                )
            })
        }
        SecretsCommand::Set { name, value, scope } => {
            let value = secret_value(value.as_deref(), std::io::stdin())?;
            let client = connect(cli)?;
            let mut body = json!({ "value": value });
            if let Some(s) = scope {
                body["scope"] = json!(s);
            }
            let r = client.put(&["secrets", name], &body).await?;
            show(&r, table, |r| {
                let verb = if r["created"] == true {
                    "created"
                } else {
                    "replaced"
                };
                format!("secret {name} {verb}\n")
            })
        }
        SecretsCommand::Delete { name } => {
            let client = connect(cli)?;
            let r = client.delete(&["secrets", name]).await?;
            show(&r, table, |_| format!("secret {name} deleted\n"))
        }
    }
}

/// Run a `scopes` subcommand.
pub(crate) async fn scopes(
    cli: &Cli,
    command: &ScopesCommand,
    table: bool,
) -> Result<(), CliError> {
    let client = connect(cli)?;
    match command {
        ScopesCommand::List => {
            let r = client.get(&["scopes"], &[]).await?;
            show(&r, table, |r| {
                let items = r["scopes"].as_array().cloned().unwrap_or_default();
                render_table(
                    &["SCOPE", "DESCRIPTION", "CREATED"],
                    &rows(&items, &["scope_id", "description", "created_at"]),
                )
            })
        }
        ScopesCommand::Create {
            scope_id,
            description,
        } => {
            let mut body = json!({ "scope_id": scope_id });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let r = client.post(&["scopes"], Some(&body)).await?;
            show(&r, table, |_| format!("scope {scope_id} created\n"))
        }
        ScopesCommand::Delete { scope_id } => {
            let r = client.delete(&["scopes", scope_id]).await?;
            show(&r, table, |r| {
                let names = |k: &str| {
                    r[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                format!(
                    "scope {scope_id} deleted; now unscoped: providers [{}], secrets [{}]\n",
                    names("providers"),
                    names("secrets")
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_comes_from_the_flag_or_stdin_without_its_newline() {
        assert_eq!(secret_value(Some("v"), &b"ignored"[..]).unwrap(), "v");
        assert_eq!(secret_value(None, &b"s3cret\n"[..]).unwrap(), "s3cret");
        assert_eq!(secret_value(None, &b"s3cret\r\n"[..]).unwrap(), "s3cret");
        assert_eq!(secret_value(None, &b"a b\n\n"[..]).unwrap(), "a b\n");
        assert!(matches!(
            secret_value(None, &b""[..]),
            Err(CliError::Usage(_))
        ));
    }
}
