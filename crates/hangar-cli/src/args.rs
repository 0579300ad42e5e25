//! Command-line grammar (clap derive) and the small parsers for `key=value` arguments.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Map, Value};

use crate::catalog::CatalogCommand;
use crate::config::ConfigCommand;
use crate::error::CliError;
use crate::groups::GroupsCommand;
use crate::import::ImportArgs;
use crate::system::MaintenanceCommand;

/// Command line client for Hangar, the MCP gateway.
#[derive(Debug, Parser)]
#[command(name = "hangar", version, about, propagate_version = true)]
pub struct Cli {
    /// Base URL of the Hangar server.
    #[arg(
        long,
        global = true,
        env = "HANGAR_URL",
        default_value = "http://127.0.0.1:8000"
    )]
    pub url: String,

    /// API key (default: the contents of <data-dir>/admin.key).
    #[arg(long, global = true, env = "HANGAR_KEY", hide_env_values = true)]
    pub key: Option<String>,

    /// Data directory: where `serve` keeps its state and where the admin key is read from.
    #[arg(
        long,
        global = true,
        env = "HANGAR_DATA_DIR",
        default_value = "./.hangar"
    )]
    pub data_dir: PathBuf,

    /// Output format: aligned tables for people, JSON for scripts.
    #[arg(long, short = 'o', global = true, env = "HANGAR_OUTPUT", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Hangar server in the foreground (same as `hangar-server`).
    Serve(ServeArgs),
    /// Manage providers (the MCP servers Hangar runs).
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// Manage groups (load-balanced sets of providers behind one name).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Show, reload, export, back up or diff the server's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Browse the catalog of known MCP servers and deploy them as providers.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Show gateway-wide figures: providers by state, groups, tools, calls, uptime, version.
    System,
    /// Maintenance of the server's stored data.
    #[command(subcommand)]
    Maintenance(MaintenanceCommand),
    /// Encrypted secrets (names only are ever shown); providers use them as `${secret:NAME}`.
    #[command(subcommand)]
    Secrets(crate::secrets::SecretsCommand),
    /// Scopes: a provider in a scope gets only that scope's secrets.
    #[command(subcommand)]
    Scopes(crate::secrets::ScopesCommand),
    /// API keys of principals (the raw key is shown once, at creation).
    #[command(subcommand)]
    Keys(crate::access::KeysCommand),
    /// Your personal tokens (authenticate like keys; shown once, at creation).
    #[command(subcommand)]
    Tokens(crate::access::TokensCommand),
    /// Roles: built-in (admin, operator, developer, viewer, auditor) and custom.
    #[command(subcommand)]
    Roles(crate::access::RolesCommand),
    /// Principals (who keys authenticate as) and their roles.
    #[command(subcommand)]
    Principals(crate::access::PrincipalsCommand),
    /// Permission checks: `hangar auth check PRINCIPAL PERMISSION`.
    #[command(subcommand)]
    Auth(crate::access::AuthCommand),
    /// The audit log (tool calls, admin changes, security events), newest first.
    Audit(crate::access::AuditArgs),
    /// Security events (failed auth, denied access, rate limiting), newest first.
    SecurityEvents(crate::access::SecurityEventsArgs),
    /// Tool policies (allow, ask, deny) per provider and tool pattern, for a principal or a role.
    #[command(subcommand)]
    Policies(crate::policies::PoliciesCommand),
    /// Tool calls held by an `ask` policy: list, approve, reject, watch.
    #[command(subcommand)]
    Approvals(crate::approvals::ApprovalsCommand),
    /// Questions from providers (elicitations) waiting for an answer.
    #[command(subcommand)]
    Questions(crate::approvals::QuestionsCommand),
    /// Follow the server's domain events live (state changes, tool calls, approvals,
    /// breakers, alerts), resuming where the stream broke off if the connection drops.
    Events(crate::observe::EventsArgs),
    /// A live summary: providers by state, groups, calls per second, pending approvals, alerts.
    Status(crate::observe::StatusArgs),
    /// Prometheus metrics (the text Prometheus scrapes; JSON with --output json).
    Metrics,
    /// Alert history (provider dead, restart loop, breaker open, ...), newest first.
    Alerts(crate::observe::AlertsArgs),
    /// Create providers from an MCP client config file (Claude Desktop, Cursor, VS Code).
    ///
    /// Reads "mcpServers" (Claude Desktop, Cursor), "servers" (VS Code .vscode/mcp.json) or
    /// "mcp": {"servers"} (VS Code settings.json); comments and trailing commas are accepted.
    /// Each server becomes one provider: a command as a subprocess provider, a url as a remote
    /// one. Names that are not valid provider ids are changed (and reported); disabled servers
    /// are skipped; placeholders such as ${input:...} are kept as text, with a warning.
    ///
    /// Exit code: 0 when every server was created, already existed or was skipped; 1 when one
    /// failed (or, with --dry-run, is invalid); 2 when the file cannot be read or has no
    /// servers; 3 when the server cannot be reached.
    Import(ImportArgs),
    /// List every tool the gateway exposes (over MCP).
    Tools,
    /// Call a tool through the gateway: `hangar call TOOL key=value ... [--json '{...}']`.
    Call(CallArgs),
    /// Print a shell completion script.
    Completions {
        /// Shell to generate completions for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// YAML config file.
    #[arg(long, env = "HANGAR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of config files `hangar config reload --config-path` may also
    /// name (`*.yaml`/`*.yml` directly in it); without it, only --config.
    #[arg(long, env = "HANGAR_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "HANGAR_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Reload the config file when it changes (same as `hangar config reload`).
    #[arg(long, env = "HANGAR_WATCH")]
    pub watch: bool,
    /// Log format on stderr.
    #[arg(long, env = "HANGAR_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: hangar_api::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// List providers.
    List {
        /// Only providers in this state (cold, initializing, ready, degraded, dead).
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one provider.
    Get { id: String },
    /// Register a provider: `hangar providers add time -- python -m mcp_server_time`,
    /// `hangar providers add fx --mode docker --image hangar-fixture:dev`,
    /// `hangar providers add api --mode remote --endpoint https://host/mcp --header "Authorization=Bearer ${secret:API}"`.
    #[command(visible_alias = "create")]
    Add(Box<AddArgs>),
    /// Change a provider's description, env (replaced whole), idle TTL or
    /// health-check interval; env changes apply at its next start.
    Update(UpdateArgs),
    /// Stop and remove a provider.
    #[command(visible_alias = "rm")]
    Remove { id: String },
    /// Start a provider.
    Start { id: String },
    /// Stop a provider (if it runs) and start it again.
    Restart { id: String },
    /// Re-inject a provider's secrets: a running provider restarts with the current values.
    Refresh {
        /// Provider id.
        id: String,
    },
    /// Stop a provider.
    Stop {
        id: String,
        /// Reason recorded with the stop.
        #[arg(long)]
        reason: Option<String>,
    },
    /// List a provider's own tools.
    Tools { id: String },
    /// Show a provider's tool invocation history (oldest first).
    History {
        id: String,
        /// Records to show (1-500).
        #[arg(long, short = 'n')]
        limit: Option<u32>,
        /// Only records after this store position (for paging).
        #[arg(long, value_name = "POSITION")]
        from_position: Option<u64>,
    },
    /// Show a provider's recent stderr lines.
    Logs {
        id: String,
        /// Number of recent lines (1-1000; with --follow 0-1000).
        #[arg(long, short = 'n')]
        lines: Option<u32>,
        /// Keep printing new lines as the provider writes them.
        #[arg(long, short = 'f')]
        follow: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderMode {
    Subprocess,
    Docker,
    Remote,
}

impl ProviderMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderMode::Subprocess => "subprocess",
            ProviderMode::Docker => "docker",
            ProviderMode::Remote => "remote",
        }
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Provider id.
    pub id: String,
    /// How the provider runs.
    #[arg(long, value_enum, default_value_t = ProviderMode::Subprocess)]
    pub mode: ProviderMode,
    /// Command and arguments (subprocess mode); takes every remaining argument.
    #[arg(long = "command", value_name = "ARG", num_args = 1.., allow_hyphen_values = true, conflicts_with = "argv")]
    pub command: Vec<String>,
    /// Command and arguments given after `--` (subprocess mode).
    #[arg(last = true, value_name = "COMMAND")]
    pub argv: Vec<String>,
    /// Environment variable for the provider, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Seconds without calls before the provider is stopped.
    #[arg(long, value_name = "SECONDS")]
    pub idle_ttl: Option<u64>,
    /// Seconds between health checks.
    #[arg(long, value_name = "SECONDS")]
    pub health_check_interval: Option<u64>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Container image (docker mode); never pulled: it must be on the engine.
    #[arg(long)]
    pub image: Option<String>,
    /// Docker: a volume, SOURCE:TARGET[:ro|rw] (repeatable).
    #[arg(long = "volume", value_name = "SRC:DST[:ro]")]
    pub volumes: Vec<String>,
    /// Docker: the network (default none).
    #[arg(long)]
    pub network: Option<String>,
    /// Docker: a writable root file system (read-only by default).
    #[arg(long)]
    pub writable: bool,
    /// Docker: the user to run as (uid[:gid]).
    #[arg(long)]
    pub user: Option<String>,
    /// Docker: the working directory in the container.
    #[arg(long)]
    pub workdir: Option<String>,
    /// Docker: memory limit in MiB (default 512; 0 = none).
    #[arg(long, value_name = "MIB")]
    pub memory_mb: Option<u64>,
    /// Docker: CPU limit in cores (default 1; 0 = none).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Docker: process limit (default 256; 0 = none).
    #[arg(long)]
    pub pids_limit: Option<u64>,
    /// Docker: a tmpfs mount, PATH[:OPTIONS] (repeatable; default /tmp).
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Docker: a capability to give back (all are dropped) (repeatable).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Streamable HTTP URL (remote mode).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Remote: an HTTP header, NAME=VALUE (repeatable; values may use ${secret:NAME}).
    #[arg(long = "header", value_name = "NAME=VALUE")]
    pub headers: Vec<String>,
    /// Remote: seconds to connect (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub connect_timeout: Option<u64>,
    /// Remote: allow an endpoint on a link-local or metadata address.
    #[arg(long)]
    pub allow_link_local: bool,
}

impl AddArgs {
    /// The JSON body of `POST /api/providers`; absent options are left out.
    pub fn to_body(&self) -> Result<Value, CliError> {
        let argv: &[String] = if self.command.is_empty() {
            &self.argv
        } else {
            &self.command
        };
        match self.mode {
            ProviderMode::Subprocess if argv.is_empty() => {
                return Err(CliError::Usage(format!(
                    "subprocess mode needs a command: hangar providers add {} -- PROGRAM [ARGS...]",
                    self.id
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
        body.insert("provider_id".into(), Value::from(self.id.as_str()));
        body.insert("mode".into(), Value::from(self.mode.as_str()));
        if !argv.is_empty() {
            body.insert("command".into(), Value::from(argv.to_vec()));
        }
        if !self.env.is_empty() {
            insert_env(&mut body, &self.env)?;
        }
        insert_timers(&mut body, self.idle_ttl, self.health_check_interval);
        for (key, value) in [
            ("description", &self.description),
            ("image", &self.image),
            ("endpoint", &self.endpoint),
            ("network", &self.network),
            ("user", &self.user),
            ("workdir", &self.workdir),
        ] {
            if let Some(value) = value {
                body.insert(key.into(), Value::from(value.as_str()));
            }
        }
        for (key, list) in [
            ("volumes", &self.volumes),
            ("tmpfs", &self.tmpfs),
            ("cap_add", &self.cap_add),
        ] {
            if !list.is_empty() {
                body.insert(key.into(), Value::from(list.clone()));
            }
        }
        for (key, value) in [
            ("memory_mb", self.memory_mb),
            ("pids_limit", self.pids_limit),
            ("connect_timeout_s", self.connect_timeout),
        ] {
            if let Some(value) = value {
                body.insert(key.into(), Value::from(value));
            }
        }
        if let Some(cpus) = self.cpus {
            body.insert("cpus".into(), Value::from(cpus));
        }
        if self.writable {
            body.insert("read_only".into(), Value::from(false));
        }
        if self.allow_link_local {
            body.insert("allow_link_local".into(), Value::from(true));
        }
        if !self.headers.is_empty() {
            let headers: Map<String, Value> = parse_env_pairs(&self.headers)?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            body.insert("headers".into(), Value::Object(headers));
        }
        Ok(Value::Object(body))
    }
}

pub(crate) fn insert_env(body: &mut Map<String, Value>, pairs: &[String]) -> Result<(), CliError> {
    let env: Map<String, Value> = parse_env_pairs(pairs)?
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    body.insert("env".into(), Value::Object(env));
    Ok(())
}

fn insert_timers(body: &mut Map<String, Value>, idle_ttl: Option<u64>, health: Option<u64>) {
    if let Some(ttl) = idle_ttl {
        body.insert("idle_ttl_s".into(), Value::from(ttl));
    }
    if let Some(interval) = health {
        body.insert("health_check_interval_s".into(), Value::from(interval));
    }
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Provider id.
    pub id: String,
    /// Environment variable, KEY=VALUE (repeatable); replaces the whole env.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Remove every environment variable.
    #[arg(long, conflicts_with = "env")]
    pub clear_env: bool,
    /// Seconds without calls before the provider is stopped.
    #[arg(long, value_name = "SECONDS")]
    pub idle_ttl: Option<u64>,
    /// Seconds between health checks.
    #[arg(long, value_name = "SECONDS")]
    pub health_check_interval: Option<u64>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
}

impl UpdateArgs {
    /// The `PUT /api/providers/{id}` body; an error if nothing would change.
    pub fn to_body(&self) -> Result<Value, CliError> {
        let mut body = Map::new();
        if self.clear_env {
            body.insert("env".into(), Value::Object(Map::new()));
        } else if !self.env.is_empty() {
            insert_env(&mut body, &self.env)?;
        }
        insert_timers(&mut body, self.idle_ttl, self.health_check_interval);
        if let Some(d) = &self.description {
            body.insert("description".into(), Value::from(d.as_str()));
        }
        if body.is_empty() {
            return Err(CliError::Usage(
                "nothing to update: give --env, --clear-env, --idle-ttl, --health-check-interval or --description".into(),
            ));
        }
        Ok(Value::Object(body))
    }
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// Tool name as listed by `hangar tools` (e.g. `time__get_current_time`).
    pub tool: String,
    /// Arguments as key=value; values that parse as JSON are taken as JSON, others as strings.
    #[arg(value_name = "KEY=VALUE")]
    pub args: Vec<String>,
    /// The whole arguments object as JSON; key=value pairs are merged over it.
    #[arg(long, value_name = "JSON")]
    pub json: Option<String>,
}

impl CallArgs {
    /// The `arguments` object for `tools/call`.
    pub fn arguments(&self) -> Result<Map<String, Value>, CliError> {
        let mut arguments = match &self.json {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(CliError::Usage("--json must be a JSON object".into())),
                Err(e) => return Err(CliError::Usage(format!("--json is not valid JSON: {e}"))),
            },
        };
        for pair in &self.args {
            let (key, value) = parse_tool_arg(pair)?;
            arguments.insert(key, value);
        }
        Ok(arguments)
    }
}

fn split_pair(pair: &str) -> Result<(&str, &str), CliError> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key, value)),
        _ => Err(CliError::Usage(format!("expected KEY=VALUE, got '{pair}'"))),
    }
}

/// One `key=value` tool argument: the value is JSON when it parses as JSON, else a string.
pub fn parse_tool_arg(pair: &str) -> Result<(String, Value), CliError> {
    let (key, raw) = split_pair(pair)?;
    let value =
        serde_json::from_str::<Value>(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
    Ok((key.to_owned(), value))
}

/// `--env KEY=VALUE` pairs; values stay strings, later pairs win.
pub fn parse_env_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| split_pair(pair).map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
