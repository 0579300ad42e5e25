//! Keys, tokens, roles, principals, permission checks and the audit log:
//! `hangar keys|tokens|roles|principals|auth|audit|security-events`, over
//! `/api/auth/*`, `/api/tokens` and `/api/observability/*`. Raw keys and
//! tokens are printed once, when created.

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{cell, render_kv, render_table, show};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a principal (the key is shown once).
    Create {
        /// Principal the key authenticates as.
        principal: String,
        /// Human-readable name.
        name: String,
        /// Expiry, RFC 3339 (e.g. 2030-01-31T12:00:00Z).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Revoke a key (it fails with 401 from now on).
    #[command(visible_alias = "rm")]
    Revoke {
        /// Key id.
        key_id: String,
        /// Why (recorded in the server's log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// List a principal's keys and tokens (prefix and metadata only).
    List {
        /// Principal id.
        principal: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// List your personal tokens.
    List,
    /// Mint a personal token for yourself (the token is shown once).
    Create {
        /// Human-readable name.
        name: String,
        /// Expiry, RFC 3339 (e.g. 2030-01-31T12:00:00Z).
        #[arg(long, value_name = "TIME")]
        expires_at: Option<String>,
    },
    /// Revoke one of your personal tokens.
    #[command(visible_alias = "rm")]
    Revoke {
        /// Token id.
        token_id: String,
    },
}

/// A role's content, for `roles create` and `roles update`.
#[derive(Debug, Args)]
pub struct RoleSpec {
    /// A permission (`resource:action`, `resource:*` or `*`); repeatable.
    #[arg(long = "permission", short = 'p', value_name = "PERMISSION")]
    pub permissions: Vec<String>,
    /// What the role is for.
    #[arg(long)]
    pub description: Option<String>,
    /// Request rate of each key holding the role: REQUESTS/SECONDS[:BURST], e.g. 120/60:20.
    #[arg(long, value_name = "REQUESTS/SECONDS[:BURST]")]
    pub rate_limit: Option<String>,
}

impl RoleSpec {
    /// The role's JSON fields (`id` added by the caller for create).
    pub fn to_body(&self) -> Result<Map<String, Value>, CliError> {
        let mut body = Map::new();
        body.insert(
            "description".into(),
            Value::from(self.description.clone().unwrap_or_default()),
        );
        body.insert("permissions".into(), json!(self.permissions));
        if let Some(limit) = &self.rate_limit {
            body.insert("rate_limit".into(), parse_rate_limit(limit)?);
        }
        Ok(body)
    }
}

/// `REQUESTS/SECONDS[:BURST]` → `{"requests", "per_seconds", "burst"?}`.
pub fn parse_rate_limit(spec: &str) -> Result<Value, CliError> {
    let bad = |why: &str| {
        CliError::Usage(format!(
            "invalid --rate-limit '{spec}': {why} (expected REQUESTS/SECONDS[:BURST], e.g. 120/60:20)"
        ))
    };
    let (rate, burst) = match spec.split_once(':') {
        Some((rate, burst)) => (rate, Some(burst)),
        None => (spec, None),
    };
    let (requests, seconds) = rate.split_once('/').ok_or_else(|| bad("no '/'"))?;
    let number = |what: &str, s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(&format!("{what} must be a whole number of at least 1")))
    };
    let mut out = json!({
        "requests": number("REQUESTS", requests)?,
        "per_seconds": number("SECONDS", seconds)?,
    });
    if let Some(burst) = burst {
        out["burst"] = json!(number("BURST", burst)?);
    }
    Ok(out)
}

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List every role (built-in and custom).
    List,
    /// List the built-in roles.
    Builtin,
    /// Show one role.
    Get {
        /// Role id.
        id: String,
    },
    /// Create a custom role: `hangar roles create deployer -p catalog:deploy -p providers:read`.
    Create {
        /// Role id (a-z, 0-9, '_', '-').
        id: String,
        #[command(flatten)]
        spec: RoleSpec,
    },
    /// Replace a custom role's description, permissions and rate limit.
    Update {
        /// Role id.
        id: String,
        #[command(flatten)]
        spec: RoleSpec,
    },
    /// Delete a custom role (its holders lose its permissions).
    #[command(visible_alias = "rm")]
    Delete {
        /// Role id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrincipalsCommand {
    /// List principals (those with a key or a role).
    List,
    /// Show a principal's roles and permissions.
    Roles {
        /// Principal id.
        principal: String,
    },
    /// Give a principal a role.
    Assign {
        /// Principal id.
        principal: String,
        /// Role id.
        role: String,
    },
    /// Take a role from a principal.
    Unassign {
        /// Principal id.
        principal: String,
        /// Role id.
        role: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Whether a principal's roles allow a permission (exit 0 either way; see `allowed`).
    Check {
        /// Principal id.
        principal: String,
        /// Permission, e.g. providers:start.
        permission: String,
    },
}

/// `hangar audit`: the audit log, newest first.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only tool calls of this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this record type.
    #[arg(long = "type", value_parser = ["AdminChange", "SecurityEvent", "ToolCallAudited"])]
    pub event_type: Option<String>,
    /// At most this many records (1-1000, default 100).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

impl AuditArgs {
    /// The query string of `GET /api/observability/audit`.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(p) = &self.provider {
            q.push(("provider_id", p.clone()));
        }
        if let Some(t) = &self.event_type {
            q.push(("event_type", t.clone()));
        }
        if let Some(n) = self.limit {
            q.push(("limit", n.to_string()));
        }
        q
    }
}

