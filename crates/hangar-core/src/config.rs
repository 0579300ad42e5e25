//! The YAML config model: providers, groups and server settings, validated with
//! errors that name the field and the line.
//!
//! ```yaml
//! providers:            # `mcp_servers:` is accepted too (MCP Hangar style); both merge
//!   math:
//!     mode: subprocess
//!     command: [python, -m, math_server]
//!     idle_ttl_s: 180
//! groups:               # group ids share the provider namespace
//!   pool:
//!     strategy: round_robin
//!     members: [{ provider: math }]
//! server:
//!   tool_separator: "__"
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::group::GroupSpec;
use crate::naming::{DEFAULT_SEPARATOR, is_name_char};
use crate::spec::{ProviderSpec, SpecError};

#[cfg(test)]
mod group_tests;
mod locate;
#[cfg(test)]
mod tests;

/// Default request body limit: 4 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Default size of each provider's stderr ring.
pub const DEFAULT_MAX_LOG_LINES: usize = 1000;
/// Default tool invocation records kept per provider.
pub const DEFAULT_HISTORY_RETENTION: u64 = 10_000;
/// Default number of events on a stream between two snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;
/// Default number of audit records kept per type.
pub const DEFAULT_AUDIT_RETENTION: u64 = 100_000;
/// Default number of config backups kept.
pub const DEFAULT_BACKUP_COUNT: usize = 5;

/// Longest accepted tool separator.
pub const MAX_SEPARATOR_LEN: usize = 8;

/// A config problem: which field, where in the file, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// Dotted path of the field (`providers.math.command`), if known.
    pub field: Option<String>,
    /// 1-based line in the YAML text, if known.
    pub line: Option<usize>,
    /// 1-based column, if known (parse errors only).
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error about `field`, without a location.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    fn from_spec(section: &str, id: &str, err: SpecError) -> Self {
        let field = if err.field == "id" {
            format!("{section}.{id}")
        } else {
            format!("{section}.{id}.{}", err.field)
        };
        Self::field(field, err.message)
    }

    fn from_yaml(err: &yaml_serde::Error) -> Self {
        let mut text = err.to_string();
        let location = err.location();
        if let Some(loc) = &location {
            let at = format!(" at line {} column {}", loc.line(), loc.column());
            text = text.replacen(&at, "", 1);
        }
        let (field, message) = split_path(&text);
        let message = redact_values(&message);
        Self {
            field,
            line: location.as_ref().map(yaml_serde::Location::line),
            column: location.as_ref().map(yaml_serde::Location::column),
            message,
        }
    }
}

impl ConfigError {
    /// Points a duplicate-id error at the repeated key instead of the map.
    fn locate_duplicate(mut self, text: &str) -> Self {
        let id = DUPLICATE_KINDS
            .iter()
            .find_map(|kind| {
                self.message
                    .strip_prefix("duplicate ")
                    .and_then(|rest| rest.strip_prefix(kind))
                    .and_then(|rest| rest.strip_prefix(" id `"))
            })
            .and_then(|rest| rest.split_once('`'))
            .map(|(id, _)| id.to_owned());
        if let (Some(id), Some(section)) = (id, self.field.clone()) {
            self.line = locate::key_line(text, &[&section, &id]).map(|(_, line)| line);
            self.column = None;
            self.field = Some(format!("{section}.{id}"));
        }
        self
    }
}

/// Replaces the values serde's messages quote (`invalid type: string "…"`,
/// `` integer `5` ``, `` unknown variant `x` ``) by what kind of value it was: a config
/// error names the field and line, never the text found there (the file may hold
/// credentials, or not be a config at all).
pub(crate) fn redact_values(message: &str) -> String {
    // (quoted form, its opening, its closing, what replaces it)
    const QUOTED: [(&str, char, &str); 6] = [
        ("string \"", '"', "a string"),
        ("integer `", '`', "an integer"),
        ("floating point `", '`', "a number"),
        ("boolean `", '`', "a boolean"),
        ("character `", '`', "a character"),
        ("unknown variant `", '`', "unknown variant"),
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = QUOTED
            .iter()
            .filter_map(|q| rest.find(q.0).map(|at| (at, q)))
            .min_by_key(|(at, _)| *at);
        let Some((at, (open, close, kind))) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        out.push_str(kind);
        let value = &rest[at + open.len()..];
        // Skip to the closing quote; `string "…"` is Debug-escaped (`\"`).
        let mut escaped = false;
        let mut end = value.len();
        for (i, c) in value.char_indices() {
            if escaped {
                escaped = false;
            } else if c == '\\' && *close == '"' {
                escaped = true;
            } else if c == *close {
                end = i + c.len_utf8();
                break;
            }
        }
        rest = &value[end..];
    }
}

