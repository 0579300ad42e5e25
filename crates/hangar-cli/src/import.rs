//! `hangar import FILE`: turn the MCP servers of a client config file (Claude Desktop, Cursor,
//! VS Code) into Hangar providers, one `POST /api/providers` each.
//!
//! [`plan_import`] is the pure part (file text → planned providers and warnings); [`run`]
//! reads the file, sends the requests and reports one line per server.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{Map, Value, json};

use crate::args::Cli;
use crate::catalog::shell_words;
use crate::commands::connect;
use crate::error::{CliError, EXIT_SERVER};
use crate::output::{print, print_json, render_table};

/// Longest provider id the server accepts.
pub const MAX_PROVIDER_ID_LEN: usize = 63;
/// Longest `--prefix`, so that some of the server's name always fits.
pub const MAX_PREFIX_LEN: usize = 32;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// MCP client config file: Claude Desktop's claude_desktop_config.json, Cursor's
    /// mcp.json, VS Code's .vscode/mcp.json or its user settings.json.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Show what would be created without calling the server.
    #[arg(long)]
    pub dry_run: bool,
    /// Put this before every provider id, as given (e.g. `--prefix cursor-`).
    #[arg(long)]
    pub prefix: Option<String>,
}

/// Why a file cannot be imported at all (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{file} is not valid JSON: {reason}")]
    Json { file: String, reason: String },
    #[error("{file}: expected a JSON object at the top level, got {found}")]
    NotAnObject { file: String, found: &'static str },
    #[error(
        "{file}: no MCP servers found: expected \"mcpServers\" (Claude Desktop, Cursor), \
         \"servers\" (VS Code .vscode/mcp.json) or \"mcp\": {{\"servers\": ...}} (VS Code settings.json)"
    )]
    NoServerSection { file: String },
    #[error("{file}: \"{section}\" must be an object of servers by name, got {found}")]
    BadSection {
        file: String,
        section: &'static str,
        found: &'static str,
    },
    #[error("invalid --prefix '{prefix}': {reason}")]
    BadPrefix { prefix: String, reason: String },
}

/// What the import will do with one server of the file.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Create it with this `POST /api/providers` body.
    Create(Value),
    /// Left out on purpose (e.g. `"disabled": true`); the reason.
    Skip(String),
    /// Cannot be imported; the reason.
    Invalid(String),
}

/// One server of the file and the provider it becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedProvider {
    /// The server's name in the file.
    pub name: String,
    /// The provider id: prefix + name, made valid and unique within the file.
    pub provider_id: String,
    pub action: Action,
}

impl PlannedProvider {
    /// `subprocess` or `remote` for a server that will be created.
    pub fn mode(&self) -> Option<&str> {
        match &self.action {
            Action::Create(body) => body.get("mode").and_then(Value::as_str),
            _ => None,
        }
    }
}

/// Everything found in one file: its servers (in name order) and what the user should know.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportPlan {
    pub providers: Vec<PlannedProvider>,
    pub warnings: Vec<String>,
}

/// The server sections a file may have, in the order they are read.
const SECTIONS: [&str; 3] = ["mcpServers", "servers", "mcp.servers"];

/// Read an MCP client config (JSON; comments and trailing commas are accepted, as VS Code
/// writes them) and plan one provider per server. `source` names the file in messages and in
/// each provider's description.
pub fn plan_import(
    text: &str,
    source: &str,
    prefix: Option<&str>,
) -> Result<ImportPlan, ImportError> {
    let prefix = prefix.unwrap_or("");
    check_prefix(prefix)?;
    let cleaned = strip_jsonc(text.strip_prefix('\u{feff}').unwrap_or(text));
    let root: Value = serde_json::from_str(&cleaned).map_err(|e| ImportError::Json {
        file: source.to_owned(),
        reason: e.to_string(),
    })?;
    let Value::Object(root) = root else {
        return Err(ImportError::NotAnObject {
            file: source.to_owned(),
            found: kind(&root),
        });
    };
    let mut found_section = false;
    let mut plan = ImportPlan::default();
    let mut taken = BTreeSet::new();
    for section in SECTIONS {
        let value = match section.split_once('.') {
            Some((outer, inner)) => root.get(outer).and_then(|o| o.get(inner)),
            None => root.get(section),
        };
        let Some(value) = value else { continue };
        let Value::Object(servers) = value else {
            return Err(ImportError::BadSection {
                file: source.to_owned(),
                section,
                found: kind(value),
            });
        };
        found_section = true;
        let mut names: Vec<&String> = servers.keys().collect();
        names.sort();
        for name in names {
            let entry = &servers[name.as_str()];
            let planned = plan_server(name, entry, source, prefix, &mut taken, &mut plan.warnings);
            plan.providers.push(planned);
        }
    }
    if !found_section {
        return Err(ImportError::NoServerSection {
            file: source.to_owned(),
        });
    }
    if plan.providers.is_empty() {
        plan.warnings
            .push(format!("{source} lists no servers: nothing to import"));
    }
    Ok(plan)
}

