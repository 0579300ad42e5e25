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
        /// What the policies govern.
        #[arg(long, value_enum, default_value_t = KindArg::Tool)]
        kind: KindArg,
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
        /// What the policies govern.
        #[arg(long, value_enum, default_value_t = KindArg::Tool)]
        kind: KindArg,
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

/// What a policy governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum KindArg {
    /// Tool calls (the pattern matches tool names).
    #[default]
    Tool,
    /// Resource reads (the pattern matches resource URIs).
    Resource,
    /// Prompt gets (the pattern matches prompt names).
    Prompt,
}

impl KindArg {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

#[derive(Debug, Args)]
pub struct SetPolicyArgs {
    /// Provider or group id (or a glob).
    pub provider: String,
    /// The provider's own tool name (or a glob); a resource URI or prompt
    /// name with --kind.
    pub tool: String,
    /// allow, ask (hold calls for approval) or deny (hide the tool).
    #[arg(value_enum)]
    pub effect: EffectArg,
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// What the policy governs.
    #[arg(long, value_enum, default_value_t = KindArg::Tool)]
    pub kind: KindArg,
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
        if self.kind != KindArg::Tool {
            body.insert("kind".into(), json!(self.kind.as_str()));
        }
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
        &[
            "PROVIDER",
            "KIND",
            "NAME",
            "PRINCIPAL",
            "ROLE",
            "EFFECT",
            "SOURCE",
        ],
        &rows(
            &items,
            &[
                "provider",
                "kind",
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
        PoliciesCommand::Get {
            provider,
            tool,
            kind,
        } => {
            let r = client
                .get(
                    &["auth", "policies", provider, tool],
                    &[("kind", kind.as_str().to_owned())],
                )
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
            kind,
        } => {
            let mut query = subject.pairs();
            query.push(("kind", kind.as_str().to_owned()));
            let r = client
                .delete_query(&["auth", "policies", provider, tool], &query)
                .await?;
            let n = r.get("deleted").and_then(Value::as_u64).unwrap_or(0);
            (r, format!("{n} policies deleted\n"))
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}