/// What an id names in "duplicate <kind> id `<id>`" messages.
const DUPLICATE_KINDS: [&str; 2] = [ProviderSpec::KIND, GroupSpec::KIND];

/// Splits yaml_serde's `path: message` (the path is absent at the top level). An unknown
/// field's name is appended to the path.
fn split_path(text: &str) -> (Option<String>, String) {
    let is_path = |p: &str| !p.is_empty() && !p.contains(char::is_whitespace) && !p.contains('`');
    let (mut field, message) = match text.split_once(": ") {
        Some((path, rest)) if is_path(path) => (Some(path.to_owned()), rest.to_owned()),
        _ => (None, text.to_owned()),
    };
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
    {
        field = Some(match field {
            Some(path) => format!("{path}.{name}"),
            None => name.to_owned(),
        });
    }
    (field, message)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("config error")?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
            if let Some(column) = self.column {
                write!(f, " column {column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Settings of the server itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Between provider id and tool name in exposed tool names (1–8 of `[a-zA-Z0-9_-]`).
    pub tool_separator: String,
    /// A provider's elicitation for a client that can't answer it waits as a
    /// question an operator answers over REST (`true`, the default); `false`:
    /// clients' capabilities reach providers exactly as declared, and such a
    /// call fails as it would without Hangar.
    pub operator_questions: bool,
    /// How exposed tool and prompt names are formed: `prefixed` (`<provider>__<tool>`,
    /// the default), `conditional` (bare while unique across providers) or `bare`.
    pub tool_naming: crate::naming::NamingMode,
    /// Origins allowed on `/mcp` (`scheme://host[:port]`); empty = localhost only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes (at least 1024).
    pub max_body_bytes: usize,
    /// stderr lines kept per provider (0 keeps none).
    pub max_log_lines: usize,
    /// Tool invocation records kept per provider in the store (at least 1); older
    /// ones are deleted, so history never grows without bound.
    pub history_retention: u64,
    /// Config backups kept by `POST /api/config/backup` (at least 1); the
    /// oldest is deleted when a new one would exceed it.
    pub backup_count: usize,
    /// A domain event stream gets a snapshot after this many new events (at
    /// least 1); `POST /api/maintenance/compact` deletes what a snapshot covers.
    pub snapshot_every: u64,
    /// Record every tool call (tool, principal, argument size, duration,
    /// outcome; never argument values) in the invocation history.
    pub record_tool_history: bool,
    /// At most this many provider processes run at once (0: no cap); starting
    /// one more answers 503 with a clear message.
    pub max_running_providers: usize,
    /// Audit records kept per type (tool calls, admin changes, security
    /// events; at least 1); older ones are deleted.
    pub audit_retention: u64,
    /// Requests allowed per API key (`{requests, per_seconds, burst?}`) when none
    /// of the key's roles sets one; unset = [`DEFAULT_RATE_LIMIT`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::ratelimit::RateLimit>,
    /// How repeated failed authentication from one client is slowed down;
    /// unset = the defaults of [`crate::ratelimit::AuthBackoffConfig`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_backoff: Option<crate::ratelimit::AuthBackoffConfig>,
    /// Seconds a tool call held by an `ask` policy waits for an answer (and a
    /// provider's question for a reply) before it fails (at least 1).
    pub approval_timeout_s: u64,
    /// Whether a principal may answer its own held call (default false: a
    /// second person decides).
    pub allow_self_approval: bool,
    /// Longest life of a personal token, in seconds (at least 60): a token
    /// asked for without an expiry gets this one, a later expiry is refused.
    pub token_max_ttl_s: u64,
    /// Unexpired, unrevoked personal tokens one principal may hold (at least 1).
    pub max_tokens_per_principal: usize,
    /// Connections served at once (at least 1); more wait in the listen queue.
    pub max_connections: usize,
    /// Seconds a 2025-era MCP session may go unused before it ends (at least
    /// 1); its client then gets 404 and initializes again.
    pub session_idle_timeout_s: u64,
    /// 2025-era MCP sessions open at once (at least 1); an `initialize` past
    /// it is refused (2026-07-28 requests need no session).
    pub max_sessions: usize,
    /// 2025-era MCP sessions one principal may hold open (at least 1).
    pub max_sessions_per_principal: usize,
    /// Seconds a connection may go without accepting a byte of a reply that is
    /// being written before it is closed (at least 1): a client that never
    /// reads cannot pin memory.
    pub write_timeout_s: u64,
    /// stderr lines per second kept from each provider (at least 1); lines
    /// beyond it are counted and dropped, not parsed.
    pub log_lines_per_s: u32,
    /// Minutes of metric samples kept for `GET /api/observability/metrics/history`
    /// (1 to 1440; one sample every 10 s).
    pub metrics_history_minutes: u32,
    /// When alerts fire and where they are sent.
    pub alerts: AlertConfig,
}

/// Default of `server.metrics_history_minutes`.
pub const DEFAULT_METRICS_HISTORY_MINUTES: u32 = 60;

/// `server.alerts`: alert thresholds and webhooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// A URL per level (`critical`, `warning`, `info`) that gets each alert
    /// of that level as a JSON POST (retried with backoff).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub webhooks: BTreeMap<String, String>,
    /// A provider dying this many times within `restart_loop_window_s` is
    /// in a restart loop (a critical alert; at least 2).
    pub restart_loop_count: u32,
    /// Seconds (at least 1).
    pub restart_loop_window_s: u64,
    /// This many requests with a bad key within `auth_failure_window_s`
    /// raise a warning (at least 1).
    pub auth_failure_count: u32,
    /// Seconds (at least 1).
    pub auth_failure_window_s: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            webhooks: BTreeMap::new(),
            restart_loop_count: 3,
            restart_loop_window_s: 300,
            auth_failure_count: 20,
            auth_failure_window_s: 60,
        }
    }
}

