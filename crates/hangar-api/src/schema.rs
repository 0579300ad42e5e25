//! OpenAPI schema types for the values the REST API exchanges that come from
//! `hangar-core` and `hangar-runtime` (which know nothing about OpenAPI).
//!
//! Each type here mirrors the serde shape of the real type it is named after;
//! handlers serialize the real type and point the document here with
//! `#[schema(value_type = ...)]`. The `openapi_tests` module serializes real
//! values and checks them against these schemas, so a field added on one side
//! only fails the build's tests instead of drifting silently.
//!
//! These types are for documentation only: nothing constructs them.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

/// Lifecycle state of a provider.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderState {
    /// Not running; starts on first use or on `start`.
    Cold,
    /// Spawned or connecting; the MCP handshake is not done yet.
    Initializing,
    /// Handshake done, tools listed, calls accepted.
    Ready,
    /// Running but failing health checks or calls; still accepts calls.
    Degraded,
    /// Failed to start, crashed or failed too often; restarted after a backoff.
    Dead,
}

/// How a provider is run or reached (`container` is accepted as an alias of
/// `docker` on input).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderMode {
    /// A child process speaking MCP over stdio.
    Subprocess,
    /// A container speaking MCP over its attached stdio.
    Docker,
    /// A remote MCP server over Streamable HTTP.
    Remote,
}

/// Where a provider or group was defined.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderSource {
    /// The YAML config file.
    Config,
    /// Created over the REST API (persisted).
    Api,
}

/// Health summary derived from the state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Ready.
    Healthy,
    /// Degraded.
    Degraded,
    /// Dead.
    Unhealthy,
    /// Cold or initializing.
    Unknown,
}

/// How to run or reach one provider. Unknown fields are rejected (422); fields
/// that do not belong to the mode are rejected too. Empty and unset fields are
/// left out of responses.
#[derive(Serialize, ToSchema)]
pub struct ProviderSpec {
    /// How the provider is run or reached (default `subprocess`).
    #[serde(default)]
    pub mode: ProviderMode,
    /// Subprocess argv: the program first, never run through a shell.
    /// Required (non-empty) for `subprocess`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Subprocess working directory.
    #[serde(default)]
    pub cwd: String,
    /// Docker image (required for `docker`).
    #[serde(default)]
    pub image: String,
    /// Remote Streamable HTTP URL (`http://` or `https://`, required for `remote`).
    #[serde(default)]
    pub endpoint: String,
    /// Remote: extra HTTP headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Subprocess and docker: environment variables (values are redacted in responses).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Seconds without calls before the provider is stopped; 0 = never (default 300).
    #[serde(default)]
    #[schema(default = 300)]
    pub idle_ttl_s: u64,
    /// Seconds between health checks; 0 = none (default 60).
    #[serde(default)]
    #[schema(default = 60)]
    pub health_check_interval_s: u64,
    /// Failures in a row before ready → degraded (default 3, at least 1).
    #[serde(default)]
    #[schema(default = 3, minimum = 1)]
    pub max_consecutive_failures: u32,
    /// Failures in a row before degraded → dead (default 6, at least
    /// `max_consecutive_failures`).
    #[serde(default)]
    #[schema(default = 6)]
    pub max_failures: u32,
    /// Seconds allowed for spawn plus MCP `initialize` (default 30).
    #[serde(default)]
    #[schema(default = 30, minimum = 1, maximum = 3600)]
    pub startup_timeout_s: u64,
    /// Seconds allowed for one tool call (default 120).
    #[serde(default)]
    #[schema(default = 120, minimum = 1, maximum = 86400)]
    pub call_timeout_s: u64,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: String,
    /// Docker volume mounts (`source:target[:ro|rw]`).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Docker network (the engine defaults to `none`).
    #[serde(default)]
    pub network: String,
    /// Docker read-only root filesystem (default `true`).
    #[serde(default)]
    pub read_only: bool,
    /// Docker: the user the container runs as (`uid[:gid]` or a name).
    #[serde(default)]
    pub user: String,
    /// Docker: the working directory (absolute).
    #[serde(default)]
    pub workdir: String,
    /// Docker: memory limit in MiB (default 512; 0 = none).
    #[serde(default)]
    #[schema(default = 512)]
    pub memory_mb: u64,
    /// Docker: CPU limit in cores (default 1; 0 = none).
    #[serde(default)]
    #[schema(default = 1.0)]
    pub cpus: f64,
    /// Docker: process limit (default 256; 0 = none).
    #[serde(default)]
    #[schema(default = 256)]
    pub pids_limit: u64,
    /// Docker: tmpfs mounts `path[:options]` (default `/tmp` of 64 MiB with a read-only root).
    #[serde(default)]
    pub tmpfs: Vec<String>,
    /// Docker: capabilities given back (all are dropped; ALL and SYS_ADMIN are refused).
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Docker: `no-new-privileges` (default true).
    #[serde(default)]
    #[schema(default = true)]
    pub no_new_privileges: bool,
    /// Remote: seconds to open a connection (default 10).
    #[serde(default)]
    #[schema(default = 10, minimum = 1, maximum = 300)]
    pub connect_timeout_s: u64,
    /// Remote: allow an endpoint on a link-local or cloud-metadata address.
    #[serde(default)]
    pub allow_link_local: bool,
    /// Scope the provider belongs to: it gets only that scope's secrets.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$")]
    pub scope: String,
    /// Tool policies on this provider's tools (see `PUT /api/auth/policies/...`).
    #[serde(default)]
    pub policies: Vec<ProviderPolicy>,
    /// What goes before the separator in exposed names (default: the provider id).
    #[serde(default)]
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub prefix: String,
    /// Renamed and hidden tools.
    #[serde(default)]
    pub tools: ItemNaming,
    /// Renamed and hidden prompts.
    #[serde(default)]
    pub prompts: ItemNaming,
}

