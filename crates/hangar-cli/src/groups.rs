//! `hangar groups ...`: the grammar, request bodies and output for `/api/groups`.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use crate::args::Cli;
use crate::commands::connect;
use crate::error::CliError;
use crate::output::{cell, render_table, show};

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// List groups.
    List,
    /// Show one group and its members.
    Get { id: String },
    /// Create a group: `hangar groups create llm --member llm-1:3 --member llm-2`.
    Create(CreateGroupArgs),
    /// Change a group's settings (only the options given).
    Update(UpdateGroupArgs),
    /// Remove a group (its member providers stay).
    #[command(visible_alias = "rm")]
    Delete { id: String },
    /// Re-check every member's health and reset the group's balancer and breakers.
    Rebalance { id: String },
    /// Add a provider to a group.
    AddMember {
        id: String,
        provider: String,
        /// Share of calls under weighted_round_robin (at least 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
        /// Failover order under priority: lower values are preferred.
        #[arg(long, default_value_t = 1)]
        priority: u32,
    },
    /// Remove a provider from a group.
    RemoveMember { id: String, provider: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    Random,
    Priority,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "round_robin",
            Strategy::WeightedRoundRobin => "weighted_round_robin",
            Strategy::LeastConnections => "least_connections",
            Strategy::Random => "random",
            Strategy::Priority => "priority",
        }
    }
}

/// The settings `create` and `update` share.
#[derive(Debug, Args)]
pub struct GroupSettings {
    /// How calls are spread over the members.
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Healthy members needed for the group to count as healthy.
    #[arg(long, value_name = "N")]
    pub min_healthy: Option<u32>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Member failures in a row that open its circuit breaker.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub failure_threshold: Option<u32>,
    /// Seconds an open breaker waits before letting a probe call through.
    #[arg(long, value_name = "SECONDS")]
    pub reset_timeout: Option<f64>,
}

impl GroupSettings {
    /// Insert the given settings into `body`; returns whether there were any.
    fn insert_into(&self, body: &mut Map<String, Value>) -> Result<bool, CliError> {
        let before = body.len();
        if let Some(strategy) = self.strategy {
            body.insert("strategy".into(), Value::from(strategy.as_str()));
        }
        if let Some(min_healthy) = self.min_healthy {
            body.insert("min_healthy".into(), Value::from(min_healthy));
        }
        if let Some(description) = &self.description {
            body.insert("description".into(), Value::from(description.as_str()));
        }
        // Only the keys given: the server fills in the others with their defaults.
        let mut breaker = Map::new();
        if let Some(threshold) = self.failure_threshold {
            breaker.insert("failure_threshold".into(), Value::from(threshold));
        }
        if let Some(timeout) = self.reset_timeout {
            breaker.insert("reset_timeout_s".into(), seconds(timeout)?);
        }
        if !breaker.is_empty() {
            body.insert("circuit_breaker".into(), Value::Object(breaker));
        }
        Ok(body.len() > before)
    }
}

/// `--reset-timeout`: a positive number of seconds, sent as an integer when whole.
fn seconds(value: f64) -> Result<Value, CliError> {
    if !value.is_finite() || value <= 0.0 {
        return Err(CliError::Usage(format!(
            "--reset-timeout must be a positive number of seconds, got '{value}'"
        )));
    }
    if value.fract() == 0.0 && value <= u64::MAX as f64 {
        return Ok(Value::from(value as u64));
    }
    Ok(Value::from(value))
}

#[derive(Debug, Args)]
pub struct CreateGroupArgs {
    /// Group id.
    pub id: String,
    #[command(flatten)]
    pub settings: GroupSettings,
    /// A member, PROVIDER[:WEIGHT[:PRIORITY]] (repeatable; weight and priority default to 1).
    #[arg(long = "member", value_name = "PROVIDER[:WEIGHT[:PRIORITY]]")]
    pub members: Vec<String>,
}

impl CreateGroupArgs {
    /// The JSON body of `POST /api/groups`; absent options are left out.
    pub fn to_body(&self) -> Result<Value, CliError> {
        let mut body = Map::new();
        body.insert("group_id".into(), Value::from(self.id.as_str()));
        self.settings.insert_into(&mut body)?;
        let members = self
            .members
            .iter()
            .map(|spec| parse_member(spec).map(|m| m.to_json()))
            .collect::<Result<Vec<_>, _>>()?;
        body.insert("members".into(), Value::Array(members));
        Ok(Value::Object(body))
    }
}

#[derive(Debug, Args)]
pub struct UpdateGroupArgs {
    /// Group id.
    pub id: String,
    #[command(flatten)]
    pub settings: GroupSettings,
}

impl UpdateGroupArgs {
    /// The JSON body of `PUT /api/groups/ID`: only the options given, at least one.
    pub fn to_body(&self) -> Result<Value, CliError> {
        let mut body = Map::new();
        if !self.settings.insert_into(&mut body)? {
            return Err(CliError::Usage(format!(
                "nothing to update: give at least one of --strategy, --min-healthy, \
                 --description, --failure-threshold, --reset-timeout (hangar groups update {} ...)",
                self.id
            )));
        }
        Ok(Value::Object(body))
    }
}

/// One `--member` of `groups create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub provider: String,
    pub weight: u32,
    pub priority: u32,
}

impl Member {
    fn to_json(&self) -> Value {
        json!({ "provider": self.provider, "weight": self.weight, "priority": self.priority })
    }
}

