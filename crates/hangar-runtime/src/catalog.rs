//! The catalog of deployable MCP servers: entries shipped in code
//! ([`builtin_entries`]) plus entries added over the API, persisted in the
//! store's `catalog` table.
//!
//! An entry is a template for a provider: [`to_spec`] turns it into the
//! [`ProviderSpec`] that deploying it creates. Entries are validated when
//! added by building that spec, so every entry in the catalog deploys (given
//! a valid provider id).
//!
//! Invariant: additions and removals are committed to the store before the
//! in-memory map changes, so a `kill -9` after an acknowledged change loses
//! nothing.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use hangar_core::{ErrorOrigin, ProviderMode, ProviderSpec, SpecError};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::store::Store;

/// Longest entry id (= name of a user entry).
pub const MAX_ENTRY_ID_LEN: usize = 64;

/// Provider id used to validate an entry's spec when no provider id is known
/// yet (the entry id itself may not be a valid provider id, e.g. `_x`).
const VALIDATION_ID: &str = "catalog-entry";

/// One deployable MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Unique id; for user entries, the name.
    pub entry_id: String,
    /// Name shown in listings.
    pub name: String,
    /// Short description.
    pub description: String,
    /// How deployed providers run.
    pub mode: ProviderMode,
    /// Subprocess argv (program first), if any.
    pub command: Option<Vec<String>>,
    /// Docker image, if any.
    pub image: Option<String>,
    /// Remote endpoint, if any.
    pub endpoint: Option<String>,
    /// Searchable tags.
    pub tags: Vec<String>,
    /// Environment of deployed providers (deploy may set the declared
    /// `inputs`, nothing else).
    pub env: BTreeMap<String, String>,
    /// The variables a deploy may set (all others are the entry's).
    #[serde(default)]
    pub inputs: Vec<CatalogInput>,
    /// Shipped with Hangar (cannot be deleted).
    pub builtin: bool,
}

/// A variable a deploy of the entry may (or must) set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogInput {
    /// The environment variable.
    pub name: String,
    /// What to put there.
    #[serde(default)]
    pub description: String,
    /// Whether a deploy must set it (unless the entry's env has a value).
    #[serde(default)]
    pub required: bool,
}

/// What the API may set on a new user entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewCatalogEntry {
    /// Name, also the entry id (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// Short description (required).
    pub description: String,
    /// Provider mode.
    pub mode: ProviderMode,
    /// Subprocess argv.
    pub command: Option<Vec<String>>,
    /// Docker image.
    pub image: Option<String>,
    /// Remote endpoint.
    pub endpoint: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Environment.
    pub env: BTreeMap<String, String>,
    /// The variables a deploy may set.
    pub inputs: Vec<CatalogInput>,
}

