//! Provider specification: how to run or reach one provider (an MCP server).
//!
//! The fields are flat, as in MCP Hangar's config and the REST body, and the same struct is
//! read from YAML and JSON. [`ProviderSpec::validate`] checks one spec; error fields are paths
//! relative to the provider (`command`, `env.FOO`) and the caller prefixes `providers.<id>.`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::naming::DEFAULT_SEPARATOR;
use crate::policy::{Effect, PolicyKind, Subject, ToolPolicy};
use crate::state::{BackoffPolicy, FailurePolicy};

#[cfg(test)]
mod tests;

/// Longest provider id accepted (ids must leave room for tool names within 64 chars).
pub const MAX_PROVIDER_ID_LEN: usize = 63;

/// How a provider is run or reached.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderMode {
    /// A child process speaking MCP over stdio; `command` is its argv, never run by a shell.
    #[default]
    Subprocess,
    /// A container from `image` speaking MCP over its attached stdio. `container` is accepted
    /// as an alias when reading (MCP Hangar's name).
    #[serde(alias = "container")]
    Docker,
    /// A remote MCP server reached over Streamable HTTP at `endpoint`.
    Remote,
}

impl ProviderMode {
    /// The lower-case name used in config, API and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subprocess => "subprocess",
            Self::Docker => "docker",
            Self::Remote => "remote",
        }
    }
}

impl fmt::Display for ProviderMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a provider mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider mode `{0}` (expected subprocess, docker or remote)")]
pub struct ParseModeError(pub String);

impl FromStr for ProviderMode {
    type Err = ParseModeError;

    /// Accepts `subprocess`, `docker` (alias `container`) and `remote`, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "subprocess" => Ok(Self::Subprocess),
            "docker" | "container" => Ok(Self::Docker),
            "remote" => Ok(Self::Remote),
            _ => Err(ParseModeError(s.to_owned())),
        }
    }
}

/// A validation error in one provider spec. `field` is a path relative to the provider
/// (`command`, `env.FOO`, or `id` for the provider id itself).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the offending field, relative to the provider.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Default memory limit of a docker provider, in MiB.
pub const DEFAULT_MEMORY_MB: u64 = 512;
/// Smallest memory limit Docker accepts, in MiB.
pub const MIN_MEMORY_MB: u64 = 6;
/// Largest memory limit accepted, in MiB (1 TiB).
pub const MAX_MEMORY_MB: u64 = 1024 * 1024;
/// Default CPU limit of a docker provider, in cores.
pub const DEFAULT_CPUS: f64 = 1.0;
/// Default process limit of a docker provider.
pub const DEFAULT_PIDS_LIMIT: u64 = 256;
/// Default tmpfs of a docker provider with a read-only root.
pub const DEFAULT_TMPFS: &str = "/tmp:rw,noexec,nosuid,size=64m";
/// Headers of a remote provider's requests that Hangar sets itself: a spec may not set them.
pub const RESERVED_HEADERS: [&str; 6] = [
    "accept",
    "content-type",
    "content-length",
    "host",
    "mcp-session-id",
    "last-event-id",
];

/// Default seconds a remote provider has to accept a connection.
pub const DEFAULT_CONNECT_TIMEOUT_S: u64 = 10;