/// `hangar security-events`: failed auth, denied access, rate limiting.
#[derive(Debug, Args)]
pub struct SecurityEventsArgs {
    /// At most this many events (1-1000, default 100).
    #[arg(long, short = 'n', value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: Option<u32>,
}

fn items(response: &Value, field: &str) -> Vec<Value> {
    response[field].as_array().cloned().unwrap_or_default()
}

/// Table of keys or tokens (`id_field`: `key_id` or `token_id`).
pub fn keys_table(keys: &[Value], id_field: &str) -> String {
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let state = if !k["revoked_at"].is_null() {
                "revoked"
            } else {
                "active"
            };
            vec![
                cell(k.get(id_field)),
                cell(k.get("name")),
                cell(k.get("prefix")),
                cell(k.get("created_at")),
                cell(k.get("expires_at")),
                state.to_owned(),
            ]
        })
        .collect();
    render_table(
        &["ID", "NAME", "PREFIX", "CREATED", "EXPIRES", "STATE"],
        &rows,
    )
}

/// Table of roles.
pub fn roles_table(roles: &[Value]) -> String {
    let rows: Vec<Vec<String>> = roles
        .iter()
        .map(|r| {
            let permissions: Vec<&str> = r["permissions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                cell(r.get("id")),
                if r["builtin"] == true { "yes" } else { "no" }.to_owned(),
                permissions.join(","),
            ]
        })
        .collect();
    render_table(&["ROLE", "BUILTIN", "PERMISSIONS"], &rows)
}

/// Table of audit records: the common fields, then the rest as `key=value`.
pub fn audit_table(records: &[Value]) -> String {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            let details: Vec<String> = r
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "position" | "time" | "event_type" | "principal")
                })
                .map(|(k, v)| format!("{k}={}", cell(Some(v))))
                .collect();
            vec![
                cell(r.get("position")),
                cell(r.get("time")),
                cell(r.get("event_type")),
                cell(r.get("principal")),
                details.join(" "),
            ]
        })
        .collect();
    render_table(&["POSITION", "TIME", "TYPE", "PRINCIPAL", "DETAILS"], &rows)
}

/// Run `hangar keys ...`.
pub(crate) async fn keys(cli: &Cli, command: &KeysCommand, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    match command {
        KeysCommand::Create {
            principal,
            name,
            expires_at,
        } => {
            let mut body = json!({ "principal_id": principal, "name": name });
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            let r = client.post(&["auth", "keys"], Some(&body)).await?;
            show(&r, table, |r| {
                format!(
                    "key {} created for {} (shown only now):\n{}\n",
                    cell(r.get("key_id")),
                    cell(r.get("principal_id")),
                    cell(r.get("raw_key"))
                )
            })
        }
        KeysCommand::Revoke { key_id, reason } => {
            let body = match reason {
                Some(reason) => json!({ "reason": reason }),
                None => json!({}),
            };
            let r = client
                .delete_with_body(&["auth", "keys", key_id], &body)
                .await?;
            show(&r, table, |_| format!("key {key_id} revoked\n"))
        }
        KeysCommand::List { principal } => {
            let r = client.get(&["auth", "keys", principal], &[]).await?;
            show(&r, table, |r| keys_table(&items(r, "keys"), "key_id"))
        }
    }
}

/// Run `hangar tokens ...`.
pub(crate) async fn tokens(
    cli: &Cli,
    command: &TokensCommand,
    table: bool,
) -> Result<(), CliError> {
    let client = connect(cli)?;
    match command {
        TokensCommand::List => {
            let r = client.get(&["tokens"], &[]).await?;
            show(&r, table, |r| keys_table(&items(r, "tokens"), "token_id"))
        }
        TokensCommand::Create { name, expires_at } => {
            let mut body = json!({ "name": name });
            if let Some(t) = expires_at {
                body["expires_at"] = json!(t);
            }
            let r = client.post(&["tokens"], Some(&body)).await?;
            show(&r, table, |r| {
                format!(
                    "token {} created (shown only now):\n{}\n",
                    cell(r.get("token_id")),
                    cell(r.get("raw_token"))
                )
            })
        }
        TokensCommand::Revoke { token_id } => {
            let r = client.delete(&["tokens", token_id]).await?;
            show(&r, table, |_| format!("token {token_id} revoked\n"))
        }
    }
}