/// `PROVIDER[:WEIGHT[:PRIORITY]]`: weight at least 1, both default to 1.
pub fn parse_member(spec: &str) -> Result<Member, CliError> {
    let bad = |why: &str| {
        CliError::Usage(format!(
            "invalid --member '{spec}': {why} (expected PROVIDER[:WEIGHT[:PRIORITY]])"
        ))
    };
    let mut parts = spec.split(':');
    let provider = parts.next().unwrap_or("");
    if provider.is_empty() {
        return Err(bad("the provider is empty"));
    }
    let mut number = |name: &str| -> Result<u32, CliError> {
        match parts.next() {
            None => Ok(1),
            Some(text) => text
                .parse::<u32>()
                .map_err(|_| bad(&format!("{name} must be a whole number, got '{text}'"))),
        }
    };
    let weight = number("weight")?;
    let priority = number("priority")?;
    if parts.next().is_some() {
        return Err(bad("too many ':' parts"));
    }
    if weight == 0 {
        return Err(bad("weight must be at least 1"));
    }
    Ok(Member {
        provider: provider.to_owned(),
        weight,
        priority,
    })
}

/// Run a `groups` subcommand.
pub(crate) async fn run(cli: &Cli, command: &GroupsCommand, table: bool) -> Result<(), CliError> {
    // Check what can be checked locally before looking for a key or a server.
    let body = match command {
        GroupsCommand::Create(create) => Some(create.to_body()?),
        GroupsCommand::Update(update) => Some(update.to_body()?),
        _ => None,
    };
    let body = body.unwrap_or(Value::Null);
    let client = connect(cli)?;
    let (response, human) = match command {
        GroupsCommand::List => {
            let response = client.get(&["groups"], &[]).await?;
            let human = groups_table(&response)?;
            (response, human)
        }
        GroupsCommand::Get { id } => {
            let response = client.get(&["groups", id], &[]).await?;
            let human = group_details(&response);
            (response, human)
        }
        GroupsCommand::Create(create) => {
            let response = client.post(&["groups"], Some(&body)).await?;
            let id = response
                .get("group_id")
                .and_then(Value::as_str)
                .unwrap_or(&create.id);
            let human = format!("group '{id}' created\n");
            (response, human)
        }
        GroupsCommand::Update(update) => {
            let response = client.put(&["groups", &update.id], &body).await?;
            (response, format!("group '{}' updated\n", update.id))
        }
        GroupsCommand::Delete { id } => {
            let response = client.delete(&["groups", id]).await?;
            (response, format!("group '{id}' deleted\n"))
        }
        GroupsCommand::Rebalance { id } => {
            let response = client.post(&["groups", id, "rebalance"], None).await?;
            (response, format!("group '{id}' rebalanced\n"))
        }
        GroupsCommand::AddMember {
            id,
            provider,
            weight,
            priority,
        } => {
            let body = json!({ "member_id": provider, "weight": weight, "priority": priority });
            let response = client.post(&["groups", id, "members"], Some(&body)).await?;
            (
                response,
                format!("provider '{provider}' added to group '{id}'\n"),
            )
        }
        GroupsCommand::RemoveMember { id, provider } => {
            let response = client.delete(&["groups", id, "members", provider]).await?;
            let human = format!("provider '{provider}' removed from group '{id}'\n");
            (response, human)
        }
    };
    show(&response, table, |_| human)?;
    Ok(())
}

fn members_of(group: &Value) -> &[Value] {
    group
        .get("members")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// `healthy/total` members, e.g. `2/3`.
fn member_count(group: &Value) -> String {
    let members = members_of(group);
    let healthy = members
        .iter()
        .filter(|m| m.get("healthy").and_then(Value::as_bool) == Some(true))
        .count();
    format!("{healthy}/{}", members.len())
}

pub fn groups_table(response: &Value) -> Result<String, CliError> {
    let groups = response
        .get("groups")
        .and_then(Value::as_array)
        .ok_or_else(|| CliError::Protocol("the response has no 'groups' list".into()))?;
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|group| {
            vec![
                cell(group.get("group_id")),
                cell(group.get("state")),
                cell(group.get("strategy")),
                member_count(group),
                cell(group.get("circuit_breaker_state")),
            ]
        })
        .collect();
    Ok(render_table(
        &["GROUP", "STATE", "STRATEGY", "MEMBERS", "BREAKER"],
        &rows,
    ))
}

/// `groups get`: an aligned key/value summary, a blank line, then the members table.
pub fn group_details(group: &Value) -> String {
    let differences = group
        .get("tool_differences")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.iter()
                .map(|v| cell(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|| "-".to_owned());
    let summary = [
        ("group", cell(group.get("group_id"))),
        ("state", cell(group.get("state"))),
        ("strategy", cell(group.get("strategy"))),
        ("min_healthy", cell(group.get("min_healthy"))),
        ("members", member_count(group)),
        ("breaker", cell(group.get("circuit_breaker_state"))),
        (
            "failure_threshold",
            cell(group.pointer("/circuit_breaker/failure_threshold")),
        ),
        (
            "reset_timeout_s",
            cell(group.pointer("/circuit_breaker/reset_timeout_s")),
        ),
        ("tool_differences", differences),
        ("source", cell(group.get("source"))),
        ("description", cell(group.get("description"))),
    ];
    let width = summary.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in summary {
        let line = format!("{key:width$}  {value}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push('\n');
    let fields = [
        "member_id",
        "state",
        "weight",
        "priority",
        "circuit_breaker_state",
        "consecutive_failures",
        "in_flight",
    ];
    out.push_str(&render_table(
        &[
            "MEMBER",
            "STATE",
            "WEIGHT",
            "PRIORITY",
            "BREAKER",
            "FAILURES",
            "IN_FLIGHT",
        ],
        &crate::output::rows(members_of(group), &fields),
    ));
    out
}

#[cfg(test)]
#[path = "groups_tests.rs"]
mod tests;