/// The alert levels, in the order of their severity.
pub const ALERT_LEVELS: [&str; 3] = ["info", "warning", "critical"];

impl AlertConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (level, url) in &self.webhooks {
            let field = format!("server.alerts.webhooks.{level}");
            if !ALERT_LEVELS.contains(&level.as_str()) {
                return Err(ConfigError::field(
                    field,
                    "unknown alert level (expected critical, warning or info)",
                ));
            }
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .ok_or_else(|| ConfigError::field(&field, "must be an http:// or https:// URL"))?;
            if rest.is_empty()
                || rest.starts_with('/')
                || rest.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::field(
                    field,
                    "must be an http(s) URL with a host",
                ));
            }
        }
        for (field, value, min) in [
            ("restart_loop_count", u64::from(self.restart_loop_count), 2),
            ("restart_loop_window_s", self.restart_loop_window_s, 1),
            ("auth_failure_count", u64::from(self.auth_failure_count), 1),
            ("auth_failure_window_s", self.auth_failure_window_s, 1),
        ] {
            if value < min {
                return Err(ConfigError::field(
                    format!("server.alerts.{field}"),
                    format!("must be at least {min}"),
                ));
            }
        }
        Ok(())
    }
}

/// Default of `server.token_max_ttl_s`: 30 days.
pub const DEFAULT_TOKEN_MAX_TTL_S: u64 = 30 * 86_400;
/// Default of `server.max_tokens_per_principal`.
pub const DEFAULT_MAX_TOKENS_PER_PRINCIPAL: usize = 20;
/// Default of `server.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of `server.session_idle_timeout_s`: 30 minutes.
pub const DEFAULT_SESSION_IDLE_TIMEOUT_S: u64 = 1800;
/// Default of `server.max_sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default of `server.max_sessions_per_principal`.
pub const DEFAULT_MAX_SESSIONS_PER_PRINCIPAL: usize = 1_000;
/// Default of `server.write_timeout_s`.
pub const DEFAULT_WRITE_TIMEOUT_S: u64 = 30;
/// Default of `server.log_lines_per_s`.
pub const DEFAULT_LOG_LINES_PER_S: u32 = 200;

/// Default of `server.approval_timeout_s`.
pub const DEFAULT_APPROVAL_TIMEOUT_S: u64 = 300;