fn check_prefix(prefix: &str) -> Result<(), ImportError> {
    let bad = |reason: &str| ImportError::BadPrefix {
        prefix: prefix.to_owned(),
        reason: reason.to_owned(),
    };
    if prefix.is_empty() {
        return Ok(());
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("it must start with a letter or digit"));
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad("only letters, digits, '-' and '_' are allowed"));
    }
    if prefix.contains("__") {
        return Err(bad("'__' separates provider and tool names"));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(bad(&format!("at most {MAX_PREFIX_LEN} characters")));
    }
    Ok(())
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// How a server is reached, from `type` or from which of `command`/`url` it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Stdio,
    Http,
    Sse,
}

/// Fields read from a server entry; any other field is reported as ignored.
const KNOWN_FIELDS: [&str; 11] = [
    "type",
    "transportType",
    "command",
    "args",
    "env",
    "cwd",
    "url",
    "serverUrl",
    "headers",
    "disabled",
    "envFile",
];

fn plan_server(
    name: &str,
    entry: &Value,
    source: &str,
    prefix: &str,
    taken: &mut BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> PlannedProvider {
    let wanted = format!("{prefix}{name}");
    let mut provider_id = sanitize_id(&wanted);
    let planned = |action: Action, provider_id: String| PlannedProvider {
        name: name.to_owned(),
        provider_id,
        action,
    };
    let Value::Object(entry) = entry else {
        let reason = format!("expected an object, got {}", kind(entry));
        return planned(Action::Invalid(reason), provider_id);
    };
    if entry.get("disabled").and_then(Value::as_bool) == Some(true) {
        return planned(Action::Skip("disabled".into()), provider_id);
    }
    let mut server_warnings = Vec::new();
    let action = match server_body(entry, source, &mut server_warnings) {
        Err(reason) => Action::Invalid(reason),
        Ok(mut body) => {
            if provider_id != wanted {
                server_warnings.push(format!(
                    "'{wanted}' is not a valid provider id; using '{provider_id}'"
                ));
            }
            if taken.contains(&provider_id) {
                let unique = unique_id(&provider_id, taken);
                server_warnings.push(format!(
                    "provider id '{provider_id}' is already used by another server in this file; \
                     using '{unique}'"
                ));
                provider_id = unique;
            }
            taken.insert(provider_id.clone());
            if let Value::Object(map) = &mut body {
                map.insert("provider_id".into(), Value::from(provider_id.as_str()));
            }
            placeholder_warnings(&body, &provider_id, &mut server_warnings);
            Action::Create(body)
        }
    };
    warnings.extend(
        server_warnings
            .into_iter()
            .map(|w| format!("server '{name}': {w}")),
    );
    planned(action, provider_id)
}

/// The `POST /api/providers` body for one enabled entry (without `provider_id`), or why it
/// cannot be imported.
fn server_body(
    entry: &Map<String, Value>,
    source: &str,
    warnings: &mut Vec<String>,
) -> Result<Value, String> {
    let transport = transport(entry)?;
    let command = optional_string(entry, "command")?;
    let url = match optional_string(entry, "url")? {
        Some(url) => Some(url),
        None => optional_string(entry, "serverUrl")?,
    };
    let args = string_list(entry, "args")?;
    let env = string_map(entry, "env")?;
    let headers = string_map(entry, "headers")?;
    let cwd = optional_string(entry, "cwd")?;
    let ignored: Vec<&str> = entry
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN_FIELDS.contains(k))
        .collect();
    if !ignored.is_empty() {
        warnings.push(format!("ignored field(s): {}", ignored.join(", ")));
    }
    if entry.contains_key("envFile") {
        warnings.push(
            "\"envFile\" is not imported: add its variables with `hangar providers update --env`"
                .into(),
        );
    }
    let mut body = Map::new();
    match transport {
        Transport::Stdio => {
            let Some(command) = command.filter(|c| !c.trim().is_empty()) else {
                return Err("a stdio server needs a \"command\"".into());
            };
            if args.is_empty() && command.trim().contains(char::is_whitespace) {
                warnings.push(format!(
                    "command '{command}' contains spaces but Hangar runs it without a shell: \
                     put the arguments in \"args\""
                ));
            }
            for (field, present) in [("url", url.is_some()), ("headers", !headers.is_empty())] {
                if present {
                    warnings.push(format!("\"{field}\" is ignored for a stdio server"));
                }
            }
            let mut argv = vec![Value::from(command)];
            argv.extend(args.into_iter().map(Value::from));
            body.insert("mode".into(), Value::from("subprocess"));
            body.insert("command".into(), Value::Array(argv));
            if !env.is_empty() {
                body.insert("env".into(), to_object(env));
            }
            if let Some(cwd) = cwd {
                body.insert("cwd".into(), Value::from(cwd));
            }
        }
        Transport::Http | Transport::Sse => {
            let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
                return Err("an http/sse server needs a \"url\"".into());
            };
            let url = url.trim().to_owned();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("url '{url}' must start with http:// or https://"));
            }
            if transport == Transport::Sse {
                warnings.push(
                    "type sse: Hangar reaches remote servers over Streamable HTTP; a server that \
                     only speaks the old HTTP+SSE transport will not work"
                        .into(),
                );
            }
            for (field, present) in [
                ("command", command.is_some()),
                ("args", !args.is_empty()),
                ("env", !env.is_empty()),
                ("cwd", cwd.is_some()),
            ] {
                if present {
                    warnings.push(format!("\"{field}\" is ignored for a remote server"));
                }
            }
            body.insert("mode".into(), Value::from("remote"));
            body.insert("endpoint".into(), Value::from(url));
            if !headers.is_empty() {
                body.insert("headers".into(), to_object(headers));
            }
        }
    }
    body.insert(
        "description".into(),
        Value::from(format!("imported from {source}")),
    );
    Ok(Value::Object(body))
}