/// A failure of a catalog operation.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No entry with this id.
    #[error("catalog entry '{0}' not found")]
    NotFound(String),
    /// An entry (built-in or user) with this id exists already.
    #[error("catalog entry '{0}' already exists")]
    AlreadyExists(String),
    /// Built-in entries cannot be deleted.
    #[error("catalog entry '{0}' is built in and cannot be deleted")]
    Builtin(String),
    /// The entry is invalid; the error names the field.
    #[error("invalid catalog entry: {0}")]
    Invalid(#[from] SpecError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

impl CatalogError {
    /// Where the failure came from.
    pub fn origin(&self) -> ErrorOrigin {
        match self {
            Self::NotFound(_) | Self::AlreadyExists(_) | Self::Builtin(_) | Self::Invalid(_) => {
                ErrorOrigin::Downstream
            }
            Self::Store(_) => ErrorOrigin::Hangar,
        }
    }
}

fn builtin(id: &str, description: &str, command: &[&str], tags: &[&str]) -> CatalogEntry {
    CatalogEntry {
        entry_id: id.to_owned(),
        name: id.to_owned(),
        description: description.to_owned(),
        mode: ProviderMode::Subprocess,
        command: Some(command.iter().map(|s| (*s).to_owned()).collect()),
        image: None,
        endpoint: None,
        tags: tags.iter().map(|s| (*s).to_owned()).collect(),
        env: BTreeMap::new(),
        inputs: Vec::new(),
        builtin: true,
    }
}

/// The entries shipped with Hangar: the official MCP reference servers,
/// sorted by id. Python ones run through `uvx`, Node ones through `npx`, so
/// deploying needs those on the server's `PATH`.
///
/// `filesystem` serves `/tmp`: deploy takes no command override, so to serve
/// another directory add a user entry with your own path, e.g.
/// `["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv/data"]`.
pub fn builtin_entries() -> Vec<CatalogEntry> {
    vec![
        builtin(
            "everything",
            "MCP reference test server exercising every protocol feature: tools, resources, prompts, sampling",
            &["npx", "-y", "@modelcontextprotocol/server-everything"],
            &["official", "node", "testing"],
        ),
        builtin(
            "fetch",
            "Fetches web pages and converts them to markdown for LLM use (mcp-server-fetch)",
            &["uvx", "mcp-server-fetch"],
            &["official", "python", "web"],
        ),
        builtin(
            "filesystem",
            "Reads, writes and searches files under allowed directories; serves /tmp (add your own entry to serve another path)",
            &[
                "npx",
                "-y",
                "@modelcontextprotocol/server-filesystem",
                "/tmp",
            ],
            &["official", "node", "filesystem"],
        ),
        builtin(
            "git",
            "Reads, searches and manipulates Git repositories (mcp-server-git)",
            &["uvx", "mcp-server-git"],
            &["official", "python", "git"],
        ),
        builtin(
            "memory",
            "Persistent memory as a knowledge graph of entities and relations",
            &["npx", "-y", "@modelcontextprotocol/server-memory"],
            &["official", "node", "memory"],
        ),
        builtin(
            "sequential-thinking",
            "Dynamic, reflective problem solving through sequences of thoughts",
            &[
                "npx",
                "-y",
                "@modelcontextprotocol/server-sequential-thinking",
            ],
            &["official", "node", "reasoning"],
        ),
        builtin(
            "time",
            "Current time and time zone conversion (mcp-server-time)",
            &["uvx", "mcp-server-time"],
            &["time", "official", "python"],
        ),
    ]
}

/// The provider spec deploying `entry` creates: the entry's mode, command,
/// image, endpoint and description, its env with `env_override` merged over
/// it, everything else at the defaults. `env_override` may set only the
/// entry's declared inputs (anything else would let a deploy change what
/// runs: `LD_PRELOAD`, `NODE_OPTIONS`, `PATH`, ...), and must set the
/// required ones the entry's env leaves empty. Validated (with a placeholder
/// provider id: the caller checks its own); errors name the field.
pub fn to_spec(
    entry: &CatalogEntry,
    env_override: &BTreeMap<String, String>,
) -> Result<ProviderSpec, SpecError> {
    for name in env_override.keys() {
        if !entry.inputs.iter().any(|i| &i.name == name) {
            let declared: Vec<&str> = entry.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(SpecError::new(
                format!("env.{name}"),
                if declared.is_empty() {
                    format!(
                        "catalog entry '{}' declares no inputs; a deploy cannot set env",
                        entry.entry_id
                    )
                } else {
                    format!(
                        "not an input of catalog entry '{}' (its inputs: {})",
                        entry.entry_id,
                        declared.join(", ")
                    )
                },
            ));
        }
    }
    for input in entry.inputs.iter().filter(|i| i.required) {
        let given = env_override
            .get(&input.name)
            .or_else(|| entry.env.get(&input.name))
            .is_some_and(|v| !v.is_empty());
        if !given {
            return Err(SpecError::new(
                format!("env.{}", input.name),
                format!("is a required input of catalog entry '{}'", entry.entry_id),
            ));
        }
    }
    let mut env = entry.env.clone();
    env.extend(env_override.iter().map(|(k, v)| (k.clone(), v.clone())));
    build_spec(entry, env)
}

/// The spec of `entry` with `env`, validated with a placeholder id.
fn build_spec(
    entry: &CatalogEntry,
    env: BTreeMap<String, String>,
) -> Result<ProviderSpec, SpecError> {
    let spec = ProviderSpec {
        mode: entry.mode,
        command: entry.command.clone().unwrap_or_default(),
        image: entry.image.clone(),
        endpoint: entry.endpoint.clone(),
        env,
        description: Some(entry.description.clone()).filter(|d| !d.is_empty()),
        ..ProviderSpec::default()
    };
    spec.validate(VALIDATION_ID)?;
    Ok(spec)
}

/// Checks an entry id: `^[a-zA-Z0-9_-]{1,64}$`. The error's field is `name`
/// (a user entry's id is its name).
pub fn validate_entry_id(id: &str) -> Result<(), SpecError> {
    if id.is_empty() {
        return Err(SpecError::new("name", "is required"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(SpecError::new(
            "name",
            format!("`{id}` contains `{bad}` (allowed: letters, digits, `_`, `-`)"),
        ));
    }
    if id.len() > MAX_ENTRY_ID_LEN {
        return Err(SpecError::new(
            "name",
            format!("must be at most {MAX_ENTRY_ID_LEN} characters"),
        ));
    }
    Ok(())
}

impl NewCatalogEntry {
    /// Validates and builds the entry (not built in; id = name). Errors name
    /// the field.
    pub fn into_entry(self) -> Result<CatalogEntry, SpecError> {
        validate_entry_id(&self.name)?;
        if self.description.trim().is_empty() {
            return Err(SpecError::new("description", "is required"));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                return Err(SpecError::new(format!("tags[{i}]"), "must not be empty"));
            }
            if tag.contains(',') {
                return Err(SpecError::new(
                    format!("tags[{i}]"),
                    "must not contain `,` (the tags filter is comma-separated)",
                ));
            }
        }
        for (i, input) in self.inputs.iter().enumerate() {
            hangar_core::spec::validate_env_name(&input.name)
                .map_err(|message| SpecError::new(format!("inputs[{i}].name"), message))?;
            if self.inputs[..i].iter().any(|o| o.name == input.name) {
                return Err(SpecError::new(
                    format!("inputs[{i}].name"),
                    format!("`{}` is declared twice", input.name),
                ));
            }
        }
        let entry = CatalogEntry {
            entry_id: self.name.clone(),
            name: self.name,
            description: self.description,
            mode: self.mode,
            // `[]` means no command (an error for subprocess mode, below).
            command: self.command.filter(|c| !c.is_empty()),
            image: self.image,
            endpoint: self.endpoint,
            tags: self.tags.into_iter().map(|t| t.trim().to_owned()).collect(),
            env: self.env,
            inputs: self.inputs,
            builtin: false,
        };
        build_spec(&entry, entry.env.clone())?;
        Ok(entry)
    }
}

/// Whether `entry` matches: `search` is a case-insensitive substring of its
/// name or description; `tags` (comma-separated) must all be among its tags
/// (case-insensitive). Empty or blank parameters do not filter.
pub fn matches(entry: &CatalogEntry, search: Option<&str>, tags: Option<&str>) -> bool {
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        let needle = search.to_lowercase();
        if !entry.name.to_lowercase().contains(&needle)
            && !entry.description.to_lowercase().contains(&needle)
        {
            return false;
        }
    }
    if let Some(tags) = tags {
        let all = tags
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .all(|wanted| entry.tags.iter().any(|t| t.eq_ignore_ascii_case(wanted)));
        if !all {
            return false;
        }
    }
    true
}

/// The catalog: built-in entries plus user entries (in memory, backed by
/// the store).
#[derive(Debug)]
pub struct CatalogService {
    builtins: BTreeMap<String, CatalogEntry>,
    user: RwLock<BTreeMap<String, CatalogEntry>>,
    /// Serializes additions and removals (held across the store write).
    writes: tokio::sync::Mutex<()>,
    store: Option<Store>,
}

impl CatalogService {
    /// The catalog with the user entries found in `store` (none: in memory
    /// only). A stored entry whose id is now a built-in one is ignored.
    pub async fn new(store: Option<Store>) -> Result<Self, CatalogError> {
        let builtins: BTreeMap<String, CatalogEntry> = builtin_entries()
            .into_iter()
            .map(|e| (e.entry_id.clone(), e))
            .collect();
        let mut user = BTreeMap::new();
        if let Some(store) = &store {
            for (id, mut entry) in store.catalog_entries().await? {
                if builtins.contains_key(&id) {
                    tracing::warn!(entry = %id, "stored catalog entry shadowed by a built-in entry");
                    continue;
                }
                entry.entry_id.clone_from(&id);
                entry.builtin = false;
                user.insert(id, entry);
            }
        }
        Ok(Self {
            builtins,
            user: RwLock::new(user),
            writes: tokio::sync::Mutex::new(()),
            store,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, CatalogEntry>> {
        self.user.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, CatalogEntry>> {
        self.user.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Entries matching the filters (see [`matches`]), sorted by id.
    pub fn list(&self, search: Option<&str>, tags: Option<&str>) -> Vec<CatalogEntry> {
        let user = self.read();
        let mut all: Vec<CatalogEntry> = self
            .builtins
            .values()
            .chain(user.values())
            .filter(|e| matches(e, search, tags))
            .cloned()
            .collect();
        all.sort_by(|a, b| a.entry_id.cmp(&b.entry_id));
        all
    }

    /// One entry.
    pub fn get(&self, id: &str) -> Result<CatalogEntry, CatalogError> {
        if let Some(e) = self.builtins.get(id) {
            return Ok(e.clone());
        }
        self.read()
            .get(id)
            .cloned()
            .ok_or_else(|| CatalogError::NotFound(id.to_owned()))
    }

    /// Adds a user entry: validated, persisted, then visible.
    pub async fn add(&self, new: NewCatalogEntry) -> Result<CatalogEntry, CatalogError> {
        let entry = new.into_entry()?;
        let id = entry.entry_id.clone();
        let _writing = self.writes.lock().await;
        if self.builtins.contains_key(&id) || self.read().contains_key(&id) {
            return Err(CatalogError::AlreadyExists(id));
        }
        if let Some(store) = &self.store {
            store.put_catalog_entry(&id, &entry).await?;
        }
        self.write().insert(id, entry.clone());
        Ok(entry)
    }

    /// Removes a user entry: deleted from the store, then from memory.
    /// Built-in entries are refused.
    pub async fn remove(&self, id: &str) -> Result<(), CatalogError> {
        if self.builtins.contains_key(id) {
            return Err(CatalogError::Builtin(id.to_owned()));
        }
        let _writing = self.writes.lock().await;
        if !self.read().contains_key(id) {
            return Err(CatalogError::NotFound(id.to_owned()));
        }
        if let Some(store) = &self.store {
            store.delete_catalog_entry(id).await?;
        }
        self.write().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_entry(name: &str, description: &str, tags: &[&str]) -> NewCatalogEntry {
        NewCatalogEntry {
            name: name.to_owned(),
            description: description.to_owned(),
            command: Some(vec!["my-server".to_owned(), "--flag".to_owned()]),
            tags: tags.iter().map(|s| (*s).to_owned()).collect(),
            ..NewCatalogEntry::default()
        }
    }

    fn ids(entries: &[CatalogEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.entry_id.as_str()).collect()
    }

    #[test]
    fn builtins_are_present_sorted_and_valid() {
        let all = builtin_entries();
        assert_eq!(
            ids(&all),
            [
                "everything",
                "fetch",
                "filesystem",
                "git",
                "memory",
                "sequential-thinking",
                "time"
            ]
        );
        for e in &all {
            assert!(e.builtin);
            assert_eq!(e.entry_id, e.name);
            validate_entry_id(&e.entry_id).expect("valid id");
            hangar_core::validate_provider_id(&e.entry_id).expect("deployable as its own id");
            let spec = to_spec(e, &BTreeMap::new()).expect("valid spec");
            spec.validate(&e.entry_id).expect("valid for its id");
            assert!(e.tags.iter().any(|t| t == "official"), "{}", e.entry_id);
            assert!(
                e.tags.iter().any(|t| t == "python" || t == "node"),
                "{}",
                e.entry_id
            );
        }
        let time = all.iter().find(|e| e.entry_id == "time").expect("time");
        assert_eq!(
            time.command.as_deref(),
            Some(&["uvx".to_owned(), "mcp-server-time".to_owned()][..])
        );
        assert_eq!(time.tags, ["time", "official", "python"]);
    }

    #[test]
    fn entry_json_shape() {
        let e = new_entry("mine", "Mine", &["a"])
            .into_entry()
            .expect("valid");
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(
            v,
            serde_json::json!({
                "entry_id": "mine", "name": "mine", "description": "Mine",
                "mode": "subprocess", "command": ["my-server", "--flag"],
                "image": null, "endpoint": null, "tags": ["a"], "env": {},
                "inputs": [], "builtin": false
            })
        );
    }

    fn input(name: &str, required: bool) -> CatalogInput {
        CatalogInput {
            name: name.to_owned(),
            description: String::new(),
            required,
        }
    }

    #[test]
    fn to_spec_merges_only_declared_inputs() {
        let mut n = new_entry("mine", "Mine", &[]);
        n.inputs = vec![input("B", false), input("TOKEN", true)];
        let mut e = n.into_entry().expect("valid");
        e.env.insert("A".into(), "entry".into());
        e.env.insert("B".into(), "entry".into());
        let over = BTreeMap::from([
            ("B".to_owned(), "deploy".to_owned()),
            ("TOKEN".to_owned(), "t".to_owned()),
        ]);
        let spec = to_spec(&e, &over).expect("spec");
        assert_eq!(spec.env["A"], "entry");
        assert_eq!(spec.env["B"], "deploy");
        assert_eq!(spec.command, ["my-server", "--flag"]);
        assert_eq!(spec.description.as_deref(), Some("Mine"));
        // Anything not declared is refused, naming it: no LD_PRELOAD, PATH, ...
        for name in ["A", "LD_PRELOAD", "A=B"] {
            let bad = BTreeMap::from([
                (name.to_owned(), "x".to_owned()),
                ("TOKEN".to_owned(), "t".to_owned()),
            ]);
            let err = to_spec(&e, &bad).expect_err("undeclared");
            assert_eq!(err.field, format!("env.{name}"));
            assert!(err.message.contains("inputs: B, TOKEN"), "{err}");
        }
        // A required input must be given.
        let err = to_spec(&e, &BTreeMap::new()).expect_err("required");
        assert_eq!(err.field, "env.TOKEN");
        // Names are checked, once each.
        let mut n = new_entry("dup", "d", &[]);
        n.inputs = vec![input("X", false), input("X", true)];
        assert_eq!(n.into_entry().expect_err("dup").field, "inputs[1].name");
        let mut n = new_entry("bad", "d", &[]);
        n.inputs = vec![input("A=B", false)];
        assert_eq!(n.into_entry().expect_err("bad").field, "inputs[0].name");
    }

    #[test]
    fn new_entries_are_validated_naming_the_field() {
        let field = |n: NewCatalogEntry| n.into_entry().expect_err("invalid").field;
        assert_eq!(field(new_entry("", "d", &[])), "name");
        assert_eq!(field(new_entry("bad name", "d", &[])), "name");
        assert_eq!(field(new_entry(&"x".repeat(65), "d", &[])), "name");
        assert_eq!(field(new_entry("ok", " ", &[])), "description");
        assert_eq!(field(new_entry("ok", "d", &["a", ""])), "tags[1]");
        assert_eq!(field(new_entry("ok", "d", &["a,b"])), "tags[0]");
        let mut n = new_entry("ok", "d", &[]);
        n.command = Some(vec![]);
        assert_eq!(field(n), "command");
        let mut n = new_entry("ok", "d", &[]);
        n.mode = ProviderMode::Remote;
        assert_eq!(field(n), "command");
        let n = NewCatalogEntry {
            name: "remote".into(),
            description: "d".into(),
            mode: ProviderMode::Remote,
            endpoint: Some("ftp://x".into()),
            ..NewCatalogEntry::default()
        };
        assert_eq!(field(n), "endpoint");
        // Ids a provider id would refuse are fine as entry ids.
        new_entry("_x", "d", &[])
            .into_entry()
            .expect("valid entry id");
        new_entry(&"x".repeat(64), "d", &[])
            .into_entry()
            .expect("64 chars");
        let docker = NewCatalogEntry {
            name: "img".into(),
            description: "d".into(),
            mode: ProviderMode::Docker,
            image: Some("mcp/time:latest".into()),
            command: Some(vec![]),
            ..NewCatalogEntry::default()
        }
        .into_entry()
        .expect("docker entry");
        assert_eq!(docker.command, None);
    }

    #[tokio::test]
    async fn filtering_search_tags_and_empty() {
        let cat = CatalogService::new(None).await.expect("catalog");
        cat.add(new_entry(
            "weather",
            "Forecasts from NOAA",
            &["web", "Python"],
        ))
        .await
        .expect("add");
        let n = builtin_entries().len();
        assert_eq!(cat.list(None, None).len(), n + 1);
        assert_eq!(cat.list(Some(""), Some("")).len(), n + 1);
        assert_eq!(cat.list(Some("  "), Some(" , ")).len(), n + 1);
        // Sorted by id, user entries among built-ins.
        let all = cat.list(None, None);
        let mut sorted = ids(&all);
        sorted.sort_unstable();
        assert_eq!(ids(&all), sorted);
        // Search: case-insensitive, name or description.
        assert_eq!(ids(&cat.list(Some("WEATH"), None)), ["weather"]);
        assert_eq!(ids(&cat.list(Some("noaa"), None)), ["weather"]);
        assert_eq!(ids(&cat.list(Some("time zone"), None)), ["time"]);
        assert!(cat.list(Some("no such thing"), None).is_empty());
        // Tags: AND logic, case-insensitive.
        assert_eq!(ids(&cat.list(None, Some("python"))).len(), 4);
        assert_eq!(
            ids(&cat.list(None, Some("web,python"))),
            ["fetch", "weather"]
        );
        assert_eq!(
            ids(&cat.list(None, Some("web, PYTHON ,"))),
            ["fetch", "weather"]
        );
        assert_eq!(ids(&cat.list(None, Some("official,git"))), ["git"]);
        assert!(cat.list(None, Some("official,web,node")).is_empty());
        // Both.
        assert_eq!(ids(&cat.list(Some("fetch"), Some("web"))), ["fetch"]);
    }

    #[tokio::test]
    async fn duplicates_builtins_and_unknown_ids() {
        let cat = CatalogService::new(None).await.expect("catalog");
        cat.add(new_entry("mine", "d", &[])).await.expect("add");
        assert!(matches!(
            cat.add(new_entry("mine", "d", &[])).await,
            Err(CatalogError::AlreadyExists(id)) if id == "mine"
        ));
        assert!(matches!(
            cat.add(new_entry("time", "d", &[])).await,
            Err(CatalogError::AlreadyExists(id)) if id == "time"
        ));
        assert!(matches!(
            cat.remove("time").await,
            Err(CatalogError::Builtin(id)) if id == "time"
        ));
        assert!(cat.get("time").expect("still there").builtin);
        assert!(matches!(
            cat.remove("nope").await,
            Err(CatalogError::NotFound(_))
        ));
        assert!(matches!(cat.get("nope"), Err(CatalogError::NotFound(_))));
        cat.remove("mine").await.expect("remove");
        assert!(matches!(cat.get("mine"), Err(CatalogError::NotFound(_))));
    }

    #[tokio::test]
    async fn user_entries_survive_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hangar.db");
        let kept = {
            let cat = CatalogService::new(Some(Store::open(&path).expect("open")))
                .await
                .expect("catalog");
            let mut n = new_entry("kept", "Kept across restarts", &["x"]);
            n.env.insert("K".into(), "v".into());
            let kept = cat.add(n).await.expect("add");
            cat.add(new_entry("gone", "Removed", &[]))
                .await
                .expect("add");
            cat.remove("gone").await.expect("remove");
            assert!(matches!(
                cat.remove("time").await,
                Err(CatalogError::Builtin(_))
            ));
            kept
        };
        let cat = CatalogService::new(Some(Store::open(&path).expect("reopen")))
            .await
            .expect("catalog");
        assert_eq!(cat.get("kept").expect("kept"), kept);
        assert!(matches!(cat.get("gone"), Err(CatalogError::NotFound(_))));
        assert_eq!(cat.list(None, None).len(), builtin_entries().len() + 1);
        assert!(cat.get("time").expect("builtin").builtin);
    }
}