/// The per-key request rate when neither `server.rate_limit` nor a role sets one:
/// 6000 requests per minute (an agent making 100 tool calls a second stays under it;
/// a runaway loop or a brute-force client does not).
pub const DEFAULT_RATE_LIMIT: crate::ratelimit::RateLimit =
    crate::ratelimit::RateLimit::new(6000, 60);

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            tool_separator: DEFAULT_SEPARATOR.to_owned(),
            tool_naming: crate::naming::NamingMode::Prefixed,
            operator_questions: true,
            allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_log_lines: DEFAULT_MAX_LOG_LINES,
            history_retention: DEFAULT_HISTORY_RETENTION,
            backup_count: DEFAULT_BACKUP_COUNT,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            record_tool_history: true,
            max_running_providers: 0,
            audit_retention: DEFAULT_AUDIT_RETENTION,
            rate_limit: None,
            auth_backoff: None,
            approval_timeout_s: DEFAULT_APPROVAL_TIMEOUT_S,
            allow_self_approval: false,
            token_max_ttl_s: DEFAULT_TOKEN_MAX_TTL_S,
            max_tokens_per_principal: DEFAULT_MAX_TOKENS_PER_PRINCIPAL,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            session_idle_timeout_s: DEFAULT_SESSION_IDLE_TIMEOUT_S,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
            write_timeout_s: DEFAULT_WRITE_TIMEOUT_S,
            log_lines_per_s: DEFAULT_LOG_LINES_PER_S,
            metrics_history_minutes: DEFAULT_METRICS_HISTORY_MINUTES,
            alerts: AlertConfig::default(),
        }
    }
}