fn transport(entry: &Map<String, Value>) -> Result<Transport, String> {
    let declared = match optional_string(entry, "type")? {
        Some(t) => Some(t),
        None => optional_string(entry, "transportType")?,
    };
    match declared {
        Some(t) => match t.to_ascii_lowercase().as_str() {
            "stdio" => Ok(Transport::Stdio),
            "http" | "streamable-http" | "streamable_http" | "streamablehttp" => {
                Ok(Transport::Http)
            }
            "sse" => Ok(Transport::Sse),
            _ => Err(format!("unknown type '{t}' (expected stdio, http or sse)")),
        },
        None if entry.contains_key("command") => Ok(Transport::Stdio),
        None if entry.contains_key("url") || entry.contains_key("serverUrl") => Ok(Transport::Http),
        None => Err("has neither \"command\" nor \"url\"".into()),
    }
}

fn optional_string(entry: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("\"{field}\" must be a string, got {}", kind(other))),
    }
}

/// A string, number or boolean as text (numbers and booleans are common in hand-written
/// `args` and `env`).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_list(entry: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_text(item)
                    .ok_or_else(|| format!("\"{field}\"[{i}] must be a string, got {}", kind(item)))
            })
            .collect(),
        Some(other) => Err(format!(
            "\"{field}\" must be a list of strings, got {}",
            kind(other)
        )),
    }
}