/// How to run or reach one provider. Unknown fields are rejected; empty and unset fields are
/// left out when serialized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a provider spec (a map of its fields)"
)]
pub struct ProviderSpec {
    /// How the provider is run or reached (default `subprocess`).
    pub mode: ProviderMode,
    /// Subprocess argv: the first element is the program, never run through a shell.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Subprocess working directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Docker image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Remote Streamable HTTP URL (`http://` or `https://`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Remote: extra HTTP headers sent with every request.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Subprocess and docker: environment variables (values may use `${secret:NAME}`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Seconds without calls before the provider is stopped; 0 = never idle-stop.
    pub idle_ttl_s: u64,
    /// Seconds between health checks; 0 = no health checks.
    pub health_check_interval_s: u64,
    /// Failures in a row before ready → degraded.
    pub max_consecutive_failures: u32,
    /// Failures in a row (counted from the first one) before degraded → dead.
    pub max_failures: u32,
    /// Seconds allowed for spawn plus MCP `initialize` (1..=3600).
    pub startup_timeout_s: u64,
    /// Seconds allowed for one tool call (1..=86400).
    pub call_timeout_s: u64,
    /// Free text shown in listings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Docker volume mounts (`source:target[:ro|rw]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Docker network (the engine defaults to `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Docker read-only root filesystem (the engine defaults to `true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Docker: the user (`uid[:gid]` or a name the image knows) the container runs as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Docker: the working directory inside the container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Docker: memory limit in MiB (default [`DEFAULT_MEMORY_MB`]; 0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Docker: CPU limit in cores (default [`DEFAULT_CPUS`]; 0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Docker: most processes in the container (default [`DEFAULT_PIDS_LIMIT`]; 0 = no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u64>,
    /// Docker: tmpfs mounts, `path` or `path:options` (default: `/tmp` of 64 MiB when the
    /// root is read-only; `[]` mounts none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<String>>,
    /// Docker: capabilities given back (all are dropped by default), e.g. `NET_BIND_SERVICE`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Docker: `no-new-privileges` (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privileges: Option<bool>,
    /// Remote: seconds allowed to open a connection (default [`DEFAULT_CONNECT_TIMEOUT_S`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_s: Option<u64>,
    /// Remote: allow an endpoint on a link-local or cloud-metadata address (169.254.0.0/16,
    /// fe80::/10); refused by default.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_link_local: bool,
    /// The scope the provider belongs to: it gets only that scope's secrets
    /// (an unscoped provider gets only unscoped secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Tool policies for this provider's tools (held in memory; policies set over the API
    /// are stored separately).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<ProviderPolicy>,
    /// What goes before the separator in this provider's exposed tool and prompt names
    /// (default: the provider id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Renamed and hidden tools.
    #[serde(skip_serializing_if = "ItemNaming::is_empty")]
    pub tools: ItemNaming,
    /// Renamed and hidden prompts.
    #[serde(skip_serializing_if = "ItemNaming::is_empty")]
    pub prompts: ItemNaming,
}

/// Renamed and hidden tools (or prompts) of one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a map with `rename` and `hide`"
)]
pub struct ItemNaming {
    /// The provider's own name → the name clients see (before any prefix).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rename: BTreeMap<String, String>,
    /// The provider's own names that clients never see (not listed, not callable).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hide: Vec<String>,
}

impl ItemNaming {
    /// Neither renames nor hides anything.
    pub fn is_empty(&self) -> bool {
        self.rename.is_empty() && self.hide.is_empty()
    }

    /// Whether `name` (the provider's own) is hidden.
    pub fn hides(&self, name: &str) -> bool {
        self.hide.iter().any(|h| h == name)
    }

    /// The name `name` (the provider's own) is shown as, before any prefix.
    pub fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.rename.get(name).map_or(name, String::as_str)
    }

    fn check(&self, field: &str) -> Result<(), SpecError> {
        for (from, to) in &self.rename {
            if from.is_empty() {
                return Err(SpecError::new(
                    format!("{field}.rename"),
                    "names must not be empty",
                ));
            }
            check_name_part(&format!("{field}.rename.{from}"), to)?;
        }
        if self.hide.iter().any(String::is_empty) {
            return Err(SpecError::new(
                format!("{field}.hide"),
                "names must not be empty",
            ));
        }
        Ok(())
    }
}

/// A name part clients see (a prefix or a new name): 1 to 64 of `[a-zA-Z0-9_-]`.
fn check_name_part(field: &str, value: &str) -> Result<(), SpecError> {
    if value.is_empty()
        || value.len() > crate::naming::MAX_TOOL_NAME_LEN
        || !value.chars().all(crate::naming::is_name_char)
    {
        return Err(SpecError::new(field, "must be 1 to 64 of [a-zA-Z0-9_-]"));
    }
    Ok(())
}

