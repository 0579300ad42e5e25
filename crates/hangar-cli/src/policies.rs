//! `hangar policies get|set|clear PROVIDER TOOL`: tool policies over
//! `/api/auth/policies/{provider}/{tool}` (both may be globs such as `*`).

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{render_table, rows, show};

#[derive(Debug, Subcommand)]
pub enum PoliciesCommand {
    /// Show the policies written for this provider and tool pattern.
    Get {
        /// Provider or group id (or a glob).
        provider: String,
        /// The provider's own tool name (or a glob).
        tool: String,
    },
    /// Set the effect for a principal or a role: `hangar policies set fs 'write_*' --role developer ask`.
    Set(SetPolicyArgs),
    /// Clear the API policies of a pattern (only one subject's with --principal/--role).
    Clear {
        /// Provider or group id (or a glob).
        provider: String,
        /// The provider's own tool name (or a glob).
        tool: String,
        #[command(flatten)]
        subject: SubjectArgs,
    },
}

/// Whom a policy is about.
#[derive(Debug, Args)]
pub struct SubjectArgs {
    /// A principal id.
    #[arg(long, conflicts_with = "role")]
    pub principal: Option<String>,
    /// A role id.
    #[arg(long)]
    pub role: Option<String>,
}

impl SubjectArgs {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(p) = &self.principal {
            q.push(("principal_id", p.clone()));
        }
        if let Some(r) = &self.role {
            q.push(("role_id", r.clone()));
        }
        q
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EffectArg {
    Allow,
    Ask,
    Deny,
}

impl EffectArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Ask => "ask",
            Self::Deny => "deny",
        }
    }
}

#[derive(Debug, Args)]
pub struct SetPolicyArgs {
    /// Provider or group id (or a glob).
    pub provider: String,
    /// The provider's own tool name (or a glob).
    pub tool: String,
    /// allow, ask (hold calls for approval) or deny (hide the tool).
    #[arg(value_enum)]
    pub effect: EffectArg,
    #[command(flatten)]
    pub subject: SubjectArgs,
}

impl SetPolicyArgs {
    /// The JSON body of `PUT /api/auth/policies/...`.
    pub fn to_body(&self) -> Result<Value, CliError> {
        let mut body = serde_json::Map::new();
        match (&self.subject.principal, &self.subject.role) {
            (Some(p), None) => body.insert("principal_id".into(), json!(p)),
            (None, Some(r)) => body.insert("role_id".into(), json!(r)),
            _ => {
                return Err(CliError::Usage(
                    "give exactly one of --principal and --role".into(),
                ));
            }
        };
        body.insert("effect".into(), json!(self.effect.as_str()));
        Ok(Value::Object(body))
    }
}

fn policies_table(response: &Value) -> String {
    let items = response
        .get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        return "no policies\n".into();
    }
    render_table(
        &["PROVIDER", "TOOL", "PRINCIPAL", "ROLE", "EFFECT", "SOURCE"],
        &rows(
            &items,
            &[
                "provider",
                "tool",
                "principal_id",
                "role_id",
                "effect",
                "source",
            ],
        ),
    )
}

/// Run a `policies` subcommand.
pub(crate) async fn run(cli: &Cli, command: &PoliciesCommand, table: bool) -> Result<(), CliError> {
    let body = match command {
        PoliciesCommand::Set(set) => Some(set.to_body()?),
        _ => None,
    };
    let client = connect(cli)?;
    let (response, human) = match command {
        PoliciesCommand::Get { provider, tool } => {
            let r = client
                .get(&["auth", "policies", provider, tool], &[])
                .await?;
            let human = policies_table(&r);
            (r, human)
        }
        PoliciesCommand::Set(set) => {
            let body = body.unwrap_or(Value::Null);
            let r = client
                .put(&["auth", "policies", &set.provider, &set.tool], &body)
                .await?;
            let verb = if r.get("created").and_then(Value::as_bool) == Some(true) {
                "created"
            } else {
                "updated"
            };
            let human = format!(
                "policy {verb}: {} on {}/{}\n",
                set.effect.as_str(),
                set.provider,
                set.tool
            );
            (r, human)
        }
        PoliciesCommand::Clear {
            provider,
            tool,
            subject,
        } => {
            let r = client
                .delete_query(&["auth", "policies", provider, tool], &subject.pairs())
                .await?;
            let n = r.get("deleted").and_then(Value::as_u64).unwrap_or(0);
            (r, format!("{n} policies deleted\n"))
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}