fn string_map(entry: &Map<String, Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                scalar_text(value).map(|v| (key.clone(), v)).ok_or_else(|| {
                    format!("\"{field}\".{key} must be a string, got {}", kind(value))
                })
            })
            .collect(),
        Some(other) => Err(format!(
            "\"{field}\" must be an object of strings, got {}",
            kind(other)
        )),
    }
}

fn to_object(pairs: Vec<(String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

/// Warn about `${...}` placeholders in a body: `${input:...}` (VS Code asks the user for them)
/// and editor variables such as `${workspaceFolder}` or `${env:HOME}` are kept as text.
/// Hangar's own `${secret:NAME}` is fine.
fn placeholder_warnings(body: &Value, provider_id: &str, warnings: &mut Vec<String>) {
    let mut places: Vec<(String, &str)> = Vec::new();
    if let Some(argv) = body.get("command").and_then(Value::as_array) {
        for (i, arg) in argv.iter().enumerate() {
            if let Some(text) = arg.as_str() {
                let place = if i == 0 {
                    "command".to_owned()
                } else {
                    format!("args[{}]", i - 1)
                };
                places.push((place, text));
            }
        }
    }
    for field in ["env", "headers"] {
        if let Some(map) = body.get(field).and_then(Value::as_object) {
            for (key, value) in map {
                if let Some(text) = value.as_str() {
                    places.push((format!("{field} {key}"), text));
                }
            }
        }
    }
    for field in ["endpoint", "cwd"] {
        if let Some(text) = body.get(field).and_then(Value::as_str) {
            places.push((field.to_owned(), text));
        }
    }
    for (place, text) in places {
        for placeholder in placeholders(text) {
            if placeholder.starts_with("${secret:") {
                continue;
            }
            if placeholder.starts_with("${input:") {
                warnings.push(format!(
                    "{place} uses {placeholder}, kept as text (Hangar does not prompt for VS Code \
                     inputs): set the real value with `hangar providers update {provider_id} ...`"
                ));
            } else {
                warnings.push(format!(
                    "{place} uses {placeholder}, kept as text (Hangar does not expand editor \
                     variables)"
                ));
            }
        }
    }
}

/// Every `${...}` in `text`, in order.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let tail = &rest[start..];
        match tail.find('}') {
            Some(end) => {
                found.push(&tail[..=end]);
                rest = &tail[end + 1..];
            }
            None => break,
        }
    }
    found
}

/// A valid provider id (`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$`, no `__`) as close to `wanted` as
/// possible: each run of other characters becomes one `-` (none at the start or end), leading
/// `-`/`_` are dropped, `__` becomes `_`, and the result is cut to 63 characters. A valid id
/// comes back unchanged; one with nothing usable becomes `server`.
pub fn sanitize_id(wanted: &str) -> String {
    let mut id = String::new();
    let mut pending_dash = false;
    for c in wanted.chars() {
        let valid = c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !valid {
            pending_dash = true;
            continue;
        }
        if id.is_empty() && !c.is_ascii_alphanumeric() {
            continue;
        }
        if pending_dash && !id.is_empty() && !id.ends_with('-') && c != '-' && c != '_' {
            id.push('-');
        }
        pending_dash = false;
        if c == '_' && id.ends_with('_') {
            continue;
        }
        id.push(c);
    }
    if id.is_empty() {
        return "server".to_owned();
    }
    id.truncate(MAX_PROVIDER_ID_LEN);
    id
}

/// `id-2`, `id-3`, ...: the first one not in `taken`, cut to fit 63 characters.
fn unique_id(id: &str, taken: &BTreeSet<String>) -> String {
    let mut n = 2u32;
    loop {
        let suffix = format!("-{n}");
        let keep = MAX_PROVIDER_ID_LEN
            .saturating_sub(suffix.len())
            .min(id.len());
        let base = id.get(..keep).unwrap_or(id);
        let candidate = format!("{base}{suffix}");
        if !taken.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// Turn `//` and `/* */` comments into spaces (keeping line breaks, so error positions stay
/// right) and drop commas that come right before `}` or `]`. Strings are left alone, so plain
/// JSON comes back unchanged.
pub fn strip_jsonc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                while let Some(&next) = chars.peek() {
                    if next == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            ('/', Some('*')) => {
                chars.next();
                out.push_str("  ");
                let mut previous = ' ';
                for next in chars.by_ref() {
                    if previous == '*' && next == '/' {
                        out.push(' ');
                        break;
                    }
                    out.push(if next == '\n' { '\n' } else { ' ' });
                    previous = next;
                }
            }
            _ => out.push(c),
        }
    }
    drop_trailing_commas(&out)
}