impl Default for ProviderSpec {
    fn default() -> Self {
        Self {
            mode: ProviderMode::Subprocess,
            command: Vec::new(),
            cwd: None,
            image: None,
            endpoint: None,
            headers: BTreeMap::new(),
            env: BTreeMap::new(),
            idle_ttl_s: 300,
            health_check_interval_s: 60,
            max_consecutive_failures: 3,
            max_failures: 6,
            startup_timeout_s: 30,
            call_timeout_s: 120,
            description: None,
            volumes: Vec::new(),
            network: None,
            read_only: None,
            user: None,
            workdir: None,
            memory_mb: None,
            cpus: None,
            pids_limit: None,
            tmpfs: None,
            cap_add: Vec::new(),
            no_new_privileges: None,
            connect_timeout_s: None,
            allow_link_local: false,
            scope: None,
            policies: Vec::new(),
            prefix: None,
            tools: ItemNaming::default(),
            prompts: ItemNaming::default(),
        }
    }
}

impl ProviderSpec {
    /// A subprocess spec running `argv` (program first), other fields at their defaults.
    pub fn subprocess<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// A docker spec for `image`, other fields at their defaults.
    pub fn docker(image: impl Into<String>) -> Self {
        Self {
            mode: ProviderMode::Docker,
            image: Some(image.into()),
            ..Self::default()
        }
    }

    /// A remote spec for `endpoint`, other fields at their defaults.
    pub fn remote(endpoint: impl Into<String>) -> Self {
        Self {
            mode: ProviderMode::Remote,
            endpoint: Some(endpoint.into()),
            ..Self::default()
        }
    }

    /// Whether `other` runs something else than `self` (what decides what runs:
    /// mode, command, image, env, volumes, endpoint, headers, container settings,
    /// scope), as opposed to lifecycle settings (description, timeouts, health
    /// checks, policies).
    pub fn runs_differently_from(&self, other: &Self) -> bool {
        let lifecycle_only = |s: &Self| Self {
            description: None,
            idle_ttl_s: 0,
            health_check_interval_s: 0,
            max_consecutive_failures: 0,
            max_failures: 0,
            startup_timeout_s: 0,
            call_timeout_s: 0,
            policies: Vec::new(),
            prefix: None,
            tools: ItemNaming::default(),
            prompts: ItemNaming::default(),
            ..s.clone()
        };
        lifecycle_only(self) != lifecycle_only(other)
    }