/// Renamed and hidden tools (or prompts) of one provider.
#[derive(Serialize, ToSchema)]
pub struct ItemNaming {
    /// The provider's own name → the name clients see (before any prefix;
    /// 1 to 64 of `[a-zA-Z0-9_-]`).
    #[serde(default)]
    pub rename: std::collections::BTreeMap<String, String>,
    /// The provider's own names clients never see (not listed, not callable).
    #[serde(default)]
    pub hide: Vec<String>,
}

/// A policy inside a provider spec: exactly one of `principal_id` and
/// `role_id`; at most one of `tool`, `resource` and `prompt`.
#[derive(Serialize, ToSchema)]
pub struct ProviderPolicy {
    /// Glob over the provider's own tool names (default `*`).
    #[serde(default)]
    #[schema(default = "*")]
    pub tool: String,
    /// Glob over resource URIs: the policy governs resource reads.
    #[schema(required = false)]
    pub resource: String,
    /// Glob over prompt names: the policy governs prompt gets.
    #[schema(required = false)]
    pub prompt: String,
    /// The principal it is about.
    #[schema(required = false)]
    pub principal_id: String,
    /// The role it is about.
    #[schema(required = false)]
    pub role_id: String,
    /// What it does.
    pub effect: crate::policies_api::PolicyEffect,
}

/// A point-in-time view of one provider.
#[derive(Serialize, ToSchema)]
pub struct ProviderStatus {
    /// Provider id.
    pub provider: String,
    /// Lifecycle state.
    pub state: ProviderState,
    /// How it is run or reached.
    pub mode: ProviderMode,
    /// True while a connection is up.
    pub alive: bool,
    /// Tools known from the last listing.
    pub tools_count: u64,
    /// Health derived from the state.
    pub health_status: HealthStatus,
    /// Always false: tools come from the provider itself.
    pub tools_predefined: bool,
    /// Free text from the spec.
    pub description: Option<String>,
    /// Process id while running.
    pub pid: Option<i32>,
    /// Calls in flight.
    pub in_flight: u64,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Restarts so far.
    pub restart_count: u64,
    /// The cause of the last failure.
    pub last_error: Option<String>,
    /// Config file or API.
    pub source: ProviderSource,
}

/// One health check result.
#[derive(Serialize, ToSchema)]
pub struct HealthRecord {
    /// RFC 3339 time of the check.
    pub timestamp: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, in milliseconds.
    pub latency_ms: f64,
    /// Why it failed (only on failure).
    #[schema(required = false)]
    pub error: String,
}

/// One stderr line of a provider.
#[derive(Serialize, ToSchema)]
pub struct LogLine {
    /// RFC 3339 time the line was read.
    pub timestamp: String,
    /// The line (lossy UTF-8, without its newline, at most 8 KiB).
    pub line: String,
    /// Provider id.
    pub provider_id: String,
    /// Always `stderr`: stdout carries MCP.
    #[schema(pattern = "^stderr$")]
    pub stream: String,
}