fn drop_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|n| !n.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                out.push(' ');
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// What happened to one server when importing for real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// The server answered 409: a provider with that id exists (left unchanged).
    Exists(String),
    Skipped(String),
    Failed(String),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Exists(_) => "exists",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
        }
    }

    fn message(&self) -> Option<&str> {
        match self {
            Outcome::Created => None,
            Outcome::Exists(m) | Outcome::Skipped(m) | Outcome::Failed(m) => Some(m),
        }
    }
}

/// One line of the import report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportResult {
    pub name: String,
    pub provider_id: String,
    pub mode: Option<String>,
    pub outcome: Outcome,
}

/// `hangar import`: exit code 1 when a server failed (or, with `--dry-run`, is invalid).
pub(crate) async fn run(cli: &Cli, args: &ImportArgs, table: bool) -> Result<ExitCode, CliError> {
    let source = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file).map_err(|e| ImportError::Read {
        path: args.file.clone(),
        reason: e.to_string(),
    })?;
    let plan = plan_import(&text, &source, args.prefix.as_deref())?;
    if table {
        for warning in &plan.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if args.dry_run {
        if table {
            print(&dry_run_table(&plan))?;
        } else {
            print_json(&dry_run_json(&source, &plan))?;
        }
        let invalid = plan
            .providers
            .iter()
            .any(|p| matches!(p.action, Action::Invalid(_)));
        return Ok(exit_code(invalid));
    }
    let creates = plan
        .providers
        .iter()
        .any(|p| matches!(p.action, Action::Create(_)));
    let client = if creates { Some(connect(cli)?) } else { None };
    let mut results = Vec::with_capacity(plan.providers.len());
    let mut unreachable: Option<CliError> = None;
    for planned in &plan.providers {
        let outcome = match (&planned.action, &client) {
            (Action::Skip(reason), _) => Outcome::Skipped(reason.clone()),
            (Action::Invalid(reason), _) => Outcome::Failed(reason.clone()),
            (Action::Create(_), _) if unreachable.is_some() => {
                Outcome::Failed("not attempted: the server cannot be reached".into())
            }
            (Action::Create(body), Some(client)) => {
                match client.post(&["providers"], Some(body)).await {
                    Ok(_) => Outcome::Created,
                    Err(CliError::Api {
                        status: 409,
                        message,
                    }) => Outcome::Exists(message),
                    Err(e @ CliError::Connect { .. }) => {
                        let outcome = Outcome::Failed(e.to_string());
                        unreachable = Some(e);
                        outcome
                    }
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            (Action::Create(_), None) => Outcome::Failed("internal: no client".into()),
        };
        results.push(ImportResult {
            name: planned.name.clone(),
            provider_id: planned.provider_id.clone(),
            mode: planned.mode().map(str::to_owned),
            outcome,
        });
    }
    if table {
        print(&results_table(&results))?;
    } else {
        print_json(&results_json(&source, &plan.warnings, &results))?;
    }
    if let Some(error) = unreachable {
        return Err(error);
    }
    let failed = results
        .iter()
        .any(|r| matches!(r.outcome, Outcome::Failed(_)));
    Ok(exit_code(failed))
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(EXIT_SERVER)
    } else {
        ExitCode::SUCCESS
    }
}

/// `--dry-run` for people: one row per server (the command line or endpoint it will get, or
/// why it is skipped or invalid), then a count.
pub fn dry_run_table(plan: &ImportPlan) -> String {
    let (mut create, mut skip, mut invalid) = (0, 0, 0);
    let rows: Vec<Vec<String>> = plan
        .providers
        .iter()
        .map(|p| {
            let (action, target) = match &p.action {
                Action::Create(body) => {
                    create += 1;
                    ("create".to_owned(), target_text(body))
                }
                Action::Skip(reason) => {
                    skip += 1;
                    ("skip".to_owned(), reason.clone())
                }
                Action::Invalid(reason) => {
                    invalid += 1;
                    ("invalid".to_owned(), reason.clone())
                }
            };
            vec![
                p.name.clone(),
                p.provider_id.clone(),
                p.mode().unwrap_or("-").to_owned(),
                action,
                target,
            ]
        })
        .collect();
    let mut out = render_table(&["SERVER", "PROVIDER", "MODE", "ACTION", "DETAIL"], &rows);
    out.push_str(&format!(
        "dry run: {create} to create, {skip} skipped, {invalid} invalid; nothing was sent\n"
    ));
    out
}

/// The command line or the endpoint of a create body.
fn target_text(body: &Value) -> String {
    if let Some(argv) = body.get("command").and_then(Value::as_array) {
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.as_str().unwrap_or_default().to_owned())
            .collect();
        return shell_words(&argv);
    }
    body.get("endpoint")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

/// `--dry-run --output json`: every server with its action and, for creates, the exact body.
pub fn dry_run_json(source: &str, plan: &ImportPlan) -> Value {
    let providers: Vec<Value> = plan
        .providers
        .iter()
        .map(|p| {
            let mut item = json!({ "server": p.name, "provider_id": p.provider_id });
            if let Value::Object(map) = &mut item {
                match &p.action {
                    Action::Create(body) => {
                        map.insert("action".into(), Value::from("create"));
                        map.insert("body".into(), body.clone());
                    }
                    Action::Skip(reason) => {
                        map.insert("action".into(), Value::from("skip"));
                        map.insert("reason".into(), Value::from(reason.as_str()));
                    }
                    Action::Invalid(reason) => {
                        map.insert("action".into(), Value::from("invalid"));
                        map.insert("reason".into(), Value::from(reason.as_str()));
                    }
                }
            }
            item
        })
        .collect();
    json!({
        "file": source,
        "dry_run": true,
        "providers": providers,
        "warnings": plan.warnings,
    })
}

/// The import report for people: one row per server, then the counts.
pub fn results_table(results: &[ImportResult]) -> String {
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let result = match &r.outcome {
                Outcome::Created => "created".to_owned(),
                Outcome::Exists(_) => "exists (left unchanged)".to_owned(),
                Outcome::Skipped(m) => format!("skipped: {m}"),
                Outcome::Failed(m) => format!("failed: {m}"),
            };
            vec![
                r.name.clone(),
                r.provider_id.clone(),
                r.mode.clone().unwrap_or_else(|| "-".to_owned()),
                result,
            ]
        })
        .collect();
    let mut out = render_table(&["SERVER", "PROVIDER", "MODE", "RESULT"], &rows);
    let counts = counts(results);
    out.push_str(&format!(
        "{} created, {} already existed, {} skipped, {} failed\n",
        counts[0], counts[1], counts[2], counts[3]
    ));
    out
}

/// Created, exists, skipped, failed.
fn counts(results: &[ImportResult]) -> [usize; 4] {
    let mut counts = [0; 4];
    for r in results {
        let i = match r.outcome {
            Outcome::Created => 0,
            Outcome::Exists(_) => 1,
            Outcome::Skipped(_) => 2,
            Outcome::Failed(_) => 3,
        };
        counts[i] += 1;
    }
    counts
}

/// The import report for scripts.
pub fn results_json(source: &str, warnings: &[String], results: &[ImportResult]) -> Value {
    let items: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut item = json!({
                "server": r.name,
                "provider_id": r.provider_id,
                "mode": r.mode,
                "result": r.outcome.label(),
            });
            if let (Value::Object(map), Some(message)) = (&mut item, r.outcome.message()) {
                map.insert("message".into(), Value::from(message));
            }
            item
        })
        .collect();
    let [created, exists, skipped, failed] = counts(results);
    json!({
        "file": source,
        "dry_run": false,
        "results": items,
        "warnings": warnings,
        "summary": {"created": created, "exists": exists, "skipped": skipped, "failed": failed},
    })
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