    /// The state machine policy this spec asks for, with the default restart backoff.
    pub fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy {
            failure_threshold: self.max_consecutive_failures,
            max_failures: self.max_failures,
            backoff: BackoffPolicy::default(),
        }
    }

    /// Checks the provider id and every field; returns the first problem found.
    pub fn validate(&self, id: &str) -> Result<(), SpecError> {
        validate_provider_id(id)?;
        self.check_mode_fields()?;
        if let Some(prefix) = &self.prefix {
            check_name_part("prefix", prefix)?;
        }
        self.tools.check("tools")?;
        self.prompts.check("prompts")?;
        match self.mode {
            ProviderMode::Subprocess => self.check_subprocess()?,
            ProviderMode::Docker => self.check_docker()?,
            ProviderMode::Remote => {
                check_endpoint(self.endpoint.as_deref())?;
                if let Some(t) = self.connect_timeout_s
                    && !(1..=300).contains(&t)
                {
                    return Err(SpecError::new(
                        "connect_timeout_s",
                        "must be between 1 and 300",
                    ));
                }
                if !self.allow_link_local
                    && let Some(why) = self
                        .endpoint
                        .as_deref()
                        .and_then(crate::net::forbidden_endpoint)
                {
                    return Err(SpecError::new("endpoint", why));
                }
            }
        }
        for (name, value) in &self.env {
            check_env(name, value)?;
        }
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        if let Some(scope) = &self.scope {
            validate_scope_id(scope).map_err(|m| SpecError::new("scope", m))?;
        }
        for (i, policy) in self.policies.iter().enumerate() {
            policy.to_policy(id).validate().map_err(|e| {
                let field = if e.field == "provider" {
                    "id"
                } else {
                    e.field.as_str()
                };
                SpecError::new(format!("policies[{i}].{field}"), e.message)
            })?;
        }
        self.check_numbers()
    }

    /// Rejects fields that belong to another mode.
    fn check_mode_fields(&self) -> Result<(), SpecError> {
        use ProviderMode::{Docker, Remote, Subprocess};
        let present: [(&str, bool, &[ProviderMode]); 19] = [
            ("command", !self.command.is_empty(), &[Subprocess, Docker]),
            ("cwd", self.cwd.is_some(), &[Subprocess]),
            ("image", self.image.is_some(), &[Docker]),
            ("volumes", !self.volumes.is_empty(), &[Docker]),
            ("network", self.network.is_some(), &[Docker]),
            ("read_only", self.read_only.is_some(), &[Docker]),
            ("user", self.user.is_some(), &[Docker]),
            ("workdir", self.workdir.is_some(), &[Docker]),
            ("memory_mb", self.memory_mb.is_some(), &[Docker]),
            ("cpus", self.cpus.is_some(), &[Docker]),
            ("pids_limit", self.pids_limit.is_some(), &[Docker]),
            ("tmpfs", self.tmpfs.is_some(), &[Docker]),
            ("cap_add", !self.cap_add.is_empty(), &[Docker]),
            (
                "no_new_privileges",
                self.no_new_privileges.is_some(),
                &[Docker],
            ),
            ("endpoint", self.endpoint.is_some(), &[Remote]),
            ("headers", !self.headers.is_empty(), &[Remote]),
            (
                "connect_timeout_s",
                self.connect_timeout_s.is_some(),
                &[Remote],
            ),
            ("allow_link_local", self.allow_link_local, &[Remote]),
            ("env", !self.env.is_empty(), &[Subprocess, Docker]),
        ];
        for (field, set, modes) in present {
            if set && !modes.contains(&self.mode) {
                let names: Vec<&str> = modes.iter().map(|m| m.as_str()).collect();
                return Err(SpecError::new(
                    field,
                    format!(
                        "not allowed for mode {} (only for {})",
                        self.mode,
                        names.join(" and ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_subprocess(&self) -> Result<(), SpecError> {
        let Some(program) = self.command.first() else {
            return Err(SpecError::new(
                "command",
                "must not be empty (subprocess mode needs the program and its arguments)",
            ));
        };
        if program.trim().is_empty() {
            return Err(SpecError::new("command[0]", "program must not be empty"));
        }
        for (i, arg) in self.command.iter().enumerate() {
            if arg.contains('\0') {
                return Err(SpecError::new(
                    format!("command[{i}]"),
                    "must not contain NUL",
                ));
            }
        }
        if let Some(cwd) = &self.cwd
            && (cwd.is_empty() || cwd.contains('\0'))
        {
            return Err(SpecError::new(
                "cwd",
                "must be a non-empty path without NUL",
            ));
        }
        Ok(())
    }

    fn check_docker(&self) -> Result<(), SpecError> {
        match self.image.as_deref() {
            None => {
                return Err(SpecError::new("image", "required for mode docker"));
            }
            Some(image) if image.is_empty() || image.chars().any(char::is_whitespace) => {
                return Err(SpecError::new(
                    "image",
                    "must be a non-empty image reference without whitespace",
                ));
            }
            Some(_) => {}
        }
        for (i, volume) in self.volumes.iter().enumerate() {
            if volume.trim().is_empty() || volume.contains('\0') || !volume.contains(':') {
                return Err(SpecError::new(
                    format!("volumes[{i}]"),
                    "must look like source:target[:ro|rw]",
                ));
            }
        }
        if let Some(network) = &self.network
            && (network.is_empty() || network.chars().any(char::is_whitespace))
        {
            return Err(SpecError::new(
                "network",
                "must be a non-empty network name without whitespace",
            ));
        }
        for (i, arg) in self.command.iter().enumerate() {
            if arg.contains('\0') {
                return Err(SpecError::new(
                    format!("command[{i}]"),
                    "must not contain NUL",
                ));
            }
        }
        for (field, value) in [("user", &self.user), ("workdir", &self.workdir)] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(SpecError::new(
                    field,
                    "must be non-empty, without whitespace or control characters",
                ));
            }
        }
        if self.workdir.as_deref().is_some_and(|w| !w.starts_with('/')) {
            return Err(SpecError::new("workdir", "must be an absolute path"));
        }
        if let Some(mb) = self.memory_mb
            && mb != 0
            && !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb)
        {
            return Err(SpecError::new(
                "memory_mb",
                format!("must be 0 (no limit) or between {MIN_MEMORY_MB} and {MAX_MEMORY_MB}"),
            ));
        }
        if let Some(cpus) = self.cpus
            && !(cpus == 0.0 || (0.01..=1024.0).contains(&cpus))
        {
            return Err(SpecError::new(
                "cpus",
                "must be 0 (no limit) or between 0.01 and 1024",
            ));
        }
        for (i, mount) in self.tmpfs.iter().flatten().enumerate() {
            let path = mount.split_once(':').map_or(mount.as_str(), |(p, _)| p);
            if !path.starts_with('/') || mount.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SpecError::new(
                    format!("tmpfs[{i}]"),
                    "must be an absolute path, optionally followed by :options, without whitespace",
                ));
            }
        }
        for (i, cap) in self.cap_add.iter().enumerate() {
            let name = cap.strip_prefix("CAP_").unwrap_or(cap);
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                return Err(SpecError::new(
                    format!("cap_add[{i}]"),
                    "must be a capability name such as NET_BIND_SERVICE",
                ));
            }
            if name == "ALL" || name == "SYS_ADMIN" {
                return Err(SpecError::new(
                    format!("cap_add[{i}]"),
                    "ALL and SYS_ADMIN amount to a privileged container and are refused",
                ));
            }
        }
        Ok(())
    }

    fn check_numbers(&self) -> Result<(), SpecError> {
        if !(1..=3600).contains(&self.startup_timeout_s) {
            return Err(SpecError::new(
                "startup_timeout_s",
                format!("must be between 1 and 3600, got {}", self.startup_timeout_s),
            ));
        }
        if !(1..=86_400).contains(&self.call_timeout_s) {
            return Err(SpecError::new(
                "call_timeout_s",
                format!("must be between 1 and 86400, got {}", self.call_timeout_s),
            ));
        }
        if self.max_consecutive_failures == 0 {
            return Err(SpecError::new(
                "max_consecutive_failures",
                "must be at least 1",
            ));
        }
        if self.max_failures < self.max_consecutive_failures {
            return Err(SpecError::new(
                "max_failures",
                format!(
                    "must be at least max_consecutive_failures ({}), got {}",
                    self.max_consecutive_failures, self.max_failures
                ),
            ));
        }
        Ok(())
    }
}