impl ServerSettings {
    /// Checks every setting; error fields start with `server.`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sep = &self.tool_separator;
        if sep.is_empty() || sep.len() > MAX_SEPARATOR_LEN || !sep.chars().all(is_name_char) {
            return Err(ConfigError::field(
                "server.tool_separator",
                format!("must be 1 to {MAX_SEPARATOR_LEN} of [a-zA-Z0-9_-]"),
            ));
        }
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|m| ConfigError::field(format!("server.allowed_origins[{i}]"), m))?;
        }
        if self.history_retention == 0 {
            return Err(ConfigError::field(
                "server.history_retention",
                "must be at least 1",
            ));
        }
        if self.audit_retention == 0 {
            return Err(ConfigError::field(
                "server.audit_retention",
                "must be at least 1",
            ));
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::field(
                "server.snapshot_every",
                "must be at least 1",
            ));
        }
        if self.backup_count == 0 {
            return Err(ConfigError::field(
                "server.backup_count",
                "must be at least 1",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::field(
                "server.max_body_bytes",
                format!("must be at least 1024, got {}", self.max_body_bytes),
            ));
        }
        for (field, value, min) in [
            ("approval_timeout_s", self.approval_timeout_s, 1),
            ("token_max_ttl_s", self.token_max_ttl_s, 60),
            (
                "max_tokens_per_principal",
                self.max_tokens_per_principal as u64,
                1,
            ),
            ("max_connections", self.max_connections as u64, 1),
            ("session_idle_timeout_s", self.session_idle_timeout_s, 1),
            ("max_sessions", self.max_sessions as u64, 1),
            (
                "max_sessions_per_principal",
                self.max_sessions_per_principal as u64,
                1,
            ),
            ("write_timeout_s", self.write_timeout_s, 1),
            ("log_lines_per_s", u64::from(self.log_lines_per_s), 1),
            (
                "metrics_history_minutes",
                u64::from(self.metrics_history_minutes),
                1,
            ),
        ] {
            if value < min {
                return Err(ConfigError::field(
                    format!("server.{field}"),
                    format!("must be at least {min}"),
                ));
            }
        }
        if self.metrics_history_minutes > 1440 {
            return Err(ConfigError::field(
                "server.metrics_history_minutes",
                "must be at most 1440",
            ));
        }
        self.alerts.validate()?;
        if let Some(limit) = &self.rate_limit {
            limit.validate().map_err(|e| {
                ConfigError::field(format!("server.rate_limit.{}", e.field), e.message)
            })?;
        }
        if let Some(backoff) = &self.auth_backoff {
            backoff.validate().map_err(|e| {
                ConfigError::field(format!("server.auth_backoff.{}", e.field), e.message)
            })?;
        }
        Ok(())
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Err("wildcard origins are not allowed; list each origin".to_owned());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("`{origin}` must start with http:// or https://"))?;
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || rest.contains(|c: char| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{origin}` must be scheme://host[:port] with no path"
        ));
    }
    Ok(())
}

/// The whole config: providers and groups by id, and server settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HangarConfig {
    /// Providers by id.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, ProviderSpec>,
    /// Groups by id (ids distinct from provider ids).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, GroupSpec>,
    /// Server settings.
    pub server: ServerSettings,
}

/// What the YAML document holds before merging and validation.
#[derive(Default, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a map with providers, mcp_servers, groups and server"
)]
struct RawConfig {
    providers: Option<Entries<ProviderSpec>>,
    mcp_servers: Option<Entries<ProviderSpec>>,
    groups: Option<Entries<GroupSpec>>,
    server: Option<ServerSettings>,
}

/// What the values of an id-keyed map are called in messages.
trait Kind {
    /// `provider` or `group`.
    const KIND: &'static str;
}

impl Kind for ProviderSpec {
    const KIND: &'static str = "provider";
}

impl Kind for GroupSpec {
    const KIND: &'static str = "group";
}

/// An id-keyed map that rejects duplicate ids instead of keeping the last one.
struct Entries<T>(Vec<(String, T)>);

impl<'de, T: Deserialize<'de> + Kind> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Kind> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a map of {kind} id to {kind} spec", kind = T::KIND)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, T)> = Vec::new();
                while let Some(id) = map.next_key::<String>()? {
                    if entries.iter().any(|(seen, _)| *seen == id) {
                        let kind = T::KIND;
                        return Err(serde::de::Error::custom(format!(
                            "duplicate {kind} id `{id}`"
                        )));
                    }
                    let spec = map.next_value::<T>()?;
                    entries.push((id, spec));
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

impl HangarConfig {
    /// Parses and validates YAML. Unknown keys are errors; an empty document (or only
    /// comments) is an empty config. Errors carry the field path and, when found, the line.
    pub fn from_yaml(text: &str) -> Result<HangarConfig, ConfigError> {
        let raw = match yaml_serde::from_str::<Option<RawConfig>>(text) {
            Ok(raw) => raw.unwrap_or_default(),
            Err(err) => return Err(ConfigError::from_yaml(&err).locate_duplicate(text)),
        };
        let mut providers = BTreeMap::new();
        for (section, entries) in [
            ("providers", raw.providers),
            ("mcp_servers", raw.mcp_servers),
        ] {
            for (id, spec) in entries.map(|e| e.0).unwrap_or_default() {
                if providers.contains_key(&id) {
                    let mut err = ConfigError::field(
                        format!("{section}.{id}"),
                        "duplicate provider id (already defined under providers)",
                    );
                    err.line = locate::key_line(text, &[section, &id]).map(|(_, line)| line);
                    return Err(err);
                }
                providers.insert(id, spec);
            }
        }
        let groups = raw
            .groups
            .map(|e| e.0.into_iter().collect())
            .unwrap_or_default();
        let config = HangarConfig {
            providers,
            groups,
            server: raw.server.unwrap_or_default(),
        };
        config.validate().map_err(|mut err| {
            if let Some(field) = &err.field {
                err.line = locate::field_line(text, field);
            }
            err
        })?;
        Ok(config)
    }

    /// Checks the server settings, then every provider id and spec, then every group (in
    /// id order); returns the first problem, with fields like `providers.<id>.<field>` or
    /// `groups.<id>.members[0].provider`. Group members must name providers of this config,
    /// and a group id must not be a provider id.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        for (id, spec) in &self.providers {
            spec.validate(id)
                .map_err(|err| ConfigError::from_spec("providers", id, err))?;
        }
        for (id, group) in &self.groups {
            group
                .validate(id)
                .map_err(|err| ConfigError::from_spec("groups", id, err))?;
            if self.providers.contains_key(id) {
                return Err(ConfigError::field(
                    format!("groups.{id}"),
                    format!("`{id}` is already a provider id (groups and providers share ids)"),
                ));
            }
            for (i, member) in group.members.iter().enumerate() {
                if !self.providers.contains_key(&member.provider) {
                    return Err(ConfigError::field(
                        format!("groups.{id}.members[{i}].provider"),
                        format!("unknown provider '{}'", member.provider),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Serializes to YAML (providers under `providers:`, then `groups:`) that [`HangarConfig::from_yaml`]
    /// reads back to an equal config.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        yaml_serde::to_string(self).map_err(|err| ConfigError {
            field: None,
            line: None,
            column: None,
            message: format!("cannot serialize config: {err}"),
        })
    }
}