/// How a tool call ended.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvocationOutcome {
    /// The tool answered.
    Success,
    /// The tool answered with `isError: true`.
    ToolError,
    /// Transport, protocol or provider failure.
    Error,
}

/// One recorded tool invocation (argument values are never recorded).
#[derive(Serialize, ToSchema)]
pub struct ToolInvocation {
    /// The provider's own tool name.
    pub tool: String,
    /// Who called (the API key's principal), if known.
    pub principal: Option<String>,
    /// Size of the JSON arguments in bytes.
    pub arguments_bytes: u64,
    /// Time spent in the provider, in milliseconds.
    pub duration_ms: f64,
    /// How it ended.
    pub outcome: InvocationOutcome,
    /// The failure, for outcome `error`.
    pub error: Option<String>,
    /// Store position (pass as `from_position` to page on).
    pub position: u64,
    /// RFC 3339 time it was recorded.
    pub timestamp: String,
}

/// How a group picks the member for a call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each eligible member in turn.
    RoundRobin,
    /// In proportion to `weight`.
    WeightedRoundRobin,
    /// The member with the fewest calls in flight.
    LeastConnections,
    /// Uniformly at random.
    Random,
    /// Failover: the lowest `priority` value first.
    Priority,
}

/// What a circuit breaker lets through (`half-open` is accepted on input).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the reset timeout has elapsed.
    Open,
    /// One probe call at a time is admitted.
    HalfOpen,
}

/// The health of a group as a whole.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupState {
    /// Every member is healthy (and at least `min_healthy`).
    Healthy,
    /// Some members are not healthy, but at least `min_healthy` are.
    Partial,
    /// At least one member is healthy, but fewer than `min_healthy`.
    Degraded,
    /// No healthy member, or no members.
    Inactive,
}

/// Circuit breaker settings, the same for every member of a group.
#[derive(Serialize, ToSchema)]
pub struct BreakerConfig {
    /// Member failures in a row that open the breaker (default 5, at least 1).
    #[serde(default)]
    #[schema(default = 5, minimum = 1)]
    pub failure_threshold: u32,
    /// Seconds an open breaker waits before admitting a probe (default 30;
    /// more than 0, at most 86400; decimals allowed).
    #[serde(default)]
    #[schema(default = 30, exclusive_minimum = 0, maximum = 86400)]
    pub reset_timeout_s: f64,
}

/// One member of a group.
#[derive(Serialize, ToSchema)]
pub struct MemberSpec {
    /// The provider's id (`member_id` is accepted as an alias).
    #[schema(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$")]
    pub provider: String,
    /// Share of calls under `weighted_round_robin` (default 1, at least 1).
    #[serde(default)]
    #[schema(default = 1, minimum = 1)]
    pub weight: u32,
    /// Failover order under `priority`: lower first (default 1).
    #[serde(default)]
    #[schema(default = 1)]
    pub priority: u32,
}

/// A point-in-time view of one group member.
#[derive(Serialize, ToSchema)]
pub struct MemberStatus {
    /// Provider id.
    pub member_id: String,
    /// Routing weight.
    pub weight: u32,
    /// Failover priority (lower first).
    pub priority: u32,
    /// The provider's state, or `missing` if there is no such provider.
    pub state: String,
    /// Its breaker.
    pub circuit_breaker_state: BreakerState,
    /// Member failures in a row.
    pub consecutive_failures: u32,
    /// Calls in flight on the provider.
    pub in_flight: u64,
    /// Counted as healthy for the group state.
    pub healthy: bool,
}

/// A point-in-time view of one group.
#[derive(Serialize, ToSchema)]
pub struct GroupStatus {
    /// Group id.
    pub group_id: String,
    /// Group health.
    pub state: GroupState,
    /// Selection strategy.
    pub strategy: Strategy,
    /// Minimum healthy members.
    pub min_healthy: u32,
    /// Free text.
    pub description: Option<String>,
    /// `open` if any member's breaker is open, else `half_open` if any is, else `closed`.
    pub circuit_breaker_state: BreakerState,
    /// Members, in order.
    pub members: Vec<MemberStatus>,
    /// Tools not offered by every member.
    pub tool_differences: Vec<String>,
    /// Config file or API.
    pub source: ProviderSource,
}