/// A policy inside a provider spec: `{tool: "write_*", role_id: developer, effect: ask}`,
/// with exactly one of `principal_id` and `role_id`; `tool` (the provider's own tool name,
/// a glob) defaults to `*`; `resource: "<uri glob>"` or `prompt: "<name glob>"` instead of
/// `tool` governs resource reads or prompt gets. The provider is the spec's own id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProviderPolicyFields", into = "ProviderPolicyFields")]
pub struct ProviderPolicy {
    /// Glob over the provider's own tool names (resource URIs, prompt names: by `kind`).
    pub tool_glob: String,
    /// Whom the policy is about.
    pub subject: Subject,
    /// What it does.
    pub effect: Effect,
    /// What it governs.
    pub kind: PolicyKind,
}

impl ProviderPolicy {
    /// The policy as a [`ToolPolicy`] on provider `provider_id`.
    pub fn to_policy(&self, provider_id: &str) -> ToolPolicy {
        ToolPolicy::new(
            provider_id,
            self.tool_glob.clone(),
            self.subject.clone(),
            self.effect,
        )
        .with_kind(self.kind)
    }
}

/// The wire form of [`ProviderPolicy`].
#[derive(Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy {tool | resource | prompt, principal_id | role_id, effect}"
)]
struct ProviderPolicyFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    role_id: Option<String>,
    effect: Effect,
}

impl TryFrom<ProviderPolicyFields> for ProviderPolicy {
    type Error = String;