/// Run `hangar roles ...`.
pub(crate) async fn roles(cli: &Cli, command: &RolesCommand, table: bool) -> Result<(), CliError> {
    // Check the local arguments before looking for a key or a server.
    let body = match command {
        RolesCommand::Create { id, spec } => {
            let mut body = spec.to_body()?;
            body.insert("id".into(), Value::from(id.as_str()));
            Some(Value::Object(body))
        }
        RolesCommand::Update { spec, .. } => Some(Value::Object(spec.to_body()?)),
        _ => None,
    }
    .unwrap_or(Value::Null);
    let client = connect(cli)?;
    match command {
        RolesCommand::List => {
            let r = client.get(&["auth", "roles"], &[]).await?;
            show(&r, table, |r| roles_table(&items(r, "roles")))
        }
        RolesCommand::Builtin => {
            let r = client.get(&["auth", "roles", "builtin"], &[]).await?;
            show(&r, table, |r| roles_table(&items(r, "roles")))
        }
        RolesCommand::Get { id } => {
            let r = client.get(&["auth", "roles", id], &[]).await?;
            show(&r, table, render_kv)
        }
        RolesCommand::Create { id, .. } => {
            let r = client.post(&["auth", "roles"], Some(&body)).await?;
            show(&r, table, |_| format!("role {id} created\n"))
        }
        RolesCommand::Update { id, .. } => {
            let r = client.put(&["auth", "roles", id], &body).await?;
            show(&r, table, |_| format!("role {id} updated\n"))
        }
        RolesCommand::Delete { id } => {
            let r = client.delete(&["auth", "roles", id]).await?;
            show(&r, table, |_| format!("role {id} deleted\n"))
        }
    }
}

/// Run `hangar principals ...`.
pub(crate) async fn principals(
    cli: &Cli,
    command: &PrincipalsCommand,
    table: bool,
) -> Result<(), CliError> {
    let client = connect(cli)?;
    match command {
        PrincipalsCommand::List => {
            let r = client.get(&["auth", "principals"], &[]).await?;
            show(&r, table, |r| {
                let list = items(r, "principals");
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|p| {
                        let roles: Vec<&str> = p["roles"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect();
                        vec![
                            cell(p.get("principal_id")),
                            roles.join(","),
                            cell(p.get("active_keys")),
                        ]
                    })
                    .collect();
                render_table(&["PRINCIPAL", "ROLES", "ACTIVE_KEYS"], &rows)
            })
        }
        PrincipalsCommand::Roles { principal } => {
            let r = client
                .get(&["auth", "principals", principal, "roles"], &[])
                .await?;
            show(&r, table, render_kv)
        }
        PrincipalsCommand::Assign { principal, role } => {
            let r = client
                .post(
                    &["auth", "principals", principal, "roles"],
                    Some(&json!({ "role_id": role })),
                )
                .await?;
            show(&r, table, |_| {
                format!("{principal} now holds role {role}\n")
            })
        }
        PrincipalsCommand::Unassign { principal, role } => {
            let r = client
                .delete(&["auth", "principals", principal, "roles", role])
                .await?;
            show(&r, table, |_| {
                format!("{principal} no longer holds role {role}\n")
            })
        }
    }
}

/// Run `hangar auth ...`.
pub(crate) async fn auth(cli: &Cli, command: &AuthCommand, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    match command {
        AuthCommand::Check {
            principal,
            permission,
        } => {
            let body = json!({ "principal_id": principal, "permission": permission });
            let r = client
                .post(&["auth", "check-permission"], Some(&body))
                .await?;
            show(&r, table, |r| {
                let verdict = if r["allowed"] == true {
                    "allowed"
                } else {
                    "denied"
                };
                format!("{principal} {permission}: {verdict}\n")
            })
        }
    }
}

/// Run `hangar audit`.
pub(crate) async fn audit(cli: &Cli, args: &AuditArgs, table: bool) -> Result<(), CliError> {
    let client = connect(cli)?;
    let r = client
        .get(&["observability", "audit"], &args.query())
        .await?;
    show(&r, table, |r| audit_table(&items(r, "records")))
}

/// Run `hangar security-events`.
pub(crate) async fn security_events(
    cli: &Cli,
    args: &SecurityEventsArgs,
    table: bool,
) -> Result<(), CliError> {
    let client = connect(cli)?;
    let query: Vec<(&str, String)> = args
        .limit
        .iter()
        .map(|n| ("limit", n.to_string()))
        .collect();
    let r = client.get(&["observability", "security"], &query).await?;
    show(&r, table, |r| audit_table(&items(r, "events")))
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