    fn try_from(f: ProviderPolicyFields) -> Result<Self, Self::Error> {
        let subject = Subject::from_ids(f.principal_id, f.role_id)
            .ok_or_else(|| crate::policy::SUBJECT_REQUIRED.to_owned())?;
        let (kind, tool_glob) = match (f.tool, f.resource, f.prompt) {
            (tool, None, None) => (PolicyKind::Tool, tool.unwrap_or_else(crate::policy::any)),
            (None, Some(uri), None) => (PolicyKind::Resource, uri),
            (None, None, Some(name)) => (PolicyKind::Prompt, name),
            _ => return Err("at most one of `tool`, `resource` and `prompt` may be given".into()),
        };
        Ok(Self {
            tool_glob,
            subject,
            effect: f.effect,
            kind,
        })
    }
}

impl From<ProviderPolicy> for ProviderPolicyFields {
    fn from(p: ProviderPolicy) -> Self {
        let (principal_id, role_id) = p.subject.into_ids();
        let glob = Some(p.tool_glob);
        let (tool, resource, prompt) = match p.kind {
            PolicyKind::Tool => (glob, None, None),
            PolicyKind::Resource => (None, glob, None),
            PolicyKind::Prompt => (None, None, glob),
        };
        Self {
            tool,
            resource,
            prompt,
            principal_id,
            role_id,
            effect: p.effect,
        }
    }
}

/// Checks a scope id: 1 to 64 of `[a-z0-9_-]`, starting with a letter or
/// digit. The message names the problem.
pub fn validate_scope_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "scope id {id:?} must be 1 to 64 of [a-z0-9_-], starting with a letter or digit"
        ))
    }
}

/// Checks a provider id: `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$` and no `__` (the default tool
/// separator) inside. The error's field is `id`.
pub fn validate_provider_id(id: &str) -> Result<(), SpecError> {
    let mut chars = id.chars();
    let Some(first) = chars.next() else {
        return Err(SpecError::new("id", "provider id must not be empty"));
    };
    if !first.is_ascii_alphanumeric() {
        return Err(SpecError::new(
            "id",
            format!("provider id `{id}` must start with a letter or digit"),
        ));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-')) {
        return Err(SpecError::new(
            "id",
            format!("provider id `{id}` contains `{bad}` (allowed: letters, digits, `_`, `-`)"),
        ));
    }
    if id.len() > MAX_PROVIDER_ID_LEN {
        return Err(SpecError::new(
            "id",
            format!("provider id is longer than {MAX_PROVIDER_ID_LEN} characters"),
        ));
    }
    if id.contains(DEFAULT_SEPARATOR) {
        return Err(SpecError::new(
            "id",
            format!("provider id `{id}` must not contain the tool separator `{DEFAULT_SEPARATOR}`"),
        ));
    }
    Ok(())
}

fn check_endpoint(endpoint: Option<&str>) -> Result<(), SpecError> {
    let Some(endpoint) = endpoint else {
        return Err(SpecError::new("endpoint", "required for mode remote"));
    };
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"));
    match rest {
        None => Err(SpecError::new(
            "endpoint",
            "must start with http:// or https://",
        )),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            Err(SpecError::new("endpoint", "must name a host"))
        }
        Some(_)
            if endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Err(SpecError::new(
                "endpoint",
                "must not contain whitespace or control characters",
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Checks an environment variable name: not empty, without `=` or NUL.
pub fn validate_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("variable names must not be empty".to_owned());
    }
    if name.contains('=') || name.contains('\0') {
        return Err("variable name must not contain `=` or NUL".to_owned());
    }
    Ok(())
}

fn check_env(name: &str, value: &str) -> Result<(), SpecError> {
    if let Err(message) = validate_env_name(name) {
        let field = if name.is_empty() {
            "env".to_owned()
        } else {
            format!("env.{name}")
        };
        return Err(SpecError::new(field, message));
    }
    if value.contains('\0') {
        return Err(SpecError::new(
            format!("env.{name}"),
            "value must not contain NUL",
        ));
    }
    Ok(())
}

fn check_header(name: &str, value: &str) -> Result<(), SpecError> {
    // RFC 9110 token characters.
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(SpecError::new(
            format!("headers.{name}"),
            "header name must be a non-empty HTTP token",
        ));
    }
    if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(SpecError::new(
            format!("headers.{name}"),
            "header value must not contain CR, LF or NUL",
        ));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(SpecError::new(
            format!("headers.{name}"),
            "is set by Hangar itself",
        ));
    }
    Ok(())
}
